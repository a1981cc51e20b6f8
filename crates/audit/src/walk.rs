//! The walker: directories, files and archives, streamed, handing every file's bytes to the
//! detector once. Each container (a directory, a tar, a zip, an ar/.deb) becomes a `Tree`: the
//! OpenSSL copies found in it, its package databases, and, for what may be an image layer, its
//! whiteouts and the hashes of the paths it writes. Image layers are applied in manifest order when
//! their image ends, so memory holds findings, whiteouts and one 8-byte hash per layer path, never
//! file contents.

use crate::advisory::{self, Advisory};
use crate::ar::{ArReader, Member};
use crate::detect::{self, Detector, Evidence};
use crate::finding::{decide, heartbeats_of, kind_of, Finding, PackageDecision, PackageInfo};
use crate::pkgdb::{self, normalise, PackageDb};
use crate::rpmdb::{self, RpmDbKind};
use crate::squashfs;
use crate::version::Format;
use serde::Serialize;
use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::{self, Read, Seek};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Mutex;

/// Limits against hostile input.
#[derive(Debug, Clone)]
pub struct Options {
    /// Archives opened inside archives, counting the outermost as 1 (compression does not count).
    pub max_depth: usize,
    /// A zip or squashfs image inside another stream must be buffered (both need seeking): at most
    /// this many bytes.
    pub max_buffered_zip: u64,
    /// Decompressed bytes allowed per compressed byte, past `ratio_floor` (zip bombs).
    pub max_ratio: u64,
    pub ratio_floor: u64,
    /// Threads reading a directory's files (each file is read by one thread; archives and images
    /// are read in order by the thread that opens them).
    pub jobs: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options { max_depth: 4, max_buffered_zip: 256 << 20, max_ratio: 100, ratio_floor: 64 << 20, jobs: 1 }
    }
}

/// Something that kept part of the input from being read (truncated, refused, too deep).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Issue {
    pub location: Vec<String>,
    pub message: String,
}

/// The result of auditing one PATH.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Audit {
    pub findings: Vec<Finding>,
    pub issues: Vec<Issue>,
    /// Bytes handed to the detector (after decompression).
    pub bytes_scanned: u64,
}

/// An OpenSSL copy before the package databases are consulted.
#[derive(Debug, Clone)]
struct Copy {
    /// Segments inside the tree that found it (entry path, then paths inside nested archives).
    path: Vec<String>,
    /// Normalised first segment, for package ownership, whiteouts and overwrites.
    key: String,
    evidence: Evidence,
    /// Set when a .deb's control or an inner tree's database already decided ownership.
    package: Option<(Format, String, String)>,
    resolved: Option<Finding>,
}

#[derive(Debug, Default)]
struct Tree {
    copies: Vec<Copy>,
    db: PackageDb,
    whiteouts: Vec<String>,
    opaque: Vec<String>,
    /// Hashes of the normalised paths of regular files (only for possible image layers).
    paths: Option<HashSet<u64>>,
    json: HashMap<String, Vec<u8>>,
    layers: Vec<(String, Tree)>,
    /// A .deb's control: package name and version, owning everything the .deb holds.
    deb_control: Option<(String, String)>,
    /// A `control` file seen in this tree or a child: only an ar/.deb's control.tar makes it `deb_control`.
    control_file: Option<(String, String)>,
}

impl Tree {
    /// Take in what a worker thread found under the same directory. Package databases and
    /// os-release files are read by the walking thread itself (their order matters), so a
    /// fragment holds copies, nested images' layers and image metadata, whose order does not.
    fn absorb(&mut self, fragment: Tree) {
        self.copies.extend(fragment.copies);
        self.layers.extend(fragment.layers);
        self.json.extend(fragment.json);
        self.whiteouts.extend(fragment.whiteouts);
        self.opaque.extend(fragment.opaque);
        if let (Some(paths), Some(more)) = (self.paths.as_mut(), fragment.paths) {
            paths.extend(more);
        }
        self.db.overlay(fragment.db);
        if fragment.control_file.is_some() {
            self.control_file = fragment.control_file;
        }
    }
}

const MAX_JSON: u64 = 4 << 20;
/// A member of a known size up to this is read into memory to be searched in two passes.
const MEMBER_IN_MEMORY: u64 = 4 << 20;

pub struct Walker {
    options: Options,
    detector: Detector,
    buf: Vec<u8>,
    inflater: Inflater,
    /// Reused for archive members searched in memory (at most `MEMBER_IN_MEMORY`).
    member: Vec<u8>,
    table: Vec<Advisory>,
    names: Vec<String>,
    issues: Vec<Issue>,
    bytes: u64,
}

enum Sniff {
    Gzip,
    Xz,
    Zstd,
    Tar,
    Zip,
    Ar,
    Squashfs,
    Plain,
}

fn sniff(head: &[u8]) -> Sniff {
    if head.starts_with(&[0x1f, 0x8b]) {
        Sniff::Gzip
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Sniff::Xz
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Sniff::Zstd
    } else if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        Sniff::Zip
    } else if head.starts_with(b"!<arch>\n") {
        Sniff::Ar
    } else if head.starts_with(b"hsqs") {
        Sniff::Squashfs
    } else if head.len() >= 262 && &head[257..262] == b"ustar" {
        Sniff::Tar
    } else {
        Sniff::Plain
    }
}

/// Reads up to `n` bytes (fewer only at the end of the stream).
fn read_head(r: &mut dyn Read, n: usize) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(n);
    r.take(n as u64).read_to_end(&mut head)?;
    Ok(head)
}

/// Counts the bytes read through it (the compressed side of a decompressor).
struct Counting<'a> {
    inner: &'a mut dyn Read,
    count: Rc<Cell<u64>>,
}

impl Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// Fails once the decompressed side outgrows `ratio` times the compressed side (past a floor).
struct RatioGuard<R> {
    inner: R,
    compressed: Rc<Cell<u64>>,
    out: u64,
    ratio: u64,
    floor: u64,
}

impl<R: Read> Read for RatioGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out += n as u64;
        if self.out > self.floor && self.out / self.ratio.max(1) > self.compressed.get() {
            return Err(io::Error::other(format!(
                "decompression bomb: {} bytes out of {} compressed (over {}:1), not read further",
                self.out,
                self.compressed.get(),
                self.ratio
            )));
        }
        Ok(n)
    }
}

