//! Testing one endpoint: every version from TLS 1.2 down to SSLv3 on its own connection, following
//! downgrades, retrying without SNI when SNI is refused, and falling back to a TLS 1.3 handshake for
//! the certificate when nothing older is accepted.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use bleedwatch_wire::{AlertDescription, ProtocolVersion};

use crate::conn::{connect, connect_failure_outcome, run_probe, ConnectError, Timeouts};
use crate::heartbleed::{ConnectionOutcome, ConnectionVerdict, Inconclusive, LeakEvidence, Phase, ProbeConfig, ProbeMode};
use crate::result::{classify, EndpointResult, ScanStatus, Verdict, VersionDetail};

#[derive(Debug, Clone)]
pub struct EndpointOptions {
    pub mode: ProbeMode,
    pub timeouts: Timeouts,
    /// Versions to test, any order; tested newest first.
    pub versions: Vec<ProtocolVersion>,
    /// Retry without SNI when the server refuses the hello with SNI (PEERS.md pitfall 4).
    pub sni_retry: bool,
    /// When no SSLv3–TLS 1.2 version is accepted, try a TLS 1.3 handshake for the certificate.
    pub tls13_fallback: bool,
    /// SNI to send instead of the target's own name.
    pub sni_override: Option<String>,
}

impl Default for EndpointOptions {
    fn default() -> Self {
        EndpointOptions {
            mode: ProbeMode::Safe,
            timeouts: Timeouts::default(),
            versions: ProtocolVersion::PROBEABLE_TLS.to_vec(),
            sni_retry: true,
            tls13_fallback: true,
            sni_override: None,
        }
    }
}

