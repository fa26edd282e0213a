//! Checked settings: what the rest of the daemon reads. Built from the raw file by
//! [`validate`], which is the only place a configuration value is interpreted.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use serde::Serialize;

use super::InvalidKey;
use super::raw::{self, RawConfig};

#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub gateway: Gateway,
    pub smtp: Smtp,
    pub senders: Senders,
    pub documents: Documents,
    pub fax: Fax,
    pub webhooks: Webhooks,
    pub relay: Relay,
    pub notifications: Notifications,
    pub api: Api,
}

#[derive(Debug, Clone, Serialize)]
pub struct Gateway {
    pub hostname: String,
    /// Recipient domains, lower case.
    pub domains: Vec<String>,
    #[serde(serialize_with = "serialize_region")]
    pub default_region: phonenumber::country::Id,
    pub data_dir: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
pub struct Smtp {
    /// Maximum message size in bytes, advertised with SIZE and counted during DATA and
    /// BDAT; larger messages get `552 5.3.4`.
    pub max_message_size: u64,
    /// Maximum recipients per message; more get `452 4.5.3`.
    pub max_recipients: usize,
    /// Maximum open SMTP connections over all listeners; more get `421 4.7.0`.
    pub max_connections: usize,
    /// Maximum open SMTP connections from one client IP address; more get `421 4.7.0`.
    pub max_connections_per_ip: usize,
    /// Maximum wait for the next command line, or for more data inside DATA or BDAT.
    #[serde(serialize_with = "serialize_secs")]
    pub command_timeout: Duration,
    /// Maximum time from the first byte of DATA or BDAT to the end of the message.
    #[serde(serialize_with = "serialize_secs")]
    pub message_timeout: Duration,
    /// Failed commands after which a session is closed with `421 4.7.0`.
    pub max_errors: u32,
    /// How long open sessions may go on after SIGTERM before they are cut.
    #[serde(serialize_with = "serialize_secs")]
    pub shutdown_grace: Duration,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub listeners: Vec<Listener>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Listener {
    pub address: SocketAddr,
    pub tls: TlsMode,
    pub auth: AuthMode,
    /// Client networks allowed to connect; empty allows all.
    pub allowed_clients: Vec<IpNet>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    None,
    Starttls,
    Implicit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    None,
    Optional,
    Required,
}

#[derive(Debug, Clone, Serialize)]
pub struct Senders {
    pub check: SenderCheck,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SenderCheck {
    /// The envelope sender and the header `From` must both be the mapped address.
    Both,
    /// Only the envelope sender is checked.
    Envelope,
}

#[derive(Debug, Clone, Serialize)]
pub struct Documents {
    pub paper: Paper,
    pub body: BodyMode,
    pub max_pages: u32,
    pub min_image_pixels: u64,
    /// Maximum pixels of all images and TIFF pages of one message together.
    pub max_message_pixels: u64,
    pub office_converter: String,
    #[serde(serialize_with = "serialize_secs")]
    pub office_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Paper {
    Letter,
    A4,
}

impl Paper {
    /// Page size in PDF points (1/72 inch), portrait.
    pub fn size_points(self) -> (f32, f32) {
        match self {
            Paper::Letter => (612.0, 792.0),
            Paper::A4 => (595.28, 841.89),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BodyMode {
    Ignore,
    Cover,
}

#[derive(Debug, Clone, Serialize)]
pub struct Fax {
    pub backend: FaxBackendKind,
    pub header_text: String,
    pub resolution: Resolution,
    /// ISO 3166 regions numbers may be faxed to, upper case; empty allows all.
    pub allowed_countries: Vec<String>,
    /// E.164 prefixes that may not be faxed to, each starting with `+`.
    pub denied_prefixes: Vec<String>,
    #[serde(serialize_with = "serialize_secs")]
    pub max_queue_lifetime: Duration,
    #[serde(serialize_with = "serialize_secs")]
    pub report_poll_after: Duration,
    /// Jobs submitted at the same time.
    pub workers: usize,
    pub sinch: Sinch,
    /// Folder the outbox backend writes to, resolved against `data_dir`.
    pub outbox_dir: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FaxBackendKind {
    Outbox,
    Sinch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Resolution {
    Fine,
    Superfine,
}

impl Resolution {
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Fine => "FINE",
            Resolution::Superfine => "SUPERFINE",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Sinch {
    pub project_id: String,
    pub service_id: String,
    pub key_id: String,
    pub key_secret: Secret,
    pub auth: SinchAuth,
    pub api_url: String,
    pub auth_url: String,
    #[serde(serialize_with = "serialize_secs")]
    pub request_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SinchAuth {
    Oauth2,
    Basic,
}

#[derive(Debug, Clone, Serialize)]
pub struct Webhooks {
    pub address: SocketAddr,
    pub public_url: String,
    pub username: String,
    pub password: Secret,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub max_body_size: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Relay {
    pub backend: RelayBackendKind,
    pub host: String,
    pub port: u16,
    pub tls: RelayTls,
    pub username: String,
    pub password: Secret,
    pub from: String,
    pub postmaster: String,
    pub ca_file: Option<PathBuf>,
    /// Maildir the maildir backend writes to, resolved against `data_dir`.
    pub maildir: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RelayBackendKind {
    Maildir,
    Smtp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RelayTls {
    Starttls,
    Implicit,
}

#[derive(Debug, Clone, Serialize)]
pub struct Notifications {
    pub on_success: bool,
    pub on_failure: bool,
    pub attach_copy: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Api {
    pub address: SocketAddr,
    pub username: String,
    pub password: Secret,
    pub project_id: String,
}

/// A password or key. Its `Debug` and `Serialize` output is masked so that it cannot
/// reach a log line or the output of `check-config`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret {
    value: String,
    /// The `<key>_file` the value was read from, printed by `check-config` in place of
    /// the masked value.
    file: Option<PathBuf>,
}

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret { value: value.into(), file: None }
    }

    pub fn expose(&self) -> &str {
        &self.value
    }

    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }

    pub(super) fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    pub(super) fn masked(&self) -> &'static str {
        if self.value.is_empty() { "" } else { "********" }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.masked())
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.masked())
    }
}

impl Config {
    /// Formats the configuration as a TOML file with the keys and tables of the file
    /// read, every inline secret replaced by `********`.
    pub fn to_masked_toml(&self) -> String {
        let raw = super::print::to_raw(self);
        toml::to_string_pretty(&raw).unwrap_or_else(|err| format!("# cannot print: {err}\n"))
    }

    /// Returns the path of the SQLite database file.
    pub fn database_path(&self) -> PathBuf {
        self.gateway.data_dir.join("faxgate.db")
    }

    /// Returns the folder where accepted documents wait until their jobs end.
    pub fn spool_dir(&self) -> PathBuf {
        self.gateway.data_dir.join("spool")
    }

    /// Reports whether `domain` (compared case-insensitively) is a gateway domain.
    pub fn is_gateway_domain(&self, domain: &str) -> bool {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        self.gateway.domains.iter().any(|d| *d == domain)
    }
}

fn serialize_secs<S: serde::Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(value.as_secs())
}

fn serialize_region<S: serde::Serializer>(
    value: &phonenumber::country::Id,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(value.as_ref())
}

/// Checks every value of `raw` and builds the settings. Relative paths are resolved
/// against `base`, the folder of the configuration file.
pub(super) fn validate(raw: RawConfig, base: &Path) -> Result<Config, InvalidKey> {
    let data_dir = resolve(base, &raw.gateway.data_dir);
    let gateway = gateway(raw.gateway, data_dir.clone())?;
    let smtp = smtp(raw.smtp, base)?;
    let senders = Senders {
        check: choose("senders.check", &raw.senders.check, &[
            ("both", SenderCheck::Both),
            ("envelope", SenderCheck::Envelope),
        ])?,
    };
    let documents = documents(raw.documents)?;
    let fax = fax(raw.fax, base, &data_dir)?;
    let webhooks = webhooks(raw.webhooks, base)?;
    let relay = relay(raw.relay, base, &data_dir)?;
    let notifications = Notifications {
        on_success: raw.notifications.on_success,
        on_failure: raw.notifications.on_failure,
        attach_copy: raw.notifications.attach_copy,
    };
    let api = Api {
        address: socket_addr("api.address", &raw.api.address)?,
        username: raw.api.username,
        password: secret("api.password", raw.api.password, raw.api.password_file, base)?,
        project_id: non_empty("api.project_id", raw.api.project_id)?,
    };
    let config = Config { gateway, smtp, senders, documents, fax, webhooks, relay, notifications, api };
    super::checks::check_addresses(&config)?;
    Ok(config)
}

fn gateway(raw: raw::RawGateway, data_dir: PathBuf) -> Result<Gateway, InvalidKey> {
    if raw.database_url.is_some() {
        return Err(InvalidKey::new(
            "gateway.database_url",
            "a shared database is not supported yet; remove the key to use the embedded store in data_dir",
        ));
    }
    let hostname = non_empty("gateway.hostname", raw.hostname)?;
    if raw.domains.is_empty() {
        return Err(InvalidKey::new("gateway.domains", "list at least one recipient domain"));
    }
    let mut domains = Vec::new();
    for domain in raw.domains {
        let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
        if domain.is_empty() || domain.contains(['@', ' ']) {
            return Err(InvalidKey::new(
                "gateway.domains",
                format!("{domain:?} is not a domain name such as \"fax.example.com\""),
            ));
        }
        domains.push(domain);
    }
    let default_region = phonenumber::country::Id::from_str(&raw.default_region.to_ascii_uppercase())
        .map_err(|_| {
            InvalidKey::new(
                "gateway.default_region",
                format!("{:?} is not an ISO 3166 region code such as \"US\" or \"DE\"", raw.default_region),
            )
        })?;
    Ok(Gateway { hostname, domains, default_region, data_dir })
}

fn smtp(raw: raw::RawSmtp, base: &Path) -> Result<Smtp, InvalidKey> {
    positive("smtp.max_message_size", raw.max_message_size)?;
    positive("smtp.max_recipients", raw.max_recipients as u64)?;
    positive("smtp.max_connections", raw.max_connections as u64)?;
    positive("smtp.max_connections_per_ip", raw.max_connections_per_ip as u64)?;
    positive("smtp.command_timeout", raw.command_timeout)?;
    positive("smtp.message_timeout", raw.message_timeout)?;
    positive("smtp.max_errors", raw.max_errors as u64)?;
    let tls_cert = raw.tls_cert.map(|p| resolve(base, &p));
    let tls_key = raw.tls_key.map(|p| resolve(base, &p));
    if tls_cert.is_some() != tls_key.is_some() {
        return Err(InvalidKey::new("smtp.tls_cert", "set both smtp.tls_cert and smtp.tls_key, or neither"));
    }
    let mut listeners = Vec::new();
    for (i, l) in raw.listeners.into_iter().enumerate() {
        let key = |name: &str| format!("smtp.listeners[{i}].{name}");
        let address = socket_addr(&key("address"), &l.address)?;
        let tls = choose(&key("tls"), &l.tls, &[
            ("none", TlsMode::None),
            ("starttls", TlsMode::Starttls),
            ("implicit", TlsMode::Implicit),
        ])?;
        let auth = choose(&key("auth"), &l.auth, &[
            ("none", AuthMode::None),
            ("optional", AuthMode::Optional),
            ("required", AuthMode::Required),
        ])?;
        if tls != TlsMode::None && tls_cert.is_none() {
            return Err(InvalidKey::new(
                "smtp.tls_cert",
                format!("listener {} uses tls = {:?}; set smtp.tls_cert and smtp.tls_key", l.address, l.tls),
            ));
        }
        if auth != AuthMode::None && tls == TlsMode::None {
            return Err(InvalidKey::new(
                &key("auth"),
                "AUTH is offered only over TLS; set tls = \"starttls\" or \"implicit\" on this listener",
            ));
        }
        let mut allowed_clients = Vec::new();
        for net in &l.allowed_clients {
            allowed_clients.push(parse_net(net).ok_or_else(|| {
                InvalidKey::new(
                    &key("allowed_clients"),
                    format!("{net:?} is not an address or network such as \"192.0.2.0/24\""),
                )
            })?);
        }
        listeners.push(Listener { address, tls, auth, allowed_clients });
    }
    Ok(Smtp {
        max_message_size: raw.max_message_size,
        max_recipients: raw.max_recipients,
        max_connections: raw.max_connections,
        max_connections_per_ip: raw.max_connections_per_ip,
        command_timeout: Duration::from_secs(raw.command_timeout),
        message_timeout: Duration::from_secs(raw.message_timeout),
        max_errors: raw.max_errors,
        shutdown_grace: Duration::from_secs(raw.shutdown_grace),
        tls_cert,
        tls_key,
        listeners,
    })
}

fn documents(raw: raw::RawDocuments) -> Result<Documents, InvalidKey> {
    positive("documents.max_pages", raw.max_pages as u64)?;
    positive("documents.office_timeout", raw.office_timeout)?;
    positive("documents.max_message_pixels", raw.max_message_pixels)?;
    Ok(Documents {
        paper: choose("documents.paper", &raw.paper, &[("letter", Paper::Letter), ("a4", Paper::A4)])?,
        body: choose("documents.body", &raw.body, &[("ignore", BodyMode::Ignore), ("cover", BodyMode::Cover)])?,
        max_pages: raw.max_pages,
        min_image_pixels: raw.min_image_pixels,
        max_message_pixels: raw.max_message_pixels,
        office_converter: raw.office_converter,
        office_timeout: Duration::from_secs(raw.office_timeout),
    })
}

fn fax(raw: raw::RawFax, base: &Path, data_dir: &Path) -> Result<Fax, InvalidKey> {
    let backend = choose("fax.backend", &raw.backend, &[
        ("outbox", FaxBackendKind::Outbox),
        ("sinch", FaxBackendKind::Sinch),
    ])?;
    if raw.header_text.chars().count() > 50 {
        return Err(InvalidKey::new("fax.header_text", "the fax API takes at most 50 characters"));
    }
    let resolution = choose("fax.resolution", &raw.resolution, &[
        ("FINE", Resolution::Fine),
        ("SUPERFINE", Resolution::Superfine),
    ])?;
    let mut allowed_countries = Vec::new();
    for region in raw.allowed_countries {
        let upper = region.trim().to_ascii_uppercase();
        if phonenumber::country::Id::from_str(&upper).is_err() {
            return Err(InvalidKey::new(
                "fax.allowed_countries",
                format!("{region:?} is not an ISO 3166 region code such as \"US\""),
            ));
        }
        allowed_countries.push(upper);
    }
    let mut denied_prefixes = Vec::new();
    for prefix in raw.denied_prefixes {
        let digits = prefix.strip_prefix('+').unwrap_or("");
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(InvalidKey::new(
                "fax.denied_prefixes",
                format!("{prefix:?} is not an E.164 prefix such as \"+1900\""),
            ));
        }
        denied_prefixes.push(prefix);
    }
    positive("fax.max_queue_lifetime", raw.max_queue_lifetime)?;
    positive("fax.workers", raw.workers as u64)?;
    let sinch = raw.sinch;
    let key_secret = secret("fax.sinch.key_secret", sinch.key_secret, sinch.key_secret_file, base)?;
    if backend == FaxBackendKind::Sinch {
        for (key, value) in [
            ("fax.sinch.project_id", &sinch.project_id),
            ("fax.sinch.key_id", &sinch.key_id),
            ("fax.sinch.api_url", &sinch.api_url),
        ] {
            if value.trim().is_empty() {
                return Err(InvalidKey::new(key, "required when fax.backend = \"sinch\""));
            }
        }
        if key_secret.is_empty() {
            return Err(InvalidKey::new(
                "fax.sinch.key_secret",
                "required when fax.backend = \"sinch\"; set it or key_secret_file",
            ));
        }
    }
    let auth = choose("fax.sinch.auth", &sinch.auth, &[("oauth2", SinchAuth::Oauth2), ("basic", SinchAuth::Basic)])?;
    positive("fax.sinch.request_timeout", sinch.request_timeout)?;
    Ok(Fax {
        backend,
        header_text: raw.header_text,
        resolution,
        allowed_countries,
        denied_prefixes,
        max_queue_lifetime: Duration::from_secs(raw.max_queue_lifetime),
        report_poll_after: Duration::from_secs(raw.report_poll_after),
        workers: raw.workers,
        sinch: Sinch {
            project_id: sinch.project_id,
            service_id: sinch.service_id,
            key_id: sinch.key_id,
            key_secret,
            auth,
            api_url: sinch.api_url.trim_end_matches('/').to_string(),
            auth_url: sinch.auth_url,
            request_timeout: Duration::from_secs(sinch.request_timeout),
        },
        outbox_dir: resolve(data_dir, &raw.outbox.dir),
    })
}

fn webhooks(raw: raw::RawWebhooks, base: &Path) -> Result<Webhooks, InvalidKey> {
    let tls_cert = raw.tls_cert.map(|p| resolve(base, &p));
    let tls_key = raw.tls_key.map(|p| resolve(base, &p));
    if tls_cert.is_some() != tls_key.is_some() {
        return Err(InvalidKey::new("webhooks.tls_cert", "set both webhooks.tls_cert and webhooks.tls_key, or neither"));
    }
    if !(raw.public_url.starts_with("https://") || raw.public_url.starts_with("http://")) {
        return Err(InvalidKey::new(
            "webhooks.public_url",
            format!("{:?} is not an http:// or https:// URL", raw.public_url),
        ));
    }
    positive("webhooks.max_body_size", raw.max_body_size)?;
    Ok(Webhooks {
        address: socket_addr("webhooks.address", &raw.address)?,
        public_url: raw.public_url,
        username: raw.username,
        password: secret("webhooks.password", raw.password, raw.password_file, base)?,
        tls_cert,
        tls_key,
        max_body_size: raw.max_body_size,
    })
}

fn relay(raw: raw::RawRelay, base: &Path, data_dir: &Path) -> Result<Relay, InvalidKey> {
    let backend = choose("relay.backend", &raw.backend, &[
        ("maildir", RelayBackendKind::Maildir),
        ("smtp", RelayBackendKind::Smtp),
    ])?;
    let tls = choose("relay.tls", &raw.tls, &[("starttls", RelayTls::Starttls), ("implicit", RelayTls::Implicit)])?;
    if backend == RelayBackendKind::Smtp && raw.host.trim().is_empty() {
        return Err(InvalidKey::new("relay.host", "required when relay.backend = \"smtp\""));
    }
    if !raw.from.contains('@') {
        return Err(InvalidKey::new("relay.from", format!("{:?} is not an email address", raw.from)));
    }
    if !raw.postmaster.is_empty() && !raw.postmaster.contains('@') {
        return Err(InvalidKey::new("relay.postmaster", format!("{:?} is not an email address", raw.postmaster)));
    }
    Ok(Relay {
        backend,
        host: raw.host,
        port: raw.port,
        tls,
        username: raw.username,
        password: secret("relay.password", raw.password, raw.password_file, base)?,
        from: raw.from,
        postmaster: raw.postmaster,
        ca_file: (!raw.ca_file.is_empty()).then(|| resolve(base, Path::new(&raw.ca_file))),
        maildir: resolve(data_dir, &raw.maildir),
    })
}

/// Picks the variant whose name equals `value`.
/// Returns the variant named `value`, in any case (`"A4"` as well as `"a4"`).
fn choose<T: Copy>(key: &str, value: &str, variants: &[(&str, T)]) -> Result<T, InvalidKey> {
    variants
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(value))
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let names: Vec<String> = variants.iter().map(|(n, _)| format!("\"{n}\"")).collect();
            InvalidKey::new(key, format!("{value:?} is not one of {}", names.join(", ")))
        })
}

fn positive(key: &str, value: u64) -> Result<(), InvalidKey> {
    if value == 0 {
        return Err(InvalidKey::new(key, "must be greater than 0"));
    }
    Ok(())
}

fn non_empty(key: &str, value: String) -> Result<String, InvalidKey> {
    if value.trim().is_empty() {
        return Err(InvalidKey::new(key, "must not be empty"));
    }
    Ok(value)
}

fn socket_addr(key: &str, value: &str) -> Result<SocketAddr, InvalidKey> {
    value.parse().map_err(|_| {
        InvalidKey::new(key, format!("{value:?} is not an address and port such as \"127.0.0.1:2525\" or \"[::]:25\""))
    })
}

fn parse_net(value: &str) -> Option<IpNet> {
    value.parse::<IpNet>().ok().or_else(|| value.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}

/// Reads a secret given inline or as `<key>_file`; a file's trailing newline is dropped.
fn secret(key: &str, inline: Option<String>, file: Option<PathBuf>, base: &Path) -> Result<Secret, InvalidKey> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(InvalidKey::new(key, format!("set either {key} or {key}_file, not both"))),
        (Some(value), None) => Ok(Secret::new(value)),
        (None, Some(path)) => {
            let path = resolve(base, &path);
            let text = std::fs::read_to_string(&path).map_err(|err| {
                InvalidKey::new(&format!("{key}_file"), format!("cannot read {}: {err}", path.display()))
            })?;
            Ok(Secret { value: text.trim_end_matches(['\n', '\r']).to_string(), file: Some(path) })
        }
        (None, None) => Ok(Secret::default()),
    }
}

fn resolve(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() { path.to_path_buf() } else { base.join(path) }
}
