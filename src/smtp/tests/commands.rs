//! Greeting, EHLO, the envelope commands, ordering and syntax errors, pipelining.

use super::*;

#[tokio::test]
async fn full_transaction_reaches_handler() {
    let mut harness = start(settings(), listener(TlsMode::None, AuthMode::None), None);
    let client = &mut harness.client;
    assert_eq!(client.reply().await, "220 fax.example.com ESMTP faxgate");
    open_transaction(client).await;
    client.command("DATA", "354 ").await;
    client.send("Subject: test\r\n\r\nhello\r\n.\r\n").await;
    assert_eq!(client.reply().await, "250 2.0.0 queued as job-1");
    assert_eq!(client.command("QUIT", "221 ").await, "221 2.0.0 fax.example.com closing connection");
    assert!(client.is_closed().await);
    let (end, _) = harness.task.await.unwrap();
    assert_eq!(end, SessionEnd::Quit);

    assert_eq!(
        harness.handler.messages(),
        vec![Call::Data {
            reverse_path: "sender@example.com".to_string(),
            recipients: vec!["+14155550100".to_string()],
            message: b"Subject: test\r\n\r\nhello\r\n".to_vec(),
            tls: false,
            auth_identity: None,
        }]
    );
}

#[tokio::test]
async fn ehlo_advertises_extensions_without_tls() {
    let mut harness = start_plain().await;
    let reply = harness.client.command("EHLO client.example", "250-").await;
    assert_eq!(
        reply,
        "250-fax.example.com Hello client.example\n250-PIPELINING\n250-SIZE 1000\n250-8BITMIME\n\
         250-ENHANCEDSTATUSCODES\n250-SMTPUTF8\n250 CHUNKING"
    );
}

#[tokio::test]
async fn helo_gets_single_line() {
    let mut harness = start_plain().await;
    let reply = harness.client.command("HELO client.example", "250 ").await;
    assert_eq!(reply, "250 fax.example.com Hello client.example");
    harness.client.command("MAIL FROM:<sender@example.com>", "250 2.1.0").await;
}

#[tokio::test]
async fn pipelined_commands_answered_in_order() {
    let mut harness = start_plain().await;
    let client = &mut harness.client;
    client
        .send(
            "EHLO client.example\r\nMAIL FROM:<sender@example.com>\r\n\
             RCPT TO:<+14155550100@fax.example.com>\r\nRCPT TO:<nonsense@fax.example.com>\r\n\
             RCPT TO:<4155550101@fax.example.com>\r\nDATA\r\n",
        )
        .await;
    client.expect("250-fax.example.com").await;
    client.expect("250 2.1.0").await;
    client.expect("250 2.1.5").await;
    client.expect("550 5.1.3").await;
    client.expect("250 2.1.5").await;
    client.expect("354 ").await;
    client.send("hello\r\n.\r\nNOOP\r\n").await;
    client.expect("250 2.0.0 queued as job-1").await;
    client.expect("250 2.0.0 OK").await;
    let messages = harness.handler.messages();
    let [Call::Data { recipients, .. }] = messages.as_slice() else {
        panic!("expected one message, got {messages:?}");
    };
    assert_eq!(recipients, &["+14155550100".to_string(), "+14155550101".to_string()]);
}

#[tokio::test]
async fn pipelined_message_in_one_write() {
    let mut harness = start_plain().await;
    let client = &mut harness.client;
    client
        .send(
            "EHLO c\r\nMAIL FROM:<s@example.com>\r\nRCPT TO:<+14155550100@fax.example.com>\r\n\
             DATA\r\nhi\r\n.\r\nQUIT\r\n",
        )
        .await;
    for prefix in ["250-", "250 2.1.0", "250 2.1.5", "354 ", "250 2.0.0 queued", "221 "] {
        client.expect(prefix).await;
    }
}

#[tokio::test]
async fn commands_out_of_order_get_503() {
    let mut harness = start_plain().await;
    let client = &mut harness.client;
    client.command("MAIL FROM:<sender@example.com>", "503 5.5.1").await;
    client.command("EHLO client.example", "250").await;
    client.command("RCPT TO:<+14155550100@fax.example.com>", "503 5.5.1").await;
    client.command("DATA", "503 5.5.1").await;
    client.command("MAIL FROM:<sender@example.com>", "250 2.1.0").await;
    client.command("MAIL FROM:<sender@example.com>", "503 5.5.1").await;
    assert_eq!(client.command("DATA", "554").await, "554 5.5.1 no valid recipients");
}

