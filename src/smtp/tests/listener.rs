//! `serve` over loopback sockets: connection caps, allowed clients, shutdown.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket, TcpStream};

use super::*;
use crate::smtp::{ServeError, serve};

struct Server {
    address: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<Result<(), ServeError>>,
}

async fn start_server(settings: config::Smtp, listener: config::Listener) -> Server {
    let socket = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = socket.local_addr().unwrap();
    let (shutdown, shutdown_rx) = watch::channel(false);
    let handler = Arc::new(FakeHandler::default());
    let task = tokio::spawn(async move {
        serve(vec![(socket, listener)], Arc::new(settings), HOSTNAME, None, handler, shutdown_rx).await
    });
    Server { address, shutdown, task }
}

/// Connects from `source`, a loopback address such as 127.0.0.2.
async fn connect_from(source: &str, server: SocketAddr) -> Client<TcpStream> {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    Client::new(socket.connect(server).await.unwrap())
}

#[tokio::test]
async fn per_ip_cap_rejects_extra_connection_only() {
    let server = start_server(settings(), listener(TlsMode::None, AuthMode::None)).await;
    let mut idle = Vec::new();
    for _ in 0..2 {
        let mut client = connect_from("127.0.0.1", server.address).await;
        client.expect("220 fax.example.com").await;
        idle.push(client);
    }
    let mut extra = connect_from("127.0.0.1", server.address).await;
    let reply = extra.reply().await;
    assert_eq!(reply, "421 4.7.0 too many connections from 127.0.0.1 (limit 2), try again later");
    assert!(extra.is_closed().await);

    let mut other = connect_from("127.0.0.2", server.address).await;
    other.expect("220 fax.example.com").await;
    other.command("EHLO client.example", "250").await;

    // A closed connection frees its slot.
    drop(idle.pop());
    let mut again = None;
    for _ in 0..50 {
        let mut client = connect_from("127.0.0.1", server.address).await;
        if client.reply().await.starts_with("220") {
            again = Some(client);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(again.is_some(), "the slot of a closed connection was not freed");
}

#[tokio::test]
async fn total_cap_rejects_extra_connection() {
    let mut config = settings();
    config.max_connections = 1;
    let server = start_server(config, listener(TlsMode::None, AuthMode::None)).await;
    let mut first = connect_from("127.0.0.1", server.address).await;
    first.expect("220").await;
    let mut second = connect_from("127.0.0.2", server.address).await;
    let reply = second.reply().await;
    assert_eq!(reply, "421 4.7.0 too many connections to this server (limit 1), try again later");
}

#[tokio::test]
async fn client_outside_allowed_clients_rejected() {
    let mut listener = listener(TlsMode::None, AuthMode::None);
    listener.allowed_clients = vec!["127.0.0.2/32".parse().unwrap()];
    let server = start_server(settings(), listener).await;
    let mut outside = connect_from("127.0.0.1", server.address).await;
    assert_eq!(outside.reply().await, "554 5.7.1 127.0.0.1 is not allowed to connect");
    let mut inside = connect_from("127.0.0.2", server.address).await;
    inside.expect("220").await;
}

#[tokio::test]
async fn shutdown_closes_idle_sessions_and_returns() {
    let server = start_server(settings(), listener(TlsMode::None, AuthMode::None)).await;
    let mut client = connect_from("127.0.0.1", server.address).await;
    client.expect("220").await;
    client.command("EHLO client.example", "250").await;
    server.shutdown.send(true).unwrap();
    assert_eq!(client.reply().await, "421 4.3.0 fax.example.com shutting down");
    assert!(client.is_closed().await);
    let result = tokio::time::timeout(Duration::from_secs(10), server.task).await;
    assert!(matches!(result, Ok(Ok(Ok(())))), "serve did not return: {result:?}");
    assert!(TcpStream::connect(server.address).await.is_err(), "still accepting after shutdown");
}

#[tokio::test]
async fn shutdown_cuts_transfer_after_grace() {
    let mut config = settings();
    config.shutdown_grace = Duration::from_millis(300);
    let server = start_server(config, listener(TlsMode::None, AuthMode::None)).await;
    let mut client = connect_from("127.0.0.1", server.address).await;
    client.expect("220").await;
    open_transaction(&mut client).await;
    client.command("DATA", "354").await;
    client.send("a message that never ends\r\n").await;
    server.shutdown.send(true).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), server.task).await;
    assert!(matches!(result, Ok(Ok(Ok(())))), "serve did not return: {result:?}");
    assert!(client.is_closed().await);
}

#[tokio::test]
async fn shutdown_cuts_open_transaction_after_grace() {
    let mut config = settings();
    config.shutdown_grace = Duration::from_millis(300);
    let server = start_server(config, listener(TlsMode::None, AuthMode::None)).await;
    let mut client = connect_from("127.0.0.1", server.address).await;
    client.expect("220").await;
    open_transaction(&mut client).await;
    server.shutdown.send(true).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), server.task).await;
    assert!(matches!(result, Ok(Ok(Ok(())))), "serve did not return: {result:?}");
    assert!(client.is_closed().await);
}

#[tokio::test]
async fn tls_listener_without_certificate_is_an_error() {
    let socket = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (_shutdown, shutdown_rx) = watch::channel(false);
    let listener = listener(TlsMode::Starttls, AuthMode::None);
    let handler = Arc::new(FakeHandler::default());
    let result = serve(vec![(socket, listener)], Arc::new(settings()), HOSTNAME, None, handler, shutdown_rx).await;
    let err = result.unwrap_err();
    assert!(err.to_string().contains("smtp.tls_cert"), "{err}");
}
