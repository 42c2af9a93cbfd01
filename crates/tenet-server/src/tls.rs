//! TLS for `tenet serve`: reads a PEM certificate chain and private key
//! (OPA's `--tls-cert-file` / `--tls-private-key-file`) into a rustls server
//! configuration that offers HTTP/2 and HTTP/1.1 by ALPN.
//!
//! Everything is checked once, at startup, so a missing, unreadable or
//! malformed file is a [`TlsError`] naming the file before the server says
//! it is listening. The crypto provider is aws-lc-rs, chosen explicitly so
//! the result does not depend on which rustls providers other crates enable.
//!
//! Not here: client-certificate authentication and reloading certificates
//! while running (a restart picks up new files).

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Where the server's certificate chain and private key are.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the server certificate first, then any intermediates.
    pub cert_file: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub private_key_file: PathBuf,
}

/// Why the TLS configuration could not be built. Every variant names the
/// file it is about, where there is one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("reading {what} {}: {source}", path.display())]
    Read {
        /// `certificate file` or `private key file`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file was read but is not valid PEM of the expected kind.
    #[error("parsing {what} {}: {reason}", path.display())]
    Parse {
        /// `certificate file` or `private key file`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What the PEM parser said.
        reason: String,
    },
    /// The certificate and key do not make a usable server configuration
    /// (for example the key does not match the certificate).
    #[error("certificate {} with key {}: {source}", cert.display(), key.display())]
    Config {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        source: rustls::Error,
    },
}

impl TlsConfig {
    /// Reads both files and builds the acceptor.
    pub(crate) fn acceptor(&self) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
        let certs = read_certs(&self.cert_file)?;
        let key = read_key(&self.private_key_file)?;
        let config_error = |source| TlsError::Config {
            cert: self.cert_file.clone(),
            key: self.private_key_file.clone(),
            source,
        };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(config_error)?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(config_error)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }
}

const CERT: &str = "certificate file";
const KEY: &str = "private key file";

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

fn parse_error(what: &'static str, path: &Path, reason: impl ToString) -> TlsError {
    TlsError::Parse {
        what,
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(CERT, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| parse_error(CERT, path, e))?;
    if certs.is_empty() {
        return Err(parse_error(CERT, path, "no CERTIFICATE section found"));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(KEY, path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            parse_error(KEY, path, "no PRIVATE KEY section found")
        }
        other => parse_error(KEY, path, other),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn config(dir: &Path, cert: &str, key: &str) -> TlsConfig {
        std::fs::write(dir.join("cert.pem"), cert).unwrap();
        std::fs::write(dir.join("key.pem"), key).unwrap();
        TlsConfig {
            cert_file: dir.join("cert.pem"),
            private_key_file: dir.join("key.pem"),
        }
    }

    #[test]
    fn missing_and_malformed_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = TlsConfig {
            cert_file: dir.path().join("nope.pem"),
            private_key_file: dir.path().join("key.pem"),
        };
        let Err(e) = missing.acceptor() else {
            panic!("a missing file was accepted")
        };
        assert!(matches!(e, TlsError::Read { .. }), "{e}");
        assert!(e.to_string().contains("nope.pem"), "{e}");

        let Err(e) = config(dir.path(), "not pem at all", "").acceptor() else {
            panic!("a malformed file was accepted")
        };
        assert!(matches!(e, TlsError::Parse { what: CERT, .. }), "{e}");
        assert!(e.to_string().contains("cert.pem"), "{e}");
    }
}
