//! The flow table: packets in, findings out. Bounded in flows and bytes, with idle expiry, so that a
//! multi-gigabyte capture is analysed in constant memory.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::detect::{ConnMeta, Detector};
use crate::dtls::{self, DtlsStream};
use crate::finding::{Finding, SharedText};
use crate::ip::{DecodeStats, Decoder, FragLimits, L4Packet, TcpInfo};
use crate::reader::{linktype_name, Packet};
use crate::slots::{Slot, SlotTable};
use crate::tcp::{MemoryBudget, ReassemblyLimits, Reassembler};
use crate::timestamp::Timestamp;
use crate::tls::{Dir, StreamLimits, TlsStream};

/// Limits of one analysis. The defaults keep a run under about 1 GiB whatever the capture holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    /// Connections tracked at once; past it the least recently active are closed early.
    pub max_flows: usize,
    /// Bytes buffered across all connections (out-of-order data, scanning and handshake buffers).
    pub max_buffered_bytes: usize,
    /// Out-of-order bytes held for one direction of one connection before giving up on a hole.
    pub max_flow_buffered_bytes: usize,
    /// Out-of-order segments held for one direction of one connection.
    pub max_flow_held_segments: usize,
    /// A connection with no packet for this long (capture time) is closed.
    pub idle_timeout_secs: u64,
    /// Plaintext bytes per direction examined for a STARTTLS upgrade.
    pub starttls_scan_bytes: usize,
    /// Window used to find record boundaries again after a loss.
    pub resync_window_bytes: usize,
    /// IP datagrams being reassembled at once, bytes they may hold, and how long they may wait.
    pub max_fragment_datagrams: usize,
    pub max_fragment_bytes: usize,
    pub fragment_timeout_secs: u64,
    /// Largest capture block accepted (a larger claim means a corrupt file).
    pub max_block_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_flows: 262_144,
            max_buffered_bytes: 256 << 20,
            max_flow_buffered_bytes: 4 << 20,
            max_flow_held_segments: 4096,
            idle_timeout_secs: 300,
            starttls_scan_bytes: 16 << 10,
            resync_window_bytes: 64 << 10,
            max_fragment_datagrams: 4096,
            max_fragment_bytes: 32 << 20,
            fragment_timeout_secs: 30,
            max_block_bytes: 64 << 20,
        }
    }
}

/// What was read from one capture.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FileStats {
    pub file: String,
    /// `pcap` or `pcapng`, followed by ` (gzip)` for a compressed file.
    pub format: String,
    pub bytes_read: u64,
    pub packets: u64,
    /// Frames whose capture length is below their wire length (snaplen).
    pub truncated_packets: u64,
    pub ip_packets: u64,
    pub non_ip_packets: u64,
    pub undecodable_packets: u64,
    pub tcp_segments: u64,
    pub udp_datagrams: u64,
    pub ip_fragments: u64,
    pub reassembled_datagrams: u64,
    pub fragments_dropped: u64,
    pub tcp_connections: u64,
    pub dtls_flows: u64,
    /// Connections (TCP or DTLS) in which TLS records were found.
    pub tls_connections: u64,
    pub tcp_gaps: u64,
    pub tcp_gap_bytes: u64,
    pub resyncs: u64,
    pub flows_expired: u64,
    pub flows_evicted: u64,
    pub peak_buffered_bytes: u64,
    /// Most connections tracked at once.
    pub peak_flows: u64,
    /// Times the capture's clock went back by more than the idle timeout.
    pub clock_jumps: u64,
    pub findings: u64,
    pub first_packet: Option<f64>,
    pub last_packet: Option<f64>,
    /// The file was damaged (truncated, corrupt, unreadable after some point); results cover what
    /// could be read.
    pub partial: bool,
    pub warnings: Vec<String>,
}

