//! Integration tests of the pcap engine against the shared real captures (`../../../shared/data/pcap`
//! beside the repository), and against captures rewritten from them in memory: resegmented,
//! reordered and duplicated TCP, other link layers, IPv6, IP fragments, pcapng, STARTTLS, snaplen
//! cuts, truncation and garbage.
#![allow(clippy::unwrap_used, clippy::panic)] // tests fail loudly by design

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use bleedwatch_pcap::{analyze_reader, connection_verdicts, Config, FileStats, Finding, Kind, PcapError, Severity};
use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

fn shared_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/pcap");
    assert!(dir.join("expected.json").exists(), "shared captures not found at {} (CI copies shared/ beside the clone)", dir.display());
    dir
}

fn lab(name: &str) -> PathBuf {
    shared_dir().join("openssl-1.0.1f-lab").join(name)
}

fn analyze_bytes(name: &str, bytes: &[u8]) -> Result<(Vec<Finding>, FileStats), PcapError> {
    analyze_bytes_with(name, bytes, &Config::default())
}

fn analyze_bytes_with(name: &str, bytes: &[u8], cfg: &Config) -> Result<(Vec<Finding>, FileStats), PcapError> {
    let mut findings = Vec::new();
    let stats = analyze_reader(name, bytes, cfg, &mut |f| findings.push(f))?;
    Ok((findings, stats))
}

fn analyze_file(path: &Path) -> (Vec<Finding>, FileStats) {
    let bytes = std::fs::read(path).unwrap();
    analyze_bytes(&path.display().to_string(), &bytes).unwrap()
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// What must not change when a capture is rewritten: everything but times, addresses and ids.
type Norm = (Kind, Severity, Option<String>, String, Option<u32>, Option<u32>, Option<u32>, Option<u32>, Option<u32>, Option<u64>, Option<u64>, bool);

fn normalize(findings: &[Finding]) -> Vec<Norm> {
    let mut v: Vec<Norm> = findings
        .iter()
        .map(|f| {
            (
                f.kind,
                f.severity,
                f.notice.as_deref().map(str::to_string),
                f.direction.to_string(),
                f.record_length,
                f.payload_length,
                f.payload_present,
                f.request_record_length,
                f.response_records,
                f.response_bytes,
                f.leaked_bytes,
                f.encrypted,
            )
        })
        .collect();
    v.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    v
}

// ---------------------------------------------------------------------------------------------
// Truth from the shared data
// ---------------------------------------------------------------------------------------------

/// Every capture in expected.json: attack attempted, succeeded, encrypted, and Zeek's notices (names,
/// messages and endpoints) match.
#[test]
fn expected_json_captures_match_their_truth() {
    let dir = shared_dir();
    let expected = json(&dir.join("expected.json"));
    let entries = expected.as_array().unwrap();
    assert!(entries.len() >= 4);
    for e in entries {
        let file = e["file"].as_str().unwrap();
        let (findings, stats) = analyze_file(&dir.join(file));
        assert!(!stats.partial, "{file}: {:?}", stats.warnings);
        let attempted = findings.iter().any(|f| f.severity.is_attempt());
        let succeeded = findings.iter().any(|f| f.severity == Severity::Success);
        let encrypted = findings.iter().any(|f| f.severity.is_attempt() && f.encrypted);
        assert_eq!(attempted, e["attack_attempted"].as_bool().unwrap(), "{file}: attack_attempted");
        assert_eq!(succeeded, e["attack_succeeded"].as_bool().unwrap(), "{file}: attack_succeeded");
        assert_eq!(encrypted, e["encrypted_heartbeats"].as_bool().unwrap(), "{file}: encrypted");

        let mut got: Vec<String> = findings.iter().filter_map(|f| f.notice.as_deref().map(str::to_string)).collect();
        let mut want: Vec<String> = e["reference_verdicts"]["zeek"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_string()).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{file}: Zeek notices");

        for zn in e["reference_verdicts"]["zeek_notices"].as_array().unwrap() {
            let msg = zn["msg"].as_str().unwrap();
            let f = findings
                .iter()
                .find(|f| f.notice_msg.as_ref().map(ToString::to_string).as_deref() == Some(msg))
                .unwrap_or_else(|| panic!("{file}: no finding with Zeek message {msg:?}; got {:?}", findings.iter().map(|f| f.notice_msg.as_ref().map(ToString::to_string)).collect::<Vec<_>>()));
            assert_eq!(f.notice.as_deref(), zn["note"].as_str());
            assert_eq!(format!("{}:{}", f.src_ip, f.src_port), zn["orig"].as_str().unwrap(), "{file}: originator");
            assert_eq!(format!("{}:{}", f.dst_ip, f.dst_port), zn["resp"].as_str().unwrap(), "{file}: responder");
            let n = zn["n"].as_str().unwrap();
            assert_eq!(f.notice_n.map(|n| n.to_string()).unwrap_or_else(|| "-".into()), n, "{file}: n of {msg}");
            // In all four traces the client attacks the server.
            assert_eq!(f.attacker.to_string(), zn["orig"].as_str().unwrap());
        }
    }
}

/// The Zeek baselines in zeek/baseline agree with expected.json's notices (the notice.log lines).
#[test]
fn zeek_baseline_logs_are_reproduced() {
    let dir = shared_dir().join("zeek");
    for (log, pcap) in [
        ("notice-heartbleed.log", "heartbleed.pcap"),
        ("notice-heartbleed-success.log", "heartbleed-success.pcap"),
        ("notice-encrypted.log", "heartbleed-encrypted.pcap"),
        ("notice-encrypted-success.log", "heartbleed-encrypted-success.pcap"),
    ] {
        let text = std::fs::read_to_string(dir.join("baseline").join(log)).unwrap();
        let lines: Vec<(String, String)> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                let cols: Vec<&str> = l.split('\t').collect();
                (cols[10].to_string(), cols[11].to_string())
            })
            .collect();
        let (findings, _) = analyze_file(&dir.join(pcap));
        let got: Vec<(String, String)> = findings.iter().filter_map(|f| Some((f.notice.as_deref()?.to_string(), f.notice_msg.as_ref()?.to_string()))).collect();
        let (mut a, mut b) = (lines.clone(), got.clone());
        a.sort();
        b.sort();
        assert_eq!(b, a, "{pcap} vs {log}");
    }
}

