//! The command line: one module per command, each with its arguments and its `run`. Shared
//! argument groups are in `crate::args`, output helpers in `crate::output`, the scan engine in
//! `crate::scanning`.

use anyhow::Result;
use clap::{CommandFactory, Parser, Subcommand};

pub mod alerts;
pub mod assets;
pub mod attackers;
pub mod audit;
pub mod certs;
pub mod client_test;
pub mod clients;
pub mod completions;
pub mod demo;
pub mod endpoints;
pub mod expect;
pub mod honeypot;
pub mod lab;
pub mod man;
pub mod notify;
pub mod pcap;
pub mod report;
pub mod rescan;
pub mod revocation;
pub mod scan;
pub mod status;

#[derive(Parser, Debug)]
#[command(name = "bleedwatch", version, about = "Find TLS endpoints, test them for Heartbleed (CVE-2014-0160) safely, and track the response")]
pub struct Cli {
    /// Log what happens to standard error: -v debug, -vv trace (RUST_LOG, when set, decides instead).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Test endpoints for Heartbleed (memory-safe by default).
    Scan(Box<scan::ScanArgs>),
    /// Start the built-in loopback lab (vulnerable, fixed and heartbeat-less servers) and scan it.
    Demo(demo::DemoArgs),
    /// Run lab servers that behave like OpenSSL 1.0.1f/1.0.1g (canary bytes only) until interrupted.
    Lab(lab::LabArgs),
    /// Test the TLS clients that connect here (mail gateways, proxies, agents) for Heartbleed.
    ClientTest(client_test::ClientTestArgs),
    /// Pretend to be a vulnerable server (canary bytes only) and log every Heartbleed attempt.
    Honeypot(honeypot::HoneypotArgs),
    /// Find Heartbleed attacks (and whether they leaked) in packet captures.
    Pcap(pcap::PcapArgs),
    /// Find every OpenSSL copy on disk (directories, archives, .debs, container images) and say
    /// which are vulnerable.
    Audit(audit::AuditArgs),
    /// The response funnel: endpoints by state (vulnerable, fixed, re-keyed, revoked, notify-ready).
    Status(status::StatusArgs),
    /// Endpoints in the inventory, with state, flags and exposure window.
    Endpoints(endpoints::EndpointsArgs),
    /// Certificates seen, and which carry exposed keys.
    Certs(certs::CertsArgs),
    /// Watch alerts: exposed keys seen again, unexpected certificates, regressions.
    Alerts(alerts::AlertsArgs),
    /// Import asset lists (CSV) and targets (nmap XML, masscan JSON).
    Assets {
        #[command(subcommand)]
        command: assets::AssetsCommand,
    },
    /// Check whether exposed certificates are revoked (CRL, OCSP).
    Revocation {
        #[command(subcommand)]
        command: revocation::RevocationCommand,
    },
    /// Pin the key an endpoint is expected to serve (anything else raises an alert).
    Expect(expect::ExpectArgs),
    /// Tell users to change their passwords, for endpoints that are notify-ready (SMTP, never twice).
    Notify(Box<notify::NotifyArgs>),
    /// Re-test what is not yet fixed (or stale), recording into the inventory.
    Rescan(rescan::RescanArgs),
    /// Heartbleed attempts the honeypot saw or captures showed (`pcap --db`), by source address.
    Attackers(attackers::AttackersArgs),
    /// TLS clients tested by client-test, and their verdicts.
    Clients(clients::ClientsArgs),
    /// The response report for decision makers: one self-contained HTML file (summary, charts,
    /// details), plus JSON and CSV exports.
    Report(report::ReportArgs),
    /// Print a shell completion script (bash, zsh, fish, …), generated from these definitions.
    Completions(completions::CompletionsArgs),
    /// Print the man page (roff), or write one per command into a directory.
    Man(man::ManArgs),
}

/// Runs the command; the exit code, or the error to report.
pub async fn run(command: Command) -> Result<u8> {
    match command {
        Command::Scan(args) => scan::run(*args).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Lab(args) => lab::run(args).await,
        Command::ClientTest(args) => client_test::run(args).await,
        Command::Honeypot(args) => honeypot::run(args).await,
        Command::Status(args) => status::run(args).await,
        Command::Endpoints(args) => endpoints::run(args).await,
        Command::Certs(args) => certs::run(args).await,
        Command::Alerts(args) => alerts::run(args).await,
        Command::Assets { command } => assets::run(command).await,
        Command::Revocation { command } => revocation::run(command).await,
        Command::Expect(args) => expect::run(args).await,
        Command::Rescan(args) => rescan::run(args).await,
        Command::Notify(args) => notify::run(*args).await,
        Command::Attackers(args) => attackers::run(args).await,
        Command::Clients(args) => clients::run(args).await,
        Command::Report(args) => report::run(args).await,
        Command::Audit(args) => audit::run(args).await,
        Command::Pcap(args) => tokio::task::spawn_blocking(move || pcap::run(&args)).await?.map(|code| code as u8),
        Command::Completions(args) => completions::run(args, Cli::command()),
        Command::Man(args) => man::run(args, Cli::command()),
    }
}
