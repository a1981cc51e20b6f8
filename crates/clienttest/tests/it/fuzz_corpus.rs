//! The client test's fuzz corpus, replayed as a normal test.

#[test]
fn client_test_fuzz_corpus_replays_without_panic() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/client_test_bytes");
    let files: Vec<Vec<u8>> = std::fs::read_dir(&dir).unwrap().map(|e| std::fs::read(e.unwrap().path()).unwrap()).collect();
    assert!(!files.is_empty(), "empty corpus {}", dir.display());
    for bytes in files {
        bleedwatch_clienttest::fuzz_client_bytes(&bytes);
    }
}
