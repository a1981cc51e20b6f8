//! One direction of a reassembled TCP stream, seen as TLS records.
//!
//! Record headers are parsed with `wire`'s [`RecordHeader::parse`], so "is this TLS" and the size caps
//! are exactly the scanner's. Unlike `wire`'s `Deframer`, record bodies are not buffered: a passive
//! monitor with many flows only needs the first three bytes of a heartbeat, the handshake bytes up to
//! the hello (fed to `wire`'s `HandshakeReassembler`) and the lengths, so application data is skipped
//! in place without a copy. A property test checks that this walk yields the same records as the
//! `Deframer` for any segmentation.
//!
//! TLS is found by content on any port: a stream whose first bytes are not a record is scanned
//! (bounded) for a ClientHello or ServerHello record, which is how STARTTLS upgrades (SMTP, IMAP, POP3,
//! FTP, XMPP, LDAP, PostgreSQL, ...) look on the wire. After a loss, or when the capture starts in the
//! middle of a connection, the walk resynchronises on two consecutive plausible record headers.

use bleedwatch_wire::handshake::{HandshakeReassembler, ServerHello};
use bleedwatch_wire::record::{RecordHeader, HEADER_LEN, MAX_CIPHERTEXT_LEN, MAX_FRAGMENT_LEN};
use bleedwatch_wire::{ContentType, HandshakeType, ProtocolVersion};

use crate::tcp::Chunk;
use crate::timestamp::Timestamp;

/// Direction within a connection: from the originator (client) or from the responder (server).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Dir {
    Orig = 0,
    Resp = 1,
}

impl Dir {
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn other(self) -> Dir {
        match self {
            Dir::Orig => Dir::Resp,
            Dir::Resp => Dir::Orig,
        }
    }
}

/// Body bytes kept of each record: a heartbeat's type and claimed length (3 bytes), then the first
/// 16 bytes of its payload, by which a response is matched to the request it echoes. They live only
/// while the record is handled and are never reported.
pub(crate) const HEAD_LEN: usize = 3 + 16;

/// A record as the detector sees it: header fields, the first bytes of the body, and how much of the
/// body actually reached us (less than `length` after a loss or at the end of a cut capture).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordInfo {
    pub content_type: ContentType,
    pub version: ProtocolVersion,
    pub length: u16,
    /// The first body bytes, contiguous (`head_len` of them).
    pub head: [u8; HEAD_LEN],
    pub head_len: u8,
    pub observed: u32,
    /// The sender had switched to encryption (ChangeCipherSpec seen, or application data).
    pub encrypted: bool,
}

