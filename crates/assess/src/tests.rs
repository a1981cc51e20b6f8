#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;

const NOW: i64 = 1_000_000_000;
const DAY_SECONDS: i64 = 86_400;

/// A certificate: `cert("c1", "k1")` is certificate c1 on key k1, valid for a year after NOW.
fn cert(cert: &str, key: &str) -> Leaf {
    Leaf { cert_sha256: cert.into(), spki_sha256: key.into(), not_after_unix: NOW / 1000 + 365 * DAY_SECONDS }
}

fn obs(id: i64, verdict: Verdict, leaf: Option<Leaf>) -> Observation {
    let vulnerable_versions =
        if verdict == Verdict::Vulnerable { BTreeSet::from(["tls1.2".to_owned()]) } else { BTreeSet::new() };
    Observation { id, at_ms: id * 1000, verdict, vulnerable_versions, leaf }
}

fn vuln(id: i64, leaf: Leaf) -> Observation {
    obs(id, Verdict::Vulnerable, Some(leaf))
}

fn ok(id: i64, leaf: Leaf) -> Observation {
    obs(id, Verdict::NotVulnerable, Some(leaf))
}

fn revoked(certs: &[&str]) -> RevocationIndex {
    let facts: Vec<RevocationFact> = certs
        .iter()
        .map(|c| RevocationFact { cert_sha256: (*c).into(), status: RevocationStatus::Revoked, checked_at_ms: 1 })
        .collect();
    RevocationIndex::build(&facts)
}

fn assess_one(observations: &[Observation], revocations: &RevocationIndex) -> Assessment {
    assess_with(observations, &[], revocations)
}

fn assess_with(observations: &[Observation], pins: &[KeyPin], revocations: &RevocationIndex) -> Assessment {
    let history = EndpointHistory { label: "a", observations, pins };
    assess_all(&[history], revocations, NOW).remove(0)
}

fn flag_names(a: &Assessment) -> Vec<&'static str> {
    a.flags.iter().map(Flag::name).collect()
}

fn alert_kinds(a: &Assessment) -> Vec<AlertKind> {
    a.alerts.iter().map(|alert| alert.kind).collect()
}

#[test]
fn no_observations_is_unknown() {
    let a = assess_one(&[], &RevocationIndex::default());
    assert_eq!(a.state, State::Unknown);
    assert_eq!(a.exposure, Exposure::default());
    assert!(a.flags.is_empty() && a.alerts.is_empty());
}

#[test]
fn only_inconclusive_observations_is_unknown() {
    let history = [obs(1, Verdict::Inconclusive, None), obs(2, Verdict::Inconclusive, Some(cert("c1", "k1")))];
    let a = assess_one(&history, &RevocationIndex::default());
    assert_eq!(a.state, State::Unknown);
    assert_eq!(a.last_observed_ms, Some(2000));
    assert_eq!(a.last_conclusive_ms, None);
    assert!(a.spkis_seen.is_empty());
}

#[test]
fn never_vulnerable_endpoint() {
    for verdict in [Verdict::NotVulnerable, Verdict::NoHeartbeat, Verdict::NotApplicable] {
        let a = assess_one(&[obs(1, verdict, Some(cert("c1", "k1")))], &RevocationIndex::default());
        assert_eq!(a.state, State::NeverVulnerable, "{verdict}");
        assert!(!a.fixed && !a.rekeyed && !a.revoked);
        assert!(a.exposed_spkis.is_empty() && a.flags.is_empty());
        assert_eq!(a.spkis_seen, BTreeSet::from(["k1".to_owned()]));
    }
}

