//! The `starttls_server_replies` fuzz corpus (fuzz/README.md), replayed: whole and cut at every byte.

/// Every file of `fuzz/corpus/<target>`; fails on an empty or missing corpus.
fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target);
    let files: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
        .collect();
    assert!(!files.is_empty(), "empty corpus {}", dir.display());
    files
}

#[test]
fn server_replies_fuzz_corpus_replays_without_panic() {
    for bytes in corpus("starttls_server_replies") {
        for cut in 0..=bytes.len() {
            bleedwatch_starttls::fuzzing::server_replies(&bytes[..cut]);
        }
    }
}
