//! The TLS record layer: header parsing, encoding with fragmentation, and a deframer that turns an
//! arbitrary byte stream (short reads, several records per read, records across reads) into records.

use crate::codec::Reader;
use crate::error::WireError;
use crate::types::{ContentType, ProtocolVersion};

pub const HEADER_LEN: usize = 5;
/// Largest plaintext fragment a record may carry (RFC 5246 §6.2.1).
pub const MAX_FRAGMENT_LEN: usize = 16384;
/// Largest TLSCiphertext length a peer may announce (2^14 + 2048). A larger header is rejected at once,
/// before any buffer is sized from it.
pub const MAX_CIPHERTEXT_LEN: usize = MAX_FRAGMENT_LEN + 2048;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    pub content_type: ContentType,
    pub version: ProtocolVersion,
    pub length: u16,
}

impl RecordHeader {
    /// Parses a header from the first five bytes. `Ok(None)` means fewer than five bytes are present.
    /// Anything that is not a plausible TLS or DTLS-less TLS header is [`WireError::NotTls`].
    pub fn parse(bytes: &[u8]) -> Result<Option<RecordHeader>, WireError> {
        if bytes.len() < HEADER_LEN {
            return Ok(None);
        }
        let mut raw = [0u8; HEADER_LEN];
        raw.copy_from_slice(&bytes[..HEADER_LEN]);
        if !looks_like_tls_header(&raw) {
            return Err(WireError::NotTls(raw));
        }
        let header = RecordHeader {
            content_type: ContentType(raw[0]),
            version: ProtocolVersion(u16::from_be_bytes([raw[1], raw[2]])),
            length: u16::from_be_bytes([raw[3], raw[4]]),
        };
        if header.length as usize > MAX_CIPHERTEXT_LEN {
            return Err(WireError::RecordTooLong { length: header.length as usize, limit: MAX_CIPHERTEXT_LEN });
        }
        Ok(Some(header))
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.content_type.0);
        out.extend_from_slice(&self.version.0.to_be_bytes());
        out.extend_from_slice(&self.length.to_be_bytes());
    }
}

/// True when five bytes could start a TLS record: a known content type and an SSLv3/TLS major version.
/// Used to tell TLS from other protocols by content.
pub fn looks_like_tls_header(raw: &[u8; HEADER_LEN]) -> bool {
    (20..=24).contains(&raw[0]) && raw[1] == 3 && raw[2] <= 4
}

/// One record, borrowing its fragment from the deframer's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub header: RecordHeader,
    pub fragment: &'a [u8],
}

/// Parses one complete record from the front of `bytes`, returning it and the bytes it took.
pub fn parse_record(bytes: &[u8]) -> Result<Option<(Record<'_>, usize)>, WireError> {
    let Some(header) = RecordHeader::parse(bytes)? else { return Ok(None) };
    let total = HEADER_LEN + header.length as usize;
    if bytes.len() < total {
        return Ok(None);
    }
    let mut r = Reader::new(&bytes[HEADER_LEN..total]);
    Ok(Some((Record { header, fragment: r.rest() }, total)))
}

/// Appends `data` as records of `content_type`, split into fragments of at most `max_fragment` bytes
/// (16384 for TLS), the way a TLS library fragments a long message.
pub fn encode_records(
    out: &mut Vec<u8>,
    content_type: ContentType,
    version: ProtocolVersion,
    data: &[u8],
    max_fragment: usize,
) {
    let max_fragment = max_fragment.clamp(1, MAX_FRAGMENT_LEN);
    if data.is_empty() {
        RecordHeader { content_type, version, length: 0 }.encode(out);
        return;
    }
    for chunk in data.chunks(max_fragment) {
        RecordHeader { content_type, version, length: chunk.len() as u16 }.encode(out);
        out.extend_from_slice(chunk);
    }
}

/// Default cap on bytes held by a [`Deframer`] waiting to become records.
pub const DEFAULT_BUFFER_LIMIT: usize = 4 * (HEADER_LEN + MAX_CIPHERTEXT_LEN);

/// Turns a byte stream into records. Bytes are pushed as they arrive; complete records come out of
/// [`Deframer::next_record`]. Memory is bounded: a header announcing more than
/// [`MAX_CIPHERTEXT_LEN`] is an error as soon as its five bytes arrive, and the buffer never holds more
/// than its limit.
#[derive(Debug)]
pub struct Deframer {
    buf: Vec<u8>,
    start: usize,
    limit: usize,
    /// Set once the stream is known not to be TLS; later calls keep failing the same way.
    failed: Option<WireError>,
}

impl Default for Deframer {
    fn default() -> Self {
        Deframer::new()
    }
}

impl Deframer {
    pub fn new() -> Self {
        Deframer::with_limit(DEFAULT_BUFFER_LIMIT)
    }

