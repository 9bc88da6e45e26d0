//! `meridian cert`: the cluster's certificate authority and the certificates it issues, in
//! the manner of `cockroach cert`.
//!
//! - `create-ca` makes the CA: `ca.crt` in the certs directory, its key where `--ca-key` says
//!   (keep it off the nodes).
//! - `create-node <node-id> <address>...` makes `node.crt` and `node.key` for one node: for
//!   server and client use (peer links are mutual TLS, and the same files serve `--tls-port`),
//!   naming the node (`<node-id>.node.meridian`, which peers check against the id a node
//!   claims) and the addresses it is reached at.
//! - `create-client <user>` makes `client.<user>.crt` and `.key`, for clients of `--tls-port`
//!   under `--tls-auth-clients yes`.
//! - `list` shows what the directory holds.
//!
//! Keys are ECDSA P-256, written with mode 0600. Nothing is overwritten: a file that exists
//! stops the command. Nothing issued outlives its CA (a longer lifetime is cut to the CA's end).

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use node::tls::{CA_CERT, NODE_CERT, NODE_KEY, node_dns_name};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData,
};
use std::io::Write;
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

/// `meridian cert ...`.
#[derive(Subcommand, Debug)]
pub enum CertCommand {
    /// Make the cluster's CA: ca.crt in --certs-dir, its key at --ca-key.
    CreateCa {
        #[command(flatten)]
        dirs: Dirs,
        /// Days the CA is valid.
        #[arg(long, default_value_t = 3650)]
        lifetime_days: i64,
    },
    /// Make node.crt and node.key for one node, signed by the CA.
    CreateNode {
        /// The node's --node-id (letters, digits, '-' and '_').
        node_id: String,
        /// Addresses (IPs or host names) clients and peers reach the node at.
        addresses: Vec<String>,
        #[command(flatten)]
        dirs: Dirs,
        /// Days the certificate is valid (at most as long as the CA).
        #[arg(long, default_value_t = 1825)]
        lifetime_days: i64,
    },
    /// Make client.<user>.crt and .key for a client of --tls-port, signed by the CA.
    CreateClient {
        /// The user the certificate is for.
        user: String,
        #[command(flatten)]
        dirs: Dirs,
        /// Days the certificate is valid (at most as long as the CA).
        #[arg(long, default_value_t = 1825)]
        lifetime_days: i64,
    },
    /// List the certificates in --certs-dir.
    List {
        /// The directory.
        #[arg(long, default_value = "certs")]
        certs_dir: PathBuf,
    },
}

/// Where certificates and the CA key are.
#[derive(Args, Debug, Clone)]
pub struct Dirs {
    /// The directory of ca.crt and what is issued.
    #[arg(long, default_value = "certs")]
    pub certs_dir: PathBuf,
    /// The CA's private key (keep it away from the nodes).
    #[arg(long)]
    pub ca_key: PathBuf,
}

/// Runs one `meridian cert` command, printing what it wrote.
pub fn run(command: CertCommand) -> anyhow::Result<()> {
    match command {
        CertCommand::CreateCa {
            dirs,
            lifetime_days,
        } => create_ca(&dirs, lifetime_days)?,
        CertCommand::CreateNode {
            node_id,
            addresses,
            dirs,
            lifetime_days,
        } => create_node(&dirs, &node_id, &addresses, lifetime_days)?,
        CertCommand::CreateClient {
            user,
            dirs,
            lifetime_days,
        } => create_client(&dirs, &user, lifetime_days)?,
        CertCommand::List { certs_dir } => {
            print!("{}", list(&certs_dir)?);
            return Ok(());
        }
    }
    .iter()
    .for_each(|written| println!("wrote {}", written.display()));
    Ok(())
}

/// Writes `contents` to a new file (never over an existing one), with `mode`.
fn write_new(path: &Path, contents: &str, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| match path.exists() {
            true => format!("{} exists: not overwriting it", path.display()),
            false => format!("writing {}", path.display()),
        })?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

fn refuse_existing(paths: &[&Path]) -> anyhow::Result<()> {
    for p in paths {
        if p.exists() {
            bail!("{} exists: not overwriting it", p.display());
        }
    }
    Ok(())
}

fn validity(params: &mut CertificateParams, days: i64, until: Option<OffsetDateTime>) {
    let now = OffsetDateTime::now_utc();
    // An hour back, for clocks a little behind the issuer's.
    params.not_before = now - Duration::hours(1);
    let end = now + Duration::days(days);
    params.not_after = until.map_or(end, |ca_end| end.min(ca_end));
}

fn positive(days: i64) -> anyhow::Result<()> {
    if days <= 0 {
        bail!("--lifetime-days must be positive");
    }
    Ok(())
}

