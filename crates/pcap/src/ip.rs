//! From a captured frame to a TCP segment or UDP datagram: link layers (Ethernet with VLAN tags,
//! Linux cooked SLL/SLL2, raw IP, BSD loopback), IPv4/IPv6 through etherparse's lax parser (so that
//! snaplen-cut packets still yield their headers), and IP fragment reassembly with caps. Checksums are
//! never verified: offloading makes bad ones common and they say nothing about the payload.

use std::collections::HashMap;
use std::net::IpAddr;

use etherparse::defrag::IpDefragBuf;
use etherparse::{EtherType, Ethernet2Slice, IpFragOffset, IpNumber, Ipv6ExtensionSlice, LaxIpSlice, SingleVlanSlice, TcpSlice, UdpSlice};
use pcap_parser::data::{get_packetdata, PacketData};
use pcap_parser::Linktype;

use crate::timestamp::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TcpInfo {
    pub seq: u32,
    pub syn: bool,
    pub ack: bool,
    pub fin: bool,
    pub rst: bool,
}

/// A transport-layer packet ready for the flow table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct L4Packet<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    /// `None` for UDP.
    pub tcp: Option<TcpInfo>,
    pub payload: &'a [u8],
    /// Payload bytes that were on the wire but not captured (snaplen).
    pub missing: u32,
}

/// Counters the decoder keeps for the file statistics.
#[derive(Debug, Default, Clone)]
pub(crate) struct DecodeStats {
    pub ip_packets: u64,
    pub non_ip_packets: u64,
    pub undecodable_packets: u64,
    pub ip_fragments: u64,
    pub reassembled_datagrams: u64,
    pub fragments_dropped: u64,
    pub unsupported_linktypes: Vec<i32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FragKey {
    src: IpAddr,
    dst: IpAddr,
    protocol: u8,
    id: u32,
}

struct FragEntry {
    buf: IpDefragBuf,
    first_seen: Timestamp,
    bytes: usize,
}

/// Limits for IP reassembly. Fragments are rare in TLS traffic but cheap to abuse, so everything is
/// capped: datagrams in progress, bytes held, and how long an incomplete datagram waits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FragLimits {
    pub max_datagrams: usize,
    pub max_bytes: usize,
    pub timeout_ns: i64,
}

struct FragmentPool {
    entries: HashMap<FragKey, FragEntry>,
    bytes: usize,
    limits: FragLimits,
    last_sweep: Timestamp,
}

impl FragmentPool {
    fn new(limits: FragLimits) -> Self {
        FragmentPool { entries: HashMap::new(), bytes: 0, limits, last_sweep: Timestamp::default() }
    }

    fn sweep(&mut self, now: Timestamp, stats: &mut DecodeStats) {
        if now.0.saturating_sub(self.last_sweep.0) < Timestamp::NANOS_PER_SEC {
            return;
        }
        self.last_sweep = now;
        let timeout = self.limits.timeout_ns;
        let before = self.entries.len();
        let mut freed = 0;
        self.entries.retain(|_, e| {
            let keep = now.0.saturating_sub(e.first_seen.0) <= timeout;
            if !keep {
                freed += e.bytes;
            }
            keep
        });
        self.bytes -= freed;
        stats.fragments_dropped += (before - self.entries.len()) as u64;
    }

    /// Adds a fragment; returns the whole payload once every piece has arrived.
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        now: Timestamp,
        key: FragKey,
        protocol: IpNumber,
        offset: IpFragOffset,
        more: bool,
        data: &[u8],
        stats: &mut DecodeStats,
    ) -> Option<Vec<u8>> {
        self.sweep(now, stats);
        if !self.entries.contains_key(&key) && self.entries.len() >= self.limits.max_datagrams {
            stats.fragments_dropped += 1;
            return None;
        }
        if self.bytes + data.len() > self.limits.max_bytes {
            stats.fragments_dropped += 1;
            return None;
        }
        let entry = self.entries.entry(key).or_insert_with(|| FragEntry {
            buf: IpDefragBuf::new(protocol, Vec::new(), Vec::new()),
            first_seen: now,
            bytes: 0,
        });
        if entry.buf.add(offset, more, data).is_err() {
            let bytes = entry.bytes;
            self.entries.remove(&key);
            self.bytes -= bytes;
            stats.fragments_dropped += 1;
            return None;
        }
        entry.bytes += data.len();
        self.bytes += data.len();
        if !entry.buf.is_complete() {
            return None;
        }
        let entry = self.entries.remove(&key)?;
        self.bytes -= entry.bytes;
        stats.reassembled_datagrams += 1;
        Some(entry.buf.take_bufs().0)
    }
}