/// What a TLS stream reports to whoever watches the connection.
pub(crate) trait TlsEvents {
    fn record(&mut self, dir: Dir, ts: Timestamp, rec: &RecordInfo);
    fn server_hello(&mut self, dir: Dir, hello: &ServerHello<'_>);
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct StreamLimits {
    /// Plaintext bytes examined for a STARTTLS upgrade before giving up on a stream.
    pub starttls_scan: usize,
    /// Bytes kept while looking for record boundaries after a loss.
    pub resync_window: usize,
    /// Total bytes examined while resynchronising before giving up on a stream.
    pub resync_total: usize,
    /// Handshake bytes collected while waiting for a hello.
    pub max_handshake: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Nothing seen yet from a stream whose start we saw.
    Start,
    /// Skipping an SSLv2-format ClientHello (old scanners) before TLS records follow.
    Sslv2Skip(usize),
    Records,
    /// Plaintext so far: looking for a hello record (STARTTLS).
    ScanHello,
    /// Lost our place (loss, or a capture that starts mid-connection): looking for record boundaries.
    Resync,
    /// Not TLS, or beyond our scanning budget: ignore the rest.
    Off,
}

#[derive(Debug, Clone, Copy)]
struct Current {
    header: RecordHeader,
    remaining: usize,
    observed: usize,
    head: [u8; HEAD_LEN],
    head_len: u8,
    /// A loss inside the first three body bytes: `head` cannot be completed.
    head_broken: bool,
    /// A loss after them: `head` keeps what came before it.
    head_closed: bool,
}

enum Examined {
    /// TLS starts at this offset (the mode has been switched).
    Found(usize),
    /// Keep the bytes from this offset and wait for more.
    NeedMore(usize),
    /// Nothing here; keep the bytes from this offset (a possible start cut by the buffer's end).
    Nothing(usize),
}

#[derive(Debug)]
pub(crate) struct TlsStream {
    mode: Mode,
    hdr: [u8; HEADER_LEN],
    hdr_len: usize,
    cur: Option<Current>,
    encrypted: bool,
    handshake: Option<HandshakeReassembler>,
    handshake_bytes: usize,
    /// Bytes kept while detecting, scanning or resynchronising.
    buf: Vec<u8>,
    scanned: usize,
    pub records: u64,
    pub resyncs: u32,
}

impl TlsStream {
    pub fn new() -> Self {
        TlsStream {
            mode: Mode::Start,
            hdr: [0; HEADER_LEN],
            hdr_len: 0,
            cur: None,
            encrypted: false,
            handshake: Some(HandshakeReassembler::default()),
            handshake_bytes: 0,
            buf: Vec::new(),
            scanned: 0,
            records: 0,
            resyncs: 0,
        }
    }

    /// The stream's beginning was not seen: find record boundaries instead of expecting one at once.
    pub fn starts_mid_stream(&mut self) {
        if self.mode == Mode::Start {
            self.mode = Mode::Resync;
        }
    }

    pub fn is_off(&self) -> bool {
        self.mode == Mode::Off
    }

    /// Bytes this stream holds in its own buffers (for the overall memory account).
    pub fn buffered_bytes(&self) -> usize {
        self.buf.capacity() + self.handshake_bytes
    }

    pub fn feed<E: TlsEvents>(&mut self, chunk: Chunk<'_>, ts: Timestamp, dir: Dir, ev: &mut E, limits: &StreamLimits) {
        match chunk {
            Chunk::Data(data) => self.on_data(data, ts, dir, ev, limits),
            Chunk::Gap(n) => self.on_gap(n, ts, dir, ev),
        }
    }

    /// The stream ended: a record still open is reported with what arrived of it.
    pub fn finish<E: TlsEvents>(&mut self, ts: Timestamp, dir: Dir, ev: &mut E) {
        if self.cur.is_some() {
            self.complete_record(ts, dir, ev);
        }
        self.stop_handshake();
        self.buf = Vec::new();
        self.mode = Mode::Off;
    }

    fn on_data<E: TlsEvents>(&mut self, data: &[u8], ts: Timestamp, dir: Dir, ev: &mut E, limits: &StreamLimits) {
        if data.is_empty() || self.mode == Mode::Off {
            return;
        }
        if self.mode == Mode::Start && self.buf.is_empty() && matches!(RecordHeader::parse(data), Ok(Some(_))) {
            // The usual start of a TLS stream: no need to buffer anything.
            self.mode = Mode::Records;
        }
        if self.mode == Mode::Records && self.buf.is_empty() {
            // The common case: walk the bytes where they lie.
            match self.walk(data, ts, dir, ev, limits) {
                None => return,
                Some(stop) => {
                    self.enter_resync();
                    self.buf.extend_from_slice(&data[stop..]);
                }
            }
        } else {
            self.buf.extend_from_slice(data);
        }
        self.process_buffer(ts, dir, ev, limits);
    }

    fn enter_resync(&mut self) {
        self.mode = Mode::Resync;
        self.resyncs += 1;
        self.cur = None;
        self.hdr_len = 0;
        self.stop_handshake();
    }

    fn stop_handshake(&mut self) {
        self.handshake = None;
        self.handshake_bytes = 0;
    }

    /// Works through `self.buf` until it is used up or more bytes are needed.
    fn process_buffer<E: TlsEvents>(&mut self, ts: Timestamp, dir: Dir, ev: &mut E, limits: &StreamLimits) {
        let buf = std::mem::take(&mut self.buf);
        let mut pos = 0;
        while pos < buf.len() {
            let rest = &buf[pos..];
            match self.mode {
                Mode::Off => {
                    pos = buf.len();
                }
                Mode::Records => match self.walk(rest, ts, dir, ev, limits) {
                    None => pos = buf.len(),
                    Some(stop) => {
                        pos += stop;
                        self.enter_resync();
                    }
                },
                Mode::Sslv2Skip(n) => {
                    let k = n.min(rest.len());
                    pos += k;
                    self.mode = if k == n { Mode::Records } else { Mode::Sslv2Skip(n - k) };
                }
                Mode::Start | Mode::ScanHello | Mode::Resync => match self.examine(rest) {
                    Examined::Found(p) => pos += p,
                    Examined::NeedMore(p) | Examined::Nothing(p) => {
                        pos += p;
                        if self.mode != Mode::Start {
                            self.scanned += p;
                        }
                        let kept = buf.len() - pos;
                        let over = match self.mode {
                            Mode::ScanHello => self.scanned > limits.starttls_scan,
                            Mode::Resync => self.scanned > limits.resync_total,
                            _ => false,
                        };
                        if over {
                            self.mode = Mode::Off;
                            pos = buf.len();
                        } else if self.mode == Mode::Resync && kept > limits.resync_window {
                            // Still nothing: drop the older half and keep looking.
                            let drop = kept / 2;
                            pos += drop;
                            self.scanned += drop;
                        } else {
                            break;
                        }
                    }
                },
            }
        }
        let mut buf = buf;
        buf.drain(..pos.min(buf.len()));
        if buf.is_empty() {
            buf = Vec::new();
        }
        self.buf = buf;
    }

    /// Decides what `bytes` (buffered, not yet records) are. May switch the mode.
    fn examine(&mut self, bytes: &[u8]) -> Examined {
        match self.mode {
            Mode::Start => {
                if bytes.len() < HEADER_LEN {
                    return Examined::NeedMore(0);
                }
                if matches!(RecordHeader::parse(bytes), Ok(Some(_))) {
                    self.mode = Mode::Records;
                    return Examined::Found(0);
                }
                if let Some(len) = sslv2_client_hello_len(bytes) {
                    self.mode = Mode::Sslv2Skip(len);
                    return Examined::Found(0);
                }
                self.mode = Mode::ScanHello;
                self.examine(bytes)
            }
            Mode::ScanHello => match find_hello(bytes) {
                Examined::Found(p) => {
                    self.mode = Mode::Records;
                    Examined::Found(p)
                }
                other => other,
            },
            Mode::Resync => match find_record_chain(bytes) {
                Examined::Found(p) => {
                    self.mode = Mode::Records;
                    Examined::Found(p)
                }
                other => other,
            },
            _ => Examined::Nothing(0),
        }
    }

    /// Walks records in `data`. Returns the offset of a header that is not TLS (the caller resyncs).
    fn walk<E: TlsEvents>(&mut self, data: &[u8], ts: Timestamp, dir: Dir, ev: &mut E, limits: &StreamLimits) -> Option<usize> {
        let mut i = 0;
        while i < data.len() {
            if let Some(cur) = self.cur.as_mut() {
                let n = cur.remaining.min(data.len() - i);
                let piece = &data[i..i + n];
                if usize::from(cur.head_len) < HEAD_LEN && !cur.head_broken && !cur.head_closed {
                    let k = (HEAD_LEN - cur.head_len as usize).min(n);
                    let at = cur.head_len as usize;
                    cur.head[at..at + k].copy_from_slice(&piece[..k]);
                    cur.head_len += k as u8;
                }
                cur.observed += n;
                cur.remaining -= n;
                let feed_handshake = cur.header.content_type == ContentType::HANDSHAKE && !self.encrypted;
                let done = cur.remaining == 0;
                i += n;
                if feed_handshake && self.handshake.is_some() {
                    self.feed_handshake(piece, dir, ev, limits);
                }
                if done {
                    self.complete_record(ts, dir, ev);
                }
            } else if self.hdr_len == 0 && data.len() - i >= HEADER_LEN {
                match RecordHeader::parse(&data[i..]) {
                    Ok(Some(header)) => {
                        i += HEADER_LEN;
                        self.start_record(header, ts, dir, ev);
                    }
                    _ => return Some(i),
                }
            } else {
                let start = i;
                let k = (HEADER_LEN - self.hdr_len).min(data.len() - i);
                self.hdr[self.hdr_len..self.hdr_len + k].copy_from_slice(&data[i..i + k]);
                self.hdr_len += k;
                i += k;
                if self.hdr_len == HEADER_LEN {
                    self.hdr_len = 0;
                    match RecordHeader::parse(&self.hdr) {
                        Ok(Some(header)) => self.start_record(header, ts, dir, ev),
                        // The bad header began in an earlier chunk; resync from what is here.
                        _ => return Some(start),
                    }
                }
            }
        }
        None
    }

    fn start_record<E: TlsEvents>(&mut self, header: RecordHeader, ts: Timestamp, dir: Dir, ev: &mut E) {
        self.cur = Some(Current {
            header,
            remaining: header.length as usize,
            observed: 0,
            head: [0; HEAD_LEN],
            head_len: 0,
            head_broken: false,
            head_closed: false,
        });
        if header.length == 0 {
            self.complete_record(ts, dir, ev);
        }
    }

    fn complete_record<E: TlsEvents>(&mut self, ts: Timestamp, dir: Dir, ev: &mut E) {
        let Some(cur) = self.cur.take() else { return };
        self.records += 1;
        let info = RecordInfo {
            content_type: cur.header.content_type,
            version: cur.header.version,
            length: cur.header.length,
            head: cur.head,
            head_len: if cur.head_broken { 0 } else { cur.head_len },
            observed: cur.observed as u32,
            encrypted: self.encrypted,
        };
        ev.record(dir, ts, &info);
        if cur.header.content_type == ContentType::CHANGE_CIPHER_SPEC || cur.header.content_type == ContentType::APPLICATION_DATA {
            self.encrypted = true;
            self.stop_handshake();
        }
    }

    fn feed_handshake<E: TlsEvents>(&mut self, piece: &[u8], dir: Dir, ev: &mut E, limits: &StreamLimits) {
        // Only the server's hello matters (version and cipher); a stream that starts with a
        // ClientHello is the client's, and nothing in it is needed.
        if self.handshake_bytes + piece.len() > limits.max_handshake || (self.handshake_bytes == 0 && piece.first() != Some(&HandshakeType::SERVER_HELLO.0) && piece.first() != Some(&HandshakeType::HELLO_REQUEST.0)) {
            self.stop_handshake();
            return;
        }
        let Some(hs) = self.handshake.as_mut() else { return };
        hs.push(piece);
        self.handshake_bytes += piece.len();
        let mut done = false;
        loop {
            match hs.next_message() {
                Ok(Some(msg)) => match msg.typ {
                    HandshakeType::SERVER_HELLO => {
                        if let Ok(hello) = ServerHello::parse(msg.body) {
                            ev.server_hello(dir, &hello);
                        }
                        done = true;
                    }
                    HandshakeType::HELLO_REQUEST => continue,
                    _ => done = true,
                },
                Ok(None) => break,
                Err(_) => {
                    done = true;
                }
            }
            if done {
                break;
            }
        }
        if done {
            self.stop_handshake();
        }
    }

    fn on_gap<E: TlsEvents>(&mut self, n: u64, ts: Timestamp, dir: Dir, ev: &mut E) {
        match self.mode {
            Mode::Records => {
                self.stop_handshake();
                if let Some(cur) = self.cur.as_mut() {
                    if cur.head_len < 3 {
                        cur.head_broken = true;
                    }
                    cur.head_closed = true;
                    let remaining = cur.remaining as u64;
                    if n < remaining {
                        // The loss is inside this record: its length keeps us in step.
                        cur.remaining -= n as usize;
                        return;
                    }
                    cur.remaining = 0;
                    self.complete_record(ts, dir, ev);
                    if n == remaining && self.hdr_len == 0 {
                        return;
                    }
                }
                self.enter_resync();
            }
            Mode::Sslv2Skip(k) => {
                if (n as usize) < k {
                    self.mode = Mode::Sslv2Skip(k - n as usize);
                } else if n as usize == k {
                    self.mode = Mode::Records;
                } else {
                    self.enter_resync();
                    self.buf.clear();
                }
            }
            Mode::Start => {
                self.enter_resync();
                self.buf.clear();
            }
            Mode::ScanHello => {
                self.scanned = self.scanned.saturating_add(n as usize);
                self.buf.clear();
            }
            Mode::Resync => {
                self.scanned = self.scanned.saturating_add(n as usize);
                self.buf.clear();
            }
            Mode::Off => {}
        }
    }
}

/// Length to skip for an SSLv2-format ClientHello (2-byte header with the high bit set, message type
/// 1, version SSLv2 or SSLv3/TLS).
fn sslv2_client_hello_len(b: &[u8]) -> Option<usize> {
    let (b0, b1, b2, b3, b4) = (*b.first()?, *b.get(1)?, *b.get(2)?, *b.get(3)?, *b.get(4)?);
    let version_ok = (b3 == 0 && b4 == 2) || (b3 == 3 && b4 <= 3);
    if b0 & 0x80 != 0 && b2 == 1 && version_ok {
        let len = (usize::from(b0 & 0x7f) << 8) | usize::from(b1);
        (len >= 9).then_some(2 + len)
    } else {
        None
    }
}

/// Looks for a handshake record holding a ClientHello or ServerHello: record header, handshake type
/// 1 or 2, a length that fits, and an SSLv3/TLS hello version. Eleven bytes that plaintext protocols
/// essentially never produce by chance.
fn find_hello(bytes: &[u8]) -> Examined {
    const NEEDED: usize = 11;
    let mut from = 0;
    while let Some(off) = bytes[from..].iter().position(|&b| b == ContentType::HANDSHAKE.0) {
        let p = from + off;
        if p + NEEDED > bytes.len() {
            return Examined::NeedMore(p);
        }
        let b = &bytes[p..p + NEEDED];
        let record_len = usize::from(u16::from_be_bytes([b[3], b[4]]));
        let hs_len = (usize::from(b[6]) << 16) | (usize::from(b[7]) << 8) | usize::from(b[8]);
        let plausible = b[1] == 3
            && b[2] <= 4
            && (4..=MAX_CIPHERTEXT_LEN).contains(&record_len)
            && (b[5] == 1 || b[5] == 2)
            && hs_len >= 38
            && (hs_len + 4 <= record_len || record_len == MAX_FRAGMENT_LEN)
            && b[9] == 3
            && b[10] <= 4;
        if plausible {
            return Examined::Found(p);
        }
        from = p + 1;
    }
    Examined::Nothing(bytes.len())
}

/// Looks for two consecutive plausible record headers of the same version.
fn find_record_chain(bytes: &[u8]) -> Examined {
    let mut first_incomplete = None;
    let mut p = 0;
    while p + HEADER_LEN <= bytes.len() {
        let b = bytes[p];
        if (20..=24).contains(&b) {
            if let Ok(Some(h1)) = RecordHeader::parse(&bytes[p..]) {
                let next = p + HEADER_LEN + h1.length as usize;
                if next + HEADER_LEN <= bytes.len() {
                    if let Ok(Some(h2)) = RecordHeader::parse(&bytes[next..]) {
                        if h2.version == h1.version {
                            return Examined::Found(p);
                        }
                    }
                } else if first_incomplete.is_none() {
                    first_incomplete = Some(p);
                }
            }
        }
        p += 1;
    }
    match first_incomplete {
        Some(p) => Examined::NeedMore(p),
        None => Examined::Nothing(bytes.len().saturating_sub(HEADER_LEN - 1)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use bleedwatch_wire::record::{encode_records, Deframer};
    use proptest::prelude::*;

    #[derive(Default)]
    struct Log {
        records: Vec<(ContentType, u16, u32, Vec<u8>, bool)>,
        server_hellos: Vec<u16>,
    }

    impl TlsEvents for Log {
        fn record(&mut self, _dir: Dir, _ts: Timestamp, rec: &RecordInfo) {
            self.records.push((rec.content_type, rec.length, rec.observed, rec.head[..rec.head_len as usize].to_vec(), rec.encrypted));
        }
        fn server_hello(&mut self, _dir: Dir, hello: &ServerHello<'_>) {
            self.server_hellos.push(hello.cipher_suite.0);
        }
    }

    const LIMITS: StreamLimits = StreamLimits { starttls_scan: 16 * 1024, resync_window: 64 * 1024, resync_total: 1 << 20, max_handshake: 64 * 1024 };

    fn client_hello_record() -> Vec<u8> {
        let spec = bleedwatch_wire::hello::ClientHelloSpec::probe(ProtocolVersion::TLS1_2, [7; 32], None);
        let mut out = Vec::new();
        encode_records(&mut out, ContentType::HANDSHAKE, ProtocolVersion::TLS1_0, &spec.encode(), 16384);
        out
    }

    fn sample_stream() -> Vec<u8> {
        let mut out = client_hello_record();
        encode_records(&mut out, ContentType::HEARTBEAT, ProtocolVersion::TLS1_2, &[1, 0x40, 0], 16384);
        encode_records(&mut out, ContentType::CHANGE_CIPHER_SPEC, ProtocolVersion::TLS1_2, &[1], 16384);
        encode_records(&mut out, ContentType::APPLICATION_DATA, ProtocolVersion::TLS1_2, &[9u8; 40000], 16384);
        encode_records(&mut out, ContentType::HEARTBEAT, ProtocolVersion::TLS1_2, &[0xaa; 48], 16384);
        out
    }

    fn run(chunks: &[Chunk<'_>], mid_stream: bool) -> Log {
        let mut s = TlsStream::new();
        if mid_stream {
            s.starts_mid_stream();
        }
        let mut log = Log::default();
        for c in chunks {
            s.feed(*c, Timestamp(0), Dir::Orig, &mut log, &LIMITS);
        }
        s.finish(Timestamp(0), Dir::Orig, &mut log);
        log
    }

    #[test]
    fn records_hello_and_encryption_state() {
        let stream = sample_stream();
        let log = run(&[Chunk::Data(&stream)], false);
        assert_eq!(log.records[0].3[..3], [1, 0, 0], "the ClientHello record comes first");
        let kinds: Vec<_> = log.records.iter().map(|r| (r.0, r.1, r.4)).collect();
        assert_eq!(kinds[1], (ContentType::HEARTBEAT, 3, false));
        assert_eq!(log.records[1].3, vec![1, 0x40, 0]);
        assert_eq!(kinds[2], (ContentType::CHANGE_CIPHER_SPEC, 1, false));
        assert_eq!(*kinds.last().unwrap(), (ContentType::HEARTBEAT, 48, true));
    }

    #[test]
    fn server_hello_split_across_records_gives_the_cipher() {
        let hello = bleedwatch_wire::hello::ServerHelloSpec {
            version: ProtocolVersion::TLS1_2,
            random: [3; 32],
            session_id: vec![1; 32],
            cipher_suite: bleedwatch_wire::CipherSuite(0xc014),
            extensions: Vec::new(),
        }
        .encode();
        let mut stream = Vec::new();
        encode_records(&mut stream, ContentType::HANDSHAKE, ProtocolVersion::TLS1_2, &hello, 20);
        let chunks: Vec<Chunk<'_>> = stream.chunks(7).map(Chunk::Data).collect();
        let log = run(&chunks, false);
        assert_eq!(log.server_hellos, vec![0xc014]);
    }

    #[test]
    fn starttls_upgrade_is_found_after_plaintext() {
        let mut stream = b"EHLO client.example\r\nSTARTTLS\r\n".to_vec();
        stream.extend_from_slice(&sample_stream());
        for split in [1usize, 7, 30, 33, 35, 200] {
            let chunks: Vec<Chunk<'_>> = stream.chunks(split).map(Chunk::Data).collect();
            let log = run(&chunks, false);
            assert_eq!((log.records[0].0, log.records[0].3[0]), (ContentType::HANDSHAKE, 1), "split {split}");
            assert!(log.records.iter().any(|r| r.0 == ContentType::HEARTBEAT && r.1 == 3));
        }
    }

    #[test]
    fn plain_protocol_is_given_up_within_budget() {
        let text = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".repeat(2000);
        let mut s = TlsStream::new();
        let mut log = Log::default();
        for c in text.chunks(1000) {
            s.feed(Chunk::Data(c), Timestamp(0), Dir::Orig, &mut log, &LIMITS);
        }
        assert!(s.is_off());
        assert!(log.records.is_empty());
        assert!(s.buffered_bytes() == 0);
    }

    #[test]
    fn loss_inside_a_record_keeps_step() {
        let stream = sample_stream();
        let ch = client_hello_record().len();
        // Lose 1000 bytes in the middle of the first application data record.
        let cut = ch + 8 + 6 + 5 + 3000;
        let log = run(&[Chunk::Data(&stream[..cut]), Chunk::Gap(1000), Chunk::Data(&stream[cut + 1000..])], false);
        let app: Vec<_> = log.records.iter().filter(|r| r.0 == ContentType::APPLICATION_DATA).collect();
        assert_eq!(app[0].2, 16384 - 1000);
        assert_eq!(log.records.last().unwrap().1, 48);
    }

    #[test]
    fn loss_across_a_boundary_resyncs() {
        let stream = sample_stream();
        let ch = client_hello_record().len();
        let cut = ch + 8 + 6 + 5 + 16000;
        let log = run(&[Chunk::Data(&stream[..cut]), Chunk::Gap(1000), Chunk::Data(&stream[cut + 1000..])], false);
        assert_eq!(log.records.last().unwrap().1, 48);
        assert!(log.records.last().unwrap().4, "encryption state survives the loss");
    }

    #[test]
    fn mid_stream_capture_finds_boundaries() {
        let stream = sample_stream();
        let ch = client_hello_record().len();
        let log = run(&[Chunk::Data(&stream[ch + 20 + 100..])], true);
        assert_eq!(log.records.last().unwrap().1, 48);
    }

    #[test]
    fn sslv2_hello_is_skipped() {
        let mut stream = vec![0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10];
        stream.extend_from_slice(&[0u8; 0x2e - 9]);
        stream.extend_from_slice(&sample_stream()[client_hello_record().len()..]);
        let log = run(&[Chunk::Data(&stream)], false);
        assert_eq!(log.records[0].0, ContentType::HEARTBEAT);
    }

    proptest! {
        /// The in-place walk yields exactly the records `wire`'s Deframer yields, for any cut.
        #[test]
        fn walk_matches_wire_deframer(cuts in proptest::collection::vec(1usize..3000, 0..60)) {
            let stream = sample_stream();
            let mut chunks = Vec::new();
            let mut pos: usize = 0;
            for c in cuts.iter().chain(std::iter::once(&usize::MAX)) {
                let end = pos.saturating_add(*c).min(stream.len());
                chunks.push(Chunk::Data(&stream[pos..end]));
                pos = end;
                if pos == stream.len() { break; }
            }
            let log = run(&chunks, false);
            let mut d = Deframer::new();
            d.push(&stream).unwrap();
            let mut expected = Vec::new();
            while let Some(r) = d.next_record().unwrap() {
                expected.push((r.header.content_type, r.header.length, r.fragment.len() as u32, r.fragment[..r.fragment.len().min(HEAD_LEN)].to_vec()));
            }
            let got: Vec<_> = log.records.iter().map(|r| (r.0, r.1, r.2, r.3.clone())).collect();
            prop_assert_eq!(got, expected);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000), gaps in proptest::collection::vec(0u64..5000, 0..5), mid in any::<bool>()) {
            let mut chunks: Vec<Chunk<'_>> = bytes.chunks(97).map(Chunk::Data).collect();
            for (i, g) in gaps.iter().enumerate() {
                let at = (i * 3).min(chunks.len());
                chunks.insert(at, Chunk::Gap(*g));
            }
            let _ = run(&chunks, mid);
        }
    }
}
