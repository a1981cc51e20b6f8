//! Runs the pcap engine over capture files and prints findings as JSON lines, with throughput on
//! stderr: the engine alone, for profiling (`bench/pcap/run.sh` times the `bleedwatch pcap`
//! subcommand itself).
//!
//! Usage: scan_pcap [--quiet] FILE... (`-` reads stdin)

use std::io::Write;

// The engine allocates per connection and per finding; mimalloc makes that cheap.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::Instant;

fn main() {
    let mut quiet = false;
    let mut files = Vec::new();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--quiet" | "-q" => quiet = true,
            _ => files.push(arg),
        }
    }
    if files.is_empty() {
        eprintln!("usage: scan_pcap [--quiet] FILE...");
        std::process::exit(2);
    }
    let cfg = bleedwatch_pcap::Config::default();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut status = 0;
    for file in files {
        let started = Instant::now();
        let mut findings = 0u64;
        let mut sink = |f: bleedwatch_pcap::Finding| {
            findings += 1;
            if !quiet {
                let _ = serde_json::to_writer(&mut out, &f);
                let _ = out.write_all(b"\n");
            }
        };
        let result = if file == "-" {
            bleedwatch_pcap::analyze_reader("-", std::io::stdin().lock(), &cfg, &mut sink)
        } else {
            bleedwatch_pcap::analyze_path(std::path::Path::new(&file), &cfg, &mut sink, &mut |_| {})
        };
        let secs = started.elapsed().as_secs_f64();
        match result {
            Ok(stats) => {
                let mb = stats.bytes_read as f64 / 1e6;
                eprintln!(
                    "{file}: {} packets, {:.1} MB in {:.3} s = {:.1} MB/s, {:.0} packets/s; {} TCP conns, {} TLS, {} findings, peak buffered {} bytes, peak {} connections, {} expired{}",
                    stats.packets,
                    mb,
                    secs,
                    mb / secs,
                    stats.packets as f64 / secs,
                    stats.tcp_connections,
                    stats.tls_connections,
                    findings,
                    stats.peak_buffered_bytes,
                    stats.peak_flows,
                    stats.flows_expired,
                    if stats.partial { format!(" (partial: {})", stats.warnings.join("; ")) } else { String::new() }
                );
            }
            Err(e) => {
                eprintln!("{e}");
                status = 2;
            }
        }
    }
    let _ = out.flush();
    std::process::exit(status);
}