#[test]
fn vulnerable_endpoint_exposes_its_key() {
    let a = assess_one(&[vuln(1, cert("c1", "k1")), vuln(2, cert("c1", "k1"))], &RevocationIndex::default());
    assert_eq!(a.state, State::Vulnerable);
    assert!(!a.fixed);
    assert_eq!(a.exposure.first_vulnerable_ms, Some(1000));
    assert_eq!(a.exposure.last_vulnerable_ms, Some(2000));
    assert_eq!(a.exposure.first_fixed_ms, None);
    assert_eq!(a.exposed_spkis, BTreeSet::from(["k1".to_owned()]));
    assert_eq!(a.exposed_certs, BTreeSet::from(["c1".to_owned()]));
    assert_eq!(a.vulnerable_versions, BTreeSet::from(["tls1.2".to_owned()]));
    assert_eq!(flag_names(&a), ["exposed-cert-valid-until"]);
}

#[test]
fn fixed_keeping_the_same_certificate() {
    let a = assess_one(&[vuln(1, cert("c1", "k1")), ok(2, cert("c1", "k1")), ok(3, cert("c1", "k1"))], &RevocationIndex::default());
    assert_eq!(a.state, State::Fixed);
    assert!(a.fixed && !a.rekeyed && !a.revoked);
    assert_eq!(a.exposure.first_fixed_ms, Some(2000));
    assert_eq!(flag_names(&a), ["exposed-cert-valid-until"]);
    assert!(a.alerts.is_empty());
}

#[test]
fn no_heartbeat_and_not_applicable_also_fix() {
    for verdict in [Verdict::NoHeartbeat, Verdict::NotApplicable] {
        let a = assess_one(&[vuln(1, cert("c1", "k1")), obs(2, verdict, Some(cert("c1", "k1")))], &RevocationIndex::default());
        assert_eq!(a.state, State::Fixed, "{verdict}");
    }
}

#[test]
fn reissued_with_the_same_key_is_not_rekeyed() {
    let a = assess_one(&[vuln(1, cert("c1", "k1")), ok(2, cert("c2", "k1"))], &RevocationIndex::default());
    assert_eq!(a.state, State::Fixed);
    assert!(!a.rekeyed);
    assert!(a.flags.contains(&Flag::ReissuedSameKey { cert_sha256: "c2".into(), spki_sha256: "k1".into() }));
    // Both certificates carry the stolen key: both must be revoked.
    assert_eq!(a.exposed_certs, BTreeSet::from(["c1".to_owned(), "c2".to_owned()]));
    let only_first = assess_one(&[vuln(1, cert("c1", "k1")), ok(2, cert("c2", "k1"))], &revoked(&["c1"]));
    assert_eq!(only_first.state, State::Fixed);
    let both = assess_one(&[vuln(1, cert("c1", "k1")), ok(2, cert("c2", "k1"))], &revoked(&["c1", "c2"]));
    assert_eq!(both.state, State::Revoked);
    assert!(both.revoked && !both.rekeyed);
}

#[test]
fn new_key_after_the_fix_is_rekeyed() {
    let history = [vuln(1, cert("c1", "k1")), ok(2, cert("c1", "k1")), ok(3, cert("c2", "k2"))];
    let a = assess_one(&history, &RevocationIndex::default());
    assert_eq!(a.state, State::Rekeyed);
    assert!(a.fixed && a.rekeyed && !a.revoked);
    assert_eq!(a.exposed_certs, BTreeSet::from(["c1".to_owned()]));
    assert_eq!(a.spkis_seen.len(), 2);
    // The old certificate is still valid until its notAfter.
    assert!(a.flags.contains(&Flag::ExposedCertValidUntil { cert_sha256: "c1".into(), not_after_unix: NOW / 1000 + 365 * DAY_SECONDS }));
}

#[test]
fn fix_and_new_key_in_the_same_observation() {
    let a = assess_one(&[vuln(1, cert("c1", "k1")), ok(2, cert("c2", "k2"))], &RevocationIndex::default());
    assert_eq!(a.state, State::Rekeyed);
}

