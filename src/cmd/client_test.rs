//! `bleedwatch client-test`: test the TLS clients that connect (directly, after STARTTLS, or with
//! `--after-handshake` inside a session completed by the lab's TLS server), recording each verdict
//! in the inventory for `bleedwatch clients`.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bleedwatch_clienttest::{serve_client_tests_with, ClientTestOptions, ClientTestResult};
use bleedwatch_probe::Verdict;
use bleedwatch_starttls::Protocol;
use clap::Args;
use tokio::sync::mpsc;

use crate::args::{parse_duration, probe_mode, starttls_dialect_parser, DbArgs, JsonArgs, ServerIdentityArgs, TimeoutArgs};
use crate::output::{is_stdout, open_output};
use crate::recording::ListenerRecording;

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
    #[arg(long, value_name = "PROTO", value_parser = starttls_dialect_parser(), ignore_case = true)]
    pub starttls: Option<Protocol>,
    /// Complete the handshake first (with a self-signed certificate on this installation's own
    /// key, or --cert/--key, that the client must accept: curl -k, gnutls-cli --insecure) and send
    /// the heartbeats encrypted in the session, for clients that answer heartbeats only after the
    /// handshake (GnuTLS).
    #[arg(long)]
    pub after_handshake: bool,
    #[command(flatten)]
    pub identity: ServerIdentityArgs,
    /// Exit after the first client.
    #[arg(long, conflicts_with = "max_clients")]
    pub once: bool,
    /// Exit after N clients.
    #[arg(long, value_name = "N")]
    pub max_clients: Option<usize>,
    /// Limit for a client's hello and for its answer to our heartbeats.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    #[command(flatten)]
    pub output: JsonArgs,
    #[command(flatten)]
    pub db: DbArgs,
    /// Do not record clients in the inventory. By default every client's verdict is recorded (in
    /// the inventory --db names, else the default one) for `bleedwatch clients`.
    #[arg(long, conflicts_with = "db")]
    pub no_db: bool,
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

pub async fn run(args: ClientTestArgs) -> Result<u8> {
    let mode = probe_mode(args.prove)?;
    let listener = tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("cannot listen on {}", args.listen))?;
    let max_clients = if args.once { Some(1) } else { args.max_clients };
    let starttls = args.starttls;
    let opts = ClientTestOptions {
        mode,
        timeouts: TimeoutArgs::all(args.timeout).timeouts(),
        max_clients,
        starttls,
    };
    let after_handshake = if args.after_handshake {
        let identity = args.identity.identity((!args.no_db).then_some(&args.db), "client-test.bleedwatch.invalid").context("certificate for --after-handshake")?;
        Some(bleedwatch_clienttest::lab_server_factory(Arc::new(identity)))
    } else {
        None
    };
    let mut json = args.output.json.as_deref().map(open_output).transpose()?;
    let to_stdout = args.output.json.as_deref().is_some_and(is_stdout);
    let mut recording = ListenerRecording::start(&args.db, args.no_db, "client-test").await?;
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
            tracing::debug!(client = %r.client, service = %r.service, verdict = r.verdict.as_str(), after_handshake = r.after_handshake, "client finished");
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
