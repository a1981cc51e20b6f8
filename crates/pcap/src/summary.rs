//! Verdicts per connection and a human summary across files: who attacked whom, when, and with what
//! result.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::fmt::Write as _;

use foldhash::fast::RandomState;
use hashbrown::HashMap;
use serde::Serialize;

use crate::engine::FileStats;
use crate::finding::{CaptureTime, Finding, Kind, Severity};

/// What one connection amounts to.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ConnVerdict {
    pub file: String,
    pub connection: u64,
    pub transport: String,
    pub client: String,
    pub server: String,
    /// An invalid or suspicious heartbeat request: over-read, unpadded probe, odd-length or
    /// unanswered early encrypted heartbeat.
    pub attack_attempted: bool,
    /// A request that asked for more than it sent: a readable over-read, or an encrypted request
    /// answered by more than it carried.
    pub over_read: bool,
    /// A non-exploiting probe (payload present, padding missing).
    pub unpadded_probe: bool,
    /// The victim answered an invalid request (it is vulnerable).
    pub succeeded: bool,
    /// Bytes that came back beyond what was sent (encrypted: estimated).
    pub leaked_bytes: u64,
    /// The heartbeats involved were encrypted.
    pub encrypted: bool,
    /// `ip:port` of the requesters and of the victims of attempts.
    pub attackers: Vec<String>,
    pub victims: Vec<String>,
    /// Zeek notice names, in order of appearance.
    pub notices: Vec<String>,
}

/// Groups findings by file and connection.
pub fn connection_verdicts(findings: &[Finding]) -> Vec<ConnVerdict> {
    let mut map: BTreeMap<(String, u64), ConnVerdict> = BTreeMap::new();
    for f in findings {
        let v = map.entry((f.file.to_string(), f.connection)).or_insert_with(|| ConnVerdict {
            file: f.file.to_string(),
            connection: f.connection,
            transport: f.transport.to_string(),
            client: SocketAddr::new(f.src_ip, f.src_port).to_string(),
            server: SocketAddr::new(f.dst_ip, f.dst_port).to_string(),
            ..ConnVerdict::default()
        });
        if let Some(n) = &f.notice {
            v.notices.push(n.to_string());
        }
        if !f.severity.is_attempt() {
            continue;
        }
        v.attack_attempted = true;
        v.encrypted |= f.encrypted;
        v.over_read |= matches!(f.kind, Kind::HeartbeatOverflow | Kind::HeartbeatResponseLeak | Kind::EncryptedHeartbeatSuccess);
        v.unpadded_probe |= f.kind == Kind::HeartbeatUnpadded;
        if f.severity == Severity::Success {
            v.succeeded = true;
            v.leaked_bytes += f.leaked_bytes.unwrap_or(0);
        }
        for (list, addr) in [(&mut v.attackers, f.attacker), (&mut v.victims, f.victim)] {
            let text = addr.to_string();
            if !list.contains(&text) {
                list.push(text);
            }
        }
    }
    map.into_values().collect()
}

#[derive(Debug, Clone, Default)]
struct PairStats {
    direction: Cow<'static, str>,
    /// The request last counted (file number, connection, time in µs): one request gives its
    /// findings together.
    last_request: Option<(usize, u64, i64)>,
    attempts: u64,
    successes: u64,
    leaked: u64,
    encrypted: bool,
    first: Option<CaptureTime>,
    last: Option<CaptureTime>,
}

#[derive(Debug, Clone, Default)]
struct FileCounts {
    attempts: u64,
    successes: u64,
}

/// One side of an attack as the summary names it: the client side of a connection by its address
/// alone (its port is ephemeral, and an attacker making a thousand connections is one attacker, not
/// a thousand), the server side by address and port (the service attacked, or the malicious service
/// that attacked its clients).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Party {
    Host(IpAddr),
    Service(SocketAddr),
}

impl std::fmt::Display for Party {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Party::Host(ip) => ip.fmt(f),
            Party::Service(addr) => addr.fmt(f),
        }
    }
}

/// (attacker, victim) of a finding, grouped as [`Party`] says.
fn summary_pair(f: &Finding) -> (Party, Party) {
    let client = Party::Host(f.src_ip);
    let server = Party::Service(SocketAddr::new(f.dst_ip, f.dst_port));
    if f.direction == "server-to-client" {
        (server, client)
    } else {
        (client, server)
    }
}

/// Accumulates findings and file statistics for the human summary. Its keys are addresses, not
/// text, so a finding for a known pair allocates nothing (a capture can hold millions of findings).
#[derive(Debug, Clone, Default)]
pub struct Summary {
    files: Vec<FileStats>,
    /// By file name, in order of first finding (few files per run).
    file_counts: Vec<(String, FileCounts)>,
    /// By (attacker, victim) as [`summary_pair`] names them; sorted when rendered.
    pairs: HashMap<(Party, Party), PairStats, RandomState>,
    attempts: u64,
    successes: u64,
    leaked: u64,
    first: Option<CaptureTime>,
    last: Option<CaptureTime>,
    notices: HashMap<String, u64, RandomState>,
}

/// Keeps the earliest (`earliest`) or latest time in `slot`.
fn keep_extreme(slot: &mut Option<CaptureTime>, time: CaptureTime, earliest: bool) {
    let replace = match slot {
        None => true,
        Some(t) => (earliest && time < *t) || (!earliest && time > *t),
    };
    if replace {
        *slot = Some(time);
    }
}

impl Summary {
    pub fn new() -> Self {
        Summary::default()
    }

