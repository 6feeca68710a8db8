//! The configuration loader (`config.yaml`, every section validated) and the signatures loader
//! on arbitrary YAML: an error, never a panic, a hang or an allocation out of proportion.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logcrunch::config::Config;
use logcrunch::security::{SignatureFile, Tagger};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Config::parse(text, Path::new("config.yaml"));
    if let Ok(file) = SignatureFile::parse(text, Path::new("signatures.yaml")) {
        let _ = Tagger::new(&file, 2);
    }
});