/// Expected verdicts for the two lab files whose heartbeats are encrypted, from the lab README's table
/// (their truth.json cannot see inside the encryption).
fn encrypted_lab_expectation(file: &str) -> Option<(bool, bool)> {
    match file {
        // attack attempted and memory leaked (16384 B, verified by decryption)
        "encrypted-heartbleed-vulnerable-1.0.1f-tls12.pcap" => Some((true, true)),
        // a legitimate heartbeat answered in kind: no attack
        "s_client-1.0.1f-normal-session-legit-heartbeat-1.0.1f-tls12.pcap" => Some((false, false)),
        _ => None,
    }
}

fn truth_endpoints(c: &Value) -> (String, String) {
    if let (Some(client), Some(server)) = (c["client"].as_str(), c["server"].as_str()) {
        return (client.to_string(), server.to_string());
    }
    // DTLS: "udp 127.0.0.1:41640 <-> :14436"
    let conn = c["conn"].as_str().unwrap();
    let parts: Vec<&str> = conn.split_whitespace().collect();
    let client = parts[1].to_string();
    let ip = client.rsplit_once(':').unwrap().0;
    (client.clone(), format!("{ip}{}", parts[3]))
}

/// Every lab capture, connection by connection: over-read attempted, unpadded probe, answered, bytes
/// leaked, and who attacked whom (both directions).
#[test]
fn lab_captures_match_truth_per_connection() {
    let dir = shared_dir().join("openssl-1.0.1f-lab");
    let mut truths: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.to_string_lossy().ends_with(".truth.json")).collect();
    truths.sort();
    assert!(truths.len() >= 27, "lab truth files missing");
    let mut checked = 0;
    for truth_path in truths {
        let pcap_name = truth_path.file_name().unwrap().to_string_lossy().replace(".truth.json", ".pcap");
        let (findings, stats) = analyze_file(&dir.join(&pcap_name));
        assert!(!stats.partial, "{pcap_name}");
        let verdicts = connection_verdicts(&findings);
        for c in json(&truth_path).as_array().unwrap() {
            let (client, server) = truth_endpoints(c);
            let v = verdicts.iter().find(|v| v.client == client && v.server == server).cloned().unwrap_or_default();
            let ctx = format!("{pcap_name} {client} -> {server}");
            let heartbeats = c["heartbeats"].as_array().unwrap();
            if heartbeats.iter().any(|h| h["encrypted"].as_bool() == Some(true)) {
                let (attempted, leaked) = encrypted_lab_expectation(&pcap_name).unwrap_or_else(|| panic!("no expectation for {ctx}"));
                assert_eq!(v.attack_attempted, attempted, "{ctx}: attempted");
                assert_eq!(v.over_read, leaked, "{ctx}: over-read");
                assert_eq!(v.succeeded, leaked, "{ctx}: succeeded");
                assert_eq!(v.encrypted, attempted, "{ctx}: encrypted");
                checked += 1;
                continue;
            }
            let requests: Vec<&Value> = heartbeats.iter().filter(|h| h["hb_type"] == "request").collect();
            let invalid: Vec<&Value> = requests.iter().copied().filter(|h| h["rfc6520_padding_ok"] == false).collect();
            let truth_over_read = c["attack_attempted"].as_bool().unwrap();
            assert_eq!(v.over_read, truth_over_read, "{ctx}: over-read attempted");
            assert_eq!(v.unpadded_probe, c["unpadded_probe"].as_bool().unwrap(), "{ctx}: unpadded probe");
            assert_eq!(v.attack_attempted, !invalid.is_empty(), "{ctx}: invalid request seen");
            assert!(!v.encrypted, "{ctx}");
            let answered = heartbeats.iter().any(|h| h["hb_type"] == "response" && invalid.iter().any(|r| r["from"] != h["from"]));
            assert_eq!(v.succeeded, answered, "{ctx}: victim answered an invalid request");
            assert_eq!(v.leaked_bytes, c["leaked_bytes"].as_u64().unwrap(), "{ctx}: leaked bytes");
            if let Some(r) = invalid.first() {
                let (attacker, victim) = if r["from"] == "client" { (&client, &server) } else { (&server, &client) };
                assert_eq!(v.attackers, vec![attacker.clone()], "{ctx}: attacker");
                assert_eq!(v.victims, vec![victim.clone()], "{ctx}: victim");
                if let Some(dir) = c["attack_direction"].as_array().and_then(|a| a.first()) {
                    let want = if dir == "server-to-client" { &server } else { &client };
                    assert_eq!(&v.attackers[0], want, "{ctx}: attack_direction");
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 50, "only {checked} connections checked");
}

/// A malicious server reading a client's memory: attacker is the server, victim the client, and the
/// leak is counted from the client's answer.
#[test]
fn client_side_attack_has_attacker_and_victim_the_right_way_round() {
    let (findings, _) = analyze_file(&lab("client-s_client-1.0.1f-overread-claim16384-vulnerable-tls12.pcap"));
    let request = findings.iter().find(|f| f.kind == Kind::HeartbeatOverflow).unwrap();
    assert_eq!(request.attacker.to_string(), "127.0.0.1:14453");
    assert_eq!(request.victim.to_string(), "127.0.0.1:53194");
    assert_eq!(request.direction, "server-to-client");
    assert_eq!((request.record_length, request.payload_length, request.payload_present), (Some(3), Some(16384), Some(0)));
    assert_eq!(request.notice_msg.as_ref().map(ToString::to_string).as_deref(), Some("An TLS heartbleed attack was detected! Record length 3. Payload length 16384"));
    let leak = findings.iter().find(|f| f.kind == Kind::HeartbeatResponseLeak).unwrap();
    assert_eq!((leak.attacker.to_string(), leak.victim.to_string()), ("127.0.0.1:14453".to_string(), "127.0.0.1:53194".to_string()));
    assert_eq!(leak.leaked_bytes, Some(16381));
    assert_eq!(leak.notice.as_deref(), Some("Heartbleed::SSL_Heartbeat_Attack_Success"));
    // The client is the connection's originator.
    assert_eq!((leak.src_ip.to_string(), leak.src_port), ("127.0.0.1".to_string(), 53194));

    // The 1.0.1g client drops the over-read: an attempt, no success.
    let (findings, _) = analyze_file(&lab("client-s_client-1.0.1g-overread-claim16384-patched-tls12.pcap"));
    assert!(findings.iter().any(|f| f.kind == Kind::HeartbeatOverflow && f.attacker.to_string() == "127.0.0.1:14456"));
    assert!(!findings.iter().any(|f| f.severity == Severity::Success));
}

#[test]
fn findings_serialize_with_lengths_and_no_payload() {
    let (findings, _) = analyze_file(&lab("nmap-heartbleed-vulnerable-1.0.1f-tls12.pcap"));
    let line = serde_json::to_string(&findings[1]).unwrap();
    let v: Value = serde_json::from_str(&line).unwrap();
    for key in ["file", "time", "ts", "src_ip", "src_port", "dst_ip", "dst_port", "attacker", "victim", "notice", "kind", "record_length", "payload_length", "leaked_bytes", "tls_version", "cipher"] {
        assert!(v.get(key).is_some(), "missing {key} in {line}");
    }
    assert_eq!(v["kind"], "heartbeat_response_leak");
    assert!(v["time"].as_str().unwrap().ends_with('Z'));
    let back: Finding = serde_json::from_str(&line).unwrap();
    assert_eq!(back, findings[1]);
    // Lengths only: the leaked bytes themselves appear nowhere.
    assert!(line.len() < 1200);
}

// ---------------------------------------------------------------------------------------------
// Rewriting captures in memory
// ---------------------------------------------------------------------------------------------

#[derive(Clone)]
struct Rec {
    ts_sec: u32,
    ts_usec: u32,
    orig_len: u32,
    data: Vec<u8>,
}

fn read_pcap(bytes: &[u8]) -> (u32, Vec<Rec>) {
    assert_eq!(&bytes[..4], &[0xd4, 0xc3, 0xb2, 0xa1], "test captures are little-endian pcap");
    let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap());
    let linktype = u32_at(20);
    let mut recs = Vec::new();
    let mut i = 24;
    while i + 16 <= bytes.len() {
        let caplen = u32_at(i + 8) as usize;
        recs.push(Rec { ts_sec: u32_at(i), ts_usec: u32_at(i + 4), orig_len: u32_at(i + 12), data: bytes[i + 16..i + 16 + caplen].to_vec() });
        i += 16 + caplen;
    }
    (linktype, recs)
}

fn write_pcap(linktype: u32, recs: &[Rec], nanos: bool) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(if nanos { &[0x4d, 0x3c, 0xb2, 0xa1] } else { &[0xd4, 0xc3, 0xb2, 0xa1] });
    out.extend_from_slice(&[2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&262144u32.to_le_bytes());
    out.extend_from_slice(&linktype.to_le_bytes());
    for r in recs {
        out.extend_from_slice(&r.ts_sec.to_le_bytes());
        let frac = if nanos { r.ts_usec * 1000 } else { r.ts_usec };
        out.extend_from_slice(&frac.to_le_bytes());
        out.extend_from_slice(&(r.data.len() as u32).to_le_bytes());
        out.extend_from_slice(&r.orig_len.max(r.data.len() as u32).to_le_bytes());
        out.extend_from_slice(&r.data);
    }
    out
}

fn write_pcapng(linktype: u16, recs: &[Rec]) -> Vec<u8> {
    fn block(out: &mut Vec<u8>, typ: u32, body: &[u8]) {
        let padded = body.len().div_ceil(4) * 4;
        let total = (12 + padded) as u32;
        out.extend_from_slice(&typ.to_le_bytes());
        out.extend_from_slice(&total.to_le_bytes());
        out.extend_from_slice(body);
        out.resize(out.len() + padded - body.len(), 0);
        out.extend_from_slice(&total.to_le_bytes());
    }
    let mut out = Vec::new();
    let mut shb = Vec::new();
    shb.extend_from_slice(&0x1a2b3c4du32.to_le_bytes());
    shb.extend_from_slice(&[1, 0, 0, 0]);
    shb.extend_from_slice(&(-1i64).to_le_bytes());
    block(&mut out, 0x0a0d0d0a, &shb);
    let mut idb = Vec::new();
    idb.extend_from_slice(&linktype.to_le_bytes());
    idb.extend_from_slice(&[0, 0]);
    idb.extend_from_slice(&262144u32.to_le_bytes());
    // if_tsresol = 9 (nanoseconds), then end of options.
    idb.extend_from_slice(&[9, 0, 1, 0, 9, 0, 0, 0, 0, 0, 0, 0]);
    block(&mut out, 1, &idb);
    for r in recs {
        let ns = u64::from(r.ts_sec) * 1_000_000_000 + u64::from(r.ts_usec) * 1000;
        let mut epb = Vec::new();
        epb.extend_from_slice(&0u32.to_le_bytes());
        epb.extend_from_slice(&((ns >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(ns as u32).to_le_bytes());
        epb.extend_from_slice(&(r.data.len() as u32).to_le_bytes());
        epb.extend_from_slice(&r.orig_len.max(r.data.len() as u32).to_le_bytes());
        epb.extend_from_slice(&r.data);
        let padded = epb.len().div_ceil(4) * 4;
        epb.resize(padded, 0);
        block(&mut out, 6, &epb);
    }
    out
}

/// The parts of an Ethernet/IP/TCP-or-UDP frame needed to rebuild it.
struct Parsed {
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: std::net::IpAddr,
    dst: std::net::IpAddr,
    ip_bytes: Vec<u8>,
    tcp: Option<TcpParts>,
}

#[derive(Clone, Copy)]
struct TcpParts {
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    window: u16,
    syn: bool,
    ack_flag: bool,
    fin: bool,
    rst: bool,
    psh: bool,
    payload_start: usize,
}

fn parse(frame: &[u8]) -> Parsed {
    let p = SlicedPacket::from_ethernet(frame).unwrap();
    let eth = frame;
    let (src, dst, ip_start) = match &p.net {
        Some(NetSlice::Ipv4(v4)) => (v4.header().source_addr().into(), v4.header().destination_addr().into(), v4.header().slice().as_ptr() as usize - frame.as_ptr() as usize),
        Some(NetSlice::Ipv6(v6)) => (v6.header().source_addr().into(), v6.header().destination_addr().into(), v6.header().slice().as_ptr() as usize - frame.as_ptr() as usize),
        _ => panic!("not IP"),
    };
    let ip_len = match &p.net {
        Some(NetSlice::Ipv4(v4)) => v4.header().total_len() as usize,
        Some(NetSlice::Ipv6(v6)) => 40 + v6.header().payload_length() as usize,
        _ => unreachable!(),
    };
    let tcp = match &p.transport {
        Some(TransportSlice::Tcp(t)) => Some(TcpParts {
            sport: t.source_port(),
            dport: t.destination_port(),
            seq: t.sequence_number(),
            ack: t.acknowledgment_number(),
            window: t.window_size(),
            syn: t.syn(),
            ack_flag: t.ack(),
            fin: t.fin(),
            rst: t.rst(),
            psh: t.psh(),
            payload_start: t.payload().as_ptr() as usize - frame.as_ptr() as usize,
        }),
        _ => None,
    };
    Parsed {
        src_mac: eth[6..12].try_into().unwrap(),
        dst_mac: eth[0..6].try_into().unwrap(),
        src,
        dst,
        ip_bytes: frame[ip_start..(ip_start + ip_len).min(frame.len())].to_vec(),
        tcp,
    }
}

fn v6(ip: std::net::IpAddr) -> [u8; 16] {
    match ip {
        std::net::IpAddr::V4(a) => {
            let o = a.octets();
            [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, o[0], o[1], o[2], o[3]]
        }
        std::net::IpAddr::V6(a) => a.octets(),
    }
}

/// Builds an Ethernet frame carrying a TCP segment.
fn tcp_frame(p: &Parsed, t: &TcpParts, seq: u32, payload: &[u8], fin: bool, ipv6: bool) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2(p.src_mac, p.dst_mac);
    let ip = if ipv6 {
        eth.ipv6(v6(p.src), v6(p.dst), 64)
    } else {
        let (std::net::IpAddr::V4(s), std::net::IpAddr::V4(d)) = (p.src, p.dst) else { panic!("IPv4 expected") };
        eth.ipv4(s.octets(), d.octets(), 64)
    };
    let mut b = ip.tcp(t.sport, t.dport, seq, t.window);
    if t.syn {
        b = b.syn();
    }
    if t.ack_flag {
        b = b.ack(t.ack);
    }
    if fin {
        b = b.fin();
    }
    if t.rst {
        b = b.rst();
    }
    if t.psh {
        b = b.psh();
    }
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

/// Splits every TCP payload into tiny segments, shuffles them, duplicates some and swaps
/// neighbouring data packets of the same direction.
fn resegment(recs: &[Rec], seed: u64) -> Vec<Rec> {
    let mut rng = StdRng::seed_from_u64(seed);
    type Sender = Option<(std::net::IpAddr, u16)>;
    let mut groups: Vec<(Sender, Vec<Rec>)> = Vec::new();
    for r in recs {
        let p = parse(&r.data);
        let Some(t) = p.tcp.filter(|t| !t.syn && r.data.len() > t.payload_start + 1) else {
            groups.push((None, vec![r.clone()]));
            continue;
        };
        let payload = &r.data[t.payload_start..];
        let mut pieces = Vec::new();
        let mut off = 0;
        while off < payload.len() {
            let len = rng.gen_range(1..=64).min(payload.len() - off);
            pieces.push((off, len));
            off += len;
        }
        // Overlapping copies: pieces that straddle two others.
        for _ in 0..pieces.len() / 5 {
            let start = rng.gen_range(0..payload.len());
            let len = rng.gen_range(1..=100).min(payload.len() - start);
            pieces.push((start, len));
        }
        for i in (1..pieces.len()).rev() {
            let j = rng.gen_range(0..=i);
            pieces.swap(i, j);
        }
        let out = pieces
            .iter()
            .map(|&(o, l)| {
                let fin = t.fin && o + l == payload.len();
                Rec { data: tcp_frame(&p, &t, t.seq.wrapping_add(o as u32), &payload[o..o + l], fin, false), orig_len: 0, ..r.clone() }
            })
            .collect();
        groups.push((Some((p.src, t.sport)), out));
    }
    // Swap adjacent data packets of the same sender.
    for i in 0..groups.len().saturating_sub(1) {
        if groups[i].0.is_some() && groups[i].0 == groups[i + 1].0 && rng.gen_bool(0.3) {
            groups.swap(i, i + 1);
        }
    }
    groups.into_iter().flat_map(|(_, g)| g).collect()
}

const RESEGMENT_FILES: &[&str] = &[
    "zeek/heartbleed-success.pcap",
    "zeek/heartbleed-encrypted-success.pcap",
    "zeek/heartbleed-encrypted.pcap",
    "openssl-1.0.1f-lab/nmap-heartbleed-vulnerable-1.0.1f-tls12.pcap",
    "openssl-1.0.1f-lab/testssl-heartbleed-vulnerable-1.0.1f.pcap",
    "openssl-1.0.1f-lab/sslyze-heartbleed-vulnerable-1.0.1f.pcap",
    "openssl-1.0.1f-lab/client-s_client-1.0.1f-overread-claim65535-vulnerable-tls12.pcap",
    "openssl-1.0.1f-lab/encrypted-heartbleed-vulnerable-1.0.1f-tls12.pcap",
    "openssl-1.0.1f-lab/s_client-1.0.1f-normal-session-legit-heartbeat-1.0.1f-tls12.pcap",
];

/// Same findings however the TCP payloads are cut, reordered, duplicated and overlapped.
#[test]
fn same_findings_regardless_of_segmentation() {
    let dir = shared_dir();
    for file in RESEGMENT_FILES {
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let (want, _) = analyze_bytes(file, &bytes).unwrap();
        assert!(!want.is_empty() || file.contains("legit"), "{file}");
        let (linktype, recs) = read_pcap(&bytes);
        for seed in 0..3u64 {
            let rewritten = write_pcap(linktype, &resegment(&recs, seed), false);
            let (got, stats) = analyze_bytes(file, &rewritten).unwrap();
            assert_eq!(normalize(&got), normalize(&want), "{file} seed {seed}");
            assert_eq!(stats.tcp_gaps, 0, "{file} seed {seed}: no bytes were lost");
            assert!(stats.tcp_segments > recs.len() as u64);
        }
    }
}

/// Rewrites every frame's link layer (or IP layer) and checks the findings do not change.
fn convert(recs: &[Rec], f: impl Fn(&Parsed, &Rec) -> Vec<Vec<u8>>) -> Vec<Rec> {
    recs.iter().flat_map(|r| f(&parse(&r.data), r).into_iter().map(move |data| Rec { data, orig_len: 0, ..r.clone() })).collect()
}

#[test]
fn link_layers_ip_versions_fragments_and_containers() {
    for file in ["nmap-heartbleed-vulnerable-1.0.1f-tls12.pcap", "client-s_client-1.0.1f-overread-claim65535-vulnerable-tls12.pcap", "hbprobe-heartbleed-vulnerable-1.0.1f-dtls1.pcap"] {
        let bytes = std::fs::read(lab(file)).unwrap();
        let (want, _) = analyze_bytes(file, &bytes).unwrap();
        let want = normalize(&want);
        assert!(!want.is_empty());
        let (_, recs) = read_pcap(&bytes);
        let ethertype = |p: &Parsed| if p.ip_bytes[0] >> 4 == 6 { 0x86ddu16 } else { 0x0800 };
        let variants: Vec<(&str, Vec<u8>)> = vec![
            ("pcapng", write_pcapng(1, &recs)),
            ("nanosecond pcap", write_pcap(1, &recs, true)),
            ("raw IP", write_pcap(101, &convert(&recs, |p, _| vec![p.ip_bytes.clone()]), false)),
            (
                "Linux SLL",
                write_pcap(
                    113,
                    &convert(&recs, |p, _| {
                        let mut f = vec![0, 0, 3, 4, 0, 6];
                        f.extend_from_slice(&p.src_mac);
                        f.extend_from_slice(&[0, 0]);
                        f.extend_from_slice(&ethertype(p).to_be_bytes());
                        f.extend_from_slice(&p.ip_bytes);
                        vec![f]
                    }),
                    false,
                ),
            ),
            (
                "Linux SLL2",
                write_pcap(
                    276,
                    &convert(&recs, |p, _| {
                        let mut f = ethertype(p).to_be_bytes().to_vec();
                        f.extend_from_slice(&[0, 0, 0, 0, 0, 1, 3, 4, 0, 6]);
                        f.extend_from_slice(&p.src_mac);
                        f.extend_from_slice(&[0, 0]);
                        f.extend_from_slice(&p.ip_bytes);
                        vec![f]
                    }),
                    false,
                ),
            ),
            (
                "BSD loopback",
                write_pcap(
                    0,
                    &convert(&recs, |p, _| {
                        let mut f = 2u32.to_le_bytes().to_vec();
                        f.extend_from_slice(&p.ip_bytes);
                        vec![f]
                    }),
                    false,
                ),
            ),
            (
                "802.1Q VLAN",
                write_pcap(
                    1,
                    &convert(&recs, |p, r| {
                        let mut f = r.data[..12].to_vec();
                        f.extend_from_slice(&[0x81, 0x00, 0x00, 0x2a]);
                        f.extend_from_slice(&ethertype(p).to_be_bytes());
                        f.extend_from_slice(&p.ip_bytes);
                        vec![f]
                    }),
                    false,
                ),
            ),
            ("IPv4 fragments", write_pcap(101, &convert(&recs, |p, _| fragment_ipv4(&p.ip_bytes)), false)),
        ];
        for (name, capture) in variants {
            let (got, stats) = analyze_bytes(name, &capture).unwrap();
            assert_eq!(normalize(&got), want, "{file} as {name}: {:?}", stats.warnings);
        }
        if !file.contains("dtls") {
            let ipv6 = write_pcap(
                1,
                &convert(&recs, |p, r| {
                    let t = p.tcp.unwrap();
                    vec![tcp_frame(p, &t, t.seq, &r.data[t.payload_start..], t.fin, true)]
                }),
                false,
            );
            let (got, _) = analyze_bytes("ipv6", &ipv6).unwrap();
            assert_eq!(normalize(&got), want, "{file} over IPv6");
            assert!(got[0].src_ip.to_string().starts_with("2001:db8::"));
        }
    }
}

/// Splits an IPv4 packet's payload into three fragments sent last first.
fn fragment_ipv4(ip: &[u8]) -> Vec<Vec<u8>> {
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let payload = &ip[ihl..];
    if payload.len() < 48 {
        return vec![ip.to_vec()];
    }
    let cut1 = (payload.len() / 3) & !7;
    let cut2 = (2 * payload.len() / 3) & !7;
    let mut out = Vec::new();
    for (start, end, more) in [(cut2, payload.len(), false), (0, cut1, true), (cut1, cut2, true)] {
        let mut h = ip[..ihl].to_vec();
        let total = (ihl + end - start) as u16;
        h[2..4].copy_from_slice(&total.to_be_bytes());
        h[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
        let flags_off = ((start / 8) as u16) | if more { 0x2000 } else { 0 };
        h[6..8].copy_from_slice(&flags_off.to_be_bytes());
        h.extend_from_slice(&payload[start..end]);
        out.push(h);
    }
    out
}

/// TLS found after a plaintext STARTTLS exchange on a non-TLS port.
#[test]
fn starttls_upgrade_is_followed() {
    for file in ["nmap-heartbleed-vulnerable-1.0.1f-tls12.pcap", "client-s_client-1.0.1f-overread-claim16384-vulnerable-tls12.pcap"] {
        let bytes = std::fs::read(lab(file)).unwrap();
        let (want, _) = analyze_bytes(file, &bytes).unwrap();
        let (linktype, recs) = read_pcap(&bytes);
        let server_text: &[u8] = b"220 mail.example.org ESMTP\r\n250-mail.example.org\r\n250 STARTTLS\r\n220 2.0.0 Ready to start TLS\r\n";
        let client_text: &[u8] = b"EHLO client.example.org\r\nSTARTTLS\r\n";
        // Per connection: insert the dialogue before the first data and shift later sequence numbers.
        let mut out = Vec::new();
        let mut injected: BTreeSet<(u16, u16)> = BTreeSet::new();
        for r in &recs {
            let p = parse(&r.data);
            let t = p.tcp.unwrap();
            let client_port = t.sport.max(t.dport);
            let from_client = t.sport == client_port;
            let conn = (t.sport.min(t.dport), client_port);
            let has_data = r.data.len() > t.payload_start;
            if has_data && injected.insert(conn) {
                let server = Parsed { src_mac: p.dst_mac, dst_mac: p.src_mac, src: p.dst, dst: p.src, ip_bytes: Vec::new(), tcp: None };
                let (client_p, server_p) = if from_client { (&p, &server) } else { (&server, &p) };
                let (cseq, sseq) = if from_client { (t.seq, t.ack) } else { (t.ack, t.seq) };
                let base = TcpParts { syn: false, fin: false, rst: false, psh: true, ack_flag: true, ..t };
                let ct = TcpParts { sport: client_port, dport: conn.0, ..base };
                let st = TcpParts { sport: conn.0, dport: client_port, ..base };
                out.push(Rec { data: tcp_frame(server_p, &st, sseq, &server_text[..28], false, false), ..r.clone() });
                out.push(Rec { data: tcp_frame(client_p, &ct, cseq, &client_text[..25], false, false), ..r.clone() });
                out.push(Rec { data: tcp_frame(server_p, &st, sseq.wrapping_add(28), &server_text[28..], false, false), ..r.clone() });
                out.push(Rec { data: tcp_frame(client_p, &ct, cseq.wrapping_add(25), &client_text[25..], false, false), ..r.clone() });
            }
            if injected.contains(&conn) && !t.syn {
                let shift = if from_client { client_text.len() } else { server_text.len() };
                let payload = &r.data[t.payload_start..];
                out.push(Rec { data: tcp_frame(&p, &t, t.seq.wrapping_add(shift as u32), payload, t.fin, false), ..r.clone() });
            } else {
                out.push(r.clone());
            }
        }
        let (got, stats) = analyze_bytes(file, &write_pcap(linktype, &out, false)).unwrap();
        assert_eq!(normalize(&got), normalize(&want), "{file} behind STARTTLS");
        assert!(stats.tls_connections >= 1);
    }
}

/// Frames cut by a small snaplen: no panic, the over-reading request (in a small frame) is still
/// found, and the cut bytes are counted as losses.
#[test]
fn snaplen_cut_frames_give_partial_results() {
    let bytes = std::fs::read(lab("nmap-heartbleed-vulnerable-1.0.1f-tls12.pcap")).unwrap();
    let (linktype, recs) = read_pcap(&bytes);
    let cut: Vec<Rec> = recs.iter().map(|r| Rec { orig_len: r.data.len() as u32, data: r.data[..r.data.len().min(200)].to_vec(), ..r.clone() }).collect();
    let (findings, stats) = analyze_bytes("cut", &write_pcap(linktype, &cut, false)).unwrap();
    assert!(stats.truncated_packets > 0);
    assert!(stats.tcp_gap_bytes > 0);
    assert!(findings.iter().any(|f| f.kind == Kind::HeartbeatOverflow), "{findings:?}");
}

// ---------------------------------------------------------------------------------------------
// Damaged input
// ---------------------------------------------------------------------------------------------

#[test]
fn truncated_files_give_partial_results_never_panics() {
    let cfg = Config::default();
    for file in ["nmap-heartbleed-vulnerable-1.0.1f-tls12.pcap", "hbprobe-heartbleed-vulnerable-1.0.1f-dtls1.pcap", "client-s_client-1.0.1f-overread-claim65535-vulnerable-tls12.pcap"] {
        let bytes = std::fs::read(lab(file)).unwrap();
        let ng = {
            let (_, recs) = read_pcap(&bytes);
            write_pcapng(1, &recs)
        };
        for capture in [&bytes, &ng] {
            let mut cuts: Vec<usize> = (0..capture.len()).step_by(capture.len() / 80 + 1).collect();
            cuts.extend([1, 3, 4, 23, 24, 25, 39, 40, 41, capture.len() - 1]);
            for cut in cuts {
                match analyze_bytes_with(file, &capture[..cut], &cfg) {
                    Ok((_, stats)) => {
                        assert!(cut >= 24, "{file}: {cut} bytes cannot be a capture");
                        // Any cut inside the packet data is reported as partial.
                        assert!(stats.partial || stats.packets > 0 || cut < 64, "{file} cut {cut}");
                    }
                    Err(e) => assert!(cut < 300, "{file} cut at {cut}: unexpected error {e}"),
                }
            }
            let (_, full) = analyze_bytes_with(file, capture, &cfg).unwrap();
            assert!(!full.partial);
        }
        // A cut in the middle of the response still finds the attack, as a partial result.
        let (findings, stats) = analyze_bytes(file, &bytes[..bytes.len() * 3 / 4]).unwrap();
        assert!(stats.partial && stats.warnings[0].contains("truncated"), "{:?}", stats.warnings);
        assert!(findings.iter().any(|f| f.severity >= Severity::Attack), "{file}");
    }
}

#[test]
fn garbage_gives_clear_errors_or_partial_results() {
    let mut rng = StdRng::seed_from_u64(7);
    assert!(matches!(analyze_bytes("empty", b""), Err(PcapError::Empty { .. })));
    let text = b"this is not a capture\n".repeat(100);
    let err = analyze_bytes("text", &text).unwrap_err();
    assert!(matches!(err, PcapError::NotACapture { .. }));
    assert!(err.to_string().contains("not a pcap or pcapng capture"), "{err}");
    for round in 0..200 {
        let len = rng.gen_range(0..5000);
        let mut data: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        // Half of the rounds get a valid header so the garbage reaches the record parser.
        if round % 2 == 0 && data.len() > 24 {
            let header = if round % 4 == 0 { write_pcap(1, &[], false) } else { write_pcapng(1, &[]) };
            let n = header.len().min(data.len());
            data[..n].copy_from_slice(&header[..n]);
        }
        match analyze_bytes("garbage", &data) {
            Ok((_, stats)) => assert!(stats.packets < 5000),
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
    // Garbage frames inside a valid capture: decoded or counted, never a panic.
    let frames: Vec<Rec> = (0..500).map(|i| Rec { ts_sec: i, ts_usec: 0, orig_len: 0, data: (0..rng.gen_range(0..200)).map(|_| rng.gen()).collect() }).collect();
    for linktype in [0, 1, 101, 113, 276, 228, 229, 12345] {
        let (_, stats) = analyze_bytes("frames", &write_pcap(linktype, &frames, false)).unwrap();
        assert_eq!(stats.packets, 500);
    }
}

/// A tiny flow table still finds the attack (older flows are closed early, not lost).
#[test]
fn flow_limit_evicts_without_losing_the_attack() {
    let bytes = std::fs::read(lab("testssl-heartbleed-vulnerable-1.0.1f.pcap")).unwrap();
    let cfg = Config { max_flows: 2, ..Config::default() };
    let (findings, stats) = analyze_bytes_with("testssl", &bytes, &cfg).unwrap();
    assert!(stats.flows_evicted > 0);
    assert!(findings.iter().any(|f| f.kind == Kind::HeartbeatResponseLeak && f.leaked_bytes == Some(16381)));
}

/// Tight buffer limits on heavily reordered input: bounded, no panic, and the plaintext attack request
/// is still seen.
#[test]
fn memory_limits_hold_under_reordering() {
    let bytes = std::fs::read(lab("nmap-heartbleed-vulnerable-1.0.1f-tls12.pcap")).unwrap();
    let (linktype, recs) = read_pcap(&bytes);
    let mut shuffled = resegment(&recs, 99);
    shuffled.reverse();
    let cfg = Config { max_flow_buffered_bytes: 2048, max_buffered_bytes: 4096, max_flow_held_segments: 16, ..Config::default() };
    let (_, stats) = analyze_bytes_with("reversed", &write_pcap(linktype, &shuffled, false), &cfg).unwrap();
    assert!(stats.peak_buffered_bytes <= 4096 + 2048 + 65536 * 2, "peak {}", stats.peak_buffered_bytes);
    assert!(stats.tcp_gaps > 0, "reversed input under tight limits must give up on holes");
}

/// A pcapng written by Wireshark's editcap gives the same findings as the original pcap.
#[test]
fn pcapng_from_editcap_matches_the_original() {
    let (want, _) = analyze_file(&lab("nmap-heartbleed-vulnerable-1.0.1f-tls12.pcap"));
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/nmap-heartbleed-vulnerable-1.0.1f-tls12.pcapng");
    let (got, stats) = analyze_file(&fixture);
    assert_eq!(stats.format, "pcapng");
    assert_eq!(normalize(&got), normalize(&want));
    assert_eq!(got.iter().map(|f| f.time).collect::<Vec<_>>(), want.iter().map(|f| f.time).collect::<Vec<_>>(), "timestamps survive pcapng");
}

/// Connections idle longer than the timeout are closed (and judged) early; nothing is lost.
#[test]
fn idle_connections_expire() {
    let first = std::fs::read(lab("nmap-heartbleed-vulnerable-1.0.1f-tls12.pcap")).unwrap();
    let second = std::fs::read(lab("client-s_client-1.0.1f-overread-claim16384-vulnerable-tls12.pcap")).unwrap();
    let (linktype, mut recs) = read_pcap(&first);
    let (_, later) = read_pcap(&second);
    let start = recs[0].ts_sec;
    // The second capture happens an hour after the first.
    recs.extend(later.into_iter().map(|r| Rec { ts_sec: start + 3600 + (r.ts_sec - later_start(&second)), ..r }));
    let cfg = Config { idle_timeout_secs: 60, ..Config::default() };
    let (findings, stats) = analyze_bytes_with("two", &write_pcap(linktype, &recs, false), &cfg).unwrap();
    assert!(stats.flows_expired >= 1, "{stats:?}");
    let (a, _) = analyze_bytes("a", &first).unwrap();
    let (b, _) = analyze_bytes("b", &second).unwrap();
    let mut both = normalize(&a);
    both.extend(normalize(&b));
    both.sort_by(|x, y| format!("{x:?}").cmp(&format!("{y:?}")));
    assert_eq!(normalize(&findings), both);
}

fn later_start(capture: &[u8]) -> u32 {
    read_pcap(capture).1[0].ts_sec
}

/// Progress is reported by bytes read and ends at the file size.
#[test]
fn progress_reports_bytes_read() {
    let bytes = std::fs::read(lab("client-s_client-1.0.1f-overread-claim65535-vulnerable-tls12.pcap")).unwrap();
    let mut seen = Vec::new();
    bleedwatch_pcap::analyze_reader_with_progress("p", &bytes[..], &Config::default(), &mut |_| {}, &mut |n| seen.push(n)).unwrap();
    assert_eq!(seen.last().copied(), Some(bytes.len() as u64));
    assert!(seen.windows(2).all(|w| w[0] <= w[1]));
}

/// A capture whose clock goes back (files joined out of order): the connections still open at the
/// jump are closed there, so the packets after it are analysed afresh, not taken for retransmissions
/// of the earlier ones, and the earlier connections' memory is freed.
#[test]
fn clock_going_back_closes_the_earlier_connections() {
    let bytes = std::fs::read(lab("nmap-heartbleed-vulnerable-1.0.1f-tls12.pcap")).unwrap();
    let (linktype, recs) = read_pcap(&bytes);
    // Without its FIN and RST packets the connection never ends.
    let open: Vec<Rec> = recs.into_iter().filter(|r| parse(&r.data).tcp.is_none_or(|t| !t.fin && !t.rst)).collect();
    let (once, once_stats) = analyze_bytes("once", &write_pcap(linktype, &open, false)).unwrap();
    assert!(once.iter().any(|f| f.severity == Severity::Success));
    assert_eq!(once_stats.clock_jumps, 0);
    let mut twice = open.clone();
    twice.extend(open.iter().map(|r| Rec { ts_sec: r.ts_sec - 3600, ..r.clone() }));
    let (findings, stats) = analyze_bytes("twice", &write_pcap(linktype, &twice, false)).unwrap();
    assert_eq!(normalize(&findings).len(), 2 * normalize(&once).len(), "{findings:#?}");
    assert_eq!((stats.clock_jumps, stats.peak_flows, stats.tcp_connections), (1, once_stats.peak_flows, 2 * once_stats.tcp_connections));
    assert!(stats.warnings.iter().any(|w| w.contains("clock went back")), "{:?}", stats.warnings);
}

/// A capture rotated between an attack's request and its answer: read file by file, the answer in
/// the second file has no request; joined, the pieces give exactly the whole capture's findings,
/// under the name of the file each connection began in.
#[test]
fn joined_pieces_give_the_whole_captures_findings() {
    let bytes = std::fs::read(lab("nmap-heartbleed-vulnerable-1.0.1f-tls12.pcap")).unwrap();
    let (linktype, recs) = read_pcap(&bytes);
    let (whole, _) = analyze_bytes("whole", &bytes).unwrap();
    let success = whole.iter().find(|f| f.kind == Kind::HeartbeatResponseLeak).unwrap();
    // Cut just before the first packet of the answer.
    let cut = recs.iter().position(|r| (r.ts_sec, r.ts_usec) >= ((success.time.unix_micros() / 1_000_000) as u32, (success.time.unix_micros() % 1_000_000) as u32)).unwrap();
    let (first, second) = (write_pcap(linktype, &recs[..cut], false), write_pcap(linktype, &recs[cut..], false));

    // Read apart, neither piece shows the success: the request is in one, the answer in the other.
    for piece in [&first, &second] {
        let (apart, _) = analyze_bytes("piece", piece).unwrap();
        assert!(apart.iter().all(|f| f.severity != Severity::Success), "{apart:#?}");
    }

    let mut joined_findings = Vec::new();
    let mut sink = |f: Finding| joined_findings.push(f);
    let mut joined = bleedwatch_pcap::Joined::new(&Config::default(), &mut sink);
    let a = joined.add_reader("first", &first[..], &mut |_| {}).unwrap();
    let b = joined.add_reader("second", &second[..], &mut |_| {}).unwrap();
    let closing = joined.finish();
    assert_eq!(a.packets + b.packets, recs.len() as u64);
    assert_eq!((a.tcp_connections, b.tcp_connections), (3, 0), "every connection began in the first piece");
    assert_eq!(a.findings + b.findings + closing.findings, whole.len() as u64);
    assert!(joined_findings.iter().all(|f| &*f.file == "first"));
    assert_eq!(normalize(&joined_findings), normalize(&whole));
}

/// A gzip-compressed capture gives the same findings as the capture itself.
#[test]
fn gzip_compressed_capture_matches_the_original() {
    let bytes = std::fs::read(lab("client-s_client-1.0.1f-overread-claim16384-vulnerable-tls12.pcap")).unwrap();
    let (want, want_stats) = analyze_bytes("plain", &bytes).unwrap();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut encoder, &bytes).unwrap();
    let compressed = encoder.finish().unwrap();
    let (got, stats) = analyze_bytes("compressed", &compressed).unwrap();
    assert!(!want.is_empty());
    assert_eq!(normalize(&got), normalize(&want));
    assert_eq!((stats.format.as_str(), stats.packets, stats.bytes_read), ("pcap (gzip)", want_stats.packets, compressed.len() as u64));
}

/// An attacker is counted once however many connections (source ports) it used.
#[test]
fn summary_counts_an_attacker_once_across_its_connections() {
    let (findings, _) = analyze_file(&lab("nmap-heartbleed-vulnerable-1.0.1f-tls12.pcap"));
    let attempt = findings.iter().find(|f| f.kind == Kind::HeartbeatOverflow).unwrap();
    let mut summary = bleedwatch_pcap::Summary::new();
    for (n, port) in [40001u16, 40002, 40003].into_iter().enumerate() {
        let mut f = attempt.clone();
        f.connection = n as u64 + 1;
        f.src_port = port;
        f.attacker.set_port(port);
        summary.add_finding(&f);
    }
    assert_eq!(summary.attempts(), 3);
    let text = summary.render();
    assert!(text.contains("3 attempt(s) by 1 attacker(s) against 1 victim(s)"), "{text}");
    assert_eq!(text.lines().filter(|l| l.starts_with("127.0.0.1 ")).count(), 1, "{text}");
}

/// The human summary names attackers, victims and successes.
#[test]
fn summary_lists_attackers_victims_and_successes() {
    let mut summary = bleedwatch_pcap::Summary::new();
    for file in ["nmap-heartbleed-vulnerable-1.0.1f-tls12.pcap", "client-s_client-1.0.1f-overread-claim16384-vulnerable-tls12.pcap", "s_client-openssl3-normal-session-1.0.1f-tls12.pcap"] {
        let (findings, stats) = analyze_file(&lab(file));
        for f in &findings {
            summary.add_finding(f);
        }
        summary.add_file(&stats);
    }
    assert!(summary.attack_found());
    assert_eq!((summary.attempts(), summary.successes()), (2, 2));
    let text = summary.render();
    // The client side by address (its port is ephemeral), the server side by address and port: nmap
    // attacked the server on 14431; the malicious server on 14453 attacked its client.
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split_whitespace().collect()).collect();
    assert!(rows.iter().any(|r| r.get(..3) == Some(&["127.0.0.1", "127.0.0.1:14431", "client-to-server"][..])), "{text}");
    assert!(rows.iter().any(|r| r.get(..3) == Some(&["127.0.0.1:14453", "127.0.0.1", "server-to-client"][..])), "{text}");
    assert!(text.contains("2 success(es), 32743 bytes leaked"), "{text}");

    let mut quiet = bleedwatch_pcap::Summary::new();
    let (findings, stats) = analyze_file(&lab("s_client-openssl3-normal-session-1.0.1f-tls12.pcap"));
    assert!(findings.is_empty());
    quiet.add_file(&stats);
    assert!(!quiet.attack_found());
    assert!(quiet.render().contains("No Heartbleed attempts found."));
}

/// The `pcap_capture` fuzz corpus (fuzz/README.md), replayed: whole, and cut every 499 bytes.
mod fuzz_corpus {
    /// Every file of `fuzz/corpus/<target>`; fails on an empty or missing corpus.
    fn corpus(target: &str) -> Vec<Vec<u8>> {
        bleedwatch_testkit::fuzz_corpus(target).unwrap()
    }

    #[test]
    fn pcap_fuzz_corpus_replays_without_panic() {
        for bytes in corpus("pcap_capture") {
            bleedwatch_pcap::fuzz_capture(&bytes);
            for cut in (0..bytes.len()).step_by(499) {
                bleedwatch_pcap::fuzz_capture(&bytes[..cut]);
            }
        }
    }
}
