//! Integration tests for bleedwatch-targets: the public API end to end, laziness on huge
//! blocks, file fixtures, and property tests.
#![allow(clippy::unwrap_used, clippy::panic)] // tests fail loudly by design

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use bleedwatch_targets::{
    parse_exclusion_list, parse_exclusions, parse_target_list, parse_target_list_all,
    parse_targets, read_exclusion_file, read_target_file, read_target_file_all, split_specs,
    Endpoint, HostRef, PortList, TargetError, TargetSet, TargetSpec, Transport,
};
use proptest::prelude::*;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn targets(specs: &[&str], ports: &str) -> TargetSet {
    TargetSet::from_specs(
        parse_targets(specs).unwrap(),
        PortList::parse(ports).unwrap(),
    )
}

fn ip_of(endpoint: &Endpoint) -> IpAddr {
    match &endpoint.host {
        HostRef::Ip(address) => *address,
        HostRef::Name(name) => panic!("expected an address, got name {name}"),
    }
}

fn v4(text: &str) -> IpAddr {
    IpAddr::V4(text.parse::<Ipv4Addr>().unwrap())
}

fn v6(text: &str) -> IpAddr {
    IpAddr::V6(text.parse::<Ipv6Addr>().unwrap())
}

#[test]
fn slash_eight_is_lazy() {
    let set = targets(&["10.0.0.0/8"], "443");
    assert_eq!(set.len_hint(), 16_777_216);

    let first: Vec<IpAddr> = set.iter().take(3).map(|e| ip_of(&e)).collect();
    assert_eq!(first, vec![v4("10.0.0.0"), v4("10.0.0.1"), v4("10.0.0.2")]);

    let last = set.iter().nth(16_777_215).unwrap();
    assert_eq!(ip_of(&last), v4("10.255.255.255"));
    assert_eq!(last.port, 443);
    assert_eq!(set.iter().nth(16_777_216), None);

    // `skip` goes through `nth`, so skipping most of the block is immediate.
    let tail: Vec<IpAddr> = set.iter().skip(16_777_214).map(|e| ip_of(&e)).collect();
    assert_eq!(tail, vec![v4("10.255.255.254"), v4("10.255.255.255")]);

    // Skipping into the middle of the port list of one address.
    let two_ports = targets(&["10.0.0.0/8"], "443,8443");
    assert_eq!(two_ports.len_hint(), 33_554_432);
    let middle = two_ports.iter().nth(2 * 65_536 + 1).unwrap();
    assert_eq!(ip_of(&middle), v4("10.1.0.0"));
    assert_eq!(middle.port, 8443);
}

#[test]
fn ipv6_slash_64_len_hint_and_first_items() {
    let set = targets(&["2001:db8::/64"], "443,U:4433");
    assert_eq!(set.len_hint(), 2 * (1u128 << 64));
    let first: Vec<String> = set.iter().take(4).map(|e| e.to_string()).collect();
    assert_eq!(
        first,
        vec![
            "[2001:db8::]:443",
            "[2001:db8::]:udp/4433",
            "[2001:db8::1]:443",
            "[2001:db8::1]:udp/4433"
        ]
    );
    // A jump no step-by-step iterator could finish: 2^62 endpoints in.
    let far = set.iter().nth(1usize << 62).unwrap();
    assert_eq!(ip_of(&far), v6("2001:db8::2000:0:0:0"));
    assert_eq!(far.transport, Transport::Tcp);
}

#[test]
fn exclusions_inside_a_cidr() {
    let set = targets(&["10.0.0.0/8"], "443")
        .with_exclusions(parse_exclusions(["10.0.0.0/9", "10.200.0.0/16"]).unwrap());
    assert_eq!(
        set.len_hint(),
        16_777_216,
        "len_hint counts before exclusions"
    );
    assert_eq!(ip_of(&set.iter().next().unwrap()), v4("10.128.0.0"));
    let allowed = (1u32 << 23) - (1 << 16);
    let allowed = usize::try_from(allowed).unwrap();
    assert_eq!(
        ip_of(&set.iter().nth(allowed - 1).unwrap()),
        v4("10.255.255.255")
    );
    assert_eq!(set.iter().nth(allowed), None);
    // Just before and after the excluded /16 in the middle.
    let before = (200 - 128) * 65_536 - 1;
    assert_eq!(
        ip_of(&set.iter().nth(before).unwrap()),
        v4("10.199.255.255")
    );
    assert_eq!(
        ip_of(&set.iter().nth(before + 1).unwrap()),
        v4("10.201.0.0")
    );
}

