//! Bounds-checked reading and simple writing of TLS wire integers and length-prefixed vectors,
//! in the style of rustls' `Codec`/`Reader`.

use crate::error::WireError;

/// A cursor over a byte slice. Every read checks the remaining length first and never panics.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, offset: 0 }
    }

    pub fn left(&self) -> usize {
        self.buf.len() - self.offset
    }

    pub fn is_empty(&self) -> bool {
        self.left() == 0
    }

    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The unread remainder, consuming it.
    pub fn rest(&mut self) -> &'a [u8] {
        let rest = &self.buf[self.offset..];
        self.offset = self.buf.len();
        rest
    }

    pub fn take(&mut self, len: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        if self.left() < len {
            return Err(WireError::Truncated { what, needed: len - self.left() });
        }
        let out = &self.buf[self.offset..self.offset + len];
        self.offset += len;
        Ok(out)
    }

    pub fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        Ok(self.take(1, what)?[0])
    }

    pub fn u16(&mut self, what: &'static str) -> Result<u16, WireError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub fn u24(&mut self, what: &'static str) -> Result<u32, WireError> {
        let b = self.take(3, what)?;
        Ok(u32::from_be_bytes([0, b[0], b[1], b[2]]))
    }

    pub fn u48(&mut self, what: &'static str) -> Result<u64, WireError> {
        let b = self.take(6, what)?;
        Ok(u64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]]))
    }

    /// A vector with a one-byte length prefix.
    pub fn vec8(&mut self, what: &'static str) -> Result<&'a [u8], WireError> {
        let len = self.u8(what)? as usize;
        self.take(len, what)
    }

    /// A vector with a two-byte length prefix.
    pub fn vec16(&mut self, what: &'static str) -> Result<&'a [u8], WireError> {
        let len = self.u16(what)? as usize;
        self.take(len, what)
    }

    /// A vector with a three-byte length prefix.
    pub fn vec24(&mut self, what: &'static str) -> Result<&'a [u8], WireError> {
        let len = self.u24(what)? as usize;
        self.take(len, what)
    }

    /// Fails unless everything was read.
    pub fn expect_end(&self, what: &'static str) -> Result<(), WireError> {
        match self.left() {
            0 => Ok(()),
            extra => Err(WireError::TrailingBytes { what, extra }),
        }
    }
}

pub fn put_u8(out: &mut Vec<u8>, v: u8) {
    out.push(v);
}

pub fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub fn put_u24(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes()[1..]);
}

pub fn put_u48(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes()[2..]);
}

/// Length prefix width for [`put_prefixed`].
#[derive(Debug, Clone, Copy)]
pub enum Prefix {
    U8,
    U16,
    U24,
}

/// Writes a length prefix, then whatever `body` writes, and patches the length in afterwards.
/// Lengths that do not fit the prefix are a programming error in our own encoders, so they saturate
/// rather than panic; callers only encode bodies they built.
pub fn put_prefixed(out: &mut Vec<u8>, prefix: Prefix, body: impl FnOnce(&mut Vec<u8>)) {
    let width = match prefix {
        Prefix::U8 => 1,
        Prefix::U16 => 2,
        Prefix::U24 => 3,
    };
    let start = out.len();
    out.extend(std::iter::repeat_n(0, width));
    body(out);
    let len = out.len() - start - width;
    let bytes = (len as u32).to_be_bytes();
    match prefix {
        Prefix::U8 => out[start] = len.min(0xff) as u8,
        Prefix::U16 => out[start..start + 2].copy_from_slice(&(len.min(0xffff) as u16).to_be_bytes()),
        Prefix::U24 => out[start..start + 3].copy_from_slice(&bytes[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_integers_and_vectors() {
        let mut r = Reader::new(&[1, 0, 2, 0, 0, 3, 2, 0xaa, 0xbb, 9]);
        assert_eq!(r.u8("a").unwrap(), 1);
        assert_eq!(r.u16("b").unwrap(), 2);
        assert_eq!(r.u24("c").unwrap(), 3);
        assert_eq!(r.vec8("d").unwrap(), &[0xaa, 0xbb]);
        assert_eq!(r.left(), 1);
        assert!(r.expect_end("e").is_err());
        assert_eq!(r.rest(), &[9]);
        assert!(r.expect_end("e").is_ok());
    }

    #[test]
    fn truncation_is_an_error_not_a_panic() {
        let mut r = Reader::new(&[0, 5, 1, 2]);
        assert_eq!(r.vec16("v"), Err(WireError::Truncated { what: "v", needed: 3 }));
        let mut r = Reader::new(&[]);
        assert!(r.u24("x").is_err());
    }

    #[test]
    fn prefixed_writes_patch_lengths() {
        let mut out = Vec::new();
        put_prefixed(&mut out, Prefix::U24, |o| {
            put_prefixed(o, Prefix::U16, |o| o.extend_from_slice(b"abc"));
        });
        assert_eq!(out, [0, 0, 5, 0, 3, b'a', b'b', b'c']);
    }
}
