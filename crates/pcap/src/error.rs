use thiserror::Error;

/// Why a capture could not be analysed at all. Damage *inside* a capture (a truncated last packet, a
/// corrupt block, an I/O error after some packets) is not an error: the analysis keeps what it found
/// and reports the damage in [`crate::FileStats::warnings`] with `partial` set.
#[derive(Debug, Error)]
pub enum PcapError {
    #[error("{name}: cannot read: {source}")]
    Io {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{name}: empty file")]
    Empty { name: String },
    #[error("{name}: not a pcap or pcapng capture (first bytes {first_bytes})")]
    NotACapture { name: String, first_bytes: String },
    #[error("{name}: capture file header is truncated or invalid ({detail})")]
    BadHeader { name: String, detail: String },
}
