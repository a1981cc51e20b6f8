//! The one error type of this crate; every message is meant to be shown to the user as it is.

use std::path::PathBuf;

/// Why a target, port list, exclusion or target file was rejected.
///
/// The `Display` text names the offending input and says what is wrong with it, e.g.
/// `invalid target "10.0.0.0/33": prefix length 33 is larger than 32`.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// A target spec (host, address, CIDR, range, with optional port suffix) is malformed.
    #[error("invalid target {spec:?}: {reason}")]
    InvalidTarget {
        /// The spec as the user wrote it.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A port or port-list item is malformed or out of range.
    #[error("invalid port {item:?}: {reason}")]
    InvalidPort {
        /// The offending item (or the whole list when the list itself is the problem).
        item: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An exclusion spec is malformed (same syntax as targets, but without ports).
    #[error("invalid exclusion {spec:?}: {reason}")]
    InvalidExclusion {
        /// The spec as the user wrote it.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `--shard` that is not `K/N` with `0 <= K < N`.
    #[error("invalid shard {text:?}: {reason}")]
    InvalidShard {
        /// The shard as given.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An error on one line of a target or exclusion list.
    #[error("{origin} line {line}: {source}")]
    AtLine {
        /// Where the list came from: a file path, or a label such as `<stdin>`.
        origin: String,
        /// 1-based line number.
        line: usize,
        /// The error on that line.
        source: Box<TargetError>,
    },
    /// A target or exclusion file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file that could not be read.
        path: PathBuf,
        /// The operating-system error.
        source: std::io::Error,
    },
}

impl TargetError {
    pub(crate) fn target(spec: &str, reason: impl Into<String>) -> Self {
        TargetError::InvalidTarget {
            spec: spec.to_owned(),
            reason: reason.into(),
        }
    }

    pub(crate) fn port(item: &str, reason: impl Into<String>) -> Self {
        TargetError::InvalidPort {
            item: item.to_owned(),
            reason: reason.into(),
        }
    }

    pub(crate) fn at_line(self, origin: &str, line: usize) -> Self {
        TargetError::AtLine {
            origin: origin.to_owned(),
            line,
            source: Box::new(self),
        }
    }

    /// For [`TargetError::AtLine`], the 1-based line number; `None` otherwise.
    pub fn line(&self) -> Option<usize> {
        match self {
            TargetError::AtLine { line, .. } => Some(*line),
            _ => None,
        }
    }
}
