//! The `detect --series FILE.csv` reader on arbitrary text: a series or an error, in memory
//! proportional to the input (a grid is only laid out when it fits).
#![no_main]

use libfuzzer_sys::fuzz_target;
use logcrunch::detect::series::parse_series;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(s) = parse_series(text, "fuzz.csv", "fuzz".into()) {
        assert_eq!(s.values.len(), s.samples.len());
        assert!(s.step > 0);
    }
});
