//! faxgate: a daemon that faxes email and emails faxes, with the Sinch Fax API as the
//! telephone side.
//!
//! Email to fax: [`smtp`] accepts a message, [`intake`] checks the sender against
//! [`mappings`], [`documents`] turns the attachments into one PDF, and [`queue`] stores
//! the job durably before the client hears `250`. Workers then hand each job to a
//! [`fax`] backend. [`server`] wires these together for `faxgate run`.

pub mod api;
pub mod cli;
pub mod config;
pub mod documents;
pub mod fax;
pub mod intake;
pub mod mappings;
pub mod metrics;
pub mod number;
pub mod queue;
pub mod relay;
pub mod reports;
pub mod server;
pub mod smtp;
pub mod store;
pub mod webhooks;