pub(crate) struct Decoder {
    frags: FragmentPool,
    pub stats: DecodeStats,
}

const TCP: IpNumber = IpNumber::TCP;
const UDP: IpNumber = IpNumber::UDP;

impl Decoder {
    pub fn new(limits: FragLimits) -> Self {
        Decoder { frags: FragmentPool::new(limits), stats: DecodeStats::default() }
    }

    /// Decodes one frame and hands its TCP or UDP content to `deliver` (zero or one call).
    pub fn decode(&mut self, ts: Timestamp, linktype: i32, frame: &[u8], mut deliver: impl FnMut(&L4Packet<'_>)) {
        if linktype == LINKTYPE_ETHERNET {
            if let Some(pkt) = plain_tcp_over_ethernet(frame) {
                self.stats.ip_packets += 1;
                deliver(&pkt);
                return;
            }
        }
        self.decode_general(ts, linktype, frame, &mut deliver);
    }

    /// Every link type and every IP and TCP/UDP variant, through etherparse.
    fn decode_general(&mut self, ts: Timestamp, linktype: i32, frame: &[u8], deliver: &mut dyn FnMut(&L4Packet<'_>)) {
        let Some(ip_bytes) = self.link(linktype, frame) else { return };
        let ip = match LaxIpSlice::from_slice(ip_bytes) {
            Ok((ip, _)) => ip,
            Err(_) => {
                self.stats.undecodable_packets += 1;
                return;
            }
        };
        self.stats.ip_packets += 1;
        let (src, dst, payload, frag, declared) = match &ip {
            LaxIpSlice::Ipv4(v4) => {
                let h = v4.header();
                let frag = v4.payload().fragmented.then(|| {
                    (
                        FragKey { src: h.source_addr().into(), dst: h.destination_addr().into(), protocol: h.protocol().0, id: u32::from(h.identification()) },
                        h.fragments_offset(),
                        h.more_fragments(),
                    )
                });
                let header_len = usize::from(h.ihl()) * 4;
                let declared = usize::from(h.total_len()).saturating_sub(header_len);
                (IpAddr::from(h.source_addr()), IpAddr::from(h.destination_addr()), v4.payload(), frag, declared)
            }
            LaxIpSlice::Ipv6(v6) => {
                let h = v6.header();
                let (src, dst) = (IpAddr::from(h.source_addr()), IpAddr::from(h.destination_addr()));
                let frag = v6.payload().fragmented.then(|| {
                    v6.extensions().clone().into_iter().find_map(|ext| match ext {
                        Ipv6ExtensionSlice::Fragment(f) => Some((
                            FragKey { src, dst, protocol: v6.payload().ip_number.0, id: f.identification() },
                            f.fragment_offset(),
                            f.more_fragments(),
                        )),
                        _ => None,
                    })
                });
                let declared = usize::from(h.payload_length()).saturating_sub(v6.extensions().slice().len());
                (src, dst, v6.payload(), frag.flatten(), declared)
            }
        };
        let protocol = payload.ip_number;
        if protocol != TCP && protocol != UDP {
            return;
        }
        if payload.fragmented {
            self.stats.ip_fragments += 1;
            let Some((key, offset, more)) = frag else {
                self.stats.undecodable_packets += 1;
                return;
            };
            if payload.incomplete {
                // A cut fragment can never complete its datagram.
                self.stats.fragments_dropped += 1;
                return;
            }
            if let Some(whole) = self.frags.add(ts, key, protocol, offset, more, payload.payload, &mut self.stats) {
                self.deliver_transport(src, dst, protocol, &whole, 0, deliver);
            }
            return;
        }
        let missing = if payload.incomplete { declared.saturating_sub(payload.payload.len()) as u32 } else { 0 };
        self.deliver_transport(src, dst, protocol, payload.payload, missing, deliver);
    }

    fn deliver_transport(&mut self, src: IpAddr, dst: IpAddr, protocol: IpNumber, data: &[u8], missing: u32, deliver: &mut dyn FnMut(&L4Packet<'_>)) {
        if protocol == TCP {
            match TcpSlice::from_slice(data) {
                Ok(tcp) => deliver(&tcp_packet(src, dst, &tcp, missing)),
                // The transport header itself was cut or malformed.
                Err(_) => self.stats.undecodable_packets += 1,
            }
        } else if protocol == UDP {
            match UdpSlice::from_slice_lax(data) {
                Ok(udp) => deliver(&L4Packet {
                    src,
                    dst,
                    sport: udp.source_port(),
                    dport: udp.destination_port(),
                    tcp: None,
                    payload: udp.payload(),
                    missing,
                }),
                Err(_) => self.stats.undecodable_packets += 1,
            }
        }
    }

    /// Strips the link layer and any VLAN tags, returning the IP packet. `None` when the frame carries
    /// no IP (counted).
    fn link<'a>(&mut self, linktype: i32, frame: &'a [u8]) -> Option<&'a [u8]> {
        let (ether_type, rest) = match linktype {
            1 => match Ethernet2Slice::from_slice_without_fcs(frame) {
                Ok(eth) => (eth.ether_type(), eth.payload().payload),
                Err(_) => {
                    self.stats.undecodable_packets += 1;
                    return None;
                }
            },
            // BSD loopback: a 4-byte address family in the capturing host's byte order (NULL) or in
            // network order (LOOP). 2 is IPv4; 24, 28 and 30 are the BSDs' IPv6 values.
            0 | 108 => {
                let Some(f) = frame.get(..4) else {
                    self.stats.undecodable_packets += 1;
                    return None;
                };
                let values = [u32::from_le_bytes([f[0], f[1], f[2], f[3]]), u32::from_be_bytes([f[0], f[1], f[2], f[3]])];
                if !values.iter().any(|v| matches!(v, 2 | 24 | 28 | 30)) {
                    self.stats.non_ip_packets += 1;
                    return None;
                }
                return frame.get(4..);
            }
            // Raw IP under its several link type numbers.
            101 | 12 | 14 | 228 | 229 => return Some(frame),
            // Linux cooked captures v1 and v2.
            113 | 276 => match get_packetdata(frame, Linktype(linktype), frame.len()) {
                Some(PacketData::L3(ethertype, rest)) => (EtherType(ethertype), rest),
                Some(_) => {
                    self.stats.non_ip_packets += 1;
                    return None;
                }
                None => {
                    self.stats.undecodable_packets += 1;
                    return None;
                }
            },
            other => {
                if !self.stats.unsupported_linktypes.contains(&other) {
                    self.stats.unsupported_linktypes.push(other);
                }
                self.stats.non_ip_packets += 1;
                return None;
            }
        };
        let (mut ether_type, mut rest) = (ether_type, rest);
        // Up to three stacked VLAN tags (802.1Q, 802.1ad, QinQ).
        for _ in 0..3 {
            if !matches!(ether_type, EtherType::VLAN_TAGGED_FRAME | EtherType::PROVIDER_BRIDGING | EtherType::VLAN_DOUBLE_TAGGED_FRAME) {
                break;
            }
            match SingleVlanSlice::from_slice(rest) {
                Ok(vlan) => {
                    ether_type = vlan.ether_type();
                    rest = vlan.payload().payload;
                }
                Err(_) => {
                    self.stats.undecodable_packets += 1;
                    return None;
                }
            }
        }
        if ether_type == EtherType::IPV4 || ether_type == EtherType::IPV6 {
            Some(rest)
        } else {
            self.stats.non_ip_packets += 1;
            None
        }
    }
}

const LINKTYPE_ETHERNET: i32 = 1;

/// The common case read directly: an untagged Ethernet II frame carrying a whole, unfragmented IPv4
/// packet or an IPv6 packet without extension headers, carrying TCP. Anything else about the frame,
/// (VLAN tags, fragments, extension headers, a snaplen cut, lengths that disagree, a malformed
/// header) gives `None`, and the frame takes etherparse's general path instead. A property test
/// checks that both paths agree on every frame this one accepts: it is only a shortcut.
fn plain_tcp_over_ethernet(frame: &[u8]) -> Option<L4Packet<'_>> {
    // Fixed-size views of each header, so that its fields are read without a check per byte.
    let (eth, ip) = frame.split_first_chunk::<14>()?;
    let (src, dst, segment) = match [eth[12], eth[13]] {
        [0x08, 0x00] => {
            let h = ip.first_chunk::<20>()?;
            let header_len = usize::from(h[0] & 0x0f) * 4;
            let total_len = usize::from(u16::from_be_bytes([h[2], h[3]]));
            let fragment = u16::from_be_bytes([h[6], h[7]]) & 0x3fff; // more-fragments flag and offset
            if h[0] >> 4 != 4 || header_len < 20 || fragment != 0 || h[9] != 6 || total_len < header_len || total_len > ip.len() {
                return None;
            }
            let src = IpAddr::from([h[12], h[13], h[14], h[15]]);
            let dst = IpAddr::from([h[16], h[17], h[18], h[19]]);
            (src, dst, ip.get(header_len..total_len)?)
        }
        [0x86, 0xdd] => {
            let (h, rest) = ip.split_first_chunk::<40>()?;
            let payload_len = usize::from(u16::from_be_bytes([h[4], h[5]]));
            if h[0] >> 4 != 6 || h[6] != 6 {
                return None;
            }
            let src: [u8; 16] = h[8..24].try_into().ok()?;
            let dst: [u8; 16] = h[24..40].try_into().ok()?;
            (IpAddr::from(src), IpAddr::from(dst), rest.get(..payload_len)?)
        }
        _ => return None,
    };
    let t = segment.first_chunk::<20>()?;
    let data_offset = usize::from(t[12] >> 4) * 4;
    if data_offset < 20 {
        return None;
    }
    let flags = t[13];
    Some(L4Packet {
        src,
        dst,
        sport: u16::from_be_bytes([t[0], t[1]]),
        dport: u16::from_be_bytes([t[2], t[3]]),
        tcp: Some(TcpInfo {
            seq: u32::from_be_bytes([t[4], t[5], t[6], t[7]]),
            syn: flags & 0x02 != 0,
            ack: flags & 0x10 != 0,
            fin: flags & 0x01 != 0,
            rst: flags & 0x04 != 0,
        }),
        payload: segment.get(data_offset..)?,
        missing: 0,
    })
}

