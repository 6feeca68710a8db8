//! The dataset manifest loader on arbitrary JSON; a manifest it accepts survives the queries the
//! engine asks of it and a save/load round trip unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logcrunch::catalog::manifest::Manifest;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(m) = Manifest::from_json(text, Path::new("manifest.json")) else {
        return;
    };
    let _ = (m.next_source_id(), m.total_rows());
    let again = serde_json::to_string(&m).unwrap();
    let back = Manifest::from_json(&again, Path::new("manifest.json")).unwrap();
    assert_eq!(m, back);
});
