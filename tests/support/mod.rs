//! Shared test support: a real daemon, an SMTP client for exact replies, and test
//! documents.

pub mod daemon;
pub mod pdf;
pub mod smtp_client;
