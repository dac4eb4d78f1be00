//! TLS for a node: its server side (certificate and key, and with a client CA, mutual TLS:
//! every client and peer must present a certificate that CA signed) and its client side
//! towards peers (their CA, and its own certificate for their mutual TLS). PEM files, rustls
//! with ring.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

/// The PEM files of a node's TLS.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The CA that signed the peers' certificates (checked when this node calls them).
    pub ca: PathBuf,
    /// With it, clients must present a certificate it signed (mutual TLS).
    pub client_ca: Option<PathBuf>,
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(&read(path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in the file", path.display()));
    }
    Ok(certs)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsFiles {
    /// The server side: HTTP/2 and HTTP/1.1 offered by ALPN.
    ///
    /// # Errors
    /// A file is missing or holds no usable certificate or key (named).
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, String> {
        let certs = certificates(&self.cert)?;
        let key = PrivateKeyDer::from_pem_slice(&read(&self.key)?)
            .map_err(|e| format!("{}: {e}", self.key.display()))?;
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?;
        let builder = match &self.client_ca {
            Some(path) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in certificates(path)? {
                    roots.add(cert).map_err(|e| format!("{}: {e}", path.display()))?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider(),
                )
                .build()
                .map_err(|e| format!("{}: {e}", path.display()))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(certs, key)
            .map_err(|e| format!("{} / {}: {e}", self.cert.display(), self.key.display()))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// The client side towards peers (and for forwarded writes).
    ///
    /// # Errors
    /// A file cannot be read.
    pub fn client_config(&self) -> Result<ClientTlsConfig, String> {
        let ca = Certificate::from_pem(read(&self.ca)?);
        let identity = Identity::from_pem(read(&self.cert)?, read(&self.key)?);
        Ok(ClientTlsConfig::new().ca_certificate(ca).identity(identity))
    }
}