#[test]
fn new_key_while_still_vulnerable_is_not_rekeyed() {
    // A new key on a still-vulnerable server is exposed too.
    let a = assess_one(&[vuln(1, cert("c1", "k1")), vuln(2, cert("c2", "k2"))], &RevocationIndex::default());
    assert_eq!(a.state, State::Vulnerable);
    assert_eq!(a.exposed_spkis.len(), 2);
    let later = assess_one(&[vuln(1, cert("c1", "k1")), vuln(2, cert("c2", "k2")), ok(3, cert("c2", "k2"))], &RevocationIndex::default());
    assert_eq!(later.state, State::Fixed);
}

#[test]
fn notify_ready_needs_fixed_rekeyed_and_revoked() {
    let history = [vuln(1, cert("c1", "k1")), ok(2, cert("c2", "k2"))];
    let a = assess_one(&history, &revoked(&["c1"]));
    assert_eq!(a.state, State::NotifyReady);
    assert!(a.fixed && a.rekeyed && a.revoked);
    assert!(!a.has_flag("exposed-cert-valid-until"));
    assert!(!a.state.needs_action());
}

/// An exposed certificate that expired (beyond the clock-skew allowance) counts as retired: no
/// client accepts it, and its CA no longer lists it. Still valid, or just expired within the
/// allowance, it must be revoked.
#[test]
fn an_expired_exposed_certificate_counts_as_retired() {
    let expiring = |cert_sha256: &str, not_after_unix: i64| Leaf { cert_sha256: cert_sha256.into(), spki_sha256: "k1".into(), not_after_unix };
    let now_s = NOW / 1000;
    let long_ago = assess_one(&[vuln(1, expiring("c1", now_s - DAY_SECONDS)), ok(2, cert("c2", "k2"))], &RevocationIndex::default());
    assert_eq!(long_ago.state, State::NotifyReady);
    assert!(long_ago.revoked);
    assert!(long_ago.flags.contains(&Flag::ExposedCertExpired { cert_sha256: "c1".into(), not_after_unix: now_s - DAY_SECONDS }));
    assert!(!long_ago.has_flag("exposed-cert-valid-until"));
    // Within the allowance: not yet.
    let just = assess_one(&[vuln(1, expiring("c1", now_s - 60)), ok(2, cert("c2", "k2"))], &RevocationIndex::default());
    assert_eq!(just.state, State::Rekeyed);
    assert!(just.has_flag("exposed-cert-valid-until") && !just.has_flag("exposed-cert-expired"));
    // One expired certificate and one still valid on the same exposed key: the valid one must be revoked.
    let both = [vuln(1, expiring("c1", now_s - DAY_SECONDS)), vuln(2, cert("c3", "k1")), ok(3, cert("c2", "k2"))];
    assert_eq!(assess_one(&both, &RevocationIndex::default()).state, State::Rekeyed);
    assert_eq!(assess_one(&both, &revoked(&["c3"])).state, State::NotifyReady);
    // Revoked and expired: revoked says it, no expiry flag.
    let revoked_too = assess_one(&[vuln(1, expiring("c1", now_s - DAY_SECONDS)), ok(2, cert("c2", "k2"))], &revoked(&["c1"]));
    assert!(revoked_too.revoked && !revoked_too.has_flag("exposed-cert-expired"));
}

#[test]
fn revocation_of_an_unrelated_certificate_does_not_count() {
    let a = assess_one(&[vuln(1, cert("c1", "k1")), ok(2, cert("c2", "k2"))], &revoked(&["c2"]));
    assert_eq!(a.state, State::Rekeyed);
}

#[test]
fn good_unknown_and_error_checks_are_not_revocation() {
    for status in [RevocationStatus::Good, RevocationStatus::Unknown, RevocationStatus::Error] {
        let facts = [RevocationFact { cert_sha256: "c1".into(), status, checked_at_ms: 5 }];
        let index = RevocationIndex::build(&facts);
        assert!(index.was_checked("c1"));
        let a = assess_one(&[vuln(1, cert("c1", "k1")), ok(2, cert("c2", "k2"))], &index);
        assert_eq!(a.state, State::Rekeyed, "{status}");
    }
}

