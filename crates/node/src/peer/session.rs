//! One authenticated peer session: the handshake, then a reader and a writer task.

use super::Event;
use super::wire::{self, FRAME_BYTES_MAX, Hello, MemberInfo, Message};
use crate::server::Stream;
use bytes::Bytes;
use crdt::NodeId;
use futures_util::{SinkExt, StreamExt};
use replication::VersionVector;
use rustls::pki_types::CertificateDer;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// How long the whole handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// A session that hears nothing for this long is closed (peers ping every second).
pub const SILENCE_TIMEOUT: Duration = Duration::from_secs(5);

/// A framed peer connection (TCP, or TLS over TCP).
pub type Link = Framed<Box<dyn Stream>, LengthDelimitedCodec>;

/// Why a session did not open or ended.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The socket failed or closed.
    #[error("peer link: {0}")]
    Io(#[from] std::io::Error),
    /// The peer sent a frame this node refuses.
    #[error("bad frame from peer: {0}")]
    Frame(#[from] wire::FrameError),
    /// The peer said something out of turn.
    #[error("peer broke the protocol: expected {expected}")]
    Protocol {
        /// What was expected.
        expected: &'static str,
    },
    /// The peer does not know the cluster secret.
    #[error("peer {0} failed authentication (wrong cluster secret?)")]
    Auth(String),
    /// The TLS handshake failed: no certificate, or not the cluster CA's, or expired.
    #[error("peer TLS: {0}")]
    Tls(String),
    /// The peer's certificate is not one of the node it claims to be.
    #[error("peer claims to be node {0} but its certificate does not name it")]
    Identity(String),
    /// We dialled ourselves (a seed list that names this node).
    #[error("connected to itself")]
    SelfConnection,
    /// The peer took too long.
    #[error("peer timed out")]
    Timeout,
    /// The peer closed the link.
    #[error("peer closed the link")]
    Closed,
}

/// What the handshake learned.
pub struct Established {
    /// The peer.
    pub peer: MemberInfo,
    /// The id the peer writes under.
    pub origin: NodeId,
    /// What the peer holds durably.
    pub vv: VersionVector,
    /// The members the peer knows.
    pub members: Vec<MemberInfo>,
    /// The link, ready for messages.
    pub link: Link,
}

/// Frames a fresh connection.
pub fn frame(stream: Box<dyn Stream>) -> Link {
    let codec = LengthDelimitedCodec::builder()
        .max_frame_length(FRAME_BYTES_MAX)
        .new_codec();
    Framed::new(stream, codec)
}

/// Sends one message.
pub async fn send(link: &mut Link, message: &Message) -> Result<(), SessionError> {
    link.send(wire::encode(message)).await?;
    Ok(())
}

/// Receives one message.
pub async fn recv(link: &mut Link) -> Result<Message, SessionError> {
    match link.next().await {
        None => Err(SessionError::Closed),
        Some(frame) => Ok(wire::decode(&frame?)?),
    }
}

/// Runs the handshake on `link` as `me` (writing as `origin`), offering `vv` and `members`
/// once the peer proved itself. Both sides run the same steps. Over TLS, `cert` is the
/// certificate the peer presented (the cluster CA's): it must name the node the peer says
/// it is.
pub async fn handshake(
    mut link: Link,
    cert: Option<CertificateDer<'static>>,
    me: &MemberInfo,
    secret: &[u8],
    origin: NodeId,
    vv: VersionVector,
    members: Vec<MemberInfo>,
) -> Result<Established, SessionError> {
    let steps = async {
        let my_nonce = wire::nonce();
        send(
            &mut link,
            &Message::Hello(Hello {
                member: me.clone(),
                nonce: my_nonce,
            }),
        )
        .await?;
        let Message::Hello(hello) = recv(&mut link).await? else {
            return Err(SessionError::Protocol { expected: "hello" });
        };
        if hello.member.name == me.name {
            return Err(SessionError::SelfConnection);
        }
        let m = &hello.member;
        if m.name.is_empty()
            || m.name.len() > 255
            || m.region.len() > 255
            || m.peer_addr.parse::<std::net::SocketAddr>().is_err()
        {
            return Err(SessionError::Protocol {
                expected: "a name, a region and a peer address",
            });
        }
        if let Some(cert) = &cert
            && !crate::tls::names_node(cert, &m.name)
        {
            return Err(SessionError::Identity(m.name.clone()));
        }
        let proof = wire::proof(secret, &hello.nonce, &my_nonce, &me.name);
        send(&mut link, &Message::Proof(proof)).await?;
        let Message::Proof(theirs) = recv(&mut link).await? else {
            return Err(SessionError::Protocol { expected: "proof" });
        };
        if !wire::verify(secret, &my_nonce, &hello.nonce, &hello.member.name, &theirs) {
            return Err(SessionError::Auth(hello.member.name));
        }
        send(
            &mut link,
            &Message::Start {
                origin,
                vv,
                members,
            },
        )
        .await?;
        let Message::Start {
            origin,
            vv,
            members,
        } = recv(&mut link).await?
        else {
            return Err(SessionError::Protocol { expected: "start" });
        };
        Ok(Established {
            peer: hello.member,
            origin,
            vv,
            members,
            link,
        })
    };
    timeout(HANDSHAKE_TIMEOUT, steps)
        .await
        .map_err(|_| SessionError::Timeout)?
}

/// Simulated WAN delay on one link: a fixed one-way delay plus up to `jitter` more per
/// message, never reordering (TCP does not).
#[derive(Clone, Copy, Debug, Default)]
pub struct Delay {
    /// The fixed part.
    pub base: Duration,
    /// The most a message may be held beyond it.
    pub jitter: Duration,
}

/// Most messages written to the socket in one go (one flush); a bound on the write buffer.
const WRITE_BATCH_MAX: usize = 64;

/// Writes queued messages to the link, each no earlier than the simulated WAN delay after it
/// was queued (zero unless configured), in order. Messages already queued and due go out
/// together, in one write to the socket.
pub async fn write_loop(
    mut sink: futures_util::stream::SplitSink<Link, Bytes>,
    mut rx: mpsc::Receiver<(Instant, Message)>,
    delay: Delay,
) {
    let mut due = DueTimes::new(delay);
    // A message taken from the queue before it was due, with its due time: it starts the
    // next batch.
    let mut held: Option<(Instant, Message)> = None;
    loop {
        let (at, message) = match held.take() {
            Some(m) => m,
            None => match rx.recv().await {
                Some((queued, message)) => (due.of(queued), message),
                None => break,
            },
        };
        tokio::time::sleep_until(at).await;
        let mut batch = vec![message];
        while batch.len() < WRITE_BATCH_MAX {
            let Ok((queued, message)) = rx.try_recv() else {
                break;
            };
            let at = due.of(queued);
            if at > Instant::now() {
                held = Some((at, message));
                break;
            }
            batch.push(message);
        }
        for message in &batch {
            if let Err(e) = sink.feed(wire::encode(message)).await {
                tracing::debug!(error = %e, "peer link write failed");
                return;
            }
        }
        if let Err(e) = sink.flush().await {
            tracing::debug!(error = %e, "peer link write failed");
            return;
        }
    }
    let _ = sink.close().await;
}

/// When each queued message may go: the fixed WAN delay plus a random jitter after it was
/// queued, never before the message ahead of it (TCP does not reorder).
struct DueTimes {
    delay: Delay,
    /// A cheap generator for the jitter (xorshift), seeded from the OS.
    state: u64,
    previous: Instant,
}

impl DueTimes {
    fn new(delay: Delay) -> DueTimes {
        let seed = u64::from_le_bytes(wire::nonce()[..8].try_into().expect("eight bytes"));
        DueTimes {
            delay,
            state: seed | 1,
            previous: Instant::now(),
        }
    }

    /// The due time of the next message, queued at `queued`. Called once per message.
    fn of(&mut self, queued: Instant) -> Instant {
        if self.delay.base.is_zero() && self.delay.jitter.is_zero() {
            return queued;
        }
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        let jitter_us = self.delay.jitter.as_micros() as u64;
        let extra = Duration::from_micros(if jitter_us == 0 {
            0
        } else {
            self.state % (jitter_us + 1)
        });
        let due = (queued + self.delay.base + extra).max(self.previous);
        self.previous = due;
        due
    }
}

/// Reads messages and hands them on as [`Event::Message`] until the link fails, the peer
/// falls silent or breaks the protocol, or the runtime is gone. Waiting to hand a message on
/// stops reading, so a busy runtime slows its peers down through TCP.
pub async fn read_loop(
    mut stream: futures_util::stream::SplitStream<Link>,
    sid: u64,
    events: mpsc::Sender<Event>,
) -> SessionError {
    loop {
        let frame = match timeout(SILENCE_TIMEOUT, stream.next()).await {
            Err(_) => return SessionError::Timeout,
            Ok(None) => return SessionError::Closed,
            Ok(Some(Err(e))) => return e.into(),
            Ok(Some(Ok(frame))) => frame,
        };
        let message = match wire::decode(&frame) {
            Ok(message) => message,
            Err(e) => return e.into(),
        };
        if events.send(Event::Message { sid, message }).await.is_err() {
            return SessionError::Closed;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_times_hold_each_message_the_delay_and_never_reorder() {
        let delay = Delay {
            base: Duration::from_millis(40),
            jitter: Duration::from_millis(20),
        };
        let mut due = DueTimes::new(delay);
        let start = Instant::now();
        let mut last = start;
        for i in 0..1000u64 {
            let queued = start + Duration::from_micros(i * 100);
            let at = due.of(queued);
            assert!(at >= queued + delay.base, "held at least the fixed delay");
            assert!(at >= last, "never ahead of the message before it");
            assert!(
                at <= (queued + delay.base + delay.jitter).max(last),
                "held no longer than delay and jitter, or its predecessor"
            );
            last = at;
        }
        let mut none = DueTimes::new(Delay::default());
        assert_eq!(none.of(start), start, "no delay configured: due at once");
    }
}
