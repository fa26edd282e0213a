//! DATA and BDAT through a whole session: unstuffing, smuggling, size limits, chunks.

use super::*;

fn only_message(handler: &FakeHandler) -> Vec<u8> {
    let messages = handler.messages();
    match messages.as_slice() {
        [Call::Data { message, .. }] => message.clone(),
        other => panic!("expected one message, got {other:?}"),
    }
}

#[tokio::test]
async fn data_dot_unstuffed() {
    let mut harness = start_plain().await;
    let client = &mut harness.client;
    open_transaction(client).await;
    client.command("DATA", "354").await;
    client.send("..leading dot\r\n.\r\n").await;
    client.expect("250 2.0.0").await;
    assert_eq!(only_message(&harness.handler), b".leading dot\r\n");
}

#[tokio::test]
async fn data_smuggling_variants_do_not_end_message() {
    for marker in ["\n.\n", "\n.\r\n", "\r\n.\n", "\r.\r\n"] {
        let mut harness = start_plain().await;
        let client = &mut harness.client;
        open_transaction(client).await;
        client.command("DATA", "354").await;
        let smuggled = "MAIL FROM:<evil@example.com>\r\nRCPT TO:<+14155550199@fax.example.com>\r\nDATA\r\nevil\r\n";
        client.send(format!("first{marker}{smuggled}.\r\nNOOP\r\n")).await;
        // The smuggled commands are body, so the next reply is the decision, then NOOP.
        client.expect("250 2.0.0 queued as job-1").await;
        client.expect("250 2.0.0 OK").await;
        let message = only_message(&harness.handler);
        let text = String::from_utf8_lossy(&message);
        assert!(text.contains("MAIL FROM:<evil@example.com>"), "marker {marker:?}: body {text:?}");
        let senders = harness.handler.calls().iter().filter(|c| matches!(c, Call::MailFrom { .. })).count();
        assert_eq!(senders, 1, "marker {marker:?} let a smuggled MAIL through");
    }
}

#[tokio::test]
async fn data_bare_lf_kept() {
    let mut harness = start_plain().await;
    let client = &mut harness.client;
    open_transaction(client).await;
    client.command("DATA", "354").await;
    client.send("a\nb\r\n.\r\n").await;
    client.expect("250 2.0.0").await;
    assert_eq!(only_message(&harness.handler), b"a\nb\r\n");
}

#[tokio::test]
async fn data_over_limit_drained_then_552() {
    let mut harness = start_plain().await;
    let client = &mut harness.client;
    open_transaction(client).await;
    client.command("DATA", "354").await;
    let line = format!("{}\r\n", "x".repeat(98));
    for _ in 0..50 {
        client.send(&line).await;
    }
    client.send(".\r\n").await;
    let reply = client.expect("552 5.3.4").await;
    assert_eq!(reply, "552 5.3.4 message size 5000 exceeds the limit of 1000 bytes");
    assert!(harness.handler.messages().is_empty());
    // The session is still usable and the transaction was reset.
    client.command("RCPT TO:<+14155550100@fax.example.com>", "503").await;
    client.command("MAIL FROM:<sender@example.com>", "250 2.1.0").await;
}

#[tokio::test]
async fn data_ends_transaction_keeps_ehlo() {
    let mut harness = start_plain().await;
    let client = &mut harness.client;
    open_transaction(client).await;
    client.command("DATA", "354").await;
    client.send("x\r\n.\r\n").await;
    client.expect("250 2.0.0").await;
    client.command("RCPT TO:<+14155550100@fax.example.com>", "503 5.5.1").await;
    client.command("MAIL FROM:<sender@example.com>", "250 2.1.0").await;
}

#[tokio::test]
async fn bdat_pipelined_chunks_not_unstuffed() {
    let mut harness = start_plain().await;
    let client = &mut harness.client;
    open_transaction(client).await;
    client.send("BDAT 10\r\n\r\n.\r\n..abcBDAT 5 LAST\r\n\r\n.\r\n").await;
    assert_eq!(client.reply().await, "250 2.0.0 10 octets received");
    client.expect("250 2.0.0 queued as job-1").await;
    assert_eq!(only_message(&harness.handler), b"\r\n.\r\n..abc\r\n.\r\n");
    client.command("NOOP", "250 2.0.0 OK").await;
}

#[tokio::test]
async fn bdat_chunks_split_over_writes() {
    let mut harness = start_plain().await;
    let client = &mut harness.client;
    open_transaction(client).await;
    client.send("BDAT 6\r\nhel").await;
    client.send("lo ").await;
    client.expect("250 2.0.0 6 octets").await;
    client.send("BDAT 0\r\n").await;
    client.expect("250 2.0.0 0 octets").await;
    client.send("BDAT 5 LAST\r\nworld").await;
    client.expect("250 2.0.0 queued").await;
    assert_eq!(only_message(&harness.handler), b"hello world");
}

#[tokio::test]
async fn bdat_over_limit_drained_then_552() {
    let mut harness = start_plain().await;
    let client = &mut harness.client;
    open_transaction(client).await;
    client.send("BDAT 600\r\n").await;
    client.send(vec![b'a'; 600]).await;
    client.expect("250 2.0.0 600 octets").await;
    client.send("BDAT 600 LAST\r\n").await;
    // Bytes that look like commands must be drained as chunk data, not run.
    let mut chunk = b"QUIT\r\n".to_vec();
    chunk.resize(600, b'b');
    client.send(chunk).await;
    let reply = client.expect("552 5.3.4").await;
    assert_eq!(reply, "552 5.3.4 message size 1200 exceeds the limit of 1000 bytes");
    client.command("NOOP", "250 2.0.0 OK").await;
    // The transaction was aborted.
    client.send("BDAT 3 LAST\r\nabc").await;
    client.expect("503 5.5.1").await;
    assert!(harness.handler.messages().is_empty());
}

#[tokio::test]
async fn bdat_without_transaction_drained_then_503() {
    let mut harness = start_plain().await;
    let client = &mut harness.client;
    client.command("EHLO client.example", "250").await;
    client.send("BDAT 6\r\nNOOP\r\nNOOP\r\n").await;
    client.expect("503 5.5.1").await;
    client.expect("250 2.0.0 OK").await;
    client.command("QUIT", "221").await;
}

#[tokio::test]
async fn bdat_and_data_not_mixed() {
    let mut harness = start_plain().await;
    let client = &mut harness.client;
    open_transaction(client).await;
    client.send("BDAT 3\r\nabc").await;
    client.expect("250 2.0.0").await;
    client.command("DATA", "503 5.5.1").await;
    client.command("RCPT TO:<+14155550101@fax.example.com>", "503 5.5.1").await;
    client.send("BDAT 3 LAST\r\ndef").await;
    client.expect("250 2.0.0 queued").await;
    assert_eq!(only_message(&harness.handler), b"abcdef");
}

#[tokio::test]
async fn bdat_without_recipients_gets_554() {
    let mut harness = start_plain().await;
    let client = &mut harness.client;
    client.command("EHLO client.example", "250").await;
    client.command("MAIL FROM:<sender@example.com>", "250").await;
    client.send("BDAT 3 LAST\r\nabc").await;
    client.expect("554 5.5.1").await;
    client.command("NOOP", "250").await;
}
