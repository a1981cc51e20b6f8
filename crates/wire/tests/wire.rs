#![allow(clippy::unwrap_used, clippy::panic)]
//! The wire crate's integration tests: every fuzz corpus file replays through the parser entry points.


/// Every file of `fuzz/corpus/<target>`; fails on an empty or missing corpus.
fn corpus(target: &str) -> Vec<Vec<u8>> {
    bleedwatch_testkit::fuzz_corpus(target).unwrap()
}

#[test]
fn fuzz_corpus_replays_without_panic() {
    for bytes in corpus("wire_records") {
        bleedwatch_wire::fuzzing::records(&bytes);
        // Every 97th prefix too: truncation anywhere must be handled.
        for cut in (0..bytes.len()).step_by(97) {
            bleedwatch_wire::fuzzing::records(&bytes[..cut]);
        }
    }
}

#[test]
fn dtls_fuzz_corpus_replays_without_panic() {
    for bytes in corpus("wire_dtls_datagram") {
        for cut in 0..=bytes.len() {
            bleedwatch_wire::dtls::fuzz_datagram(&bytes[..cut]);
        }
    }
}
