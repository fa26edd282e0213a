//! Fuzzes the TIFF reader, whatever TIFF support the pipeline has: arbitrary bytes
//! given to `files_to_pdf` as `x.tif`, so the kind comes from the content first and the
//! name second. Errors are expected; a panic or a hang is a finding.

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let files = vec![("x.tif".to_string(), data.to_vec())];
    let _ = faxgate::documents::files_to_pdf(&files, &common::limits());
});