/// A read buffer over a seekable source that keeps its bytes when a seek lands inside them
/// (`BufReader` drops them on every seek).
struct SeekBuffer<R> {
    inner: R,
    buf: Vec<u8>,
    /// Source offset of `buf[0]`, and how many bytes of `buf` hold data.
    start: u64,
    filled: usize,
    /// The reader's position in the source.
    pos: u64,
    /// Where `inner` is positioned.
    inner_pos: u64,
}

impl<R: Read + Seek> SeekBuffer<R> {
    fn new(inner: R, capacity: usize) -> Self {
        SeekBuffer { inner, buf: vec![0; capacity], start: 0, filled: 0, pos: 0, inner_pos: 0 }
    }
}

impl<R: Read + Seek> Read for SeekBuffer<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let end = self.start + self.filled as u64;
        if self.pos < self.start || self.pos >= end {
            if self.inner_pos != self.pos {
                self.inner.seek(io::SeekFrom::Start(self.pos))?;
                self.inner_pos = self.pos;
            }
            // A large read goes straight through.
            if out.len() >= self.buf.len() {
                let n = self.inner.read(out)?;
                self.inner_pos += n as u64;
                self.pos += n as u64;
                return Ok(n);
            }
            self.filled = self.inner.read(&mut self.buf)?;
            self.start = self.pos;
            self.inner_pos += self.filled as u64;
        }
        let at = usize::try_from(self.pos - self.start).unwrap_or(usize::MAX).min(self.filled);
        let n = out.len().min(self.filled - at);
        out[..n].copy_from_slice(&self.buf[at..at + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: Read + Seek> Seek for SeekBuffer<R> {
    fn seek(&mut self, to: io::SeekFrom) -> io::Result<u64> {
        self.pos = match to {
            io::SeekFrom::Start(p) => p,
            io::SeekFrom::Current(d) => self.pos.checked_add_signed(d).ok_or_else(|| io::Error::other("seek before the start"))?,
            io::SeekFrom::End(_) => {
                self.inner_pos = self.inner.seek(to)?;
                self.inner_pos
            }
        };
        Ok(self.pos)
    }
}

/// A raw deflate decompressor and its input buffer, reused from one zip entry to the next.
struct Inflater {
    state: flate2::Decompress,
    input: Vec<u8>,
}

impl Default for Inflater {
    fn default() -> Self {
        Inflater { state: flate2::Decompress::new(false), input: vec![0; 8 << 10] }
    }
}

impl Inflater {
    /// A reader of the inflated bytes of `raw` (a zip entry's deflate stream, no zlib header).
    fn reader<'a>(&'a mut self, raw: &'a mut dyn Read) -> Inflating<'a> {
        self.state.reset(false);
        Inflating { state: &mut self.state, input: &mut self.input, raw, pos: 0, len: 0, input_done: false, done: false }
    }
}

struct Inflating<'a> {
    state: &'a mut flate2::Decompress,
    input: &'a mut Vec<u8>,
    raw: &'a mut dyn Read,
    pos: usize,
    len: usize,
    input_done: bool,
    done: bool,
}

impl Read for Inflating<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.done || out.is_empty() {
            return Ok(0);
        }
        // Each turn consumes input or produces output or refills, or the stream ends or fails.
        loop {
            if self.pos == self.len && !self.input_done {
                self.len = self.raw.read(self.input)?;
                self.pos = 0;
                self.input_done = self.len == 0;
            }
            let (in_before, out_before) = (self.state.total_in(), self.state.total_out());
            let status = self.state.decompress(&self.input[self.pos..self.len], out, flate2::FlushDecompress::None)?;
            let consumed = (self.state.total_in() - in_before) as usize;
            let produced = (self.state.total_out() - out_before) as usize;
            self.pos += consumed;
            if status == flate2::Status::StreamEnd {
                self.done = true;
                return Ok(produced);
            }
            if produced > 0 {
                return Ok(produced);
            }
            if consumed == 0 && (self.input_done || self.pos < self.len) {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "deflate stream ends early or is corrupt"));
            }
        }
    }
}

fn is_json_metadata(key: &str, head: &[u8]) -> bool {
    (key == "manifest.json" || key == "index.json" || key.starts_with("blobs/sha256/")) && matches!(head.first(), Some(b'{' | b'['))
}

fn path_hash(path: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    path.hash(&mut h);
    h.finish()
}

fn may_be_layer(key: &str) -> bool {
    key.ends_with("/layer.tar") || key.starts_with("blobs/sha256/") || key == "layer.tar"
}

impl Walker {
    pub fn new(options: Options) -> Self {
        let table = advisory::advisories();
        let names = advisory::package_names(&table);
        Walker::with_advisories(options, table, names)
    }

    fn with_advisories(options: Options, table: Vec<Advisory>, names: Vec<String>) -> Self {
        Walker { options, detector: Detector::new(), buf: Vec::new(), member: Vec::new(), inflater: Inflater::default(), table, names, issues: Vec::new(), bytes: 0 }
    }

    /// A walker for another thread: the same options and advisories, buffers of its own.
    fn worker(&self) -> Walker {
        Walker::with_advisories(self.options.clone(), self.table.clone(), self.names.clone())
    }

