//! TLS, on rustls over ring (no OpenSSL, no aws-lc).
//!
//! For clients (`--tls-port`): RESP over TLS beside the plain port, as Redis's `tls-port`,
//! TLS 1.2 and 1.3. The node presents `--tls-cert-file` (with `--tls-key-file`); with
//! `--tls-auth-clients yes` (Redis's default) a client must present a certificate signed by
//! `--tls-ca-cert-file`, with `optional` it may, with `no` it is not asked. A client
//! certificate proves only that the client holds one: who the client is, and what it may do,
//! is still its login (`acl.rs`).
//!
//! For peers (`--certs-dir`): mutual TLS 1.3 against the cluster's CA (`ca.crt`), each node
//! presenting `node.crt` (made by `meridian cert create-node`, for server and client use).
//! The TLS handshake proves the certificate is the CA's; the peer handshake then checks that
//! it names the node the peer says it is ([`names_node`]), so a stolen certificate of one node
//! cannot pose as another.
//!
//! [`Certs`] holds both, and reloads them from their files (SIGHUP): new connections use the
//! new certificates, established ones go on.

use membership::Keyring;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// The cluster CA's certificate in `--certs-dir`.
pub const CA_CERT: &str = "ca.crt";
/// The node's certificate in `--certs-dir`.
pub const NODE_CERT: &str = "node.crt";
/// The node's private key in `--certs-dir`.
pub const NODE_KEY: &str = "node.key";
/// Node certificates name their node as `<node id>.` followed by this (a DNS name in the
/// subject alternative names), beside the addresses the node is reached at.
pub const NODE_NAME_SUFFIX: &str = "node.meridian";

/// The DNS name a node certificate carries for node `id`.
pub fn node_dns_name(id: &str) -> String {
    format!("{id}.{NODE_NAME_SUFFIX}")
}

/// Whether clients present certificates (`--tls-auth-clients`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// They must, signed by the CA.
    Required,
    /// They may; one that does must be signed by the CA.
    Optional,
    /// They are not asked.
    No,
}

/// The `--tls-*` settings.
#[derive(Clone, Debug)]
pub struct TlsConfig {
    /// The TLS listener's port, on the RESP listener's address.
    pub port: u16,
    /// The node's certificate chain (PEM).
    pub cert_file: PathBuf,
    /// Its private key (PEM).
    pub key_file: PathBuf,
    /// The CA that signs client certificates (PEM).
    pub ca_cert_file: Option<PathBuf>,
    pub auth_clients: ClientAuth,
}

/// Why TLS could not be set up: said at start, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("TLS: {0}")]
pub struct TlsError(String);

fn read_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let fail = |e: &dyn std::fmt::Display| TlsError(format!("{what} {}: {e}", path.display()));
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| fail(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(&e))?;
    if certs.is_empty() {
        return Err(fail(&"holds no certificate"));
    }
    Ok(certs)
}

/// The one crypto provider: ring.
fn provider() -> Arc<CryptoProvider> {
    // rustls deprecates its ring provider in favour of aws-lc-rs, whose C build this project
    // leaves out on purpose (issue 14); ring offers no post-quantum key exchange.
    #[allow(deprecated)]
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_roots(path: &Path, what: &str) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in read_certs(path, what)? {
        roots
            .add(cert)
            .map_err(|e| TlsError(format!("{what} {}: {e}", path.display())))?;
    }
    Ok(roots)
}

/// The acceptor for the TLS listener, from the files named in `config`.
pub fn acceptor(config: &TlsConfig) -> Result<TlsAcceptor, TlsError> {
    let provider = provider();
    let certs = read_certs(&config.cert_file, "--tls-cert-file")?;
    let key = PrivateKeyDer::from_pem_file(&config.key_file)
        .map_err(|e| TlsError(format!("--tls-key-file {}: {e}", config.key_file.display())))?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .map_err(|e| TlsError(e.to_string()))?;
    let builder = match (config.auth_clients, &config.ca_cert_file) {
        (ClientAuth::No, _) => builder.with_no_client_auth(),
        (_, None) => {
            return Err(TlsError(
                "--tls-auth-clients yes or optional needs --tls-ca-cert-file (or say --tls-auth-clients no)"
                    .into(),
            ));
        }
        (mode, Some(ca)) => {
            let roots = read_roots(ca, "--tls-ca-cert-file")?;
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            );
            let verifier = match mode {
                ClientAuth::Optional => verifier.allow_unauthenticated(),
                _ => verifier,
            };
            builder
                .with_client_cert_verifier(verifier.build().map_err(|e| TlsError(e.to_string()))?)
        }
    };
    let server = builder.with_single_cert(certs, key).map_err(|e| {
        TlsError(format!(
            "--tls-cert-file {} and --tls-key-file {}: {e}",
            config.cert_file.display(),
            config.key_file.display()
        ))
    })?;
    Ok(TlsAcceptor::from(Arc::new(server)))
}

/// Both ends of peer links: the acceptor asks for the dialer's certificate, the connector
/// presents this node's and checks the listener's.
pub struct PeerTls {
    /// For connections peers opened.
    pub acceptor: TlsAcceptor,
    /// For connections this node opens.
    pub connector: TlsConnector,
}

/// Whether `cert` (a peer's, already verified as the CA's by the TLS handshake) names node
/// `id`.
pub fn names_node(cert: &CertificateDer<'_>, id: &str) -> bool {
    let Ok(name) = ServerName::try_from(node_dns_name(id)) else {
        return false;
    };
    ParsedCertificate::try_from(cert)
        .and_then(|c| rustls::client::verify_server_name(&c, &name))
        .is_ok()
}

