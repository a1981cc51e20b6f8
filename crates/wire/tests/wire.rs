//! The wire crate's integration tests: every fuzz corpus file replays through the parser entry points.

use std::path::PathBuf;

#[test]
fn fuzz_corpus_replays_without_panic() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/wire_records");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        bleedwatch_wire::fuzzing::records(&bytes);
        // Every 97th prefix too: truncation anywhere must be handled.
        for cut in (0..bytes.len()).step_by(97) {
            bleedwatch_wire::fuzzing::records(&bytes[..cut]);
        }
        n += 1;
    }
    assert!(n > 0, "empty corpus {}", dir.display());
}