impl FileStats {
    /// Adds what `closing` counted (the end of a joined analysis: connections still open closed) to
    /// these statistics: counts add up, peaks take the larger, warnings join.
    pub fn absorb(&mut self, closing: &FileStats) {
        let counts = [
            (&mut self.packets, closing.packets),
            (&mut self.truncated_packets, closing.truncated_packets),
            (&mut self.ip_packets, closing.ip_packets),
            (&mut self.non_ip_packets, closing.non_ip_packets),
            (&mut self.undecodable_packets, closing.undecodable_packets),
            (&mut self.tcp_segments, closing.tcp_segments),
            (&mut self.udp_datagrams, closing.udp_datagrams),
            (&mut self.ip_fragments, closing.ip_fragments),
            (&mut self.reassembled_datagrams, closing.reassembled_datagrams),
            (&mut self.fragments_dropped, closing.fragments_dropped),
            (&mut self.tcp_connections, closing.tcp_connections),
            (&mut self.dtls_flows, closing.dtls_flows),
            (&mut self.tls_connections, closing.tls_connections),
            (&mut self.tcp_gaps, closing.tcp_gaps),
            (&mut self.tcp_gap_bytes, closing.tcp_gap_bytes),
            (&mut self.resyncs, closing.resyncs),
            (&mut self.flows_expired, closing.flows_expired),
            (&mut self.flows_evicted, closing.flows_evicted),
            (&mut self.findings, closing.findings),
            (&mut self.clock_jumps, closing.clock_jumps),
        ];
        for (total, more) in counts {
            *total += more;
        }
        self.peak_buffered_bytes = self.peak_buffered_bytes.max(closing.peak_buffered_bytes);
        self.peak_flows = self.peak_flows.max(closing.peak_flows);
        self.partial |= closing.partial;
        self.warnings.extend(closing.warnings.iter().cloned());
    }
}

/// A connection's two endpoints in a fixed order (IPv4 as IPv4-mapped IPv6), packed into five words
/// so that building, comparing and hashing a key is cheap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FlowKey {
    a_ip: [u64; 2],
    b_ip: [u64; 2],
    /// `a` port, `b` port and UDP flag.
    ports: u64,
}

/// An endpoint as one ordered value.
type Endpoint = (u128, u16);

fn packed(ip: IpAddr, port: u16) -> Endpoint {
    let ip = match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)) | 0xffff_0000_0000,
        IpAddr::V6(v6) => u128::from(v6),
    };
    (ip, port)
}

impl FlowKey {
    /// The key, and whether `src` is its first endpoint.
    fn new(src: Endpoint, dst: Endpoint, udp: bool) -> (Self, bool) {
        let src_first = src <= dst;
        let (a, b) = if src_first { (src, dst) } else { (dst, src) };
        let words = |ip: u128| [(ip >> 64) as u64, ip as u64];
        let key = FlowKey { a_ip: words(a.0), b_ip: words(b.0), ports: (u64::from(a.1) << 32) | (u64::from(b.1) << 16) | u64::from(udp) };
        (key, src_first)
    }
}

struct TcpDir {
    reasm: Reassembler,
    tls: TlsStream,
    finished: bool,
}

// Flows live in a slab and never move; boxing the TCP variant would cost an allocation per connection.
#[allow(clippy::large_enum_variant)]
enum Streams {
    Tcp([TcpDir; 2]),
    Udp([DtlsStream; 2]),
}

struct Flow {
    last_seen: Timestamp,
    /// The originator is the key's first endpoint (so a packet's direction follows from the lookup).
    orig_first: bool,
    /// Neither direction is TLS: only the end of the connection is still of interest.
    ignored: bool,
    /// When a RST was seen. Data the other side had in flight still arrives after it (and a server
    /// that leaks keeps sending), so the flow stays open a little longer.
    reset_at: Option<Timestamp>,
    /// Bytes each direction's stream holds, as last accounted in the budget.
    accounted: [usize; 2],
    detector: Detector,
    streams: Streams,
}

impl Flow {
    fn dir(&self, src_first: bool) -> Dir {
        if src_first == self.orig_first {
            Dir::Orig
        } else {
            Dir::Resp
        }
    }
}

/// How long a reset connection keeps taking segments.
const RESET_LINGER_NS: i64 = 5 * Timestamp::NANOS_PER_SEC;

