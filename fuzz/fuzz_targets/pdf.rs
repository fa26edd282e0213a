//! Fuzzes the PDF reader: arbitrary bytes given to `files_to_pdf` as `x.pdf`, so the
//! kind comes from the content first and the name second. Errors are expected; a panic
//! or a hang is a finding.

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let files = vec![("x.pdf".to_string(), data.to_vec())];
    let _ = faxgate::documents::files_to_pdf(&files, &common::limits());
});
