//! TLS with client certificates, for TCP listeners that others reach
//! (`--listen tls://ADDR:PORT`). rustls (with ring) does the handshake and
//! checks the client's certificate against the configured CA; the
//! certificate's subject common name or one of its subject alternative
//! names is then looked up in the identities file, which says which local
//! uid the client acts as (and whether it may only observe). The uid's
//! primary gid and groups come from the user database, and the client holds
//! no capabilities: it is held to the kernel's ptrace rule for that user,
//! as a local user of that uid would be.
//!
//! The identities file has one mapping per line:
//!
//! ```text
//! # subject                    uid    options
//! CN=alice                     1000
//! SAN=ci-runner.example.com    1001   observe-only
//! SAN=spiffe://example.org/ops 0
//! ```
//!
//! `CN=` matches the subject's common name, `SAN=` a DNS name, URI or IP
//! address among the alternative names, exactly. The first line that
//! matches wins. A client whose certificate matches no line is told so
//! (UNAUTHENTICATED) on every call.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

/// Where the TLS material is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server's certificate chain (PEM).
    pub cert: PathBuf,
    /// The server's private key (PEM).
    pub key: PathBuf,
    /// The CA certificates that sign client certificates (PEM).
    pub client_ca: PathBuf,
    /// Client identities: certificate subject to uid (see the module doc).
    pub identities: PathBuf,
}

/// Why TLS could not be set up; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("--listen tls://… needs --tls-cert, --tls-key, --tls-client-ca and --tls-identities")]
    Missing,
    #[error("{path}: {why}")]
    File { path: PathBuf, why: String },
    #[error("{path}:{line}: {why}")]
    Identity {
        path: PathBuf,
        line: usize,
        why: String,
    },
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// One identity a certificate may carry.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Subject {
    Cn(String),
    San(String),
}

/// Who a certificate's holder acts as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub observe_only: bool,
}

/// The identities file, read.
#[derive(Debug, Default)]
pub struct Identities {
    entries: Vec<(Subject, Identity)>,
}

impl Identities {
    /// Parse the identities file at `path`.
    pub fn load(path: &Path) -> Result<Identities, TlsError> {
        let text = std::fs::read_to_string(path).map_err(|e| TlsError::File {
            path: path.into(),
            why: e.to_string(),
        })?;
        Self::parse(&text).map_err(|(line, why)| TlsError::Identity {
            path: path.into(),
            line,
            why,
        })
    }

    fn parse(text: &str) -> Result<Identities, (usize, String)> {
        let mut entries = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            let err = |why: String| (n + 1, why);
            let subject = match words[0].split_once('=') {
                Some(("CN", v)) if !v.is_empty() => Subject::Cn(v.to_string()),
                Some(("SAN", v)) if !v.is_empty() => Subject::San(v.to_string()),
                _ => return Err(err(format!("{:?}: expected CN=NAME or SAN=NAME", words[0]))),
            };
            let uid = words
                .get(1)
                .and_then(|u| u.parse::<u32>().ok())
                .ok_or_else(|| err("expected a numeric uid after the subject".into()))?;
            let mut observe_only = false;
            for opt in &words[2..] {
                match *opt {
                    "observe-only" => observe_only = true,
                    other => {
                        return Err(err(format!(
                            "unknown option {other:?} (known: observe-only)"
                        )))
                    }
                }
            }
            entries.push((subject, Identity { uid, observe_only }));
        }
        Ok(Identities { entries })
    }

    /// The identity of the holder of `cert` (the leaf, DER), and the names
    /// it carries (for messages).
    pub fn identify(&self, cert: &[u8]) -> (Option<Identity>, String) {
        let Ok((_, x)) = x509_parser::parse_x509_certificate(cert) else {
            return (None, "an unreadable certificate".into());
        };
        let mut names = Vec::new();
        for cn in x.subject().iter_common_name() {
            if let Ok(s) = cn.as_str() {
                names.push(Subject::Cn(s.to_string()));
            }
        }
        if let Ok(Some(san)) = x.subject_alternative_name() {
            use x509_parser::extensions::GeneralName;
            for g in &san.value.general_names {
                let v = match g {
                    GeneralName::DNSName(d) => d.to_string(),
                    GeneralName::URI(u) => u.to_string(),
                    GeneralName::RFC822Name(m) => m.to_string(),
                    GeneralName::IPAddress(ip) => match ip.len() {
                        4 => std::net::Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]).to_string(),
                        16 => {
                            let mut o = [0u8; 16];
                            o.copy_from_slice(ip);
                            std::net::Ipv6Addr::from(o).to_string()
                        }
                        _ => continue,
                    },
                    _ => continue,
                };
                names.push(Subject::San(v));
            }
        }
        let shown = names
            .iter()
            .map(|n| match n {
                Subject::Cn(v) => format!("CN={v}"),
                Subject::San(v) => format!("SAN={v}"),
            })
            .collect::<Vec<_>>()
            .join(", ");
        let found = self
            .entries
            .iter()
            .find(|(s, _)| names.contains(s))
            .map(|(_, id)| *id);
        (found, shown)
    }
}

fn pem_err(path: &Path, what: &str, e: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.into(),
        why: format!("reading {what}: {e}"),
    }
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_err(path, "certificates", e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(path, "certificates", e))?;
    if certs.is_empty() {
        return Err(pem_err(path, "certificates", "no certificate in the file"));
    }
    Ok(certs)
}

/// The acceptor (server certificate, client certificates required and
/// checked against the CA, HTTP/2 only) and the identities.
pub fn load(files: &TlsFiles) -> Result<(TlsAcceptor, Arc<Identities>), TlsError> {
    // ring's provider: no C toolchain beyond what cargo's cc needs, and
    // the key exchanges every TLS 1.2/1.3 client offers.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certs(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| pem_err(&files.key, "the private key", e))?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in certs(&files.client_ca)? {
        roots
            .add(ca)
            .map_err(|e| pem_err(&files.client_ca, "a CA certificate", e))?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| TlsError::Config(e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(format!("{}: {e}", files.key.display())))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    let ids = Identities::load(&files.identities)?;
    Ok((TlsAcceptor::from(Arc::new(config)), Arc::new(ids)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_parse_and_refuse_with_the_line() {
        let ids = Identities::parse(
            "# who\nCN=alice 1000\n\nSAN=ci.example.com 1001 observe-only # a runner\n",
        )
        .unwrap();
        assert_eq!(
            ids.entries,
            vec![
                (
                    Subject::Cn("alice".into()),
                    Identity {
                        uid: 1000,
                        observe_only: false
                    }
                ),
                (
                    Subject::San("ci.example.com".into()),
                    Identity {
                        uid: 1001,
                        observe_only: true
                    }
                ),
            ]
        );
        assert_eq!(
            Identities::parse("CN=a 1\nbob 2\n").unwrap_err(),
            (2, "\"bob\": expected CN=NAME or SAN=NAME".into())
        );
        assert_eq!(Identities::parse("CN=a one").unwrap_err().0, 1);
        assert!(Identities::parse("CN=a 1 admin")
            .unwrap_err()
            .1
            .contains("admin"));
    }
}
