//! `bleedwatch honeypot`: pretend to be a vulnerable server (canary bytes only) and log every
//! Heartbleed attempt, recording each in the inventory for `bleedwatch attackers`.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use bleedwatch_lab::{Behaviour, LabConfig, LabEvent, LabServer};
use bleedwatch_starttls::Protocol;
use clap::Args;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::args::{starttls_dialect_parser, DbArgs, JsonArgs, ServerIdentityArgs};
use crate::output::open_output;
use crate::recording::ListenerRecording;

#[derive(Args, Debug)]
pub struct HoneypotArgs {
    /// Address to listen on (repeatable).
    #[arg(long, required = true)]
    pub listen: Vec<SocketAddr>,
    #[command(flatten)]
    pub output: JsonArgs,
    /// Also speak this STARTTLS dialect before TLS.
    #[arg(long, value_name = "PROTO", value_parser = starttls_dialect_parser(), ignore_case = true)]
    pub starttls: Option<Protocol>,
    /// Exit after this many heartbeat attempts (for scripts and tests).
    #[arg(long, value_name = "N")]
    pub max_attempts: Option<usize>,
    /// Certificate name the honeypot presents (on this installation's own key).
    #[arg(long, default_value = "www.example.internal")]
    pub name: String,
    #[command(flatten)]
    pub identity: ServerIdentityArgs,
    #[command(flatten)]
    pub db: DbArgs,
    /// Do not record attempts in the inventory. By default every attempt is recorded (in the
    /// inventory --db names, else the default one) for `bleedwatch attackers`; attempts on the
    /// honeypot never count against inventory endpoints, as it leaks canary bytes only.
    #[arg(long, conflicts_with = "db")]
    pub no_db: bool,
}

/// One logged attempt. No payload bytes: what the attacker sent and got are described by lengths.
#[derive(Debug, Serialize)]
pub struct Attempt {
    pub source: String,
    pub listener: String,
    pub time: String,
    pub tls_version: String,
    /// `memory-safe-probe` (claim present, padding missing: sslyze-style), `over-read` (claims more
    /// than it sends: an exploit, or nmap/testssl/Metasploit), or `honest` (valid heartbeat).
    pub kind: &'static str,
    pub record_length: usize,
    pub claimed_length: u16,
    pub payload_sent: usize,
    pub padding: usize,
    /// Bytes a real OpenSSL 1.0.1f would have read from its memory for this request.
    pub overread: usize,
    /// Whether the honeypot answered (always with the attacker's own bytes and canary bytes).
    pub answered: bool,
    /// Sent inside an established session (after the handshake) rather than in the clear.
    pub encrypted: bool,
}

fn attempt_kind(overread: usize, padding: usize) -> &'static str {
    if overread > 0 {
        "over-read"
    } else if padding < bleedwatch_wire::heartbeat::MIN_PADDING {
        "memory-safe-probe"
    } else {
        "honest"
    }
}

pub async fn run(args: HoneypotArgs) -> Result<u8> {
    let identity = Arc::new(args.identity.identity((!args.no_db).then_some(&args.db), &args.name)?);
    let cfg = LabConfig::new(Behaviour::Vulnerable, identity);
    let starttls = args.starttls;
    let mut recording = ListenerRecording::start(&args.db, args.no_db, "honeypot").await?;
    // One feed for every listener; each event names the local address the attacker reached.
    let (tx, mut rx) = mpsc::unbounded_channel::<(SocketAddr, SocketAddr, LabEvent)>();
    let mut servers = Vec::new();
    for addr in &args.listen {
        let s = LabServer::bind_with(*addr, cfg.clone(), Some(tx.clone()), starttls).await.with_context(|| format!("cannot listen on {addr}"))?;
        eprintln!("bleedwatch honeypot: pretending to be OpenSSL 1.0.1f on {} (canary bytes only)", s.local_addr());
        servers.push(s);
    }
    drop(tx);
    let mut json = args.output.json.as_deref().map(open_output).transpose()?;
    let mut attempts = 0usize;
    let outcome: Result<()> = async {
        loop {
            let next = tokio::select! {
                e = rx.recv() => e,
                _ = tokio::signal::ctrl_c() => None,
            };
            let Some((peer, listener, event)) = next else { return Ok(()) };
            let LabEvent::Heartbeat { version, record_len, claimed, present, padding, overread, answered, encrypted, .. } = event else {
                continue;
            };
            tracing::debug!(source = %peer, listener = %listener, claimed, present, padding, overread, answered, encrypted, "heartbeat attempt");
            let attempt = Attempt {
                source: peer.to_string(),
                listener: listener.to_string(),
                time: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
                tls_version: version.to_string(),
                kind: attempt_kind(overread, padding),
                record_length: record_len,
                claimed_length: claimed,
                payload_sent: present,
                padding,
                overread,
                answered,
                encrypted,
            };
            eprintln!(
                "{}  {}  {}: claims {}, sent {}, padding {}{}",
                attempt.source,
                attempt.tls_version,
                attempt.kind,
                claimed,
                present,
                padding,
                if overread > 0 { format!(" — tried to read {overread} bytes of memory, got canary") } else { String::new() }
            );
            if let Some(out) = json.as_mut() {
                serde_json::to_writer(&mut *out, &attempt)?;
                out.write_all(b"\n")?;
                out.flush()?;
            }
            if let Some(rec) = recording.as_mut() {
                let line = serde_json::to_value(&attempt)?;
                let recorded = rec.record_attempt(&line).await;
                rec.note(recorded, "attempt");
            }
            attempts += 1;
            if args.max_attempts.is_some_and(|m| attempts >= m) {
                return Ok(());
            }
        }
    }
    .await;
    for server in servers {
        server.stop();
    }
    if let Some(rec) = &recording {
        rec.finish(outcome.is_ok()).await;
    }
    outcome?;
    if let Some(rec) = &recording {
        rec.check("attempts")?;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_are_classified() {
        assert_eq!(attempt_kind(16365, 0), "over-read");
        assert_eq!(attempt_kind(0, 0), "memory-safe-probe");
        assert_eq!(attempt_kind(0, 16), "honest");
    }
}