/// Everything but the flow table, so a flow and the context can be borrowed together.
struct Ctx<'s> {
    /// Names of the files read so far (several when the files are pieces of one capture); a
    /// connection's findings name the file it began in.
    files: Vec<SharedText>,
    /// Connections begun in the current file (they are numbered within it).
    file_connections: u64,
    cfg: Config,
    reassembly: ReassemblyLimits,
    stream_limits: StreamLimits,
    budget: MemoryBudget,
    stats: FileStats,
    sink: &'s mut dyn FnMut(Finding),
    next_conn_id: u64,
    /// Idle checks, oldest first: one entry per flow, re-queued with the flow's last activity when
    /// it turns out to be still active. Entries of flows already gone are dropped when reached.
    idle_timers: VecDeque<Timer>,
    /// Flows that saw a RST, to close once the linger time has passed.
    reset_timers: VecDeque<Timer>,
}

/// A flow to look at again at `at`; `id` tells whether the slot still holds the same connection.
#[derive(Debug, Clone, Copy)]
struct Timer {
    at: Timestamp,
    slot: Slot,
    id: u64,
}

impl Ctx<'_> {
    fn drain(&mut self, detector: &mut Detector) {
        if detector.out.is_empty() {
            return;
        }
        let file = self.files.get(detector.meta.file as usize).cloned().unwrap_or_default();
        for mut f in detector.out.drain(..) {
            f.file = file.clone();
            self.stats.findings += 1;
            (self.sink)(f);
        }
    }
}

/// Flows by 5-tuple.
type FlowTable = SlotTable<FlowKey, Flow>;

/// The flow in `slot` if it is still connection `id`.
fn flow_at(flows: &FlowTable, slot: Slot, id: u64) -> Option<&Flow> {
    flows.get(slot).filter(|f| f.detector.meta.id == id)
}

pub(crate) struct Engine<'s> {
    flows: FlowTable,
    decoder: Decoder,
    ctx: Ctx<'s>,
    now: Timestamp,
    last_expiry: Timestamp,
    /// Capture times of the first and last packet (made seconds once, at the end).
    first_packet: Option<Timestamp>,
    last_packet: Option<Timestamp>,
}

impl<'s> Engine<'s> {
    /// An engine with no file yet: [`Self::begin_file`] names the first.
    pub fn new(cfg: &Config, sink: &'s mut dyn FnMut(Finding)) -> Self {
        let frag = FragLimits {
            max_datagrams: cfg.max_fragment_datagrams,
            max_bytes: cfg.max_fragment_bytes,
            timeout_ns: (cfg.fragment_timeout_secs as i64).saturating_mul(Timestamp::NANOS_PER_SEC),
        };
        Engine {
            flows: SlotTable::new(),
            decoder: Decoder::new(frag),
            ctx: Ctx {
                files: Vec::new(),
                file_connections: 0,
                reassembly: ReassemblyLimits { max_held_bytes: cfg.max_flow_buffered_bytes, max_held_segments: cfg.max_flow_held_segments },
                stream_limits: StreamLimits {
                    starttls_scan: cfg.starttls_scan_bytes,
                    resync_window: cfg.resync_window_bytes,
                    resync_total: cfg.resync_window_bytes.saturating_mul(16),
                    max_handshake: 64 << 10,
                },
                budget: MemoryBudget::new(cfg.max_buffered_bytes),
                cfg: cfg.clone(),
                stats: FileStats::default(),
                sink,
                next_conn_id: 0,
                idle_timers: VecDeque::new(),
                reset_timers: VecDeque::new(),
            },
            now: Timestamp(i64::MIN),
            last_expiry: Timestamp(i64::MIN),
            first_packet: None,
            last_packet: None,
        }
    }

