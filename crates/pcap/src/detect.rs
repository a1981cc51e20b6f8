//! Heartbleed rules, per connection, over the records of both directions.
//!
//! Plaintext heartbeats (before ChangeCipherSpec) are read: a request claiming more payload than its
//! record holds is the over-read; one that fits but lacks RFC 6520's 16 bytes of padding is a probe
//! (a fixed OpenSSL drops it, a vulnerable one answers). A response is matched to the peer's pending
//! request (same claimed length first), and the payload bytes that came back beyond what the
//! requester sent are counted as leaked. A vulnerable OpenSSL answers mid-handshake with only its first
//! 16384-byte record, so a response is never required to be complete: later heartbeat records from
//! the same side continue it while the first claimed more than it held.
//!
//! Encrypted heartbeats are judged from sizes and timing: before any application data, shorter than
//! the cipher allows for a padded request, or answered by more bytes than were asked with.
//!
//! Each finding also carries the notice Zeek's heartbleed script would raise for the same record
//! ([`crate::zeek`]); a notice with no bleedwatch finding of its own becomes an `info` finding, so
//! every Zeek notice appears exactly once.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::net::SocketAddr;

use bleedwatch_wire::handshake::ServerHello;
use bleedwatch_wire::heartbeat::{HeartbeatMessage, HeartbeatMessageType, HEADER_LEN as HB_HEADER_LEN, MIN_PADDING};
use bleedwatch_wire::record::MAX_FRAGMENT_LEN;
use bleedwatch_wire::{CipherSuite, ContentType, ProtocolVersion};

use crate::cipher_names::cipher_name;
use crate::finding::{Finding, Kind, Severity, SharedText};
use crate::timestamp::Timestamp;
use crate::tls::{Dir, RecordInfo, TlsEvents, HEAD_LEN};
use crate::zeek::{self, Rule, ZeekHeartbleed, ZeekNotice};

/// Requests remembered per direction while waiting for answers.
const MAX_PENDING_REQUESTS: usize = 16;

#[derive(Debug, Clone)]
pub(crate) struct ConnMeta {
    /// Unique within the analysis (timers tell connections apart by it).
    pub id: u64,
    /// The file the connection began in (an index into the engine's file names), and its number
    /// there, in order of first packet: what findings report.
    pub file: u32,
    pub number: u64,
    pub udp: bool,
    pub orig: SocketAddr,
    pub resp: SocketAddr,
    pub start: Timestamp,
}

/// Payload bytes of a request remembered to recognise its echo.
const ECHO_LEN: usize = HEAD_LEN - HB_HEADER_LEN;

#[derive(Debug, Clone, Copy)]
struct PlainRequest {
    /// Numbers requests of a direction, so a response can name the one it answers.
    id: u64,
    record_length: u32,
    payload_length: u32,
    present: u32,
    invalid: bool,
    /// The payload's first bytes (the requester's own bytes, not the peer's memory).
    echo: [u8; ECHO_LEN],
    echo_len: u8,
}

impl PlainRequest {
    /// True when a response starting with `echo` can be the answer to this request: its first payload
    /// bytes are this request's (as far as both are known).
    fn echoed_by(&self, echo: &[u8]) -> bool {
        let n = usize::from(self.echo_len).min(echo.len());
        self.echo[..n] == echo[..n]
    }
}

/// The pending request a response answers: one claiming the same length whose payload it echoes,
/// else one claiming the same length, else the oldest. Scanners send several requests claiming the
/// same length (bleedwatch: an invalid test heartbeat and a valid one; a fixed server answers only
/// the valid one), so the length alone would pin the answer on the wrong one.
fn answered_request(pending: &VecDeque<PlainRequest>, payload_length: u32, echo: &[u8]) -> Option<u64> {
    let same_length = |r: &&PlainRequest| r.payload_length == payload_length;
    pending
        .iter()
        .filter(same_length)
        .find(|r| r.echoed_by(echo))
        .or_else(|| pending.iter().find(same_length))
        .or(pending.front())
        .map(|r| r.id)
}

