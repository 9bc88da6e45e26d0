//! TLS for clients (`--tls-port`): RESP over TLS beside the plain port, as Redis's `tls-port`.
//!
//! rustls on ring (no OpenSSL, no aws-lc), TLS 1.2 and 1.3 only. The node presents
//! `--tls-cert-file` (with `--tls-key-file`); with `--tls-auth-clients yes` (Redis's default)
//! a client must present a certificate signed by `--tls-ca-cert-file`, with `optional` it may,
//! with `no` it is not asked. A client certificate proves only that the client holds one:
//! who the client is, and what it may do, is still its login (`acl.rs`).

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

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

/// The acceptor for the TLS listener, from the files named in `config`.
pub fn acceptor(config: &TlsConfig) -> Result<TlsAcceptor, TlsError> {
    // rustls deprecates its ring provider in favour of aws-lc-rs, whose C build this project
    // leaves out on purpose (issue 14); ring offers no post-quantum key exchange.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
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
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_certs(ca, "--tls-ca-cert-file")? {
                roots
                    .add(cert)
                    .map_err(|e| TlsError(format!("--tls-ca-cert-file {}: {e}", ca.display())))?;
            }
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
