//! The Redis protocol over bytes, with no sockets.
//!
//! A tour:
//! - [`frame`] splits a client's byte stream into commands: RESP arrays of bulk strings, as
//!   every client library sends, and inline commands, as a person types them in telnet. Every
//!   size is bounded by [`Limits`]; anything malformed is a [`ProtocolError`] whose text is the
//!   one Redis sends, after which the connection is closed.
//! - [`reply`] is what a server answers, encoded for RESP2 or RESP3 as the connection chose
//!   with `HELLO`.
//! - [`args`] holds the small parsers every command shares: integers, floats and the exact
//!   error texts of Redis 7 for them.
//! - [`client`] is the other side, for Meridian's own tools: commands encoded as clients send
//!   them, replies parsed as a RESP2 client reads them.
#![deny(missing_docs)]

pub mod args;
pub mod client;
pub mod frame;
pub mod reply;

pub use frame::{Limits, ProtocolError, parse_command};
pub use reply::{Protocol, Reply};
