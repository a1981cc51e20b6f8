//! rpm's package database, read only as far as `audit` needs: the name, `[epoch:]version-release`
//! and file list of the packages of interest. Two on-disk formats hold the same header blobs:
//! SQLite `rpmdb.sqlite` (table `Packages(hnum, blob)`; Fedora ≥ 33, RHEL 9) and the Berkeley DB
//! hash file `Packages` (RHEL/CentOS ≤ 8, Amazon Linux, older SUSE and Fedora). Both are parsed
//! here from bytes in memory, read-only, every offset and count checked against the buffer: no
//! SQLite or Berkeley DB code runs on hostile input, and nothing is written to disk.

use thiserror::Error;

/// Header entries allowed in one blob (rpm's own `hdrchkTags` bound is 2^24; real headers hold
/// a few hundred).
const MAX_HEADER_ENTRIES: usize = 1 << 16;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum RpmDbError {
    #[error("not an rpm database: {0}")]
    NotADatabase(&'static str),
    #[error("corrupt rpm database: {0}")]
    Corrupt(String),
    #[error("unsupported rpm database: {0}")]
    Unsupported(&'static str),
}

/// One installed package, as much of it as the audit uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpmPackage {
    pub name: String,
    /// `[epoch:]version-release`, as rpm compares it.
    pub evr: String,
    pub arch: String,
    /// Absolute paths of the package's files (directories included, as rpm lists them).
    pub files: Vec<String>,
}

const TAG_NAME: u32 = 1000;
const TAG_VERSION: u32 = 1001;
const TAG_RELEASE: u32 = 1002;
const TAG_EPOCH: u32 = 1003;
const TAG_ARCH: u32 = 1022;
const TAG_OLDFILENAMES: u32 = 1027;
const TAG_DIRINDEXES: u32 = 1116;
const TAG_BASENAMES: u32 = 1117;
const TAG_DIRNAMES: u32 = 1118;

const TYPE_INT32: u32 = 4;
const TYPE_STRING: u32 = 6;
const TYPE_STRING_ARRAY: u32 = 8;
const TYPE_I18NSTRING: u32 = 9;

/// A bare header blob as rpm stores it in its database: entry count and data size (big-endian),
/// the entries (tag, type, offset, count), then the data store.
struct Header<'a> {
    entries: &'a [u8],
    data: &'a [u8],
}

fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

impl<'a> Header<'a> {
    fn parse(blob: &'a [u8]) -> Option<Header<'a>> {
        let count = usize::try_from(be32(blob, 0)?).ok()?;
        let size = usize::try_from(be32(blob, 4)?).ok()?;
        if count == 0 || count > MAX_HEADER_ENTRIES {
            return None;
        }
        let entries_end = 8usize.checked_add(count.checked_mul(16)?)?;
        let data_end = entries_end.checked_add(size)?;
        Some(Header { entries: blob.get(8..entries_end)?, data: blob.get(entries_end..data_end)? })
    }

    /// (type, offset, count) of `tag`'s entry.
    fn entry(&self, tag: u32) -> Option<(u32, usize, usize)> {
        self.entries
            .chunks_exact(16)
            .find(|e| be32(e, 0) == Some(tag))
            .and_then(|e| Some((be32(e, 4)?, usize::try_from(be32(e, 8)?).ok()?, usize::try_from(be32(e, 12)?).ok()?)))
    }

    /// `count` NUL-terminated strings from `offset` (each must end inside the data store).
    fn strings(&self, offset: usize, count: usize) -> Option<Vec<&'a str>> {
        let mut at = offset;
        // Each string takes at least its NUL: a count beyond the data left is a lie.
        if count > self.data.len().saturating_sub(offset) {
            return None;
        }
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            let rest = self.data.get(at..)?;
            let len = memchr::memchr(0, rest)?;
            out.push(std::str::from_utf8(&rest[..len]).ok()?);
            at += len + 1;
        }
        Some(out)
    }

    fn string(&self, tag: u32) -> Option<&'a str> {
        let (kind, offset, _) = self.entry(tag)?;
        if !matches!(kind, TYPE_STRING | TYPE_I18NSTRING) {
            return None;
        }
        self.strings(offset, 1)?.into_iter().next()
    }

    fn string_array(&self, tag: u32) -> Option<Vec<&'a str>> {
        let (kind, offset, count) = self.entry(tag)?;
        (kind == TYPE_STRING_ARRAY).then_some(())?;
        self.strings(offset, count)
    }

    fn int32_array(&self, tag: u32) -> Option<Vec<u32>> {
        let (kind, offset, count) = self.entry(tag)?;
        (kind == TYPE_INT32).then_some(())?;
        let end = offset.checked_add(count.checked_mul(4)?)?;
        let bytes = self.data.get(offset..end)?;
        Some(bytes.chunks_exact(4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])).collect())
    }
}

