//! Squashfs 4.0 images (firmware root file systems, snaps), read with `backhand` over any seekable
//! reader: nothing is extracted or written, each regular file is handed out as a `Read`.
//!
//! `backhand` trusts the image: it allocates by the block count a file's declared size implies
//! (a 2 TiB size is a 2 GiB `Vec::with_capacity`), reads folders recursively and keeps every node's
//! full path. So before it is called, a census reads the superblock, the inode table and the folder
//! table itself, bounded, and refuses an image whose declared sizes exceed what it holds, whose
//! folders nest deeper than [`MAX_DEPTH`], loop, or whose paths add up past [`MAX_PATH_BYTES`], or
//! whose entry names are not plain names (`..`, `a/b`). Every block (metadata and data) is
//! decompressed by this module's own decoders (zlib through flate2, xz through xz2, zstd through
//! ruzstd, lz4 through lz4_flex), each capped at a block's largest size, and all of an image's
//! output, decompressed or read, is charged against one budget (a bomb stops there).

use backhand::compression::{CompressionAction, Compressor};
use backhand::kind::Kind;
use backhand::{BackhandError, FilesystemCompressor, FilesystemReader, InnerNode, SuperBlock};
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::io::{self, BufRead, Read, Seek, SeekFrom};
use std::rc::Rc;

pub const MAGIC: &[u8; 4] = b"hsqs";
/// Decompressed inode and folder tables together, at most.
pub const MAX_METADATA: u64 = 64 << 20;
/// Folders nested deeper than this are refused (`backhand` recurses once per level).
pub const MAX_DEPTH: usize = 128;
/// The full paths of all entries together, at most (`backhand` keeps each one).
pub const MAX_PATH_BYTES: u64 = 64 << 20;

const SUPERBLOCK_LEN: usize = 96;
const METADATA_BLOCK: usize = 8192;
const MAX_BLOCK: usize = 1 << 20;
const NOT_SET: u64 = u64::MAX;
const NO_FRAGMENT: u32 = u32::MAX;
const EXPORT_TABLE_FLAG: u16 = 0x80;
/// `backhand` refuses a file size from 2 TiB.
const MAX_FILE_SIZE: u64 = 2 << 40;

#[derive(Debug, thiserror::Error)]
pub enum SquashfsError {
    #[error("not a squashfs image (no hsqs magic)")]
    NotSquashfs,
    #[error("truncated: {0}")]
    Truncated(String),
    #[error("corrupt: {0}")]
    Corrupt(String),
    #[error("squashfs {0}.{1}: not read (4.0 is)")]
    Version(u16, u16),
    #[error("compressed with {0}: not read (gzip, xz, zstd and lz4 are)")]
    Compression(String),
    #[error("refused: {0}")]
    Refused(String),
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// What an image may cost: decompressed and read bytes past `ratio_floor`, at most `max_ratio`
/// per byte of the image (as the walker's streams).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_ratio: u64,
    pub ratio_floor: u64,
}

/// An opened image: its files are read through [`Image::for_each_file`].
pub struct Image<'b> {
    fs: FilesystemReader<'b>,
    budget: Rc<Cell<u64>>,
    allowed: u64,
}

impl<'b> Image<'b> {
    /// The census, then `backhand`'s tree of the image.
    pub fn open<R: BufRead + Seek + Send + 'b>(mut reader: R, limits: Limits) -> Result<Self, SquashfsError> {
        let len = reader.seek(SeekFrom::End(0))?;
        reader.seek(SeekFrom::Start(0))?;
        census(&mut reader, len)?;
        reader.seek(SeekFrom::Start(0))?;
        let budget = Rc::new(Cell::new(MAX_METADATA * 2));
        let kind = Kind::new_v4(&DECODERS);
        let opened = with_budget(&budget, || FilesystemReader::from_reader_with_offset_and_kind(reader, 0, kind));
        let fs = match opened {
            Ok(fs) => fs,
            Err(_) if budget.get() == 0 => return Err(SquashfsError::Refused("its tables decompress past the bound".into())),
            Err(e) => return Err(SquashfsError::Corrupt(describe(&e))),
        };
        let allowed = limits.ratio_floor.max(len.saturating_mul(limits.max_ratio));
        budget.set(allowed);
        Ok(Image { fs, budget, allowed })
    }

    /// Every regular file in path order (symlinks, folders, devices, fifos and sockets skipped):
    /// its path inside the image (no leading `/`), its declared size and a reader of its bytes.
    pub fn for_each_file(&self, mut each: impl FnMut(&str, u64, &mut dyn Read)) {
        for node in self.fs.files() {
            let InnerNode::File(file) = &node.inner else { continue };
            let path = node.fullpath.to_string_lossy();
            let path = path.trim_start_matches('/');
            let mut reader = Budgeted { inner: self.fs.file(file).reader(), budget: &self.budget, allowed: self.allowed };
            each(path, file.file_len() as u64, &mut reader);
        }
    }

    /// Whether reading stopped at the budget (the files after the bomb read as empty).
    pub fn exhausted(&self) -> bool {
        self.budget.get() == 0
    }
}

