//! The engine of `bleedwatch pcap`: finds Heartbleed attacks (CVE-2014-0160) in packet captures.
//!
//! Reads pcap and pcapng (Ethernet, VLAN, Linux cooked SLL/SLL2, raw IP, BSD loopback; IPv4 and IPv6
//! with fragment reassembly; bad checksums ignored), reassembles each TCP direction (out of order,
//! retransmitted and overlapping segments, first copy wins, losses as gaps, bounded memory, idle
//! expiry), finds TLS by content on any port and after STARTTLS, follows DTLS over UDP, and applies
//! the heartbeat rules in both directions (a malicious server reading a client's memory is found
//! with attacker and victim the right way round). Each [`Finding`] has a [`Kind`] and a
//! [`Severity`], lengths only (never payload bytes), and the notice Zeek's heartbleed script would
//! raise for the same record, so results compare line by line with Zeek's `notice.log`.
//!
//! The API streams: findings go to a sink as connections resolve, and memory stays bounded whatever
//! the size of the capture.
//!
//! ```no_run
//! let cfg = bleedwatch_pcap::Config::default();
//! let file = std::fs::File::open("capture.pcap")?;
//! let stats = bleedwatch_pcap::analyze_reader("capture.pcap", file, &cfg, &mut |finding| {
//!     println!("{} {} -> {}", finding.kind, finding.attacker, finding.victim);
//! })?;
//! println!("{} packets", stats.packets);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

mod cipher_names;
mod detect;
mod dtls;
mod engine;
mod error;
mod finding;
mod ip;
mod reader;
mod slots;
mod summary;
mod tcp;
mod timestamp;
mod tls;
mod zeek;

use std::io::Read;
use std::path::Path;

pub use engine::{Config, FileStats};
pub use error::PcapError;
pub use finding::{CaptureTime, Finding, Kind, Notice, NoticeMessage, Severity, SharedText};
pub use summary::{connection_verdicts, ConnVerdict, Summary};

/// Analyses one capture read from `reader`, calling `sink` with each finding as its connection
/// resolves. `name` labels the findings (the file name, or `-` for stdin).
///
/// Errors only when the input is not a capture (empty, not pcap/pcapng, bad file header) or cannot be
/// read at all; a capture damaged after its start gives the findings before the damage and
/// [`FileStats::partial`] with a warning.
pub fn analyze_reader<R: Read>(name: &str, reader: R, cfg: &Config, sink: &mut dyn FnMut(Finding)) -> Result<FileStats, PcapError> {
    analyze_reader_with_progress(name, reader, cfg, sink, &mut |_| {})
}

/// As [`analyze_reader`], also calling `progress` with the number of bytes read so far (about once
/// per megabyte), for a progress bar.
pub fn analyze_reader_with_progress<R: Read>(
    name: &str,
    reader: R,
    cfg: &Config,
    sink: &mut dyn FnMut(Finding),
    progress: &mut dyn FnMut(u64),
) -> Result<FileStats, PcapError> {
    let mut engine = engine::Engine::new(name, cfg, sink);
    let mut bytes = 0u64;
    let outcome = reader::read_capture(name, reader, cfg.max_block_bytes, &mut |pkt| engine.on_packet(pkt), &mut |n| {
        bytes = n;
        progress(n);
    })?;
    let mut stats = engine.finish();
    stats.format = outcome.format.to_string();
    stats.bytes_read = bytes;
    stats.partial = outcome.partial;
    let mut warnings = outcome.warnings;
    warnings.append(&mut stats.warnings);
    stats.warnings = warnings;
    Ok(stats)
}

/// Opens and analyses a capture file. The findings' `file` field is the path as given.
pub fn analyze_path(path: &Path, cfg: &Config, sink: &mut dyn FnMut(Finding), progress: &mut dyn FnMut(u64)) -> Result<FileStats, PcapError> {
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| PcapError::Io { name: name.clone(), source })?;
    analyze_reader_with_progress(&name, file, cfg, sink, progress)
}
