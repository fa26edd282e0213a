//! The configuration file as written: every table and key of the TOML file, with the
//! defaults of a key that is left out. Unknown keys are rejected here, by serde, so the
//! error names the key. Nothing is checked beyond types; `settings` does the rest.
//! `check-config` prints the settings in this shape, so its output reads back as a file.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub gateway: RawGateway,
    pub smtp: RawSmtp,
    pub senders: RawSenders,
    pub documents: RawDocuments,
    pub fax: RawFax,
    pub webhooks: RawWebhooks,
    pub relay: RawRelay,
    pub notifications: RawNotifications,
    pub api: RawApi,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawGateway {
    pub hostname: String,
    pub domains: Vec<String>,
    pub default_region: String,
    pub data_dir: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
}

impl Default for RawGateway {
    fn default() -> Self {
        RawGateway {
            hostname: "fax.example.com".into(),
            domains: vec!["fax.example.com".into()],
            default_region: "US".into(),
            data_dir: "/var/lib/faxgate".into(),
            database_url: None,
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSmtp {
    pub max_message_size: u64,
    pub max_recipients: usize,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub command_timeout: u64,
    pub message_timeout: u64,
    pub max_errors: u32,
    pub shutdown_grace: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    pub listeners: Vec<RawListener>,
}

impl Default for RawSmtp {
    fn default() -> Self {
        RawSmtp {
            max_message_size: 26_214_400,
            max_recipients: 20,
            max_connections: 500,
            max_connections_per_ip: 20,
            command_timeout: 300,
            message_timeout: 600,
            max_errors: 10,
            shutdown_grace: 30,
            tls_cert: None,
            tls_key: None,
            listeners: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawListener {
    pub address: String,
    #[serde(default = "default_listener_tls")]
    pub tls: String,
    #[serde(default = "default_listener_auth")]
    pub auth: String,
    #[serde(default)]
    pub allowed_clients: Vec<String>,
}

fn default_listener_tls() -> String {
    "none".into()
}

fn default_listener_auth() -> String {
    "none".into()
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSenders {
    pub check: String,
}

impl Default for RawSenders {
    fn default() -> Self {
        RawSenders { check: "both".into() }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawDocuments {
    pub paper: String,
    pub body: String,
    pub max_pages: u32,
    pub min_image_pixels: u64,
    pub max_message_pixels: u64,
    pub office_converter: String,
    pub office_timeout: u64,
}

impl Default for RawDocuments {
    fn default() -> Self {
        RawDocuments {
            paper: "letter".into(),
            body: "ignore".into(),
            max_pages: 200,
            min_image_pixels: 40_000,
            max_message_pixels: crate::documents::DEFAULT_MAX_MESSAGE_PIXELS,
            office_converter: "soffice".into(),
            office_timeout: 120,
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawFax {
    pub backend: String,
    pub header_text: String,
    pub resolution: String,
    pub allowed_countries: Vec<String>,
    pub denied_prefixes: Vec<String>,
    pub max_queue_lifetime: u64,
    pub report_poll_after: u64,
    pub workers: usize,
    pub sinch: RawSinch,
    pub outbox: RawOutbox,
}

impl Default for RawFax {
    fn default() -> Self {
        RawFax {
            backend: "outbox".into(),
            header_text: String::new(),
            resolution: "FINE".into(),
            allowed_countries: Vec::new(),
            denied_prefixes: vec!["+1900".into(), "+1976".into()],
            max_queue_lifetime: 432_000,
            report_poll_after: 1800,
            workers: 4,
            sinch: RawSinch::default(),
            outbox: RawOutbox::default(),
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSinch {
    pub project_id: String,
    pub service_id: String,
    pub key_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_secret_file: Option<PathBuf>,
    pub auth: String,
    pub api_url: String,
    pub auth_url: String,
    pub request_timeout: u64,
}

impl Default for RawSinch {
    fn default() -> Self {
        RawSinch {
            project_id: String::new(),
            service_id: String::new(),
            key_id: String::new(),
            key_secret: None,
            key_secret_file: None,
            auth: "oauth2".into(),
            api_url: "https://fax.api.sinch.com".into(),
            auth_url: "https://auth.sinch.com/oauth2/token".into(),
            request_timeout: 60,
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawOutbox {
    pub dir: PathBuf,
}

impl Default for RawOutbox {
    fn default() -> Self {
        RawOutbox { dir: "outbox".into() }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawWebhooks {
    pub address: String,
    pub public_url: String,
    pub username: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    pub max_body_size: u64,
}

impl Default for RawWebhooks {
    fn default() -> Self {
        RawWebhooks {
            address: "127.0.0.1:8080".into(),
            public_url: "https://fax.example.com/webhooks/sinch".into(),
            username: "sinch".into(),
            password: None,
            password_file: None,
            tls_cert: None,
            tls_key: None,
            max_body_size: 52_428_800,
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRelay {
    pub backend: String,
    pub host: String,
    pub port: u16,
    pub tls: String,
    pub username: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    pub from: String,
    pub postmaster: String,
    pub ca_file: String,
    pub maildir: PathBuf,
}

impl Default for RawRelay {
    fn default() -> Self {
        RawRelay {
            backend: "maildir".into(),
            host: "smtp.example.com".into(),
            port: 587,
            tls: "starttls".into(),
            username: String::new(),
            password: None,
            password_file: None,
            from: "fax@fax.example.com".into(),
            postmaster: String::new(),
            ca_file: String::new(),
            maildir: "maildir".into(),
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawNotifications {
    pub on_success: bool,
    pub on_failure: bool,
    pub attach_copy: bool,
}

impl Default for RawNotifications {
    fn default() -> Self {
        RawNotifications { on_success: true, on_failure: true, attach_copy: false }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawApi {
    pub address: String,
    pub username: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    pub project_id: String,
}

impl Default for RawApi {
    fn default() -> Self {
        RawApi {
            address: "127.0.0.1:8025".into(),
            username: "admin".into(),
            password: None,
            password_file: None,
            project_id: "local".into(),
        }
    }
}
