//! What happens on a connection before the TLS probe: nothing (direct TLS) or a STARTTLS dialogue,
//! and working out which of the two a port speaks when the user did not say (`--starttls auto`).
//! The dialogues themselves are the sans-IO state machines of `bleedwatch-starttls`; this is their
//! async shell, with one overall deadline per dialogue so a server trickling bytes cannot hold it.

use std::net::SocketAddr;
use std::time::Duration;

use bleedwatch_starttls::{ClientParams, ClientUpgrade, Identification, Protocol, Step};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

use crate::conn::{connect, ConnectError};

/// How the user asked to reach TLS on a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StarttlsMode {
    /// Find out: by the banner a server sends first, by the port as a hint, by trying.
    #[default]
    Auto,
    /// Direct TLS only.
    Off,
    /// Always this STARTTLS dialect.
    Force(Protocol),
}

/// How to reach TLS on one endpoint, once decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServicePlan {
    DirectTls,
    Starttls(Protocol),
}

impl ServicePlan {
    /// The `service` field of results: `tls` or e.g. `smtp-starttls`.
    pub fn service_name(&self) -> String {
        match self {
            ServicePlan::DirectTls => "tls".into(),
            ServicePlan::Starttls(p) => format!("{}-starttls", p.name()),
        }
    }
}

/// Why a STARTTLS dialogue did not lead to TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpgradeError {
    Connect(ConnectError),
    /// The server speaks the protocol but does not offer STARTTLS (or refused it).
    Unsupported { reason: String, transcript: String },
    /// Not a STARTTLS service at all (ssh, http, …).
    NotStarttls { what: String, transcript: String },
    Failed { reason: String, transcript: String },
    Timeout { transcript: String },
    Closed { transcript: String },
}

impl std::fmt::Display for UpgradeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpgradeError::Connect(e) => write!(f, "{e}"),
            UpgradeError::Unsupported { reason, .. } => write!(f, "STARTTLS not offered: {reason}"),
            UpgradeError::NotStarttls { what, .. } => write!(f, "not a TLS or STARTTLS service: {what}"),
            UpgradeError::Failed { reason, .. } => write!(f, "STARTTLS failed: {reason}"),
            UpgradeError::Timeout { .. } => f.write_str("STARTTLS dialogue timed out"),
            UpgradeError::Closed { .. } => f.write_str("connection closed during the STARTTLS dialogue"),
        }
    }
}

/// A connection ready for the TLS probe.
pub struct Upgraded {
    pub stream: TcpStream,
    pub protocol: Option<Protocol>,
    /// Bytes the server sent after its go-ahead (normally none); the TLS probe reads them first.
    pub leftover: Vec<u8>,
    pub transcript: String,
}

/// Runs one STARTTLS dialogue on `stream` under `deadline`.
async fn run_upgrade(mut stream: TcpStream, mut upgrade: ClientUpgrade, deadline: Instant) -> Result<Upgraded, UpgradeError> {
    let first = upgrade.start();
    if !first.is_empty() && timeout_at(deadline, stream.write_all(&first)).await.map_or(true, |r| r.is_err()) {
        return Err(UpgradeError::Timeout { transcript: upgrade.transcript() });
    }
    let mut buf = vec![0u8; 8 * 1024];
    loop {
        let n = match timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return Err(UpgradeError::Timeout { transcript: upgrade.transcript() }),
            Ok(Ok(0)) | Ok(Err(_)) => return Err(UpgradeError::Closed { transcript: upgrade.transcript() }),
            Ok(Ok(n)) => n,
        };
        match upgrade.feed(&buf[..n]) {
            Step::NeedMore => {}
            Step::Send(bytes) => {
                if timeout_at(deadline, stream.write_all(&bytes)).await.map_or(true, |r| r.is_err()) {
                    return Err(UpgradeError::Timeout { transcript: upgrade.transcript() });
                }
            }
            Step::Ready { send_first, leftover, transcript } => {
                if !send_first.is_empty() && timeout_at(deadline, stream.write_all(&send_first)).await.map_or(true, |r| r.is_err()) {
                    return Err(UpgradeError::Timeout { transcript });
                }
                return Ok(Upgraded { stream, protocol: upgrade.protocol(), leftover, transcript });
            }
            Step::Unsupported { reason, transcript } => {
                return Err(match upgrade.identification() {
                    Some(Identification::NotStartTls(what)) => UpgradeError::NotStarttls { what: what.to_string(), transcript },
                    _ => UpgradeError::Unsupported { reason, transcript },
                })
            }
            Step::Failed { reason, transcript } => return Err(UpgradeError::Failed { reason, transcript }),
        }
    }
}