#[derive(Debug)]
struct PlainResponse {
    /// The request it answers, chosen when it began (its bytes are not kept: they may be memory).
    answers: Option<u64>,
    ts: Timestamp,
    first_record_length: u32,
    payload_length: u32,
    /// Message bytes seen so far (type, length field, payload, padding).
    message_bytes: u64,
    records: u32,
    record_bytes: u64,
    last_record_full: bool,
    notices: Vec<ZeekNotice>,
}

impl PlainResponse {
    /// A vulnerable OpenSSL cuts a long answer into 16384-byte records; another full record may follow
    /// while fewer bytes than `3 + payload + 16` have come.
    fn wants_more(&self) -> bool {
        self.last_record_full && self.message_bytes < (HB_HEADER_LEN + MIN_PADDING) as u64 + u64::from(self.payload_length)
    }
}

#[derive(Debug)]
struct EncryptedExchange {
    requester: Dir,
    ts: Timestamp,
    length: u32,
    before_data: bool,
    odd_length: bool,
    response_ts: Option<Timestamp>,
    response_records: u32,
    response_bytes: u64,
    notices: Vec<ZeekNotice>,
}

/// What only heartbeats need: kept apart, and made at a connection's first heartbeat, so that the
/// state of the many connections without one stays small (every packet touches it).
#[derive(Default)]
struct Heartbeats {
    requests: [VecDeque<PlainRequest>; 2],
    next_request_id: u64,
    responses: [Option<PlainResponse>; 2],
    exchange: Option<EncryptedExchange>,
    zeek: ZeekHeartbleed,
}

pub(crate) struct Detector {
    pub meta: ConnMeta,
    version: Option<ProtocolVersion>,
    record_version: Option<ProtocolVersion>,
    cipher: Option<CipherSuite>,
    pub tls_records: u64,
    encrypted_appdata: u64,
    heartbeats: Option<Box<Heartbeats>>,
    /// Findings ready for the sink (file name not yet set).
    pub out: Vec<Finding>,
}

impl Detector {
    pub fn new(meta: ConnMeta) -> Self {
        Detector {
            meta,
            version: None,
            record_version: None,
            cipher: None,
            tls_records: 0,
            encrypted_appdata: 0,
            heartbeats: None,
            out: Vec::new(),
        }
    }

    fn heartbeats(&mut self) -> &mut Heartbeats {
        self.heartbeats.get_or_insert_with(Box::default)
    }

