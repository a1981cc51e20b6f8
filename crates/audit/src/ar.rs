//! A lenient, bounded reader of `ar` archives (static libraries, `.deb` packages, Go's `.a`), over
//! any `Read`: no file is opened or written here, members are streamed.
//!
//! The format: `!<arch>\n`, then per member a 60-byte header (name 16, mtime 12, uid 6, gid 6,
//! mode 8, size 10 decimal, then `` `\n ``) and the data, padded to an even offset. Names: GNU ends
//! them with `/`, keeps long ones in a `//` member (`/123` is an offset into it) and its symbol table
//! in `/` or `/SYM64/`; BSD writes `#1/N`, the name being the first N bytes of the data. Lenient
//! where writers differ: the pad byte may be `\n` (the standard) or `\0` (Go's `pack`), or missing.
//! Bounded: the long-name table and a BSD name are read into memory only up to fixed caps, every
//! step consumes input, and a member can never be read past its declared size.

use std::io::{self, Read};

pub const MAGIC: &[u8; 8] = b"!<arch>\n";
const HEADER_LEN: usize = 60;
/// A GNU long-name table larger than this is refused (the archive is reported, not read).
pub const MAX_NAME_TABLE: u64 = 16 << 20;
/// A BSD `#1/N` name longer than this is refused.
pub const MAX_BSD_NAME: u64 = 4096;

#[derive(Debug, thiserror::Error)]
pub enum ArError {
    #[error("not an ar archive (no !<arch> magic)")]
    NotAr,
    #[error("truncated: the archive ends inside {0}")]
    Truncated(&'static str),
    #[error("corrupt member header at byte {offset}: {why}")]
    BadHeader { offset: u64, why: &'static str },
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// One member: its name (GNU and BSD long names resolved) and the size of its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub size: u64,
}

/// Reads members one after another; the current member's data is read through `Read`.
pub struct ArReader<R> {
    inner: R,
    /// Bytes of the current member's data not yet read.
    remaining: u64,
    /// Whether the current member's data ends at an odd offset (a pad byte follows).
    odd: bool,
    /// A byte read where a pad was expected that turned out to start the next header.
    carried: Option<u8>,
    /// Offset of the next byte in the archive (for messages).
    offset: u64,
    long_names: Vec<u8>,
}

impl<R: Read> ArReader<R> {
    /// Checks the magic.
    pub fn new(mut inner: R) -> Result<Self, ArError> {
        let mut magic = [0u8; 8];
        read_exact_or(&mut inner, &mut magic, ArError::NotAr)?;
        if &magic != MAGIC {
            return Err(ArError::NotAr);
        }
        Ok(ArReader { inner, remaining: 0, odd: false, carried: None, offset: 8, long_names: Vec::new() })
    }

    /// The next member (skipping what is left of the current one), `None` at the end. The GNU
    /// long-name table is read here, not returned; symbol tables are returned like any member.
    pub fn next_member(&mut self) -> Result<Option<Member>, ArError> {
        loop {
            self.skip_rest()?;
            let mut header = [0u8; HEADER_LEN];
            let mut got = 0;
            if let Some(b) = self.carried.take() {
                header[0] = b;
                got = 1;
            }
            got += read_full(&mut self.inner, &mut header[got..])?;
            if got == 0 {
                return Ok(None);
            }
            let at = self.offset;
            if got < HEADER_LEN {
                // Trailing pad bytes past the last member (some writers add them) end the archive.
                if header[..got].iter().all(|&b| b == b'\n' || b == 0) {
                    return Ok(None);
                }
                return Err(ArError::Truncated("a member header"));
            }
            self.offset += HEADER_LEN as u64;
            if &header[58..60] != b"`\n" {
                return Err(ArError::BadHeader { offset: at, why: "no `\\n terminator" });
            }
            let size = parse_decimal(&header[48..58]).ok_or(ArError::BadHeader { offset: at, why: "size is not a decimal number" })?;
            self.remaining = size;
            self.odd = size % 2 == 1;
            let raw = &header[..16];
            let raw_name = trim_spaces(raw);
            if raw_name == b"//" {
                if size > MAX_NAME_TABLE {
                    return Err(ArError::BadHeader { offset: at, why: "long-name table over 16 MiB" });
                }
                let mut table = Vec::new();
                self.by_ref().take(size).read_to_end(&mut table)?;
                if (table.len() as u64) < size {
                    return Err(ArError::Truncated("the long-name table"));
                }
                self.long_names = table;
                continue;
            }
            let name = if let Some(len) = raw_name.strip_prefix(b"#1/") {
                let len = parse_decimal(len).ok_or(ArError::BadHeader { offset: at, why: "BSD name length is not a number" })?;
                if len > MAX_BSD_NAME || len > size {
                    return Err(ArError::BadHeader { offset: at, why: "BSD name longer than the member or 4 KiB" });
                }
                let mut name = Vec::new();
                self.by_ref().take(len).read_to_end(&mut name)?;
                if (name.len() as u64) < len {
                    return Err(ArError::Truncated("a BSD member name"));
                }
                // The name is NUL-padded by some writers.
                let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
                String::from_utf8_lossy(&name[..end]).into_owned()
            } else if raw_name == b"/" || raw_name == b"/SYM64/" {
                String::from_utf8_lossy(raw_name).into_owned()
            } else if let Some(index) = raw_name.strip_prefix(b"/").and_then(parse_decimal) {
                let start = usize::try_from(index).ok().filter(|&i| i < self.long_names.len());
                let start = start.ok_or(ArError::BadHeader { offset: at, why: "long name offset outside the name table" })?;
                let rest = &self.long_names[start..];
                let end = rest.iter().position(|&b| b == b'\n' || b == 0).unwrap_or(rest.len());
                let name = &rest[..end];
                String::from_utf8_lossy(name.strip_suffix(b"/").unwrap_or(name)).into_owned()
            } else {
                String::from_utf8_lossy(raw_name.strip_suffix(b"/").unwrap_or(raw_name)).into_owned()
            };
            return Ok(Some(Member { name, size: self.remaining }));
        }
    }

    /// Skips the unread data of the current member and its pad byte, if any.
    fn skip_rest(&mut self) -> Result<(), ArError> {
        if self.remaining > 0 {
            let want = self.remaining;
            let skipped = io::copy(&mut self.by_ref().take(want), &mut io::sink())?;
            if skipped < want {
                return Err(ArError::Truncated("a member's data"));
            }
        }
        if self.odd {
            self.odd = false;
            let mut pad = [0u8; 1];
            if read_full(&mut self.inner, &mut pad)? == 1 {
                self.offset += 1;
                // `\n` by the standard, `\0` by Go; anything else starts the next header.
                if pad[0] != b'\n' && pad[0] != 0 {
                    self.offset -= 1;
                    self.carried = Some(pad[0]);
                }
            }
        }
        Ok(())
    }
}

impl<R: Read> Read for ArReader<R> {
    /// The current member's data; end of stream at its end.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = usize::try_from(self.remaining).unwrap_or(usize::MAX).min(buf.len());
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the archive ends inside a member"));
        }
        self.remaining -= n as u64;
        self.offset += n as u64;
        Ok(n)
    }
}

