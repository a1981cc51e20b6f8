//! The `starttls_server_replies` fuzz corpus (fuzz/README.md), replayed: whole and cut at every byte.

/// Every file of `fuzz/corpus/<target>`; fails on an empty or missing corpus.
fn corpus(target: &str) -> Vec<Vec<u8>> {
    bleedwatch_testkit::fuzz_corpus(target).unwrap()
}

#[test]
fn server_replies_fuzz_corpus_replays_without_panic() {
    for bytes in corpus("starttls_server_replies") {
        for cut in 0..=bytes.len() {
            bleedwatch_starttls::fuzzing::server_replies(&bytes[..cut]);
        }
    }
}
