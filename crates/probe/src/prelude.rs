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
use crate::endpoint::{direct_tls_result, initial_sni, sweep_direct_tls, sweep_versions, AttemptFailure, EndpointOptions, EndpointTarget, VersionSweep};
use crate::heartbleed::HeartbleedProbe;
use crate::result::{EndpointResult, ScanStatus, Verdict};

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

/// What one attempt of a sweep over STARTTLS gives on an upgrade failure.
fn upgrade_failure(cfg: &crate::heartbleed::ProbeConfig, err: UpgradeError) -> AttemptFailure {
    use crate::heartbleed::{ConnectionVerdict, Inconclusive, Phase};
    match err {
        UpgradeError::Connect(e) => AttemptFailure::connect(cfg, &e),
        other => {
            let status = match other {
                UpgradeError::Unsupported { .. } => ScanStatus::StarttlsUnsupported,
                UpgradeError::NotStarttls { .. } => ScanStatus::NotTls,
                _ => ScanStatus::StarttlsFailed,
            };
            let mut outcome = crate::conn::connect_failure_outcome(cfg, &ConnectError::Other(other.to_string()));
            outcome.verdict = ConnectionVerdict::Inconclusive(Inconclusive::ProtocolError { phase: Phase::Connect, detail: other.to_string() });
            AttemptFailure { status, outcome }
        }
    }
}

fn client_params(target: &EndpointTarget, opts: &EndpointOptions) -> ClientParams {
    match initial_sni(target, opts) {
        Some(domain) => ClientParams::with_domain(domain),
        None => ClientParams::default(),
    }
}

fn tcp_versions(opts: &EndpointOptions) -> Vec<bleedwatch_wire::ProtocolVersion> {
    let v: Vec<_> = opts.versions.iter().copied().filter(|v| !v.is_dtls()).collect();
    if v.is_empty() {
        bleedwatch_wire::ProtocolVersion::PROBEABLE_TLS.to_vec()
    } else {
        v
    }
}

/// A result for a port where no TLS was reached at all.
fn no_tls_result(target: &EndpointTarget, service: &str, status: ScanStatus, heartbleed: Verdict, reason: String, banner: Option<String>) -> EndpointResult {
    EndpointResult {
        address: target.addr.ip().to_string(),
        port: target.addr.port(),
        transport: "tcp",
        host: target.host.clone(),
        service: service.to_string(),
        sni: None,
        status,
        heartbleed,
        reason: Some(reason),
        versions: Default::default(),
        certificate: None,
        chain: Vec::new(),
        banner: banner.filter(|b| !b.is_empty()),
        leak: None,
        details: Vec::new(),
        started_at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
        duration_ms: 0,
    }
}

/// The result when a port answers in plaintext without TLS: a known protocol without STARTTLS has
/// nothing for Heartbleed to attack (`not-applicable`); something unrecognised stays `inconclusive`.
fn upgrade_error_result(target: &EndpointTarget, err: UpgradeError) -> EndpointResult {
    match err {
        UpgradeError::Unsupported { reason, transcript } => no_tls_result(
            target,
            "plaintext-no-tls",
            ScanStatus::StarttlsUnsupported,
            Verdict::NotApplicable,
            format!("STARTTLS not offered: {reason}"),
            Some(transcript),
        ),
        UpgradeError::NotStarttls { what, transcript } => {
            no_tls_result(target, "not-tls", ScanStatus::NotTls, Verdict::NotApplicable, format!("not a TLS service: {what}"), Some(transcript))
        }
        UpgradeError::Connect(e) => {
            let status = match e {
                ConnectError::Refused => ScanStatus::ConnectionRefused,
                ConnectError::Timeout => ScanStatus::ConnectionTimeout,
                ConnectError::Other(_) => ScanStatus::ConnectionFailed,
            };
            no_tls_result(target, "unknown", status, Verdict::Inconclusive, format!("connect failed: {e}"), None)
        }
        other @ (UpgradeError::Failed { .. } | UpgradeError::Timeout { .. } | UpgradeError::Closed { .. }) => {
            let transcript = match &other {
                UpgradeError::Failed { transcript, .. } | UpgradeError::Timeout { transcript } | UpgradeError::Closed { transcript } => transcript.clone(),
                _ => String::new(),
            };
            no_tls_result(target, "unknown", ScanStatus::StarttlsFailed, Verdict::Inconclusive, other.to_string(), Some(transcript))
        }
    }
}