    fn zeek_version(&self) -> Option<Cow<'static, str>> {
        self.version.map(|v| zeek::version_string(v.0))
    }

    /// The negotiated suite's IANA name (`unknown-N` for one not in the registry).
    fn cipher_text(&self) -> Option<Cow<'static, str>> {
        self.cipher.map(|c| cipher_name(c.0).map_or_else(|| Cow::Owned(format!("unknown-{}", c.0)), Cow::Borrowed))
    }

    /// A finding with the connection's context; `requester` is the side that sent the request.
    fn finding(&self, kind: Kind, severity: Severity, ts: Timestamp, requester: Dir, encrypted: bool) -> Finding {
        let version = self.version.or(self.record_version);
        let (orig, resp) = (self.meta.orig, self.meta.resp);
        let (attacker, victim) = match requester {
            Dir::Orig => (orig, resp),
            Dir::Resp => (resp, orig),
        };
        Finding {
            file: SharedText::default(),
            time: ts.capture_time(),
            ts: ts.as_secs_f64(),
            connection: self.meta.number,
            transport: Cow::Borrowed(if self.meta.udp { "udp" } else { "tcp" }),
            src_ip: orig.ip(),
            src_port: orig.port(),
            dst_ip: resp.ip(),
            dst_port: resp.port(),
            attacker,
            victim,
            direction: Cow::Borrowed(match requester {
                Dir::Orig => "client-to-server",
                Dir::Resp => "server-to-client",
            }),
            kind,
            severity,
            notice: None,
            notice_msg: None,
            notice_n: None,
            encrypted,
            tls_version: version.map(|v| v.name().map_or_else(|| Cow::Owned(format!("{:#06x}", v.0)), Cow::Borrowed)),
            cipher: self.cipher_text(),
            record_length: None,
            payload_length: None,
            payload_present: None,
            request_record_length: None,
            response_records: None,
            response_bytes: None,
            leaked_bytes: None,
        }
    }

    /// Puts each Zeek notice on the finding it corresponds to among those of one event (`self.out`
    /// from `start` on); a notice without one gets its own finding, so every notice is reported
    /// exactly once.
    fn attach_notices(&mut self, start: usize, notices: Vec<ZeekNotice>, ts: Timestamp, encrypted: bool) {
        for notice in notices {
            let (kinds, severity) = natural_kinds(notice.rule);
            let found = self.out.get(start..).and_then(|event| event.iter().position(|f| f.notice.is_none() && kinds.contains(&f.kind)));
            let index = match found {
                Some(i) => start + i,
                None => {
                    // Success notices fire on the answering side; the requester is the other one.
                    let requester = match notice.rule {
                        Rule::PlainSuccess | Rule::EncryptedSuccess => notice.from.other(),
                        _ => notice.from,
                    };
                    let mut f = self.finding(kinds[0], severity, ts, requester, encrypted);
                    if encrypted {
                        f.record_length = notice.n.map(|n| n as u32);
                    }
                    self.out.push(f);
                    self.out.len() - 1
                }
            };
            let Some(target) = self.out.get_mut(index) else { continue };
            target.notice = Some(Cow::Borrowed(notice.note.name()));
            target.notice_msg = Some(notice.msg);
            target.notice_n = notice.n;
        }
    }

    fn plaintext_heartbeat(&mut self, dir: Dir, ts: Timestamp, rec: &RecordInfo) {
        let d = dir.index();
        if let Some(resp) = self.heartbeats().responses[d].as_mut() {
            if resp.wants_more() {
                // The rest of a long answer: raw bytes, not a new message.
                resp.records += 1;
                resp.record_bytes += u64::from(rec.observed);
                resp.message_bytes += u64::from(rec.observed);
                resp.last_record_full = rec.length as usize >= MAX_FRAGMENT_LEN;
                if !resp.wants_more() {
                    self.finish_response(dir);
                }
                return;
            }
            self.finish_response(dir);
        }
        if (rec.length as usize) < HB_HEADER_LEN {
            let mut f = self.finding(Kind::HeartbeatMalformed, Severity::Suspicious, ts, dir, false);
            f.record_length = Some(u32::from(rec.length));
            self.out.push(f);
            return;
        }
        if (rec.head_len as usize) < HB_HEADER_LEN {
            return; // the header bytes were lost
        }
        let Ok(message) = HeartbeatMessage::parse(&rec.head) else { return };
        let length = u32::from(rec.length);
        let payload_length = u32::from(message.payload_length);
        let notices = self.heartbeats().zeek.plaintext(ts, dir, u64::from(length), message.kind.0, u64::from(payload_length));
        // The payload bytes present in what was kept of the record.
        let body = &rec.head[HB_HEADER_LEN..usize::from(rec.head_len).max(HB_HEADER_LEN)];
        let echo = &body[..body.len().min(payload_length as usize)];
        match message.kind {
            HeartbeatMessageType::REQUEST => self.plaintext_request(dir, ts, length, payload_length, echo, notices),
            HeartbeatMessageType::RESPONSE => {
                let answers = answered_request(&self.heartbeats().requests[dir.other().index()], payload_length, echo);
                self.heartbeats().responses[d] = Some(PlainResponse {
                    answers,
                    ts,
                    first_record_length: length,
                    payload_length,
                    message_bytes: u64::from(rec.observed),
                    records: 1,
                    record_bytes: u64::from(rec.observed),
                    last_record_full: length as usize >= MAX_FRAGMENT_LEN,
                    notices,
                });
                if self.heartbeats().responses[d].as_ref().is_some_and(|r| !r.wants_more()) {
                    self.finish_response(dir);
                }
            }
            _ => {
                let start = self.out.len();
                self.attach_notices(start, notices, ts, false);
            }
        }
    }

    fn plaintext_request(&mut self, dir: Dir, ts: Timestamp, length: u32, payload_length: u32, echo: &[u8], notices: Vec<ZeekNotice>) {
        let body = length - HB_HEADER_LEN as u32;
        let present = body.min(payload_length);
        let overflow = payload_length > body;
        let unpadded = !overflow && body - payload_length < MIN_PADDING as u32;
        let start = self.out.len();
        if overflow || unpadded {
            let (kind, severity) = if overflow { (Kind::HeartbeatOverflow, Severity::Attack) } else { (Kind::HeartbeatUnpadded, Severity::Probe) };
            let mut f = self.finding(kind, severity, ts, dir, false);
            f.record_length = Some(length);
            f.payload_length = Some(payload_length);
            f.payload_present = Some(present);
            self.out.push(f);
        }
        let heartbeats = self.heartbeats();
        let id = heartbeats.next_request_id;
        heartbeats.next_request_id += 1;
        let mut request = PlainRequest { id, record_length: length, payload_length, present, invalid: overflow || unpadded, echo: [0; ECHO_LEN], echo_len: 0 };
        let kept = echo.len().min(ECHO_LEN).min(present as usize);
        request.echo[..kept].copy_from_slice(&echo[..kept]);
        request.echo_len = kept as u8;
        let pending = &mut heartbeats.requests[dir.index()];
        if pending.len() >= MAX_PENDING_REQUESTS {
            pending.pop_front();
        }
        pending.push_back(request);
        if !notices.is_empty() && self.out.len() == start {
            let mut f = self.finding(Kind::HeartbeatPlaintextRequest, Severity::Info, ts, dir, false);
            f.record_length = Some(length);
            f.payload_length = Some(payload_length);
            f.payload_present = Some(present);
            self.out.push(f);
        }
        self.attach_notices(start, notices, ts, false);
    }

    fn finish_response(&mut self, responder: Dir) {
        let Some(resp) = self.heartbeats.as_mut().and_then(|h| h.responses[responder.index()].take()) else { return };
        let requester = responder.other();
        let pending = &mut self.heartbeats().requests[requester.index()];
        let matched = pending.iter().position(|r| Some(r.id) == resp.answers).and_then(|i| pending.remove(i));
        let delivered = resp.message_bytes.saturating_sub(HB_HEADER_LEN as u64).min(u64::from(resp.payload_length));
        let start = self.out.len();
        let (kind, severity, leaked) = match matched {
            Some(req) if req.invalid => {
                let leaked = delivered.saturating_sub(u64::from(req.present));
                let kind = if leaked > 0 { Kind::HeartbeatResponseLeak } else { Kind::HeartbeatResponseToInvalid };
                (kind, Severity::Success, Some(leaked))
            }
            Some(_) => (Kind::HeartbeatResponse, Severity::Info, Some(0)),
            None => (Kind::HeartbeatResponseUnsolicited, Severity::Info, None),
        };
        let worth_reporting = severity > Severity::Info || kind == Kind::HeartbeatResponseUnsolicited || !resp.notices.is_empty();
        if worth_reporting {
            let mut f = self.finding(kind, severity, resp.ts, requester, false);
            f.record_length = Some(resp.first_record_length);
            f.payload_length = Some(resp.payload_length);
            f.payload_present = matched.map(|r| r.present);
            f.request_record_length = matched.map(|r| r.record_length);
            f.response_records = Some(resp.records);
            f.response_bytes = Some(resp.record_bytes);
            f.leaked_bytes = leaked;
            self.out.push(f);
        }
        self.attach_notices(start, resp.notices, resp.ts, false);
    }

    fn encrypted_heartbeat(&mut self, dir: Dir, ts: Timestamp, rec: &RecordInfo) {
        let length = u32::from(rec.length);
        let version = self.zeek_version();
        let cipher = self.cipher_text();
        let (start, appdata) = (self.meta.start, self.encrypted_appdata);
        let notices = self.heartbeats().zeek.encrypted(ts, start, dir, u64::from(length), appdata, cipher.as_deref(), version.as_deref());
        if let Some(ex) = self.heartbeats().exchange.as_mut() {
            if ex.requester != dir {
                ex.response_ts.get_or_insert(ts);
                ex.response_records += 1;
                ex.response_bytes += u64::from(rec.observed);
                ex.notices.extend(notices);
                return;
            }
            self.finish_exchange();
        }
        let odd_length = match (&cipher, &version) {
            (Some(c), Some(v)) => zeek::min_length(c, v).is_some_and(|(_, min)| u64::from(length) < min),
            _ => false,
        };
        self.heartbeats().exchange = Some(EncryptedExchange {
            requester: dir,
            ts,
            length,
            before_data: appdata == 0,
            odd_length,
            response_ts: None,
            response_records: 0,
            response_bytes: 0,
            notices,
        });
    }

    /// Judges an encrypted request once its answer (or the lack of one) is known.
    fn finish_exchange(&mut self) {
        let Some(ex) = self.heartbeats.as_mut().and_then(|h| h.exchange.take()) else { return };
        let answered_longer = ex.response_bytes > u64::from(ex.length);
        let start = self.out.len();
        let base = |this: &Self, kind, severity| {
            let mut f = this.finding(kind, severity, ex.ts, ex.requester, true);
            f.record_length = Some(ex.length);
            f.response_records = Some(ex.response_records);
            f.response_bytes = Some(ex.response_bytes);
            f
        };
        if ex.before_data {
            let severity = if ex.response_records == 0 {
                Severity::Suspicious
            } else if answered_longer {
                Severity::Attack
            } else {
                Severity::Info // answered in kind: an ordinary heartbeat
            };
            let f = base(self, Kind::EncryptedHeartbeatBeforeData, severity);
            self.out.push(f);
        }
        if ex.odd_length {
            let f = base(self, Kind::EncryptedHeartbeatOddLength, Severity::Probe);
            self.out.push(f);
        }
        if answered_longer {
            let mut f = base(self, Kind::EncryptedHeartbeatSuccess, Severity::Success);
            let ts = ex.response_ts.unwrap_or(ex.ts);
            f.time = ts.capture_time();
            f.ts = ts.as_secs_f64();
            f.request_record_length = Some(ex.length);
            f.leaked_bytes = Some(ex.response_bytes - u64::from(ex.length));
            self.out.push(f);
        }
        // Notices without a finding of their own: "within first minute", many requests, odd length
        // of an answer.
        self.attach_notices(start, ex.notices, ex.ts, true);
    }

    /// The connection ended: judge what is still waiting for an answer.
    pub fn finish(&mut self) {
        self.finish_response(Dir::Orig);
        self.finish_response(Dir::Resp);
        self.finish_exchange();
    }
}

