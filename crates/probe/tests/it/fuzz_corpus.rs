//! The probe's fuzz corpora, replayed as normal tests.

fn corpus(target: &str) -> Vec<Vec<u8>> {
    bleedwatch_testkit::fuzz_corpus(target).unwrap()
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
