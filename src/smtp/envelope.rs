//! MAIL FROM and RCPT TO: the session's checks on order, limits and parameters, then
//! the handler's decision on each address.

use smtp_proto::{MailFrom, RcptTo};
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{debug, info};

use super::reply::{self, quote};
use super::session::{Session, SessionEnd, State, Transaction};
use super::{Handler, Reply};
use crate::config::AuthMode;

impl<S, H> Session<S, H>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    H: Handler,
{
    /// Handles MAIL FROM. The parser accepts `<>`, a space after the colon, and the
    /// parameters `SIZE=`, `BODY=`, `SMTPUTF8` and `AUTH=`; only SIZE is checked here.
    pub(super) async fn mail(&mut self, from: MailFrom<String>) -> Result<(), SessionEnd> {
        match self.state {
            State::AwaitingHelo => return self.reply(reply::bad_sequence("send EHLO or HELO first")),
            State::Mail(_) => {
                return self.reply(reply::bad_sequence("sender already given, send RSET to start over"));
            }
            State::Ready => {}
        }
        if self.listener_auth == AuthMode::Required && self.info.auth_identity.is_none() {
            debug!("MAIL before AUTH");
            let hint = if self.info.tls { "send AUTH first" } else { "send STARTTLS, then AUTH" };
            return self.reply(Reply::new(530, "5.7.0", format!("Authentication required, {hint}")));
        }
        let max_size = self.context.settings.max_message_size;
        let declared_size = from.size as u64;
        if declared_size > max_size {
            info!(reverse_path = %from.address, declared_size, "sender rejected, message too large");
            return self.reply(reply::message_too_large(declared_size, max_size));
        }
        let reverse_path = from.address;
        match self.context.handler.mail_from(&self.info, &reverse_path).await {
            Ok(()) => {
                debug!(reverse_path = %reverse_path, "sender accepted");
                let text = format!("sender <{}> OK", quote(reverse_path.as_bytes()));
                self.state = State::Mail(Transaction { reverse_path, recipients: Vec::new(), chunks: None });
                self.reply(Reply::new(250, "2.1.0", text))
            }
            Err(rejection) => {
                info!(reverse_path = %reverse_path, reply = %rejection, "sender rejected");
                self.reply(rejection)
            }
        }
    }

    /// Handles RCPT TO. A recipient already accepted is acknowledged again but kept once.
    pub(super) async fn rcpt(&mut self, to: RcptTo<String>) -> Result<(), SessionEnd> {
        let max_recipients = self.context.settings.max_recipients;
        let State::Mail(transaction) = &mut self.state else {
            return self.reply(reply::bad_sequence("send MAIL first"));
        };
        if transaction.chunks.is_some() {
            return self.reply(reply::bad_sequence("RCPT cannot follow BDAT in a transaction"));
        }
        let forward_path = to.address;
        if transaction.recipients.len() >= max_recipients {
            info!(forward_path = %forward_path, max_recipients, "recipient rejected, too many recipients");
            return self.reply(Reply::new(452, "4.5.3", format!("too many recipients (limit {max_recipients})")));
        }
        let decision = self.context.handler.rcpt_to(&self.info, &transaction.reverse_path, &forward_path).await;
        match decision {
            Ok(recipient) => {
                debug!(forward_path = %forward_path, recipient = %recipient, "recipient accepted");
                let text = format!("recipient <{}> OK, {recipient}", quote(forward_path.as_bytes()));
                if !transaction.recipients.contains(&recipient) {
                    transaction.recipients.push(recipient);
                }
                self.reply(Reply::new(250, "2.1.5", text))
            }
            Err(rejection) => {
                info!(forward_path = %forward_path, reply = %rejection, "recipient rejected");
                self.reply(rejection)
            }
        }
    }
}
