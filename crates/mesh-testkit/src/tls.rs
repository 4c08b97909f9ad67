//! A test certificate authority and a server certificate it signed, written as PEM files:
//! for TLS servers under test (coturn's `turns:` port) and the clients told to trust the CA.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

/// The PEM files of [`TestPki::write`].
#[derive(Debug, Clone)]
pub struct TestPki {
    /// The CA's certificate: what a client is told to trust (`--turn-ca`).
    pub ca: PathBuf,
    /// The server's certificate, signed by the CA.
    pub cert: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
}

impl TestPki {
    /// Makes a fresh CA and a server certificate for `names` (DNS names or IP addresses,
    /// each a subject alternative name) and writes `ca.pem`, `server.pem` and
    /// `server.key` into `dir` (created if missing). Panics on failure, as a test wants.
    pub fn write(dir: &Path, names: &[&str]) -> TestPki {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("creating {dir:?}: {e}"));
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().expect("a CA key");
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key).expect("the CA certificate");
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let server_key = KeyPair::generate().expect("a server key");
        let server = CertificateParams::new(names)
            .expect("server certificate params")
            .signed_by(&server_key, &ca)
            .expect("the server certificate");
        let pki = TestPki {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
        };
        for (path, pem) in [
            (&pki.ca, ca.pem()),
            (&pki.cert, server.pem()),
            (&pki.key, server_key.serialize_pem()),
        ] {
            std::fs::write(path, pem).unwrap_or_else(|e| panic!("writing {path:?}: {e}"));
        }
        pki
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_three_pem_files() {
        let dir = std::env::temp_dir().join(format!("mesh-testkit-pki-{}", std::process::id()));
        let pki = TestPki::write(&dir, &["127.0.0.1", "turn.example"]);
        let ca = std::fs::read_to_string(&pki.ca).unwrap();
        let cert = std::fs::read_to_string(&pki.cert).unwrap();
        let key = std::fs::read_to_string(&pki.key).unwrap();
        assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"), "{cert}");
        assert!(key.contains("PRIVATE KEY"), "{key}");
        assert_ne!(ca, cert);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
