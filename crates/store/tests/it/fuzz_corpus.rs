//! The asset import fuzz corpora (fuzz/README.md), replayed; the seeds are real imports and must
//! parse.

use bleedwatch_store::{fuzz_asset_csv, fuzz_masscan_json, fuzz_nmap_xml};

/// Every file of `fuzz/corpus/<target>`; fails on an empty or missing corpus.
fn corpus(target: &str) -> Vec<Vec<u8>> {
    bleedwatch_testkit::fuzz_corpus(target).unwrap()
}

#[test]
fn import_fuzz_corpora_replay_without_panic() {
    for (target, entry) in [
        ("store_asset_csv", fuzz_asset_csv as fn(&[u8])),
        ("store_nmap_xml", fuzz_nmap_xml),
        ("store_masscan_json", fuzz_masscan_json),
    ] {
        for bytes in corpus(target) {
            entry(&bytes);
            for cut in (0..bytes.len()).step_by(13) {
                entry(&bytes[..cut]);
            }
        }
    }
}

/// The seeds are what the importers really read: nmap's own XML (an `-sV` run given a host name,
/// and an IPv6 run) and a spreadsheet-exported asset list.
#[test]
fn import_seeds_parse() {
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let read = |name: &str| std::fs::read(data.join(name)).unwrap();
    let named = bleedwatch_store::parse_nmap_xml(&read("nmap-7.93-sV-localhost.xml")[..], "nmap.xml").unwrap();
    assert_eq!(named.len(), 1, "the closed port is not a target: {named:?}");
    assert_eq!((named[0].address.as_str(), named[0].port, named[0].hostname.as_deref()), ("127.0.0.1", 40537, Some("localhost")));
    let v6 = bleedwatch_store::parse_nmap_xml(&read("nmap-7.93-ipv6.xml")[..], "nmap.xml").unwrap();
    assert_eq!(v6.iter().map(|t| t.scan_target()).collect::<Vec<_>>(), ["[::1]:53581"]);
    let assets = bleedwatch_store::parse_asset_csv(&read("assets.csv")[..], "assets.csv").unwrap();
    let hosts: Vec<&str> = assets.iter().map(|a| a.host.as_str()).collect();
    assert_eq!(hosts, ["127.0.0.0/8", "127.0.0.1", "*.example.org", "192.0.2.10-192.0.2.20", "2001:db8::/64", "www.example.org"]);
    assert_eq!(assets[6 - 1].notes, "=1+1", "the spreadsheet's protecting quote is dropped");
    assert!(assets[3].internet_facing && !assets[4].internet_facing);
}

/// The recipients corpus (`notify --recipients`), replayed; its seed is the documented example and
/// must parse.
#[test]
fn recipients_fuzz_corpus_replays_without_panic() {
    for bytes in corpus("store_recipients_csv") {
        bleedwatch_store::fuzz_recipients_csv(&bytes);
        for cut in (0..bytes.len()).step_by(7) {
            bleedwatch_store::fuzz_recipients_csv(&bytes[..cut]);
        }
    }
    let seed = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/recipients.csv");
    let recipients = bleedwatch_store::notices::parse_recipients_csv(&std::fs::read(seed).unwrap()[..], "recipients.csv").unwrap();
    assert_eq!(recipients.len(), 4);
}
