//! DTLS over UDP: each datagram carries whole records, walked with `wire`'s DTLS framing
//! ([`bleedwatch_wire::dtls::records`], [`bleedwatch_wire::dtls::handshake_fragments`]); the
//! ServerHello and the heartbeats go through `wire`'s parsers as for TLS. Records with a non-zero
//! epoch are encrypted.

use bleedwatch_wire::dtls::{handshake_fragments, looks_like_dtls_header, records, RECORD_HEADER_LEN};
use bleedwatch_wire::handshake::ServerHello;
use bleedwatch_wire::{ContentType, HandshakeType};

use crate::timestamp::Timestamp;
use crate::tls::{Dir, RecordInfo, TlsEvents, HEAD_LEN};

/// True when a datagram starts like a DTLS record.
pub(crate) fn looks_like_dtls(datagram: &[u8]) -> bool {
    datagram.len() >= RECORD_HEADER_LEN && looks_like_dtls_header(datagram)
}

/// True when a datagram carries a server's first flight (ServerHello or HelloVerifyRequest), which
/// tells the server's side when the client's first datagram was not captured.
pub(crate) fn is_server_flight(datagram: &[u8]) -> bool {
    looks_like_dtls(datagram)
        && datagram[0] == ContentType::HANDSHAKE.0
        && datagram
            .get(RECORD_HEADER_LEN)
            .is_some_and(|&t| t == HandshakeType::SERVER_HELLO.0 || t == HandshakeType::HELLO_VERIFY_REQUEST.0)
}

#[derive(Debug, Default)]
pub(crate) struct DtlsStream {
    pub records: u64,
    hello_done: bool,
}

impl DtlsStream {
    /// The records of one datagram. A malformed or cut record ends the datagram, as a DTLS stack
    /// discards the rest of it.
    pub fn datagram<E: TlsEvents>(&mut self, datagram: &[u8], ts: Timestamp, dir: Dir, ev: &mut E) {
        for record in records(datagram) {
            let Ok(record) = record else { return };
            let (h, fragment) = (record.header, record.fragment);
            self.records += 1;
            let encrypted = h.epoch > 0;
            if h.content_type == ContentType::HANDSHAKE && !encrypted && !self.hello_done {
                self.handshake(fragment, dir, ev);
            }
            let mut head = [0u8; HEAD_LEN];
            let head_len = fragment.len().min(HEAD_LEN);
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

    /// The ServerHello, when it arrives as one unfragmented handshake message.
    fn handshake<E: TlsEvents>(&mut self, fragment: &[u8], dir: Dir, ev: &mut E) {
        let Ok(fragments) = handshake_fragments(fragment) else { return };
        for f in fragments {
            if f.header.typ == HandshakeType::SERVER_HELLO && f.header.is_whole() {
                if let Ok(hello) = ServerHello::parse(f.body) {
                    ev.server_hello(dir, &hello);
                    self.hello_done = true;
                }
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
        assert_eq!(log.0, vec![(24, 3, 3, false, vec![1, 0x10, 0]), (24, 40, 40, true, vec![0xaa; HEAD_LEN])]);
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
