//! `bleedwatch client-test` (test the TLS clients that connect; with `--after-handshake` inside a
//! session completed by the lab's TLS server) and `bleedwatch honeypot` (pretend to
//! be a vulnerable server and log every attempt). Both record what they see in the inventory (the
//! default one, `--db URL`, or none with `--no-db`): client verdicts for `bleedwatch clients`,
//! attempts for `bleedwatch attackers`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bleedwatch_lab::{Behaviour, LabConfig, LabEvent, LabIdentity, LabServer};
use bleedwatch_probe::client_test::{serve_client_tests_with, ClientTestOptions, ClientTestResult};
use bleedwatch_probe::conn::Timeouts;
use bleedwatch_probe::heartbleed::MAX_PROVE_OVERREAD;
use bleedwatch_probe::{ProbeMode, Verdict};
use bleedwatch_store::{AttackInput, ClientTestInput, RunId, Store};
use clap::Args;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::cmd_inventory::DbArgs;
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
    /// Complete the handshake first (with a self-signed lab certificate the client must accept:
    /// curl -k, gnutls-cli --insecure) and send the heartbeats encrypted in the session, for
    /// clients that answer heartbeats only after the handshake (GnuTLS).
    #[arg(long)]
    pub after_handshake: bool,
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
    #[command(flatten)]
    pub db: DbArgs,
    /// Do not record clients in the inventory. By default every client's verdict is recorded (in
    /// the inventory --db names, else the default one) for `bleedwatch clients`.
    #[arg(long, conflicts_with = "db")]
    pub no_db: bool,
}

/// Where a command records: the inventory and its run of this command.
struct Recording {
    store: Store,
    run: RunId,
    /// Events not recorded. A listener that runs for weeks keeps running (and writing JSON lines)
    /// through a database outage, warning for each loss, and fails at the end.
    failures: usize,
}

impl Recording {
    /// Opens the inventory (unless `--no-db`) and starts a run of `command` with the command line
    /// after it, `--db` left out (it may hold a password).
    async fn start(db: &DbArgs, no_db: bool, command: &str) -> Result<Option<Recording>> {
        if no_db {
            return Ok(None);
        }
        let store = db.open().await?;
        let run = store.start_run(command, &arguments_without_db(std::env::args().skip(2))).await?;
        Ok(Some(Recording { store, run, failures: 0 }))
    }

    async fn record_client(&self, line: &serde_json::Value, listener: &str) -> Result<()> {
        self.store.record_client_test(&ClientTestInput::from_json(line, listener, Some(self.run))?).await?;
        Ok(())
    }

    async fn record_attempt(&self, line: &serde_json::Value) -> Result<()> {
        self.store.record_attack(&AttackInput::from_honeypot_attempt(line, Some(self.run))?).await?;
        Ok(())
    }

    fn note(&mut self, recorded: Result<()>, what: &str) {
        if let Err(error) = recorded {
            self.failures += 1;
            eprintln!("bleedwatch: warning: {what} not recorded in the inventory: {error:#}");
        }
    }

    async fn finish(&self, ok: bool) {
        let status = if ok && self.failures == 0 { "finished" } else { "failed" };
        // The run's own bookkeeping may fail for the same reason as the events: say so, do not
        // hide the outcome behind it.
        if let Err(error) = self.store.finish_run(self.run, status).await {
            eprintln!("bleedwatch: warning: the run could not be marked {status} in the inventory: {error:#}");
        }
    }

    /// An error when events were lost.
    fn check(&self, what: &str) -> Result<()> {
        if self.failures > 0 {
            bail!("{} {what} were not recorded in the inventory (see the warnings above)", self.failures);
        }
        Ok(())
    }
}

/// The command-line words without `--db URL` / `--db=URL`.
pub fn arguments_without_db(words: impl Iterator<Item = String>) -> Vec<String> {
    let mut kept = Vec::new();
    let mut skip_next = false;
    for word in words {
        if skip_next {
            skip_next = false;
        } else if word == "--db" {
            skip_next = true;
        } else if !word.starts_with("--db=") {
            kept.push(word);
        }
    }
    kept
}