#[test]
fn revoked_while_still_vulnerable_stays_vulnerable() {
    let a = assess_one(&[vuln(1, cert("c1", "k1"))], &revoked(&["c1"]));
    assert_eq!(a.state, State::Vulnerable);
    assert!(!a.revoked);
}

#[test]
fn inconclusive_observations_neither_advance_nor_regress() {
    let base = [vuln(1, cert("c1", "k1")), ok(2, cert("c1", "k1"))];
    let before = assess_one(&base, &RevocationIndex::default());
    assert_eq!(before.state, State::Fixed);
    // An inconclusive scan presenting a new key does not re-key.
    let mut with_new_key = base.to_vec();
    with_new_key.push(obs(3, Verdict::Inconclusive, Some(cert("c2", "k2"))));
    let a = assess_one(&with_new_key, &RevocationIndex::default());
    assert_eq!(a.state, State::Fixed);
    assert_eq!(a.exposure, before.exposure);
    assert_eq!(a.flags, before.flags);
    // After a vulnerable one, an inconclusive scan does not fix.
    let a = assess_one(&[vuln(1, cert("c1", "k1")), obs(2, Verdict::Inconclusive, None)], &RevocationIndex::default());
    assert_eq!(a.state, State::Vulnerable);
    assert_eq!(a.exposure.first_fixed_ms, None);
    // After a fix, an inconclusive one does not regress, nor raise an alert.
    let a = assess_one(&[vuln(1, cert("c1", "k1")), ok(2, cert("c2", "k2")), obs(3, Verdict::Inconclusive, None)], &RevocationIndex::default());
    assert_eq!(a.state, State::Rekeyed);
    assert!(a.alerts.is_empty());
}

#[test]
fn vulnerable_again_regresses_and_alerts() {
    let history = [vuln(1, cert("c1", "k1")), ok(2, cert("c2", "k2")), vuln(3, cert("c2", "k2"))];
    let a = assess_one(&history, &revoked(&["c1"]));
    assert_eq!(a.state, State::Vulnerable);
    assert_eq!(alert_kinds(&a), [AlertKind::Regressed]);
    assert_eq!(a.alerts[0].observation_id, 3);
    assert_eq!(a.exposure.first_vulnerable_ms, Some(1000));
    assert_eq!(a.exposure.last_vulnerable_ms, Some(3000));
    // k2 is exposed now as well.
    assert_eq!(a.exposed_spkis.len(), 2);
    // Fixed again: the window's first_fixed follows the last vulnerable observation.
    let mut refixed = history.to_vec();
    refixed.push(ok(4, cert("c3", "k3")));
    let a = assess_one(&refixed, &revoked(&["c1"]));
    assert_eq!(a.state, State::Rekeyed, "c2 (exposed at 3) is not revoked");
    assert_eq!(a.exposure.first_fixed_ms, Some(4000));
    let a = assess_one(&refixed, &revoked(&["c1", "c2"]));
    assert_eq!(a.state, State::NotifyReady);
    assert_eq!(alert_kinds(&a), [AlertKind::Regressed]);
}

#[test]
fn exposed_key_coming_back_after_rekey() {
    let history = [vuln(1, cert("c1", "k1")), ok(2, cert("c2", "k2")), ok(3, cert("c1", "k1"))];
    let a = assess_one(&history, &revoked(&["c1"]));
    assert_eq!(a.state, State::Revoked, "re-keyed no longer holds");
    assert!(!a.rekeyed);
    assert!(a.flags.contains(&Flag::ExposedKeyReturned { spki_sha256: "k1".into() }));
    assert_eq!(alert_kinds(&a), [AlertKind::ExposedKeyReturned]);
    assert_eq!(a.alerts[0].observation_id, 3);
    assert_eq!(a.alerts[0].spki_sha256.as_deref(), Some("k1"));
}