/// Makes the CA; answers the files written.
pub fn create_ca(dirs: &Dirs, lifetime_days: i64) -> anyhow::Result<Vec<PathBuf>> {
    positive(lifetime_days)?;
    let ca_cert = dirs.certs_dir.join(CA_CERT);
    refuse_existing(&[&ca_cert, &dirs.ca_key])?;
    std::fs::create_dir_all(&dirs.certs_dir)
        .with_context(|| format!("creating {}", dirs.certs_dir.display()))?;
    if let Some(parent) = dirs.ca_key.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "Meridian cluster CA");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Meridian");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut params, lifetime_days, None);
    let cert = params.self_signed(&key)?;
    write_new(&dirs.ca_key, &key.serialize_pem(), 0o600)?;
    write_new(&ca_cert, &cert.pem(), 0o644)?;
    Ok(vec![dirs.ca_key.clone(), ca_cert])
}

/// The CA, read back to sign with: its issuer and when it ends.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    not_after: OffsetDateTime,
}

fn load_ca(dirs: &Dirs) -> anyhow::Result<Ca> {
    let ca_cert = dirs.certs_dir.join(CA_CERT);
    let pem = std::fs::read_to_string(&ca_cert).with_context(|| {
        format!(
            "reading {} (make the CA with meridian cert create-ca)",
            ca_cert.display()
        )
    })?;
    let key_pem = std::fs::read_to_string(&dirs.ca_key)
        .with_context(|| format!("reading {}", dirs.ca_key.display()))?;
    let key = KeyPair::from_pem(&key_pem)
        .with_context(|| format!("{} is not a private key", dirs.ca_key.display()))?;
    let (_, parsed) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| anyhow::anyhow!("{}: {e}", ca_cert.display()))?;
    let x509 = parsed
        .parse_x509()
        .map_err(|e| anyhow::anyhow!("{}: {e}", ca_cert.display()))?;
    if x509.public_key().raw != key.subject_public_key_info().as_slice() {
        bail!(
            "{} is not the key of {}",
            dirs.ca_key.display(),
            ca_cert.display()
        );
    }
    if !x509.is_ca() {
        bail!("{} is not a CA certificate", ca_cert.display());
    }
    let not_after = x509.validity().not_after.to_datetime();
    if not_after <= OffsetDateTime::now_utc() {
        bail!("the CA {} has expired", ca_cert.display());
    }
    let issuer = Issuer::from_ca_cert_pem(&pem, key)
        .with_context(|| format!("reading {}", ca_cert.display()))?;
    Ok(Ca { issuer, not_after })
}

/// Whether `id` can be a node id in a certificate (a DNS label).
fn valid_node_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 63
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !id.starts_with('-')
        && !id.ends_with('-')
}

/// Makes `node.crt` and `node.key` for `node_id`; answers the files written.
pub fn create_node(
    dirs: &Dirs,
    node_id: &str,
    addresses: &[String],
    lifetime_days: i64,
) -> anyhow::Result<Vec<PathBuf>> {
    positive(lifetime_days)?;
    if !valid_node_id(node_id) {
        bail!(
            "node id {node_id:?}: a certificate names nodes by ids of letters, digits, '-' and '_' (at most 63)"
        );
    }
    if addresses.is_empty() {
        bail!("name at least one address the node is reached at (an IP or a host name)");
    }
    let (cert_path, key_path) = (
        dirs.certs_dir.join(NODE_CERT),
        dirs.certs_dir.join(NODE_KEY),
    );
    refuse_existing(&[&cert_path, &key_path])?;
    let ca = load_ca(dirs)?;
    let mut names = vec![node_dns_name(node_id)];
    names.extend(addresses.iter().cloned());
    let mut params =
        CertificateParams::new(names).context("addresses must be IP addresses or host names")?;
    params.distinguished_name.push(DnType::CommonName, node_id);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Meridian");
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    issue(params, &ca, lifetime_days, key_path, cert_path)
}

/// Signs `params` with the CA, valid for `lifetime_days` (at most as long as the CA), with a
/// new key; writes the key and the certificate.
fn issue(
    mut params: CertificateParams,
    ca: &Ca,
    lifetime_days: i64,
    key_path: PathBuf,
    cert_path: PathBuf,
) -> anyhow::Result<Vec<PathBuf>> {
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, lifetime_days, Some(ca.not_after));
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca.issuer)?;
    write_new(&key_path, &key.serialize_pem(), 0o600)?;
    write_new(&cert_path, &cert.pem(), 0o644)?;
    Ok(vec![key_path, cert_path])
}

