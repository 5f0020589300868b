//! TLS for gRPC clients: the server's certificate and, for mTLS, the CA its clients' certificates
//! must chain to. In a mesh these stay unset and the sidecar does TLS.

use std::path::PathBuf;

use clap::Args;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

#[derive(Clone, Debug, Args)]
pub struct TlsConfig {
    /// PEM server certificate chain; with `--tls-key` the server speaks TLS.
    #[arg(
        id = "tls_cert",
        long = "tls-cert",
        env = "SSOD_TLS_CERT",
        value_name = "PEM_FILE",
        requires = "tls_key",
        global = true
    )]
    pub cert: Option<PathBuf>,
    #[arg(
        id = "tls_key",
        long = "tls-key",
        env = "SSOD_TLS_KEY",
        value_name = "PEM_FILE",
        requires = "tls_cert",
        global = true
    )]
    pub key: Option<PathBuf>,
    /// PEM CA bundle; when set, clients must present a certificate it signed (mTLS).
    #[arg(
        id = "tls_client_ca",
        long = "tls-client-ca",
        env = "SSOD_TLS_CLIENT_CA",
        value_name = "PEM_FILE",
        requires = "tls_cert",
        global = true
    )]
    pub client_ca: Option<PathBuf>,
}

impl TlsConfig {
    /// The server's TLS, read from the PEM files; `None` serves plaintext (h2c).
    pub fn server_tls(&self) -> std::io::Result<Option<ServerTlsConfig>> {
        let (Some(cert), Some(key)) = (&self.cert, &self.key) else {
            return Ok(None);
        };
        let identity = Identity::from_pem(std::fs::read(cert)?, std::fs::read(key)?);
        let mut tls = ServerTlsConfig::new().identity(identity);
        if let Some(ca) = &self.client_ca {
            tls = tls.client_ca_root(Certificate::from_pem(std::fs::read(ca)?));
        }
        Ok(Some(tls))
    }
}