#[test]
fn exposed_key_seen_in_an_inconclusive_scan_still_alerts() {
    let history = [vuln(1, cert("c1", "k1")), ok(2, cert("c2", "k2")), obs(3, Verdict::Inconclusive, Some(cert("c1", "k1")))];
    let a = assess_one(&history, &RevocationIndex::default());
    assert_eq!(a.state, State::Rekeyed, "state ignores the inconclusive scan");
    assert_eq!(alert_kinds(&a), [AlertKind::ExposedKeyReturned]);
}

#[test]
fn unexpected_key_after_rekey_alerts_once() {
    let history = [
        vuln(1, cert("c1", "k1")),
        ok(2, cert("c2", "k2")),
        ok(3, cert("c3", "k3")),
        ok(4, cert("c3", "k3")),
    ];
    let a = assess_one(&history, &revoked(&["c1"]));
    assert_eq!(a.state, State::NotifyReady, "k3 is not exposed");
    assert_eq!(alert_kinds(&a), [AlertKind::UnexpectedCertificate]);
    assert_eq!(a.alerts[0].observation_id, 3);
    assert!(a.flags.contains(&Flag::UnexpectedCertificate { spki_sha256: "k3".into() }));
    // Going back to the replacement key clears the flag, not the alert.
    let mut back = history.to_vec();
    back.push(ok(5, cert("c2", "k2")));
    let a = assess_one(&back, &revoked(&["c1"]));
    assert!(!a.has_flag("unexpected-certificate"));
    assert_eq!(a.alerts.len(), 1);
}

#[test]
fn pinned_keys_replace_the_implicit_expectation() {
    let history = [vuln(1, cert("c1", "k1")), ok(2, cert("c2", "k2")), ok(3, cert("c3", "k3"))];
    let pins = [KeyPin { spki_sha256: "k3".into(), since_ms: 2500 }];
    let a = assess_with(&history, &pins, &revoked(&["c1"]));
    assert!(a.alerts.is_empty(), "{:?}", a.alerts);
    assert!(!a.has_flag("unexpected-certificate"));
    // A pin also watches endpoints that were never vulnerable.
    let calm = [ok(1, cert("c1", "k1")), ok(2, cert("c9", "k9"))];
    let pins = [KeyPin { spki_sha256: "k1".into(), since_ms: 0 }];
    let a = assess_with(&calm, &pins, &RevocationIndex::default());
    assert_eq!(a.state, State::NeverVulnerable);
    assert_eq!(alert_kinds(&a), [AlertKind::UnexpectedCertificate]);
    assert!(a.has_flag("unexpected-certificate"));
}

#[test]
fn key_changes_on_unaffected_endpoints_are_not_alerts() {
    let a = assess_one(&[ok(1, cert("c1", "k1")), ok(2, cert("c2", "k2"))], &RevocationIndex::default());
    assert!(a.alerts.is_empty() && a.flags.is_empty());
}

#[test]
fn vulnerable_without_a_certificate_cannot_be_rekeyed_or_revoked() {
    let history = [obs(1, Verdict::Vulnerable, None), ok(2, cert("c2", "k2"))];
    let a = assess_one(&history, &revoked(&["c2"]));
    assert_eq!(a.state, State::Fixed);
    assert_eq!(flag_names(&a), ["exposed-key-unknown"]);
}

