//! The rules for mappings and senders, as pure functions: the SMTP intake, the CLI and
//! the management HTTP API all call these, so an address or a number means the same
//! thing everywhere.
//!
//! - [`address`]: [`normalize_email`] checks the syntax of a mapped address and
//!   lower-cases it, and [`strip_tags`] removes SRS and BATV rewriting from an envelope
//!   sender.
//! - [`request`]: [`parse_number_permission`] reads the CLI's `N[:send|:receive|:both]`.
//!   [`check_numbers`] and [`check_page`] are the checks on a request's number list and
//!   paging, and [`parse_api_email`] and [`parse_api_phone_numbers`] apply them to an
//!   HTTP API body, naming the field at fault as a [`FieldViolation`].
//! - [`sender`]: [`sender_address`], [`authorize_envelope`] and [`authorize_sender`]
//!   decide whether a message may be faxed and from which number.

pub mod address;
pub mod request;
pub mod sender;

pub use address::{EmailError, MAX_EMAIL_LENGTH, MAX_LOCAL_PART_LENGTH, normalize_email, strip_tags};
pub use request::{
    DEFAULT_NUMBERS_PAGE_SIZE, DEFAULT_PAGE_SIZE, FieldViolation, MAX_PAGE_SIZE, NumberPermissionError, NumbersError,
    PageError, check_numbers, check_page, parse_api_email, parse_api_phone_numbers, parse_number_permission,
    total_pages,
};
pub use sender::{SenderCheckInput, SenderError, authorize_envelope, authorize_sender, sender_address};