/// Connects and upgrades with `protocol`.
pub async fn connect_starttls(addr: SocketAddr, protocol: Protocol, params: ClientParams, connect_limit: Duration, limit: Duration) -> Result<Upgraded, UpgradeError> {
    let stream = connect(addr, connect_limit).await.map_err(UpgradeError::Connect)?;
    run_upgrade(stream, ClientUpgrade::new(protocol, params), Instant::now() + limit).await
}

/// Ports whose usual service speaks first with a STARTTLS-capable banner: worth waiting for it.
fn server_first_hint(port: u16) -> Option<Protocol> {
    Protocol::for_port(port).filter(|p| p.server_speaks_first())
}

/// The decision for `--starttls auto` before any TLS is tried, from the port alone: a well-known
/// STARTTLS port gets its dialect (detection by banner still corrects a wrong guess); anything else
/// starts with direct TLS.
pub fn initial_plan(mode: StarttlsMode, port: u16) -> Option<ServicePlan> {
    match mode {
        StarttlsMode::Off => Some(ServicePlan::DirectTls),
        StarttlsMode::Force(p) => Some(ServicePlan::Starttls(p)),
        StarttlsMode::Auto => match Protocol::for_port(port) {
            Some(p) if !p.server_speaks_first() => Some(ServicePlan::Starttls(p)),
            Some(_) => None,
            None => Some(ServicePlan::DirectTls),
        },
    }
}

/// Auto-detection on a fresh connection: waits up to `banner_wait` for a banner and follows the
/// dialect it names. Without a banner, client-first dialects are tried in turn (a PostgreSQL,
/// LDAP, XMPP or RDP server on an odd port), each on its own connection.
pub async fn detect(addr: SocketAddr, params: &ClientParams, connect_limit: Duration, banner_wait: Duration, limit: Duration) -> Result<Upgraded, UpgradeError> {
    let stream = connect(addr, connect_limit).await.map_err(UpgradeError::Connect)?;
    let mut peek = [0u8; 1];
    let spoke = matches!(tokio::time::timeout(banner_wait, stream.peek(&mut peek)).await, Ok(Ok(n)) if n > 0);
    if spoke {
        return run_upgrade(stream, ClientUpgrade::auto(params.clone(), Some(addr.port())), Instant::now() + limit).await;
    }
    drop(stream);
    let mut last = UpgradeError::Failed { reason: "the server sends nothing first and no client-first dialect answered".into(), transcript: String::new() };
    for protocol in [Protocol::Postgres, Protocol::Ldap, Protocol::XmppClient, Protocol::Rdp] {
        match connect_starttls(addr, protocol, params.clone(), connect_limit, limit.min(Duration::from_secs(3))).await {
            Ok(up) => return Ok(up),
            Err(UpgradeError::Connect(e)) => return Err(UpgradeError::Connect(e)),
            // It is this protocol, without STARTTLS: that is the answer.
            Err(e @ UpgradeError::Unsupported { .. }) => return Err(e),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Whether a direct-TLS failure looks like the port speaks something else (a banner, a plaintext
/// reply, or a close right after our hello), so that detection is worth a try.
pub fn worth_detecting(first_bytes_not_tls: bool, closed_before_hello: bool, silent: bool) -> bool {
    first_bytes_not_tls || closed_before_hello || silent
}

/// For `--starttls auto` on a well-known server-first port: the dialect the port suggests.
pub fn banner_port_hint(port: u16) -> Option<Protocol> {
    server_first_hint(port)
}
