//! DATA and BDAT: receiving the message within the size and time limits, then passing
//! it to the handler, whose reply is the decision on the message.

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tracing::info;

use super::reply;
use super::session::{Chunks, Session, SessionEnd, State};
use super::transfer::{Body, DotDecoder};
use super::{Handler, Reply};

impl<S, H> Session<S, H>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    H: Handler,
{
    pub(super) async fn data(&mut self) -> Result<(), SessionEnd> {
        let State::Mail(transaction) = &self.state else {
            return self.reply(reply::bad_sequence("send MAIL first"));
        };
        if transaction.chunks.is_some() {
            return self.reply(reply::bad_sequence("DATA cannot follow BDAT in a transaction"));
        }
        if transaction.recipients.is_empty() {
            return self.reply(no_valid_recipients());
        }
        self.queue(&Reply::new(354, "", "End data with <CR><LF>.<CR><LF>"));

        let settings = &self.context.settings;
        let deadline = Instant::now() + settings.message_timeout;
        let mut body = Body::new(settings.max_message_size);
        let mut decoder = DotDecoder::new();
        loop {
            if let Some(used) = decoder.decode(&self.conn.input, &mut body) {
                self.conn.input.drain(..used);
                break;
            }
            self.conn.input.clear();
            self.fill_message(deadline).await?;
        }
        self.decide(body).await;
        Ok(())
    }

    /// Handles `BDAT <chunk_size> [LAST]`. The chunk's bytes follow the command whatever
    /// the reply, so they are read (and dropped on a rejection) before replying.
    pub(super) async fn bdat(&mut self, chunk_size: usize, is_last: bool) -> Result<(), SessionEnd> {
        let chunk_size = chunk_size as u64;
        let settings = &self.context.settings;
        let max_size = settings.max_message_size;
        let new_deadline = Instant::now() + settings.message_timeout;
        let rejection = match &self.state {
            State::Mail(transaction) if transaction.recipients.is_empty() => Some(no_valid_recipients()),
            State::Mail(_) => None,
            State::AwaitingHelo | State::Ready => Some(reply::bad_sequence("send MAIL first")),
        };
        if let Some(rejection) = rejection {
            self.skip_chunk(chunk_size, new_deadline).await?;
            return self.reply(rejection);
        }

        // The chunks leave the state while the bytes are read, so that reading may borrow
        // the session. They go back unless this was the last chunk.
        let State::Mail(transaction) = &mut self.state else {
            return Ok(());
        };
        let mut chunks =
            transaction.chunks.take().unwrap_or_else(|| Chunks { body: Body::new(max_size), deadline: new_deadline });
        if chunks.body.size().saturating_add(chunk_size) > max_size {
            chunks.body.count_dropped(chunk_size);
            let size = chunks.body.size();
            self.skip_chunk(chunk_size, chunks.deadline).await?;
            self.reset_transaction();
            self.messages_rejected += 1;
            info!(size, max_size, "message rejected, too large");
            self.queue(&reply::message_too_large(size, max_size));
            return Ok(());
        }
        self.read_chunk(chunk_size, &mut chunks).await?;

        if is_last {
            self.decide(chunks.body).await;
            return Ok(());
        }
        if let State::Mail(transaction) = &mut self.state {
            transaction.chunks = Some(chunks);
        }
        self.reply(Reply::new(250, "2.0.0", format!("{chunk_size} octets received")))
    }

    async fn read_chunk(&mut self, chunk_size: u64, chunks: &mut Chunks) -> Result<(), SessionEnd> {
        let mut remaining = chunk_size;
        loop {
            let take = self.conn.input.len().min(usize::try_from(remaining).unwrap_or(usize::MAX));
            chunks.body.push(&self.conn.input[..take]);
            self.conn.input.drain(..take);
            remaining -= take as u64;
            if remaining == 0 {
                return Ok(());
            }
            self.fill_message(chunks.deadline).await?;
        }
    }

    async fn skip_chunk(&mut self, chunk_size: u64, deadline: Instant) -> Result<(), SessionEnd> {
        let mut remaining = chunk_size;
        loop {
            let take = self.conn.input.len().min(usize::try_from(remaining).unwrap_or(usize::MAX));
            self.conn.input.drain(..take);
            remaining -= take as u64;
            if remaining == 0 {
                return Ok(());
            }
            self.fill_message(deadline).await?;
        }
    }

    /// Ends the transaction with the decision on the received message: `552 5.3.4`
    /// when it was too large, else the handler's reply.
    async fn decide(&mut self, body: Body) {
        let State::Mail(transaction) = std::mem::replace(&mut self.state, State::Ready) else {
            return;
        };
        let max_size = self.context.settings.max_message_size;
        let size = body.size();
        let recipients = transaction.recipients.len();
        let decision = if body.is_over_limit() {
            reply::message_too_large(size, max_size)
        } else {
            let handler = &self.context.handler;
            handler.data(&self.info, &transaction.reverse_path, &transaction.recipients, body.into_bytes()).await
        };
        if decision.is_positive() {
            self.messages_accepted += 1;
            info!(reverse_path = %transaction.reverse_path, recipients, size, reply = %decision, "message accepted");
        } else {
            self.messages_rejected += 1;
            info!(reverse_path = %transaction.reverse_path, recipients, size, reply = %decision, "message rejected");
        }
        self.queue(&decision);
    }
}

fn no_valid_recipients() -> Reply {
    Reply::new(554, "5.5.1", "no valid recipients")
}
