//! Sending one fax message to a test daemon over SMTP, for the tests that look at
//! what the message changes elsewhere (the API, the metrics, the queue commands).

#![allow(dead_code)]

use std::net::SocketAddr;

use super::daemon::DOMAIN;
use super::pdf::{LETTER, make_pdf, message_with_pdfs};
use super::smtp_client::{Client, Reply};

/// Returns a message from `from` to `<number>@DOMAIN` with a one-page PDF attached.
pub fn fax_message(from: &str, number: &str) -> Vec<u8> {
    message_with_pdfs(from, &recipient(number), "", &[("page.pdf", make_pdf(&[LETTER]))])
}

/// Returns the recipient address of a fax to `number`, such as `14155552222@fax.example.com`.
pub fn recipient(number: &str) -> String {
    format!("{}@{DOMAIN}", number.trim_start_matches('+'))
}

/// Sends a one-page fax from `from` to `number` and returns the first negative reply,
/// or the reply to the message.
pub fn send_fax(smtp: SocketAddr, from: &str, number: &str) -> Reply {
    let (mut client, greeting) = Client::connect(smtp);
    assert_eq!(greeting.code, 220, "{greeting:?}");
    assert_eq!(client.command("EHLO client.example").code, 250);
    let mail = client.command(&format!("MAIL FROM:<{from}>"));
    if mail.code != 250 {
        return mail;
    }
    let rcpt = client.command(&format!("RCPT TO:<{}>", recipient(number)));
    if rcpt.code != 250 {
        return rcpt;
    }
    let (start, end) = client.data(&fax_message(from, number));
    let reply = end.unwrap_or(start);
    let _ = client.command("QUIT");
    reply
}

/// Returns the job ids of a `250 2.0.0 queued as <id>[,<id>...]` reply.
pub fn queued_ids(reply: &Reply) -> Vec<String> {
    let ids = reply.text.rsplit("queued as ").next().unwrap_or("");
    ids.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
}
