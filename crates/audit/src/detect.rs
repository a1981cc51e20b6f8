//! The detector: one pass over a byte stream, a multi-pattern search over large buffers, the
//! evidence an OpenSSL copy leaves in its bytes. What the patterns are and why (measured on the real
//! builds in `shared/data/openssl`, see tests/data/README.md):
//!
//! - version: `OpenSSL <version> <day> <Mon> <year>` (`OpenSSL 1.0.1f 6 Jan 2014`), the
//!   `OPENSSL_VERSION_TEXT` that libcrypto, static binaries and the tool carry, and libssl as
//!   `SSLv3 part of OpenSSL 1.0.1f 6 Jan 2014`. The date is required: it keeps prose such as
//!   "OpenSSL 1.0.1 or later" from counting.
//! - heartbeats, in order of strength:
//!   1. the compiler-flags string (`SSLeay_version(SSLEAY_CFLAGS)`, in libcrypto, the tool and any
//!      static binary linking `cversion.o`): `-DOPENSSL_NO_HEARTBEATS` in it means disabled, a flags
//!      string without it means compiled in (any `-DOPENSSL_` define, such as `-DOPENSSL_THREADS`,
//!      marks the flags string);
//!   2. heartbeat code symbols: `dtls1_heartbeat` (libssl's exported dynamic symbols, which `strip`
//!      keeps; an unstripped static binary's symbol table); `HEARTBEATING` (the tool's state name).
//!      The error strings (`heartbeat request already pending`, `SSL_F_TLS1_HEARTBEAT`) are in the
//!      no-heartbeats builds too, so they decide nothing;
//!   3. a shared libssl that exports `SSL_CTX_new` but not `dtls1_heartbeat` was built without them.
//!
//!   Otherwise the bytes don't tell: `unknown`.
//! - kind: the file name (`libssl*.so*`, `libcrypto*.so*`, `openssl`), or the tool's prompt
//!   `OpenSSL> `; any other executable is `static`. Only executables count
//!   (ELF, PE, Mach-O magic): a header or a changelog with the version text is not a copy.

use memchr::memmem;
use std::io::{self, Read, Seek, SeekFrom};

/// Read size: large, so the search runs over long stretches; reused across files.
pub const BUFFER_SIZE: usize = 1 << 17;
/// Bytes kept from the end of one buffer for the next: the longest pattern plus the version text
/// after `OpenSSL `, so a match straddling two reads is found whole in the second.
const OVERLAP: usize = 128;
/// Distinct versions kept per file (a binary with two copies is rare; a hostile file could list many).
const MAX_VERSIONS: usize = 4;

#[derive(Clone, Copy)]
enum Pattern {
    /// `OpenSSL ` then a version and date.
    OpenSsl,
    /// `OpenSSL> `, the tool's prompt.
    ToolPrompt,
    /// The compiler-flags string; `-DOPENSSL_NO_HEARTBEATS` when followed by `NO_HEARTBEATS`.
    CflagsDefine,
    HeartbeatSymbol,
    HeartbeatingState,
    SslExport,
}

/// Few, rare literals, each searched with SIMD `memmem` over the buffer (faster here than one
/// multi-pattern automaton over many short patterns, measured in bench/README.md).
/// The first pattern is the version text, searched alone in a first pass (`scan_rereadable`).
const PATTERNS: &[(&str, Pattern)] = &[
    ("OpenSSL ", Pattern::OpenSsl),
    ("OpenSSL> ", Pattern::ToolPrompt),
    ("-DOPENSSL_", Pattern::CflagsDefine),
    ("dtls1_heartbeat", Pattern::HeartbeatSymbol),
    ("HEARTBEATING", Pattern::HeartbeatingState),
    ("SSL_CTX_new\0", Pattern::SslExport),
];

/// What one file's bytes say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evidence {
    /// Distinct OpenSSL versions, in the order first seen (`1.0.1f`, `1.0.1e-fips`).
    pub versions: Vec<String>,
    pub executable: bool,
    pub no_heartbeats_flag: bool,
    pub cflags_seen: bool,
    pub heartbeat_symbol: bool,
    pub heartbeating_state: bool,
    pub ssl_export: bool,
    pub tool_message: bool,
    pub bytes: u64,
}

/// The compiled patterns, built once and shared by every scan.
pub struct Detector {
    finders: Vec<(memmem::Finder<'static>, Pattern)>,
}

impl Default for Detector {
    fn default() -> Self {
        Self::new()
    }
}

impl Detector {
    pub fn new() -> Self {
        Detector { finders: PATTERNS.iter().map(|(p, kind)| (memmem::Finder::new(p.as_bytes()), *kind)).collect() }
    }

    /// Scan a stream whose first bytes (`head`, already read to sniff the format) are given apart,
    /// for every pattern in one pass. `buf` is the reusable read buffer (grown to `BUFFER_SIZE` once).
    pub fn scan(&self, head: &[u8], rest: &mut dyn Read, buf: &mut Vec<u8>) -> io::Result<Evidence> {
        self.scan_with(&self.finders, head, rest, buf)
    }

