//! A test certificate authority (rcgen).

/// A certificate authority for TLS tests, and certificates it signs.
pub struct Pki {
    dir: super::users::Scratch,
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
}

impl Pki {
    /// A new CA in a scratch directory (`ca.pem`).
    pub fn new(tag: &str) -> Pki {
        let dir = super::users::Scratch::new(tag);
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(rcgen::DnType::CommonName, format!("{tag} CA"));
        let ca = p.self_signed(&ca_key).unwrap();
        std::fs::write(dir.0.join("ca.pem"), ca.pem()).unwrap();
        Pki { dir, ca, ca_key }
    }

    /// A file of the directory.
    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.0.join(name)
    }

    /// A certificate for `cn` (and `sans`), for a server or a client;
    /// writes NAME.pem and NAME.key.
    pub fn issue(&self, name: &str, cn: &str, sans: &[&str], server: bool) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        p.extended_key_usages = vec![if server {
            rcgen::ExtendedKeyUsagePurpose::ServerAuth
        } else {
            rcgen::ExtendedKeyUsagePurpose::ClientAuth
        }];
        let cert = p.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        std::fs::write(self.path(&format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(self.path(&format!("{name}.key")), key.serialize_pem()).unwrap();
    }

    /// The client options for certificate `name`.
    pub fn client(&self, name: &str) -> utrace_client::TlsOptions {
        utrace_client::TlsOptions {
            ca: self.path("ca.pem"),
            cert: self.path(&format!("{name}.pem")),
            key: self.path(&format!("{name}.key")),
            domain: Some("localhost".into()),
        }
    }

    /// A server configuration listening on `tls://127.0.0.1:0` with this
    /// CA's `server` certificate, requiring client certificates of this CA
    /// and mapping them by the `identities` file.
    pub fn tls_server_config(&self) -> utraced::Config {
        utraced::Config {
            listen: vec![utraced::ListenAddr::parse("tls://127.0.0.1:0", false)
                .expect("a TLS listen address")],
            inherited: Vec::new(),
            limits: Default::default(),
            observe_only: Vec::new(),
            tls: Some(utraced::TlsFiles {
                cert: self.path("server.pem"),
                key: self.path("server.key"),
                client_ca: self.path("ca.pem"),
                identities: self.path("identities"),
            }),
            journal: None,
            metrics_listen: None,
        }
    }
}
