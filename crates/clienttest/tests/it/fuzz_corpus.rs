//! The client test's fuzz corpus, replayed as a normal test.

#[test]
fn client_test_fuzz_corpus_replays_without_panic() {
    for bytes in bleedwatch_testkit::fuzz_corpus("client_test_bytes").unwrap() {
        bleedwatch_clienttest::fuzz_client_bytes(&bytes);
    }
}
