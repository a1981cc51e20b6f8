//! Streaming pcap / pcapng reading on top of `pcap-parser`: one bounded buffer whatever the file
//! size, timestamps normalised to nanoseconds, and damage mid-file turned into a partial result with a
//! warning instead of an error or a panic. nom types stay inside this module.

use std::cell::Cell;
use std::io::{Cursor, Read};
use std::rc::Rc;

use pcap_parser::pcapng::Block;
use pcap_parser::traits::{PcapNGPacketBlock, PcapReaderIterator};
use pcap_parser::{EnhancedPacketBlock, LegacyPcapBlock, LegacyPcapReader, Linktype, PcapBlockOwned, PcapError as RawError, PcapNGReader};

use crate::error::PcapError;
use crate::timestamp::Timestamp;

/// One captured frame as stored in the file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Packet<'a> {
    pub ts: Timestamp,
    pub linktype: i32,
    pub data: &'a [u8],
    /// Length on the wire; larger than `data.len()` when the capture's snaplen cut the frame.
    pub orig_len: u32,
}

/// What the reader saw besides packets.
#[derive(Debug, Default)]
pub(crate) struct ReadOutcome {
    pub format: &'static str,
    pub warnings: Vec<String>,
    pub partial: bool,
    /// The largest the parser's buffer grew (bytes).
    pub largest_buffer: usize,
}

/// The largest the parser's buffer grows for reading (a block larger than this grows it further, up
/// to the block cap): large reads keep big files fast.
const READ_BUFFER: usize = 1 << 20;
/// The smallest parser buffer.
const MIN_BUFFER: usize = 4 * 1024;
/// How much of the file is read before deciding what it is (also the first fill of the parser).
const SNIFF_LEN: usize = 64 * 1024;
const PCAP_MAGICS: [[u8; 4]; 6] = [
    [0xd4, 0xc3, 0xb2, 0xa1], // microseconds, little-endian
    [0xa1, 0xb2, 0xc3, 0xd4], // microseconds, big-endian
    [0x4d, 0x3c, 0xb2, 0xa1], // nanoseconds, little-endian
    [0xa1, 0xb2, 0x3c, 0x4d], // nanoseconds, big-endian
    [0x34, 0xcd, 0xb2, 0xa1], // Kuznetzov's modified pcap, little-endian
    [0xa1, 0xb2, 0xcd, 0x34], // modified pcap, big-endian
];
const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];

