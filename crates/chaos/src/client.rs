//! A minimal blocking Redis client: RESP2 requests out, replies in, with a deadline on every
//! call. A call that times out leaves the connection in an unknown state, so it is dropped.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

pub use resp::client::Value as Reply;

/// Why a call has no reply.
#[derive(Debug)]
pub enum CallError {
    /// Nothing was sent: the node refused the connection.
    Refused,
    /// Sent, and no reply came (timeout or broken link): the command may or may not have run.
    Unknown(String),
}

/// One connection to one node.
pub struct Client {
    addr: SocketAddr,
    timeout: Duration,
    conn: Option<TcpStream>,
}

impl Client {
    /// A client of `addr` whose calls give up after `timeout`.
    pub fn new(addr: SocketAddr, timeout: Duration) -> Client {
        Client {
            addr,
            timeout,
            conn: None,
        }
    }

    /// Sends one command and reads its reply.
    pub fn call(&mut self, args: &[&[u8]]) -> Result<Reply, CallError> {
        if self.conn.is_none() {
            let stream = TcpStream::connect_timeout(&self.addr, self.timeout)
                .map_err(|_| CallError::Refused)?;
            stream.set_read_timeout(Some(self.timeout)).ok();
            stream.set_write_timeout(Some(self.timeout)).ok();
            stream.set_nodelay(true).ok();
            self.conn = Some(stream);
        }
        let conn = self.conn.as_mut().expect("just connected");
        let frame = resp::client::encode_command(args);
        let result = conn.write_all(&frame).and_then(|()| read_reply(conn));
        result.map_err(|e| {
            self.conn = None;
            CallError::Unknown(e.to_string())
        })
    }
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}

/// Reads until one whole reply is in (a call's reply is the only thing on the connection).
fn read_reply(conn: &mut TcpStream) -> std::io::Result<Reply> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match resp::client::parse_value(&buf) {
            Ok(Some((reply, _))) => return Ok(reply),
            Ok(None) => {}
            Err(e) => return Err(bad(&e.to_string())),
        }
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return Err(bad("connection closed"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