/// The package in one header blob, its file list only if `wanted(name)`. `None` for a blob that
/// is not a package header (rpm's BDB keeps a counter record beside them) or is malformed.
pub fn parse_header(blob: &[u8], wanted: impl Fn(&str) -> bool) -> Option<RpmPackage> {
    let header = Header::parse(blob)?;
    let name = header.string(TAG_NAME)?;
    let version = header.string(TAG_VERSION)?;
    let release = header.string(TAG_RELEASE)?;
    let epoch = header.int32_array(TAG_EPOCH).and_then(|e| e.first().copied());
    let evr = match epoch {
        Some(e) => format!("{e}:{version}-{release}"),
        None => format!("{version}-{release}"),
    };
    let arch = header.string(TAG_ARCH).unwrap_or_default().to_string();
    let mut files = Vec::new();
    if wanted(name) {
        if let (Some(bases), Some(dirs), Some(index)) =
            (header.string_array(TAG_BASENAMES), header.string_array(TAG_DIRNAMES), header.int32_array(TAG_DIRINDEXES))
        {
            for (base, i) in bases.iter().zip(index) {
                if let Some(dir) = usize::try_from(i).ok().and_then(|i| dirs.get(i)) {
                    files.push(format!("{dir}{base}"));
                }
            }
        } else if let Some(old) = header.string_array(TAG_OLDFILENAMES) {
            files.extend(old.iter().map(|f| f.to_string()));
        }
    }
    Some(RpmPackage { name: name.to_string(), evr, arch, files })
}

/// Which of rpm's database files a path names, by its normalised path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpmDbKind {
    Sqlite,
    BerkeleyDb,
}

pub fn rpmdb_kind(key: &str) -> Option<RpmDbKind> {
    let (dir, file) = key.rsplit_once('/')?;
    if dir != "var/lib/rpm" && dir != "usr/lib/sysimage/rpm" {
        return None;
    }
    match file {
        "rpmdb.sqlite" => Some(RpmDbKind::Sqlite),
        "Packages" => Some(RpmDbKind::BerkeleyDb),
        _ => None,
    }
}

/// Every header blob of the database, handed to `each` in storage order.
pub fn read_blobs(kind: RpmDbKind, bytes: &[u8], each: &mut dyn FnMut(&[u8])) -> Result<(), RpmDbError> {
    match kind {
        RpmDbKind::Sqlite => sqlite::packages(bytes, each),
        RpmDbKind::BerkeleyDb => bdb::hash_values(bytes, each),
    }
}

/// A read-only walk of one SQLite table b-tree (the file format of sqlite.org/fileformat2.html).
mod sqlite {
    use super::RpmDbError;
    use std::collections::HashSet;

    fn corrupt(what: &str) -> RpmDbError {
        RpmDbError::Corrupt(format!("sqlite: {what}"))
    }