/// Makes `client.<user>.crt` and `.key`; answers the files written.
pub fn create_client(dirs: &Dirs, user: &str, lifetime_days: i64) -> anyhow::Result<Vec<PathBuf>> {
    positive(lifetime_days)?;
    if user.is_empty() || user.contains(['/', '\0']) {
        bail!("user {user:?}: a client certificate's file is named after its user");
    }
    let cert_path = dirs.certs_dir.join(format!("client.{user}.crt"));
    let key_path = dirs.certs_dir.join(format!("client.{user}.key"));
    refuse_existing(&[&cert_path, &key_path])?;
    let ca = load_ca(dirs)?;
    let mut params = CertificateParams::new(Vec::new())?;
    params.distinguished_name.push(DnType::CommonName, user);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Meridian");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    issue(params, &ca, lifetime_days, key_path, cert_path)
}

/// A table of the certificates in `dir`: file, use, names, end of validity.
pub fn list(dir: &Path) -> anyhow::Result<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "crt"))
        .collect();
    files.sort();
    let mut out = format!("{:<24} {:<8} {:<26} names\n", "file", "use", "expires");
    for path in files {
        let pem = std::fs::read(&path)?;
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let Ok((_, parsed)) = x509_parser::pem::parse_x509_pem(&pem) else {
            out += &format!("{name:<24} (not a PEM certificate)\n");
            continue;
        };
        let Ok(x509) = parsed.parse_x509() else {
            out += &format!("{name:<24} (not a certificate)\n");
            continue;
        };
        let usage = if x509.is_ca() {
            "ca"
        } else if name.starts_with("client.") {
            "client"
        } else {
            "node"
        };
        let mut names: Vec<String> = x509
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok().map(|s| format!("CN={s}")))
            .collect();
        if let Ok(Some(san)) = x509.subject_alternative_name() {
            names.extend(san.value.general_names.iter().map(general_name));
        }
        let end = x509.validity().not_after.to_datetime();
        let expired = if end <= OffsetDateTime::now_utc() {
            " (expired)"
        } else {
            ""
        };
        let date = format!(
            "{:04}-{:02}-{:02}{expired}",
            end.year(),
            u8::from(end.month()),
            end.day()
        );
        out += &format!("{name:<24} {usage:<8} {date:<26} {}\n", names.join(", "));
    }
    Ok(out)
}

/// A subject alternative name as `openssl x509 -text` shows it.
fn general_name(name: &x509_parser::extensions::GeneralName) -> String {
    use x509_parser::extensions::GeneralName;
    match name {
        GeneralName::DNSName(s) => format!("DNS:{s}"),
        GeneralName::IPAddress(b) => match b.len() {
            4 => format!("IP:{}", std::net::Ipv4Addr::from([b[0], b[1], b[2], b[3]])),
            16 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(b);
                format!("IP:{}", std::net::Ipv6Addr::from(a))
            }
            _ => "IP:?".into(),
        },
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs(base: &Path) -> Dirs {
        Dirs {
            certs_dir: base.join("certs"),
            ca_key: base.join("safe/ca.key"),
        }
    }

    #[test]
    fn a_node_certificate_is_the_cas_names_its_node_and_is_never_overwritten() {
        let base = std::env::temp_dir().join(format!("meridian-cert-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let d = dirs(&base);
        create_ca(&d, 30).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&d.ca_key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the CA key is private");
        assert!(create_ca(&d, 30).is_err(), "an existing CA is kept");

        // Asked for longer than the CA lives: cut to the CA's end.
        create_node(&d, "eu-1", &["127.0.0.1".into(), "eu.example".into()], 3650).unwrap();
        assert!(
            create_node(&d, "eu-1", &["127.0.0.1".into()], 30).is_err(),
            "an existing node certificate is kept"
        );
        let key_mode = std::fs::metadata(d.certs_dir.join(NODE_KEY))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(key_mode & 0o777, 0o600);
        // The node loads it as eu-1's, and as no other node's.
        assert!(node::tls::peer_tls(&d.certs_dir, "eu-1").is_ok());
        let wrong = node::tls::peer_tls(&d.certs_dir, "us-1").err().unwrap();
        assert!(
            wrong.to_string().contains("not a certificate of node"),
            "{wrong}"
        );

        let table = list(&d.certs_dir).unwrap();
        let ca_line = table.lines().find(|l| l.starts_with("ca.crt")).unwrap();
        let node_line = table.lines().find(|l| l.starts_with("node.crt")).unwrap();
        assert!(node_line.contains("eu-1.node.meridian"), "{table}");
        assert!(node_line.contains("127.0.0.1"), "{table}");
        // The node's end is the CA's (both at most 30 days away).
        assert_eq!(
            ca_line.split_whitespace().nth(2),
            node_line.split_whitespace().nth(2)
        );

        create_client(&d, "alice", 10).unwrap();
        assert!(list(&d.certs_dir).unwrap().contains("CN=alice"));
        assert!(create_node(&d, "bad id", &["127.0.0.1".into()], 30).is_err());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