#[test]
fn exclusion_hits_every_form() {
    let set = targets(
        &[
            "192.168.0.0/29",
            "192.168.1.1-4",
            "[2001:db8::/126]:443",
            "skip.example",
            "keep.example",
        ],
        "443",
    )
    .with_exclusions(
        parse_exclusions([
            "192.168.0.2-192.168.0.6 192.168.1.3",
            "2001:db8::1,skip.example",
        ])
        .unwrap(),
    );
    let rendered: Vec<String> = set.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        rendered,
        vec![
            "192.168.0.0:443",
            "192.168.0.1:443",
            "192.168.0.7:443",
            "192.168.1.1:443",
            "192.168.1.2:443",
            "192.168.1.4:443",
            "[2001:db8::]:443",
            "[2001:db8::2]:443",
            "[2001:db8::3]:443",
            "keep.example:443",
        ]
    );
}

#[test]
fn fixture_file_strict_and_lenient() {
    let error = read_target_file(data("targets.txt")).unwrap_err();
    assert_eq!(error.line(), Some(9));
    let message = error.to_string();
    assert!(message.ends_with(
        r#"targets.txt line 9: invalid target "10.0.3.0/33": prefix length 33 is larger than 32"#
    ), "{message}");

    let parsed = read_target_file_all(data("targets.txt")).unwrap();
    let lines: Vec<Option<usize>> = parsed.errors.iter().map(TargetError::line).collect();
    assert_eq!(lines, vec![Some(9), Some(9)]);
    assert!(parsed.errors[1].to_string().ends_with(
        r#"targets.txt line 9: invalid target "bad!name.example.com": host names cannot contain '!' (use letters, digits, "-" and ".")"#
    ));
    let texts: Vec<&str> = parsed.specs.iter().map(TargetSpec::as_str).collect();
    assert_eq!(
        texts,
        vec![
            "10.0.0.0/30",
            "web.example.com:8443",
            "2001:db8::/126",
            "[2001:db8::1]:udp/4433",
            "10.0.1-2.1,5",
            "198.51.100.10-198.51.100.12"
        ]
    );

    let exclusions = read_exclusion_file(data("exclude.txt")).unwrap();
    let set = TargetSet::from_specs(parsed.specs, PortList::default()).with_exclusions(exclusions);
    assert_eq!(set.len_hint(), 17);
    let rendered: Vec<String> = set.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        rendered,
        vec![
            "10.0.0.0:443",
            "10.0.0.2:443",
            "10.0.0.3:443",
            "[2001:db8::]:443",
            "[2001:db8::1]:443",
            "[2001:db8::3]:443",
            "[2001:db8::1]:udp/4433",
            "10.0.1.1:443",
            "10.0.1.5:443",
            "198.51.100.10:443",
            "198.51.100.11:443",
            "198.51.100.12:443",
        ]
    );
}

#[test]
fn list_from_str_content() {
    let specs = parse_target_list("a.example # x\n\n10.0.0.1,2\n", "inline").unwrap();
    assert_eq!(specs.len(), 2);
    assert_eq!(specs[1].address_count(), 2);
    let error = parse_target_list("ok.example\n10.0.0.1:0\n", "inline").unwrap_err();
    assert_eq!(
        error.to_string(),
        r#"inline line 2: invalid target "10.0.0.1:0": invalid port "0": ports are 1-65535"#
    );
    assert_eq!(
        parse_exclusion_list("10.0.0.0/8\n10.0.0.0/99\n", "skip")
            .unwrap_err()
            .to_string(),
        r#"skip line 2: invalid exclusion "10.0.0.0/99": prefix length 99 is larger than 32"#
    );
}