/// Counts bytes as the parser pulls them, for progress reporting.
struct CountingReader<R> {
    inner: R,
    count: Rc<Cell<u64>>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// Reads until `buf` is full or the input ends (a pipe may deliver a few bytes per read).
fn read_prefix<R: Read>(reader: &mut R, limit: usize) -> std::io::Result<Vec<u8>> {
    let mut prefix = Vec::with_capacity(limit);
    reader.take(limit as u64).read_to_end(&mut prefix)?;
    Ok(prefix)
}

struct Interface {
    linktype: i32,
    units_per_sec: u64,
    offset_secs: i64,
}

fn pcapng_timestamp(ts_high: u32, ts_low: u32, iface: &Interface) -> Timestamp {
    let units = (u64::from(ts_high) << 32) | u64::from(ts_low);
    let per_sec = iface.units_per_sec.max(1);
    let secs = (units / per_sec) as i64;
    let nanos = (u128::from(units % per_sec) * 1_000_000_000 / u128::from(per_sec)) as i64;
    Timestamp::from_secs_nanos(secs.saturating_add(iface.offset_secs), nanos)
}

/// The first bytes of a gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Reads every packet of a pcap or pcapng stream, gzip-compressed or not (`.pcap.gz`, told by its
/// content), calling `on_packet` for each and `on_progress` with the number of bytes read so far
/// (compressed bytes, for a compressed file). Errors only when the input is not a capture at all.
pub(crate) fn read_capture<R: Read>(
    name: &str,
    reader: R,
    max_block: usize,
    on_packet: &mut dyn FnMut(&Packet<'_>),
    on_progress: &mut dyn FnMut(u64),
) -> Result<ReadOutcome, PcapError> {
    let count = Rc::new(Cell::new(0u64));
    let mut counting = CountingReader { inner: reader, count: Rc::clone(&count) };
    let prefix = read_prefix(&mut counting, SNIFF_LEN).map_err(|source| PcapError::Io { name: name.into(), source })?;
    if prefix.is_empty() {
        return Err(PcapError::Empty { name: name.into() });
    }
    let input = Cursor::new(prefix).chain(counting);
    let outcome = if input.get_ref().0.get_ref().starts_with(&GZIP_MAGIC) {
        // Members one after another, as `cat a.gz b.gz` and some compressors write them. The window
        // is 32 KiB: memory stays bounded whatever the stream holds.
        read_uncompressed(name, flate2::read::MultiGzDecoder::new(input), true, max_block, &count, on_packet, on_progress)?
    } else {
        read_uncompressed(name, input, false, max_block, &count, on_packet, on_progress)?
    };
    on_progress(count.get());
    Ok(outcome)
}

/// [`read_capture`] on the capture's own bytes (decompressed when `gzip`).
fn read_uncompressed<R: Read>(
    name: &str,
    mut reader: R,
    gzip: bool,
    max_block: usize,
    count: &Cell<u64>,
    on_packet: &mut dyn FnMut(&Packet<'_>),
    on_progress: &mut dyn FnMut(u64),
) -> Result<ReadOutcome, PcapError> {
    let prefix = read_prefix(&mut reader, SNIFF_LEN).map_err(|source| PcapError::Io { name: name.into(), source })?;
    if prefix.is_empty() {
        return Err(PcapError::Empty { name: name.into() });
    }
    let magic: Option<[u8; 4]> = prefix.get(..4).and_then(|m| m.try_into().ok());
    let is_pcapng = magic == Some(PCAPNG_MAGIC);
    let is_pcap = magic.is_some_and(|m| PCAP_MAGICS.contains(&m));
    if !is_pcap && !is_pcapng {
        let first: Vec<String> = prefix.iter().take(8).map(|b| format!("{b:02x}")).collect();
        let first_bytes = if gzip { format!("{} (after gzip decompression)", first.join(" ")) } else { first.join(" ") };
        return Err(PcapError::NotACapture { name: name.into(), first_bytes });
    }
    let capacity = initial_buffer(prefix.len());
    let input = Cursor::new(prefix).chain(reader);
    let bad_header = |e: RawError<&'static [u8]>| PcapError::BadHeader { name: name.into(), detail: describe(&e) };
    let format = match (is_pcapng, gzip) {
        (true, false) => "pcapng",
        (true, true) => "pcapng (gzip)",
        (false, false) => "pcap",
        (false, true) => "pcap (gzip)",
    };
    let mut outcome = ReadOutcome { format, ..ReadOutcome::default() };
    if is_pcapng {
        let mut parser = PcapNGReader::new(capacity, input).map_err(bad_header)?;
        drive(&mut parser, Format::Pcapng, capacity, max_block, count, &mut outcome, on_packet, on_progress);
    } else {
        let big_endian = magic.is_some_and(|m| m[0] == 0xa1);
        let modified = magic.is_some_and(|m| m[1] == 0xcd || m[2] == 0xcd);
        let mut parser = LegacyPcapReader::new(capacity, input).map_err(bad_header)?;
        drive(&mut parser, Format::Pcap { big_endian, modified }, capacity, max_block, count, &mut outcome, on_packet, on_progress);
    }
    Ok(outcome)
}

/// The parser's first buffer size. An input shorter than the sniffed prefix is already whole in
/// memory, and a buffer just larger than it is all it needs (a short capture, or a fuzzer's input,
/// should not pay for zeroing 1 MiB); a longer one starts a little larger than the prefix and grows
/// as the stream goes on ([`drive`]).
fn initial_buffer(prefix_len: usize) -> usize {
    prefix_len.saturating_add(1).next_power_of_two().clamp(MIN_BUFFER, READ_BUFFER)
}

#[derive(Debug, Clone, Copy)]
enum Format {
    Pcap { big_endian: bool, modified: bool },
    Pcapng,
}

type FrameParser = for<'a> fn(&'a [u8]) -> pcap_parser::nom::IResult<&'a [u8], LegacyPcapBlock<'a>, RawError<&'a [u8]>>;
type EpbParser = for<'a> fn(&'a [u8]) -> pcap_parser::nom::IResult<&'a [u8], EnhancedPacketBlock<'a>, RawError<&'a [u8]>>;

/// pcap-parser's record parser for a legacy capture (as its reader picks it).
fn frame_parser(format: Format) -> Option<FrameParser> {
    use pcap_parser::pcap::{parse_pcap_frame, parse_pcap_frame_be, parse_pcap_frame_modified};
    match format {
        Format::Pcap { modified: true, .. } => Some(parse_pcap_frame_modified),
        Format::Pcap { big_endian: true, .. } => Some(parse_pcap_frame_be),
        Format::Pcap { .. } => Some(parse_pcap_frame),
        Format::Pcapng => None,
    }
}

/// The packets already in the buffer, read without the reader's per-block enum: legacy records, or
/// pcapng enhanced packet blocks in the current section's byte order. Stops at anything else (a
/// header, another block type, a block cut by the buffer's end, damage), which the reader takes.
/// Returns the bytes used.
fn read_buffered(data: &[u8], format: Format, state: &mut BlockState, warnings: &mut Vec<String>, on_packet: &mut dyn FnMut(&Packet<'_>)) -> usize {
    let mut used = 0;
    if let Some(parse) = frame_parser(format).filter(|_| state.legacy_header_seen) {
        while let Ok((rest, frame)) = parse(&data[used..]) {
            used = data.len() - rest.len();
            on_packet(&state.legacy_packet(&frame));
        }
    } else if let Some(big_endian) = state.ng_section_big_endian {
        use pcap_parser::pcapng::{parse_enhancedpacketblock_be, parse_enhancedpacketblock_le, EPB_MAGIC};
        let parse: EpbParser = if big_endian { parse_enhancedpacketblock_be } else { parse_enhancedpacketblock_le };
        while let Some(kind) = data.get(used..used + 4).and_then(|b| b.try_into().ok()) {
            let kind = if big_endian { u32::from_be_bytes(kind) } else { u32::from_le_bytes(kind) };
            if kind != EPB_MAGIC {
                break;
            }
            let Ok((rest, epb)) = parse(&data[used..]) else { break };
            used = data.len() - rest.len();
            if let Some(packet) = state.enhanced_packet(&epb, warnings) {
                on_packet(&packet);
            }
        }
    }
    used
}

/// The size the next block claims, read from its header (for pcapng, the smaller of the two byte
/// orders, since a section may use either).
fn claimed_block_size(format: Format, data: &[u8]) -> Option<usize> {
    let word = |at: usize| -> Option<[u8; 4]> { data.get(at..at + 4)?.try_into().ok() };
    match format {
        Format::Pcap { big_endian, .. } => {
            let caplen = word(8)?;
            let caplen = if big_endian { u32::from_be_bytes(caplen) } else { u32::from_le_bytes(caplen) };
            Some(caplen as usize + 16)
        }
        Format::Pcapng => {
            let len = word(4)?;
            Some(u32::from_le_bytes(len).min(u32::from_be_bytes(len)) as usize)
        }
    }
}

/// Reads more input into the parser's buffer; false (with a warning) on a read error.
fn refill<P: PcapReaderIterator>(parser: &mut P, count: &Cell<u64>, outcome: &mut ReadOutcome) -> bool {
    if parser.refill().is_err() {
        outcome.warnings.push(format!("read error after {} bytes: results are partial", count.get()));
        outcome.partial = true;
        return false;
    }
    true
}

#[allow(clippy::too_many_arguments)]
fn drive<P: PcapReaderIterator>(
    parser: &mut P,
    format: Format,
    initial_capacity: usize,
    max_block: usize,
    count: &Cell<u64>,
    outcome: &mut ReadOutcome,
    on_packet: &mut dyn FnMut(&Packet<'_>),
    on_progress: &mut dyn FnMut(u64),
) {
    let mut state = BlockState::default();
    let mut capacity = initial_capacity;
    let mut last_progress = 0u64;
    loop {
        // Packets already in the buffer are read here, straight into packets; the reader's `next()`
        // below (which wraps every block in its large enum) takes headers, refills, and whatever
        // this stops at.
        let used = read_buffered(parser.data(), format, &mut state, &mut outcome.warnings, on_packet);
        if used > 0 {
            parser.consume_noshift(used);
            continue;
        }
        let step = match parser.next() {
            Ok((used, block)) => {
                state.handle(block, on_packet, &mut outcome.warnings);
                Step::Consume(used)
            }
            Err(RawError::Eof) => Step::Done,
            Err(RawError::Incomplete(_)) => Step::Refill,
            Err(RawError::BufferTooSmall) => Step::Grow,
            Err(RawError::UnexpectedEof) => Step::Truncated,
            Err(e) => Step::Corrupt(describe(&e)),
        };
        match step {
            // No shifting here: the buffer is compacted only when it is refilled, when little is left.
            Step::Consume(used) => parser.consume_noshift(used),
            Step::Refill => {
                if !refill(parser, count, outcome) {
                    break;
                }
                // The input goes on past the buffer: a stream, read in ever larger pieces up to
                // READ_BUFFER.
                if !parser.reader_exhausted() && capacity < READ_BUFFER && parser.grow(capacity * 2) {
                    capacity *= 2;
                }
                if count.get() != last_progress {
                    last_progress = count.get();
                    on_progress(last_progress);
                }
            }
            Step::Grow => {
                // A block larger than the buffer: grow to fit it, but never beyond what a real capture
                // needs, since the size comes from the file.
                let claimed = claimed_block_size(format, parser.data()).unwrap_or(usize::MAX);
                if claimed <= max_block && parser.data().len() < capacity && !parser.reader_exhausted() {
                    // Room left in the buffer: read first. The input may end before the block does
                    // (a truncated file then needs no larger buffer), or the block may yet fit.
                    if !refill(parser, count, outcome) {
                        break;
                    }
                    continue;
                }
                let wanted = claimed.saturating_add(64).next_power_of_two().max(capacity.saturating_mul(2));
                if claimed > max_block || wanted > max_block.saturating_mul(2) || !parser.grow(wanted) {
                    outcome.warnings.push(format!(
                        "a block after {} bytes claims more than {} bytes: file is corrupt, results are partial",
                        parser.consumed(),
                        max_block
                    ));
                    outcome.partial = true;
                    break;
                }
                capacity = wanted;
            }
            Step::Truncated => {
                outcome.warnings.push(format!(
                    "file ends inside a {} after {} bytes (truncated capture): results cover the packets before it",
                    if matches!(format, Format::Pcapng) { "block" } else { "packet record" },
                    parser.consumed()
                ));
                outcome.partial = true;
                break;
            }
            Step::Corrupt(what) => {
                outcome.warnings.push(format!(
                    "corrupt data after {} bytes ({what}): results cover the packets before it",
                    parser.consumed()
                ));
                outcome.partial = true;
                break;
            }
            Step::Done => break,
        }
    }
    outcome.largest_buffer = capacity;
}

enum Step {
    Consume(usize),
    Refill,
    Grow,
    Truncated,
    Corrupt(String),
    Done,
}

/// Describes a pcap-parser error without dumping the input bytes it may carry.
fn describe<I>(e: &RawError<I>) -> String {
    match e {
        RawError::Eof => "end of file".into(),
        RawError::BufferTooSmall => "block larger than the buffer".into(),
        RawError::UnexpectedEof => "unexpected end of file".into(),
        RawError::ReadError => "read error".into(),
        RawError::Incomplete(n) => format!("{n} more bytes needed"),
        RawError::HeaderNotRecognized => "header not recognized".into(),
        RawError::NomError(_, kind) | RawError::OwnedNomError(_, kind) => format!("parse error: {kind:?}"),
    }
}

/// Per-file state the blocks need: the legacy header's link type and precision, pcapng interfaces.
#[derive(Default)]
struct BlockState {
    /// The legacy file header has been read: what follows are packet records.
    legacy_header_seen: bool,
    /// Byte order of the current pcapng section, once its header has been read.
    ng_section_big_endian: Option<bool>,
    legacy_linktype: i32,
    legacy_nanos: bool,
    interfaces: Vec<Interface>,
    last_ts: Timestamp,
    warned_unknown_interface: bool,
}

impl BlockState {
    /// The packet of an enhanced packet block; `None` (with one warning per file) when its interface
    /// was never described.
    fn enhanced_packet<'a>(&mut self, epb: &EnhancedPacketBlock<'a>, warnings: &mut Vec<String>) -> Option<Packet<'a>> {
        let Some(iface) = self.interfaces.get(epb.if_id as usize) else {
            if !self.warned_unknown_interface {
                self.warned_unknown_interface = true;
                warnings.push(format!("packets for undeclared interface {} were skipped", epb.if_id));
            }
            return None;
        };
        let ts = pcapng_timestamp(epb.ts_high, epb.ts_low, iface);
        self.last_ts = ts;
        // The captured bytes without the block's padding (`packet_data()`, for the block's lifetime).
        let data: &'a [u8] = epb.data.get(..epb.caplen as usize).unwrap_or(epb.data);
        Some(Packet { ts, linktype: iface.linktype, data, orig_len: epb.origlen })
    }

    fn legacy_packet<'a>(&mut self, frame: &LegacyPcapBlock<'a>) -> Packet<'a> {
        let frac = if self.legacy_nanos { i64::from(frame.ts_usec) } else { i64::from(frame.ts_usec) * 1_000 };
        let ts = Timestamp::from_secs_nanos(i64::from(frame.ts_sec), frac);
        self.last_ts = ts;
        Packet { ts, linktype: self.legacy_linktype, data: frame.data, orig_len: frame.origlen }
    }

    fn handle(&mut self, block: PcapBlockOwned<'_>, on_packet: &mut dyn FnMut(&Packet<'_>), warnings: &mut Vec<String>) {
        match block {
            PcapBlockOwned::LegacyHeader(header) => {
                self.legacy_header_seen = true;
                self.legacy_linktype = header.network.0;
                self.legacy_nanos = header.is_nanosecond_precision();
            }
            PcapBlockOwned::Legacy(frame) => on_packet(&self.legacy_packet(&frame)),
            PcapBlockOwned::NG(Block::SectionHeader(shb)) => {
                self.ng_section_big_endian = Some(shb.big_endian());
                self.interfaces.clear();
            }
            PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => self.interfaces.push(Interface {
                linktype: idb.linktype.0,
                units_per_sec: idb.ts_resolution().unwrap_or(1_000_000),
                offset_secs: idb.ts_offset(),
            }),
            PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                if let Some(packet) = self.enhanced_packet(&epb, warnings) {
                    on_packet(&packet);
                }
            }
            PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                // Simple packet blocks carry no timestamp and belong to interface 0.
                let Some(iface) = self.interfaces.first() else { return };
                on_packet(&Packet {
                    ts: self.last_ts,
                    linktype: iface.linktype,
                    data: spb.packet_data(),
                    orig_len: spb.origlen,
                });
            }
            PcapBlockOwned::NG(_) => {}
        }
    }
}

