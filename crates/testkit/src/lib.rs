//! Helpers shared by the workspace's test binaries. A dev-dependency only: nothing here ships.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_corpus_is_an_error() {
        assert!(fuzz_corpus("no-such-target").is_err());
        assert!(fuzz_corpus("wire_records").is_ok_and(|files| !files.is_empty()));
    }
}