    pub fn on_packet(&mut self, pkt: &Packet<'_>) {
        let stats = &mut self.ctx.stats;
        stats.packets += 1;
        if (pkt.data.len() as u64) < u64::from(pkt.orig_len) {
            stats.truncated_packets += 1;
        }
        self.first_packet.get_or_insert(pkt.ts);
        self.last_packet = Some(pkt.ts);
        if pkt.ts.0 < self.now.0.saturating_sub(self.idle_ns()) {
            self.clock_went_back(pkt.ts);
        }
        if pkt.ts > self.now {
            self.now = pkt.ts;
        }
        self.maybe_expire();
        let Engine { flows, decoder, ctx, .. } = self;
        decoder.decode(pkt.ts, pkt.linktype, pkt.data, |l4| on_l4(flows, ctx, pkt.ts, l4));
    }

    fn idle_ns(&self) -> i64 {
        (self.ctx.cfg.idle_timeout_secs as i64).saturating_mul(Timestamp::NANOS_PER_SEC)
    }

    /// The capture's clock went back by more than the idle timeout (files joined out of order, a clock
    /// reset). Connections last seen after `ts` belong to the earlier stretch and, against a clock
    /// that now reads earlier, would never look idle again (nor free their memory): they are closed
    /// here, and the clock restarts at `ts`.
    fn clock_went_back(&mut self, ts: Timestamp) {
        let mut earlier: Vec<(u64, Slot)> = self.flows.iter().filter(|(_, f)| f.last_seen > ts).map(|(slot, f)| (f.detector.meta.id, slot)).collect();
        earlier.sort_unstable_by_key(|(id, _)| *id);
        for (_, slot) in earlier {
            self.expire(slot);
        }
        // The timers of the connections left, in the order the restarted clock will reach them.
        let mut idle: Vec<Timer> = self.flows.iter().map(|(slot, f)| Timer { at: f.last_seen, slot, id: f.detector.meta.id }).collect();
        idle.sort_unstable_by_key(|t| t.at);
        self.ctx.idle_timers = idle.into();
        let mut reset: Vec<Timer> =
            self.flows.iter().filter_map(|(slot, f)| f.reset_at.map(|at| Timer { at, slot, id: f.detector.meta.id })).collect();
        reset.sort_unstable_by_key(|t| t.at);
        self.ctx.reset_timers = reset.into();
        self.ctx.stats.clock_jumps += 1;
        self.now = ts;
        self.last_expiry = ts;
    }

    fn maybe_expire(&mut self) {
        if self.now.0.saturating_sub(self.last_expiry.0) < Timestamp::NANOS_PER_SEC {
            return;
        }
        self.last_expiry = self.now;
        let now = self.now;
        let idle = self.idle_ns();
        while let Some(timer) = self.ctx.idle_timers.front().copied() {
            if now.0.saturating_sub(timer.at.0) <= idle {
                break;
            }
            self.ctx.idle_timers.pop_front();
            let Some(flow) = flow_at(&self.flows, timer.slot, timer.id) else { continue };
            if now.0.saturating_sub(flow.last_seen.0) > idle {
                self.expire(timer.slot);
            } else {
                let at = flow.last_seen;
                self.ctx.idle_timers.push_back(Timer { at, ..timer });
            }
        }
        while let Some(timer) = self.ctx.reset_timers.front().copied() {
            if now.0.saturating_sub(timer.at.0) <= RESET_LINGER_NS {
                break;
            }
            self.ctx.reset_timers.pop_front();
            if flow_at(&self.flows, timer.slot, timer.id).is_some() {
                self.expire(timer.slot);
            }
        }
        // Entries of flows closed by FIN wait until their time comes; keep that bounded.
        if self.ctx.idle_timers.len() > self.ctx.cfg.max_flows.saturating_mul(4).max(1024) {
            let flows = &self.flows;
            self.ctx.idle_timers.retain(|t| flow_at(flows, t.slot, t.id).is_some());
        }
    }

    fn expire(&mut self, slot: Slot) {
        if let Some(flow) = self.flows.get_mut(slot) {
            self.ctx.stats.flows_expired += 1;
            close_flow(&mut self.ctx, flow);
            self.flows.remove(slot);
        }
    }