fn tcp_packet<'a>(src: IpAddr, dst: IpAddr, tcp: &TcpSlice<'a>, missing: u32) -> L4Packet<'a> {
    L4Packet {
        src,
        dst,
        sport: tcp.source_port(),
        dport: tcp.destination_port(),
        tcp: Some(TcpInfo { seq: tcp.sequence_number(), syn: tcp.syn(), ack: tcp.ack(), fin: tcp.fin(), rst: tcp.rst() }),
        payload: tcp.payload(),
        missing,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;
    use proptest::prelude::*;

    fn limits() -> FragLimits {
        FragLimits { max_datagrams: 16, max_bytes: 1 << 20, timeout_ns: 30 * Timestamp::NANOS_PER_SEC }
    }

    fn decode_all(linktype: i32, frame: &[u8]) -> Vec<(IpAddr, u16, Vec<u8>, u32)> {
        let mut d = Decoder::new(limits());
        let mut got = Vec::new();
        d.decode(Timestamp(0), linktype, frame, |p| got.push((p.src, p.sport, p.payload.to_vec(), p.missing)));
        got
    }

    fn tcp_frame(payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ethernet2([1; 6], [2; 6]).ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64).tcp(1234, 443, 7, 1000);
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    }

    #[test]
    fn ethernet_ipv4_tcp_is_decoded() {
        let got = decode_all(1, &tcp_frame(b"hello"));
        assert_eq!(got, vec![(IpAddr::from([10, 0, 0, 1]), 1234, b"hello".to_vec(), 0)]);
    }

    #[test]
    fn snaplen_cut_reports_missing_bytes() {
        let frame = tcp_frame(&[9u8; 100]);
        let got = decode_all(1, &frame[..frame.len() - 40]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].2.len(), 60);
        assert_eq!(got[0].3, 40);
    }

    #[test]
    fn loopback_in_both_byte_orders() {
        let ip = {
            let b = PacketBuilder::ipv6([1; 16], [2; 16], 64).udp(5000, 14436);
            let mut out = Vec::new();
            b.write(&mut out, b"dtls").unwrap();
            out
        };
        for family in [[30u8, 0, 0, 0], [0, 0, 0, 30]] {
            let mut frame = family.to_vec();
            frame.extend_from_slice(&ip);
            let got = decode_all(0, &frame);
            assert_eq!(got.len(), 1, "family {family:?}");
            assert_eq!(got[0].2, b"dtls");
        }
    }

    #[test]
    fn garbage_frames_do_not_panic() {
        for len in 0..80 {
            let frame: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            for lt in [0, 1, 101, 113, 276, 228, 229, 147] {
                let _ = decode_all(lt, &frame);
            }
        }
    }

    /// Ethernet frames around IPv4 or IPv6 TCP, then damaged: lengths, header fields and flags
    /// changed, bytes cut off the end, padding added.
    fn mutated_frame() -> impl Strategy<Value = Vec<u8>> {
        let base = (any::<bool>(), any::<[u8; 4]>(), any::<u16>(), any::<u32>(), any::<u8>(), proptest::collection::vec(any::<u8>(), 0..64), 0u8..4)
            .prop_map(|(v6, addr, port, seq, flags, payload, options)| {
                let mut tcp = etherparse::TcpHeader::new(port, 443, seq, 1000);
                tcp.syn = flags & 2 != 0;
                tcp.ack = flags & 16 != 0;
                tcp.fin = flags & 1 != 0;
                tcp.rst = flags & 4 != 0;
                if options > 0 {
                    let noops = vec![etherparse::TcpOptionElement::Noop; usize::from(options)];
                    let _ = tcp.set_options(&noops);
                }
                let builder = PacketBuilder::ethernet2([1; 6], [2; 6]);
                let ip = if v6 {
                    builder.ipv6([addr[0]; 16], [addr[1]; 16], 64)
                } else {
                    builder.ipv4(addr, [10, 0, 0, 2], 64)
                };
                let mut out = Vec::new();
                ip.tcp_header(tcp).write(&mut out, &payload).unwrap();
                out
            });
        (base, proptest::collection::vec((0usize..80, any::<u8>()), 0..4), 0usize..100, 0usize..8).prop_map(|(mut frame, edits, cut, padding)| {
            for (at, value) in edits {
                if let Some(b) = frame.get_mut(at) {
                    *b = value;
                }
            }
            let keep = frame.len().saturating_sub(cut % 8 * (cut / 8 % 2));
            frame.truncate(keep);
            // Ethernet pads short frames: bytes after the IP packet that are not part of it.
            frame.extend(std::iter::repeat_n(0xee, padding));
            frame
        })
    }

    proptest! {
        /// The shortcut for plain TCP over Ethernet gives exactly what the general path gives, for
        /// every frame it accepts.
        #[test]
        fn shortcut_agrees_with_etherparse(frame in mutated_frame()) {
            if let Some(fast) = plain_tcp_over_ethernet(&frame) {
                let mut d = Decoder::new(limits());
                let mut general = Vec::new();
                d.decode_general(Timestamp(0), 1, &frame, &mut |p| general.push((p.src, p.dst, p.sport, p.dport, p.tcp, p.payload.to_vec(), p.missing)));
                prop_assert_eq!(general, vec![(fast.src, fast.dst, fast.sport, fast.dport, fast.tcp, fast.payload.to_vec(), fast.missing)]);
                prop_assert_eq!(d.stats.ip_packets, 1);
            }
        }
    }

    #[test]
    fn shortcut_takes_plain_frames_and_leaves_the_rest() {
        assert!(plain_tcp_over_ethernet(&tcp_frame(b"hello")).is_some());
        let v6 = {
            let mut out = Vec::new();
            PacketBuilder::ethernet2([1; 6], [2; 6]).ipv6([1; 16], [2; 16], 64).tcp(1, 2, 3, 4).write(&mut out, b"x").unwrap();
            out
        };
        assert!(plain_tcp_over_ethernet(&v6).is_some());
        let frame = tcp_frame(&[9u8; 100]);
        assert!(plain_tcp_over_ethernet(&frame[..frame.len() - 40]).is_none(), "a snaplen cut");
        let mut fragment = tcp_frame(b"hello");
        fragment[14 + 6] |= 0x20; // more fragments
        assert!(plain_tcp_over_ethernet(&fragment).is_none());
        let udp = {
            let mut out = Vec::new();
            PacketBuilder::ethernet2([1; 6], [2; 6]).ipv4([1; 4], [2; 4], 64).udp(1, 2).write(&mut out, b"x").unwrap();
            out
        };
        assert!(plain_tcp_over_ethernet(&udp).is_none());
    }

    #[test]
    fn ipv4_fragments_are_reassembled_in_any_order() {
        let payload: Vec<u8> = (0..200u8).collect();
        let b = PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64).udp(1, 2);
        let mut whole = Vec::new();
        b.write(&mut whole, &payload).unwrap();
        let udp = &whole[20..];
        let mut d = Decoder::new(limits());
        let mut got = Vec::new();
        let pieces = [(64usize, udp.len(), false), (0, 64, true)];
        for (start, end, more) in pieces {
            let mut h = etherparse::Ipv4Header::new((end - start) as u16, 64, IpNumber::UDP, [10, 0, 0, 1], [10, 0, 0, 2]).unwrap();
            h.identification = 77;
            h.more_fragments = more;
            h.fragment_offset = IpFragOffset::try_new((start / 8) as u16).unwrap();
            let mut frame = Vec::new();
            h.write(&mut frame).unwrap();
            frame.extend_from_slice(&udp[start..end]);
            d.decode(Timestamp(0), 101, &frame, |p| got.push(p.payload.to_vec()));
        }
        assert_eq!(got, vec![payload]);
        assert_eq!(d.stats.reassembled_datagrams, 1);
    }
}
