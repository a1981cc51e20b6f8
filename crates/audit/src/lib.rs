//! `bleedwatch audit`: every OpenSSL copy on disk, in archives, Debian packages and container
//! images, with a Heartbleed verdict for each. The detector (`detect`) reads byte streams; the
//! walker (`walk`) hands it every file of directories, tar (plain, gzip, xz, zstd), zip/jar, ar/.deb,
//! squashfs (`squashfs`) and `docker save`/OCI images, streamed, nothing written to disk; package databases found in the
//! tree (`pkgdb`; rpm's in `rpmdb`) and the distributions' advisories (`advisory`, data/advisories.csv) decide
//! backported fixes.
//!
//! Call [`audit_path`] per PATH and use [`Audit::findings`]; [`Finding`] is plain data (serde).
#![forbid(unsafe_code)]

pub mod advisory;
pub mod ar;
pub mod detect;
pub mod finding;
pub mod pkgdb;
pub mod rpmdb;
pub mod squashfs;
pub mod version;
pub mod walk;

pub use finding::{AuditVerdict, Finding, Heartbeats, Kind, PackageInfo};
pub use walk::{Audit, Issue, Options, Walker};

/// Audit one PATH (a directory or a file of any supported kind).
pub fn audit_path(path: &std::path::Path, options: &Options) -> Audit {
    Walker::new(options.clone()).audit_path(path)
}

/// Untrusted bytes through the whole walker (archives, images, detector): must never panic.
pub fn fuzz_audit(data: &[u8]) {
    let options = Options { max_buffered_zip: 1 << 20, ratio_floor: 1 << 20, ..Options::default() };
    let _ = Walker::new(options).audit_reader("input", &mut &data[..]);
}