    /// The next file begins; statistics from here on are that file's. Connections still open go on
    /// (the files are pieces of one capture).
    pub fn begin_file(&mut self, name: &str) {
        self.ctx.files.push(name.into());
        self.ctx.file_connections = 0;
        self.ctx.stats = FileStats { file: name.to_string(), ..FileStats::default() };
        self.decoder.stats = DecodeStats::default();
        self.first_packet = None;
        self.last_packet = None;
        self.ctx.budget.peak = self.ctx.budget.used;
    }

    /// The statistics of the current file so far (connections still open are not closed).
    pub fn end_file(&mut self) -> FileStats {
        let d = std::mem::take(&mut self.decoder.stats);
        let stats = &mut self.ctx.stats;
        stats.first_packet = self.first_packet.map(Timestamp::as_secs_f64);
        stats.last_packet = self.last_packet.map(Timestamp::as_secs_f64);
        stats.ip_packets = d.ip_packets;
        stats.non_ip_packets = d.non_ip_packets;
        stats.undecodable_packets = d.undecodable_packets;
        stats.ip_fragments = d.ip_fragments;
        stats.reassembled_datagrams = d.reassembled_datagrams;
        stats.fragments_dropped = d.fragments_dropped;
        stats.peak_buffered_bytes = self.ctx.budget.peak as u64;
        if stats.clock_jumps > 0 {
            stats.warnings.push(format!(
                "the capture's clock went back by more than the idle timeout {} time(s) (files joined out of order?): connections open at each jump were closed there",
                stats.clock_jumps
            ));
        }
        for lt in &d.unsupported_linktypes {
            stats.warnings.push(format!("packets with unsupported link type {} ({}) were skipped", lt, linktype_name(*lt)));
        }
        let file = stats.file.clone();
        std::mem::replace(stats, FileStats { file, ..FileStats::default() })
    }

    /// End of input: closes every connection, oldest first (their findings come now), and returns
    /// the statistics of the current file, closing included.
    pub fn finish(mut self) -> FileStats {
        let mut rest: Vec<(u64, Slot)> = self.flows.iter().map(|(slot, f)| (f.detector.meta.id, slot)).collect();
        rest.sort_unstable_by_key(|(id, _)| *id);
        for (_, slot) in rest {
            if let Some(flow) = self.flows.get_mut(slot) {
                close_flow(&mut self.ctx, flow);
            }
        }
        self.flows.clear();
        self.end_file()
    }
}

fn on_l4(flows: &mut FlowTable, ctx: &mut Ctx<'_>, ts: Timestamp, pkt: &L4Packet<'_>) {
    let (src, dst) = (packed(pkt.src, pkt.sport), packed(pkt.dst, pkt.dport));
    match pkt.tcp {
        Some(tcp) => {
            ctx.stats.tcp_segments += 1;
            let (key, src_first) = FlowKey::new(src, dst, false);
            if let Some(slot) = flows.find(&key) {
                let over = flows.get_mut(slot).is_some_and(|flow| flow.on_tcp(ctx, ts, slot, src_first, &tcp, pkt));
                if over {
                    close_and_remove(flows, ctx, slot);
                }
                return;
            }
            // Only a SYN or data opens a connection; stray ACKs, FINs and RSTs do not.
            if tcp.rst || (!tcp.syn && pkt.payload.is_empty()) {
                return;
            }
            // The originator sends the SYN; without one, a server hello tells the server.
            let from_server = (tcp.syn && tcp.ack) || (!tcp.syn && starts_like_server_hello(pkt.payload));
            let Some(slot) = open_flow(flows, ctx, key, pkt, from_server, src_first, ts) else { return };
            let over = flows.get_mut(slot).is_some_and(|flow| flow.on_tcp(ctx, ts, slot, src_first, &tcp, pkt));
            if over {
                close_and_remove(flows, ctx, slot);
            }
        }
        None => {
            ctx.stats.udp_datagrams += 1;
            let (key, src_first) = FlowKey::new(src, dst, true);
            let slot = match flows.find(&key) {
                Some(slot) => slot,
                None => {
                    if !dtls::looks_like_dtls(pkt.payload) {
                        return;
                    }
                    let from_server = dtls::is_server_flight(pkt.payload);
                    let Some(slot) = open_flow(flows, ctx, key, pkt, from_server, src_first, ts) else { return };
                    slot
                }
            };
            let Some(flow) = flows.get_mut(slot) else { return };
            flow.last_seen = ts;
            let dir = flow.dir(src_first);
            if let Streams::Udp(streams) = &mut flow.streams {
                streams[dir.index()].datagram(pkt.payload, ts, dir, &mut flow.detector);
            }
            ctx.drain(&mut flow.detector);
        }
    }
}

