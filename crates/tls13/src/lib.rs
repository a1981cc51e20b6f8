#![forbid(unsafe_code)]
//! Fetch a server's certificate chain over TLS 1.3.
//!
//! In TLS 1.3 the server's Certificate message is encrypted, so bleedwatch's
//! raw (plaintext) scanner cannot see it. This crate completes a real TLS 1.3
//! handshake with rustls, offering *only* TLS 1.3 (so a success proves the
//! server supports it), and captures the chain with
//! [`danger::CaptureAnyServerCert`], a verifier that accepts everything.
//!
//! rustls's sans-IO [`ClientConnection`] is driven over the tokio stream here,
//! with every read and write bounded by the caller's deadline. The function
//! returns as soon as the server's certificate has been seen; no application
//! data is exchanged.

use std::io;
use std::net::IpAddr;
use std::sync::Arc;

use rustls::client::ClientConnection;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

pub mod danger;

/// TLS 1.3's version number as found in `supported_versions`.
pub const TLS13_VERSION: u16 = 0x0304;

/// The alert a server sends when it shares no protocol version with us.
const ALERT_PROTOCOL_VERSION: u8 = 70;

/// What a completed TLS 1.3 handshake revealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls13Info {
    /// Negotiated protocol version: always [`TLS13_VERSION`] (0x0304).
    pub version: u16,
    /// IANA code of the negotiated cipher suite (e.g. 0x1301 TLS_AES_128_GCM_SHA256).
    pub cipher_suite: u16,
    /// The server's certificates as DER, leaf first, exactly as sent.
    pub chain: Vec<Vec<u8>>,
    /// Protocol chosen by ALPN, if any was offered and the server picked one.
    pub alpn: Option<Vec<u8>>,
}

/// Knobs for [`fetch_tls13_with_options`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tls13Options {
    /// ALPN protocols to offer, most preferred first. Empty (the default)
    /// offers none: some servers abort the handshake when none of the offered
    /// protocols matches theirs.
    pub alpn_protocols: Vec<Vec<u8>>,
}