/// Peer TLS from `dir` for node `id`: refuses a node certificate that is not the CA's, has
/// expired, or names another node, so a mistake shows at start and not as refused links.
pub fn peer_tls(dir: &Path, id: &str) -> Result<PeerTls, TlsError> {
    let provider = provider();
    let (ca, cert_file, key_file) = (dir.join(CA_CERT), dir.join(NODE_CERT), dir.join(NODE_KEY));
    let roots = Arc::new(read_roots(&ca, "--certs-dir")?);
    let certs = read_certs(&cert_file, "--certs-dir")?;
    let key = PrivateKeyDer::from_pem_file(&key_file)
        .map_err(|e| TlsError(format!("--certs-dir {}: {e}", key_file.display())))?;
    let own = ParsedCertificate::try_from(&certs[0])
        .map_err(|e| TlsError(format!("{}: {e}", cert_file.display())))?;
    rustls::client::verify_server_cert_signed_by_trust_anchor(
        &own,
        &roots,
        &certs[1..],
        UnixTime::now(),
        provider.signature_verification_algorithms.all,
    )
    .map_err(|e| {
        TlsError(format!(
            "{} does not verify against {}: {e}",
            cert_file.display(),
            ca.display()
        ))
    })?;
    if !names_node(&certs[0], id) {
        return Err(TlsError(format!(
            "{} is not a certificate of node {id:?} (it must name {}; make one with meridian cert create-node {id} ...)",
            cert_file.display(),
            node_dns_name(id)
        )));
    }
    let fail = |e: rustls::Error| TlsError(format!("{}: {e}", cert_file.display()));
    let clients = rustls::server::WebPkiClientVerifier::builder_with_provider(
        roots.clone(),
        provider.clone(),
    )
    .build()
    .map_err(|e| TlsError(e.to_string()))?;
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(fail)?
        .with_client_cert_verifier(clients)
        .with_single_cert(certs.clone(), key.clone_key())
        .map_err(fail)?;
    let verifier = Arc::new(ChainOnly {
        roots,
        provider: provider.clone(),
    });
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(fail)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(certs, key)
        .map_err(fail)?;
    Ok(PeerTls {
        acceptor: TlsAcceptor::from(Arc::new(server)),
        connector: TlsConnector::from(Arc::new(client)),
    })
}

/// Checks a listening peer's certificate against the cluster CA, and not against the address
/// dialled: a node is known by the node id its certificate names (checked by the peer
/// handshake against the id it claims), and seeds are often dialled by an address its
/// certificate does not list.
#[derive(Debug)]
struct ChainOnly {
    roots: Arc<rustls::RootCertStore>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The gossip keyring in `path` (see `membership::parse_keyring`).
pub fn read_keyring(path: &Path) -> Result<Keyring, TlsError> {
    let fail =
        |e: &dyn std::fmt::Display| TlsError(format!("--gossip-keyring {}: {e}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| fail(&e))?;
    let keys = membership::parse_keyring(&text).map_err(|e| fail(&e))?;
    Ok(Keyring::new(&keys).expect("parse_keyring returns at least one key"))
}

/// The node's key material, reloadable: the client listener's acceptor (`--tls-port`), the
/// peer links' ([`PeerTls`], `--certs-dir`) and the gossip keyring (`--gossip-keyring`, or
/// one key derived from `--cluster-secret`).
pub struct Certs {
    client_config: Option<TlsConfig>,
    peer_config: Option<(PathBuf, String)>,
    keyring_file: Option<PathBuf>,
    client: RwLock<Option<TlsAcceptor>>,
    peer: RwLock<Option<Arc<PeerTls>>>,
    keyring: RwLock<Arc<Keyring>>,
}

impl Certs {
    /// Loads what `config` names; an error names the file.
    pub fn load(config: &crate::NodeConfig) -> Result<Certs, TlsError> {
        let secret = config.cluster_secret.as_deref().unwrap_or_default();
        let certs = Certs {
            client_config: config.tls.clone(),
            peer_config: (config.certs_dir.clone()).map(|d| (d, config.node_id.clone())),
            keyring_file: config.gossip_keyring.clone(),
            client: RwLock::new(None),
            peer: RwLock::new(None),
            keyring: RwLock::new(Arc::new(Keyring::from_secret(secret.as_bytes()))),
        };
        certs.reload()?;
        Ok(certs)
    }

    /// Reads the files again; on any error keeps what it had (all or nothing).
    pub fn reload(&self) -> Result<(), TlsError> {
        let client = self.client_config.as_ref().map(acceptor).transpose()?;
        let peer = match &self.peer_config {
            Some((dir, id)) => Some(Arc::new(peer_tls(dir, id)?)),
            None => None,
        };
        let keyring = self.keyring_file.as_deref().map(read_keyring).transpose()?;
        *self.client.write().unwrap_or_else(|e| e.into_inner()) = client;
        *self.peer.write().unwrap_or_else(|e| e.into_inner()) = peer;
        if let Some(keyring) = keyring {
            tracing::info!(keys = ?keyring, "gossip keyring loaded");
            *self.keyring.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keyring);
        }
        Ok(())
    }

    /// The gossip keyring.
    pub fn keyring(&self) -> Arc<Keyring> {
        self.keyring
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The client TLS listener's acceptor, when `--tls-port` is set.
    pub fn client(&self) -> Option<TlsAcceptor> {
        self.client
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Peer TLS, when `--certs-dir` is set.
    pub fn peer(&self) -> Option<Arc<PeerTls>> {
        self.peer.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