/// The bleedwatch kinds a Zeek rule's notice belongs on, and the severity of a finding made just to
/// carry it.
fn natural_kinds(rule: Rule) -> (&'static [Kind], Severity) {
    match rule {
        Rule::PlainOverflow => (&[Kind::HeartbeatOverflow, Kind::HeartbeatUnpadded], Severity::Info),
        Rule::PlainScan => (&[Kind::HeartbeatPlaintextRequest, Kind::HeartbeatUnpadded, Kind::HeartbeatOverflow], Severity::Info),
        Rule::PlainSuccess => (
            &[Kind::HeartbeatResponse, Kind::HeartbeatResponseLeak, Kind::HeartbeatResponseToInvalid, Kind::HeartbeatResponseUnsolicited],
            Severity::Info,
        ),
        Rule::EncryptedBeforeData => (&[Kind::EncryptedHeartbeatBeforeData], Severity::Info),
        Rule::EncryptedFirstMinute => (&[Kind::EncryptedHeartbeatEarly], Severity::Info),
        Rule::ManyRequests => (&[Kind::ManyRequests], Severity::Suspicious),
        Rule::OddLengthTiny | Rule::OddLengthCipher => (&[Kind::EncryptedHeartbeatOddLength], Severity::Info),
        Rule::EncryptedSuccess => (&[Kind::EncryptedHeartbeatSuccess], Severity::Info),
    }
}

