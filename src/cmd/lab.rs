//! `bleedwatch lab`: run lab servers by hand (for trying other tools against them, or benchmarks).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use bleedwatch_lab::dtls::LabDtlsServer;
use bleedwatch_lab::{Behaviour, LabConfig, LabIdentity, LabServer};
use bleedwatch_starttls::Protocol;
use clap::{Args, ValueEnum};

use crate::args::starttls_dialect_parser;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BehaviourArg {
    /// Like OpenSSL 1.0.1f: answers every heartbeat (over-reads return canary bytes).
    Vulnerable,
    /// Like OpenSSL 1.0.1g: drops heartbeats without room for their payload and 16 bytes of padding.
    Fixed,
    /// Like OpenSSL 1.0.1f built with -DOPENSSL_NO_HEARTBEATS.
    NoHeartbeat,
}

impl From<BehaviourArg> for Behaviour {
    fn from(b: BehaviourArg) -> Self {
        match b {
            BehaviourArg::Vulnerable => Behaviour::Vulnerable,
            BehaviourArg::Fixed => Behaviour::Fixed,
            BehaviourArg::NoHeartbeat => Behaviour::NoHeartbeat,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KeyArg {
    Rsa,
    Ecdsa,
}

#[derive(Args, Debug)]
pub struct LabArgs {
    /// Address to listen on (repeatable). Loopback only.
    #[arg(long, required = true)]
    pub listen: Vec<SocketAddr>,
    #[arg(long, value_enum, default_value = "vulnerable")]
    pub behaviour: BehaviourArg,
    /// Versions accepted (default ssl3,tls1.0,tls1.1,tls1.2, and dtls1.0,dtls1.2 with --dtls).
    #[arg(long, value_delimiter = ',')]
    pub versions: Vec<String>,
    #[arg(long, value_enum, default_value = "rsa")]
    pub key: KeyArg,
    /// Speak this STARTTLS dialect before TLS.
    #[arg(long, value_name = "PROTO", value_parser = starttls_dialect_parser(), ignore_case = true)]
    pub starttls: Option<Protocol>,
    /// Certificate names (the first is the subject CN).
    #[arg(long, default_value = "lab.bleedwatch.test")]
    pub name: Vec<String>,
    /// Serve DTLS over UDP on the --listen addresses instead of TLS over TCP (versions dtls1.0 and
    /// dtls1.2; scan with `HOST:udp/PORT`).
    #[arg(long, conflicts_with = "starttls")]
    pub dtls: bool,
    /// Like `s_server` without `-www` (echo mode): a heartbeat during the handshake drops the
    /// connection, and an answer under 4 KiB waiting in the write buffer is lost with it.
    #[arg(long, conflicts_with = "dtls")]
    pub echo: bool,
}

pub async fn run(args: LabArgs) -> Result<u8> {
    if let Some(bad) = args.listen.iter().find(|a| !a.ip().is_loopback()) {
        bail!("--listen {bad}: the lab only listens on loopback addresses");
    }
    let names: Vec<&str> = args.name.iter().map(String::as_str).collect();
    let identity = Arc::new(match args.key {
        KeyArg::Rsa => LabIdentity::rsa_lab(&names)?,
        KeyArg::Ecdsa => LabIdentity::generate_ecdsa(&names)?,
    });
    let mut cfg = LabConfig::new(args.behaviour.into(), identity).with_versions(&crate::scanning::parse_versions(&args.versions, args.dtls)?);
    if args.echo {
        cfg = cfg.echo_mode();
    }
    let starttls = args.starttls;
    let mut servers = Vec::new();
    let mut dtls_servers = Vec::new();
    for addr in &args.listen {
        if args.dtls {
            let server = LabDtlsServer::bind(*addr, cfg.clone()).await.with_context(|| format!("cannot listen on udp {addr}"))?;
            eprintln!("bleedwatch lab: {:?} DTLS server on udp {}", args.behaviour, server.local_addr());
            dtls_servers.push(server);
        } else {
            let server = LabServer::bind_with(*addr, cfg.clone(), None, starttls).await.with_context(|| format!("cannot listen on {addr}"))?;
            eprintln!("bleedwatch lab: {:?} server on {}", args.behaviour, server.local_addr());
            servers.push(server);
        }
    }
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    Ok(0)
}