/// Reads until `buf` is full or the stream ends; returns how many bytes came.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

fn read_exact_or(r: &mut dyn Read, buf: &mut [u8], short: ArError) -> Result<(), ArError> {
    if read_full(r, buf)? < buf.len() {
        return Err(short);
    }
    Ok(())
}

fn trim_spaces(field: &[u8]) -> &[u8] {
    let end = field.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
    &field[..end]
}

/// A space-padded decimal field (at most 20 digits, so no overflow of u64 beyond a checked add).
fn parse_decimal(field: &[u8]) -> Option<u64> {
    let digits = trim_spaces(field);
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &c| c.is_ascii_digit().then(|| n * 10 + u64::from(c - b'0')))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    fn members(bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>, ArError> {
        let mut reader = ArReader::new(bytes)?;
        let mut out = Vec::new();
        while let Some(m) = reader.next_member()? {
            let mut data = Vec::new();
            reader.read_to_end(&mut data)?;
            assert_eq!(data.len() as u64, m.size, "{}", m.name);
            out.push((m.name, data));
        }
        Ok(out)
    }

    /// Runs binutils `ar` with `args` in `dir`; false (and says so) when it is not installed.
    fn binutils_ar(dir: &Path, args: &[&str]) -> bool {
        match Command::new("ar").args(args).current_dir(dir).status() {
            Ok(s) if s.success() => true,
            other => {
                eprintln!("SKIPPING: binutils `ar` not usable here ({other:?})");
                false
            }
        }
    }

    fn member_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
        vec![
            ("short.o".into(), b"odd\n1".to_vec()),
            ("a-very-long-member-name-past-sixteen-bytes.o".into(), vec![7u8; 1001]),
            ("another-long-name-for-the-table.txt".into(), b"even".to_vec()),
            ("x".into(), Vec::new()),
        ]
        .into_iter()
        .inspect(|(n, d)| std::fs::write(dir.join(n), d).unwrap())
        .collect()
    }

    #[test]
    fn gnu_archive_by_binutils_with_long_names_and_symbol_table() {
        let tmp = tempfile::tempdir().unwrap();
        let files = member_files(tmp.path());
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        let mut args = vec!["rcs", "lib.a"];
        args.extend(&names);
        if !binutils_ar(tmp.path(), &args) {
            return;
        }
        let bytes = std::fs::read(tmp.path().join("lib.a")).unwrap();
        let got = members(&bytes).unwrap();
        // `s` wrote a symbol table `/` first (empty of symbols here, the members are not objects).
        let got: Vec<_> = got.into_iter().filter(|(n, _)| n != "/").collect();
        assert_eq!(got, files);
    }

    #[test]
    fn bsd_names_and_missing_pads() {
        // A BSD `#1/N` member whose data starts with its name, then an odd member with no pad.
        let mut bytes = MAGIC.to_vec();
        let name = b"long-bsd-name.o\0";
        let data = b"payload";
        bytes.extend(format!("{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n", "#1/16", 0, 0, 0, 644, name.len() + data.len()).as_bytes());
        bytes.extend(name);
        bytes.extend(data);
        bytes.push(b'\n');
        bytes.extend(format!("{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n", "odd/", 0, 0, 0, 644, 3).as_bytes());
        bytes.extend(b"abc");
        bytes.extend(format!("{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n", "last/", 0, 0, 0, 644, 2).as_bytes());
        bytes.extend(b"zz");
        let got = members(&bytes).unwrap();
        let expected: Vec<(String, Vec<u8>)> =
            vec![("long-bsd-name.o".into(), data.to_vec()), ("odd".into(), b"abc".to_vec()), ("last".into(), b"zz".to_vec())];
        assert_eq!(got, expected);
    }

    fn go_archive() -> Option<PathBuf> {
        let dir = Path::new("/usr/lib/go-1.19/pkg/linux_amd64");
        let path = dir.join("time.a");
        if path.is_file() {
            Some(path)
        } else {
            eprintln!("SKIPPING: no Go 1.19 installation ({} missing)", path.display());
            None
        }
    }

    /// Go's `pack` pads odd members with NUL, which the `ar` crate rejected (issue 11): every
    /// member is read, and the sizes add up to the file.
    #[test]
    fn go_archive_with_nul_padding_reads_whole() {
        let Some(path) = go_archive() else { return };
        let bytes = std::fs::read(&path).unwrap();
        let got = members(&bytes).unwrap();
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["__.PKGDEF", "_go_.o"]);
        assert!(got[1].1.starts_with(b"go object "));
        let total: u64 = 8 + got.iter().map(|(_, d)| 60 + d.len() as u64 + d.len() as u64 % 2).sum::<u64>();
        assert_eq!(total, bytes.len() as u64);
    }

    #[test]
    fn truncated_and_corrupt_archives_are_errors_not_panics() {
        let tmp = tempfile::tempdir().unwrap();
        let files = member_files(tmp.path());
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        let mut args = vec!["rc", "lib.a"];
        args.extend(&names);
        if !binutils_ar(tmp.path(), &args) {
            return;
        }
        let bytes = std::fs::read(tmp.path().join("lib.a")).unwrap();
        // Every cut is either a clean read of a prefix of the members or an error; never a panic.
        for cut in 0..bytes.len() {
            if let Ok(got) = members(&bytes[..cut]) {
                assert!(got.len() <= files.len());
            }
        }
        assert!(matches!(members(&bytes[..bytes.len() - 1]), Err(ArError::Io(_) | ArError::Truncated(_))));
        let mut bad = bytes.clone();
        bad[8 + 58] = b'X';
        assert!(matches!(members(&bad), Err(ArError::BadHeader { .. })));
        assert!(matches!(members(b"!<arch"), Err(ArError::NotAr)));
    }
}