    pub fn with_limit(limit: usize) -> Self {
        Deframer { buf: Vec::new(), start: 0, limit: limit.max(HEADER_LEN + MAX_CIPHERTEXT_LEN), failed: None }
    }

    /// Bytes received but not yet returned as records.
    pub fn pending(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Takes the buffered bytes back out, e.g. when a stream turns out not to be TLS and the bytes are
    /// needed as a banner.
    pub fn take_pending(&mut self) -> Vec<u8> {
        let out = self.buf.split_off(self.start);
        self.buf.clear();
        self.start = 0;
        out
    }

    pub fn push(&mut self, data: &[u8]) -> Result<(), WireError> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        if self.buf.len() + data.len() > self.limit {
            return Err(WireError::BufferFull { limit: self.limit });
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    /// The next complete record, `Ok(None)` when more bytes are needed.
    pub fn next_record(&mut self) -> Result<Option<Record<'_>>, WireError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        match parse_record(&self.buf[self.start..]) {
            Ok(Some((record, used))) => {
                let begin = self.start;
                self.start += used;
                let fragment = &self.buf[begin + HEADER_LEN..begin + used];
                Ok(Some(Record { header: record.header, fragment }))
            }
            Ok(None) => Ok(None),
            Err(err) => {
                self.failed = Some(err.clone());
                Err(err)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample_stream() -> Vec<u8> {
        let mut out = Vec::new();
        encode_records(&mut out, ContentType::HANDSHAKE, ProtocolVersion::TLS1_2, &[7u8; 40000], 16384);
        encode_records(&mut out, ContentType::ALERT, ProtocolVersion::TLS1_2, &[2, 40], 16384);
        out
    }

    #[test]
    fn splits_long_data_into_max_size_records() {
        let stream = sample_stream();
        let mut d = Deframer::new();
        d.push(&stream).unwrap();
        let mut lens = Vec::new();
        while let Some(r) = d.next_record().unwrap() {
            lens.push((r.header.content_type, r.fragment.len()));
        }
        assert_eq!(
            lens,
            vec![
                (ContentType::HANDSHAKE, 16384),
                (ContentType::HANDSHAKE, 16384),
                (ContentType::HANDSHAKE, 7232),
                (ContentType::ALERT, 2)
            ]
        );
    }

    #[test]
    fn rejects_non_tls_and_oversized_headers() {
        let mut d = Deframer::new();
        d.push(b"HTTP/1.1 400 Bad Request\r\n").unwrap();
        assert!(matches!(d.next_record(), Err(WireError::NotTls(_))));
        // Sticky: the stream stays failed.
        assert!(d.next_record().is_err());

        let mut d = Deframer::new();
        d.push(&[22, 3, 3, 0xff, 0xff]).unwrap();
        assert!(matches!(d.next_record(), Err(WireError::RecordTooLong { length: 65535, .. })));
    }

    #[test]
    fn truncated_header_waits_for_more() {
        let mut d = Deframer::new();
        d.push(&[22, 3]).unwrap();
        assert_eq!(d.next_record().unwrap(), None);
        d.push(&[1, 0, 1]).unwrap();
        assert_eq!(d.next_record().unwrap(), None);
        d.push(&[9]).unwrap();
        assert_eq!(d.next_record().unwrap().unwrap().fragment, &[9]);
    }

    #[test]
    fn buffer_is_bounded() {
        let mut d = Deframer::with_limit(0);
        let big = vec![0u8; HEADER_LEN + MAX_CIPHERTEXT_LEN + 1];
        assert!(matches!(d.push(&big), Err(WireError::BufferFull { .. })));
    }

    proptest! {
        /// However the stream is cut into reads, the same records come out.
        #[test]
        fn any_segmentation_gives_same_records(cuts in proptest::collection::vec(1usize..5000, 0..40)) {
            let stream = sample_stream();
            let mut d = Deframer::new();
            let mut got = Vec::new();
            let mut pos: usize = 0;
            for cut in cuts.iter().chain(std::iter::once(&usize::MAX)) {
                let end = pos.saturating_add(*cut).min(stream.len());
                d.push(&stream[pos..end]).unwrap();
                pos = end;
                while let Some(r) = d.next_record().unwrap() {
                    got.push((r.header, r.fragment.to_vec()));
                }
                if pos == stream.len() { break; }
            }
            let mut whole = Deframer::new();
            whole.push(&stream).unwrap();
            let mut expected = Vec::new();
            while let Some(r) = whole.next_record().unwrap() {
                expected.push((r.header, r.fragment.to_vec()));
            }
            prop_assert_eq!(got, expected);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut d = Deframer::new();
            let _ = d.push(&bytes);
            for _ in 0..100 {
                match d.next_record() {
                    Ok(Some(_)) => continue,
                    _ => break,
                }
            }
        }
    }
}
