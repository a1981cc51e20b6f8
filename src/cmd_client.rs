//! `bleedwatch client-test` (test the TLS clients that connect) and `bleedwatch honeypot` (pretend to
//! be a vulnerable server and log every attempt).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bleedwatch_lab::{Behaviour, LabConfig, LabEvent, LabIdentity, LabServer};
use bleedwatch_probe::client_test::{serve_client_tests, ClientTestOptions, ClientTestResult};
use bleedwatch_probe::conn::Timeouts;
use bleedwatch_probe::heartbleed::MAX_PROVE_OVERREAD;
use bleedwatch_probe::{ProbeMode, Verdict};
use clap::Args;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::output::open_output;

#[derive(Args, Debug)]
pub struct ClientTestArgs {
    /// Address to listen on, e.g. 127.0.0.1:4433 (point the client under test here).
    #[arg(long)]
    pub listen: SocketAddr,
    /// Opt-in proof: over-read this many bytes (at most 64) of the client's memory; only a count and a
    /// SHA-256 are reported.
    #[arg(long, value_name = "BYTES", num_args = 0..=1, default_missing_value = "16")]
    pub prove: Option<u16>,
    /// Play the server side of a STARTTLS dialogue first: smtp (point an MTA here as its relay),
    /// imap, pop3, ftp, xmpp, ldap, postgres, mysql, …
    #[arg(long, value_name = "PROTO")]
    pub starttls: Option<String>,
    /// Exit after the first client.
    #[arg(long, conflicts_with = "max_clients")]
    pub once: bool,
    /// Exit after N clients.
    #[arg(long, value_name = "N")]
    pub max_clients: Option<usize>,
    /// Limit for a client's hello and for its answer to our heartbeats.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Write one JSON object per client to FILE (- for standard output).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

fn verdict_line(r: &ClientTestResult) -> String {
    format!(
        "{}  {}  offered {} heartbeat {}  →  {}{}",
        r.client,
        r.service,
        r.client_hello.version.as_deref().unwrap_or("?"),
        r.client_hello.heartbeat_mode.as_deref().unwrap_or("not offered"),
        r.verdict,
        r.reason.as_deref().map(|x| format!(" ({x})")).unwrap_or_default()
    )
}

fn parse_starttls(name: Option<&str>) -> Result<Option<bleedwatch_starttls::Protocol>> {
    name.map(|n| n.parse::<bleedwatch_starttls::Protocol>().map_err(|e| anyhow::anyhow!("--starttls: {e}"))).transpose()
}

pub async fn run_client_test(args: ClientTestArgs) -> Result<u8> {
    let mode = match args.prove {
        None => ProbeMode::Safe,
        Some(n) if n == 0 || n > MAX_PROVE_OVERREAD => bail!("--prove takes 1 to {MAX_PROVE_OVERREAD} bytes"),
        Some(n) => ProbeMode::Prove { overread: n },
    };
    let listener = tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("cannot listen on {}", args.listen))?;
    let max_clients = if args.once { Some(1) } else { args.max_clients };
    let starttls = parse_starttls(args.starttls.as_deref())?;
    let opts = ClientTestOptions {
        mode,
        timeouts: Timeouts { connect: args.timeout, handshake: args.timeout, heartbeat: args.timeout },
        max_clients,
        starttls,
    };
    let mut json = args.json.as_deref().map(open_output).transpose()?;
    let to_stdout = args.json.as_deref().is_some_and(|p| p.as_os_str() == "-");
    eprintln!(
        "bleedwatch client-test: listening on {} ({})",
        listener.local_addr()?,
        starttls.map(|p| format!("{} with STARTTLS", p.name())).unwrap_or_else(|| "direct TLS".into())
    );
    let (tx, mut rx) = mpsc::channel(64);
    let server = tokio::spawn(serve_client_tests(listener, opts, tx));
    let mut vulnerable = 0;
    while let Some(r) = rx.recv().await {
        if r.verdict == Verdict::Vulnerable {
            vulnerable += 1;
        }
        if to_stdout {
            eprintln!("{}", verdict_line(&r));
        } else {
            println!("{}", verdict_line(&r));
        }
        if let Some(out) = json.as_mut() {
            serde_json::to_writer(&mut *out, &r)?;
            out.write_all(b"\n")?;
            out.flush()?;
        }
    }
    server.await.context("client-test server")?;
    Ok(if vulnerable > 0 { 1 } else { 0 })
}

#[derive(Args, Debug)]
pub struct HoneypotArgs {
    /// Address to listen on (repeatable).
    #[arg(long, required = true)]
    pub listen: Vec<SocketAddr>,
    /// Write one JSON object per attempt to FILE (- for standard output).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Also speak this STARTTLS dialect before TLS (smtp, imap, pop3, ftp, xmpp, ...).
    #[arg(long, value_name = "PROTO")]
    pub starttls: Option<String>,
    /// Exit after this many heartbeat attempts (for scripts and tests).
    #[arg(long, value_name = "N")]
    pub max_attempts: Option<usize>,
    /// Certificate name the honeypot presents.
    #[arg(long, default_value = "www.example.internal")]
    pub name: String,
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

pub async fn run_honeypot(args: HoneypotArgs) -> Result<u8> {
    let identity = Arc::new(LabIdentity::rsa_lab(&[args.name.as_str()])?);
    let cfg = LabConfig::new(Behaviour::Vulnerable, identity);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut servers = Vec::new();
    for addr in &args.listen {
        let s = LabServer::bind_with(*addr, cfg.clone(), Some(tx.clone()), parse_starttls(args.starttls.as_deref())?)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        eprintln!("bleedwatch honeypot: pretending to be OpenSSL 1.0.1f on {} (canary bytes only)", s.local_addr());
        servers.push(s);
    }
    drop(tx);
    let mut json = args.json.as_deref().map(open_output).transpose()?;
    let mut attempts = 0usize;
    loop {
        let next = tokio::select! {
            e = rx.recv() => e,
            _ = tokio::signal::ctrl_c() => None,
        };
        let Some((peer, event)) = next else { break };
        let LabEvent::Heartbeat { version, record_len, claimed, present, padding, overread, answered, encrypted, .. } = event else { continue };
        let attempt = Attempt {
            source: peer.to_string(),
            listener: servers.first().map(|s| s.local_addr().to_string()).unwrap_or_default(),
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
        attempts += 1;
        if args.max_attempts.is_some_and(|m| attempts >= m) {
            break;
        }
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