    /// Audit one PATH: a directory or a file of any supported kind.
    pub fn audit_path(&mut self, path: &Path) -> Audit {
        let top = path.display().to_string();
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) => {
                self.issue(vec![top], format!("cannot read: {e}"));
                return self.finish(Vec::new());
            }
        };
        let tree = if meta.is_dir() {
            let mut tree = Tree::default();
            self.walk_dir(path, &top, &mut tree);
            tree
        } else {
            let mut tree = Tree::default();
            self.file_entry(path, std::slice::from_ref(&top), &top, &mut tree);
            tree
        };
        // A directory's entries are named relative to it; a file names itself.
        let prefix = if meta.is_dir() { vec![top] } else { Vec::new() };
        let findings = self.resolve(tree, &prefix, None);
        self.finish(findings)
    }

    /// Audit a stream (the fuzz entry point and in-memory tests use it).
    pub fn audit_reader(&mut self, name: &str, reader: &mut dyn Read) -> Audit {
        let mut tree = Tree::default();
        let loc = vec![name.to_string()];
        self.stream_entry(reader, &loc, name, 0, &mut tree);
        let findings = self.resolve(tree, &[], None);
        self.finish(findings)
    }

    /// The result, in location order: the same output whichever thread read which file.
    fn finish(&mut self, mut findings: Vec<Finding>) -> Audit {
        let mut issues = std::mem::take(&mut self.issues);
        findings.sort_by(|a, b| a.location.cmp(&b.location));
        issues.sort_by(|a, b| a.location.cmp(&b.location).then_with(|| a.message.cmp(&b.message)));
        Audit { findings, issues, bytes_scanned: std::mem::take(&mut self.bytes) }
    }

    fn issue(&mut self, location: Vec<String>, message: String) {
        self.issues.push(Issue { location, message });
    }

    fn walk_dir(&mut self, root: &Path, top: &str, tree: &mut Tree) {
        if self.options.jobs <= 1 {
            self.for_each_file(root, |walker, path, rel| walker.file_entry(&path, &[top.to_string(), rel.clone()], &rel, tree));
            return;
        }
        // The files go to `jobs` threads through a short queue (memory stays flat however large
        // the tree); this thread lists the directories and reads the package databases itself.
        let (queue, work) = std::sync::mpsc::sync_channel::<(PathBuf, String)>(4 * self.options.jobs);
        let work = Mutex::new(work);
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..self.options.jobs)
                .map(|_| {
                    let (mut walker, work) = (self.worker(), &work);
                    scope.spawn(move || {
                        let mut fragment = Tree::default();
                        loop {
                            // A poisoned lock is a worker that panicked: the others stop too.
                            let next = match work.lock() {
                                Ok(work) => work.recv(),
                                Err(_) => break,
                            };
                            let Ok((path, rel)) = next else { break };
                            let loc = [top.to_string(), rel.clone()];
                            // A bug on one file must not stop the thread: the listing thread
                            // would wait forever for it to take the next file.
                            let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| walker.file_entry(&path, &loc, &rel, &mut fragment)));
                            if read.is_err() {
                                walker.issue(loc.to_vec(), "not read: the reader failed on this file (a bug in bleedwatch: please report it)".into());
                            }
                        }
                        (fragment, walker.issues, walker.bytes)
                    })
                })
                .collect();
            self.for_each_file(root, |walker, path, rel| {
                if walker.is_special_name(normalise(&rel)) {
                    walker.file_entry(&path, &[top.to_string(), rel.clone()], &rel, tree);
                } else if let Err(std::sync::mpsc::SendError((_, rel))) = queue.send((path, rel)) {
                    walker.issue(vec![top.to_string(), rel], "not read: every worker thread stopped".into());
                }
            });
            drop(queue);
            for worker in workers {
                match worker.join() {
                    Ok((fragment, issues, bytes)) => {
                        tree.absorb(fragment);
                        self.issues.extend(issues);
                        self.bytes += bytes;
                    }
                    Err(_) => self.issue(vec![top.to_string()], "a worker thread failed: the files it was reading are not reported".into()),
                }
            }
        });
    }

    /// Every regular file under `root`, with its path relative to `root`, one directory at a
    /// time in name order. An explicit stack: no recursion on the file system's depth; symlinks
    /// are not followed.
    fn for_each_file(&mut self, root: &Path, mut each: impl FnMut(&mut Self, PathBuf, String)) {
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) => {
                    self.issue(vec![dir.display().to_string()], format!("cannot list: {e}"));
                    continue;
                }
            };
            let mut names: Vec<_> = entries.filter_map(Result::ok).collect();
            names.sort_by_key(|e| e.file_name());
            for entry in names {
                let path = entry.path();
                let Ok(ft) = entry.file_type() else { continue };
                if ft.is_dir() {
                    stack.push(path);
                } else if ft.is_file() {
                    let rel = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().into_owned();
                    each(self, path, rel);
                }
            }
        }
    }

    /// A file on disk, entered into `tree` under `name` (its path inside the tree).
    fn file_entry(&mut self, path: &Path, loc: &[String], name: &str, tree: &mut Tree) {
        let mut file = match File::open(path) {
            Ok(f) => f,
            Err(e) => {
                self.issue(loc.to_vec(), format!("cannot open: {e}"));
                return;
            }
        };
        let head = match read_head(&mut file, 512) {
            Ok(h) => h,
            Err(e) => {
                self.issue(loc.to_vec(), format!("cannot read: {e}"));
                return;
            }
        };
        if matches!(sniff(&head), Sniff::Zip) {
            // On disk a zip can seek: read it through its central directory. A jar's thousands
            // of entries each cost a seek and small reads: through a buffer that survives seeks
            // landing inside it (entries are read in file order), so about one read per 64 KiB.
            match file.seek(io::SeekFrom::Start(0)) {
                Ok(_) => self.zip_entry(SeekBuffer::new(file, 64 << 10), loc, name, 0, tree),
                Err(e) => self.issue(loc.to_vec(), format!("cannot read: {e}")),
            }
            return;
        }
        if matches!(sniff(&head), Sniff::Squashfs) {
            // On disk a squashfs image is read in place, through seeks.
            match file.seek(io::SeekFrom::Start(0)) {
                Ok(_) => self.squashfs_entry(io::BufReader::with_capacity(64 << 10, file), loc, name, 0, tree),
                Err(e) => self.issue(loc.to_vec(), format!("cannot read: {e}")),
            }
            return;
        }
        let key = normalise(name);
        if let Some(kind) = rpmdb::rpmdb_kind(key) {
            // On disk a whole server's database is read (the cap in streams is lower).
            let key = key.to_string();
            self.rpm_database(kind, &head, &mut file, pkgdb::MAX_RPMDB_ON_DISK, loc, &key, tree);
            return;
        }
        if matches!(sniff(&head), Sniff::Plain) && detect::is_executable(&head) && !self.is_special(key, &head) {
            let key = key.to_string();
            self.scan_on_disk(&head, &mut file, loc, &key, tree);
            return;
        }
        let mut rest: &mut dyn Read = &mut file;
        self.entry_with_head(head, &mut rest, loc, name, 0, None, tree);
    }

    /// An entry of a stream: sniff its head, then open it as an archive or scan it.
    fn stream_entry(&mut self, reader: &mut dyn Read, loc: &[String], name: &str, depth: usize, tree: &mut Tree) {
        match read_head(reader, 512) {
            Ok(head) => self.entry_with_head(head, reader, loc, name, depth, None, tree),
            Err(e) => self.issue(loc.to_vec(), format!("cannot read: {e}")),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn entry_with_head(
        &mut self,
        head: Vec<u8>,
        rest: &mut dyn Read,
        loc: &[String],
        name: &str,
        depth: usize,
        size: Option<u64>,
        tree: &mut Tree,
    ) {
        let key = normalise(name).to_string();
        if self.special_file(&key, &head, rest, loc, tree) {
            return;
        }
        let kind = sniff(&head);
        let archive = matches!(kind, Sniff::Tar | Sniff::Zip | Sniff::Ar | Sniff::Gzip | Sniff::Xz | Sniff::Zstd);
        if archive && matches!(kind, Sniff::Tar | Sniff::Zip | Sniff::Ar) && depth >= self.options.max_depth {
            self.issue(loc.to_vec(), format!("archive not opened: nested deeper than the bound of {}", self.options.max_depth));
            return;
        }
        if matches!(kind, Sniff::Plain) && !detect::is_executable(&head) {
            // Only executables can be OpenSSL copies: the rest of any other file is not read (for
            // an archive member it is skipped, or never decompressed).
            self.skipped(&key, head.len(), tree);
            return;
        }
        let mut chained = io::Cursor::new(head).chain(rest);
        match kind {
            Sniff::Gzip | Sniff::Xz | Sniff::Zstd => self.decompress(kind, &mut chained, loc, name, depth, tree),
            Sniff::Tar => {
                let child = self.tar(&mut chained, loc, depth + 1, may_be_layer(&key));
                self.adopt(child, key, loc, tree);
            }
            Sniff::Zip => {
                if let Some(bytes) = self.buffered(&mut chained, loc, "zip") {
                    self.zip_entry(io::Cursor::new(bytes), loc, name, depth, tree);
                }
            }
            Sniff::Ar => {
                let child = self.ar(&mut chained, loc, depth + 1);
                self.adopt(child, key, loc, tree);
            }
            Sniff::Squashfs => {
                if let Some(bytes) = self.buffered(&mut chained, loc, "squashfs image") {
                    self.squashfs_entry(io::Cursor::new(bytes), loc, name, depth, tree);
                }
            }
            Sniff::Plain => self.scan_file(&mut chained, loc, &key, size, tree),
        }
    }

    /// A zip or squashfs image inside a stream, held in memory to be read (both need seeking): up to
    /// `max_buffered_zip` bytes, else reported and not opened.
    fn buffered(&mut self, stream: &mut dyn Read, loc: &[String], what: &str) -> Option<Vec<u8>> {
        let cap = self.options.max_buffered_zip;
        let mut bytes = Vec::new();
        match stream.take(cap + 1).read_to_end(&mut bytes) {
            Ok(_) if bytes.len() as u64 > cap => {
                self.issue(loc.to_vec(), format!("{what} inside a stream larger than {} MiB: not opened", cap >> 20));
                None
            }
            Ok(_) => Some(bytes),
            Err(e) => {
                self.issue(loc.to_vec(), format!("truncated or unreadable: {e}"));
                None
            }
        }
    }

    /// A file that is not an executable: read no further, but an image layer still overwrites it.
    fn skipped(&mut self, key: &str, head_len: usize, tree: &mut Tree) {
        self.bytes += head_len as u64;
        if let Some(paths) = tree.paths.as_mut() {
            paths.insert(path_hash(key));
        }
    }

    /// An executable: searched in two passes when it can be read twice (in memory when its size is
    /// known and small), else in one.
    fn scan_file(&mut self, reader: &mut dyn Read, loc: &[String], key: &str, size: Option<u64>, tree: &mut Tree) {
        let mut buf = std::mem::take(&mut self.buf);
        let result = match size {
            Some(size) if size <= MEMBER_IN_MEMORY => {
                let mut member = std::mem::take(&mut self.member);
                member.clear();
                let read = reader.take(size).read_to_end(&mut member);
                let result = read.map(|_| self.detector.scan_bytes(&member, &mut buf));
                self.member = member;
                result
            }
            _ => self.detector.scan(&[], reader, &mut buf),
        };
        self.buf = buf;
        self.record(result, loc, key, size, tree);
    }

    /// An executable on disk (`file` positioned after `head`): two passes, the second only if the
    /// first found a version.
    fn scan_on_disk(&mut self, head: &[u8], file: &mut File, loc: &[String], key: &str, tree: &mut Tree) {
        let mut buf = std::mem::take(&mut self.buf);
        let result = self.detector.scan_rereadable(head, file, &mut buf);
        self.buf = buf;
        self.record(result, loc, key, None, tree);
    }

    fn record(&mut self, result: io::Result<Evidence>, loc: &[String], key: &str, size: Option<u64>, tree: &mut Tree) {
        match result {
            Ok(evidence) => {
                self.bytes += evidence.bytes;
                if let Some(expected) = size {
                    if evidence.bytes < expected {
                        self.issue(loc.to_vec(), format!("truncated: {} of {} bytes", evidence.bytes, expected));
                    }
                }
                if let Some(paths) = tree.paths.as_mut() {
                    paths.insert(path_hash(key));
                }
                if evidence.executable && !evidence.versions.is_empty() {
                    tree.copies.push(Copy { path: vec![loc.last().cloned().unwrap_or_default()], key: key.to_string(), evidence, package: None, resolved: None });
                }
            }
            Err(e) => self.issue(loc.to_vec(), format!("truncated or unreadable: {e}")),
        }
    }

    /// Whether `key` names a package database, os-release or image metadata (read, not scanned).
    fn is_special(&self, key: &str, head: &[u8]) -> bool {
        self.is_special_name(key) || is_json_metadata(key, head)
    }

    /// Whether `key` names a package database or os-release: read in order by the walking thread.
    fn is_special_name(&self, key: &str) -> bool {
        key == "var/lib/dpkg/status"
            || key == "lib/apk/db/installed"
            || key == "etc/os-release"
            || key == "usr/lib/os-release"
            || key == "etc/debian_version"
            || key == "etc/alpine-release"
            || key == "etc/redhat-release"
            || key == "etc/centos-release"
            || key == "etc/system-release"
            || key == "etc/SuSE-release"
            || key == "control"
            || rpmdb::rpmdb_kind(key).is_some()
            || pkgdb::dpkg_list_package(key, &self.names).is_some()
    }

    /// Package databases, os-release and image metadata: read into the tree, not scanned.
    fn special_file(&mut self, key: &str, head: &[u8], rest: &mut dyn Read, loc: &[String], tree: &mut Tree) -> bool {
        if !self.is_special(key, head) {
            return false;
        }
        if let Some(kind) = rpmdb::rpmdb_kind(key) {
            self.rpm_database(kind, head, rest, pkgdb::MAX_RPMDB_IN_STREAM, loc, key, tree);
            return true;
        }
        let dpkg_list = pkgdb::dpkg_list_package(key, &self.names);
        let json = is_json_metadata(key, head);
        let cap = if json { MAX_JSON } else { pkgdb::MAX_DB_BYTES };
        let mut bytes = head.to_vec();
        if let Err(e) = rest.take(cap).read_to_end(&mut bytes) {
            self.issue(loc.to_vec(), format!("truncated or unreadable: {e}"));
            return true;
        }
        if let Some(paths) = tree.paths.as_mut() {
            paths.insert(path_hash(key));
        }
        if json {
            tree.json.insert(key.to_string(), bytes);
            return true;
        }
        let text = String::from_utf8_lossy(&bytes);
        match key {
            "var/lib/dpkg/status" => pkgdb::parse_dpkg_status(&text, &self.names, &mut tree.db),
            "lib/apk/db/installed" => pkgdb::parse_apk_installed(&text, &self.names, &mut tree.db),
            "etc/os-release" | "usr/lib/os-release" => {
                if let Some(os) = pkgdb::parse_os_release(&text) {
                    tree.db.os = Some(os);
                }
            }
            "etc/debian_version" if tree.db.os.is_none() => tree.db.os = pkgdb::release_file("debian", &text),
            "etc/alpine-release" if tree.db.os.is_none() => tree.db.os = pkgdb::release_file("alpine", &text),
            "etc/redhat-release" if tree.db.os.is_none() => tree.db.os = pkgdb::parse_redhat_release("etc/redhat-release", &text),
            "etc/centos-release" if tree.db.os.is_none() => tree.db.os = pkgdb::parse_redhat_release("etc/centos-release", &text),
            "etc/system-release" if tree.db.os.is_none() => tree.db.os = pkgdb::parse_redhat_release("etc/system-release", &text),
            "etc/SuSE-release" if tree.db.os.is_none() => tree.db.os = pkgdb::parse_suse_release(&text),
            "control" => {
                let field = |f: &str| text.lines().find_map(|l| l.strip_prefix(f)).map(|v| v.trim().to_string());
                if let (Some(p), Some(v)) = (field("Package:"), field("Version:")) {
                    tree.control_file = Some((p, v));
                }
            }
            _ => {
                if let Some(package) = dpkg_list {
                    pkgdb::parse_dpkg_list(&text, &package, &mut tree.db);
                }
            }
        }
        true
    }

    /// rpm's database (SQLite or Berkeley DB), read whole into memory up to `cap`, never to disk.
    #[allow(clippy::too_many_arguments)]
    fn rpm_database(&mut self, kind: RpmDbKind, head: &[u8], rest: &mut dyn Read, cap: u64, loc: &[String], key: &str, tree: &mut Tree) {
        if let Some(paths) = tree.paths.as_mut() {
            paths.insert(path_hash(key));
        }
        let not_read = "not read: copies it owns are decided by their version strings";
        let mut bytes = head.to_vec();
        if let Err(e) = rest.take((cap + 1).saturating_sub(head.len() as u64)).read_to_end(&mut bytes) {
            self.issue(loc.to_vec(), format!("rpm database truncated or unreadable ({e}): {not_read}"));
            return;
        }
        if bytes.len() as u64 > cap {
            self.issue(loc.to_vec(), format!("rpm database larger than {} MiB: {not_read}", cap >> 20));
            return;
        }
        if let Err(e) = pkgdb::parse_rpmdb(kind, &bytes, &self.names, &mut tree.db) {
            self.issue(loc.to_vec(), format!("{e}: {not_read}"));
        }
    }

    fn decompress(&mut self, kind: Sniff, reader: &mut dyn Read, loc: &[String], name: &str, depth: usize, tree: &mut Tree) {
        let count = Rc::new(Cell::new(0));
        let counting = Counting { inner: reader, count: count.clone() };
        let (ratio, floor) = (self.options.max_ratio, self.options.ratio_floor);
        let inner: Box<dyn Read + '_> = match kind {
            Sniff::Gzip => Box::new(flate2::read::MultiGzDecoder::new(counting)),
            Sniff::Xz => Box::new(xz2::read::XzDecoder::new_multi_decoder(counting)),
            _ => match ruzstd::decoding::StreamingDecoder::new(counting) {
                Ok(d) => Box::new(d),
                Err(e) => {
                    self.issue(loc.to_vec(), format!("bad zstd stream: {e}"));
                    return;
                }
            },
        };
        let mut guarded = RatioGuard { inner, compressed: count, out: 0, ratio, floor };
        let head = match read_head(&mut guarded, 512) {
            Ok(h) => h,
            Err(e) => {
                self.issue(loc.to_vec(), format!("truncated or unreadable: {e}"));
                return;
            }
        };
        if matches!(sniff(&head), Sniff::Gzip | Sniff::Xz | Sniff::Zstd) {
            self.issue(loc.to_vec(), "compressed twice: not opened".into());
            return;
        }
        // `libssl.so.gz` is scanned as `libssl.so`.
        let inner_name = [".gz", ".tgz", ".xz", ".txz", ".zst", ".tzst"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name)
            .to_string();
        self.entry_with_head(head, &mut guarded, loc, &inner_name, depth, None, tree);
    }

    /// A tar stream: every entry, in order. `layer` records whiteouts and path hashes.
    fn tar(&mut self, reader: &mut dyn Read, loc: &[String], depth: usize, layer: bool) -> Tree {
        let mut tree = Tree { paths: layer.then(HashSet::new), ..Tree::default() };
        let mut archive = tar::Archive::new(reader);
        let entries = match archive.entries() {
            Ok(e) => e,
            Err(e) => {
                self.issue(loc.to_vec(), format!("unreadable tar: {e}"));
                return tree;
            }
        };
        for entry in entries {
            let mut entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    self.issue(loc.to_vec(), format!("truncated or corrupt tar: {e}"));
                    break;
                }
            };
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let key = normalise(&name).to_string();
            let base = key.rsplit('/').next().unwrap_or(&key);
            let dir = key.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
            if let Some(hidden) = base.strip_prefix(".wh.") {
                if hidden == ".wh..opq" {
                    tree.opaque.push(dir.to_string());
                } else if dir.is_empty() {
                    tree.whiteouts.push(hidden.to_string());
                } else {
                    tree.whiteouts.push(format!("{dir}/{hidden}"));
                }
                continue;
            }
            let entry_type = entry.header().entry_type();
            if entry_type.is_symlink() || entry_type.is_hard_link() {
                // A link replaces whatever was at its path in a lower layer.
                if let Some(paths) = tree.paths.as_mut() {
                    paths.insert(path_hash(&key));
                }
                continue;
            }
            if !entry_type.is_file() {
                continue;
            }
            let size = entry.header().size().ok();
            let mut child_loc = loc.to_vec();
            child_loc.push(name.clone());
            let head = match read_head(&mut entry, 512) {
                Ok(h) => h,
                Err(e) => {
                    self.issue(child_loc, format!("truncated or unreadable: {e}"));
                    break;
                }
            };
            let short = size.is_some_and(|s| (head.len() as u64) < s.min(512));
            if short {
                self.issue(child_loc, format!("truncated: the archive ends inside {name}"));
                break;
            }
            let before = self.issues.len();
            self.entry_with_head(head, &mut entry, &child_loc, &name, depth, size, &mut tree);
            if self.issues.len() > before && self.issues[before..].iter().any(|i| i.message.starts_with("truncated")) {
                break;
            }
        }
        tree
    }

    fn ar(&mut self, reader: &mut dyn Read, loc: &[String], depth: usize) -> Tree {
        let mut tree = Tree::default();
        let mut control = None;
        let mut archive = match ArReader::new(reader) {
            Ok(a) => a,
            Err(e) => {
                self.issue(loc.to_vec(), format!("truncated or corrupt ar archive: {e}"));
                return tree;
            }
        };
        loop {
            let member = match archive.next_member() {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(e) => {
                    self.issue(loc.to_vec(), format!("truncated or corrupt ar archive: {e}"));
                    break;
                }
            };
            let Member { name, size } = member;
            let entry: &mut dyn Read = &mut archive;
            let mut child_loc = loc.to_vec();
            child_loc.push(name.clone());
            if name.starts_with("control.tar") {
                // The .deb's control: its package name and version own everything in data.tar.
                let mut sub = Tree::default();
                self.stream_entry(entry, &child_loc, &name, depth, &mut sub);
                control = sub.control_file.or(control);
                // Members after the control (data.tar) are resolved as they end: owned by it.
                tree.deb_control.clone_from(&control);
                continue;
            }
            let head = match read_head(entry, 512) {
                Ok(h) => h,
                Err(e) => {
                    self.issue(child_loc, format!("truncated or unreadable: {e}"));
                    break;
                }
            };
            self.entry_with_head(head, entry, &child_loc, &name, depth, Some(size), &mut tree);
        }
        tree.deb_control = control;
        tree
    }

    fn zip_entry<R: Read + io::Seek>(&mut self, reader: R, loc: &[String], name: &str, depth: usize, tree: &mut Tree) {
        if depth >= self.options.max_depth {
            self.issue(loc.to_vec(), format!("archive not opened: nested deeper than the bound of {}", self.options.max_depth));
            return;
        }
        let mut zip = match zip::ZipArchive::new(reader) {
            Ok(z) => z,
            Err(e) => {
                self.issue(loc.to_vec(), format!("truncated or corrupt zip: {e}"));
                return;
            }
        };
        let mut child = Tree::default();
        let mut inflater = std::mem::take(&mut self.inflater);
        for i in 0..zip.len() {
            // Raw entries, inflated here with one reused decompressor: a jar's thousands of
            // entries are mostly read only for their first bytes, and a fresh decompressor per
            // entry (allocation, zeroed window) cost more than that.
            let file = match zip.by_index_raw(i) {
                Ok(f) => f,
                Err(e) => {
                    self.issue(loc.to_vec(), format!("corrupt zip entry {i}: {e}"));
                    continue;
                }
            };
            if !file.is_file() {
                continue;
            }
            let entry_name = file.name().to_string();
            let mut child_loc = loc.to_vec();
            child_loc.push(entry_name.clone());
            if file.encrypted() {
                self.issue(child_loc, "encrypted zip entry: not read".into());
                continue;
            }
            let compressed = Rc::new(Cell::new(file.compressed_size().max(1)));
            let size = file.size();
            let method = file.compression();
            let mut raw = file;
            let mut decoded: Box<dyn Read + '_> = match method {
                zip::CompressionMethod::Stored => Box::new(&mut raw),
                zip::CompressionMethod::Deflated => Box::new(inflater.reader(&mut raw)),
                other => {
                    self.issue(child_loc, format!("zip entry compressed with {other}: not read"));
                    continue;
                }
            };
            let mut guarded = RatioGuard { inner: &mut decoded, compressed, out: 0, ratio: self.options.max_ratio, floor: self.options.ratio_floor };
            let head = match read_head(&mut guarded, 512) {
                Ok(h) => h,
                Err(e) => {
                    self.issue(child_loc, format!("truncated or unreadable: {e}"));
                    continue;
                }
            };
            self.entry_with_head(head, &mut guarded, &child_loc, &entry_name, depth + 1, Some(size), &mut child);
        }
        self.inflater = inflater;
        self.adopt(child, normalise(name).to_string(), loc, tree);
    }

    /// A squashfs image: every regular file entered like a tar member.
    fn squashfs_entry<R: io::BufRead + Seek + Send>(&mut self, reader: R, loc: &[String], name: &str, depth: usize, tree: &mut Tree) {
        if depth >= self.options.max_depth {
            self.issue(loc.to_vec(), format!("archive not opened: nested deeper than the bound of {}", self.options.max_depth));
            return;
        }
        let limits = squashfs::Limits { max_ratio: self.options.max_ratio, ratio_floor: self.options.ratio_floor };
        let image = match squashfs::Image::open(reader, limits) {
            Ok(image) => image,
            Err(e) => {
                self.issue(loc.to_vec(), format!("squashfs image not opened: {e}"));
                return;
            }
        };
        let mut child = Tree::default();
        image.for_each_file(|path, size, reader| {
            if image.exhausted() {
                return;
            }
            let mut child_loc = loc.to_vec();
            child_loc.push(path.to_string());
            match read_head(reader, 512) {
                Ok(head) => self.entry_with_head(head, reader, &child_loc, path, depth + 1, Some(size), &mut child),
                Err(e) => self.issue(child_loc, format!("truncated or unreadable: {e}")),
            }
        });
        self.adopt(child, normalise(name).to_string(), loc, tree);
    }

    /// A child container ends: keep it as a possible image layer, or resolve it into the parent.
    fn adopt(&mut self, mut child: Tree, key: String, loc: &[String], parent: &mut Tree) {
        if let Some(control) = child.control_file.take() {
            parent.control_file = Some(control);
        }
        if child.deb_control.is_none() {
            child.deb_control.clone_from(&parent.deb_control);
        }
        if child.paths.is_some() {
            parent.layers.push((key, child));
            return;
        }
        let segment = loc.last().cloned().unwrap_or_default();
        for finding in self.resolve(child, &[], None) {
            parent.copies.push(lifted(&segment, &key, finding));
        }
    }

    /// Decide every copy in `tree` (an image's layers merged first), locations prefixed by `prefix`.
    fn resolve(&mut self, mut tree: Tree, prefix: &[String], image: Option<&str>) -> Vec<Finding> {
        let layers = std::mem::take(&mut tree.layers);
        let mut layers: Vec<Option<(String, Tree)>> = layers.into_iter().map(Some).collect();
        for (order, image_name) in image_plans(&tree.json) {
            let mut merged = Tree::default();
            let mut complete = true;
            for layer_key in &order {
                let Some(slot) = layers.iter_mut().find(|l| l.as_ref().is_some_and(|(k, _)| k == layer_key)) else {
                    self.issue(prefix.to_vec(), format!("image {image_name}: layer {layer_key} is missing"));
                    complete = false;
                    continue;
                };
                let Some((key, layer)) = slot.take() else { continue };
                apply_layer(&mut merged, layer, &layer_label(&key));
            }
            if !complete {
                self.issue(prefix.to_vec(), format!("image {image_name}: incomplete, findings are for the layers present"));
            }
            let findings = self.resolve(merged, prefix, Some(&image_name));
            for f in findings {
                tree.copies.push(Copy { path: Vec::new(), key: String::new(), evidence: Evidence::default(), package: None, resolved: Some(f) });
            }
        }
        // Trees that were no image's layer are ordinary nested archives.
        for (key, mut layer) in layers.into_iter().flatten() {
            layer.paths = None;
            let segment = key.clone();
            for f in self.resolve(layer, &[], None) {
                tree.copies.push(lifted(&segment, &key, f));
            }
        }
        let deb = tree.deb_control.clone();
        let mut out = Vec::new();
        for copy in tree.copies {
            if let Some(mut f) = copy.resolved {
                let mut location = prefix.to_vec();
                location.append(&mut f.location);
                f.location = location;
                if f.image.is_none() {
                    f.image = image.map(str::to_string);
                }
                out.push(f);
                continue;
            }
            let owner = copy
                .package
                .clone()
                .or_else(|| deb.as_ref().map(|(n, v)| (Format::Dpkg, n.clone(), v.clone())))
                .or_else(|| {
                    let name = tree.db.owners.get(&copy.key)?;
                    let (format, version) = tree.db.installed.get(name)?;
                    Some((*format, name.clone(), version.clone()))
                });
            let mut location = prefix.to_vec();
            location.extend(copy.path.iter().cloned());
            let kind = kind_of(&copy.key, &copy.evidence);
            let (heartbeats, hb_why) = heartbeats_of(kind, &copy.evidence);
            let (package, decision) = match owner {
                Some((format, name, version)) => {
                    let (info, decision) = package_decision(&self.table, tree.db.os.as_ref(), format, &name, &version);
                    (Some(info), Some(decision))
                }
                None => (None, None),
            };
            for version in &copy.evidence.versions {
                let (verdict, reason) = decide(version, heartbeats, decision.as_ref());
                out.push(Finding {
                    location: location.clone(),
                    image: image.map(str::to_string),
                    kind,
                    version: version.clone(),
                    heartbeats,
                    heartbeats_evidence: hb_why.to_string(),
                    package: package.clone(),
                    verdict,
                    reason,
                });
            }
        }
        out
    }
}