#[test]
fn shared_key_is_compromised_on_every_endpoint() {
    // "a" leaks the wildcard key; "b" never was vulnerable but serves the same certificate.
    let a_history = [vuln(1, cert("wild", "kw")), ok(3, cert("new-a", "ka"))];
    let b_history = [ok(2, cert("wild", "kw")), ok(4, cert("wild", "kw"))];
    let c_history = [ok(2, cert("other", "kc"))];
    let histories = [
        EndpointHistory { label: "a", observations: &a_history, pins: &[] },
        EndpointHistory { label: "b", observations: &b_history, pins: &[] },
        EndpointHistory { label: "c", observations: &c_history, pins: &[] },
    ];
    let out = assess_all(&histories, &RevocationIndex::default(), NOW);
    let (a, b, c) = (&out[0], &out[1], &out[2]);
    assert_eq!(a.state, State::Rekeyed);
    assert!(a.flags.contains(&Flag::ExposedKeyShared { spki_sha256: "kw".into(), endpoints: vec!["b".into()] }));
    assert_eq!(b.state, State::Fixed, "nothing to patch on b, but it serves a stolen key");
    assert!(b.fixed);
    assert_eq!(b.exposure, Exposure::default());
    assert!(b.flags.contains(&Flag::ExposedKeyShared { spki_sha256: "kw".into(), endpoints: vec!["a".into()] }));
    assert_eq!(b.exposed_certs, BTreeSet::from(["wild".to_owned()]));
    assert!(!b.has_flag("reissued-same-key"), "the very certificate that leaked");
    assert_eq!(c.state, State::NeverVulnerable);
    assert!(c.flags.is_empty());
    // Once b moves to a new key and the wildcard is revoked, both are ready.
    let b_history = [ok(2, cert("wild", "kw")), ok(5, cert("new-b", "kb"))];
    let histories = [
        EndpointHistory { label: "a", observations: &a_history, pins: &[] },
        EndpointHistory { label: "b", observations: &b_history, pins: &[] },
    ];
    let out = assess_all(&histories, &revoked(&["wild"]), NOW);
    assert_eq!(out[0].state, State::NotifyReady);
    assert_eq!(out[1].state, State::NotifyReady);
}

#[test]
fn stolen_key_appearing_on_another_endpoint_alerts() {
    // "c" served its own key; later it presents the key "a" leaked earlier: a stolen key in use.
    let a_history = [vuln(1, cert("c1", "k1")), ok(2, cert("c2", "k2"))];
    let c_history = [ok(1, cert("cc", "kc")), ok(5, cert("forged", "k1"))];
    let histories = [
        EndpointHistory { label: "a", observations: &a_history, pins: &[] },
        EndpointHistory { label: "c", observations: &c_history, pins: &[] },
    ];
    let out = assess_all(&histories, &RevocationIndex::default(), NOW);
    let c = &out[1];
    assert_eq!(alert_kinds(c), [AlertKind::ExposedKeyReturned]);
    assert_eq!(c.state, State::Fixed);
    assert!(c.has_flag("reissued-same-key"), "a certificate on the stolen key that never leaked itself");
    assert!(c.has_flag("exposed-key-shared"));
}

#[test]
fn rotation_onto_a_key_at_the_moment_it_leaks_is_not_a_return() {
    let a = assess_one(&[ok(1, cert("c0", "k0")), vuln(2, cert("c1", "k1"))], &RevocationIndex::default());
    assert!(a.alerts.is_empty());
}

#[test]
fn order_of_input_does_not_matter() {
    let history = [vuln(1, cert("c1", "k1")), ok(2, cert("c2", "k2")), ok(3, cert("c1", "k1"))];
    let mut reversed = history.to_vec();
    reversed.reverse();
    assert_eq!(assess_one(&history, &revoked(&["c1"])), assess_one(&reversed, &revoked(&["c1"])));
}

#[test]
fn names_round_trip() {
    for state in State::ALL {
        assert_eq!(State::parse(state.as_str()), Some(state));
        let json = serde_json::to_string(&state).unwrap();
        assert_eq!(json, format!("\"{}\"", state.as_str()));
    }
    for kind in [AlertKind::ExposedKeyReturned, AlertKind::UnexpectedCertificate, AlertKind::Regressed] {
        assert_eq!(AlertKind::parse(kind.as_str()), Some(kind));
        assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{}\"", kind.as_str()));
    }
    for verdict in [Verdict::Vulnerable, Verdict::NotVulnerable, Verdict::NoHeartbeat, Verdict::NotApplicable, Verdict::Inconclusive] {
        assert_eq!(Verdict::parse(verdict.as_str()), Some(verdict));
    }
    for status in [RevocationStatus::Good, RevocationStatus::Revoked, RevocationStatus::Unknown, RevocationStatus::Error] {
        assert_eq!(RevocationStatus::parse(status.as_str()), Some(status));
    }
    let flag = Flag::ExposedKeyShared { spki_sha256: "k".into(), endpoints: vec!["b".into()] };
    let json = serde_json::to_value(&flag).unwrap();
    assert_eq!(json["flag"], flag.name());
}