    /// The same evidence as [`Detector::scan`] for a stream that can be read again from its start
    /// (`head` is its first bytes, `rest` positioned after them): a first pass looks only for the
    /// version text, which every copy has; only a stream that has it (a handful per host) is read
    /// again for every pattern. One pattern per byte instead of six on all the rest.
    pub fn scan_rereadable<R: Read + Seek>(&self, head: &[u8], rest: &mut R, buf: &mut Vec<u8>) -> io::Result<Evidence> {
        let quick = self.scan_with(&self.finders[..1], head, rest, buf)?;
        if quick.versions.is_empty() {
            return Ok(quick);
        }
        rest.seek(SeekFrom::Start(0))?;
        self.scan_with(&self.finders, &[], rest, buf)
    }

    /// Two passes as [`Detector::scan_rereadable`], over bytes in memory.
    pub fn scan_bytes(&self, data: &[u8], buf: &mut Vec<u8>) -> Evidence {
        let mut cursor = io::Cursor::new(data);
        // Reading from memory cannot fail.
        self.scan_rereadable(&[], &mut cursor, buf).unwrap_or_default()
    }

    fn scan_with(&self, finders: &[(memmem::Finder<'static>, Pattern)], head: &[u8], rest: &mut dyn Read, buf: &mut Vec<u8>) -> io::Result<Evidence> {
        let mut evidence = Evidence::default();
        let mut first = true;
        if buf.len() < BUFFER_SIZE {
            buf.resize(BUFFER_SIZE, 0);
        }
        let mut filled = head.len().min(BUFFER_SIZE);
        buf[..filled].copy_from_slice(&head[..filled]);
        evidence.bytes = filled as u64;
        let mut head_rest = &head[filled..];
        let mut eof = false;
        loop {
            // Fill the buffer (short reads are normal for decompressors).
            while filled < buf.len() && !eof {
                let n = if !head_rest.is_empty() {
                    let n = head_rest.len().min(buf.len() - filled);
                    buf[filled..filled + n].copy_from_slice(&head_rest[..n]);
                    head_rest = &head_rest[n..];
                    n
                } else {
                    match rest.read(&mut buf[filled..]) {
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    }
                };
                if n == 0 {
                    eof = true;
                }
                filled += n;
                evidence.bytes += n as u64;
            }
            if first {
                evidence.executable = is_executable(&buf[..filled]);
                first = false;
            }
            let keep_from = if eof { filled } else { filled.saturating_sub(OVERLAP) };
            let window = &buf[..filled];
            for (finder, kind) in finders {
                for start in finder.find_iter(&window[..keep_from.min(window.len())]) {
                    let after = &window[start + finder.needle().len()..];
                    match kind {
                        Pattern::OpenSsl => {
                            if let Some(v) = parse_version_text(after) {
                                if !evidence.versions.contains(&v) && evidence.versions.len() < MAX_VERSIONS {
                                    evidence.versions.push(v);
                                }
                            }
                        }
                        Pattern::CflagsDefine => {
                            if after.starts_with(b"NO_HEARTBEATS") {
                                evidence.no_heartbeats_flag = true;
                            } else {
                                evidence.cflags_seen = true;
                            }
                        }
                        Pattern::ToolPrompt => evidence.tool_message = true,
                        Pattern::HeartbeatSymbol => evidence.heartbeat_symbol = true,
                        Pattern::HeartbeatingState => evidence.heartbeating_state = true,
                        Pattern::SslExport => evidence.ssl_export = true,
                    }
                }
            }
            if eof {
                break;
            }
            buf.copy_within(keep_from..filled, 0);
            filled -= keep_from;
        }
        Ok(evidence)
    }
}

/// Whether a file starting with `head` is an executable (ELF, PE, Mach-O thin or fat): the only
/// files that can be an OpenSSL copy. The walker reads no further into any other file.
///
/// `0xCAFEBABE` is both Mach-O's fat header and Java's class file: the next big-endian word is the
/// fat header's architecture count (a handful) or the class file's `minor << 16 | major`, whose
/// major version is 45 or more, so it is at least 45: a `.class` is not an executable.
pub fn is_executable(head: &[u8]) -> bool {
    const MAGICS: &[&[u8]] = &[
        b"\x7fELF",
        b"MZ",
        &[0xfe, 0xed, 0xfa, 0xce],
        &[0xfe, 0xed, 0xfa, 0xcf],
        &[0xce, 0xfa, 0xed, 0xfe],
        &[0xcf, 0xfa, 0xed, 0xfe],
    ];
    const JAVA_MIN_MAJOR: u32 = 45;
    if let Some(word) = head.strip_prefix(&[0xca, 0xfe, 0xba, 0xbe]).and_then(|rest| rest.get(..4)) {
        let count = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        return count < JAVA_MIN_MAJOR;
    }
    MAGICS.iter().any(|m| head.starts_with(m))
}

/// `1.0.1f 6 Jan 2014` after `OpenSSL `: the version token, then a date. Returns the version.
pub fn parse_version_text(after: &[u8]) -> Option<String> {
    let end = after.iter().take(40).position(|&c| c == b' ')?;
    let version = &after[..end];
    let ok_version = version.first().is_some_and(u8::is_ascii_digit)
        && version.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'.' || c == b'-' || c == b'_')
        && version.contains(&b'.');
    if !ok_version {
        return None;
    }
    let mut date = after[end + 1..].split(|&c| c == b' ');
    let day = date.next()?;
    let month = date.next()?;
    let year = date.next()?;
    let year = year.get(..4)?;
    let date_ok = (1..=2).contains(&day.len())
        && day.iter().all(u8::is_ascii_digit)
        && month.len() == 3
        && month.iter().all(u8::is_ascii_alphabetic)
        && year.iter().all(u8::is_ascii_digit);
    date_ok.then(|| String::from_utf8_lossy(version).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_text_needs_a_date() {
        assert_eq!(parse_version_text(b"1.0.1f 6 Jan 2014\0"), Some("1.0.1f".into()));
        assert_eq!(parse_version_text(b"1.0.1e-fips 11 Feb 2013"), Some("1.0.1e-fips".into()));
        assert_eq!(parse_version_text(b"1.0.2-beta1 24 Feb 2014"), Some("1.0.2-beta1".into()));
        assert_eq!(parse_version_text(b"1.0.1 or later"), None);
        assert_eq!(parse_version_text(b"error"), None);
        assert_eq!(parse_version_text(b"1.0.1f 6 Jan"), None);
    }

    /// The two-pass scan finds the evidence before the version text too (libssl's exported
    /// symbols come before its version text), and reads a file without it once.
    #[test]
    fn two_passes_find_what_one_pass_finds() {
        let detector = Detector::new();
        let mut data = vec![0u8; BUFFER_SIZE * 3];
        data[..4].copy_from_slice(b"\x7fELF");
        let early = b"dtls1_heartbeat\0SSL_CTX_new\0HEARTBEATING\0-DOPENSSL_THREADS";
        data[100..100 + early.len()].copy_from_slice(early);
        let mut buf = Vec::new();
        let without_version = detector.scan_bytes(&data, &mut buf);
        assert!(without_version.versions.is_empty() && without_version.executable);
        assert_eq!(without_version.bytes, data.len() as u64);
        let late = b"OpenSSL 1.0.1f 6 Jan 2014";
        let at = BUFFER_SIZE * 2 + 7;
        data[at..at + late.len()].copy_from_slice(late);
        let one_pass = detector.scan(&[], &mut &data[..], &mut buf).expect("read");
        assert!(one_pass.heartbeat_symbol && one_pass.ssl_export && one_pass.heartbeating_state && one_pass.cflags_seen);
        assert_eq!(detector.scan_bytes(&data, &mut buf), one_pass);
    }

    #[test]
    fn class_files_are_not_fat_mach_o() {
        // Java 8 class (major 52), Java 1.1 (45), Java 21 (65) with a minor version: not executables.
        assert!(!is_executable(&[0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 52, 1]));
        assert!(!is_executable(&[0xca, 0xfe, 0xba, 0xbe, 0, 3, 0, 45]));
        assert!(!is_executable(&[0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 65]));
        // A universal binary with two architectures (x86_64, arm64) is.
        assert!(is_executable(&[0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 2, 1, 0, 0, 7]));
        assert!(is_executable(b"\x7fELF\x02\x01"));
        assert!(is_executable(b"MZ\x90\0"));
        assert!(!is_executable(b"#!/bin/sh\n"));
        assert!(!is_executable(b"\xca\xfe\xba\xbe"));
    }

    #[test]
    fn a_match_straddling_two_reads_is_found() {
        let detector = Detector::new();
        for at in [BUFFER_SIZE - 10, BUFFER_SIZE - 30, BUFFER_SIZE - 140, BUFFER_SIZE + 5] {
            let mut data = vec![0u8; BUFFER_SIZE * 2];
            data[..4].copy_from_slice(b"\x7fELF");
            let text = b"OpenSSL 1.0.1f 6 Jan 2014\0-DOPENSSL_NO_HEARTBEATS";
            data[at..at + text.len()].copy_from_slice(text);
            let mut buf = Vec::new();
            let ev = detector.scan(&data[..16], &mut &data[16..], &mut buf).expect("read");
            assert_eq!(ev.versions, vec!["1.0.1f".to_string()], "at {at}");
            assert!(ev.no_heartbeats_flag, "at {at}");
            assert_eq!(ev.bytes, data.len() as u64);
            assert_eq!(detector.scan_bytes(&data, &mut buf), ev, "at {at}");
        }
    }
}
