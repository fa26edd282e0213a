//! A minimal SMTP client for tests that must see exact replies, send pipelined or
//! malformed input, or hold connections open. Ordinary sending uses lettre or swaks.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// One reply: the code and every line's text joined with `\n`.
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: u16,
    pub text: String,
}

impl Reply {
    /// Returns the enhanced status code of the last line, such as `5.7.1`.
    pub fn status(&self) -> &str {
        self.text.lines().last().and_then(|l| l.split_whitespace().next()).unwrap_or("")
    }

    pub fn is(&self, code: u16, status: &str) -> bool {
        self.code == code && self.status() == status
    }
}

pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    /// Connects and returns the client with the greeting.
    pub fn connect(address: SocketAddr) -> (Client, Reply) {
        let stream = TcpStream::connect(address).unwrap();
        Client::from_stream(stream)
    }

    pub fn from_stream(stream: TcpStream) -> (Client, Reply) {
        stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let writer = stream.try_clone().unwrap();
        let mut client = Client { reader: BufReader::new(stream), writer };
        let greeting = client.read_reply();
        (client, greeting)
    }

    /// Reads one possibly multi-line reply.
    pub fn read_reply(&mut self) -> Reply {
        let mut text = Vec::new();
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).unwrap();
            assert!(n > 0, "connection closed while waiting for a reply; got so far: {text:?}");
            let line = line.trim_end_matches(['\r', '\n']);
            assert!(line.len() >= 3, "short reply line {line:?}");
            let code: u16 = line[..3].parse().unwrap();
            text.push(line.get(4..).unwrap_or("").to_string());
            if line.as_bytes().get(3) != Some(&b'-') {
                return Reply { code, text: text.join("\n") };
            }
        }
    }

    /// Reports whether the server closed the connection (EOF or a reset).
    pub fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.reader.read(&mut byte), Ok(0) | Err(_))
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    /// Sends one command line and returns its reply.
    pub fn command(&mut self, line: &str) -> Reply {
        self.send(format!("{line}\r\n").as_bytes());
        self.read_reply()
    }

    /// Sends `DATA`, the message (dot-stuffed here) and the end marker; returns the
    /// reply to DATA and the final reply.
    pub fn data(&mut self, message: &[u8]) -> (Reply, Option<Reply>) {
        let start = self.command("DATA");
        if start.code != 354 {
            return (start, None);
        }
        let mut stuffed = Vec::with_capacity(message.len() + 16);
        let mut line_start = true;
        for &b in message {
            if line_start && b == b'.' {
                stuffed.push(b'.');
            }
            stuffed.push(b);
            line_start = b == b'\n';
        }
        if !stuffed.ends_with(b"\r\n") {
            stuffed.extend_from_slice(b"\r\n");
        }
        stuffed.extend_from_slice(b".\r\n");
        self.send(&stuffed);
        let end = self.read_reply();
        (start, Some(end))
    }
}