// ---- properties ----

fn arb_verdict() -> impl Strategy<Value = Verdict> {
    prop_oneof![
        3 => Just(Verdict::Vulnerable),
        3 => Just(Verdict::NotVulnerable),
        1 => Just(Verdict::NoHeartbeat),
        1 => Just(Verdict::NotApplicable),
        2 => Just(Verdict::Inconclusive),
    ]
}

/// Small key and certificate alphabets, so keys repeat and reissues happen.
fn arb_leaf() -> impl Strategy<Value = Option<Leaf>> {
    prop::option::weighted(0.85, (0..4u8, 0..3u8, any::<bool>())).prop_map(|leaf| {
        leaf.map(|(key, serial, expired)| Leaf {
            cert_sha256: format!("c{key}-{serial}"),
            spki_sha256: format!("k{key}"),
            not_after_unix: if expired { NOW / 1000 - 10 } else { NOW / 1000 + 10 },
        })
    })
}

fn arb_history(max: usize) -> impl Strategy<Value = Vec<Observation>> {
    prop::collection::vec((arb_verdict(), arb_leaf()), 0..max).prop_map(|items| {
        items.into_iter().enumerate().map(|(i, (verdict, leaf))| obs(i as i64 + 1, verdict, leaf)).collect()
    })
}

fn arb_revocations() -> impl Strategy<Value = Vec<RevocationFact>> {
    let status = prop_oneof![
        Just(RevocationStatus::Good),
        Just(RevocationStatus::Revoked),
        Just(RevocationStatus::Unknown),
        Just(RevocationStatus::Error)
    ];
    prop::collection::vec((0..4u8, 0..3u8, status, 0..100i64), 0..10).prop_map(|facts| {
        facts
            .into_iter()
            .map(|(key, serial, status, at)| RevocationFact { cert_sha256: format!("c{key}-{serial}"), status, checked_at_ms: at })
            .collect()
    })
}

fn assess_pair(a: &[Observation], b: &[Observation], facts: &[RevocationFact]) -> Vec<Assessment> {
    let histories = [
        EndpointHistory { label: "a", observations: a, pins: &[] },
        EndpointHistory { label: "b", observations: b, pins: &[] },
    ];
    assess_all(&histories, &RevocationIndex::build(facts), NOW)
}