/// True when a first segment seen mid-connection is a server's hello, so its sender is the server.
fn starts_like_server_hello(payload: &[u8]) -> bool {
    payload.len() >= 6 && payload[0] == 22 && payload[1] == 3 && payload[5] == 2
}

/// Opens a connection at its first packet (room made, counted, idle timer set); `None` only when the
/// table is full beyond recovery.
fn open_flow(flows: &mut FlowTable, ctx: &mut Ctx<'_>, key: FlowKey, pkt: &L4Packet<'_>, from_server: bool, src_first: bool, ts: Timestamp) -> Option<Slot> {
    make_room(flows, ctx);
    let udp = pkt.tcp.is_none();
    if udp {
        ctx.stats.dtls_flows += 1;
    } else {
        ctx.stats.tcp_connections += 1;
    }
    let flow = new_flow(ctx, pkt, from_server, src_first, ts, udp);
    let slot = flows.insert(key, flow)?;
    ctx.stats.peak_flows = ctx.stats.peak_flows.max(flows.len() as u64);
    ctx.idle_timers.push_back(Timer { at: ts, slot, id: ctx.next_conn_id });
    Some(slot)
}

/// A new connection from its first packet; `from_server` when that packet's sender is the responder.
fn new_flow(ctx: &mut Ctx<'_>, pkt: &L4Packet<'_>, from_server: bool, src_first: bool, ts: Timestamp, udp: bool) -> Flow {
    let src = SocketAddr::new(pkt.src, pkt.sport);
    let dst = SocketAddr::new(pkt.dst, pkt.dport);
    let (orig, resp) = if from_server { (dst, src) } else { (src, dst) };
    // When both endpoints are the same, every packet counts as the originator's, as the key cannot
    // tell the two sides apart.
    let same_ends = packed(pkt.src, pkt.sport) == packed(pkt.dst, pkt.dport);
    let orig_first = if from_server && !same_ends { !src_first } else { src_first };
    ctx.next_conn_id += 1;
    ctx.file_connections += 1;
    let file = ctx.files.len().saturating_sub(1) as u32;
    let meta = ConnMeta { id: ctx.next_conn_id, file, number: ctx.file_connections, udp, orig, resp, start: ts };
    let streams = if udp {
        Streams::Udp([DtlsStream::default(), DtlsStream::default()])
    } else {
        let dir = || TcpDir { reasm: Reassembler::new(), tls: TlsStream::new(), finished: false };
        Streams::Tcp([dir(), dir()])
    };
    Flow { last_seen: ts, orig_first, ignored: false, reset_at: None, accounted: [0; 2], detector: Detector::new(meta), streams }
}

/// At the flow limit, closes the least recently active eighth of the table.
fn make_room(flows: &mut FlowTable, ctx: &mut Ctx<'_>) {
    if flows.len() < ctx.cfg.max_flows.clamp(1, FlowTable::MAX_LEN - 1) {
        return;
    }
    let mut by_age: Vec<(Timestamp, u64, Slot)> = flows.iter().map(|(slot, f)| (f.last_seen, f.detector.meta.id, slot)).collect();
    let n = (by_age.len() / 8).max(1);
    by_age.select_nth_unstable_by_key(n - 1, |(seen, id, _)| (*seen, *id));
    let mut victims: Vec<_> = by_age[..n].to_vec();
    victims.sort_unstable_by_key(|(_, id, _)| *id);
    for (_, _, slot) in victims {
        if let Some(flow) = flows.get_mut(slot) {
            ctx.stats.flows_evicted += 1;
            close_flow(ctx, flow);
            flows.remove(slot);
        }
    }
}