    struct Db<'a> {
        bytes: &'a [u8],
        page_size: usize,
        usable: usize,
        pages: usize,
    }

    /// A big-endian varint of up to 9 bytes: (value, length).
    fn varint(b: &[u8]) -> Option<(u64, usize)> {
        let mut v = 0u64;
        for i in 0..9 {
            let byte = *b.get(i)?;
            if i == 8 {
                return Some(((v << 8) | u64::from(byte), 9));
            }
            v = (v << 7) | u64::from(byte & 0x7f);
            if byte & 0x80 == 0 {
                return Some((v, i + 1));
            }
        }
        None
    }

    fn be16(b: &[u8], at: usize) -> Option<usize> {
        b.get(at..at + 2).map(|x| usize::from(u16::from_be_bytes([x[0], x[1]])))
    }

    impl<'a> Db<'a> {
        fn open(bytes: &'a [u8]) -> Result<Db<'a>, RpmDbError> {
            if !bytes.starts_with(b"SQLite format 3\0") {
                return Err(RpmDbError::NotADatabase("no SQLite header"));
            }
            let raw = be16(bytes, 16).ok_or_else(|| corrupt("header cut short"))?;
            let page_size = if raw == 1 { 65536 } else { raw };
            if !page_size.is_power_of_two() || !(512..=65536).contains(&page_size) {
                return Err(corrupt("bad page size"));
            }
            let reserved = usize::from(*bytes.get(20).ok_or_else(|| corrupt("header cut short"))?);
            let usable = page_size - reserved;
            if usable < 480 {
                return Err(corrupt("bad reserved size"));
            }
            Ok(Db { bytes, page_size, usable, pages: bytes.len() / page_size })
        }

        fn page(&self, number: u64) -> Result<&'a [u8], RpmDbError> {
            let n = usize::try_from(number).ok().filter(|n| (1..=self.pages).contains(n)).ok_or_else(|| corrupt("page number out of the file"))?;
            let start = (n - 1) * self.page_size;
            Ok(&self.bytes[start..start + self.page_size])
        }

        /// A cell's payload: the local part, then the overflow chain, up to `size` bytes.
        fn payload(&self, cell: &[u8], size: usize) -> Result<Vec<u8>, RpmDbError> {
            let u = self.usable;
            let max_local = u - 35;
            let min_local = (u - 12) * 32 / 255 - 23;
            let local = if size <= max_local {
                size
            } else {
                let k = min_local + (size - min_local) % (u - 4);
                if k <= max_local {
                    k
                } else {
                    min_local
                }
            };
            let mut out = Vec::with_capacity(size.min(self.bytes.len()));
            out.extend_from_slice(cell.get(..local).ok_or_else(|| corrupt("cell beyond its page"))?);
            if local < size {
                let mut next = u64::from(super::be32(cell, local).ok_or_else(|| corrupt("cell beyond its page"))?);
                let mut hops = 0;
                while out.len() < size {
                    hops += 1;
                    if next == 0 || hops > self.pages {
                        return Err(corrupt("overflow chain ends early or loops"));
                    }
                    let page = self.page(next)?;
                    next = u64::from(super::be32(page, 0).unwrap_or(0));
                    let take = (size - out.len()).min(u - 4);
                    out.extend_from_slice(&page[4..4 + take]);
                }
            }
            Ok(out)
        }

        /// Every (rowid, record) of the table whose b-tree starts at `root`.
        fn table(&self, root: u64, each: &mut dyn FnMut(&[u8]) -> Result<(), RpmDbError>) -> Result<(), RpmDbError> {
            // Every page enters the stack once (a real b-tree never names a page twice), and the
            // payloads handed out add up to no more than the file: hostile files that reuse pages
            // or cells cost no more than real ones.
            let mut stack = vec![root];
            let mut seen = HashSet::from([root]);
            let mut budget = self.bytes.len();
            while let Some(number) = stack.pop() {
                let page = self.page(number)?;
                let at = if number == 1 { 100 } else { 0 };
                let kind = *page.get(at).ok_or_else(|| corrupt("page cut short"))?;
                let cells = be16(page, at + 3).ok_or_else(|| corrupt("page cut short"))?;
                let (header, interior) = match kind {
                    13 => (8, false),
                    5 => (12, true),
                    _ => return Err(corrupt("not a table b-tree page")),
                };
                let pointer =
                    |i: usize| be16(page, at + header + 2 * i).filter(|&o| o < page.len()).ok_or_else(|| corrupt("cell pointer out of the page"));
                if interior {
                    // Pushed in reverse so rows come out in rowid order.
                    let right = super::be32(page, at + 8).ok_or_else(|| corrupt("page cut short"))?;
                    let mut children = vec![right];
                    for i in (0..cells).rev() {
                        children.push(super::be32(page, pointer(i)?).ok_or_else(|| corrupt("cell beyond its page"))?);
                    }
                    for child in children.into_iter().map(u64::from) {
                        if !seen.insert(child) {
                            return Err(corrupt("b-tree page named twice"));
                        }
                        stack.push(child);
                    }
                    continue;
                }
                for i in 0..cells {
                    let cell = &page[pointer(i)?..];
                    let (size, a) = varint(cell).ok_or_else(|| corrupt("cell beyond its page"))?;
                    let (_rowid, b) = varint(&cell[a..]).ok_or_else(|| corrupt("cell beyond its page"))?;
                    let size = usize::try_from(size).ok().filter(|&s| s <= budget).ok_or_else(|| corrupt("payloads larger than the file"))?;
                    budget -= size;
                    let payload = self.payload(&cell[a + b..], size)?;
                    each(&payload)?;
                }
            }
            Ok(())
        }
    }

    #[derive(Debug, PartialEq)]
    pub(super) enum Value<'a> {
        Null,
        Int(i64),
        Text(&'a [u8]),
        Blob(&'a [u8]),
        Other,
    }

    /// The columns of one record (header of serial types, then the values).
    pub(super) fn record(payload: &[u8]) -> Option<Vec<Value<'_>>> {
        let (header_len, mut at) = varint(payload)?;
        let header_len = usize::try_from(header_len).ok().filter(|&h| h <= payload.len())?;
        let mut body = header_len;
        let mut out = Vec::new();
        while at < header_len {
            let (serial, n) = varint(&payload[at..header_len])?;
            at += n;
            let (len, value) = match serial {
                0 => (0, Value::Null),
                1..=6 => {
                    let len = [1, 2, 3, 4, 6, 8][usize::try_from(serial - 1).ok()?];
                    let bytes = payload.get(body..body + len)?;
                    let mut v = if bytes[0] & 0x80 != 0 { -1i64 } else { 0 };
                    for &b in bytes {
                        v = (v << 8) | i64::from(b);
                    }
                    (len, Value::Int(v))
                }
                7 => (8, Value::Other),
                8 => (0, Value::Int(0)),
                9 => (0, Value::Int(1)),
                n if n >= 12 => {
                    let len = usize::try_from((n - 12) / 2).ok()?;
                    let bytes = payload.get(body..body.checked_add(len)?)?;
                    (len, if n % 2 == 0 { Value::Blob(bytes) } else { Value::Text(bytes) })
                }
                _ => return None,
            };
            body = body.checked_add(len)?;
            if body > payload.len() {
                return None;
            }
            out.push(value);
        }
        Some(out)
    }

    /// Each blob of rpm's `Packages` table.
    pub(super) fn packages(bytes: &[u8], each: &mut dyn FnMut(&[u8])) -> Result<(), RpmDbError> {
        let db = Db::open(bytes)?;
        // sqlite_schema (page 1): type, name, tbl_name, rootpage, sql.
        let mut root = None;
        db.table(1, &mut |payload| {
            if let Some(row) = record(payload) {
                if let [Value::Text(b"table"), Value::Text(b"Packages"), _, Value::Int(page), ..] = row.as_slice() {
                    root = u64::try_from(*page).ok();
                }
            }
            Ok(())
        })?;
        let root = root.ok_or(RpmDbError::NotADatabase("no Packages table"))?;
        db.table(root, &mut |payload| {
            // Packages(hnum INTEGER PRIMARY KEY, blob BLOB): hnum is the rowid, stored as NULL.
            let row = record(payload).ok_or_else(|| corrupt("bad record"))?;
            if let Some(Value::Blob(blob)) = row.get(1) {
                each(blob);
            }
            Ok(())
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn varints_and_records() {
            assert_eq!(varint(&[0x05]), Some((5, 1)));
            assert_eq!(varint(&[0x81, 0x00]), Some((128, 2)));
            assert_eq!(varint(&[0xff; 9]), Some((u64::MAX, 9)));
            assert_eq!(varint(&[0x81]), None);
            // header 3 bytes: NULL, blob of 2 bytes; body: the blob.
            assert_eq!(record(&[3, 0, 16, 0xaa, 0xbb]), Some(vec![Value::Null, Value::Blob(&[0xaa, 0xbb])]));
            assert_eq!(record(&[3, 0, 18, 0xaa]), None, "a value past the payload");
            assert_eq!(record(&[2, 2, 0xff, 0xfe]), Some(vec![Value::Int(-2)]));
        }

        #[test]
        fn hostile_files_are_errors() {
            assert!(matches!(packages(b"SQLite format 3\0", &mut |_| ()), Err(RpmDbError::Corrupt(_))));
            let mut page = vec![0u8; 1024];
            page[..16].copy_from_slice(b"SQLite format 3\0");
            page[16..18].copy_from_slice(&1024u16.to_be_bytes());
            page[100] = 5; // interior page whose right child is itself
            page[108..112].copy_from_slice(&1u32.to_be_bytes());
            assert!(matches!(packages(&page, &mut |_| ()), Err(RpmDbError::Corrupt(_))));
            assert!(matches!(packages(b"not sqlite", &mut |_| ()), Err(RpmDbError::NotADatabase(_))));
        }
    }
}

/// A read-only walk of a Berkeley DB hash file (db_page.h / hash.h of Berkeley DB 4.x–5.x, as
/// go-rpmdb reads rpm's `Packages`): the metadata page, then every hash page's key/data pairs,
/// data stored inline or on a chain of overflow pages.
mod bdb {
    use super::RpmDbError;

    const HASH_MAGIC: u32 = 0x0006_1561;
    const P_HASH_UNSORTED: u8 = 2;
    const P_OVERFLOW: u8 = 7;
    const P_HASHMETA: u8 = 8;
    const P_HASH: u8 = 13;
    const H_KEYDATA: u8 = 1;
    const H_OFFPAGE: u8 = 3;
    /// The generic page header: lsn, pgno, prev, next, entries, hf_offset, level, type.
    const PAGE_HEADER: usize = 26;

    fn corrupt(what: &str) -> RpmDbError {
        RpmDbError::Corrupt(format!("Berkeley DB: {what}"))
    }

    struct File<'a> {
        bytes: &'a [u8],
        page_size: usize,
        pages: usize,
        big_endian: bool,
    }

    impl<'a> File<'a> {
        fn u32(&self, b: &[u8], at: usize) -> Option<u32> {
            let x: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
            Some(if self.big_endian { u32::from_be_bytes(x) } else { u32::from_le_bytes(x) })
        }

        fn u16(&self, b: &[u8], at: usize) -> Option<usize> {
            let x: [u8; 2] = b.get(at..at + 2)?.try_into().ok()?;
            Some(usize::from(if self.big_endian { u16::from_be_bytes(x) } else { u16::from_le_bytes(x) }))
        }

        fn page(&self, number: u32) -> Option<&'a [u8]> {
            let n = usize::try_from(number).ok().filter(|&n| n < self.pages)?;
            self.bytes.get(n * self.page_size..(n + 1) * self.page_size)
        }

        /// An off-page item: `len` bytes on the overflow chain starting at `first`.
        fn overflow(&self, first: u32, len: usize) -> Result<Vec<u8>, RpmDbError> {
            if len > self.bytes.len() {
                return Err(corrupt("overflow item larger than the file"));
            }
            let mut out = Vec::with_capacity(len);
            let (mut next, mut hops) = (first, 0);
            while out.len() < len {
                hops += 1;
                if next == 0 || hops > self.pages {
                    return Err(corrupt("overflow chain ends early or loops"));
                }
                let page = self.page(next).ok_or_else(|| corrupt("overflow page out of the file"))?;
                if page[25] != P_OVERFLOW {
                    return Err(corrupt("overflow chain leads to another kind of page"));
                }
                // On an overflow page hf_offset counts the bytes it holds.
                let used = self.u16(page, 22).unwrap_or(0);
                let data = page.get(PAGE_HEADER..PAGE_HEADER + used).ok_or_else(|| corrupt("overflow page overfilled"))?;
                out.extend_from_slice(&data[..data.len().min(len - out.len())]);
                next = self.u32(page, 16).unwrap_or(0);
            }
            Ok(out)
        }
    }

    pub(super) fn hash_values(bytes: &[u8], each: &mut dyn FnMut(&[u8])) -> Result<(), RpmDbError> {
        let magic = bytes.get(12..16).ok_or(RpmDbError::NotADatabase("shorter than a metadata page"))?;
        let big_endian = match magic {
            m if m == HASH_MAGIC.to_le_bytes() => false,
            m if m == HASH_MAGIC.to_be_bytes() => true,
            _ => return Err(RpmDbError::NotADatabase("no Berkeley DB hash magic")),
        };
        let mut file = File { bytes, page_size: 0, pages: 0, big_endian };
        let page_size = file.u32(bytes, 20).and_then(|s| usize::try_from(s).ok()).unwrap_or(0);
        if !page_size.is_power_of_two() || !(512..=65536).contains(&page_size) {
            return Err(corrupt("bad page size"));
        }
        if bytes.get(25) != Some(&P_HASHMETA) {
            return Err(corrupt("page 0 is not a hash metadata page"));
        }
        if bytes.get(24).is_some_and(|&alg| alg != 0) {
            return Err(RpmDbError::Unsupported("encrypted Berkeley DB"));
        }
        file.page_size = page_size;
        file.pages = bytes.len() / page_size;
        if file.pages == 0 {
            return Err(corrupt("cut short inside the metadata page"));
        }
        let last = file.u32(bytes, 32).and_then(|p| usize::try_from(p).ok()).unwrap_or(0);
        if last >= file.pages {
            return Err(corrupt(&format!("cut short: {} of {} pages", file.pages, last + 1)));
        }
        // Items handed out add up to no more than the file (in a real one each byte is one
        // item's): overlapping items or shared overflow chains cost no more than a real file.
        let mut budget = bytes.len();
        let mut spend = |len: usize| -> Result<(), RpmDbError> {
            budget = budget.checked_sub(len).ok_or_else(|| corrupt("items overlap: more data than the file holds"))?;
            Ok(())
        };
        for number in 1..=last {
            let Some(page) = file.page(number as u32) else {
                break;
            };
            if !matches!(page[25], P_HASH | P_HASH_UNSORTED) {
                continue;
            }
            let entries = file.u16(page, 20).unwrap_or(0);
            if PAGE_HEADER + 2 * entries > page_size {
                return Err(corrupt("hash page with more entries than room"));
            }
            let offset = |i: usize| file.u16(page, PAGE_HEADER + 2 * i).unwrap_or(0);
            // Items fill the page from its end: item i runs up to item i-1's start.
            let item = |i: usize| -> Option<&[u8]> {
                let end = if i == 0 { page_size } else { offset(i - 1) };
                page.get(offset(i)..end).filter(|b| !b.is_empty())
            };
            for pair in (0..entries / 2).map(|p| 2 * p) {
                let Some(data) = item(pair + 1) else {
                    return Err(corrupt("hash item out of its page"));
                };
                match data[0] {
                    H_KEYDATA => {
                        spend(data.len())?;
                        each(&data[1..]);
                    }
                    H_OFFPAGE => {
                        let (Some(first), Some(len)) = (file.u32(data, 4), file.u32(data, 8)) else {
                            return Err(corrupt("off-page item cut short"));
                        };
                        let len = usize::try_from(len).map_err(|_| corrupt("overflow item too large"))?;
                        spend(len)?;
                        each(&file.overflow(first, len)?);
                    }
                    // Duplicates: rpm's Packages never has them.
                    _ => {}
                }
            }
        }
        Ok(())
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn hostile_files_are_errors() {
            let mut meta = vec![0u8; 512];
            meta[12..16].copy_from_slice(&HASH_MAGIC.to_le_bytes());
            meta[20..24].copy_from_slice(&512u32.to_le_bytes());
            meta[25] = P_HASHMETA;
            meta[32..36].copy_from_slice(&3u32.to_le_bytes());
            let none = &mut |_: &[u8]| ();
            assert!(matches!(hash_values(&meta, none), Err(RpmDbError::Corrupt(m)) if m.contains("cut short")));
            // A hash page whose one pair points at an overflow chain looping on itself.
            let mut page = vec![0u8; 512];
            page[25] = P_HASH;
            page[20..22].copy_from_slice(&2u16.to_le_bytes());
            page[26..28].copy_from_slice(&500u16.to_le_bytes());
            page[28..30].copy_from_slice(&480u16.to_le_bytes());
            page[500] = H_KEYDATA;
            page[480] = H_OFFPAGE;
            page[484..488].copy_from_slice(&2u32.to_le_bytes());
            page[488..492].copy_from_slice(&100_000u32.to_le_bytes());
            let mut overflow = vec![0u8; 512];
            overflow[25] = P_OVERFLOW;
            overflow[16..20].copy_from_slice(&2u32.to_le_bytes());
            overflow[22..24].copy_from_slice(&10u16.to_le_bytes());
            meta[32..36].copy_from_slice(&2u32.to_le_bytes());
            let file = [meta.clone(), page, overflow].concat();
            assert!(matches!(hash_values(&file, none), Err(RpmDbError::Corrupt(_))));
            meta[24] = 1;
            assert!(matches!(hash_values(&meta, none), Err(RpmDbError::Unsupported(_)) | Err(RpmDbError::Corrupt(_))));
            assert!(matches!(hash_values(b"short", none), Err(RpmDbError::NotADatabase(_))));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header blob from (tag, type, data) entries, laid out as rpm does.
    fn blob(entries: &[(u32, u32, u32, Vec<u8>)]) -> Vec<u8> {
        let mut index = Vec::new();
        let mut data = Vec::new();
        for (tag, kind, count, bytes) in entries {
            for v in [*tag, *kind, data.len() as u32, *count] {
                index.extend_from_slice(&v.to_be_bytes());
            }
            data.extend_from_slice(bytes);
        }
        let mut out = Vec::new();
        out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend(index);
        out.extend(data);
        out
    }

    #[test]
    fn header_names_version_and_files() {
        let b = blob(&[
            (TAG_NAME, TYPE_STRING, 1, b"openssl\0".to_vec()),
            (TAG_VERSION, TYPE_STRING, 1, b"1.0.1e\0".to_vec()),
            (TAG_RELEASE, TYPE_STRING, 1, b"16.el6_5.7\0".to_vec()),
            (TAG_BASENAMES, TYPE_STRING_ARRAY, 2, b"libssl.so.10\0openssl\0".to_vec()),
            (TAG_DIRNAMES, TYPE_STRING_ARRAY, 2, b"/usr/lib64/\0/usr/bin/\0".to_vec()),
            (TAG_DIRINDEXES, TYPE_INT32, 2, [0u32, 1].iter().flat_map(|v| v.to_be_bytes()).collect()),
        ]);
        let p = parse_header(&b, |_| true).expect("header");
        assert_eq!((p.name.as_str(), p.evr.as_str()), ("openssl", "1.0.1e-16.el6_5.7"));
        assert_eq!(p.files, vec!["/usr/lib64/libssl.so.10", "/usr/bin/openssl"]);
        assert!(parse_header(&b, |_| false).expect("header").files.is_empty());
        // Every truncation of it parses or refuses, never panics, never invents a name.
        for n in 0..b.len() {
            assert!(parse_header(&b[..n], |_| true).is_none());
        }
    }

    #[test]
    fn hostile_headers_are_refused() {
        let lying = blob(&[(TAG_NAME, TYPE_STRING, 1, b"openssl".to_vec())]);
        assert!(parse_header(&lying, |_| true).is_none(), "a string without its NUL");
        let huge = [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];
        assert!(parse_header(&huge, |_| true).is_none());
        let far = blob(&[
            (TAG_NAME, TYPE_STRING, 1, b"a\0".to_vec()),
            (TAG_VERSION, TYPE_STRING, 1, b"1\0".to_vec()),
            (TAG_RELEASE, TYPE_STRING, 1, b"1\0".to_vec()),
            (TAG_BASENAMES, TYPE_STRING_ARRAY, u32::MAX, b"x\0".to_vec()),
            (TAG_DIRNAMES, TYPE_STRING_ARRAY, 1, b"/\0".to_vec()),
            (TAG_DIRINDEXES, TYPE_INT32, u32::MAX, vec![0; 4]),
        ]);
        assert!(parse_header(&far, |_| true).expect("header").files.is_empty());
        assert_eq!(rpmdb_kind("var/lib/rpm/Packages"), Some(RpmDbKind::BerkeleyDb));
        assert_eq!(rpmdb_kind("usr/lib/sysimage/rpm/rpmdb.sqlite"), Some(RpmDbKind::Sqlite));
        assert_eq!(rpmdb_kind("var/lib/rpm/Name"), None);
    }
}
