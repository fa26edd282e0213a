//! Mappings: which email address may send from, or receive for, which account number.
//!
//! [`Mappings`] keeps them in the shared [`Store`](crate::store::Store), together with
//! each address's SMTP AUTH password hash. [`rules`] contains the checks that the SMTP
//! intake, the CLI and the management HTTP API all apply: email syntax, envelope tag
//! removal, `N:permission` arguments, paging limits and sender authorization.

mod password;
pub mod rules;
mod store;

use std::fmt;
use std::str::FromStr;

use crate::number::Number;

pub use store::Mappings;

/// The tables of this module, created at store open. Every statement is idempotent.
///
/// Emails are stored lower case (see [`rules::normalize_email`]), numbers in E.164.
/// `position` keeps the numbers in the order they were given, because the first number
/// with send permission is the default from-number.
pub const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS mappings (
        email TEXT PRIMARY KEY NOT NULL,
        password_hash TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    ) STRICT",
    "CREATE TABLE IF NOT EXISTS mapping_numbers (
        email TEXT NOT NULL REFERENCES mappings (email) ON DELETE CASCADE ON UPDATE CASCADE,
        number TEXT NOT NULL,
        permission TEXT NOT NULL CHECK (permission IN ('send', 'receive', 'both')),
        position INTEGER NOT NULL,
        PRIMARY KEY (email, number)
    ) STRICT",
    "CREATE INDEX IF NOT EXISTS mapping_numbers_by_number ON mapping_numbers (number, email)",
];

/// The permission of an address on one number. The default is [`Permission::Both`], as
/// in the Sinch Fax API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Permission {
    Send,
    Receive,
    #[default]
    Both,
}

impl Permission {
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Send => "send",
            Permission::Receive => "receive",
            Permission::Both => "both",
        }
    }

    pub fn can_send(self) -> bool {
        matches!(self, Permission::Send | Permission::Both)
    }

    pub fn can_receive(self) -> bool {
        matches!(self, Permission::Receive | Permission::Both)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Permission {
    type Err = PermissionError;

    /// Parses `send`, `receive` or `both`, in any letter case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "send" => Ok(Permission::Send),
            "receive" => Ok(Permission::Receive),
            "both" => Ok(Permission::Both),
            _ => Err(PermissionError { written: s.to_string() }),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid permission {written:?}: expected send, receive or both")]
pub struct PermissionError {
    pub written: String,
}

/// One email address with its numbers, in the order they were given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// Lower case, as checked by [`rules::normalize_email`].
    pub email: String,
    pub numbers: Vec<(Number, Permission)>,
    /// Whether an SMTP AUTH password is set. The hash itself never leaves the store.
    pub has_password: bool,
    /// RFC 3339 UTC timestamps with milliseconds, such as `2026-12-04T21:30:00.123Z`.
    pub created_at: String,
    pub updated_at: String,
}

impl Mapping {
    /// Returns the numbers this address may send from, in mapping order.
    pub fn send_numbers(&self) -> impl Iterator<Item = &Number> {
        self.numbers.iter().filter(|(_, permission)| permission.can_send()).map(|(number, _)| number)
    }

    /// Returns whether this address receives the faxes that arrive on `number`.
    pub fn receives_on(&self, number: &Number) -> bool {
        self.numbers.iter().any(|(n, permission)| n == number && permission.can_receive())
    }

    /// Formats the numbers as the CLI prints and reads them: `+14155550100:send ...`.
    pub fn numbers_display(&self) -> String {
        let parts: Vec<String> = self.numbers.iter().map(|(n, p)| format!("{n}:{p}")).collect();
        parts.join(" ")
    }
}

/// Errors of [`Mappings`]. [`MappingError::is_invalid_input`] separates the caller's
/// mistakes from store failures.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error(transparent)]
    InvalidEmail(#[from] rules::EmailError),
    #[error(transparent)]
    InvalidNumbers(#[from] rules::NumbersError),
    #[error("{email} already has a mapping")]
    Exists { email: String },
    #[error("{email} has no mapping")]
    NotFound { email: String },
    #[error("the password for {email} is empty")]
    EmptyPassword { email: String },
    #[error("cannot hash the password for {email}: {message}")]
    Hash { email: String, message: String },
    #[error("database error: {0}")]
    Store(#[from] sqlx::Error),
    #[error("invalid value in the mappings table for {email}: {message}")]
    Corrupt { email: String, message: String },
}

impl MappingError {
    /// Returns whether the request itself was wrong (an invalid email, numbers or
    /// password), so that repeating it unchanged cannot succeed.
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            MappingError::InvalidEmail(_) | MappingError::InvalidNumbers(_) | MappingError::EmptyPassword { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_round_trip() {
        for permission in [Permission::Send, Permission::Receive, Permission::Both] {
            assert_eq!(permission.to_string().parse::<Permission>().unwrap(), permission);
        }
        assert_eq!("SEND".parse::<Permission>().unwrap(), Permission::Send);
        assert_eq!(Permission::default(), Permission::Both);
    }

    #[test]
    fn permission_unknown_is_named() {
        let err = "sned".parse::<Permission>().unwrap_err();
        assert_eq!(err.to_string(), "invalid permission \"sned\": expected send, receive or both");
        assert!("".parse::<Permission>().is_err());
    }

    #[test]
    fn permission_send_and_receive() {
        assert!(Permission::Send.can_send());
        assert!(!Permission::Send.can_receive());
        assert!(!Permission::Receive.can_send());
        assert!(Permission::Receive.can_receive());
        assert!(Permission::Both.can_send());
        assert!(Permission::Both.can_receive());
    }
}