proptest! {
    #[test]
    fn revocation_input_order_does_not_matter(a in arb_history(12), b in arb_history(6), facts in arb_revocations(), seed in any::<u64>()) {
        let mut shuffled = facts.clone();
        // A deterministic shuffle from the seed.
        let len = shuffled.len();
        for i in (1..len).rev() {
            let j = (seed.wrapping_mul(6364136223846793005).wrapping_add(i as u64) % (i as u64 + 1)) as usize;
            shuffled.swap(i, j);
        }
        prop_assert_eq!(assess_pair(&a, &b, &facts), assess_pair(&a, &b, &shuffled));
    }

    #[test]
    fn observation_order_does_not_matter(a in arb_history(12), b in arb_history(6)) {
        let mut reversed = a.clone();
        reversed.reverse();
        prop_assert_eq!(assess_pair(&a, &b, &[]), assess_pair(&reversed, &b, &[]));
    }

    #[test]
    fn facts_are_consistent_with_the_state(a in arb_history(14), b in arb_history(6), facts in arb_revocations()) {
        for assessment in assess_pair(&a, &b, &facts) {
            let expected = match (assessment.fixed, assessment.rekeyed, assessment.revoked) {
                (true, true, true) => Some(State::NotifyReady),
                (true, true, false) => Some(State::Rekeyed),
                (true, false, true) => Some(State::Revoked),
                (true, false, false) => Some(State::Fixed),
                (false, false, false) => None,
                other => return Err(TestCaseError::fail(format!("re-keyed or revoked without fixed: {other:?}"))),
            };
            match expected {
                Some(state) => prop_assert_eq!(assessment.state, state),
                None => prop_assert!(matches!(assessment.state, State::Vulnerable | State::NeverVulnerable | State::Unknown)),
            }
            let window = assessment.exposure;
            if let (Some(first), Some(last)) = (window.first_vulnerable_ms, window.last_vulnerable_ms) {
                prop_assert!(first <= last);
                if let Some(fixed) = window.first_fixed_ms {
                    prop_assert!(last < fixed);
                }
            }
            prop_assert_eq!(window.first_fixed_ms.is_none() && window.first_vulnerable_ms.is_some(), assessment.state == State::Vulnerable);
            prop_assert!(assessment.exposed_spkis.is_subset(&assessment.spkis_seen));
            if assessment.revoked {
                prop_assert!(!assessment.exposed_certs.is_empty());
                prop_assert!(!assessment.has_flag("exposed-cert-valid-until"));
            }
        }
    }

    #[test]
    fn inconclusive_observations_change_no_state(a in arb_history(12), b in arb_history(6), extra in prop::collection::vec((0..20i64, arb_leaf()), 0..5), facts in arb_revocations()) {
        let before = assess_pair(&a, &b, &facts);
        let mut with_extra = a.clone();
        for (n, (slot, leaf)) in extra.into_iter().enumerate() {
            // Interleave at arbitrary times, with ids that never clash.
            let mut o = obs(1000 + n as i64, Verdict::Inconclusive, leaf);
            o.at_ms = slot * 1000 + 500;
            with_extra.push(o);
        }
        let after = assess_pair(&with_extra, &b, &facts);
        for (x, y) in before.iter().zip(&after) {
            prop_assert_eq!(x.state, y.state);
            prop_assert_eq!((x.fixed, x.rekeyed, x.revoked), (y.fixed, y.rekeyed, y.revoked));
            prop_assert_eq!(&x.exposure, &y.exposure);
            prop_assert_eq!(&x.exposed_spkis, &y.exposed_spkis);
            prop_assert_eq!(&x.exposed_certs, &y.exposed_certs);
            prop_assert_eq!(&x.flags, &y.flags);
        }
    }

    #[test]
    fn exposure_only_grows_and_alerts_stay(a in arb_history(14), more in arb_history(6)) {
        let before = assess_pair(&a, &[], &[]);
        let mut longer = a.clone();
        let offset = a.len() as i64 + 1;
        longer.extend(more.into_iter().map(|mut o| { o.id += offset; o.at_ms += offset * 1000; o }));
        let after = assess_pair(&longer, &[], &[]);
        prop_assert!(before[0].exposed_spkis.is_subset(&after[0].exposed_spkis));
        prop_assert!(before[0].exposed_certs.is_subset(&after[0].exposed_certs));
        prop_assert!(after[0].exposure.first_vulnerable_ms.is_none() || before[0].exposure.first_vulnerable_ms.is_none()
            || after[0].exposure.first_vulnerable_ms == before[0].exposure.first_vulnerable_ms);
        // Alerts judge exposure as known at each observation: appending history never removes one.
        for alert in &before[0].alerts {
            prop_assert!(after[0].alerts.contains(alert));
        }
    }

    #[test]
    fn more_revocations_never_move_an_endpoint_back(a in arb_history(12), b in arb_history(6), facts in arb_revocations(), more in arb_revocations()) {
        let before = assess_pair(&a, &b, &facts);
        let mut all = facts.clone();
        all.extend(more);
        let after = assess_pair(&a, &b, &all);
        for (x, y) in before.iter().zip(&after) {
            prop_assert!(!x.revoked || y.revoked);
            prop_assert_eq!(x.fixed, y.fixed);
            prop_assert_eq!(x.rekeyed, y.rekeyed);
        }
    }
}
