//! Line length, error count, timeouts and shutdown of a single session.

use std::time::Duration;

use super::*;
use crate::smtp::MAX_LINE_LENGTH;

#[tokio::test]
async fn long_line_discarded_with_bounded_memory() {
    let mut harness = start_plain().await;
    let client = &mut harness.client;
    client.command("EHLO client.example", "250").await;
    let chunk = vec![b'a'; 64 * 1024];
    // 50 MiB without a line feed.
    for _ in 0..800 {
        client.send(&chunk).await;
    }
    client.send("\r\nNOOP\r\n").await;
    let reply = client.expect("500 5.5.2").await;
    assert_eq!(reply, format!("500 5.5.2 line too long, the limit is {MAX_LINE_LENGTH} bytes"));
    client.expect("250 2.0.0 OK").await;
    client.command("QUIT", "221").await;
    let (end, peak) = harness.task.await.unwrap();
    assert_eq!(end, SessionEnd::Quit);
    assert!(peak >= MAX_LINE_LENGTH, "the buffer peak was not measured: {peak}");
    assert!(peak <= MAX_LINE_LENGTH + 16 * 1024, "input buffer grew to {peak} bytes");
}

#[tokio::test]
async fn line_just_under_limit_accepted() {
    let mut harness = start_plain().await;
    let client = &mut harness.client;
    let padding = " ".repeat(MAX_LINE_LENGTH - "NOOP\r\n".len());
    client.command(&format!("NOOP{padding}"), "250 2.0.0").await;
    let padding = " ".repeat(MAX_LINE_LENGTH - "NOOP\r\n".len() + 1);
    client.command(&format!("NOOP{padding}"), "500 5.5.2").await;
}

#[tokio::test]
async fn error_limit_closes_with_421() {
    let mut config = settings();
    config.max_errors = 3;
    let mut harness = start(config, listener(TlsMode::None, AuthMode::None), None);
    let client = &mut harness.client;
    client.expect("220").await;
    client.command("FOO", "500").await;
    client.command("MAIL FROM:<a@example.com>", "503").await;
    client.command("BAR", "500").await;
    assert_eq!(client.reply().await, "421 4.7.0 too many errors, closing connection");
    assert!(client.is_closed().await);
    let (end, _) = harness.task.await.unwrap();
    assert_eq!(end, SessionEnd::TooManyErrors);
}

#[tokio::test(start_paused = true)]
async fn command_timeout_closes_with_421() {
    let mut harness = start_plain().await;
    let client = &mut harness.client;
    client.command("EHLO client.example", "250").await;
    let started = tokio::time::Instant::now();
    assert_eq!(client.reply().await, "421 4.4.2 fax.example.com timeout, closing connection");
    assert!(started.elapsed() >= Duration::from_secs(30));
    let (end, _) = harness.task.await.unwrap();
    assert_eq!(end, SessionEnd::CommandTimeout);
}

#[tokio::test(start_paused = true)]
async fn partial_command_line_does_not_extend_timeout() {
    let mut harness = start_plain().await;
    let client = &mut harness.client;
    for _ in 0..3 {
        client.send("N").await;
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    client.expect("421 4.4.2").await;
}

#[tokio::test(start_paused = true)]
async fn message_timeout_closes_with_421() {
    let mut harness = start_plain().await;
    open_transaction(&mut harness.client).await;
    harness.client.command("DATA", "354").await;
    // A byte every 20 seconds keeps the command timeout (30 s) from firing, so only
    // the message timeout (60 s) ends the transfer.
    for _ in 0..3 {
        harness.client.send("x").await;
        tokio::time::sleep(Duration::from_secs(20)).await;
    }
    let reply = harness.client.expect("421 4.4.2").await;
    assert!(reply.contains("60 seconds"), "{reply}");
    let (end, _) = harness.task.await.unwrap();
    assert_eq!(end, SessionEnd::MessageTimeout);
}

#[tokio::test]
async fn shutdown_sends_421_between_commands() {
    let mut harness = start_plain().await;
    harness.client.command("EHLO client.example", "250").await;
    harness.shutdown.send(true).unwrap();
    assert_eq!(harness.client.reply().await, "421 4.3.0 fax.example.com shutting down");
    let (end, _) = harness.task.await.unwrap();
    assert_eq!(end, SessionEnd::Shutdown);
}

#[tokio::test(start_paused = true)]
async fn shutdown_lets_open_transaction_finish() {
    let mut harness = start_plain().await;
    open_transaction(&mut harness.client).await;
    harness.shutdown.send(true).unwrap();
    // Well inside the grace period, which the listener enforces, the session still
    // takes commands of the open transaction.
    tokio::time::sleep(Duration::from_secs(3)).await;
    harness.client.command("RCPT TO:<+14155550101@fax.example.com>", "250 2.1.5").await;
    harness.client.command("DATA", "354").await;
    harness.client.send("Subject: test\r\n\r\nbody\r\n.\r\n").await;
    harness.client.expect("250 2.0.0 queued").await;
    assert_eq!(harness.client.reply().await, "421 4.3.0 fax.example.com shutting down");
    let (end, _) = harness.task.await.unwrap();
    assert_eq!(end, SessionEnd::Shutdown);
    assert_eq!(harness.handler.messages().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn shutdown_ends_session_after_rset() {
    let mut harness = start_plain().await;
    open_transaction(&mut harness.client).await;
    harness.shutdown.send(true).unwrap();
    tokio::task::yield_now().await;
    harness.client.command("RSET", "250").await;
    assert_eq!(harness.client.reply().await, "421 4.3.0 fax.example.com shutting down");
    let (end, _) = harness.task.await.unwrap();
    assert_eq!(end, SessionEnd::Shutdown);
    assert!(harness.handler.messages().is_empty());
}

#[tokio::test]
async fn shutdown_lets_message_in_progress_finish() {
    let mut harness = start_plain().await;
    open_transaction(&mut harness.client).await;
    harness.client.command("DATA", "354").await;
    harness.client.send("first part\r\n").await;
    harness.shutdown.send(true).unwrap();
    harness.client.send("second part\r\n.\r\n").await;
    harness.client.expect("250 2.0.0 queued").await;
    harness.client.expect("421 4.3.0").await;
    assert_eq!(harness.handler.messages().len(), 1);
}

#[tokio::test]
async fn shutdown_lets_bdat_transfer_finish() {
    let mut harness = start_plain().await;
    open_transaction(&mut harness.client).await;
    harness.client.send("BDAT 3\r\nabc").await;
    harness.client.expect("250 2.0.0 3 octets").await;
    harness.shutdown.send(true).unwrap();
    tokio::task::yield_now().await;
    harness.client.send("BDAT 3 LAST\r\ndef").await;
    harness.client.expect("250 2.0.0 queued").await;
    harness.client.expect("421 4.3.0").await;
    assert_eq!(harness.handler.messages().len(), 1);
}