/// `backhand`'s errors print nothing useful for the common cases; name them.
fn describe(e: &BackhandError) -> String {
    match e {
        BackhandError::InvalidFilePath => "an entry's name is not a plain file name".into(),
        BackhandError::UnsupportedCompression(c) => format!("compressed with {c}: not read"),
        other => {
            let text = other.to_string();
            if text.is_empty() {
                "not readable".into()
            } else {
                text
            }
        }
    }
}

/// A file's reader, charging what it hands out to the image's budget.
struct Budgeted<'r, R> {
    inner: R,
    budget: &'r Rc<Cell<u64>>,
    allowed: u64,
}

impl<R: Read> Read for Budgeted<'_, R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let bomb = || io::Error::other(format!("decompression bomb: the image's budget of {} bytes (decompressed and read) is spent", self.allowed));
        if self.budget.get() == 0 {
            return Err(bomb());
        }
        let result = with_budget(self.budget, || self.inner.read(out));
        match result {
            Ok(n) => {
                if !spend(self.budget, n) {
                    return Err(bomb());
                }
                Ok(n)
            }
            Err(_) if self.budget.get() == 0 => Err(bomb()),
            Err(e) => Err(e),
        }
    }
}

fn spend(budget: &Cell<u64>, n: usize) -> bool {
    match budget.get().checked_sub(n as u64) {
        Some(left) => {
            budget.set(left);
            true
        }
        None => {
            budget.set(0);
            false
        }
    }
}

thread_local! {
    /// The budget of the image whose blocks are being decompressed (the decoders are a `'static`
    /// that `backhand` calls without context).
    static BUDGET: RefCell<Option<Rc<Cell<u64>>>> = const { RefCell::new(None) };
}

fn with_budget<T>(budget: &Rc<Cell<u64>>, f: impl FnOnce() -> T) -> T {
    let before = BUDGET.with(|b| b.replace(Some(budget.clone())));
    let out = f();
    BUDGET.with(|b| *b.borrow_mut() = before);
    out
}

struct Decoders;
static DECODERS: Decoders = Decoders;

/// Reads `decoder` into `out`, failing past `cap` bytes.
fn read_capped(mut decoder: impl Read, out: &mut Vec<u8>, cap: usize) -> io::Result<()> {
    let start = out.len();
    (&mut decoder).take(cap as u64 + 1).read_to_end(out)?;
    if out.len() - start > cap {
        return Err(io::Error::other(format!("a block decompresses past {cap} bytes")));
    }
    Ok(())
}

impl CompressionAction for Decoders {
    type Error = BackhandError;
    type Compressor = Compressor;
    type FilesystemCompressor = FilesystemCompressor;
    type SuperBlock = SuperBlock;

