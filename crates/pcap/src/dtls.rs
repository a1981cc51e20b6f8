//! DTLS over UDP: each datagram carries whole records with a 13-byte header (type, version, epoch,
//! sequence number, length). `wire` has no DTLS record parser yet, so the header is read here with
//! `wire`'s bounds-checked [`Reader`]; hellos and heartbeats still go through `wire`'s parsers.
//! Records with a non-zero epoch are encrypted.

use bleedwatch_wire::codec::Reader;
use bleedwatch_wire::handshake::{ClientHello, ServerHello};
use bleedwatch_wire::{ContentType, HandshakeType, ProtocolVersion};

use crate::timestamp::Timestamp;
use crate::tls::{Dir, RecordInfo, TlsEvents};

pub(crate) const DTLS_HEADER_LEN: usize = 13;
const DTLS_HANDSHAKE_HEADER_LEN: usize = 12;

/// True when a datagram starts like a DTLS 1.0/1.2 record.
pub(crate) fn looks_like_dtls(datagram: &[u8]) -> bool {
    datagram.len() >= DTLS_HEADER_LEN
        && (20..=24).contains(&datagram[0])
        && datagram[1] == 0xfe
        && (datagram[2] == 0xff || datagram[2] == 0xfd)
}

/// True when a datagram carries a server's first flight (ServerHello or HelloVerifyRequest), which
/// tells the server's side when the client's first datagram was not captured.
pub(crate) fn is_server_flight(datagram: &[u8]) -> bool {
    looks_like_dtls(datagram)
        && datagram[0] == ContentType::HANDSHAKE.0
        && datagram
            .get(DTLS_HEADER_LEN)
            .is_some_and(|&t| t == HandshakeType::SERVER_HELLO.0 || t == HandshakeType::HELLO_VERIFY_REQUEST.0)
}

#[derive(Debug, Default)]
pub(crate) struct DtlsStream {
    pub records: u64,
    hello_done: bool,
}

struct DtlsHeader {
    content_type: ContentType,
    version: ProtocolVersion,
    epoch: u16,
    length: u16,
}

fn parse_header(r: &mut Reader<'_>) -> Option<DtlsHeader> {
    let content_type = ContentType(r.u8("dtls.type").ok()?);
    let version = ProtocolVersion(r.u16("dtls.version").ok()?);
    let epoch = r.u16("dtls.epoch").ok()?;
    r.u48("dtls.sequence").ok()?;
    let length = r.u16("dtls.length").ok()?;
    if !(20..=24).contains(&content_type.0) || !version.is_dtls() {
        return None;
    }
    Some(DtlsHeader { content_type, version, epoch, length })
}

impl DtlsStream {
    pub fn datagram<E: TlsEvents>(&mut self, datagram: &[u8], ts: Timestamp, dir: Dir, ev: &mut E) {
        let mut r = Reader::new(datagram);
        while r.left() >= DTLS_HEADER_LEN {
            let Some(h) = parse_header(&mut r) else { return };
            // A record longer than the datagram was cut (snaplen): report what is there.
            let available = r.left().min(h.length as usize);
            let Ok(fragment) = r.take(available, "dtls.fragment") else { return };
            self.records += 1;
            let encrypted = h.epoch > 0;
            if h.content_type == ContentType::HANDSHAKE && !encrypted && !self.hello_done {
                self.handshake(fragment, dir, ev);
            }
            let mut head = [0u8; 3];
            let head_len = fragment.len().min(3);
            head[..head_len].copy_from_slice(&fragment[..head_len]);
            ev.record(
                dir,
                ts,
                &RecordInfo {
                    content_type: h.content_type,
                    version: h.version,
                    length: h.length,
                    head,
                    head_len: head_len as u8,
                    observed: fragment.len() as u32,
                    encrypted,
                },
            );
        }
    }

    /// Hellos that arrive in one unfragmented handshake message.
    fn handshake<E: TlsEvents>(&mut self, fragment: &[u8], dir: Dir, ev: &mut E) {
        let mut r = Reader::new(fragment);
        while r.left() >= DTLS_HANDSHAKE_HEADER_LEN {
            let (Ok(typ), Ok(length), Ok(_seq), Ok(offset), Ok(frag_len)) =
                (r.u8("hs.type"), r.u24("hs.length"), r.u16("hs.seq"), r.u24("hs.offset"), r.u24("hs.frag_len"))
            else {
                return;
            };
            let Ok(body) = r.take(frag_len as usize, "hs.body") else { return };
            if offset != 0 || frag_len != length {
                continue;
            }
            match HandshakeType(typ) {
                HandshakeType::CLIENT_HELLO => {
                    if let Ok(hello) = ClientHello::parse(body) {
                        ev.client_hello(dir, &hello);
                    }
                }
                HandshakeType::SERVER_HELLO => {
                    if let Ok(hello) = ServerHello::parse(body) {
                        ev.server_hello(dir, &hello);
                        self.hello_done = true;
                    }
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Log(Vec<(u8, u16, u32, bool, Vec<u8>)>);

    impl TlsEvents for Log {
        fn record(&mut self, _dir: Dir, _ts: Timestamp, rec: &RecordInfo) {
            self.0.push((rec.content_type.0, rec.length, rec.observed, rec.encrypted, rec.head[..rec.head_len as usize].to_vec()));
        }
        fn client_hello(&mut self, _dir: Dir, _hello: &ClientHello<'_>) {}
        fn server_hello(&mut self, _dir: Dir, _hello: &ServerHello<'_>) {}
    }

    fn record(typ: u8, epoch: u16, body: &[u8]) -> Vec<u8> {
        let mut out = vec![typ, 0xfe, 0xff];
        out.extend_from_slice(&epoch.to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0, 0, 1]);
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn several_records_per_datagram_and_epochs() {
        let mut dgram = record(24, 0, &[1, 0x10, 0]);
        dgram.extend(record(24, 1, &[0xaa; 40]));
        assert!(looks_like_dtls(&dgram));
        let mut log = Log::default();
        DtlsStream::default().datagram(&dgram, Timestamp(0), Dir::Orig, &mut log);
        assert_eq!(log.0, vec![(24, 3, 3, false, vec![1, 0x10, 0]), (24, 40, 40, true, vec![0xaa; 3])]);
    }

    #[test]
    fn cut_and_garbage_datagrams_do_not_panic() {
        let dgram = record(24, 0, &[2, 0x10, 0, 9, 9, 9]);
        for cut in 0..dgram.len() {
            let mut log = Log::default();
            DtlsStream::default().datagram(&dgram[..cut], Timestamp(0), Dir::Orig, &mut log);
        }
        let mut hs = record(22, 0, &[1, 0, 0, 200, 0, 0, 0, 0, 0, 0, 0, 200, 3]);
        hs.truncate(hs.len() - 1);
        DtlsStream::default().datagram(&hs, Timestamp(0), Dir::Orig, &mut Log::default());
    }
}