#[test]
fn names_are_handed_back_unresolved() {
    let set = targets(&["scanme.example.org:udp/4433"], "443");
    let endpoints: Vec<Endpoint> = set.iter().collect();
    assert_eq!(
        endpoints,
        vec![Endpoint {
            host: HostRef::Name("scanme.example.org".into()),
            port: 4433,
            transport: Transport::Udp,
        }]
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn ipv4_cidr_yields_its_block(address in any::<u32>(), prefix in 22u8..=32) {
        let set = targets(&[&format!("{}/{prefix}", Ipv4Addr::from(address))], "443");
        let expected = 1u128 << (32 - prefix);
        prop_assert_eq!(set.len_hint(), expected);
        let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
        let mut count = 0u128;
        let mut previous: Option<u32> = None;
        for endpoint in set.iter() {
            let IpAddr::V4(got) = ip_of(&endpoint) else {
                return Err(TestCaseError::fail("IPv6 address from an IPv4 CIDR"));
            };
            let got = u32::from(got);
            prop_assert_eq!(got & mask, address & mask);
            if let Some(previous) = previous {
                prop_assert!(previous < got, "ascending and unique");
            }
            previous = Some(got);
            count += 1;
        }
        prop_assert_eq!(count, expected);
    }

    #[test]
    fn ipv6_cidr_yields_its_block(address in any::<u128>(), prefix in 118u8..=128) {
        let set = targets(&[&format!("[{}/{prefix}]", Ipv6Addr::from(address))], "1,2");
        let block = 1u128 << (128 - prefix);
        prop_assert_eq!(set.len_hint(), block * 2);
        let mask = !(block - 1);
        let mut count = 0u128;
        for endpoint in set.iter() {
            let IpAddr::V6(got) = ip_of(&endpoint) else {
                return Err(TestCaseError::fail("IPv4 address from an IPv6 CIDR"));
            };
            prop_assert_eq!(u128::from(got) & mask, address & mask);
            count += 1;
        }
        prop_assert_eq!(count, block * 2);
    }

    #[test]
    fn nth_matches_stepping_with_random_exclusions(
        base in any::<u32>(),
        prefix in 26u8..=30,
        excluded in proptest::collection::vec((0u32..64, 0u32..8), 0..5),
        n in 0usize..200,
    ) {
        let network = Ipv4Addr::from(base & (u32::MAX << (32 - prefix)));
        let exclusions: Vec<String> = excluded
            .iter()
            .map(|(offset, length)| {
                let first = u32::from(network).wrapping_add(*offset);
                let last = first.saturating_add(*length);
                format!("{}-{}", Ipv4Addr::from(first), Ipv4Addr::from(last))
            })
            .collect();
        let set = targets(&[&format!("{network}/{prefix}"), "h.example"], "1,U:2")
            .with_exclusions(parse_exclusions(&exclusions).unwrap());
        let all: Vec<Endpoint> = set.iter().collect();
        for endpoint in &all {
            if let HostRef::Ip(address) = endpoint.host {
                prop_assert!(!set.exclusions().contains(address));
            }
        }
        let nth = set.iter().nth(n);
        prop_assert_eq!(nth.as_ref(), all.get(n));
        let mut iter = set.iter();
        let mut index = 0;
        while let Some(endpoint) = iter.nth(n % 7) {
            index += n % 7;
            prop_assert_eq!(Some(&endpoint), all.get(index));
            index += 1;
        }
    }

    #[test]
    fn random_strings_never_panic(text in "\\PC{0,40}") {
        let _ = TargetSpec::parse(&text);
        let _ = PortList::parse(&text);
        let _ = split_specs(&text);
        let _ = parse_target_list_all(&text, "fuzz");
        let _ = parse_exclusions([&text]);
    }

    #[test]
    fn spec_shaped_strings_never_panic(text in "[0-9a-f.,:/*\\[\\]\\-tcpudTU ]{0,40}") {
        let _ = PortList::parse(&text);
        let parsed = parse_target_list_all(&text, "fuzz");
        let set = TargetSet::from_specs(parsed.specs, PortList::default());
        // Iterating a little of anything that parsed must not panic either.
        let _ = set.iter().take(50).count();
        let _ = set.iter().nth(1000);
        let _ = set.len_hint();
        if let Ok(exclusions) = parse_exclusions([&text]) {
            let _ = exclusions.contains(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        }
    }

    #[test]
    fn small_specs_iterate_len_hint_items(text in "1?[0-9]\\.[0-9]\\.[0-9]{1,2}(-[0-9]{1,2})?\\.(\\*|[0-9]{1,2}(-[0-9]{1,2})?(,[0-9])?)") {
        if let Ok(spec) = TargetSpec::parse(&text) {
            let set = TargetSet::from_specs(vec![spec.clone()], PortList::default());
            let count = set.iter().count() as u128;
            prop_assert_eq!(count, set.len_hint());
            for endpoint in set.iter() {
                prop_assert!(spec.hosts().contains(ip_of(&endpoint)));
            }
        }
    }
}

/// The `targets_lists` fuzz corpus (fuzz/README.md), replayed.
mod fuzz_corpus {
    /// Every file of `fuzz/corpus/<target>`; fails on an empty or missing corpus.
    fn corpus(target: &str) -> Vec<Vec<u8>> {
        bleedwatch_testkit::fuzz_corpus(target).unwrap()
    }

    #[test]
    fn lists_fuzz_corpus_replays_without_panic() {
        for bytes in corpus("targets_lists") {
            bleedwatch_targets::fuzzing::lists(&bytes);
            for cut in 0..bytes.len() {
                bleedwatch_targets::fuzzing::lists(&bytes[..cut]);
            }
        }
    }
}
