//! Helpers shared by the workspace's test binaries. A dev-dependency only: nothing here ships.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

pub mod postgres;

/// The workspace's `fuzz/corpus/<target>` folder.
pub fn fuzz_corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target)
}

/// Every file of the fuzz target's corpus (fuzz/README.md), for the suite to replay. An empty or
/// missing corpus is an error: a replay over nothing would pass without testing anything.
pub fn fuzz_corpus(target: &str) -> Result<Vec<Vec<u8>>, String> {
    let dir = fuzz_corpus_dir(target);
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        files.push(std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?);
    }
    if files.is_empty() {
        return Err(format!("empty corpus {}", dir.display()));
    }
    Ok(files)
}

/// The real OpenSSL 1.0.1 builds in `../shared/data/openssl/` beside the repository (see its README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenSsl101 {
    /// 1.0.1f: vulnerable.
    F,
    /// 1.0.1g: fixed.
    G,
    /// 1.0.1f built with `-DOPENSSL_NO_HEARTBEATS`.
    FNoHeartbeats,
}

impl OpenSsl101 {
    pub const ALL: [OpenSsl101; 3] = [OpenSsl101::F, OpenSsl101::G, OpenSsl101::FNoHeartbeats];

    pub fn binary_name(self) -> &'static str {
        match self {
            OpenSsl101::F => "openssl-1.0.1f",
            OpenSsl101::G => "openssl-1.0.1g",
            OpenSsl101::FNoHeartbeats => "openssl-1.0.1f-nohb",
        }
    }
}

/// A real `openssl-1.0.1x s_client`, killed (and reaped) when dropped. Its stdin stays open so that
/// it never quits on its own before the test is done with it (it reads commands such as `B`, a
/// heartbeat, from it once the handshake is done).
pub struct S101Client {
    pub child: std::process::Child,
    pub stdin: Option<std::process::ChildStdin>,
}

impl Drop for S101Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl OpenSsl101 {
    /// Starts this build's `s_client` from `openssl_dir` (see [`shared_openssl_dir`]) with `args`,
    /// no configuration file, stdin piped and kept open.
    #[allow(clippy::panic)]
    pub fn s_client(self, openssl_dir: &Path, args: &[&str], stdout: std::process::Stdio, stderr: std::process::Stdio) -> S101Client {
        let mut child = std::process::Command::new(openssl_dir.join("bin").join(self.binary_name()))
            .arg("s_client")
            .args(args)
            .env("OPENSSL_CONF", "/dev/null")
            .stdin(std::process::Stdio::piped())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {} s_client: {e}", self.binary_name()));
        let stdin = child.stdin.take();
        S101Client { child, stdin }
    }
}

/// `../shared/data/openssl` beside the repository root, or None (with a loud note on stderr) when it
/// is not there: the tests against real vulnerable OpenSSL then do not run, and say so.
pub fn shared_openssl_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/openssl");
    if dir.join("bin/openssl-1.0.1f").is_file() {
        return Some(dir);
    }
    eprintln!(
        "SKIPPING: the real OpenSSL 1.0.1 binaries are not in {} (shared/data/openssl beside the repository); \
         these tests against real vulnerable OpenSSL did not run",
        dir.display()
    );
    None
}

/// The LD_PRELOAD shim of `../shared/data/openssl/bind_loopback.c` (its README: it keeps OpenSSL's
/// servers, which bind the wildcard address, on loopback), compiled with `cc` once per test process.
#[allow(clippy::unwrap_used, clippy::panic)]
pub fn bind_loopback_shim(openssl_dir: &Path) -> PathBuf {
    static SHIM: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    SHIM.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("bleedwatch-bind-loopback-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let shim = dir.join("libbind_loopback.so");
        let out = std::process::Command::new("cc")
            .args(["-O2", "-shared", "-fPIC", "-o"])
            .arg(&shim)
            .arg(openssl_dir.join("bind_loopback.c"))
            .arg("-ldl")
            .output()
            .unwrap_or_else(|e| panic!("cc (needed to build the bind_loopback shim): {e}"));
        assert!(out.status.success(), "cc bind_loopback.c failed: {}", String::from_utf8_lossy(&out.stderr));
        shim
    })
    .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_corpus_is_an_error() {
        assert!(fuzz_corpus("no-such-target").is_err());
        assert!(fuzz_corpus("wire_records").is_ok_and(|files| !files.is_empty()));
    }
}