fn close_and_remove(flows: &mut FlowTable, ctx: &mut Ctx<'_>, slot: Slot) {
    if let Some(flow) = flows.get_mut(slot) {
        close_flow(ctx, flow);
        flows.remove(slot);
    }
}

/// Ends a connection: whatever is held is handed on with gaps, open records and exchanges judged.
fn close_flow(ctx: &mut Ctx<'_>, flow: &mut Flow) {
    let ts = flow.last_seen;
    if let Streams::Tcp(dirs) = &mut flow.streams {
        for dir in [Dir::Orig, Dir::Resp] {
            let TcpDir { reasm, tls, .. } = &mut dirs[dir.index()];
            let detector = &mut flow.detector;
            let limits = ctx.stream_limits;
            reasm.flush(&mut ctx.budget, &mut |chunk| tls.feed(chunk, ts, dir, detector, &limits));
            tls.finish(ts, dir, detector);
            ctx.stats.tcp_gaps += reasm.gaps;
            ctx.stats.tcp_gap_bytes += reasm.gap_bytes;
            ctx.stats.resyncs += u64::from(tls.resyncs);
        }
    }
    ctx.budget.release(flow.accounted[0] + flow.accounted[1]);
    flow.detector.finish();
    if flow.detector.tls_records > 0 {
        ctx.stats.tls_connections += 1;
    }
    ctx.drain(&mut flow.detector);
}

impl Flow {
    /// Handles one segment; returns true when the connection is over.
    fn on_tcp(&mut self, ctx: &mut Ctx<'_>, ts: Timestamp, slot: Slot, src_first: bool, tcp: &TcpInfo, pkt: &L4Packet<'_>) -> bool {
        self.last_seen = ts;
        if tcp.rst && self.reset_at.is_none() {
            self.reset_at = Some(ts);
            ctx.reset_timers.push_back(Timer { at: ts, slot, id: self.detector.meta.id });
        }
        if self.ignored {
            return tcp.rst;
        }
        let dir = self.dir(src_first);
        let Streams::Tcp(dirs) = &mut self.streams else { return false };
        let detector = &mut self.detector;
        let limits = ctx.stream_limits;
        {
            let TcpDir { reasm, tls, finished } = &mut dirs[dir.index()];
            if tcp.syn {
                reasm.on_syn(tcp.seq);
            } else if !reasm.is_started() {
                tls.starts_mid_stream();
            }
            let seq = if tcp.syn { tcp.seq.wrapping_add(1) } else { tcp.seq };
            if tls.is_off() {
                reasm.discard(&mut ctx.budget);
            } else if !pkt.payload.is_empty() || pkt.missing > 0 || tcp.fin {
                reasm.segment(seq, pkt.payload, pkt.missing, tcp.fin, &ctx.reassembly, &mut ctx.budget, &mut |chunk| {
                    tls.feed(chunk, ts, dir, detector, &limits)
                });
            }
            if reasm.is_finished() && !*finished {
                *finished = true;
                tls.finish(ts, dir, detector);
            }
        }
        // Only this direction's stream changed: account for it, and look at the other one only when
        // this one alone could not decide (its lines stay out of the cache otherwise).
        let d = dir.index();
        let (this, other) = match dirs {
            [orig, resp] if d == 0 => (orig, &*resp),
            [orig, resp] => (resp, &*orig),
        };
        let held = this.tls.buffered_bytes();
        let accounted = &mut self.accounted[d];
        if held != *accounted {
            if held > *accounted {
                ctx.budget.take(held - *accounted);
            } else {
                ctx.budget.release(*accounted - held);
            }
            *accounted = held;
        }
        let all_finished = this.finished && other.finished;
        if this.tls.is_off() && other.tls.is_off() {
            self.ignored = true;
            for d in dirs.iter_mut() {
                d.reasm.discard(&mut ctx.budget);
            }
        }
        ctx.drain(detector);
        all_finished
    }
}
