//! stub
pub const SCHEMA: &[&str] = &[];