#[tokio::test]
async fn unknown_and_malformed_commands() {
    let mut harness = start_plain().await;
    let client = &mut harness.client;
    assert_eq!(client.command("FOO bar", "500").await, "500 5.5.1 command FOO not recognized");
    client.command("EHLO client.example", "250").await;
    let reply = client.command("MAIL TO:<a@example.com>", "501 5.5.4").await;
    assert!(reply.contains("MAIL FROM:<reverse-path>"), "{reply}");
    let reply = client.command("MAIL FROM:<not an address>", "501").await;
    assert!(reply.contains("not an address"), "{reply}");
    let reply = client.command("MAIL FROM:<a@example.com> SIZE=abc", "501 5.5.4").await;
    assert!(reply.contains("SIZE"), "{reply}");
    let reply = client.command("MAIL FROM:<a@example.com> FOO=1", "555 5.5.4").await;
    assert!(reply.contains("FOO"), "{reply}");
    client.command("", "500 5.5.2").await;
    client.command("LHLO client.example", "502 5.5.1").await;
    client.command("EXPN staff", "502 5.5.1").await;
}

#[tokio::test]
async fn null_sender_passed_as_empty() {
    let mut harness = start_plain().await;
    let client = &mut harness.client;
    client.command("EHLO client.example", "250").await;
    client.command("MAIL FROM:<>", "250 2.1.0").await;
    assert_eq!(harness.handler.calls(), vec![Call::MailFrom { reverse_path: String::new(), auth_identity: None }]);
}

#[tokio::test]
async fn mail_from_with_space_and_parameters() {
    let mut harness = start_plain().await;
    let client = &mut harness.client;
    client.command("EHLO client.example", "250").await;
    client.command("MAIL FROM: <sender@example.com> SIZE=500 BODY=8BITMIME SMTPUTF8 AUTH=<>", "250 2.1.0").await;
    client.command("RSET", "250 2.0.0").await;
    client.command("MAIL FROM:<sender@example.com> BODY=7BIT", "250 2.1.0").await;
    assert_eq!(
        harness.handler.calls()[0],
        Call::MailFrom { reverse_path: "sender@example.com".to_string(), auth_identity: None }
    );
}

#[tokio::test]
async fn declared_size_over_limit_rejected_at_mail() {
    let mut harness = start_plain().await;
    let client = &mut harness.client;
    client.command("EHLO client.example", "250").await;
    let reply = client.command("MAIL FROM:<sender@example.com> SIZE=5000", "552").await;
    assert_eq!(reply, "552 5.3.4 message size 5000 exceeds the limit of 1000 bytes");
    assert!(harness.handler.calls().is_empty());
    client.command("MAIL FROM:<sender@example.com> SIZE=1000", "250 2.1.0").await;
}

#[tokio::test]
async fn too_many_recipients_get_452() {
    let mut harness = start_plain().await;
    let client = &mut harness.client;
    client.command("EHLO client.example", "250").await;
    client.command("MAIL FROM:<sender@example.com>", "250").await;
    for number in ["+14155550100", "+14155550101", "+14155550102"] {
        client.command(&format!("RCPT TO:<{number}@fax.example.com>"), "250 2.1.5").await;
    }
    let reply = client.command("RCPT TO:<+14155550103@fax.example.com>", "452").await;
    assert_eq!(reply, "452 4.5.3 too many recipients (limit 3)");
}

#[tokio::test]
async fn duplicate_recipient_kept_once() {
    let mut harness = start_plain().await;
    let client = &mut harness.client;
    open_transaction(client).await;
    client.command("RCPT TO:<1-415-555-0100@fax.example.com>", "250 2.1.5").await;
    client.command("DATA", "354").await;
    client.send("x\r\n.\r\n").await;
    client.expect("250 2.0.0").await;
    let messages = harness.handler.messages();
    let [Call::Data { recipients, .. }] = messages.as_slice() else {
        panic!("expected one message, got {messages:?}");
    };
    assert_eq!(recipients, &["+14155550100".to_string()]);
}

