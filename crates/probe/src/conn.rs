//! The thin async shell: drives a sans-IO [`HeartbleedProbe`] over a TCP connection with an overall
//! deadline per connection and a shorter one for the heartbeat answer. A server that trickles one byte
//! every few seconds still hits the overall deadline; writes are under the same deadlines.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

use crate::heartbleed::{ConnectionOutcome, ConnectionVerdict, HeartbleedProbe, Inconclusive, Phase, ProbeConfig};

/// Time limits for one connection.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    /// From connect to the end of the server's flight.
    pub handshake: Duration,
    /// From sending the heartbeats to the deciding answer.
    pub heartbeat: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts { connect: Duration::from_secs(5), handshake: Duration::from_secs(10), heartbeat: Duration::from_secs(5) }
    }
}

/// Why a connection could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectError {
    Refused,
    Timeout,
    Other(String),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Refused => f.write_str("connection refused"),
            ConnectError::Timeout => f.write_str("connection timed out"),
            ConnectError::Other(e) => f.write_str(e),
        }
    }
}

pub async fn connect(addr: SocketAddr, limit: Duration) -> Result<TcpStream, ConnectError> {
    match tokio::time::timeout(limit, TcpStream::connect(addr)).await {
        Err(_) => Err(ConnectError::Timeout),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => Err(ConnectError::Refused),
        Ok(Err(e)) => Err(ConnectError::Other(e.to_string())),
        Ok(Ok(s)) => {
            // Small writes (hello, heartbeats) should leave at once.
            let _ = s.set_nodelay(true);
            Ok(s)
        }
    }
}

/// Runs one probe connection to the end. Connection failures come back as `Err`; every other problem is
/// an inconclusive outcome that keeps whatever was learned.
pub async fn run_probe(addr: SocketAddr, cfg: ProbeConfig, t: &Timeouts) -> Result<ConnectionOutcome, ConnectError> {
    let mut stream = connect(addr, t.connect).await?;
    Ok(drive(&mut stream, HeartbleedProbe::new(cfg), t).await)
}

/// A sans-IO heartbeat test over a byte stream: the server probe, and the client test.
pub trait StreamTest {
    fn take_output(&mut self) -> Vec<u8>;
    fn feed(&mut self, data: &[u8]);
    fn feed_eof(&mut self);
    fn feed_reset(&mut self);
    fn feed_timeout(&mut self);
    fn is_done(&self) -> bool;
    /// True once our heartbeats are sent and only their answer is awaited.
    fn awaiting_answer(&self) -> bool;
}

impl StreamTest for HeartbleedProbe {
    fn take_output(&mut self) -> Vec<u8> {
        HeartbleedProbe::take_output(self)
    }
    fn feed(&mut self, data: &[u8]) {
        HeartbleedProbe::feed(self, data)
    }
    fn feed_eof(&mut self) {
        HeartbleedProbe::feed_eof(self)
    }
    fn feed_reset(&mut self) {
        HeartbleedProbe::feed_reset(self)
    }
    fn feed_timeout(&mut self) {
        HeartbleedProbe::feed_timeout(self)
    }
    fn is_done(&self) -> bool {
        HeartbleedProbe::is_done(self)
    }
    fn awaiting_answer(&self) -> bool {
        self.phase() == Phase::Heartbeat
    }
}

/// Drives an already-connected stream (plain TCP, or after a STARTTLS upgrade).
pub async fn drive<S>(stream: &mut S, probe: HeartbleedProbe, t: &Timeouts) -> ConnectionOutcome
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    drive_test(stream, probe, t).await.into_outcome()
}

/// Runs any [`StreamTest`] over a stream until it decides or a deadline passes: `handshake` until our
/// heartbeats are out, then `heartbeat` for the answer.
pub async fn drive_test<S, T>(stream: &mut S, mut probe: T, t: &Timeouts) -> T
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: StreamTest,
{
    let handshake_deadline = Instant::now() + t.handshake;
    let mut heartbeat_deadline: Option<Instant> = None;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let deadline = heartbeat_deadline.unwrap_or(handshake_deadline);
        let out = probe.take_output();
        if !out.is_empty() {
            match timeout_at(deadline, stream.write_all(&out)).await {
                Err(_) => probe.feed_timeout(),
                Ok(Err(_)) => probe.feed_reset(),
                Ok(Ok(())) => {}
            }
            if probe.awaiting_answer() && heartbeat_deadline.is_none() {
                heartbeat_deadline = Some(Instant::now() + t.heartbeat);
            }
        }
        if probe.is_done() {
            break;
        }
        let deadline = heartbeat_deadline.unwrap_or(handshake_deadline);
        match timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => probe.feed_timeout(),
            Ok(Ok(0)) => probe.feed_eof(),
            Ok(Ok(n)) => probe.feed(&buf[..n]),
            Ok(Err(_)) => probe.feed_reset(),
        }
    }
    probe
}

/// An outcome for a connection that never opened, so that results stay uniform.
pub fn connect_failure_outcome(cfg: &ProbeConfig, err: &ConnectError) -> ConnectionOutcome {
    ConnectionOutcome {
        offered: cfg.version,
        negotiated: None,
        cipher_suite: None,
        heartbeat_extension: None,
        chain: Vec::new(),
        verdict: ConnectionVerdict::Inconclusive(match err {
            ConnectError::Timeout => Inconclusive::Timeout { phase: Phase::Connect },
            other => Inconclusive::ConnectFailed { detail: other.to_string() },
        }),
        leak: None,
        first_connection: None,
        log: vec![err.to_string()],
    }
}