/// One endpoint to test.
#[derive(Debug, Clone)]
pub struct EndpointTarget {
    pub addr: SocketAddr,
    /// The name the user gave, if any; sent as SNI.
    pub host: Option<String>,
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Alerts that mean "I don't speak this version (or nothing you offered)".
fn sni_may_be_the_problem(o: &ConnectionOutcome) -> bool {
    matches!(
        o.verdict,
        ConnectionVerdict::VersionRejected {
            alert: Some(AlertDescription::UNRECOGNIZED_NAME | AlertDescription::HANDSHAKE_FAILURE | AlertDescription::ILLEGAL_PARAMETER)
        }
    ) || matches!(&o.verdict, ConnectionVerdict::Inconclusive(Inconclusive::ProtocolError { .. }))
}

pub async fn probe_endpoint(target: &EndpointTarget, opts: &EndpointOptions) -> EndpointResult {
    let started = SystemTime::now();
    let clock = Instant::now();
    let mut versions = opts.versions.clone();
    versions.sort_by_key(|v| std::cmp::Reverse(v.rank()));
    versions.dedup();

    let mut per_version: BTreeMap<ProtocolVersion, (Verdict, Option<String>)> = BTreeMap::new();
    let mut details = Vec::new();
    let mut chain: Vec<Vec<u8>> = Vec::new();
    let mut leak: Option<LeakEvidence> = None;
    let mut sni = opts.sni_override.clone().or_else(|| target.host.clone().filter(|h| h.parse::<std::net::IpAddr>().is_err()));
    let mut sni_worked: Option<bool> = None;
    let mut status = ScanStatus::Success;

    for &version in &versions {
        if per_version.contains_key(&version) {
            continue;
        }
        let cfg = ProbeConfig::new(version, sni.clone(), opts.mode);
        let mut outcome = match run_probe(target.addr, cfg.clone(), &opts.timeouts).await {
            Ok(o) => o,
            Err(err) => {
                status = match err {
                    ConnectError::Refused => ScanStatus::ConnectionRefused,
                    ConnectError::Timeout => ScanStatus::ConnectionTimeout,
                    ConnectError::Other(_) => ScanStatus::ConnectionFailed,
                };
                let o = connect_failure_outcome(&cfg, &err);
                details.push(VersionDetail::from_outcome(&o, cfg.server_name.is_some()));
                per_version.insert(version, classify(&o));
                break;
            }
        };
        let mut used_sni = cfg.server_name.is_some();
        if used_sni && opts.sni_retry && sni_worked != Some(true) && sni_may_be_the_problem(&outcome) {
            let retry_cfg = ProbeConfig::new(version, None, opts.mode);
            if let Ok(retry) = run_probe(target.addr, retry_cfg, &opts.timeouts).await {
                if retry.negotiated.is_some() {
                    details.push(VersionDetail::from_outcome(&outcome, true));
                    outcome = retry;
                    used_sni = false;
                    sni = None;
                }
            }
        }
        if outcome.negotiated.is_some() && sni_worked.is_none() {
            sni_worked = Some(used_sni);
        }
        if chain.is_empty() && !outcome.chain.is_empty() {
            chain = outcome.chain.clone();
        }
        if leak.is_none() {
            leak = outcome.leak.clone();
        }
        details.push(VersionDetail::from_outcome(&outcome, used_sni));
        let (verdict, reason) = classify(&outcome);
        match outcome.negotiated {
            // The server answered below what we offered: every version in between is not supported, and
            // this connection already tested the negotiated one.
            Some(negotiated) if negotiated != version => {
                for &v in versions.iter().filter(|v| v.rank() > negotiated.rank() && v.rank() <= version.rank()) {
                    per_version.entry(v).or_insert((Verdict::NotSupported, Some(format!("server negotiated {negotiated}"))));
                }
                per_version.insert(negotiated, (verdict, reason));
            }
            _ => {
                per_version.insert(version, (verdict, reason));
            }
        }
        match outcome.verdict {
            ConnectionVerdict::Inconclusive(Inconclusive::NotTls { .. }) => {
                status = ScanStatus::NotTls;
                break;
            }
            // A server that said nothing at all to one hello will not to the next: don't spend a
            // timeout per version on it.
            ConnectionVerdict::Inconclusive(Inconclusive::Timeout { phase: Phase::ServerHello }) => break,
            _ => {}
        }
    }

    let accepted_any = per_version.values().any(|(v, _)| *v != Verdict::NotSupported);
    let mut heartbleed = per_version.values().fold(Verdict::NotSupported, |acc, (v, _)| Verdict::worst(acc, *v));
    let mut reason = per_version
        .values()
        .filter(|(v, _)| *v == heartbleed)
        .find_map(|(_, r)| r.clone());
    let mut tls13_chain = None;
    if !accepted_any && status == ScanStatus::Success {
        if opts.tls13_fallback {
            match fetch_tls13(target, sni.as_deref(), &opts.timeouts).await {
                Ok(chain13) => {
                    heartbleed = Verdict::NotApplicable;
                    reason = Some("only TLS 1.3 is accepted; TLS 1.3 has no heartbeat".into());
                    per_version.insert(ProtocolVersion::TLS1_3, (Verdict::NotApplicable, None));
                    tls13_chain = Some(chain13);
                }
                Err(err) => {
                    heartbleed = Verdict::Inconclusive;
                    reason = Some(format!("no SSLv3-TLS 1.2 version accepted, and TLS 1.3 failed: {err}"));
                    status = ScanStatus::HandshakeError;
                }
            }
        } else {
            heartbleed = Verdict::Inconclusive;
            reason = Some("no SSLv3-TLS 1.2 version accepted".into());
            status = ScanStatus::HandshakeError;
        }
    }
    if status != ScanStatus::Success && heartbleed != Verdict::Vulnerable {
        heartbleed = Verdict::Inconclusive;
    }
    if heartbleed == Verdict::Inconclusive && status == ScanStatus::Success {
        status = status_for_inconclusive(&details);
    }
    if let Some(c) = tls13_chain {
        chain = c;
    }
    let summaries = crate::certs::summarize_chain(&chain);
    EndpointResult {
        address: target.addr.ip().to_string(),
        port: target.addr.port(),
        transport: "tcp",
        host: target.host.clone(),
        service: "tls".into(),
        sni: if sni_worked == Some(true) { sni } else { None },
        status,
        heartbleed,
        reason,
        versions: per_version.into_iter().map(|(v, (verdict, _))| (v.to_string(), verdict)).collect(),
        certificate: summaries.first().cloned(),
        chain: summaries,
        leak,
        details,
        started_at: rfc3339(started),
        duration_ms: clock.elapsed().as_millis() as u64,
    }
}

fn status_for_inconclusive(details: &[VersionDetail]) -> ScanStatus {
    let reason = details.iter().rev().find(|d| d.verdict == Verdict::Inconclusive).and_then(|d| d.reason.clone()).unwrap_or_default();
    if reason.starts_with("timeout") {
        ScanStatus::IoTimeout
    } else if reason.starts_with("protocol error") || reason.starts_with("alert") {
        ScanStatus::ProtocolError
    } else {
        ScanStatus::HandshakeError
    }
}

async fn fetch_tls13(target: &EndpointTarget, sni: Option<&str>, t: &Timeouts) -> Result<Vec<Vec<u8>>, String> {
    let stream = connect(target.addr, t.connect).await.map_err(|e| e.to_string())?;
    let deadline = tokio::time::Instant::now() + t.handshake;
    bleedwatch_tls13::fetch_tls13(stream, sni, deadline).await.map(|info| info.chain).map_err(|e| e.to_string())
}
