//! Fax numbers: parsing what people write in an address or a Subject into E.164, and
//! the fraud controls applied to destinations.
//!
//! Parsing and validation use the `phonenumber` crate (libphonenumber metadata), so a
//! number in an area code that does not exist is rejected. The Sinch test number
//! `+19898989898` is valid under that metadata.

use std::fmt;
use std::str::FromStr;

use phonenumber::Mode;
use phonenumber::country::Id as Region;

/// Maximum characters in a written number. E.164 has at most 15 digits; the rest is
/// room for separators such as `"+1 (415) 555-2222"`. Longer input is rejected before
/// it reaches the parser.
pub const MAX_WRITTEN_LENGTH: usize = 40;

/// A valid fax number in E.164 form, such as `+14155552222`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Number(String);

impl Number {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Parses a number written with or without `+`, in national form (read with
    /// `default_region`), with `-`, `.`, `(`, `)` and spaces as separators, or quoted.
    pub fn parse(written: &str, default_region: Region) -> Result<Number, NumberError> {
        let text = written.trim();
        let text = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')).unwrap_or(text).trim();
        if text.is_empty() {
            return Err(NumberError::new(written, "it is empty"));
        }
        if text.chars().count() > MAX_WRITTEN_LENGTH {
            return Err(NumberError::new(written, "it is too long for a fax number"));
        }
        if let Some(c) = text.chars().find(|c| !(c.is_ascii_digit() || "+-.() ".contains(*c))) {
            // Pauses and tones are named only in what is otherwise a dialled number, so
            // that a word such as "help" is not described as a pause.
            let dialled = text.chars().all(|c| c.is_ascii_digit() || "+-.() ,pP*#".contains(c));
            let reason = if dialled && ",pP*#".contains(c) {
                format!("the character {c:?} (a pause or tone) cannot be dialled by the fax service")
            } else {
                format!("the character {c:?} is not allowed in a fax number")
            };
            return Err(NumberError::new(written, reason));
        }
        let plus = text.starts_with('+');
        if text[usize::from(plus)..].contains('+') {
            return Err(NumberError::new(written, "a `+` may only come first"));
        }
        let digits: String = text.chars().filter(char::is_ascii_digit).collect();
        if digits.len() > 15 {
            return Err(NumberError::new(written, "it has more than the 15 digits E.164 allows"));
        }
        let parsed = if plus {
            phonenumber::parse(None, format!("+{digits}"))
        } else {
            // A number without `+` is first read as national; when that fails, as
            // international without its `+` (`14155552222`).
            phonenumber::parse(Some(default_region), &digits)
                .ok()
                .filter(|n| n.is_valid())
                .map(Ok)
                .unwrap_or_else(|| phonenumber::parse(None, format!("+{digits}")))
        };
        let parsed = parsed.map_err(|_| NumberError::new(written, "it is not a phone number"))?;
        if !parsed.is_valid() {
            return Err(NumberError::new(written, "it is not a valid phone number in any region"));
        }
        Ok(Number(parsed.format().mode(Mode::E164).to_string()))
    }

    /// Returns the ISO 3166 region of the number, when the metadata names one.
    pub fn region(&self) -> Option<Region> {
        phonenumber::parse(None, &self.0).ok().and_then(|n| n.country().id())
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Number {
    type Err = NumberError;

    /// Parses an E.164 number; national forms need [`Number::parse`] with a region.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if !s.starts_with('+') {
            return Err(NumberError::new(s, "expected E.164 form with a leading `+`, such as +14155552222"));
        }
        Number::parse(s, Region::US)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid fax number {written:?}: {reason}")]
pub struct NumberError {
    pub written: String,
    pub reason: String,
}

impl NumberError {
    fn new(written: &str, reason: impl Into<String>) -> Self {
        NumberError { written: written.to_string(), reason: reason.into() }
    }
}

/// Destinations a fax may go to: the `allowed_countries` and `denied_prefixes` of the
/// `[fax]` table.
#[derive(Debug, Clone, Default)]
pub struct DestinationPolicy {
    /// Upper-case ISO 3166 regions; empty allows every region.
    pub allowed_countries: Vec<String>,
    /// E.164 prefixes such as `+1900`.
    pub denied_prefixes: Vec<String>,
}

impl DestinationPolicy {
    /// Returns why `number` may not be faxed to, as a sentence that names the number, or
    /// `None` when it may.
    pub fn check(&self, number: &Number) -> Option<String> {
        if let Some(prefix) = self.denied_prefixes.iter().find(|p| number.as_str().starts_with(p.as_str())) {
            return Some(format!("{number} is denied because numbers starting with {prefix} may not be faxed"));
        }
        if !self.allowed_countries.is_empty() {
            let region = number.region().map(|r| r.as_ref().to_string());
            if !region.as_ref().is_some_and(|r| self.allowed_countries.contains(r)) {
                return Some(format!(
                    "{number} is in {}; faxes may be sent only to {}",
                    region.as_deref().unwrap_or("no known region"),
                    self.allowed_countries.join(", "),
                ));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(text: &str) -> Result<Number, NumberError> {
        Number::parse(text, Region::US)
    }

    #[test]
    fn accepted_spellings() {
        for written in [
            "+14155552222",
            "14155552222",
            "4155552222",
            "1-415-555-2222",
            "1.415.555.2222",
            "\"+1 (415) 555-2222\"",
            "+1 (415) 555-2222",
        ] {
            assert_eq!(us(written).unwrap().as_str(), "+14155552222", "{written}");
        }
    }

    #[test]
    fn national_number_uses_default_region() {
        let n = Number::parse("030 123456", Region::DE).unwrap();
        assert_eq!(n.as_str(), "+4930123456");
    }

    #[test]
    fn sinch_test_number_is_valid() {
        assert_eq!(us("+19898989898").unwrap().as_str(), "+19898989898");
    }

    #[test]
    fn nonexistent_area_code_is_rejected() {
        assert!(us("+15550001111").is_err());
    }

    #[test]
    fn letters_pauses_and_tones_are_rejected() {
        assert!(us("fax").unwrap_err().reason.contains("not allowed"));
        assert!(us("4155552222p1").unwrap_err().reason.contains("pause"));
        assert!(us("*4155552222").unwrap_err().reason.contains("pause or tone"));
        assert!(us("1415p5552222").unwrap_err().reason.contains("pause or tone"));
        let word = us("help").unwrap_err().reason;
        assert!(!word.contains("pause or tone"), "{word}");
        assert!(us("41+55552222").is_err());
        assert!(us("").is_err());
    }

    #[test]
    fn overlong_input_is_rejected() {
        assert!(us(&"1".repeat(16)).unwrap_err().reason.contains("15 digits"));
        assert!(us(&"1-".repeat(30)).unwrap_err().reason.contains("too long"));
    }

    #[test]
    fn denied_prefix_and_country() {
        let policy = DestinationPolicy {
            allowed_countries: vec!["US".into()],
            denied_prefixes: vec!["+1900".into()],
        };
        assert!(policy.check(&us("+19005550100").unwrap_or(Number("+19005550100".into()))).is_some());
        assert!(policy.check(&us("+14155552222").unwrap()).is_none());
        let german = Number::parse("+4930123456", Region::US).unwrap();
        assert_eq!(policy.check(&german).unwrap(), "+4930123456 is in DE; faxes may be sent only to US");
    }
}