#[tokio::test]
async fn handler_rejections_sent_as_is() {
    let mut harness = start_plain().await;
    let client = &mut harness.client;
    client.command("EHLO client.example", "250").await;
    let reply = client.command("MAIL FROM:<blocked@example.com>", "550").await;
    assert_eq!(reply, "550 5.7.1 sender blocked@example.com may not send faxes");
    client.command("MAIL FROM:<sender@example.com>", "250").await;
    let reply = client.command("RCPT TO:<+14155550100@other.example>", "550").await;
    assert_eq!(reply, "550 5.7.1 relaying to other.example is not permitted");
}

#[tokio::test]
async fn postmaster_without_domain_reaches_the_handler() {
    let mut harness = start_plain().await;
    let client = &mut harness.client;
    client.command("EHLO client.example", "250").await;
    client.command("MAIL FROM:<>", "250").await;
    let reply = client.command("RCPT TO:<Postmaster>", "250").await;
    assert_eq!(reply, "250 2.1.5 recipient <> OK, the postmaster");
    client.command("RCPT TO:<postmaster>", "250").await;
    client.command("DATA", "354").await;
    client.send("Subject: hello\r\n\r\nbody\r\n.\r\n").await;
    assert_eq!(client.reply().await, "250 2.0.0 queued as job-1");
    let messages = harness.handler.messages();
    let [Call::Data { recipients, .. }] = messages.as_slice() else {
        panic!("one message expected, got {messages:?}");
    };
    assert_eq!(recipients, &["postmaster".to_string()], "the postmaster is kept once");
}

#[tokio::test]
async fn rset_noop_vrfy_help() {
    let mut harness = start_plain().await;
    let client = &mut harness.client;
    client.command("RSET", "250 2.0.0").await;
    client.command("NOOP", "250 2.0.0").await;
    client.command("VRFY someone", "252 2.5.0").await;
    let help = client.command("HELP", "214 2.0.0").await;
    assert!(help.contains("MAIL"), "{help}");
    assert!(!help.contains("STARTTLS"), "a plain listener does not offer STARTTLS: {help}");
    assert!(!help.contains("AUTH"), "a plain listener does not offer AUTH: {help}");
    open_transaction(client).await;
    client.command("RSET", "250 2.0.0").await;
    // RSET ends the transaction but keeps EHLO.
    client.command("RCPT TO:<+14155550100@fax.example.com>", "503 5.5.1").await;
    client.command("MAIL FROM:<sender@example.com>", "250 2.1.0").await;
}

#[tokio::test]
async fn client_close_ends_session() {
    let harness = start_plain().await;
    drop(harness.client);
    let (end, _) = harness.task.await.unwrap();
    assert_eq!(end, SessionEnd::ClientClosed);
}

#[tokio::test]
async fn smtputf8_address_accepted() {
    let mut harness = start_plain().await;
    let client = &mut harness.client;
    client.command("EHLO client.example", "250").await;
    client.command("MAIL FROM:<jörg@exämple.com> SMTPUTF8", "250 2.1.0").await;
    assert_eq!(
        harness.handler.calls(),
        vec![Call::MailFrom { reverse_path: "jörg@exämple.com".to_string(), auth_identity: None }]
    );
}

#[tokio::test]
async fn random_input_never_panics() {
    // A fixed linear congruential generator keeps the input the same on every run.
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) as u8
    };
    let words: [&[u8]; 12] = [
        b"MAIL FROM:",
        b"RCPT TO:",
        b"<",
        b">",
        b"@",
        b"BDAT ",
        b"DATA",
        b"AUTH PLAIN ",
        b" SIZE=",
        b"\r\n",
        b".",
        b"\n",
    ];
    for _ in 0..20 {
        let mut config = settings();
        config.max_errors = 1000;
        let mut harness = start(config, listener(TlsMode::None, AuthMode::None), None);
        let mut input = b"EHLO fuzz\r\n".to_vec();
        for _ in 0..400 {
            match next() % 3 {
                0 => input.extend_from_slice(words[usize::from(next()) % words.len()]),
                1 => input.push(next()),
                _ => input.extend_from_slice(b"\r\n"),
            }
        }
        input.extend_from_slice(b"\r\n.\r\nQUIT\r\n");
        harness.client.send(&input).await;
        drop(harness.client);
        let joined = harness.task.await;
        assert!(joined.is_ok(), "the session task panicked on {:?}", String::from_utf8_lossy(&input));
    }
}
