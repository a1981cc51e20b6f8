//! The probe's fuzz corpus, replayed as a normal test.

#[test]
fn probe_fuzz_corpus_replays_without_panic() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/probe_server_bytes");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        bleedwatch_probe::heartbleed::fuzz_server_bytes(&bytes);
        n += 1;
    }
    assert!(n > 0, "empty corpus {}", dir.display());
}
