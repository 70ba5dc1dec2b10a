//! `--tls`: the endpoint serves HTTPS with a self-signed certificate it makes at start, and the
//! worker trusts it as a Lambda trusts API Gateway's: through the native root store, which
//! `rustls-native-certs` reads from `SSL_CERT_FILE` when that is set. The worker has no trust
//! code of its own, so the run measures the product's production clients, handshakes included.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{self, ServerConfig};

/// The names the certificate is valid for: the worker's URL names `localhost`.
const NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// A fresh self-signed certificate: its PEM, for the client's trust store, and an acceptor
/// that serves it.
pub struct SelfSigned {
    pub cert_pem: String,
    pub acceptor: TlsAcceptor,
}

pub fn self_signed() -> Result<SelfSigned, String> {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(NAMES.map(String::from).to_vec())
            .map_err(|e| format!("generating the certificate: {e}"))?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(signing_key.serialize_der()));
    // ring explicitly: the process-wide default provider is not set, and aws-lc is not built.
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .and_then(|builder| {
            builder
                .with_no_client_auth()
                .with_single_cert(vec![cert.der().clone()], key)
        })
        .map_err(|e: rustls::Error| format!("TLS configuration: {e}"))?;
    // HTTP/1.1 only, as the plain endpoint serves.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(SelfSigned {
        cert_pem: cert.pem(),
        acceptor: TlsAcceptor::from(Arc::new(config)),
    })
}

/// Makes the certificate and writes its PEM to `path`, which must not exist yet (a file planted
/// there beforehand is refused, not trusted); returns the acceptor.
pub fn write_self_signed(path: &Path) -> std::io::Result<TlsAcceptor> {
    let SelfSigned { cert_pem, acceptor } = self_signed().map_err(std::io::Error::other)?;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?
        .write_all(cert_pem.as_bytes())?;
    Ok(acceptor)
}

/// Where one run's certificate goes: named by the orchestrator, written by the endpoint, read by
/// the worker through `SSL_CERT_FILE`; removed when dropped (the endpoint is killed, so it cannot
/// clean up).
pub struct CertFile(PathBuf);

impl CertFile {
    pub fn new() -> Self {
        let name = format!(
            "fanout-bench-{}-{:016x}.pem",
            std::process::id(),
            rand::random::<u64>()
        );
        Self(std::env::temp_dir().join(name))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for CertFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::{self, EndpointConfig, EndpointStats};
    use crate::ids::IdSpace;
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio_rustls::TlsConnector;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
    use tokio_rustls::rustls::{ClientConfig, RootCertStore};

    /// A client that trusts exactly the certificates in `pem`.
    fn client(pem: &str) -> TlsConnector {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            roots.add(cert.expect("valid PEM")).expect("a usable root");
        }
        let config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports the defaults")
            .with_root_certificates(roots)
            .with_no_client_auth();
        TlsConnector::from(Arc::new(config))
    }

    /// Sends `head` (a whole request without a body) and reads the response to its end.
    async fn exchange(
        connector: &TlsConnector,
        addr: SocketAddr,
        name: &'static str,
        head: &str,
    ) -> std::io::Result<String> {
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::try_from(name).expect("a valid server name");
        let mut tls = connector.connect(name, tcp).await?;
        tls.write_all(head.as_bytes()).await?;
        let mut response = String::new();
        tls.read_to_string(&mut response).await?;
        Ok(response)
    }

    #[tokio::test]
    async fn the_endpoint_serves_https_to_a_client_that_trusts_its_certificate_only() {
        let SelfSigned { cert_pem, acceptor } = self_signed().unwrap();
        assert!(cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stats = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (addr, stats_addr) = (listener.local_addr().unwrap(), stats.local_addr().unwrap());
        let config = EndpointConfig {
            members: 1,
            messages: 1,
            ordered: false,
            latency: "none".parse().unwrap(),
            throttle: None,
            gone_fraction: 0.0,
            stage: "bench".into(),
        };
        tokio::spawn(endpoint::serve_on(config, listener, stats, Some(acceptor)));

        // Both names of the certificate work.
        let trusting = client(&cert_pem);
        let post = format!(
            "POST /bench/@connections/{} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            IdSpace::new(1).id_of(0)
        );
        for name in ["localhost", "127.0.0.1"] {
            let response = exchange(&trusting, addr, name, &post).await.unwrap();
            assert!(response.starts_with("HTTP/1.1 200"), "{name}: {response}");
        }
        // A client that trusts another certificate refuses this one.
        let other = client(&self_signed().unwrap().cert_pem);
        let refused = exchange(&other, addr, "localhost", &post).await;
        assert!(refused.is_err(), "{refused:?}");

        // The stats stay on plain HTTP, and its connections are not counted as the worker's.
        // (The refused handshake fails at the endpoint once it reads the client's alert.)
        let mut stats = EndpointStats::default();
        for _ in 0..100 {
            let response = fanout_test_support::http::request(stats_addr, "GET", "/stats", "")
                .await
                .unwrap();
            stats = serde_json::from_str(&response.body).unwrap();
            if stats.tls_failures > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!((stats.calls, stats.ok_calls, stats.unsigned), (2, 2, 2));
        assert_eq!((stats.connections, stats.tls_failures), (3, 1));
    }

    #[test]
    fn the_certificate_file_is_written_once_and_removed_with_its_guard() {
        let file = CertFile::new();
        write_self_signed(file.path()).unwrap();
        let pem = std::fs::read_to_string(file.path()).unwrap();
        assert_eq!(CertificateDer::pem_slice_iter(pem.as_bytes()).count(), 1);
        // A second endpoint (or anyone) cannot replace it.
        assert!(write_self_signed(file.path()).is_err());
        let path = file.path().to_owned();
        drop(file);
        assert!(!path.exists());
    }
}