impl TlsEvents for Detector {
    fn record(&mut self, dir: Dir, ts: Timestamp, rec: &RecordInfo) {
        self.tls_records += 1;
        if self.record_version.is_none() && rec.content_type != ContentType::HEARTBEAT {
            self.record_version = Some(rec.version);
        }
        if rec.content_type != ContentType::HEARTBEAT && self.heartbeats.as_ref().is_some_and(|h| h.responses[dir.index()].is_some()) {
            self.finish_response(dir);
        }
        if rec.encrypted {
            if rec.content_type == ContentType::HEARTBEAT {
                self.encrypted_heartbeat(dir, ts, rec);
            } else if rec.content_type == ContentType::APPLICATION_DATA && rec.length > 0 {
                self.encrypted_appdata += 1;
                // The answering side moved on to other data: its answer is complete.
                if self.heartbeats.as_ref().and_then(|h| h.exchange.as_ref()).is_some_and(|ex| ex.requester != dir && ex.response_records > 0) {
                    self.finish_exchange();
                }
            }
        } else if rec.content_type == ContentType::HEARTBEAT {
            self.plaintext_heartbeat(dir, ts, rec);
        }
    }

    fn server_hello(&mut self, _dir: Dir, hello: &ServerHello<'_>) {
        self.version = Some(hello.negotiated_version());
        self.cipher = Some(hello.cipher_suite);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn detector() -> Detector {
        Detector::new(ConnMeta { id: 1, file: 0, number: 1, udp: false, orig: "10.0.0.1:40000".parse().unwrap(), resp: "10.0.0.2:443".parse().unwrap(), start: Timestamp(0) })
    }

    fn hb(length: u16, head: [u8; 3], observed: u32, encrypted: bool) -> RecordInfo {
        hb_with_payload(length, head, &[], observed, encrypted)
    }

    /// A heartbeat record whose kept head also holds the first payload bytes.
    fn hb_with_payload(length: u16, head: [u8; 3], payload: &[u8], observed: u32, encrypted: bool) -> RecordInfo {
        let mut bytes = [0u8; HEAD_LEN];
        bytes[..3].copy_from_slice(&head);
        let n = payload.len().min(HEAD_LEN - 3);
        bytes[3..3 + n].copy_from_slice(&payload[..n]);
        RecordInfo { content_type: ContentType::HEARTBEAT, version: ProtocolVersion::TLS1_2, length, head: bytes, head_len: (3 + n) as u8, observed, encrypted }
    }

    /// bleedwatch's safe probe against a fixed server: an unpadded test request and a valid one, both
    /// claiming 4500 bytes; the server answers only the valid one. The answer echoes the valid
    /// request's payload, so it is not taken for an answer to the invalid one.
    #[test]
    fn answer_goes_to_the_request_it_echoes() {
        let test = [b't'; 16];
        let honest = [b'h'; 16];
        let mut d = detector();
        d.record(Dir::Orig, Timestamp(1), &hb_with_payload(4503, [1, 0x11, 0x94], &test, 4503, false));
        d.record(Dir::Orig, Timestamp(1), &hb_with_payload(4519, [1, 0x11, 0x94], &honest, 4519, false));
        d.record(Dir::Resp, Timestamp(2), &hb_with_payload(4519, [2, 0x11, 0x94], &honest, 4519, false));
        d.finish();
        assert!(d.out.iter().all(|f| f.severity != Severity::Success), "{:#?}", d.out);
        assert_eq!(d.out.iter().filter(|f| f.kind == Kind::HeartbeatUnpadded).count(), 1);

        // A vulnerable server answers both, in order: the first answer is the success.
        let mut d = detector();
        d.record(Dir::Orig, Timestamp(1), &hb_with_payload(4503, [1, 0x11, 0x94], &test, 4503, false));
        d.record(Dir::Orig, Timestamp(1), &hb_with_payload(4519, [1, 0x11, 0x94], &honest, 4519, false));
        d.record(Dir::Resp, Timestamp(2), &hb_with_payload(4519, [2, 0x11, 0x94], &test, 4519, false));
        d.record(Dir::Resp, Timestamp(2), &hb_with_payload(4519, [2, 0x11, 0x94], &honest, 4519, false));
        d.finish();
        let success: Vec<_> = d.out.iter().filter(|f| f.severity == Severity::Success).collect();
        assert_eq!(success.len(), 1, "{:#?}", d.out);
        assert_eq!((success[0].kind, success[0].leaked_bytes), (Kind::HeartbeatResponseToInvalid, Some(0)));
    }

    #[test]
    fn over_read_answered_by_one_full_record_counts_the_leak() {
        let mut d = detector();
        // nmap: claims 16384, sends 19 bytes.
        d.record(Dir::Orig, Timestamp(1), &hb(22, [1, 0x40, 0], 22, false));
        d.record(Dir::Resp, Timestamp(2), &hb(16384, [2, 0x40, 0], 16384, false));
        d.finish();
        let kinds: Vec<_> = d.out.iter().map(|f| (f.kind, f.severity, f.leaked_bytes)).collect();
        assert_eq!(kinds, vec![(Kind::HeartbeatOverflow, Severity::Attack, None), (Kind::HeartbeatResponseLeak, Severity::Success, Some(16362))]);
        assert_eq!(d.out[1].attacker.to_string(), "10.0.0.1:40000");
        assert_eq!(d.out[1].notice.as_deref(), Some("Heartbleed::SSL_Heartbeat_Attack_Success"));
    }

    #[test]
    fn long_answer_spans_records() {
        let mut d = detector();
        d.record(Dir::Resp, Timestamp(1), &hb(3, [1, 0xff, 0xff], 3, false));
        for _ in 0..4 {
            d.record(Dir::Orig, Timestamp(2), &hb(16384, [2, 0xff, 0xff], 16384, false));
        }
        d.finish();
        let leak = d.out.iter().find(|f| f.kind == Kind::HeartbeatResponseLeak).unwrap();
        assert_eq!(leak.leaked_bytes, Some(65533));
        assert_eq!(leak.response_records, Some(4));
        assert_eq!(leak.attacker.to_string(), "10.0.0.2:443");
        assert_eq!(leak.direction, "server-to-client");
    }

    #[test]
    fn benign_encrypted_heartbeat_is_info() {
        let mut d = detector();
        d.record(Dir::Orig, Timestamp(1), &hb(61, [0; 3], 61, true));
        d.record(Dir::Resp, Timestamp(2), &hb(61, [0; 3], 61, true));
        d.finish();
        assert_eq!(d.out.len(), 1);
        assert_eq!(d.out[0].severity, Severity::Info);
        assert_eq!(d.out[0].notice.as_deref(), Some("Heartbleed::SSL_Heartbeat_Attack"));
    }

    #[test]
    fn truncated_heartbeat_record_is_malformed() {
        let mut d = detector();
        let mut rec = hb(2, [1, 0, 0], 2, false);
        rec.head_len = 2;
        d.record(Dir::Orig, Timestamp(1), &rec);
        assert_eq!(d.out[0].kind, Kind::HeartbeatMalformed);
    }
}
