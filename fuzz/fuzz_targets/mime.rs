//! Fuzzes the MIME walk and everything behind it: arbitrary bytes as a whole message
//! given to `message_to_pdf`, with the body faxed as a cover page so text rendering runs
//! too. Errors are expected; a panic or a hang is a finding.

#![no_main]

mod common;

use faxgate::config::BodyMode;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = faxgate::documents::Limits { body: BodyMode::Cover, ..common::limits() };
    let _ = faxgate::documents::message_to_pdf(data, &limits);
});