/// A finding from a nested tree, placed under the parent's entry.
fn lifted(segment: &str, key: &str, mut finding: Finding) -> Copy {
    let mut location = vec![segment.to_string()];
    location.append(&mut finding.location);
    finding.location = location;
    Copy { path: Vec::new(), key: key.to_string(), evidence: Evidence::default(), package: None, resolved: Some(finding) }
}

fn layer_label(key: &str) -> String {
    match key.strip_prefix("blobs/sha256/") {
        Some(hex) => format!("sha256:{hex}"),
        None => key.to_string(),
    }
}

/// Apply one layer over the merged lower layers: whiteouts, opaque folders and overwritten paths
/// remove lower copies; then the layer's own copies and databases go on top.
fn apply_layer(merged: &mut Tree, layer: Tree, label: &str) {
    let under = |key: &str, dir: &str| dir.is_empty() || key == dir || key.starts_with(&format!("{dir}/"));
    merged.copies.retain(|c| {
        !layer.whiteouts.iter().any(|w| under(&c.key, w))
            && !layer.opaque.iter().any(|d| c.key.starts_with(&format!("{d}/")) || d.is_empty())
            && !layer.paths.as_ref().is_some_and(|p| p.contains(&path_hash(&c.key)))
    });
    for mut copy in layer.copies {
        let mut path = vec![label.to_string()];
        if copy.resolved.is_some() {
            // Findings of archives inside the layer: already decided, only their location grows.
            if let Some(f) = copy.resolved.as_mut() {
                let mut location = path.clone();
                location.append(&mut f.location);
                f.location = location;
            }
        } else {
            path.append(&mut copy.path);
            copy.path = path;
        }
        merged.copies.push(copy);
    }
    merged.db.overlay(layer.db);
}