    fn decompress(&self, bytes: &[u8], out: &mut Vec<u8>, compressor: Compressor) -> Result<(), BackhandError> {
        let start = out.len();
        let cap = MAX_BLOCK;
        match compressor {
            Compressor::Uncompressed => out.extend_from_slice(bytes),
            Compressor::Gzip => read_capped(flate2::read::ZlibDecoder::new(bytes), out, cap)?,
            Compressor::Xz => {
                // A block's xz header may declare any dictionary: liblzma gets a memory limit.
                let stream = xz2::stream::Stream::new_stream_decoder(64 << 20, 0).map_err(io::Error::from)?;
                read_capped(xz2::read::XzDecoder::new_stream(bytes, stream), out, cap)?;
            }
            Compressor::Zstd => {
                let mut input = bytes;
                let decoder = ruzstd::decoding::StreamingDecoder::new(&mut input).map_err(io::Error::other)?;
                read_capped(decoder, out, cap)?;
            }
            Compressor::Lz4 => {
                out.resize(start + cap, 0);
                let n = lz4_flex::block::decompress_into(bytes, &mut out[start..]).map_err(io::Error::other);
                out.truncate(start + *n.as_ref().unwrap_or(&0));
                n?;
            }
            other => return Err(BackhandError::UnsupportedCompression(format!("{other:?}").to_lowercase())),
        }
        let charged = BUDGET.with(|b| b.borrow().as_ref().is_some_and(|budget| spend(budget, out.len() - start)));
        if !charged {
            return Err(io::Error::other("decompression bomb").into());
        }
        Ok(())
    }

