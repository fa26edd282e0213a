//! Fuzzes the MIME walk and everything behind it: arbitrary bytes as a whole message
//! given to `message_to_pdf`, with the body faxed as a cover page so text rendering runs
//! too. Errors are expected; a panic or a hang is a finding.
//!
//! mail-parser 0.11.9 reaches a `debug_assert!(false, "Invalid part ID, could not find
//! multipart.")` on some nested multiparts (`src/parsers/message.rs`, line 485). Builds
//! without debug assertions, such as the release daemon, are not affected, and the
//! conversion pool turns a panic into a 451 reply in builds with them. Inputs that make
//! the parser itself panic are therefore skipped, so the fuzzer can reach our code.

#![no_main]

mod common;

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;

use faxgate::config::BodyMode;
use libfuzzer_sys::fuzz_target;

thread_local! {
    /// Whether the current thread is inside the pre-parse, whose panics are expected.
    static IN_PRE_PARSE: Cell<bool> = const { Cell::new(false) };
}

static INSTALL_HOOK: Once = Once::new();

/// Parses the message with mail-parser alone; returns false when the parser panics.
fn parser_survives(data: &[u8]) -> bool {
    INSTALL_HOOK.call_once(|| {
        // libFuzzer's hook aborts on every panic; it stays in force outside the pre-parse.
        let fuzzer_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_PRE_PARSE.with(Cell::get) {
                fuzzer_hook(info);
            }
        }));
    });
    IN_PRE_PARSE.with(|flag| flag.set(true));
    let parsed = catch_unwind(AssertUnwindSafe(|| {
        let _ = mail_parser::MessageParser::default().parse(data);
    }));
    IN_PRE_PARSE.with(|flag| flag.set(false));
    parsed.is_ok()
}

fuzz_target!(|data: &[u8]| {
    if !parser_survives(data) {
        return;
    }
    let limits = faxgate::documents::Limits { body: BodyMode::Cover, ..common::limits() };
    let _ = faxgate::documents::message_to_pdf(data, &limits);
});