/// The images described by a container's small JSON files: each as (layer keys in order, name).
/// `manifest.json` (docker save) and `index.json` → manifest blob (OCI image layout).
fn image_plans(json: &HashMap<String, Vec<u8>>) -> Vec<(Vec<String>, String)> {
    let mut plans = Vec::new();
    let parse = |bytes: &Vec<u8>| serde_json::from_slice::<serde_json::Value>(bytes).ok();
    if let Some(manifest) = json.get("manifest.json").and_then(parse) {
        for image in manifest.as_array().into_iter().flatten() {
            let layers: Vec<String> = image["Layers"].as_array().into_iter().flatten().filter_map(|l| l.as_str()).map(|l| normalise(l).to_string()).collect();
            let name = image["RepoTags"][0]
                .as_str()
                .map(str::to_string)
                .or_else(|| image["Config"].as_str().map(config_digest))
                .unwrap_or_else(|| "image".into());
            plans.push((layers, name));
        }
        if !plans.is_empty() {
            return plans;
        }
    }
    if let Some(index) = json.get("index.json").and_then(parse) {
        let blob = |digest: &str| json.get(&format!("blobs/sha256/{}", digest.strip_prefix("sha256:").unwrap_or(digest))).and_then(parse);
        for descriptor in index["manifests"].as_array().into_iter().flatten() {
            let Some(digest) = descriptor["digest"].as_str() else { continue };
            let Some(mut manifest) = blob(digest) else { continue };
            // A nested index (multi-platform): follow its first manifest, once.
            if manifest["layers"].is_null() {
                if let Some(inner) = manifest["manifests"][0]["digest"].as_str().and_then(blob) {
                    manifest = inner;
                }
            }
            let layers: Vec<String> = manifest["layers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|l| l["digest"].as_str())
                .map(|d| format!("blobs/sha256/{}", d.strip_prefix("sha256:").unwrap_or(d)))
                .collect();
            let name = descriptor["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| digest.to_string());
            plans.push((layers, name));
        }
    }
    plans
}

fn config_digest(config: &str) -> String {
    let file = config.rsplit('/').next().unwrap_or(config);
    let hex = file.strip_suffix(".json").unwrap_or(file);
    if hex.len() == 64 && hex.bytes().all(|c| c.is_ascii_hexdigit()) {
        format!("sha256:{hex}")
    } else {
        config.to_string()
    }
}

fn package_decision(
    table: &[Advisory],
    os: Option<&pkgdb::OsRelease>,
    format: Format,
    name: &str,
    version: &str,
) -> (PackageInfo, PackageDecision) {
    let manager = match format {
        Format::Dpkg => "dpkg",
        Format::Rpm => "rpm",
        Format::Apk => "apk",
    };
    let mut info = PackageInfo {
        manager: manager.into(),
        name: name.into(),
        version: version.into(),
        distribution: os.map(|o| format!("{} {}", o.id, o.version_id)),
        advisory: None,
        fixed_version: None,
    };
    let (row, how) = match os {
        Some(os) => (advisory::find(table, format, &os.id, &os.version_id, name), format!("distribution from {}", os.source)),
        None => (infer_row(table, format, name, version), "release inferred from the package version".to_string()),
    };
    let Some(row) = row else {
        let why = match &info.distribution {
            Some(d) => format!("package {name} {version} ({d}) has no row in the advisory table: the version string decides"),
            None => format!("package {name} {version}, distribution unknown and not inferable: the version string decides"),
        };
        return (info, PackageDecision::Undecided { summary: why });
    };
    info.advisory = Some(row.id.clone());
    info.fixed_version = Some(row.fixed_version.clone());
    if info.distribution.is_none() {
        info.distribution = Some(format!("{} {}", row.distribution, row.release));
    }
    if !row.verified {
        let summary = format!(
            "package {name} {version}; the advisory row ({}, fixed in {}) is unverified: the version string decides",
            row.id, row.fixed_version
        );
        return (info, PackageDecision::Undecided { summary });
    }
    let summary = format!("package {name} {version}, {} fixed in {} ({how})", row.id, row.fixed_version);
    if advisory::is_fixed(row, version) {
        (info, PackageDecision::Fixed { summary })
    } else {
        (info, PackageDecision::NotFixed { summary: format!("{summary}: older than the fix") })
    }
}

/// Without os-release (a lone .deb): the row whose fixed version has the same upstream part and
/// distribution marker, if exactly one does; never a guess between releases.
fn infer_row<'a>(table: &'a [Advisory], format: Format, name: &str, version: &str) -> Option<&'a Advisory> {
    let upstream = |v: &str| v.rsplit_once('-').map(|(u, _)| u.to_string()).unwrap_or_else(|| v.to_string());
    let family = |v: &str| {
        if v.contains("ubuntu") {
            "ubuntu"
        } else if v.contains("+deb") {
            "debian"
        } else {
            ""
        }
    };
    let candidates: Vec<&Advisory> = table
        .iter()
        .filter(|a| a.format == format && a.package == name)
        .filter(|a| upstream(&a.fixed_version) == upstream(version) && family(&a.fixed_version) == family(version) && !family(version).is_empty())
        .collect();
    match candidates.as_slice() {
        [one] => Some(one),
        _ => None,
    }
}
