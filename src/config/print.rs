//! The settings turned back into the shape of the file, for `check-config`. The
//! printed text uses the same tables and keys as the file, so it can be read again and
//! gives the same settings, except that an inline secret is printed as `********`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::raw::{
    RawApi, RawConfig, RawDocuments, RawFax, RawGateway, RawListener, RawNotifications, RawOutbox, RawRelay,
    RawSenders, RawSinch, RawSmtp, RawWebhooks,
};
use super::settings::*;

/// Builds the file form of `config`. Paths are the resolved ones, so the output does
/// not depend on the folder it is read from, except that the outbox and maildir stay
/// relative to `data_dir` when they are inside it.
pub(super) fn to_raw(config: &Config) -> RawConfig {
    let data_dir = &config.gateway.data_dir;
    RawConfig {
        gateway: RawGateway {
            hostname: config.gateway.hostname.clone(),
            domains: config.gateway.domains.clone(),
            default_region: config.gateway.default_region.as_ref().to_string(),
            data_dir: data_dir.clone(),
            database_url: None,
        },
        smtp: smtp(&config.smtp),
        senders: RawSenders { check: enum_name(&config.senders.check) },
        documents: RawDocuments {
            paper: enum_name(&config.documents.paper),
            body: enum_name(&config.documents.body),
            max_pages: config.documents.max_pages,
            min_image_pixels: config.documents.min_image_pixels,
            max_message_pixels: config.documents.max_message_pixels,
            office_converter: config.documents.office_converter.clone(),
            office_timeout: secs(config.documents.office_timeout),
        },
        fax: fax(&config.fax, data_dir),
        webhooks: webhooks(&config.webhooks),
        relay: relay(&config.relay, data_dir),
        notifications: RawNotifications {
            on_success: config.notifications.on_success,
            on_failure: config.notifications.on_failure,
            attach_copy: config.notifications.attach_copy,
        },
        api: RawApi {
            address: config.api.address.to_string(),
            username: config.api.username.clone(),
            password: inline_secret(&config.api.password),
            password_file: secret_file(&config.api.password),
            project_id: config.api.project_id.clone(),
        },
    }
}

fn smtp(smtp: &Smtp) -> RawSmtp {
    let listeners = smtp
        .listeners
        .iter()
        .map(|listener| RawListener {
            address: listener.address.to_string(),
            tls: enum_name(&listener.tls),
            auth: enum_name(&listener.auth),
            allowed_clients: listener.allowed_clients.iter().map(ToString::to_string).collect(),
        })
        .collect();
    RawSmtp {
        max_message_size: smtp.max_message_size,
        max_recipients: smtp.max_recipients,
        max_connections: smtp.max_connections,
        max_connections_per_ip: smtp.max_connections_per_ip,
        command_timeout: secs(smtp.command_timeout),
        message_timeout: secs(smtp.message_timeout),
        max_errors: smtp.max_errors,
        shutdown_grace: secs(smtp.shutdown_grace),
        tls_cert: smtp.tls_cert.clone(),
        tls_key: smtp.tls_key.clone(),
        listeners,
    }
}

fn fax(fax: &Fax, data_dir: &Path) -> RawFax {
    let sinch = &fax.sinch;
    RawFax {
        backend: enum_name(&fax.backend),
        header_text: fax.header_text.clone(),
        resolution: fax.resolution.as_str().to_string(),
        allowed_countries: fax.allowed_countries.clone(),
        denied_prefixes: fax.denied_prefixes.clone(),
        max_queue_lifetime: secs(fax.max_queue_lifetime),
        report_poll_after: secs(fax.report_poll_after),
        workers: fax.workers,
        sinch: RawSinch {
            project_id: sinch.project_id.clone(),
            service_id: sinch.service_id.clone(),
            key_id: sinch.key_id.clone(),
            key_secret: inline_secret(&sinch.key_secret),
            key_secret_file: secret_file(&sinch.key_secret),
            auth: enum_name(&sinch.auth),
            api_url: sinch.api_url.clone(),
            auth_url: sinch.auth_url.clone(),
            request_timeout: secs(sinch.request_timeout),
        },
        outbox: RawOutbox { dir: relative_to(data_dir, &fax.outbox_dir) },
    }
}

fn webhooks(webhooks: &Webhooks) -> RawWebhooks {
    RawWebhooks {
        address: webhooks.address.to_string(),
        public_url: webhooks.public_url.clone(),
        username: webhooks.username.clone(),
        password: inline_secret(&webhooks.password),
        password_file: secret_file(&webhooks.password),
        tls_cert: webhooks.tls_cert.clone(),
        tls_key: webhooks.tls_key.clone(),
        max_body_size: webhooks.max_body_size,
    }
}

fn relay(relay: &Relay, data_dir: &Path) -> RawRelay {
    RawRelay {
        backend: enum_name(&relay.backend),
        host: relay.host.clone(),
        port: relay.port,
        tls: enum_name(&relay.tls),
        username: relay.username.clone(),
        password: inline_secret(&relay.password),
        password_file: secret_file(&relay.password),
        from: relay.from.clone(),
        postmaster: relay.postmaster.clone(),
        ca_file: relay.ca_file.as_ref().map(|path| path.display().to_string()).unwrap_or_default(),
        maildir: relative_to(data_dir, &relay.maildir),
    }
}

/// Returns the masked value of a secret given inline, and nothing for one read from
/// its `<key>_file`, which is printed instead.
fn inline_secret(secret: &Secret) -> Option<String> {
    if secret.file().is_some() || secret.is_empty() {
        return None;
    }
    Some(secret.masked().to_string())
}

fn secret_file(secret: &Secret) -> Option<PathBuf> {
    secret.file().map(Path::to_path_buf)
}

/// Returns the name a settings enum has in the file, from its `Serialize` form.
fn enum_name<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => String::new(),
    }
}

fn secs(duration: Duration) -> u64 {
    duration.as_secs()
}

fn relative_to(base: &Path, path: &Path) -> PathBuf {
    match path.strip_prefix(base) {
        Ok(relative) if !relative.as_os_str().is_empty() => relative.to_path_buf(),
        _ => path.to_path_buf(),
    }
}