    /// The number of `file` in `file_counts`, added when new (findings come file by file, so the
    /// last one is checked first).
    fn file_number(&mut self, file: &str) -> usize {
        if let Some(i) = self.file_counts.iter().rposition(|(name, _)| name == file) {
            return i;
        }
        self.file_counts.push((file.to_string(), FileCounts::default()));
        self.file_counts.len() - 1
    }

    pub fn add_finding(&mut self, f: &Finding) {
        if let Some(n) = &f.notice {
            *self.notices.entry_ref(&**n).or_default() += 1;
        }
        if !f.severity.is_attempt() {
            return;
        }
        let file = self.file_number(&f.file);
        let Some((_, counts)) = self.file_counts.get_mut(file) else { return };
        let pair = self.pairs.entry(summary_pair(f)).or_default();
        pair.direction.clone_from(&f.direction);
        pair.encrypted |= f.encrypted;
        if f.severity == Severity::Success {
            self.successes += 1;
            counts.successes += 1;
            pair.successes += 1;
            let leaked = f.leaked_bytes.unwrap_or(0);
            self.leaked += leaked;
            pair.leaked += leaked;
            return;
        }
        let request = Some((file, f.connection, f.time.unix_micros()));
        if pair.last_request == request {
            return;
        }
        pair.last_request = request;
        self.attempts += 1;
        counts.attempts += 1;
        pair.attempts += 1;
        keep_extreme(&mut self.first, f.time, true);
        keep_extreme(&mut pair.first, f.time, true);
        keep_extreme(&mut self.last, f.time, false);
        keep_extreme(&mut pair.last, f.time, false);
    }

    pub fn add_file(&mut self, stats: &FileStats) {
        self.files.push(stats.clone());
    }

    /// True when any attack attempt (or success) was found.
    pub fn attack_found(&self) -> bool {
        self.attempts + self.successes > 0
    }

    pub fn attempts(&self) -> u64 {
        self.attempts
    }

    pub fn successes(&self) -> u64 {
        self.successes
    }

    /// The summary as text tables for a terminal.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let packets: u64 = self.files.iter().map(|f| f.packets).sum();
        let tcp: u64 = self.files.iter().map(|f| f.tcp_connections).sum();
        let tls: u64 = self.files.iter().map(|f| f.tls_connections).sum();
        let dtls: u64 = self.files.iter().map(|f| f.dtls_flows).sum();
        let _ = writeln!(
            out,
            "bleedwatch pcap: {} file(s), {} packets, {} TCP connections, {} DTLS flows, {} with TLS",
            self.files.len(),
            packets,
            tcp,
            dtls,
            tls
        );
        if !self.attack_found() {
            let _ = writeln!(out, "No Heartbleed attempts found.");
        } else {
            let mut pairs: Vec<(Party, Party, &PairStats)> = self.pairs.iter().map(|(&(attacker, victim), p)| (attacker, victim, p)).collect();
            pairs.sort_unstable_by_key(|&(attacker, victim, _)| (attacker, victim));
            let attackers: std::collections::HashSet<Party> = pairs.iter().map(|(a, _, _)| *a).collect();
            let victims: std::collections::HashSet<Party> = pairs.iter().map(|(_, v, _)| *v).collect();
            let _ = writeln!(
                out,
                "Heartbleed: {} attempt(s) by {} attacker(s) against {} victim(s); {} success(es), {} bytes leaked",
                self.attempts,
                attackers.len(),
                victims.len(),
                self.successes,
                self.leaked
            );
            if let (Some(first), Some(last)) = (&self.first, &self.last) {
                let _ = writeln!(out, "First attempt {first}, last attempt {last}");
            }
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "{:<42} {:<42} {:<17} {:>8} {:>9} {:>8} {:<28} {:<28}",
                "ATTACKER", "VICTIM", "DIRECTION", "ATTEMPTS", "SUCCESSES", "LEAKED", "FIRST", "LAST"
            );
            for (attacker, victim, p) in pairs {
                let leaked = if p.encrypted && p.leaked > 0 { format!("~{}", p.leaked) } else { p.leaked.to_string() };
                let _ = writeln!(
                    out,
                    "{:<42} {:<42} {:<17} {:>8} {:>9} {:>8} {:<28} {:<28}",
                    attacker.to_string(),
                    victim.to_string(),
                    p.direction,
                    p.attempts,
                    p.successes,
                    leaked,
                    p.first.map_or_else(|| "-".to_string(), |t| t.to_string()),
                    p.last.map_or_else(|| "-".to_string(), |t| t.to_string()),
                );
            }
        }
        if !self.notices.is_empty() {
            let _ = writeln!(out);
            let mut notices: Vec<(&String, &u64)> = self.notices.iter().collect();
            notices.sort_unstable();
            let list: Vec<String> = notices.into_iter().map(|(n, c)| format!("{n} x{c}")).collect();
            let _ = writeln!(out, "Zeek-equivalent notices: {}", list.join(", "));
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "{:<60} {:>10} {:>8} {:>6} {:>9} {:>10}  NOTES", "FILE", "PACKETS", "CONNS", "TLS", "ATTEMPTS", "SUCCESSES");
        for f in &self.files {
            let c = self.file_counts.iter().find(|(name, _)| *name == f.file).map(|(_, c)| c.clone()).unwrap_or_default();
            let notes = if f.partial { "partial: ".to_string() + &f.warnings.join("; ") } else { f.warnings.join("; ") };
            let _ = writeln!(
                out,
                "{:<60} {:>10} {:>8} {:>6} {:>9} {:>10}  {}",
                f.file,
                f.packets,
                f.tcp_connections + f.dtls_flows,
                f.tls_connections,
                c.attempts,
                c.successes,
                notes
            );
        }
        out
    }
}
