//! The probe's fuzz corpora, replayed as normal tests.

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target);
    let files: Vec<Vec<u8>> = std::fs::read_dir(&dir).unwrap().map(|e| std::fs::read(e.unwrap().path()).unwrap()).collect();
    assert!(!files.is_empty(), "empty corpus {}", dir.display());
    files
}

#[test]
fn probe_fuzz_corpus_replays_without_panic() {
    for bytes in corpus("probe_server_bytes") {
        bleedwatch_probe::heartbleed::fuzz_server_bytes(&bytes);
    }
}

#[test]
fn dtls_probe_fuzz_corpus_replays_without_panic() {
    for bytes in corpus("probe_dtls_server_datagrams") {
        bleedwatch_probe::dtls::fuzz_server_datagrams(&bytes);
    }
}
