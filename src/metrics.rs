//! Process-wide counters, served in the Prometheus text format on `GET /metrics`.
//!
//! Counters live in one static registry so every module can count without passing a
//! handle around. They start at zero with each process; Prometheus handles the reset.
//! The queue gauge is not stored here: the caller reads it from the store at scrape time.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Mutex, OnceLock};

/// Counter families, each keyed by its label values.
#[derive(Default)]
struct Registry {
    smtp_messages: BTreeMap<(String, String), u64>,
    faxes: BTreeMap<String, u64>,
    webhooks: BTreeMap<String, u64>,
    relay_deliveries: BTreeMap<String, u64>,
}

fn registry() -> &'static Mutex<Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(Mutex::default)
}

fn update(change: impl FnOnce(&mut Registry)) {
    // A panic while the lock was held cannot leave a counter half-written, so a
    // poisoned lock is still safe to use.
    let mut registry = registry().lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    change(&mut registry);
}

/// Counts an SMTP message decision: `result` is `accepted` or `rejected`, `reason` a
/// short fixed word such as `sender`, `document` or `size` (empty when accepted).
pub fn smtp_message(result: &str, reason: &str) {
    update(|r| *r.smtp_messages.entry((result.to_string(), reason.to_string())).or_default() += 1);
}

/// Counts a fax reaching `status`: `submitted`, `completed` or `failed`.
pub fn fax(status: &str) {
    update(|r| *r.faxes.entry(status.to_string()).or_default() += 1);
}

/// Counts a webhook request by its `event`, such as `INCOMING_FAX`.
pub fn webhook(event: &str) {
    update(|r| *r.webhooks.entry(event.to_string()).or_default() += 1);
}

/// Counts an outgoing email delivery attempt by `result`: `delivered`, `deferred` or `failed`.
pub fn relay_delivery(result: &str) {
    update(|r| *r.relay_deliveries.entry(result.to_string()).or_default() += 1);
}

/// One row of the `faxgate_queue_jobs` gauge.
#[derive(Debug, Clone)]
pub struct QueueGauge {
    pub kind: String,
    pub state: String,
    pub jobs: u64,
}

/// Renders every counter and the given queue gauge rows in the Prometheus text format.
pub fn render(queue: &[QueueGauge]) -> String {
    let registry = registry().lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut out = String::new();

    header(&mut out, "faxgate_smtp_messages_total", "counter", "SMTP messages by decision; a refusal at RCPT counts once per refused recipient.");
    for ((result, reason), value) in &registry.smtp_messages {
        let _ = writeln!(
            out,
            "faxgate_smtp_messages_total{{result=\"{}\",reason=\"{}\"}} {value}",
            escape(result),
            escape(reason)
        );
    }
    family(&mut out, "faxgate_faxes_total", "Faxes by status reached.", "status", &registry.faxes);
    family(&mut out, "faxgate_webhooks_total", "Webhook requests by event.", "event", &registry.webhooks);
    family(
        &mut out,
        "faxgate_relay_deliveries_total",
        "Outgoing email deliveries by result.",
        "result",
        &registry.relay_deliveries,
    );

    header(&mut out, "faxgate_queue_jobs", "gauge", "Jobs in the queue by kind and state.");
    for row in queue {
        let _ = writeln!(
            out,
            "faxgate_queue_jobs{{kind=\"{}\",state=\"{}\"}} {}",
            escape(&row.kind),
            escape(&row.state),
            row.jobs
        );
    }
    out
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn family(out: &mut String, name: &str, help: &str, label: &str, values: &BTreeMap<String, u64>) {
    header(out, name, "counter", help);
    for (key, value) in values {
        let _ = writeln!(out, "{name}{{{label}=\"{}\"}} {value}", escape(key));
    }
}

/// Escapes a label value as the text format requires: backslash, quote and newline.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_with_labels() {
        smtp_message("accepted", "");
        smtp_message("rejected", "sender");
        fax("submitted");
        webhook("INCOMING_FAX");
        relay_delivery("delivered");
        let text = render(&[QueueGauge { kind: "fax".into(), state: "queued".into(), jobs: 2 }]);
        assert!(text.contains("faxgate_smtp_messages_total{result=\"rejected\",reason=\"sender\"}"), "{text}");
        assert!(text.contains("faxgate_faxes_total{status=\"submitted\"}"), "{text}");
        assert!(text.contains("faxgate_webhooks_total{event=\"INCOMING_FAX\"}"), "{text}");
        assert!(text.contains("faxgate_relay_deliveries_total{result=\"delivered\"}"), "{text}");
        assert!(text.contains("faxgate_queue_jobs{kind=\"fax\",state=\"queued\"} 2"), "{text}");
        assert!(text.contains("# TYPE faxgate_queue_jobs gauge"), "{text}");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