fn verdict_line(r: &ClientTestResult) -> String {
    format!(
        "{}  {}{}  offered {} heartbeat {}  →  {}{}",
        r.client,
        r.service,
        if r.after_handshake { " (after handshake)" } else { "" },
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
    let after_handshake = if args.after_handshake {
        let identity = LabIdentity::rsa_lab(&["client-test.bleedwatch.invalid"]).context("lab certificate for --after-handshake")?;
        Some(bleedwatch_probe::client_test::lab_server_factory(Arc::new(identity)))
    } else {
        None
    };
    let mut json = args.json.as_deref().map(open_output).transpose()?;
    let to_stdout = args.json.as_deref().is_some_and(|p| p.as_os_str() == "-");
    let mut recording = Recording::start(&args.db, args.no_db, "client-test").await?;
    let local = listener.local_addr()?;
    eprintln!(
        "bleedwatch client-test: listening on {local} ({}{})",
        starttls.map(|p| format!("{} with STARTTLS", p.name())).unwrap_or_else(|| "direct TLS".into()),
        if args.after_handshake { ", heartbeats after a completed handshake" } else { ", heartbeats during the handshake" }
    );
    let (tx, mut rx) = mpsc::channel(64);
    let server = tokio::spawn(serve_client_tests_with(listener, opts, after_handshake, tx));
    let mut vulnerable = 0;
    let outcome: Result<bool> = async {
        loop {
            let next = tokio::select! {
                r = rx.recv() => r,
                _ = tokio::signal::ctrl_c() => return Ok(true),
            };
            let Some(r) = next else { return Ok(false) };
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
            if let Some(rec) = recording.as_mut() {
                let line = serde_json::to_value(&r)?;
                let recorded = rec.record_client(&line, &local.to_string()).await;
                rec.note(recorded, "client");
            }
        }
    }
    .await;
    match &outcome {
        // Interrupted, or failed: stop accepting clients.
        Ok(true) | Err(_) => server.abort(),
        Ok(false) => server.await.context("client-test server")?,
    }
    if let Some(rec) = &recording {
        rec.finish(outcome.is_ok()).await;
    }
    outcome?;
    if let Some(rec) = &recording {
        rec.check("clients")?;
    }
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

pub async fn run_honeypot(args: HoneypotArgs) -> Result<u8> {
    let identity = Arc::new(LabIdentity::rsa_lab(&[args.name.as_str()])?);
    let cfg = LabConfig::new(Behaviour::Vulnerable, identity);
    let starttls = parse_starttls(args.starttls.as_deref())?;
    let mut recording = Recording::start(&args.db, args.no_db, "honeypot").await?;
    // One feed for every listener; each event names the local address the attacker reached.
    let (tx, mut rx) = mpsc::unbounded_channel::<(SocketAddr, SocketAddr, LabEvent)>();
    let mut servers = Vec::new();
    for addr in &args.listen {
        let s = LabServer::bind_with(*addr, cfg.clone(), Some(tx.clone()), starttls).await.with_context(|| format!("cannot listen on {addr}"))?;
        eprintln!("bleedwatch honeypot: pretending to be OpenSSL 1.0.1f on {} (canary bytes only)", s.local_addr());
        servers.push(s);
    }
    drop(tx);
    let mut json = args.json.as_deref().map(open_output).transpose()?;
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
    fn stored_arguments_leave_out_the_database() {
        let words = ["--listen", "127.0.0.1:1", "--db", "postgres://u:secret@h/db", "--db=x.db", "--once"].map(String::from);
        assert_eq!(arguments_without_db(words.into_iter()), ["--listen", "127.0.0.1:1", "--once"]);
    }

    #[test]
    fn attempts_are_classified() {
        assert_eq!(attempt_kind(16365, 0), "over-read");
        assert_eq!(attempt_kind(0, 0), "memory-safe-probe");
        assert_eq!(attempt_kind(0, 16), "honest");
    }
}
