//! Opening peer links: accepting and dialling, over mutual TLS when `--certs-dir` is set,
//! then the peer handshake ([`session::handshake`]) in a task of its own. An established
//! session is handed to the runtime as an [`Event::Session`].

use super::session::{self, Link, SessionError};
use super::{Event, Runtime};
use crate::server::Stream;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

/// The name a dialler gives in its TLS hello: listeners are checked by the node id their
/// certificate names, not by the address dialled (see `tls::names_node`).
const PEER_SERVER_NAME: &str = "peer.node.meridian";

/// A peer connection with TLS done (when configured): the framed link and the certificate
/// the peer presented.
type Secured = (Link, Option<CertificateDer<'static>>);

fn plain(stream: TcpStream) -> Secured {
    (session::frame(Box::new(stream) as Box<dyn Stream>), None)
}

impl Runtime {
    /// Runs the handshake of a connection a peer opened.
    pub(super) fn accept(&self, stream: TcpStream) {
        if self.is_isolated() {
            return;
        }
        let Ok(permit) = self.handshakes.clone().try_acquire_owned() else {
            tracing::warn!("too many peer handshakes at once; closing a new connection");
            return;
        };
        let (me, secret, events) = (self.me.clone(), self.secret.clone(), self.events_tx.clone());
        let (origin, vv) = (self.core.me(), self.core.durable_vv().clone());
        let members = self.member_list();
        let tls = self.shared.certs.peer();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let secured = match tls {
                None => Ok(plain(stream)),
                Some(tls) => {
                    let accept = tls.acceptor.accept(stream);
                    match tokio::time::timeout(session::HANDSHAKE_TIMEOUT, accept).await {
                        Err(_) => Err(SessionError::Timeout),
                        Ok(Err(e)) => Err(SessionError::Tls(e.to_string())),
                        Ok(Ok(s)) => {
                            let cert = s.get_ref().1.peer_certificates().and_then(|c| c.first());
                            let cert = cert.map(|c| c.clone().into_owned());
                            Ok((session::frame(Box::new(s) as Box<dyn Stream>), cert))
                        }
                    }
                }
            };
            let result = match secured {
                Ok((link, cert)) => {
                    session::handshake(link, cert, &me, &secret, origin, vv, members).await
                }
                Err(e) => Err(e),
            };
            drop(permit);
            match result {
                Ok(established) => {
                    let dialer = established.peer.name.clone();
                    let _ = events
                        .send(Event::Session {
                            dialer,
                            established: Box::new(established),
                        })
                        .await;
                }
                Err(SessionError::SelfConnection) => {}
                Err(e) => {
                    metrics::counter!("meridian_peer_handshake_failures_total").increment(1);
                    tracing::warn!(error = %e, "peer handshake failed");
                }
            }
        });
    }

    /// Dials `addr` and runs the handshake; tells the runtime whom it reached.
    pub(super) fn dial(&self, addr: String) {
        let (me, secret, events) = (self.me.clone(), self.secret.clone(), self.events_tx.clone());
        let (origin, vv) = (self.core.me(), self.core.durable_vv().clone());
        let members = self.member_list();
        let tls = self.shared.certs.peer();
        tokio::spawn(async move {
            let result = tokio::time::timeout(session::HANDSHAKE_TIMEOUT, async {
                let stream = TcpStream::connect(&addr).await?;
                let _ = stream.set_nodelay(true);
                let (link, cert) = match tls {
                    None => plain(stream),
                    Some(tls) => {
                        let name = ServerName::try_from(PEER_SERVER_NAME).expect("a DNS name");
                        let s = tls
                            .connector
                            .connect(name, stream)
                            .await
                            .map_err(|e| SessionError::Tls(e.to_string()))?;
                        let cert = s.get_ref().1.peer_certificates().and_then(|c| c.first());
                        let cert = cert.map(|c| c.clone().into_owned());
                        (session::frame(Box::new(s) as Box<dyn Stream>), cert)
                    }
                };
                session::handshake(link, cert, &me, &secret, origin, vv, members).await
            })
            .await
            .unwrap_or(Err(SessionError::Timeout));
            let reached = match result {
                Ok(established) => {
                    let name = established.peer.name.clone();
                    let _ = events
                        .send(Event::Session {
                            dialer: me.name.clone(),
                            established: Box::new(established),
                        })
                        .await;
                    Ok(name)
                }
                Err(SessionError::SelfConnection) => Ok(me.name.clone()),
                Err(e) => {
                    if matches!(
                        e,
                        SessionError::Auth(_) | SessionError::Frame(_) | SessionError::Tls(_)
                    ) {
                        metrics::counter!("meridian_peer_handshake_failures_total").increment(1);
                        tracing::warn!(addr, error = %e, "peer handshake failed");
                    }
                    Err(e.to_string())
                }
            };
            let _ = events.send(Event::Dialed { addr, reached }).await;
        });
    }
}