/// Tests every version over STARTTLS `protocol`, starting with the already-upgraded `first`
/// connection; each further version gets its own connection and dialogue.
async fn starttls_sweep(target: &EndpointTarget, opts: &EndpointOptions, protocol: Protocol, first: Upgraded) -> EndpointResult {
    let params = client_params(target, opts);
    let banner = Some(first.transcript.clone());
    let mut pending = Some(first);
    let sweep = sweep_versions(&tcp_versions(opts), initial_sni(target, opts), opts.sni_retry, |version, sni| {
        let cfg = crate::heartbleed::ProbeConfig::new(version, sni, opts.mode);
        let ready = pending.take();
        let params = params.clone();
        async move {
            let up = match ready {
                Some(up) => up,
                None => connect_starttls(target.addr, protocol, params, opts.timeouts.connect, opts.timeouts.handshake)
                    .await
                    .map_err(|e| upgrade_failure(&cfg, e))?,
            };
            let Upgraded { mut stream, leftover, .. } = up;
            let mut probe = HeartbleedProbe::new(cfg);
            if !leftover.is_empty() {
                probe.feed(&leftover);
            }
            Ok(crate::conn::drive(&mut stream, probe, &opts.timeouts).await)
        }
    })
    .await;
    let service = ServicePlan::Starttls(protocol).service_name();
    let mut result = direct_tls_result(target, opts, sweep, service).await;
    result.banner = banner.filter(|b| !b.is_empty());
    result
}

/// True when a direct-TLS sweep saw no TLS at all: a banner, a close or silence after our hello.
fn saw_no_tls(sweep: &VersionSweep) -> bool {
    if sweep.accepted_any() && sweep.status != ScanStatus::NotTls {
        return false;
    }
    matches!(sweep.status, ScanStatus::NotTls | ScanStatus::Success)
        && sweep.details.iter().all(|d| {
            let r = d.reason.as_deref().unwrap_or("");
            d.negotiated.is_none() && (r.starts_with("not TLS") || r == "closed before ServerHello" || r.starts_with("timeout during server-hello"))
        })
}

/// Tests one TCP endpoint: direct TLS or STARTTLS as `opts.starttls` says, finding out when asked to.
pub async fn probe_tcp_endpoint(target: &EndpointTarget, opts: &EndpointOptions) -> EndpointResult {
    let params = client_params(target, opts);
    let port = target.addr.port();
    let (connect_limit, limit) = (opts.timeouts.connect, opts.timeouts.handshake);
    let banner_wait = opts.banner_wait.min(limit);
    match initial_plan(opts.starttls, port) {
        Some(ServicePlan::Starttls(protocol)) => {
            match connect_starttls(target.addr, protocol, params, connect_limit, limit).await {
                Ok(up) => starttls_sweep(target, opts, protocol, up).await,
                // A well-known client-first port that turned out to be something else: try direct TLS.
                Err(UpgradeError::Failed { .. } | UpgradeError::Closed { .. } | UpgradeError::Timeout { .. })
                    if opts.starttls == StarttlsMode::Auto =>
                {
                    let sweep = sweep_direct_tls(target, opts, &tcp_versions(opts)).await;
                    direct_tls_result(target, opts, sweep, "tls".into()).await
                }
                Err(e) => upgrade_error_result(target, e),
            }
        }
        Some(ServicePlan::DirectTls) => {
            let sweep = sweep_direct_tls(target, opts, &tcp_versions(opts)).await;
            if opts.starttls == StarttlsMode::Auto && saw_no_tls(&sweep) {
                match detect(target.addr, &params, connect_limit, banner_wait, limit).await {
                    Ok(up) => {
                        if let Some(protocol) = up.protocol {
                            return starttls_sweep(target, opts, protocol, up).await;
                        }
                    }
                    Err(e @ (UpgradeError::Unsupported { .. } | UpgradeError::NotStarttls { .. })) => return upgrade_error_result(target, e),
                    Err(_) => {}
                }
            }
            direct_tls_result(target, opts, sweep, "tls".into()).await
        }
        // A well-known server-first STARTTLS port: listen for the banner before anything else.
        None => match detect(target.addr, &params, connect_limit, banner_wait, limit).await {
            Ok(up) => match up.protocol {
                Some(protocol) => starttls_sweep(target, opts, protocol, up).await,
                None => {
                    let sweep = sweep_direct_tls(target, opts, &tcp_versions(opts)).await;
                    direct_tls_result(target, opts, sweep, "tls".into()).await
                }
            },
            Err(e @ (UpgradeError::Unsupported { .. } | UpgradeError::NotStarttls { .. } | UpgradeError::Connect(_))) => upgrade_error_result(target, e),
            // No banner, or not a dialect we know: maybe direct TLS on an unusual port.
            Err(_) => {
                let sweep = sweep_direct_tls(target, opts, &tcp_versions(opts)).await;
                direct_tls_result(target, opts, sweep, "tls".into()).await
            }
        },
    }
}