/// The link type number as pcap-parser names it, for messages.
pub(crate) fn linktype_name(linktype: i32) -> String {
    format!("{:?}", Linktype(linktype))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn legacy_pcap(packets: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&[0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0]);
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&65535u32.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        for (i, p) in packets.iter().enumerate() {
            out.extend_from_slice(&(1_000 + i as u32).to_le_bytes());
            out.extend_from_slice(&500u32.to_le_bytes());
            out.extend_from_slice(&(p.len() as u32).to_le_bytes());
            out.extend_from_slice(&(p.len() as u32).to_le_bytes());
            out.extend_from_slice(p);
        }
        out
    }

    /// The same records in a big-endian file, or in the "modified" format (24-byte record headers).
    fn legacy_pcap_variant(packets: &[&[u8]], big_endian: bool, modified: bool) -> Vec<u8> {
        let word = |v: u32| if big_endian { v.to_be_bytes() } else { v.to_le_bytes() };
        let mut out = Vec::new();
        out.extend_from_slice(&word(if modified { 0xa1b2_cd34 } else { 0xa1b2_c3d4 }));
        out.extend_from_slice(&(if big_endian { [0, 2, 0, 4] } else { [2, 0, 4, 0] }));
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&word(65535));
        out.extend_from_slice(&word(1));
        for (i, p) in packets.iter().enumerate() {
            out.extend_from_slice(&word(1_000 + i as u32));
            out.extend_from_slice(&word(500));
            out.extend_from_slice(&word(p.len() as u32));
            out.extend_from_slice(&word(p.len() as u32));
            if modified {
                out.extend_from_slice(&[0; 8]);
            }
            out.extend_from_slice(p);
        }
        out
    }

    /// A pcapng section (header, one Ethernet interface in microseconds, enhanced packet blocks) in
    /// either byte order.
    fn pcapng_section(packets: &[&[u8]], big_endian: bool, first_ts: u32) -> Vec<u8> {
        let w32 = |v: u32| if big_endian { v.to_be_bytes() } else { v.to_le_bytes() };
        let w16 = |v: u16| if big_endian { v.to_be_bytes() } else { v.to_le_bytes() };
        let mut out = Vec::new();
        let block = |out: &mut Vec<u8>, kind: u32, body: &[u8]| {
            let len = 12 + body.len() as u32;
            out.extend_from_slice(&w32(kind));
            out.extend_from_slice(&w32(len));
            out.extend_from_slice(body);
            out.extend_from_slice(&w32(len));
        };
        let mut shb = w32(0x1a2b_3c4d).to_vec();
        shb.extend_from_slice(&w16(1));
        shb.extend_from_slice(&w16(0));
        shb.extend_from_slice(&[0xff; 8]);
        block(&mut out, 0x0a0d_0d0a, &shb);
        let mut idb = w16(1).to_vec();
        idb.extend_from_slice(&[0, 0]);
        idb.extend_from_slice(&w32(65535));
        block(&mut out, 1, &idb);
        for (i, p) in packets.iter().enumerate() {
            let micros = u64::from(first_ts + i as u32) * 1_000_000 + 500;
            let mut epb = w32(0).to_vec();
            epb.extend_from_slice(&w32((micros >> 32) as u32));
            epb.extend_from_slice(&w32(micros as u32));
            epb.extend_from_slice(&w32(p.len() as u32));
            epb.extend_from_slice(&w32(p.len() as u32));
            epb.extend_from_slice(p);
            epb.resize(epb.len().next_multiple_of(4), 0);
            block(&mut out, 6, &epb);
        }
        out
    }

    type Collected = (Vec<(Timestamp, Vec<u8>)>, ReadOutcome);

    fn collect(bytes: &[u8]) -> Result<Collected, PcapError> {
        let mut got = Vec::new();
        let outcome = read_capture("t", bytes, 1 << 24, &mut |p| got.push((p.ts, p.data.to_vec())), &mut |_| {})?;
        Ok((got, outcome))
    }

    #[test]
    fn reads_legacy_packets_with_microsecond_timestamps() {
        let file = legacy_pcap(&[b"abc", b"defg"]);
        let (got, outcome) = collect(&file).unwrap();
        assert_eq!(outcome.format, "pcap");
        assert!(!outcome.partial);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, Timestamp::from_secs_nanos(1000, 500_000));
        assert_eq!(got[1].1, b"defg");
    }

    #[test]
    fn big_endian_and_modified_files_read_alike() {
        let packets: [&[u8]; 3] = [b"abc", b"defg", b""];
        let (want, _) = collect(&legacy_pcap(&packets)).unwrap();
        assert_eq!(want.len(), 3);
        for (big_endian, modified) in [(true, false), (false, true)] {
            let (got, outcome) = collect(&legacy_pcap_variant(&packets, big_endian, modified)).unwrap();
            assert!(!outcome.partial, "{:?}", outcome.warnings);
            assert_eq!(got, want, "big-endian {big_endian}, modified {modified}");
        }
    }

    /// Many times the read buffer: records cut by the buffer's end are read whole after a refill.
    #[test]
    fn records_across_buffer_refills_are_all_read() {
        let payloads: Vec<Vec<u8>> = (0..3000u32).map(|i| vec![(i % 251) as u8; 700 + (i as usize * 13) % 900]).collect();
        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        let file = legacy_pcap(&refs);
        assert!(file.len() > 2 * READ_BUFFER);
        let (got, outcome) = collect(&file).unwrap();
        assert!(!outcome.partial);
        assert_eq!(got.len(), payloads.len());
        assert!(got.iter().zip(&payloads).all(|((_, data), want)| data == want));
        // Cut anywhere inside the last record: every record before it, and a warning.
        let (got, outcome) = collect(&file[..file.len() - 100]).unwrap();
        assert_eq!(got.len(), payloads.len() - 1);
        assert!(outcome.partial);
    }

    /// A little-endian section, then a big-endian one: each read in its own byte order.
    #[test]
    fn pcapng_sections_in_both_byte_orders() {
        let mut file = pcapng_section(&[b"abcde", b"fg"], false, 1_000);
        file.extend(pcapng_section(&[b"hij", b""], true, 2_000));
        let (got, outcome) = collect(&file).unwrap();
        assert_eq!(outcome.format, "pcapng");
        assert!(!outcome.partial, "{:?}", outcome.warnings);
        let want: Vec<(Timestamp, Vec<u8>)> = vec![
            (Timestamp::from_secs_nanos(1_000, 500_000), b"abcde".to_vec()),
            (Timestamp::from_secs_nanos(1_001, 500_000), b"fg".to_vec()),
            (Timestamp::from_secs_nanos(2_000, 500_000), b"hij".to_vec()),
            (Timestamp::from_secs_nanos(2_001, 500_000), Vec::new()),
        ];
        assert_eq!(got, want);
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut encoder, bytes).unwrap();
        encoder.finish().unwrap()
    }

    /// `.pcap.gz`: read by content, whole or cut, in one gzip member or several.
    #[test]
    fn gzip_compressed_captures() {
        let payloads: Vec<Vec<u8>> = (0..500u32).map(|i| vec![(i % 7) as u8; 300 + i as usize]).collect();
        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        let file = legacy_pcap(&refs);
        let (want, _) = collect(&file).unwrap();

        let (got, outcome) = collect(&gzip(&file)).unwrap();
        assert_eq!((outcome.format, outcome.partial), ("pcap (gzip)", false));
        assert_eq!(got, want);

        // Two members (as `cat a.gz b.gz` gives), the cut falling inside a packet record.
        let mut two = gzip(&file[..file.len() / 2]);
        two.extend(gzip(&file[file.len() / 2..]));
        assert_eq!(collect(&two).unwrap().0, want);

        // A cut compressed file: the packets before the cut, and a warning.
        let compressed = gzip(&file);
        let (got, outcome) = collect(&compressed[..compressed.len() * 2 / 3]).unwrap();
        assert!(outcome.partial, "{:?}", outcome.warnings);
        assert!(!got.is_empty() && got.len() < want.len() && got[..] == want[..got.len()]);

        // Compressed, but not a capture inside.
        assert!(matches!(collect(&gzip(b"GET / HTTP/1.1\r\n\r\n")), Err(PcapError::NotACapture { first_bytes, .. }) if first_bytes.contains("gzip")));
        // Not even valid gzip after the magic.
        assert!(collect(&[0x1f, 0x8b, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn truncated_last_packet_is_partial_not_error() {
        let file = legacy_pcap(&[b"abc", b"defghij"]);
        let (got, outcome) = collect(&file[..file.len() - 3]).unwrap();
        assert_eq!(got.len(), 1);
        assert!(outcome.partial);
        assert!(outcome.warnings[0].contains("truncated"), "{:?}", outcome.warnings);
    }

    #[test]
    fn garbage_and_empty_inputs_are_clear_errors() {
        assert!(matches!(collect(b""), Err(PcapError::Empty { .. })));
        assert!(matches!(collect(b"GET / HTTP/1.1\r\n"), Err(PcapError::NotACapture { .. })));
        assert!(matches!(collect(&[0xd4, 0xc3, 0xb2, 0xa1, 2, 0]), Err(PcapError::BadHeader { .. })));
    }

    /// A small capture is read with a small buffer: no 1 MiB allocation per input (fuzzers and
    /// short captures pay for zeroing it), even when a cut record claims a large size.
    #[test]
    fn small_captures_get_small_buffers() {
        let file = legacy_pcap(&[b"abc", &[7u8; 1500]]);
        let (got, outcome) = collect(&file).unwrap();
        assert_eq!(got.len(), 2);
        assert!(outcome.largest_buffer <= MIN_BUFFER, "{}", outcome.largest_buffer);
        let (got, outcome) = collect(&gzip(&file)).unwrap();
        assert_eq!(got.len(), 2);
        assert!(outcome.largest_buffer <= MIN_BUFFER, "{}", outcome.largest_buffer);

        // A last record claiming 8 MB (under the block cap) in a 2 KB file: truncated, and no
        // buffer grown for it.
        let mut cut = legacy_pcap(&[b"abc"]);
        cut.extend_from_slice(&[0; 8]);
        cut.extend_from_slice(&8_000_000u32.to_le_bytes());
        cut.extend_from_slice(&8_000_000u32.to_le_bytes());
        cut.extend_from_slice(&[0; 2000]);
        let (got, outcome) = collect(&cut).unwrap();
        assert_eq!(got.len(), 1);
        assert!(outcome.partial && outcome.warnings[0].contains("truncated"), "{:?}", outcome.warnings);
        assert!(outcome.largest_buffer <= MIN_BUFFER, "{}", outcome.largest_buffer);
    }

    /// A long capture is read in large pieces (the buffer grows to READ_BUFFER), and a record
    /// larger than that still grows it to fit.
    #[test]
    fn long_captures_grow_the_buffer() {
        let payloads: Vec<Vec<u8>> = (0..2000u32).map(|i| vec![(i % 251) as u8; 1400]).collect();
        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        let (got, outcome) = collect(&legacy_pcap(&refs)).unwrap();
        assert_eq!(got.len(), payloads.len());
        assert_eq!(outcome.largest_buffer, READ_BUFFER);

        let big = vec![9u8; 3 * READ_BUFFER];
        let (got, outcome) = collect(&legacy_pcap(&[b"abc", &big, b"de"])).unwrap();
        assert!(!outcome.partial, "{:?}", outcome.warnings);
        assert_eq!(got.iter().map(|(_, d)| d.len()).collect::<Vec<_>>(), [3, big.len(), 2]);
        assert!(outcome.largest_buffer > big.len());
    }

    #[test]
    fn absurd_record_length_stops_with_warning() {
        let mut file = legacy_pcap(&[b"abc"]);
        // A record header claiming 3 GB.
        file.extend_from_slice(&[0; 8]);
        file.extend_from_slice(&3_000_000_000u32.to_le_bytes());
        file.extend_from_slice(&3_000_000_000u32.to_le_bytes());
        file.extend_from_slice(&[0; 100]);
        let (got, outcome) = collect(&file).unwrap();
        assert_eq!(got.len(), 1);
        assert!(outcome.partial);
    }

    #[test]
    fn pcapng_timestamps_use_interface_resolution() {
        let iface = Interface { linktype: 1, units_per_sec: 1_000_000_000, offset_secs: 10 };
        let units: u64 = 1_500_000_000;
        let ts = pcapng_timestamp((units >> 32) as u32, units as u32, &iface);
        assert_eq!(ts, Timestamp::from_secs_nanos(11, 500_000_000));
    }
}
