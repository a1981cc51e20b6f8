use thiserror::Error;

/// Why bytes could not be understood. Variants locate the problem so that a scan log says what the
/// peer actually sent.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    #[error("truncated {what}: needed {needed} more bytes")]
    Truncated { what: &'static str, needed: usize },
    #[error("{what} has {extra} unexpected trailing bytes")]
    TrailingBytes { what: &'static str, extra: usize },
    #[error("not TLS: first bytes {0:02x?} are not a TLS record header")]
    NotTls([u8; 5]),
    #[error("record length {length} exceeds the limit of {limit} bytes")]
    RecordTooLong { length: usize, limit: usize },
    #[error("handshake message of {length} bytes exceeds the limit of {limit} bytes")]
    HandshakeTooLong { length: usize, limit: usize },
    #[error("buffered data would exceed the limit of {limit} bytes")]
    BufferFull { limit: usize },
    #[error("invalid {what}: {detail}")]
    Invalid { what: &'static str, detail: String },
}

impl WireError {
    pub(crate) fn invalid(what: &'static str, detail: impl Into<String>) -> Self {
        WireError::Invalid { what, detail: detail.into() }
    }
}