/// Why no TLS 1.3 certificate could be fetched.
#[derive(Debug, thiserror::Error)]
pub enum Tls13Error {
    /// The deadline passed before the server's certificate arrived.
    #[error("TLS 1.3 handshake timed out")]
    Timeout,
    /// Reading from or writing to the socket failed.
    #[error("I/O error during TLS 1.3 handshake: {0}")]
    Io(#[from] io::Error),
    /// The server closed the connection before sending its certificate.
    #[error("connection closed before the server's certificate")]
    ConnectionClosed,
    /// The server aborted the handshake with an alert.
    /// `protocol_version` (70) means it does not speak TLS 1.3.
    #[error("server sent alert {name} ({code})")]
    Alert {
        /// Alert description code (RFC 8446 §6).
        code: u8,
        /// Alert name as rustls spells it, e.g. `ProtocolVersion`.
        name: String,
    },
    /// The server answered with a ServerHello for an older protocol version.
    #[error("server does not negotiate TLS 1.3: {0}")]
    OlderVersion(String),
    /// Any other handshake failure (malformed messages, not TLS at all, ...).
    #[error("TLS 1.3 handshake failed: {0}")]
    Handshake(String),
    /// The handshake went through without the server presenting a certificate.
    #[error("server presented no certificate")]
    NoCertificate,
    /// The given server name is neither a DNS name nor an IP address.
    #[error("invalid server name {0:?}")]
    InvalidServerName(String),
}

impl Tls13Error {
    /// Whether the server positively refused TLS 1.3: a `protocol_version`
    /// alert or a ServerHello for an older version. (A `handshake_failure`
    /// alert from an old server is also common but has other causes too, so
    /// it is not counted.)
    pub fn is_version_refusal(&self) -> bool {
        matches!(self, Tls13Error::OlderVersion(_))
            || matches!(self, Tls13Error::Alert { code, .. } if *code == ALERT_PROTOCOL_VERSION)
    }
}

/// Complete a TLS 1.3-only handshake on `stream` and return the server's chain.
///
/// `server_name` is sent as SNI when it is a DNS name. When it is `None` or
/// an IP literal the handshake still proceeds, using the peer's IP address as
/// the name; rustls sends no SNI for IP names. Every socket operation is
/// bounded by `deadline`.
pub async fn fetch_tls13(
    stream: TcpStream,
    server_name: Option<&str>,
    deadline: Instant,
) -> Result<Tls13Info, Tls13Error> {
    fetch_tls13_with_options(stream, server_name, deadline, &Tls13Options::default()).await
}

/// [`fetch_tls13`] with extra options (ALPN offer).
pub async fn fetch_tls13_with_options(
    mut stream: TcpStream,
    server_name: Option<&str>,
    deadline: Instant,
    options: &Tls13Options,
) -> Result<Tls13Info, Tls13Error> {
    let name = resolve_server_name(server_name, &stream)?;
    let verifier = Arc::new(danger::CaptureAnyServerCert::new(crypto_provider()));
    let config = client_config(Arc::clone(&verifier), options)?;
    let mut connection =
        ClientConnection::new(config, name).map_err(|e| Tls13Error::Handshake(e.to_string()))?;

    let mut read_buffer = vec![0u8; 16 * 1024];
    loop {
        flush_pending(&mut connection, &mut stream, deadline).await?;

        if let Some(chain) = verifier.captured_chain() {
            return finish(&connection, chain);
        }
        if !connection.is_handshaking() {
            // A finished handshake without a captured certificate (cannot
            // normally happen in a full TLS 1.3 handshake).
            return Err(Tls13Error::NoCertificate);
        }

        let received = timeout_at(deadline, stream.read(&mut read_buffer))
            .await
            .map_err(|_| Tls13Error::Timeout)??;
        let Some(bytes) = read_buffer
            .get(..received)
            .filter(|bytes| !bytes.is_empty())
        else {
            return Err(Tls13Error::ConnectionClosed);
        };
        if let Err(error) = feed(&mut connection, bytes) {
            // rustls queued a fatal alert for the server; tell it why we stop.
            let _ = flush_pending(&mut connection, &mut stream, deadline).await;
            return Err(error);
        }
    }
}

/// Hand received bytes to rustls, processing as we go: `read_tls` may accept
/// fewer bytes than given when its buffer is full.
fn feed(connection: &mut ClientConnection, mut bytes: &[u8]) -> Result<(), Tls13Error> {
    while !bytes.is_empty() {
        let before = bytes.len();
        connection.read_tls(&mut bytes)?;
        connection.process_new_packets().map_err(map_rustls_error)?;
        if bytes.len() == before {
            // rustls took nothing even after processing: it will never make
            // progress with this input.
            return Err(Tls13Error::Handshake(
                "TLS engine refused further input".to_owned(),
            ));
        }
    }
    Ok(())
}

async fn flush_pending(
    connection: &mut ClientConnection,
    stream: &mut TcpStream,
    deadline: Instant,
) -> Result<(), Tls13Error> {
    while connection.wants_write() {
        let mut outgoing = Vec::new();
        connection.write_tls(&mut outgoing)?;
        timeout_at(deadline, stream.write_all(&outgoing))
            .await
            .map_err(|_| Tls13Error::Timeout)??;
    }
    Ok(())
}

fn finish(connection: &ClientConnection, chain: Vec<Vec<u8>>) -> Result<Tls13Info, Tls13Error> {
    if chain.is_empty() {
        return Err(Tls13Error::NoCertificate);
    }
    let version = connection
        .protocol_version()
        .map(u16::from)
        .unwrap_or(TLS13_VERSION);
    let cipher_suite = connection
        .negotiated_cipher_suite()
        .map(|suite| u16::from(suite.suite()))
        .ok_or_else(|| Tls13Error::Handshake("no cipher suite negotiated".to_owned()))?;
    Ok(Tls13Info {
        version,
        cipher_suite,
        chain,
        alpn: connection.alpn_protocol().map(<[u8]>::to_vec),
    })
}

fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn client_config(
    verifier: Arc<danger::CaptureAnyServerCert>,
    options: &Tls13Options,
) -> Result<Arc<ClientConfig>, Tls13Error> {
    let mut config = ClientConfig::builder_with_provider(verifier.provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Tls13Error::Handshake(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols.clone_from(&options.alpn_protocols);
    // Each probe must be a full handshake that shows the certificate.
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

fn resolve_server_name(
    requested: Option<&str>,
    stream: &TcpStream,
) -> Result<ServerName<'static>, Tls13Error> {
    match requested {
        Some(name) => {
            // Accept bracketed IPv6 literals as users write them in URLs.
            let trimmed = name.trim_start_matches('[').trim_end_matches(']');
            if let Ok(ip) = trimmed.parse::<IpAddr>() {
                return Ok(ServerName::IpAddress(ip.into()));
            }
            ServerName::try_from(name.to_owned())
                .map_err(|_| Tls13Error::InvalidServerName(name.to_owned()))
        }
        None => Ok(ServerName::IpAddress(stream.peer_addr()?.ip().into())),
    }
}

fn map_rustls_error(error: rustls::Error) -> Tls13Error {
    use rustls::{Error, PeerIncompatible};
    match error {
        Error::AlertReceived(alert) => Tls13Error::Alert {
            code: u8::from(alert),
            name: format!("{alert:?}"),
        },
        Error::NoCertificatesPresented => Tls13Error::NoCertificate,
        Error::PeerIncompatible(
            reason @ (PeerIncompatible::ServerTlsVersionIsDisabledByOurConfig
            | PeerIncompatible::ServerDoesNotSupportTls12Or13),
        ) => Tls13Error::OlderVersion(format!("{reason:?}")),
        other => Tls13Error::Handshake(other.to_string()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rustls::AlertDescription;

    #[test]
    fn alerts_keep_their_code() {
        let error = map_rustls_error(rustls::Error::AlertReceived(
            AlertDescription::ProtocolVersion,
        ));
        assert!(
            matches!(error, Tls13Error::Alert { code: 70, ref name } if name == "ProtocolVersion")
        );
        assert!(error.is_version_refusal());
        let error = map_rustls_error(rustls::Error::AlertReceived(
            AlertDescription::HandshakeFailure,
        ));
        assert!(matches!(error, Tls13Error::Alert { code: 40, .. }));
        assert!(!error.is_version_refusal());
    }

    #[test]
    fn older_server_hello_is_a_version_refusal() {
        let error = map_rustls_error(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::ServerTlsVersionIsDisabledByOurConfig,
        ));
        assert!(matches!(error, Tls13Error::OlderVersion(_)));
        assert!(error.is_version_refusal());
        assert!(matches!(
            map_rustls_error(rustls::Error::NoCertificatesPresented),
            Tls13Error::NoCertificate
        ));
    }

    #[tokio::test]
    async fn server_names() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();

        let dns = resolve_server_name(Some("example.com"), &stream).unwrap();
        assert!(matches!(dns, ServerName::DnsName(_)));
        let ip = resolve_server_name(Some("192.0.2.1"), &stream).unwrap();
        assert!(matches!(ip, ServerName::IpAddress(_)));
        let v6 = resolve_server_name(Some("[2001:db8::1]"), &stream).unwrap();
        assert!(matches!(v6, ServerName::IpAddress(_)));
        let peer = resolve_server_name(None, &stream).unwrap();
        assert_eq!(
            peer,
            ServerName::IpAddress(IpAddr::from([127, 0, 0, 1]).into())
        );
        assert!(matches!(
            resolve_server_name(Some("bad name!"), &stream),
            Err(Tls13Error::InvalidServerName(_))
        ));
    }

    /// The ClientHello rustls writes, parsed by bleedwatch-wire.
    fn first_client_hello(name: ServerName<'static>) -> (Vec<u16>, Option<String>, Vec<u16>) {
        let verifier = Arc::new(danger::CaptureAnyServerCert::new(crypto_provider()));
        let config = client_config(verifier, &Tls13Options::default()).unwrap();
        let mut connection = ClientConnection::new(config, name).unwrap();
        let mut wire = Vec::new();
        connection.write_tls(&mut wire).unwrap();
        let (record, _) = bleedwatch_wire::record::parse_record(&wire)
            .unwrap()
            .unwrap();
        let mut reassembler = bleedwatch_wire::handshake::HandshakeReassembler::new(1 << 16);
        reassembler.push(record.fragment);
        let message = reassembler.next_message().unwrap().unwrap();
        let hello = bleedwatch_wire::handshake::ClientHello::parse(message.body).unwrap();
        let versions = hello
            .supported_versions()
            .iter()
            .map(|version| version.0)
            .collect();
        let suites = hello.cipher_suites.iter().map(|suite| suite.0).collect();
        (versions, hello.server_name().map(str::to_owned), suites)
    }

    #[test]
    fn client_hello_offers_only_tls13() {
        let name = ServerName::try_from("localhost".to_owned()).unwrap();
        let (versions, sni, suites) = first_client_hello(name);
        assert_eq!(versions, vec![TLS13_VERSION]);
        assert_eq!(sni.as_deref(), Some("localhost"));
        // The TLS 1.3 suites lead. rustls still lists its TLS 1.2 suites; they
        // cannot be negotiated (supported_versions holds only 1.3, and rustls
        // rejects a 1.2 ServerHello), but they let an old server that ignores
        // supported_versions answer with a 1.2 ServerHello, a clearer refusal
        // (`OlderVersion`) than a bare handshake_failure alert.
        assert!(suites.len() >= 3);
        let mut leading = suites[..3].to_vec();
        leading.sort_unstable();
        assert_eq!(leading, vec![0x1301, 0x1302, 0x1303], "{suites:x?}");

        let (versions, sni, _) =
            first_client_hello(ServerName::IpAddress(IpAddr::from([127, 0, 0, 1]).into()));
        assert_eq!(versions, vec![TLS13_VERSION]);
        assert_eq!(sni, None);
    }
}
