//! The engine of `bleedwatch pcap`: finds Heartbleed attacks (CVE-2014-0160) in packet captures.
//!
//! Reads pcap and pcapng, plain or gzip-compressed (Ethernet, VLAN, Linux cooked SLL/SLL2, raw IP, BSD loopback; IPv4 and IPv6
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
mod notice_message;
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
    let mut engine = engine::Engine::new(cfg, sink);
    let read = read_file(&mut engine, name, reader, cfg, progress)?;
    let stats = engine.finish();
    Ok(read.complete(stats))
}

/// What reading a file told besides the engine's statistics.
struct FileRead {
    format: &'static str,
    bytes: u64,
    partial: bool,
    warnings: Vec<String>,
}

impl FileRead {
    fn complete(self, mut stats: FileStats) -> FileStats {
        stats.format = self.format.to_string();
        stats.bytes_read = self.bytes;
        stats.partial = self.partial;
        let mut warnings = self.warnings;
        warnings.append(&mut stats.warnings);
        stats.warnings = warnings;
        stats
    }
}

/// Feeds one file to the engine (as its next file).
fn read_file<R: Read>(engine: &mut engine::Engine<'_>, name: &str, reader: R, cfg: &Config, progress: &mut dyn FnMut(u64)) -> Result<FileRead, PcapError> {
    engine.begin_file(name);
    let mut bytes = 0u64;
    let outcome = reader::read_capture(name, reader, cfg.max_block_bytes, &mut |pkt| engine.on_packet(pkt), &mut |n| {
        bytes = n;
        progress(n);
    })?;
    Ok(FileRead { format: outcome.format, bytes, partial: outcome.partial, warnings: outcome.warnings })
}

/// Consecutive pieces of one capture (files rotated by `tcpdump -C` or `-G`, in order) analysed as
/// one: a connection cut by a file boundary goes on in the next file, so an answer there is matched
/// to its request here. A connection's findings name the file it began in, and its number there.
///
/// ```no_run
/// let cfg = bleedwatch_pcap::Config::default();
/// let mut sink = |finding: bleedwatch_pcap::Finding| println!("{} {}", finding.file, finding.kind);
/// let mut joined = bleedwatch_pcap::Joined::new(&cfg, &mut sink);
/// for name in ["cap-0100.pcap", "cap-0200.pcap"] {
///     let stats = joined.add_reader(name, std::fs::File::open(name)?, &mut |_| {})?;
///     println!("{}: {} packets", stats.file, stats.packets);
/// }
/// let closing = joined.finish();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Joined<'s> {
    engine: engine::Engine<'s>,
    cfg: Config,
}

impl<'s> Joined<'s> {
    pub fn new(cfg: &Config, sink: &'s mut dyn FnMut(Finding)) -> Self {
        Joined { engine: engine::Engine::new(cfg, sink), cfg: cfg.clone() }
    }

    /// Reads the next piece. Its statistics cover what happened while it was read; connections
    /// still open at its end go on into the next piece. An input that is not a capture at all is an
    /// error, and the pieces before and after it are still joined.
    pub fn add_reader<R: Read>(&mut self, name: &str, reader: R, progress: &mut dyn FnMut(u64)) -> Result<FileStats, PcapError> {
        let read = read_file(&mut self.engine, name, reader, &self.cfg, progress)?;
        Ok(read.complete(self.engine.end_file()))
    }

    /// After the last piece: closes the connections still open (their findings come now) and
    /// returns what that added (findings, TLS connections, gaps), to count with the last piece.
    pub fn finish(self) -> FileStats {
        self.engine.finish()
    }
}

/// Opens and analyses a capture file. The findings' `file` field is the path as given.
pub fn analyze_path(path: &Path, cfg: &Config, sink: &mut dyn FnMut(Finding), progress: &mut dyn FnMut(u64)) -> Result<FileStats, PcapError> {
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| PcapError::Io { name: name.clone(), source })?;
    analyze_reader_with_progress(&name, file, cfg, sink, progress)
}

/// Fuzzing entry point (`fuzz/fuzz_targets/pcap_capture.rs`): the reader and the engine on a
/// hostile capture file (pcap, pcapng or gzip), then the per-connection verdicts of what it found.
/// Errors and partial results are fine; a panic or a hang is a bug.
pub fn fuzz_capture(data: &[u8]) {
    let mut findings = Vec::new();
    if analyze_reader("fuzz.pcap", data, &Config::default(), &mut |finding| findings.push(finding)).is_ok() {
        let _ = connection_verdicts(&findings);
    }
}
