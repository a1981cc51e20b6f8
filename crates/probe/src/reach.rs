//! How a TCP endpoint is reached, and the entry point that tests one ([`probe_endpoint`]): what
//! happens on a connection before the TLS probe, nothing (direct TLS) or a STARTTLS dialogue, and
//! working out which of the two a port speaks when the user did not say (`--starttls auto`).
//! The dialogues themselves are the sans-IO state machines of `bleedwatch-starttls`; this is their
//! async shell, with one overall deadline per dialogue so a server trickling bytes cannot hold it.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bleedwatch_starttls::{ClientParams, ClientUpgrade, Identification, Protocol, Step};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

use crate::conn::{connect, ConnectError};
use crate::endpoint::{direct_tls_result, initial_sni, sweep_direct_tls, sweep_versions, AttemptFailure, VersionSweep};
use crate::heartbleed::HeartbleedProbe;
use crate::options::{EndpointOptions, EndpointTarget, StarttlsMode};
use crate::result::{EndpointResult, ScanStatus, Verdict};

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
    /// Not a STARTTLS service at all (ssh, http, …); `reason` quotes what it said.
    NotStarttls { what: String, reason: String, transcript: String },
    Failed { reason: String, transcript: String },
    Timeout { transcript: String },
    Closed { transcript: String },
}

impl std::fmt::Display for UpgradeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpgradeError::Connect(e) => write!(f, "{e}"),
            UpgradeError::Unsupported { reason, .. } => write!(f, "STARTTLS not offered: {reason}"),
            UpgradeError::NotStarttls { reason, .. } => write!(f, "not a TLS or STARTTLS service: {reason}"),
            UpgradeError::Failed { reason, .. } => write!(f, "STARTTLS failed: {reason}"),
            UpgradeError::Timeout { .. } => f.write_str("STARTTLS dialogue timed out"),
            UpgradeError::Closed { .. } => f.write_str("connection closed during the STARTTLS dialogue"),
        }
    }
}

