//! The optional TLS front. WeChat's gateway speaks HTTPS and, on `/secapi/` calls, wants
//! the merchant's API certificate. With [`SimTls`] configured the simulator does the same:
//! it serves HTTPS with the given server certificate and asks each client for a
//! certificate issued by the given authority. At the TLS level that certificate is
//! optional, like nginx's `ssl_verify_client optional`: queries work without one, and a
//! refund without one (or with another merchant's) is refused by the gateway.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// HTTPS for the simulator: PEM files, read at start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimTls {
    /// The server certificate chain (leaf first).
    pub cert_file: PathBuf,
    /// The server certificate's private key.
    pub key_file: PathBuf,
    /// The authority that issues merchant certificates. Like WeChat's, a merchant
    /// certificate names the merchant id as its subject's common name.
    pub client_ca_file: PathBuf,
}

/// A client that opens a connection and never finishes the handshake is dropped after this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

impl SimTls {
    /// The rustls server configuration; errors name the file at fault.
    pub(crate) fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, String> {
        let certs = read_certs(&self.cert_file)?;
        let key = read(&self.key_file).and_then(|pem| {
            PrivateKeyDer::from_pem_slice(&pem)
                .map_err(|e| format!("{}: no usable private key: {e}", self.key_file.display()))
        })?;
        let mut roots = RootCertStore::empty();
        for ca in read_certs(&self.client_ca_file)? {
            roots
                .add(ca)
                .map_err(|e| format!("{}: {e}", self.client_ca_file.display()))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider.clone())
            .allow_unauthenticated()
            .build()
            .map_err(|e| format!("{}: {e}", self.client_ca_file.display()))?;
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .map_err(|e| format!("{}: {e}", self.cert_file.display()))?;
        Ok(Arc::new(config))
    }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate", path.display()));
    }
    Ok(certs)
}

/// What the connection a request came on says about the caller.
#[derive(Debug, Clone, Default)]
pub(crate) struct Peer {
    /// Whether the connection is TLS (the simulator was started with [`SimTls`]).
    pub tls: bool,
    /// The merchant id the client's verified certificate names, if it sent one.
    pub merchant: Option<String>,
}

impl Connected<IncomingStream<'_, TcpListener>> for Peer {
    fn connect_info(_: IncomingStream<'_, TcpListener>) -> Self {
        Peer::default()
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        let (_, connection) = stream.io().get_ref();
        let merchant = connection
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|leaf| common_name(leaf));
        Peer {
            tls: true,
            merchant,
        }
    }
}

/// The subject common name of a DER certificate.
fn common_name(der: &CertificateDer<'_>) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    let name = cert.subject().iter_common_name().next()?;
    name.as_str().ok().map(str::to_owned)
}

/// Accepts TCP connections and hands axum those whose TLS handshake succeeded. Handshakes
/// run concurrently, so a slow or silent client holds up no one else.
pub(crate) struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local_addr: SocketAddr,
}

impl TlsListener {
    /// Starts accepting on `tcp` until `shutdown` turns true.
    pub fn spawn(
        tcp: TcpListener,
        config: Arc<rustls::ServerConfig>,
        mut shutdown: watch::Receiver<bool>,
    ) -> std::io::Result<Self> {
        let local_addr = tcp.local_addr()?;
        let acceptor = TlsAcceptor::from(config);
        let (sender, ready) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = tcp.accept() => accepted,
                    _ = shutdown.changed() => return,
                };
                let (stream, remote) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::debug!(%error, "simulator: accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let sender = sender.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = sender.send((tls, remote)).await;
                        }
                        Ok(Err(error)) => {
                            tracing::debug!(%remote, %error, "simulator: TLS handshake refused");
                        }
                        Err(_) => tracing::debug!(%remote, "simulator: TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { ready, local_addr })
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accept task has stopped (the simulator is shutting down): no more
            // connections will come, and axum stops asking once shutdown completes.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}