    fn compress(&self, _: &[u8], _: FilesystemCompressor, _: u32) -> Result<Vec<u8>, BackhandError> {
        Err(BackhandError::UnsupportedCompression("writing".into()))
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn corrupt(why: impl Into<String>) -> SquashfsError {
    SquashfsError::Corrupt(why.into())
}

/// The superblock fields the census needs.
struct Super {
    inode_count: u32,
    block_size: u32,
    block_log: u16,
    compressor: u16,
    root_inode: u64,
    frag_count: u32,
    flags: u16,
    id_table: u64,
    inode_table: u64,
    dir_table: u64,
    frag_table: u64,
    export_table: u64,
}

fn superblock(b: &[u8], len: u64) -> Result<Super, SquashfsError> {
    if !b.starts_with(MAGIC) {
        return Err(SquashfsError::NotSquashfs);
    }
    if b.len() < SUPERBLOCK_LEN {
        return Err(SquashfsError::Truncated(format!("{len} bytes, shorter than the superblock")));
    }
    let (w16, w32, w64) = (|at| u16_at(b, at).unwrap_or(0), |at| u32_at(b, at).unwrap_or(0), |at| u64_at(b, at).unwrap_or(0));
    let (major, minor) = (w16(28), w16(30));
    if (major, minor) != (4, 0) {
        return Err(SquashfsError::Version(major, minor));
    }
    let s = Super {
        inode_count: w32(4),
        block_size: w32(12),
        frag_count: w32(16),
        compressor: w16(20),
        block_log: w16(22),
        flags: w16(24),
        root_inode: w64(32),
        id_table: w64(48),
        inode_table: w64(64),
        dir_table: w64(72),
        frag_table: w64(80),
        export_table: w64(88),
    };
    let bytes_used = w64(40);
    let name = match s.compressor {
        0 | 1 | 4 | 5 | 6 => None,
        2 => Some("lzma".to_string()),
        3 => Some("lzo".to_string()),
        other => Some(format!("unknown compressor {other}")),
    };
    if let Some(name) = name {
        return Err(SquashfsError::Compression(name));
    }
    if !s.block_size.is_power_of_two() || !(4096..=1 << 20).contains(&s.block_size) || s.block_size.ilog2() != u32::from(s.block_log) {
        return Err(corrupt(format!("block size {} (log {})", s.block_size, s.block_log)));
    }
    if bytes_used > len {
        return Err(SquashfsError::Truncated(format!("the superblock says {bytes_used} bytes, {len} are present")));
    }
    let inside = |at: u64| at < len;
    if !inside(s.inode_table) || !inside(s.dir_table) || !inside(s.id_table) || s.inode_table > s.dir_table {
        return Err(corrupt("a table lies outside the image"));
    }
    Ok(s)
}

/// Metadata blocks from `start` to exactly `end` (as `backhand` reads them), decompressed: the
/// bytes, and each block's offset from `start` mapped to its offset in them.
fn metadata<R: Read + Seek>(r: &mut R, s: &Super, start: u64, end: u64, spent: &mut u64, what: &str) -> Result<(Vec<u8>, HashMap<u64, usize>), SquashfsError> {
    r.seek(SeekFrom::Start(start))?;
    let mut pos = start;
    let mut bytes = Vec::new();
    let mut blocks = HashMap::new();
    let mut raw = vec![0u8; METADATA_BLOCK];
    let budget = Rc::new(Cell::new(u64::MAX));
    while pos < end {
        let mut header = [0u8; 2];
        r.read_exact(&mut header).map_err(|_| SquashfsError::Truncated(format!("the {what} ends early")))?;
        let header = u16::from_le_bytes(header);
        let n = usize::from(header & 0x7fff);
        if n == 0 || n > METADATA_BLOCK {
            return Err(corrupt(format!("a {what} block of {n} bytes")));
        }
        r.read_exact(&mut raw[..n]).map_err(|_| SquashfsError::Truncated(format!("the {what} ends early")))?;
        blocks.insert(pos - start, bytes.len());
        let before = bytes.len();
        if header & 0x8000 != 0 {
            bytes.extend_from_slice(&raw[..n]);
        } else {
            let compressor = compressor_of(s.compressor);
            with_budget(&budget, || DECODERS.decompress(&raw[..n], &mut bytes, compressor)).map_err(|e| corrupt(format!("a {what} block does not decompress ({})", describe(&e))))?;
        }
        if bytes.len() - before > METADATA_BLOCK {
            return Err(corrupt(format!("a {what} block decompresses past {METADATA_BLOCK} bytes")));
        }
        *spent += (bytes.len() - before) as u64;
        if *spent > MAX_METADATA {
            return Err(SquashfsError::Refused(format!("its tables decompress past {} MiB", MAX_METADATA >> 20)));
        }
        pos += 2 + n as u64;
    }
    if pos != end {
        return Err(corrupt(format!("the {what} overruns its end")));
    }
    Ok((bytes, blocks))
}

/// The superblock's compressor id (checked by [`superblock`]) as `backhand` names it.
fn compressor_of(id: u16) -> Compressor {
    match id {
        1 => Compressor::Gzip,
        4 => Compressor::Xz,
        5 => Compressor::Lz4,
        6 => Compressor::Zstd,
        _ => Compressor::Uncompressed,
    }
}

#[derive(Clone, Copy)]
enum InodeKind {
    /// A folder: where its listing is in the folder table.
    Dir { block_index: u32, listing: u32, offset: u16 },
    Other,
}

/// Reads `s`'s tables and walks its folders, refusing what would make `backhand` allocate or
/// recurse beyond the image's means.
fn census<R: Read + Seek>(r: &mut R, len: u64) -> Result<(), SquashfsError> {
    let mut head = Vec::with_capacity(SUPERBLOCK_LEN);
    (&mut *r).take(SUPERBLOCK_LEN as u64).read_to_end(&mut head)?;
    let s = superblock(&head, len)?;
    let mut spent = 0;
    let (table, blocks) = metadata(r, &s, s.inode_table, s.dir_table, &mut spent, "inode table")?;
    let (inodes, at_offset) = inodes(&table, &s)?;
    if inodes.len() as u64 != u64::from(s.inode_count) {
        return Err(corrupt(format!("the superblock says {} inodes, the table holds {}", s.inode_count, inodes.len())));
    }
    let root_at = blocks.get(&(s.root_inode >> 16)).map(|b| b + (s.root_inode & 0xffff) as usize);
    let root = root_at.and_then(|at| at_offset.get(&at)).ok_or_else(|| corrupt("the root inode is not in the inode table"))?;
    // The folder table ends where the first lookup table's blocks begin (its index points there).
    let index = if s.frag_count != 0 && s.frag_table != NOT_SET {
        s.frag_table
    } else if s.flags & EXPORT_TABLE_FLAG != 0 && s.export_table != NOT_SET {
        s.export_table
    } else {
        s.id_table
    };
    r.seek(SeekFrom::Start(index))?;
    let mut pointer = [0u8; 8];
    r.read_exact(&mut pointer).map_err(|_| SquashfsError::Truncated("a lookup table's index ends early".into()))?;
    let dir_end = u64::from_le_bytes(pointer);
    if dir_end < s.dir_table || dir_end > len {
        return Err(corrupt("the folder table's end lies outside the image"));
    }
    let (dirs, dir_blocks) = metadata(r, &s, s.dir_table, dir_end, &mut spent, "folder table")?;
    walk_folders(&inodes, *root, &dirs, &dir_blocks)
}

/// Every inode of the table (as `backhand` reads them: one after another to the end), by number,
/// and the inode number at each offset. A file's block list must fit in what the table holds.
#[allow(clippy::type_complexity)]
fn inodes(t: &[u8], s: &Super) -> Result<(HashMap<u32, InodeKind>, HashMap<usize, u32>), SquashfsError> {
    let mut by_number = HashMap::new();
    let mut at_offset = HashMap::new();
    let mut at = 0usize;
    let short = || corrupt("an inode runs past the inode table");
    while at < t.len() {
        let kind = u16_at(t, at).ok_or_else(short)?;
        let number = u32_at(t, at + 12).ok_or_else(short)?;
        let body = at + 16;
        let (size, what) = match kind {
            1 => (16, InodeKind::Dir { block_index: u32_at(t, body).ok_or_else(short)?, listing: u32::from(u16_at(t, body + 8).ok_or_else(short)?), offset: u16_at(t, body + 10).ok_or_else(short)? }),
            2 | 9 => {
                let (fixed, file_size, fragment) = if kind == 2 {
                    (16, u64::from(u32_at(t, body + 12).ok_or_else(short)?), u32_at(t, body + 4).ok_or_else(short)?)
                } else {
                    (40, u64_at(t, body + 8).ok_or_else(short)?, u32_at(t, body + 28).ok_or_else(short)?)
                };
                if file_size >= MAX_FILE_SIZE {
                    return Err(corrupt(format!("inode {number} declares a file of {file_size} bytes")));
                }
                let blocks = if fragment == NO_FRAGMENT { file_size.div_ceil(u64::from(s.block_size)) } else { file_size >> s.block_log };
                let room = (t.len() - body).saturating_sub(fixed) as u64 / 4;
                if blocks > room {
                    return Err(corrupt(format!("inode {number} declares {file_size} bytes ({blocks} blocks): more than the inode table lists")));
                }
                (fixed + 4 * blocks as usize, InodeKind::Other)
            }
            3 | 10 => {
                let target = u32_at(t, body + 4).ok_or_else(short)?;
                if target >= 256 {
                    return Err(corrupt(format!("inode {number}: a symlink target of {target} bytes")));
                }
                (8 + target as usize + if kind == 10 { 4 } else { 0 }, InodeKind::Other)
            }
            4 | 5 => (8, InodeKind::Other),
            6 | 7 => (4, InodeKind::Other),
            8 => {
                let listing = u32_at(t, body + 4).ok_or_else(short)?;
                let block_index = u32_at(t, body + 8).ok_or_else(short)?;
                let count = u16_at(t, body + 16).ok_or_else(short)?;
                let offset = u16_at(t, body + 18).ok_or_else(short)?;
                let mut size = 24;
                for _ in 0..count {
                    let name = u32_at(t, body + size + 8).ok_or_else(short)?;
                    if name >= 256 {
                        return Err(corrupt(format!("inode {number}: a folder index name of {name} bytes")));
                    }
                    size += 12 + name as usize + 1;
                }
                (size, InodeKind::Dir { block_index, listing, offset })
            }
            11 | 12 => (12, InodeKind::Other),
            13 | 14 => (8, InodeKind::Other),
            other => return Err(corrupt(format!("inode {number} has type {other}"))),
        };
        if body + size > t.len() {
            return Err(short());
        }
        at_offset.insert(at, number);
        by_number.insert(number, what);
        at = body + size;
    }
    Ok((by_number, at_offset))
}

/// Walks the folders from the root as `backhand` will: names must be plain, folders must not
/// loop or nest past [`MAX_DEPTH`], and all full paths together stay under [`MAX_PATH_BYTES`].
fn walk_folders(inodes: &HashMap<u32, InodeKind>, root: u32, dirs: &[u8], blocks: &HashMap<u64, usize>) -> Result<(), SquashfsError> {
    let mut visited = HashSet::new();
    // (inode number, depth, length of its path)
    let mut stack = vec![(root, 0usize, 0u64)];
    let mut path_bytes = 0u64;
    while let Some((number, depth, path_len)) = stack.pop() {
        if !visited.insert(number) {
            return Err(corrupt("a folder contains itself"));
        }
        let Some(InodeKind::Dir { block_index, listing, offset }) = inodes.get(&number).copied() else {
            return Err(corrupt(format!("inode {number} is listed as a folder but is none")));
        };
        if listing < 4 {
            continue;
        }
        let start = blocks.get(&u64::from(block_index)).ok_or_else(|| corrupt("a folder's listing is not in the folder table"))?;
        let from = start + usize::from(offset);
        let bytes = dirs.get(from..from + listing as usize - 3).ok_or_else(|| corrupt("a folder's listing runs past the folder table"))?;
        let mut at = 0;
        // Headers (count - 1, start, first inode number), each followed by its entries.
        while let (Some(count), Some(base)) = (u32_at(bytes, at), u32_at(bytes, at + 8)) {
            if count > 256 {
                break;
            }
            at += 12;
            for _ in 0..=count {
                let (Some(delta), Some(kind), Some(name_len)) = (u16_at(bytes, at + 2), u16_at(bytes, at + 4), u16_at(bytes, at + 6)) else {
                    break;
                };
                let name = bytes.get(at + 8..at + 9 + usize::from(name_len)).ok_or_else(|| corrupt("a folder entry runs past its listing"))?;
                at += 9 + usize::from(name_len);
                // Stricter than backhand, which takes `/` as the root again.
                if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0) {
                    return Err(corrupt(format!("entry name {:?} is not a plain file name", String::from_utf8_lossy(name))));
                }
                let child = i64::from(base) + i64::from(delta as i16);
                let child = u32::try_from(child).map_err(|_| corrupt("a folder entry's inode number is negative"))?;
                if !inodes.contains_key(&child) {
                    return Err(corrupt(format!("a folder entry names inode {child}, which is not in the table")));
                }
                let child_len = path_len + 1 + name.len() as u64;
                path_bytes += child_len;
                if path_bytes > MAX_PATH_BYTES {
                    return Err(SquashfsError::Refused(format!("its paths add up past {} MiB", MAX_PATH_BYTES >> 20)));
                }
                if kind == 1 || kind == 8 {
                    if depth + 1 > MAX_DEPTH {
                        return Err(SquashfsError::Refused(format!("folders nested deeper than {MAX_DEPTH}")));
                    }
                    stack.push((child, depth + 1, child_len));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits { max_ratio: 100, ratio_floor: 1 << 20 }
    }

    /// A minimal image by hand: one file `f` of `content`, stored uncompressed in one data block,
    /// its inode declaring `declared` bytes; gzip named, so only uncompressed blocks are read.
    pub(crate) fn tiny_image(content: &[u8], declared: u32, name: &[u8]) -> Vec<u8> {
        let mut img = vec![0u8; SUPERBLOCK_LEN];
        let data_at = img.len() as u32;
        img.extend(content);
        // Inode table: the file (inode 1), then the root folder (inode 2).
        let mut inodes = Vec::new();
        let header = |kind: u16, number: u32| {
            let mut h = Vec::new();
            h.extend(kind.to_le_bytes());
            h.extend(0o755u16.to_le_bytes());
            h.extend(0u16.to_le_bytes());
            h.extend(0u16.to_le_bytes());
            h.extend(0u32.to_le_bytes());
            h.extend(number.to_le_bytes());
            h
        };
        inodes.extend(header(2, 1));
        inodes.extend(data_at.to_le_bytes());
        inodes.extend(NO_FRAGMENT.to_le_bytes());
        inodes.extend(0u32.to_le_bytes());
        inodes.extend(declared.to_le_bytes());
        // One block size listed, whatever the declared size implies.
        inodes.extend((content.len() as u32 | (1 << 24)).to_le_bytes());
        let root_offset = inodes.len() as u16;
        let mut listing = Vec::new();
        listing.extend(0u32.to_le_bytes());
        listing.extend(0u32.to_le_bytes());
        listing.extend(1u32.to_le_bytes());
        listing.extend(0u16.to_le_bytes());
        listing.extend(0i16.to_le_bytes());
        listing.extend(2u16.to_le_bytes());
        listing.extend((name.len() as u16 - 1).to_le_bytes());
        listing.extend(name);
        inodes.extend(header(1, 2));
        inodes.extend(0u32.to_le_bytes());
        inodes.extend(2u32.to_le_bytes());
        inodes.extend((listing.len() as u16 + 3).to_le_bytes());
        inodes.extend(0u16.to_le_bytes());
        inodes.extend(3u32.to_le_bytes());
        let inode_table = img.len() as u64;
        img.extend((inodes.len() as u16 | 0x8000).to_le_bytes());
        img.extend(&inodes);
        let dir_table = img.len() as u64;
        img.extend((listing.len() as u16 | 0x8000).to_le_bytes());
        img.extend(&listing);
        // The id table: one block holding uid/gid 0, then its index.
        let ids = img.len() as u64;
        img.extend((4u16 | 0x8000).to_le_bytes());
        img.extend(0u32.to_le_bytes());
        let id_table = img.len() as u64;
        img.extend(ids.to_le_bytes());
        let used = img.len() as u64;
        let mut sb = Vec::new();
        sb.extend(MAGIC);
        sb.extend(2u32.to_le_bytes());
        sb.extend(0u32.to_le_bytes());
        sb.extend(4096u32.to_le_bytes());
        sb.extend(0u32.to_le_bytes());
        sb.extend(1u16.to_le_bytes());
        sb.extend(12u16.to_le_bytes());
        sb.extend(0x10u16.to_le_bytes());
        sb.extend(1u16.to_le_bytes());
        sb.extend(4u16.to_le_bytes());
        sb.extend(0u16.to_le_bytes());
        sb.extend(u64::from(root_offset).to_le_bytes());
        sb.extend(used.to_le_bytes());
        sb.extend(id_table.to_le_bytes());
        sb.extend(NOT_SET.to_le_bytes());
        sb.extend(inode_table.to_le_bytes());
        sb.extend(dir_table.to_le_bytes());
        sb.extend(NOT_SET.to_le_bytes());
        sb.extend(NOT_SET.to_le_bytes());
        img[..SUPERBLOCK_LEN].copy_from_slice(&sb);
        img
    }

    fn files(img: &[u8]) -> Result<Vec<(String, u64, Vec<u8>)>, SquashfsError> {
        let image = Image::open(io::Cursor::new(img), limits())?;
        let mut out = Vec::new();
        image.for_each_file(|path, size, r| {
            let mut bytes = Vec::new();
            let _ = r.read_to_end(&mut bytes);
            out.push((path.to_string(), size, bytes));
        });
        Ok(out)
    }

    #[test]
    fn a_hand_made_image_reads() {
        let img = tiny_image(b"hello", 5, b"f");
        assert_eq!(files(&img).unwrap(), vec![("f".to_string(), 5, b"hello".to_vec())]);
    }

    #[test]
    fn a_size_that_lies_is_refused_before_backhand_allocates() {
        // 4 GiB declared: 2^20 block sizes, allocated up front by backhand; the table lists one.
        let err = files(&tiny_image(b"hello", u32::MAX, b"f")).err().unwrap();
        assert!(err.to_string().contains("more than the inode table lists"), "{err}");
    }

    #[test]
    fn names_that_are_not_plain_are_refused() {
        for name in [&b".."[..], b"a/b", b".", b"/", b"../../etc/passwd"] {
            let err = files(&tiny_image(b"hello", 5, name)).err().unwrap();
            assert!(err.to_string().contains("not a plain file name"), "{err}");
        }
    }

    #[test]
    fn every_cut_and_every_flipped_byte_is_an_error_or_a_read_never_a_panic() {
        let img = tiny_image(b"\x7fELF hello", 10, b"libssl.so");
        for cut in 0..img.len() {
            let _ = files(&img[..cut]);
        }
        for at in 0..img.len() {
            for value in [0u8, 1, 0x7f, 0x80, 0xff] {
                let mut bad = img.clone();
                bad[at] = value;
                let _ = files(&bad);
            }
        }
        // A truncated image says so.
        let err = files(&img[..img.len() - 8]).err().unwrap();
        assert!(matches!(err, SquashfsError::Truncated(_)), "{err}");
    }
}
