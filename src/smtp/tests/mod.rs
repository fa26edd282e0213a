//! Session and server tests over in-memory streams and loopback sockets.