impl UpgradeError {
    /// What was said before it went wrong (empty for a connection that never opened).
    pub fn transcript(&self) -> &str {
        match self {
            UpgradeError::Connect(_) => "",
            UpgradeError::Unsupported { transcript, .. }
            | UpgradeError::NotStarttls { transcript, .. }
            | UpgradeError::Failed { transcript, .. }
            | UpgradeError::Timeout { transcript }
            | UpgradeError::Closed { transcript } => transcript,
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

/// The first bytes a server sent in a dialogue, kept to recognise what it really is.
const FIRST_BYTES_KEPT: usize = 256;

/// What a dialogue that broke can still tell: a server that answered with an SSH or HTTP banner is
/// that, whatever dialect we tried (a forced one, or one tried in turn on a silent port).
fn recognise_failure(received: &[u8], err: UpgradeError) -> UpgradeError {
    let broke = matches!(err, UpgradeError::Failed { .. } | UpgradeError::Timeout { .. } | UpgradeError::Closed { .. });
    match bleedwatch_starttls::identify(received) {
        Identification::NotStartTls(what) if broke => UpgradeError::NotStarttls {
            what: what.to_string(),
            reason: format!("{what} banner {}", excerpt(received)),
            transcript: err.transcript().to_string(),
        },
        _ => err,
    }
}

/// A short printable quote of server bytes.
fn excerpt(bytes: &[u8]) -> String {
    let cut = bytes.get(..bytes.len().min(80)).unwrap_or_default();
    format!("\"{}\"", String::from_utf8_lossy(cut).escape_debug())
}

/// Runs one STARTTLS dialogue on `stream` under `deadline`. `upgrade` is left in its final state,
/// so the caller can ask what auto-detection made of the banner.
async fn run_upgrade(mut stream: TcpStream, upgrade: &mut ClientUpgrade, deadline: Instant) -> Result<Upgraded, UpgradeError> {
    let mut received = Vec::new();
    let result = dialogue(&mut stream, upgrade, deadline, &mut received).await;
    match result {
        Ok((leftover, transcript)) => Ok(Upgraded { stream, protocol: upgrade.protocol(), leftover, transcript }),
        Err(UpgradeError::NotStarttls { what, transcript, .. }) => {
            // The state machine's transcript, or our quote of the banner when it kept none.
            let transcript = if transcript.is_empty() { excerpt(&received) } else { transcript };
            Err(UpgradeError::NotStarttls { reason: format!("{what} banner {}", excerpt(&received)), what, transcript })
        }
        Err(err) => Err(recognise_failure(&received, err)),
    }
}

/// The read-feed-write loop of [`run_upgrade`]: the leftover and transcript once TLS may start.
async fn dialogue(stream: &mut TcpStream, upgrade: &mut ClientUpgrade, deadline: Instant, received: &mut Vec<u8>) -> Result<(Vec<u8>, String), UpgradeError> {
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
        let data = buf.get(..n).unwrap_or_default();
        let room = FIRST_BYTES_KEPT.saturating_sub(received.len());
        received.extend_from_slice(data.get(..room.min(n)).unwrap_or_default());
        match upgrade.feed(data) {
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
                return Ok((leftover, transcript));
            }
            Step::Unsupported { reason, transcript } => {
                return Err(match upgrade.identification() {
                    Some(Identification::NotStartTls(what)) => UpgradeError::NotStarttls { what: what.to_string(), reason, transcript },
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
    run_upgrade(stream, &mut ClientUpgrade::new(protocol, params), Instant::now() + limit).await
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

/// Client-first dialects, in the order auto-detection tries them on a port that sends no banner.
/// Each wrong guess costs one connection the server soon drops (an SSLRequest is no LDAP message,
/// a stream header no RDP packet); an XMPP server-to-server port answers a `jabber:client` stream
/// in `jabber:server` (Prosody), or refuses it, so both stream kinds are tried.
const CLIENT_FIRST_TRIALS: [Protocol; 5] = [Protocol::Postgres, Protocol::Ldap, Protocol::XmppClient, Protocol::XmppServer, Protocol::Rdp];

/// True when the server opened its stream in the server-to-server namespace: an XMPP s2s port,
/// whatever stream kind we opened. (Read from the dialogue's transcript, where the client role
/// notes the server's header as `S: <stream:stream xmlns='…'`.)
fn answered_as_s2s(transcript: &str) -> bool {
    transcript.lines().any(|line| line.starts_with("S: <stream:stream xmlns='jabber:server'"))
}

/// Auto-detection on a fresh connection: waits up to `banner_wait` for a banner and follows the
/// dialect it names. Without a banner, client-first dialects are tried in turn (a PostgreSQL,
/// LDAP, XMPP or RDP server on an odd port), each on its own connection, all of them together
/// within about `limit`.
pub async fn detect(addr: SocketAddr, params: &ClientParams, connect_limit: Duration, banner_wait: Duration, limit: Duration) -> Result<Upgraded, UpgradeError> {
    let stream = connect(addr, connect_limit).await.map_err(UpgradeError::Connect)?;
    let mut peek = [0u8; 1];
    let spoke = matches!(tokio::time::timeout(banner_wait, stream.peek(&mut peek)).await, Ok(Ok(n)) if n > 0);
    if spoke {
        return follow_banner(addr, stream, params, connect_limit, limit).await;
    }
    drop(stream);
    try_client_first(addr, params, connect_limit, limit).await
}

/// The dialogue a banner names. A `220` banner naming neither SMTP nor FTP on a port that says
/// nothing either is settled by trying `EHLO`, and anything but `250` continues as FTP; an LMTP
/// server (Dovecot's banner is just "220 host Dovecot ready.") refuses `EHLO` too and then
/// `AUTH TLS`, so when that FTP guess does not reach TLS, LMTP gets its own try before the port is
/// called plaintext.
async fn follow_banner(addr: SocketAddr, stream: TcpStream, params: &ClientParams, connect_limit: Duration, limit: Duration) -> Result<Upgraded, UpgradeError> {
    let deadline = Instant::now() + limit;
    let mut upgrade = ClientUpgrade::auto(params.clone(), Some(addr.port()));
    let result = run_upgrade(stream, &mut upgrade, deadline).await;
    let guessed_ftp = upgrade.identification() == Some(&Identification::SmtpOrFtp)
        && upgrade.protocol() == Some(Protocol::Ftp)
        && Protocol::for_port(addr.port()).is_none();
    match result {
        Err(err @ (UpgradeError::Unsupported { .. } | UpgradeError::Failed { .. })) if guessed_ftp => {
            let left = deadline.saturating_duration_since(Instant::now());
            match connect_starttls(addr, Protocol::Lmtp, params.clone(), connect_limit, left).await {
                Ok(up) => Ok(up),
                Err(_) => Err(err),
            }
        }
        other => other,
    }
}

/// Tries each client-first dialect on its own connection until one answers as itself. Each gets an
/// equal share of `limit` for its dialogue: a right guess answers at once, and a server that lets
/// every wrong guess hang costs one `limit` in all, not one per dialect.
async fn try_client_first(addr: SocketAddr, params: &ClientParams, connect_limit: Duration, limit: Duration) -> Result<Upgraded, UpgradeError> {
    let share = limit / CLIENT_FIRST_TRIALS.len() as u32;
    let mut last = UpgradeError::Failed { reason: "the server sends nothing first and no client-first dialect answered".into(), transcript: String::new() };
    for protocol in CLIENT_FIRST_TRIALS {
        match connect_starttls(addr, protocol, params.clone(), connect_limit.min(share), share).await {
            Ok(mut up) => {
                if protocol == Protocol::XmppClient && answered_as_s2s(&up.transcript) {
                    up.protocol = Some(Protocol::XmppServer);
                }
                return Ok(up);
            }
            Err(UpgradeError::Connect(e)) => return Err(UpgradeError::Connect(e)),
            // It is this protocol without STARTTLS, or plainly something else (ssh, http): that is
            // the answer.
            Err(e @ (UpgradeError::Unsupported { .. } | UpgradeError::NotStarttls { .. })) => return Err(e),
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
        transport: "tcp".into(),
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

/// The result when a port answers in plaintext without TLS: a known protocol without STARTTLS, or
/// a service that has no TLS at all (ssh, http), has nothing for Heartbleed to attack
/// (`not-applicable`); a dialogue that broke stays `inconclusive`.
fn upgrade_error_result(target: &EndpointTarget, err: UpgradeError) -> EndpointResult {
    let reason = err.to_string();
    let banner = Some(err.transcript().to_string());
    match err {
        UpgradeError::Unsupported { .. } => {
            no_tls_result(target, "plaintext-no-tls", ScanStatus::StarttlsUnsupported, Verdict::NotApplicable, reason, banner)
        }
        UpgradeError::NotStarttls { .. } => no_tls_result(target, "not-tls", ScanStatus::NotTls, Verdict::NotApplicable, reason, banner),
        UpgradeError::Connect(e) => {
            let status = match e {
                ConnectError::Refused => ScanStatus::ConnectionRefused,
                ConnectError::Timeout => ScanStatus::ConnectionTimeout,
                ConnectError::Other(_) => ScanStatus::ConnectionFailed,
            };
            no_tls_result(target, "unknown", status, Verdict::Inconclusive, format!("connect failed: {e}"), None)
        }
        UpgradeError::Failed { .. } | UpgradeError::Timeout { .. } | UpgradeError::Closed { .. } => {
            no_tls_result(target, "unknown", ScanStatus::StarttlsFailed, Verdict::Inconclusive, reason, banner)
        }
    }
}

/// The result for a port that sent bytes that are not TLS and whose dialect could not be made out
/// either (an endless or unknown banner): not TLS, and both attempts say why.
fn unrecognised_result(target: &EndpointTarget, sweep: &VersionSweep, err: &UpgradeError) -> EndpointResult {
    let direct = sweep.details.iter().rev().find_map(|d| d.reason.clone()).unwrap_or_else(|| "not TLS".into());
    let reason = format!("{direct}; no STARTTLS dialect recognised either: {err}");
    no_tls_result(target, "unknown", ScanStatus::NotTls, Verdict::Inconclusive, reason, Some(err.transcript().to_string()))
}

/// The result for a port that answered our ClientHello as a service without TLS does (an HTTP
/// error page, an SSH banner): nothing for Heartbleed to attack, decided from that answer.
fn not_tls_reply_result(target: &EndpointTarget, sweep: &VersionSweep, what: &str, reply: &[u8]) -> EndpointResult {
    let reason = format!("not a TLS or STARTTLS service: {what} banner {} in answer to our ClientHello", excerpt(reply));
    let mut result = no_tls_result(target, "not-tls", ScanStatus::NotTls, Verdict::NotApplicable, reason, Some(excerpt(reply)));
    result.details = sweep.details.clone();
    result
}

/// The result for a port that answered our ClientHello with bytes no protocol we know starts with:
/// not TLS, and nothing to learn by waiting for a banner.
fn unrecognised_reply_result(target: &EndpointTarget, sweep: &VersionSweep, reply: &[u8]) -> EndpointResult {
    let reason = format!("not TLS: the server answered our ClientHello with {} bytes no known protocol starts with", reply.len());
    let mut result = no_tls_result(target, "unknown", ScanStatus::NotTls, Verdict::Inconclusive, reason, Some(excerpt(reply)));
    result.details = sweep.details.clone();
    result
}

/// Tests every version over STARTTLS `protocol`, starting with the already-upgraded `first`
/// connection; each further version gets its own connection and dialogue.
async fn starttls_sweep(target: &EndpointTarget, opts: &EndpointOptions, protocol: Protocol, first: Upgraded) -> EndpointResult {
    let params = client_params(target, opts);
    let banner = Some(first.transcript.clone());
    let mut pending = Some(first);
    let sweep = sweep_versions(&tcp_versions(opts), initial_sni(target, opts), opts.sni_retry, |attempt| {
        let cfg = attempt.probe_config(opts.mode, crate::heartbleed::DEFAULT_PAYLOAD_LEN);
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

/// A stream that keeps the first bytes the server sent, so that a reply to our ClientHello that is
/// not TLS can be recognised (the TLS probe itself keeps only five).
struct Recorded<S> {
    inner: S,
    first: Arc<Mutex<Vec<u8>>>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Recorded<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let mut first = this.first.lock().unwrap_or_else(|p| p.into_inner());
            let room = FIRST_BYTES_KEPT.saturating_sub(first.len());
            let new = buf.filled().get(before..).unwrap_or_default();
            first.extend_from_slice(new.get(..room.min(new.len())).unwrap_or_default());
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Recorded<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The direct-TLS sweep, keeping what the server sent first on the last connection (the one that
/// ended the sweep when it was not TLS).
async fn sweep_direct_tls_recorded(target: &EndpointTarget, opts: &EndpointOptions) -> (VersionSweep, Vec<u8>) {
    let last_reply: Arc<Mutex<Vec<u8>>> = Arc::default();
    let sweep = sweep_versions(&tcp_versions(opts), initial_sni(target, opts), opts.sni_retry, |attempt| {
        let cfg = attempt.probe_config(opts.mode, crate::heartbleed::DEFAULT_PAYLOAD_LEN);
        let last_reply = last_reply.clone();
        async move {
            let stream = connect(target.addr, opts.timeouts.connect).await.map_err(|e| AttemptFailure::connect(&cfg, &e))?;
            let first: Arc<Mutex<Vec<u8>>> = Arc::default();
            let mut recorded = Recorded { inner: stream, first: first.clone() };
            let outcome = crate::conn::drive(&mut recorded, HeartbleedProbe::new(cfg), &opts.timeouts).await;
            let first = std::mem::take(&mut *first.lock().unwrap_or_else(|p| p.into_inner()));
            *last_reply.lock().unwrap_or_else(|p| p.into_inner()) = first;
            Ok(outcome)
        }
    })
    .await;
    let reply = std::mem::take(&mut *last_reply.lock().unwrap_or_else(|p| p.into_inner()));
    (sweep, reply)
}

/// What a reply to our ClientHello that is not TLS already says, so that no banner wait is spent
/// on it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HelloReply {
    /// A service without TLS (http, ssh, …): the answer.
    NotStarttls(&'static str),
    /// A STARTTLS dialect, by its own words (an IRC server's NOTICE or numeric, a POP3 `-ERR`):
    /// speak it at once, whether or not the server talks first.
    Dialect(Protocol),
    /// Bytes a client-first dialect answers garbage with (an XMPP stream error, an LDAP or RDP
    /// packet): try those dialects, without waiting for a banner.
    ClientFirst,
    /// Bytes no protocol we know starts with: the answer (not TLS, nothing more to find).
    Unrecognised,
    /// A banner still to be made out (a `220`, text without its line end): detect as usual.
    Banner,
}

fn classify_hello_reply(reply: &[u8]) -> HelloReply {
    match bleedwatch_starttls::identify(reply) {
        Identification::NotStartTls(what) => HelloReply::NotStarttls(what),
        Identification::Protocol(protocol) => HelloReply::Dialect(protocol),
        Identification::SmtpOrFtp | Identification::Incomplete => HelloReply::Banner,
        Identification::Unknown => {
            let client_first = reply.first() == Some(&b'<') || reply.first() == Some(&0x30) || reply.starts_with(&[0x03, 0x00]);
            if client_first {
                HelloReply::ClientFirst
            } else {
                HelloReply::Unrecognised
            }
        }
    }
}

/// True when a direct-TLS sweep saw no TLS at all: bytes that are not TLS (a banner, an error
/// message), or every version's connection closed before a ServerHello (a client-first service
/// that drops a ClientHello). A server that stays silent after our hello is left at that:
/// trying dialects on it would only multiply the timeout.
fn saw_no_tls(sweep: &VersionSweep) -> bool {
    let nothing_negotiated = sweep.details.iter().all(|d| d.negotiated.is_none());
    match sweep.status {
        ScanStatus::NotTls => nothing_negotiated,
        ScanStatus::Success => {
            !sweep.accepted_any() && nothing_negotiated && sweep.details.iter().all(|d| d.reason.as_deref() == Some("closed before ServerHello"))
        }
        _ => false,
    }
}

/// Tests one TCP endpoint: direct TLS or STARTTLS as `opts.starttls` says, finding out when asked to.
/// `started_at` and `duration_ms` cover all of it: detection, STARTTLS dialogues, every version.
pub async fn probe_endpoint(target: &EndpointTarget, opts: &EndpointOptions) -> EndpointResult {
    let started = std::time::SystemTime::now();
    let clock = std::time::Instant::now();
    let mut result = probe_endpoint_untimed(target, opts).await;
    result.started_at = humantime::format_rfc3339_millis(started).to_string();
    result.duration_ms = u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX);
    result
}

async fn probe_endpoint_untimed(target: &EndpointTarget, opts: &EndpointOptions) -> EndpointResult {
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
            let (sweep, reply) = sweep_direct_tls_recorded(target, opts).await;
            if opts.starttls == StarttlsMode::Auto && saw_no_tls(&sweep) {
                let answered = sweep.status == ScanStatus::NotTls && !reply.is_empty();
                let detected = match classify_hello_reply(&reply) {
                    HelloReply::NotStarttls(what) if answered => {
                        return not_tls_reply_result(target, &sweep, what, &reply);
                    }
                    HelloReply::Unrecognised if answered => return unrecognised_reply_result(target, &sweep, &reply),
                    HelloReply::Dialect(protocol) if answered => connect_starttls(target.addr, protocol, params, connect_limit, limit).await,
                    HelloReply::ClientFirst if answered => try_client_first(target.addr, &params, connect_limit, limit).await,
                    _ => detect(target.addr, &params, connect_limit, banner_wait, limit).await,
                };
                match detected {
                    Ok(up) => {
                        if let Some(protocol) = up.protocol {
                            return starttls_sweep(target, opts, protocol, up).await;
                        }
                    }
                    Err(e @ (UpgradeError::Unsupported { .. } | UpgradeError::NotStarttls { .. })) => return upgrade_error_result(target, e),
                    Err(e @ (UpgradeError::Failed { .. } | UpgradeError::Timeout { .. } | UpgradeError::Closed { .. }))
                        if sweep.status == ScanStatus::NotTls =>
                    {
                        return unrecognised_result(target, &sweep, &e)
                    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_decide_the_first_plan() {
        assert_eq!(initial_plan(StarttlsMode::Off, 25), Some(ServicePlan::DirectTls));
        assert_eq!(initial_plan(StarttlsMode::Force(Protocol::Imap), 443), Some(ServicePlan::Starttls(Protocol::Imap)));
        // Client-first well-known ports get their dialect; server-first ones listen for the banner.
        assert_eq!(initial_plan(StarttlsMode::Auto, 5432), Some(ServicePlan::Starttls(Protocol::Postgres)));
        assert_eq!(initial_plan(StarttlsMode::Auto, 25), None);
        assert_eq!(initial_plan(StarttlsMode::Auto, 8443), Some(ServicePlan::DirectTls));
        assert_eq!(ServicePlan::Starttls(Protocol::XmppServer).service_name(), "xmpp-server-starttls");
    }

    #[test]
    fn a_broken_dialogue_with_an_ssh_or_http_answer_is_that_service() {
        let failed = || UpgradeError::Failed { reason: "unexpected answer".into(), transcript: "C: x".into() };
        let http = recognise_failure(b"HTTP/1.1 400 Bad Request\r\nServer: nginx\r\n", failed());
        assert!(matches!(&http, UpgradeError::NotStarttls { what, transcript, .. } if what == "http" && transcript == "C: x"), "{http:?}");
        assert_eq!(http.to_string(), r#"not a TLS or STARTTLS service: http banner "HTTP/1.1 400 Bad Request\r\nServer: nginx\r\n""#);
        let ssh = recognise_failure(b"SSH-2.0-OpenSSH_9.2\r\n", UpgradeError::Closed { transcript: String::new() });
        assert!(matches!(ssh, UpgradeError::NotStarttls { ref what, .. } if what == "ssh"), "{ssh:?}");
        // Anything else stays what it was, and so does a clear "not offered".
        assert_eq!(recognise_failure(b"500 what\r\n", failed()), failed());
        let unsupported = UpgradeError::Unsupported { reason: "no STARTTLS".into(), transcript: String::new() };
        assert_eq!(recognise_failure(b"HTTP/1.1 400", unsupported.clone()), unsupported);
    }

    #[test]
    fn excerpts_are_printable_and_short() {
        assert_eq!(excerpt(b"a\x00b\r\n"), r#""a\0b\r\n""#);
        assert_eq!(excerpt(&[b'x'; 500]).len(), 82);
        assert_eq!(excerpt(&[0xff, b'a']), "\"\u{fffd}a\"");
    }

    #[test]
    fn an_s2s_answer_is_told_by_its_namespace() {
        let s2s = "C: <?xml version='1.0'?><stream:stream xmlns='jabber:client' to='x'>\nS: <stream:stream xmlns='jabber:server' from='x' version='1.0'>\n";
        assert!(answered_as_s2s(s2s));
        let c2s = "C: <stream:stream xmlns='jabber:server'>\nS: <stream:stream xmlns='jabber:client' from='x' version='1.0'>\n";
        assert!(!answered_as_s2s(c2s));
    }
}
