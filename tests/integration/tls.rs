//! TLS and mutual TLS with certificates made for the test by a throwaway CA (no key files
//! are committed).

use std::path::Path;

use rcgen::{BasicConstraints, Certificate, CertificateParams, IsCa, KeyPair};
use ssod::proto::{self, session_service_client::SessionServiceClient};
use tonic::transport::{Certificate as TonicCertificate, Channel, ClientTlsConfig, Identity};

use crate::harness::{Backend, TestServer};

struct Pki {
    ca: Certificate,
    ca_key: KeyPair,
}

impl Pki {
    fn new() -> Self {
        let ca_key = KeyPair::generate().expect("ca key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = params.self_signed(&ca_key).expect("ca cert");
        Self { ca, ca_key }
    }

    /// A leaf certificate and key, as PEM.
    fn leaf(&self, name: &str) -> (String, String) {
        let key = KeyPair::generate().expect("key");
        let cert = CertificateParams::new(vec![name.to_string()])
            .expect("params")
            .signed_by(&key, &self.ca, &self.ca_key)
            .expect("signed");
        (cert.pem(), key.serialize_pem())
    }
}

fn write(dir: &Path, name: &str, contents: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write pem");
    path
}

async fn call(channel: Channel) -> Result<proto::CreateSessionResponse, tonic::Status> {
    SessionServiceClient::new(channel)
        .create_session(proto::CreateSessionRequest::default())
        .await
        .map(|r| r.into_inner())
}

async fn connect(address: std::net::SocketAddr, tls: Option<ClientTlsConfig>) -> Option<Channel> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut endpoint =
        Channel::from_shared(format!("{scheme}://localhost:{}", address.port())).expect("uri");
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls).expect("client tls");
    }
    endpoint.connect().await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_admits_only_clients_with_a_certificate_from_the_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::new();
    let (server_cert, server_key) = pki.leaf("localhost");
    let (client_cert, client_key) = pki.leaf("client");
    let stranger = Pki::new();
    let (stranger_cert, stranger_key) = stranger.leaf("client");
    let ca_pem = pki.ca.pem();
    let server = TestServer::start_with(Backend::Memory, |config| {
        config.tls.cert = Some(write(dir.path(), "server.pem", &server_cert));
        config.tls.key = Some(write(dir.path(), "server.key", &server_key));
        config.tls.client_ca = Some(write(dir.path(), "ca.pem", &ca_pem));
    })
    .await;
    let ca = TonicCertificate::from_pem(&ca_pem);
    let with_identity = |cert: &str, key: &str| {
        ClientTlsConfig::new()
            .ca_certificate(ca.clone())
            .domain_name("localhost")
            .identity(Identity::from_pem(cert, key))
    };

    let trusted = connect(
        server.address,
        Some(with_identity(&client_cert, &client_key)),
    )
    .await
    .expect("mTLS connects");
    let guest = call(trusted).await.expect("a call over mTLS");
    assert!(guest.ust.starts_with("ssod_ust_"));

    let anonymous = connect(
        server.address,
        Some(
            ClientTlsConfig::new()
                .ca_certificate(ca.clone())
                .domain_name("localhost"),
        ),
    )
    .await;
    if let Some(channel) = anonymous {
        assert!(
            call(channel).await.is_err(),
            "no client certificate must be refused"
        );
    }
    let untrusted = connect(
        server.address,
        Some(with_identity(&stranger_cert, &stranger_key)),
    )
    .await;
    if let Some(channel) = untrusted {
        assert!(
            call(channel).await.is_err(),
            "a certificate from another CA must be refused"
        );
    }
    let plaintext = connect(server.address, None).await;
    if let Some(channel) = plaintext {
        assert!(call(channel).await.is_err(), "plaintext must be refused");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_without_client_certificates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::new();
    let (server_cert, server_key) = pki.leaf("localhost");
    let server = TestServer::start_with(Backend::Memory, |config| {
        config.tls.cert = Some(write(dir.path(), "server.pem", &server_cert));
        config.tls.key = Some(write(dir.path(), "server.key", &server_key));
    })
    .await;
    let tls = ClientTlsConfig::new()
        .ca_certificate(TonicCertificate::from_pem(pki.ca.pem()))
        .domain_name("localhost");
    let channel = connect(server.address, Some(tls))
        .await
        .expect("TLS connects");
    call(channel).await.expect("a call over TLS");
    // A client that does not trust the server's CA cannot connect.
    let other = Pki::new();
    let distrustful = ClientTlsConfig::new()
        .ca_certificate(TonicCertificate::from_pem(other.ca.pem()))
        .domain_name("localhost");
    if let Some(channel) = connect(server.address, Some(distrustful)).await {
        assert!(call(channel).await.is_err());
    }
}
