//! Tests of the whole pipeline: messages and files in, merged PDF out.

use super::*;

/// A message that makes [`message_to_pdf`] panic, to test the pool's panic handling.
pub(crate) const MESSAGE_PANIC_TRIGGER: &[u8] = b"faxgate test: panic outside any document";
