//! The store test suite. Every test takes the backend it runs on; `main.rs` runs each one on
//! SQLite and on PostgreSQL.

use std::collections::BTreeSet;
use std::sync::Arc;

use bleedwatch_assess::{AlertKind, Flag, State};
use bleedwatch_lab::identity::{LAB_RSA_KEY_A, LAB_RSA_KEY_B};
use bleedwatch_lab::{Behaviour, LabIdentity};
use bleedwatch_revocation::{
    check_certificate, now_unix, verify_issuer, CertificateRef, CheckOptions, CrlSource, Status, TrustAnchors,
};
use bleedwatch_store::views::{funnel, EndpointView};
use bleedwatch_store::{
    parse_asset_csv, parse_masscan_json, parse_nmap_xml, AlertFilter, AttackFilter, AttackInput, CaptureImport, ClientTestFilter,
    ClientTestInput, DiskAuditInput, DiskFinding, EndpointAssessment, EndpointResult, PackageRecord, RecordOutcome,
    RevocationInput, Store, StoreError,
};

use crate::backend::{open, Backend};
use crate::pki::{require_openssl, Ca};
use crate::site::Site;

const NAME: &str = "lab.bleedwatch.test";

fn identity(key_pem: &str, serial: u64) -> LabIdentity {
    LabIdentity::self_signed(&[NAME], key_pem, serial).unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// Scans the site in a run of its own and records the result.
async fn scan_into(store: &Store, site: &Site) -> (RecordOutcome, serde_json::Value) {
    let run = store.start_run("scan", &["scan".into(), site.addr.to_string()]).await.unwrap();
    let json = site.scan().await;
    let outcome = store.record(run, &typed(&json), None).await.unwrap();
    store.finish_run(run, "finished").await.unwrap();
    (outcome, json)
}

async fn assessed(store: &Store, endpoint_id: i64) -> EndpointAssessment {
    let all = store.assess_all(now()).await.unwrap();
    all.into_iter().find(|a| a.endpoint.id == endpoint_id).unwrap()
}

/// The typed result behind a JSON line (the tests read the JSON contract, the store takes the type).
fn typed(json: &serde_json::Value) -> EndpointResult {
    serde_json::from_value(json.clone()).unwrap()
}

fn leaf_field(json: &serde_json::Value, field: &str) -> String {
    json["certificate"][field].as_str().unwrap().to_owned()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// The response to a vulnerable server, scanned for real as it changes: vulnerable → fixed →
/// (server down) → reissued on the same key → new key → revoked → the old key comes back → an
/// unexpected key → pinned → vulnerable again.
pub async fn response_history_reaches_every_state(backend: Backend) {
    let Some(test) = open(backend).await else { return };
    let store = test.store.clone();
    let original = identity(LAB_RSA_KEY_A, 1);
    let mut site = Site::start(Behaviour::Vulnerable, &original).await;

    let (outcome, json) = scan_into(&store, &site).await;
    assert_eq!(json["heartbleed"], "vulnerable", "{json:#}");
    let endpoint = outcome.endpoint_id();
    let (cert_1, key_a) = (leaf_field(&json, "cert_sha256"), leaf_field(&json, "spki_sha256"));
    let a = assessed(&store, endpoint).await;
    assert_eq!(a.assessment.state, State::Vulnerable);
    assert_eq!(a.assessment.exposed_spkis, set(&[&key_a]));
    assert!(a.assessment.has_flag("exposed-cert-valid-until"));
    assert!(a.assessment.vulnerable_versions.contains("tls1.2"));
    let first_vulnerable = a.assessment.exposure.first_vulnerable_ms.unwrap();

    // Patched, same certificate.
    site.switch(Behaviour::Fixed, &original).await;
    let (_, json) = scan_into(&store, &site).await;
    assert_eq!(json["heartbleed"], "not-vulnerable");
    let a = assessed(&store, endpoint).await;
    assert_eq!(a.assessment.state, State::Fixed);
    let window = a.assessment.exposure;
    assert_eq!(window.first_vulnerable_ms, Some(first_vulnerable));
    assert_eq!(window.last_vulnerable_ms, Some(first_vulnerable));
    assert!(window.first_fixed_ms.unwrap() > first_vulnerable);

    // The server is down: inconclusive, nothing moves.
    site.stop().await;
    let (_, json) = scan_into(&store, &site).await;
    assert_eq!(json["status"], "connection-refused");
    let down = assessed(&store, endpoint).await;
    assert_eq!(down.assessment.state, State::Fixed);
    assert_eq!(down.assessment.exposure, window);
    assert_eq!(down.latest.as_ref().unwrap().status, "connection-refused");
    assert_eq!(store.history(endpoint).await.unwrap().len(), 3);

    // Reissued on the same (stolen) key.
    site.switch(Behaviour::Fixed, &identity(LAB_RSA_KEY_A, 2)).await;
    let (_, json) = scan_into(&store, &site).await;
    let cert_2 = leaf_field(&json, "cert_sha256");
    assert_eq!(leaf_field(&json, "spki_sha256"), key_a);
    assert_ne!(cert_2, cert_1);
    let a = assessed(&store, endpoint).await;
    assert_eq!(a.assessment.state, State::Fixed);
    assert!(a.assessment.flags.contains(&Flag::ReissuedSameKey { cert_sha256: cert_2.clone(), spki_sha256: key_a.clone() }));
    assert_eq!(a.assessment.exposed_certs, set(&[&cert_1, &cert_2]));

    // A new key.
    site.switch(Behaviour::Fixed, &identity(LAB_RSA_KEY_B, 3)).await;
    let (_, json) = scan_into(&store, &site).await;
    let key_b = leaf_field(&json, "spki_sha256");
    let a = assessed(&store, endpoint).await;
    assert_eq!(a.assessment.state, State::Rekeyed);
    assert_eq!(a.assessment.spkis_seen, set(&[&key_a, &key_b]));
    assert!(a.assessment.alerts.is_empty());

    // Both certificates on the stolen key revoked: users can be told.
    for cert in [&cert_1, &cert_2] {
        store.record_revocation(&revoked(cert)).await.unwrap();
    }
    let a = assessed(&store, endpoint).await;
    assert_eq!(a.assessment.state, State::NotifyReady);
    assert!(!a.assessment.has_flag("exposed-cert-valid-until"));

    // Rollback: the stolen key is back. Watch raises an alert.
    site.switch(Behaviour::Fixed, &original).await;
    let (rollback, _) = scan_into(&store, &site).await;
    let a = assessed(&store, endpoint).await;
    assert_eq!(a.assessment.state, State::Revoked, "no longer re-keyed");
    assert!(a.assessment.flags.contains(&Flag::ExposedKeyReturned { spki_sha256: key_a.clone() }));
    let alerts = store.alerts(&AlertFilter { kind: Some("exposed-key-returned".into()), ..AlertFilter::default() }).await.unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].observation_id, rollback.observation_id());
    assert_eq!(alerts[0].spki_sha256.as_deref(), Some(key_a.as_str()));

    // A key nobody announced: possible man-in-the-middle.
    let stranger = LabIdentity::generate_ecdsa(&[NAME]).unwrap();
    site.switch(Behaviour::Fixed, &stranger).await;
    let (_, json) = scan_into(&store, &site).await;
    let key_e = leaf_field(&json, "spki_sha256");
    let a = assessed(&store, endpoint).await;
    assert_eq!(a.assessment.state, State::NotifyReady);
    assert!(a.assessment.flags.contains(&Flag::UnexpectedCertificate { spki_sha256: key_e.clone() }));
    let unexpected = store.alerts(&AlertFilter { kind: Some("unexpected-certificate".into()), ..AlertFilter::default() }).await.unwrap();
    assert_eq!(unexpected.len(), 1);
    assert!(store.acknowledge_alert(unexpected[0].id).await.unwrap());
    assert!(!store.acknowledge_alert(unexpected[0].id).await.unwrap());
    assert!(store.alerts(&AlertFilter { unacknowledged_only: true, ..AlertFilter::default() }).await.unwrap().iter().all(|al| al.id != unexpected[0].id));

    // The owner confirms the new key: later scans with it are expected.
    store.pin_key(endpoint, &key_e, "rotated by ops").await.unwrap();
    scan_into(&store, &site).await;
    let a = assessed(&store, endpoint).await;
    assert!(!a.assessment.has_flag("unexpected-certificate"), "{:?}", a.assessment.flags);

    // Vulnerable again: regression.
    site.switch(Behaviour::Vulnerable, &stranger).await;
    scan_into(&store, &site).await;
    let a = assessed(&store, endpoint).await;
    assert_eq!(a.assessment.state, State::Vulnerable);
    assert!(a.assessment.alerts.iter().any(|al| al.kind == AlertKind::Regressed));
    assert_eq!(store.alerts(&AlertFilter { kind: Some("regressed".into()), ..AlertFilter::default() }).await.unwrap().len(), 1);
    assert_eq!(store.history(endpoint).await.unwrap().len(), 9, "history is kept, never overwritten");
    site.stop().await;
}

fn revoked(cert: &str) -> RevocationInput {
    RevocationInput {
        cert_sha256: cert.to_owned(),
        method: "ocsp".into(),
        source: "http://127.0.0.1:9/ocsp".into(),
        result: "revoked".into(),
        revoked_at_unix: Some(now() / 1000),
        reason: Some("keyCompromise".into()),
        unknown_reason: None,
        detail: "test".into(),
        checked_at_ms: now(),
    }
}

/// A certificate (and its key) shared by two servers: one leaks it, both must re-key.
pub async fn shared_key_is_compromised_everywhere(backend: Backend) {
    let Some(test) = open(backend).await else { return };
    let store = test.store.clone();
    let wildcard = identity(LAB_RSA_KEY_A, 7);
    let leaking = Site::start(Behaviour::Vulnerable, &wildcard).await;
    let mut sharing = Site::start(Behaviour::Fixed, &wildcard).await;
    let unrelated = Site::start(Behaviour::Fixed, &identity(LAB_RSA_KEY_B, 8)).await;
    let run = store.start_run("scan", &[]).await.unwrap();
    let mut ids = Vec::new();
    for site in [&leaking, &sharing, &unrelated] {
        ids.push(store.record(run, &typed(&site.scan().await), None).await.unwrap().endpoint_id());
    }
    store.finish_run(run, "finished").await.unwrap();
    let all = store.assess_all(now()).await.unwrap();
    let find = |id: i64| all.iter().find(|a| a.endpoint.id == id).unwrap();
    let (a, b, c) = (find(ids[0]), find(ids[1]), find(ids[2]));
    assert_eq!(a.assessment.state, State::Vulnerable);
    assert_eq!(b.assessment.state, State::Fixed, "never vulnerable, but serves a stolen key");
    assert_eq!(c.assessment.state, State::NeverVulnerable);
    let shared_with = |item: &EndpointAssessment| {
        item.assessment.flags.iter().find_map(|f| match f {
            Flag::ExposedKeyShared { endpoints, .. } => Some(endpoints.clone()),
            _ => None,
        })
    };
    assert_eq!(shared_with(a), Some(vec![b.endpoint.label()]));
    assert_eq!(shared_with(b), Some(vec![a.endpoint.label()]));
    assert_eq!(b.assessment.exposed_certs, a.assessment.exposed_certs);
    assert!(c.assessment.flags.is_empty());

    sharing.switch(Behaviour::Fixed, &LabIdentity::generate_ecdsa(&[NAME]).unwrap()).await;
    let (outcome, _) = scan_into(&store, &sharing).await;
    assert_eq!(outcome.endpoint_id(), ids[1]);
    assert_eq!(assessed(&store, ids[1]).await.assessment.state, State::Rekeyed);
}

/// Recording the same endpoint twice in a run keeps one observation, even when racing.
pub async fn recording_is_idempotent(backend: Backend) {
    let Some(test) = open(backend).await else { return };
    let store = test.store.clone();
    let site = Site::start(Behaviour::NoHeartbeat, &identity(LAB_RSA_KEY_A, 1)).await;
    let json = site.scan().await;
    assert_eq!(json["heartbleed"], "no-heartbeat");
    let run = store.start_run("scan", &[]).await.unwrap();
    let first = store.record(run, &typed(&json), None).await.unwrap();
    let second = store.record(run, &typed(&json), None).await.unwrap();
    assert!(matches!(first, RecordOutcome::Inserted { .. }));
    assert_eq!(second, RecordOutcome::AlreadyRecorded { observation_id: first.observation_id(), endpoint_id: first.endpoint_id() });
    assert_eq!(store.run_observations(run).await.unwrap().len(), 1);

    let racing = store.start_run("scan", &[]).await.unwrap();
    let json = Arc::new(json);
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (store, json) = (store.clone(), json.clone());
            tokio::spawn(async move { store.record(racing, &typed(&json), None).await.unwrap() })
        })
        .collect();
    let mut inserted = 0;
    for task in tasks {
        if matches!(task.await.unwrap(), RecordOutcome::Inserted { .. }) {
            inserted += 1;
        }
    }
    assert_eq!(inserted, 1);
    assert_eq!(store.run_observations(racing).await.unwrap().len(), 1);
    assert_eq!(store.history(first.endpoint_id()).await.unwrap().len(), 2, "one per run");
    // The stored JSON is the line as scanned.
    assert_eq!(store.observation_json(first.observation_id()).await.unwrap(), *json);
    let chain = store.observation_chain(first.observation_id()).await.unwrap();
    assert_eq!(chain.len(), 1);
    assert_eq!(chain[0].summary.cert_sha256, json["certificate"]["cert_sha256"].as_str().unwrap());
}

/// The targets asked about in [`resumed_runs_see_pending_targets`], with more than one batch of
/// targets never planned.
fn planned_again(site_target: &str) -> Vec<String> {
    let mut asked: Vec<String> = (0..1200).map(|i| format!("198.51.100.{}:{}", i % 250, 1000 + i)).collect();
    asked.extend(["192.0.2.1:443", site_target, "192.0.2.3:443", "192.0.2.4:443", "192.0.2.5:443"].map(String::from));
    asked
}

/// A run plans its targets; a resumed run sees what is left, in order.
pub async fn resumed_runs_see_pending_targets(backend: Backend) {
    let Some(test) = open(backend).await else { return };
    let store = test.store.clone();
    let site = Site::start(Behaviour::Fixed, &identity(LAB_RSA_KEY_A, 1)).await;
    let run = store.start_run("scan", &["scan".into(), "-iL".into(), "targets.txt".into()]).await.unwrap();
    let site_target = site.addr.to_string();
    let planned: Vec<String> = vec!["192.0.2.1:443".into(), site_target.clone(), "192.0.2.3:443".into(), "192.0.2.4:443".into(), "192.0.2.5:443".into()];
    assert_eq!(store.plan_targets(run, planned.clone()).await.unwrap(), 5);
    store.record(run, &typed(&site.scan().await), Some(&site_target)).await.unwrap();
    assert!(store.mark_target_done(run, "192.0.2.4:443").await.unwrap());
    assert!(!store.mark_target_done(run, "192.0.2.4:443").await.unwrap());
    assert!(!store.mark_target_done(run, "198.51.100.1:443").await.unwrap(), "never planned");
    assert_eq!(store.pending_targets(run).await.unwrap(), ["192.0.2.1:443", "192.0.2.3:443", "192.0.2.5:443"]);
    assert_eq!(store.target_counts(run).await.unwrap(), (5, 2));
    // A resumed run plans again: nothing new, nothing lost.
    assert_eq!(store.plan_targets(run, planned).await.unwrap(), 0);
    let page = store.pending_targets_after(run, -1, 2).await.unwrap();
    assert_eq!(page.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>(), ["192.0.2.1:443", "192.0.2.3:443"]);
    let next = store.pending_targets_after(run, page[1].0, 2).await.unwrap();
    assert_eq!(next.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>(), ["192.0.2.5:443"]);
    // A target that could not be tested (a name that did not resolve) is done, and counted.
    assert!(store.mark_target_untested(run, "192.0.2.5:443").await.unwrap());
    assert_eq!(store.untested_targets(run).await.unwrap(), 1);
    assert_eq!(store.target_counts(run).await.unwrap(), (5, 3));
    let asked: Vec<String> = planned_again(&site_target);
    let done = store.done_among(run, &asked).await.unwrap();
    assert_eq!(done, [site_target.clone(), "192.0.2.4:443".into(), "192.0.2.5:443".into()].into_iter().collect());
    let verdicts = store.run_verdict_counts(run).await.unwrap();
    assert_eq!(verdicts.values().sum::<i64>(), 1, "{verdicts:?}");
    let open_runs = store.unfinished_runs(Some("scan")).await.unwrap();
    assert_eq!(open_runs.iter().map(|r| r.id).collect::<Vec<_>>(), [run]);
    assert_eq!(open_runs[0].arguments, ["scan", "-iL", "targets.txt"]);
    store.finish_run(run, "finished").await.unwrap();
    assert!(store.unfinished_runs(None).await.unwrap().is_empty());
    assert_eq!(store.run(run).await.unwrap().status, "finished");
}

/// Revocation end to end: a CA run with openssl issues the lab's certificates; after the fix and a
/// new key, the CA revokes the exposed one and the CRL check (bleedwatch-revocation) is recorded.
pub async fn revocation_checks_complete_the_response(backend: Backend) {
    if !require_openssl() {
        return;
    }
    let Some(test) = open(backend).await else { return };
    let store = test.store.clone();
    let ca = Ca::new("bleedwatch store test CA");
    let (leaf_1, key_1) = ca.issue("leaf1");
    let (leaf_2, key_2) = ca.issue("leaf2");
    let exposed = LabIdentity::with_chain(vec![leaf_1.clone(), ca.der()], &key_1).unwrap();
    let mut site = Site::start(Behaviour::Vulnerable, &exposed).await;
    let (outcome, json) = scan_into(&store, &site).await;
    assert_eq!(json["heartbleed"], "vulnerable", "{json:#}");
    assert_eq!(json["chain"].as_array().unwrap().len(), 2);
    let endpoint = outcome.endpoint_id();
    site.switch(Behaviour::Fixed, &LabIdentity::with_chain(vec![leaf_2.clone(), ca.der()], &key_2).unwrap()).await;
    scan_into(&store, &site).await;
    assert_eq!(assessed(&store, endpoint).await.assessment.state, State::Rekeyed);

    ca.revoke("leaf1");
    let crl = ca.crl();
    let summary = bleedwatch_x509::summarize(&leaf_1).unwrap();
    // The scan kept the DER of the chain the server sent: the leaf's issuer is verified up to
    // the CA as trust anchor (as with --ca-file).
    let leaf_der = store.certificate(&summary.cert_sha256).await.unwrap().der.expect("the scan keeps the leaf's DER");
    assert_eq!(leaf_der, leaf_1);
    let issuers = store.certificates_with_der_by_subject(&summary.issuer).await.unwrap();
    assert_eq!(issuers.len(), 1);
    let candidates = vec![issuers[0].der.clone().unwrap()];
    let anchors = TrustAnchors::from_pem_or_der(&ca.der(), "test CA").unwrap();
    let issuer = verify_issuer(&leaf_der, &candidates, &anchors, now_unix());
    let cert = CertificateRef {
        cert_sha256: summary.cert_sha256.clone(),
        serial: summary.serial.clone(),
        issuer: summary.issuer.clone(),
        crl_urls: summary.crl_urls.clone(),
        ocsp_urls: summary.ocsp_urls.clone(),
        ca_issuer_urls: summary.ca_issuer_urls.clone(),
    };
    let options = CheckOptions { crl_sources: Some(vec![CrlSource::File(crl)]), use_ocsp: false, ..CheckOptions::default() };
    // Unverified (no anchor): recorded as unknown with the reason, and the funnel does not move.
    let unverified = check_certificate(&cert, &verify_issuer(&leaf_der, &candidates, &TrustAnchors::default(), now_unix()), &options).await;
    assert_eq!(unverified[0].status, Status::Unknown, "{unverified:?}");
    let outcomes = check_certificate(&cert, &issuer, &options).await;
    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0].status, Status::Revoked, "{outcomes:?}");
    for outcome in unverified.iter().chain(&outcomes) {
        store
            .record_revocation(&RevocationInput {
                cert_sha256: outcome.cert_sha256.clone(),
                method: outcome.method.as_str().into(),
                source: outcome.source.clone(),
                result: outcome.status.as_str().into(),
                revoked_at_unix: outcome.revoked_at_unix,
                reason: outcome.reason.clone(),
                unknown_reason: outcome.unknown_reason.map(|why| why.as_str().into()),
                detail: outcome.detail.clone(),
                checked_at_ms: outcome.checked_at_ms,
            })
            .await
            .unwrap();
        if outcome.status == Status::Unknown {
            assert_eq!(assessed(&store, endpoint).await.assessment.state, State::Rekeyed, "unknown never advances the funnel");
        }
    }
    let a = assessed(&store, endpoint).await;
    assert_eq!(a.assessment.state, State::NotifyReady);
    let checks = store.revocation_checks(Some(&summary.cert_sha256)).await.unwrap();
    assert_eq!(checks.len(), 2);
    assert_eq!(checks[0].check.unknown_reason.as_deref(), Some("no-issuer"));
    assert_eq!(checks[1].check.reason.as_deref(), Some("keyCompromise"));
    assert_eq!(checks[1].check.unknown_reason, None);

    let views = store.certificate_views().await.unwrap();
    let leaf_view = views.iter().find(|v| v.cert_sha256 == summary.cert_sha256).unwrap();
    assert!(leaf_view.exposed && leaf_view.revoked);
    assert_eq!(leaf_view.revocation.get("crl").map(String::as_str), Some("revoked"));
    assert_eq!(leaf_view.endpoints.len(), 1);
    let second = bleedwatch_x509::summarize(&leaf_2).unwrap();
    let second_view = views.iter().find(|v| v.cert_sha256 == second.cert_sha256).unwrap();
    assert!(!second_view.exposed && !second_view.revoked);
    site.stop().await;
}

/// The asset list links endpoints to owners (most specific match), before or after they are
/// scanned; the funnel groups by owner, internet-facing first; CSV exports are neutralised.
pub async fn assets_link_endpoints_to_owners(backend: Backend) {
    let Some(test) = open(backend).await else { return };
    let store = test.store.clone();
    let vulnerable = Site::start(Behaviour::Vulnerable, &identity(LAB_RSA_KEY_A, 1)).await;
    let (first, _) = scan_into(&store, &vulnerable).await;
    assert!(store.endpoint(first.endpoint_id()).await.unwrap().asset.is_none());

    let csv = "host,owner,criticality,internet-facing,notes\n\
               127.0.0.0/8,netops,low,no,loopback block\n\
               127.0.0.1,\"=HYPERLINK(\"\"http://198.51.100.1\"\")\",high,yes,lab\n";
    let assets = parse_asset_csv(csv.as_bytes(), "assets.csv").unwrap();
    let summary = store.import_assets(&assets, "csv").await.unwrap();
    assert_eq!(summary.assets, 2);
    assert_eq!(summary.linked_endpoints, 1);
    let endpoint = store.endpoint(first.endpoint_id()).await.unwrap();
    let asset = endpoint.asset.clone().unwrap();
    assert_eq!(asset.host, "127.0.0.1", "the exact address beats the block");
    assert!(asset.internet_facing);

    // Scanned after the import: linked when recorded.
    let fixed = Site::start(Behaviour::Fixed, &identity(LAB_RSA_KEY_B, 2)).await;
    let (second, _) = scan_into(&store, &fixed).await;
    assert_eq!(store.endpoint(second.endpoint_id()).await.unwrap().asset.unwrap().host, "127.0.0.1");

    // Re-importing updates in place.
    let csv = "host,owner,internet_facing\n127.0.0.1,web team,yes\n";
    store.import_assets(&parse_asset_csv(csv.as_bytes(), "assets.csv").unwrap(), "csv").await.unwrap();
    assert_eq!(store.assets().await.unwrap().len(), 2);
    let all = store.assess_all(now()).await.unwrap();
    let rows = funnel(&all);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].owner, "web team");
    assert!(rows[0].internet_facing);
    assert_eq!(rows[0].total, 2);
    assert_eq!(rows[0].counts.get(&State::Vulnerable), Some(&1));
    assert_eq!(rows[0].counts.get(&State::NeverVulnerable), Some(&1));

    // A formula owner is stored and shown as it was given (CSV exports neutralise it: bleedwatch-report).
    let csv = "host,owner\n127.0.0.1,=cmd|' /C calc'!A0\n";
    store.import_assets(&parse_asset_csv(csv.as_bytes(), "assets.csv").unwrap(), "csv").await.unwrap();
    let all = store.assess_all(now()).await.unwrap();
    let view = EndpointView::from(&all[0]);
    assert_eq!(view.owner, "=cmd|' /C calc'!A0", "{view:?}");
}

/// nmap (run for real against a loopback endpoint) and masscan output become targets that
/// `rescan` proposes until they are scanned.
pub async fn imported_targets_are_rescanned(backend: Backend) {
    let Some(test) = open(backend).await else { return };
    let store = test.store.clone();
    let site = Site::start(Behaviour::Fixed, &identity(LAB_RSA_KEY_A, 1)).await;
    let masscan_current = include_str!("../data/masscan-1.3.json");
    let masscan_old = include_str!("../data/masscan-1.0-trailing-comma.json");
    let current = parse_masscan_json(masscan_current, "masscan-1.3.json").unwrap();
    let old = parse_masscan_json(masscan_old, "masscan-1.0-trailing-comma.json").unwrap();
    assert_eq!(current.len(), 3, "{current:?}");
    assert_eq!(current.iter().filter(|t| t.service.as_deref() == Some("ssl")).count(), 1);
    assert_eq!(old.len(), 2, "{old:?}");
    assert_eq!(store.import_targets(&current, "masscan").await.unwrap().new_targets, 3);
    assert_eq!(store.import_targets(&old, "masscan").await.unwrap().new_targets, 1, "one target in both files");

    let nmap_targets = match nmap_xml(site.addr.port()) {
        Some(xml) => {
            let targets = parse_nmap_xml(xml.as_bytes(), "nmap.xml").unwrap();
            assert_eq!(targets.len(), 1, "{xml}");
            assert_eq!(targets[0].scan_target(), site.addr.to_string());
            targets
        }
        None => Vec::new(),
    };
    store.import_targets(&nmap_targets, "nmap").await.unwrap();
    let proposed = store.rescan_targets(now(), None, false).await.unwrap();
    let proposed: Vec<&str> = proposed.iter().map(|t| t.target.as_str()).collect();
    assert!(proposed.contains(&"192.0.2.10:443"));
    assert!(proposed.contains(&"[2001:db8::7]:8443"));
    if !nmap_targets.is_empty() {
        assert!(proposed.contains(&site.addr.to_string().as_str()));
    }
    scan_into(&store, &site).await;
    let proposed = store.rescan_targets(now(), None, false).await.unwrap();
    assert!(proposed.iter().all(|t| t.target != site.addr.to_string()), "scanned and never vulnerable: {proposed:?}");
}

/// nmap's XML for `port` (open) and a closed port on 127.0.0.1, or None when skipping real tools.
fn nmap_xml(port: u16) -> Option<String> {
    if std::env::var_os("BLEEDWATCH_SKIP_REAL_SERVERS").is_some() {
        return None;
    }
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let output = std::process::Command::new("nmap")
        .args(["-sT", "-Pn", "-n", "-oX", "-", "-p", &format!("{port},{closed}"), "127.0.0.1"])
        .output()
        .unwrap_or_else(|e| panic!("nmap is not installed ({e}): run scripts/test.sh, or set BLEEDWATCH_SKIP_REAL_SERVERS=1"));
    assert!(output.status.success(), "nmap failed: {}", String::from_utf8_lossy(&output.stderr));
    Some(String::from_utf8(output.stdout).unwrap())
}

/// What rescan proposes: not yet fixed, never conclusively tested, stale, and (on request)
/// everything still in the response.
pub async fn rescan_proposes_what_needs_testing(backend: Backend) {
    let Some(test) = open(backend).await else { return };
    let store = test.store.clone();
    let mut vulnerable = Site::start(Behaviour::Vulnerable, &identity(LAB_RSA_KEY_A, 1)).await;
    let healthy = Site::start(Behaviour::Fixed, &identity(LAB_RSA_KEY_B, 2)).await;
    let mut down = Site::start(Behaviour::Fixed, &identity(LAB_RSA_KEY_B, 3)).await;
    down.stop().await;
    for site in [&vulnerable, &healthy, &down] {
        scan_into(&store, site).await;
    }
    let targets = |list: Vec<bleedwatch_store::views::RescanTarget>| list.into_iter().map(|t| (t.target, t.reason)).collect::<Vec<_>>();
    let proposed: BTreeSet<(String, String)> = targets(store.rescan_targets(now(), None, false).await.unwrap()).into_iter().collect();
    let expected = BTreeSet::from([
        (vulnerable.addr.to_string(), "vulnerable".to_owned()),
        (down.addr.to_string(), "no conclusive result yet".to_owned()),
    ]);
    assert_eq!(proposed, expected);
    let stale = targets(store.rescan_targets(now() + 60_000, Some(1_000), false).await.unwrap());
    assert!(stale.contains(&(healthy.addr.to_string(), "stale".to_owned())), "{stale:?}");

    vulnerable.switch(Behaviour::Fixed, &identity(LAB_RSA_KEY_A, 1)).await;
    scan_into(&store, &vulnerable).await;
    let without = targets(store.rescan_targets(now(), None, false).await.unwrap());
    assert!(!without.iter().any(|(t, _)| *t == vulnerable.addr.to_string()));
    let with = targets(store.rescan_targets(now(), None, true).await.unwrap());
    assert!(with.contains(&(vulnerable.addr.to_string(), "fixed, not notify-ready".to_owned())), "{with:?}");
}

/// The JSON line of `endpoints --json` carries what pipelines need.
pub async fn endpoint_views_carry_the_contract(backend: Backend) {
    let Some(test) = open(backend).await else { return };
    let store = test.store.clone();
    let site = Site::start(Behaviour::Vulnerable, &identity(LAB_RSA_KEY_A, 1)).await;
    let (_, json) = scan_into(&store, &site).await;
    let all = store.assess_all(now()).await.unwrap();
    let view = serde_json::to_value(EndpointView::from(&all[0])).unwrap();
    assert_eq!(view["address"], "127.0.0.1");
    assert_eq!(view["port"], site.addr.port());
    assert_eq!(view["transport"], "tcp");
    assert_eq!(view["state"], "vulnerable");
    assert_eq!(view["flags"][0]["flag"], "exposed-cert-valid-until");
    assert!(view["exposure"]["first_vulnerable"].as_str().unwrap().ends_with('Z'));
    assert!(view["exposure"]["first_fixed"].is_null());
    assert_eq!(view["spkis_seen"], serde_json::json!([json["certificate"]["spki_sha256"]]));
    assert_eq!(view["exposed_spkis"], view["spkis_seen"]);
    assert_eq!(view["last_verdict"], "vulnerable");
    // The typed evidence of the deciding version travels from the scan into the inventory.
    assert_eq!(view["last_evidence"], serde_json::json!({"kind": "test-heartbeat-echoed"}));
}

/// Opening again is harmless; bad input is refused with a reason.
pub async fn schema_and_bad_input(backend: Backend) {
    let Some(test) = open(backend).await else { return };
    let (store, url) = (test.store.clone(), test.url.clone());
    assert_eq!(store.schema_version().await.unwrap(), bleedwatch_store::SCHEMA_VERSION);
    let again = Store::open(&url).await.unwrap();
    assert_eq!(again.schema_version().await.unwrap(), bleedwatch_store::SCHEMA_VERSION);
    let run = store.start_run("scan", &[]).await.unwrap();
    let mut bad_address = typed(&recorded_scan("192.0.2.1", None, "vulnerable", "2026-11-28T18:39:14Z"));
    bad_address.address = "x".into();
    let error = store.record(run, &bad_address, None).await.unwrap_err();
    assert!(matches!(error, StoreError::BadResult(_)), "{error}");
    let error = store.record_revocation(&revoked("00".repeat(32).as_str())).await.unwrap_err();
    assert!(matches!(error, StoreError::NotFound(_)), "{error}");
    let mut bad = revoked("x");
    bad.result = "maybe".into();
    assert!(matches!(store.record_revocation(&bad).await.unwrap_err(), StoreError::BadResult(_)));
    assert!(matches!(store.finish_run(bleedwatch_store::RunId(9999), "finished").await.unwrap_err(), StoreError::NotFound(_)));
    assert!(store.endpoints().await.unwrap().is_empty());
    again.close().await;
}

// ---- tested clients and attacks ----

/// A client-test JSON line (the README's contract) for a client at `client`.
fn client_line(client: &str, time: &str, verdict: &str, heartbeat_mode: Option<&str>) -> serde_json::Value {
    serde_json::json!({
        "client": client, "service": "tls", "time": time, "tls_version": "tls1.2",
        "client_hello": {"version": "tls1.2", "heartbeat_mode": heartbeat_mode, "server_name": "relay.example", "cipher_suites": 40},
        "verdict": verdict, "reason": if verdict == "vulnerable" { serde_json::Value::Null } else { "test reason".into() },
        "log": ["ClientHello", "heartbeats sent"]
    })
}

/// Client tests are kept per client as history; the latest verdict per client is what counts.
pub async fn client_tests_are_kept_per_client(backend: Backend) {
    let Some(test) = open(backend).await else { return };
    let store = test.store.clone();
    let run = store.start_run("client-test", &["client-test".into(), "--listen".into(), "127.0.0.1:4433".into()]).await.unwrap();
    let mut vulnerable = client_line("192.0.2.20:50001", "2026-11-28T10:00:00.000Z", "vulnerable", Some("peer_allowed_to_send"));
    vulnerable["leak"] = serde_json::json!({"leaked_bytes": 16, "sha256": "00".repeat(32)});
    let lines = [
        vulnerable,
        client_line("192.0.2.21:50002", "2026-11-28T10:05:00.000Z", "no-heartbeat", None),
        client_line("192.0.2.20:50003", "2026-11-28T11:00:00.000Z", "not-vulnerable", Some("peer_allowed_to_send")),
    ];
    let mut ids = Vec::new();
    for line in &lines {
        let input = ClientTestInput::from_json(line, "127.0.0.1:4433", Some(run)).unwrap();
        ids.push(store.record_client_test(&input).await.unwrap());
    }
    store.finish_run(run, "finished").await.unwrap();

    let all = store.client_tests(&ClientTestFilter::default()).await.unwrap();
    assert_eq!(all.iter().map(|t| t.id).collect::<Vec<_>>(), [ids[2], ids[1], ids[0]], "newest first");
    let first = all.iter().find(|t| t.id == ids[0]).unwrap();
    assert_eq!((first.client_address.as_str(), first.client_port), ("192.0.2.20", 50001));
    assert_eq!(first.verdict, "vulnerable");
    assert_eq!(first.heartbeat_mode.as_deref(), Some("peer_allowed_to_send"));
    assert_eq!(first.offered_version.as_deref(), Some("tls1.2"));
    assert_eq!(first.server_name.as_deref(), Some("relay.example"));
    assert_eq!(first.leaked_bytes, Some(16));
    assert_eq!(first.run, Some(run));
    assert_eq!(first.listener, "127.0.0.1:4433");
    assert_eq!(first.tested_at, "2026-11-28T10:00:00.000Z");
    let quiet = all.iter().find(|t| t.id == ids[1]).unwrap();
    assert_eq!(quiet.heartbeat_mode, None, "not offered");

    // The patched client's latest test is what counts.
    let latest = store.client_tests(&ClientTestFilter { latest_only: true, ..ClientTestFilter::default() }).await.unwrap();
    let verdicts: BTreeSet<(String, String)> = latest.iter().map(|t| (t.client_address.clone(), t.verdict.clone())).collect();
    assert_eq!(verdicts, BTreeSet::from([("192.0.2.20".into(), "not-vulnerable".into()), ("192.0.2.21".into(), "no-heartbeat".into())]));
    let filter = ClientTestFilter { verdict: Some("vulnerable".into()), ..ClientTestFilter::default() };
    assert_eq!(store.client_tests(&filter).await.unwrap().len(), 1);
    let filter = ClientTestFilter { client_address: Some("192.0.2.20".into()), since_ms: Some(1_795_863_600_000), ..ClientTestFilter::default() };
    assert_eq!(store.client_tests(&filter).await.unwrap().iter().map(|t| t.id).collect::<Vec<_>>(), [ids[2]]);
    assert_eq!(store.client_test_json(ids[0]).await.unwrap(), lines[0], "the line is kept as written");

    // Refused: a verdict client tests cannot reach, a client that is not an address.
    let mut bad = ClientTestInput::from_json(&lines[1], "127.0.0.1:4433", None).unwrap();
    bad.verdict = "not-supported".into();
    assert!(matches!(store.record_client_test(&bad).await.unwrap_err(), StoreError::BadResult(_)));
    bad.verdict = "inconclusive".into();
    bad.client_address = "client.example".into();
    assert!(matches!(store.record_client_test(&bad).await.unwrap_err(), StoreError::BadResult(_)));
    assert_eq!(store.client_tests(&ClientTestFilter::default()).await.unwrap().len(), 3);
}

/// A scan result for an endpoint nobody can scan from a test (the captures' public victims), as
/// `scan` writes it: what the inventory knew about them before the captures are imported.
fn recorded_scan(address: &str, sni: Option<&str>, verdict: &str, started_at: &str) -> serde_json::Value {
    serde_json::json!({
        "address": address, "port": 443, "transport": "tcp", "host": sni, "service": "tls", "sni": sni,
        "status": "success", "heartbleed": verdict, "reason": null, "versions": {"tls1.2": verdict},
        "certificate": null, "chain": [], "details": [], "started_at": started_at, "duration_ms": 40
    })
}

async fn record_scan(store: &Store, json: &serde_json::Value) -> i64 {
    let run = store.start_run("scan", &[]).await.unwrap();
    let outcome = store.record(run, &typed(json), None).await.unwrap();
    store.finish_run(run, "finished").await.unwrap();
    outcome.endpoint_id()
}

fn capture_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/pcap/zeek").join(name)
}

/// Runs the real pcap engine over a shared capture and returns the attempts to record.
fn capture_attacks(name: &str, recorded_as: &str) -> Vec<AttackInput> {
    let bytes = std::fs::read(capture_path(name)).unwrap();
    let sha256 = bleedwatch_store::sha256_hex(&bytes[..]).unwrap();
    let mut findings = Vec::new();
    bleedwatch_pcap::analyze_reader(recorded_as, &bytes[..], &bleedwatch_pcap::Config::default(), &mut |f| findings.push(f)).unwrap();
    let mut import = CaptureImport::new(recorded_as, &sha256, None);
    findings.iter().filter_map(|f| import.attack(&serde_json::to_value(f).unwrap()).unwrap()).collect()
}

fn view_of(views: &[EndpointView], id: i64) -> &EndpointView {
    views.iter().find(|v| v.id == id).unwrap()
}

/// Real captures of attacks on public servers (the shared Zeek test captures) are attached to the
/// endpoints they hit; an endpoint attacked while vulnerable stands out from one attacked after
/// its fix; importing a capture again, under another name or from several processes at once, adds
/// nothing; findings imported before the endpoint is scanned are linked when it is.
pub async fn capture_attacks_are_endpoint_evidence(backend: Backend) {
    let Some(test) = open(backend).await else { return };
    let store = test.store.clone();
    // 107.170.241.107 was vulnerable when scanned the morning of the attack, and never fixed.
    let victim = record_scan(&store, &recorded_scan("107.170.241.107", None, "vulnerable", "2014-04-08T12:00:00.000Z")).await;
    let victim_by_name =
        record_scan(&store, &recorded_scan("107.170.241.107", Some("www.example.org"), "vulnerable", "2014-04-08T12:00:01.000Z")).await;
    let bystander = record_scan(&store, &recorded_scan("192.0.2.80", None, "vulnerable", "2014-04-08T12:00:00.000Z")).await;

    // heartbleed-success.pcap: an unpadded request (probe) and the server's answer (success).
    let success = capture_attacks("heartbleed-success.pcap", "captures/heartbleed-success.pcap");
    assert_eq!(success.len(), 2, "{success:#?}");
    let outcomes = store.record_attacks(&success).await.unwrap();
    assert!(outcomes.iter().all(|o| o.inserted() && o.endpoint_id() == Some(victim)), "{outcomes:?}");
    // Again, under another name: the capture's bytes are the key.
    let again = store.record_attacks(&capture_attacks("heartbleed-success.pcap", "/tmp/copy.pcap")).await.unwrap();
    assert_eq!(again.iter().map(|o| o.attack_id()).collect::<Vec<_>>(), outcomes.iter().map(|o| o.attack_id()).collect::<Vec<_>>());
    assert!(again.iter().all(|o| !o.inserted()));
    // Three imports racing: each finding once.
    let encrypted = Arc::new(capture_attacks("heartbleed-encrypted-success.pcap", "heartbleed-encrypted-success.pcap"));
    assert_eq!(encrypted.len(), 3, "two findings at the same instant, and the answer: {encrypted:#?}");
    let tasks: Vec<_> = (0..3)
        .map(|_| {
            let (store, attacks) = (store.clone(), encrypted.clone());
            tokio::spawn(async move { store.record_attacks(&attacks).await.unwrap() })
        })
        .collect();
    let mut inserted = 0;
    for task in tasks {
        inserted += task.await.unwrap().iter().filter(|o| o.inserted()).count();
    }
    assert_eq!(inserted, 3);
    assert_eq!(store.attacks(&AttackFilter::default()).await.unwrap().len(), 5);

    // 162.219.2.166: attacked (heartbleed.pcap, 16:11) before the inventory knows it.
    let early = store.record_attacks(&capture_attacks("heartbleed.pcap", "heartbleed.pcap")).await.unwrap();
    assert_eq!(early.len(), 1);
    assert_eq!(early[0].endpoint_id(), None, "no such endpoint yet");
    // Its history: vulnerable at 08:00, fixed at 12:00 — the 16:11 attack came after the fix.
    let patched = record_scan(&store, &recorded_scan("162.219.2.166", None, "vulnerable", "2014-04-08T08:00:00.000Z")).await;
    record_scan(&store, &recorded_scan("162.219.2.166", None, "not-vulnerable", "2014-04-08T12:00:00.000Z")).await;
    let linked = store.attacks(&AttackFilter { target_address: Some("162.219.2.166".into()), ..AttackFilter::default() }).await.unwrap();
    assert_eq!(linked.iter().map(|a| a.endpoint_id).collect::<Vec<_>>(), [Some(patched)], "linked once scanned");
    store.record_attacks(&capture_attacks("heartbleed-encrypted.pcap", "heartbleed-encrypted.pcap")).await.unwrap();

    let views: Vec<EndpointView> = store.assess_all(now()).await.unwrap().iter().map(EndpointView::from).collect();
    let v = view_of(&views, victim);
    assert!(v.attacked && v.attacked_while_vulnerable, "{v:#?}");
    assert_eq!((v.attacks, v.attack_successes), (5, 2));
    assert_eq!(v.first_attack.as_deref(), Some("2014-04-08T16:57:00.863Z"));
    assert_eq!(v.last_attack.as_deref(), Some("2014-04-10T22:39:09.895Z"));
    assert!(v.flag_words().contains(&"attacked-while-vulnerable(5)".to_owned()), "{:?}", v.flag_words());
    assert!(v.has_flag("attacked") && v.has_flag("attacked-while-vulnerable"));
    assert_eq!(view_of(&views, victim_by_name).attacks, 5, "same address and port, another server name");
    let p = view_of(&views, patched);
    assert_eq!(p.state, State::Fixed);
    assert!(p.attacked && !p.attacked_while_vulnerable, "attacked only after the fix: {p:#?}");
    assert_eq!((p.attacks, p.attack_successes), (2, 0));
    assert_eq!(p.flag_words().last().map(String::as_str), Some("attacked(2)"), "after the assessment's flags");
    let b = view_of(&views, bystander);
    assert!(!b.attacked && b.first_attack.is_none() && !b.has_flag("attacked"));
    let line = serde_json::to_value(v).unwrap();
    assert_eq!(line["attacked_while_vulnerable"], true);
    assert_eq!(line["attacks"], 5);
    // One endpoint assessed alone agrees.
    let alone = store.assess_endpoint(patched, now()).await.unwrap();
    assert_eq!(alone.attacks, all_evidence(&store, patched).await);

    // What was stored: lengths, notices, the capture and its connection; no payload bytes.
    let rows = store.attacks(&AttackFilter { endpoint_id: Some(victim), ..AttackFilter::default() }).await.unwrap();
    assert_eq!(rows.len(), 5);
    let probe = &rows[0];
    assert_eq!((probe.kind.as_str(), probe.severity.as_str(), probe.origin.as_str()), ("heartbeat_unpadded", "probe", "pcap"));
    assert_eq!(probe.notice.as_deref(), Some("Heartbleed::SSL_Heartbeat_Attack"));
    assert_eq!((probe.claimed_length, probe.payload_length, probe.record_length), (Some(16365), Some(16365), Some(16368)));
    assert_eq!((probe.source_address.as_str(), probe.source_port), ("173.203.79.216", 41459));
    assert_eq!(probe.file.as_deref(), Some("captures/heartbleed-success.pcap"), "the name of the first import");
    assert_eq!(probe.connection, Some(1));
    assert!(rows[1].succeeded && rows[1].kind == "heartbeat_response_to_invalid");
    assert!(rows.iter().any(|r| r.kind == "encrypted_heartbeat_success" && r.leaked_bytes == Some(52076) && r.encrypted));
    let details = store.attack_details(probe.id).await.unwrap();
    assert_eq!(details["notice_msg"], "An TLS heartbleed attack was detected! Record length 16368. Payload length 16365");
    let sha = probe.file_sha256.clone().unwrap();
    let by_file = store.attacks(&AttackFilter { file_sha256: Some(sha), ..AttackFilter::default() }).await.unwrap();
    assert_eq!(by_file.len(), 2);

    // The attackers, most successful (then busiest, then latest) first.
    let attackers = store.attackers(&AttackFilter::default()).await.unwrap();
    let summary: Vec<(&str, i64, i64, i64, i64)> =
        attackers.iter().map(|a| (a.source_address.as_str(), a.attempts, a.over_reads, a.probes, a.successes)).collect();
    assert_eq!(
        summary,
        [("192.168.4.149", 3, 1, 1, 1), ("173.203.79.216", 3, 0, 2, 1), ("54.221.166.250", 1, 0, 0, 0)],
        "{attackers:#?}"
    );
    let both = &attackers[1];
    assert_eq!(both.targets, ["107.170.241.107:443/tcp", "162.219.2.166:443/tcp"]);
    assert_eq!(both.origins, ["pcap"]);
    assert_eq!(both.first_seen, "2014-04-08T16:11:26.753Z");
    assert_eq!(both.last_seen, "2014-04-08T16:57:00.918Z");
    let since = store.attackers(&AttackFilter { since_ms: Some(1_397_000_000_000), ..AttackFilter::default() }).await.unwrap();
    assert_eq!(since.iter().map(|a| a.source_address.as_str()).collect::<Vec<_>>(), ["192.168.4.149", "54.221.166.250"]);
}

async fn all_evidence(store: &Store, endpoint_id: i64) -> bleedwatch_store::AttackEvidence {
    store.assess_all(now()).await.unwrap().into_iter().find(|a| a.endpoint.id == endpoint_id).unwrap().attacks
}

/// A honeypot attempt JSON line, as `bleedwatch honeypot` writes it.
fn honeypot_line(source: &str, listener: &str, kind: &str, overread: u64) -> serde_json::Value {
    let padding = if kind == "memory-safe-probe" { 0 } else { 16 };
    serde_json::json!({
        "source": source, "listener": listener, "time": "2026-11-28T18:39:14.250Z", "tls_version": "tls1.2", "kind": kind,
        "record_length": 3 + 4500 + padding, "claimed_length": 4500 + overread, "payload_sent": 4500, "padding": padding,
        "overread": overread, "answered": true, "encrypted": false
    })
}

/// Honeypot attempts make the attackers list, never endpoint evidence (the honeypot leaks canary
/// bytes only), even when the honeypot itself was scanned into the inventory.
pub async fn honeypot_attempts_list_attackers(backend: Backend) {
    let Some(test) = open(backend).await else { return };
    let store = test.store.clone();
    let honeypot = Site::start(Behaviour::Vulnerable, &identity(LAB_RSA_KEY_A, 1)).await;
    let (scanned, _) = scan_into(&store, &honeypot).await;
    let listener = honeypot.addr.to_string();
    let run = store.start_run("honeypot", &["honeypot".into(), "--listen".into(), listener.clone()]).await.unwrap();
    let mut lines = Vec::new();
    for i in 0..4 {
        lines.push(honeypot_line(&format!("127.0.0.1:{}", 40000 + i), &listener, "over-read", 16));
        lines.push(honeypot_line(&format!("127.0.0.1:{}", 40000 + i), &listener, "honest", 0));
    }
    lines.push(honeypot_line("[::1]:40100", &listener, "memory-safe-probe", 0));
    for line in &lines {
        let outcome = store.record_attack(&AttackInput::from_honeypot_attempt(line, Some(run)).unwrap()).await.unwrap();
        assert!(outcome.inserted());
        assert_eq!(outcome.endpoint_id(), None);
    }
    // The same line twice is two heartbeats: the honeypot saw both.
    let repeat = store.record_attack(&AttackInput::from_honeypot_attempt(&lines[0], Some(run)).unwrap()).await.unwrap();
    assert!(repeat.inserted());
    store.finish_run(run, "finished").await.unwrap();

    let attackers = store.attackers(&AttackFilter { origin: Some("honeypot".into()), ..AttackFilter::default() }).await.unwrap();
    assert_eq!(attackers.len(), 2, "{attackers:#?}");
    let local = &attackers[0];
    assert_eq!(local.source_address, "127.0.0.1");
    assert_eq!((local.attempts, local.over_reads, local.probes, local.successes), (9, 5, 0, 0));
    assert_eq!(local.targets, [format!("{listener}/tcp")]);
    assert_eq!(local.origins, ["honeypot"]);
    assert_eq!(attackers[1].source_address, "::1");
    assert_eq!((attackers[1].attempts, attackers[1].probes), (1, 1));
    let rows = store.attacks(&AttackFilter { source_address: Some("::1".into()), ..AttackFilter::default() }).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].kind.as_str(), rows[0].severity.as_str(), rows[0].run), ("memory-safe-probe", "probe", Some(run)));
    assert!(store.attackers(&AttackFilter { origin: Some("pcap".into()), ..AttackFilter::default() }).await.unwrap().is_empty());

    let a = assessed(&store, scanned.endpoint_id()).await;
    assert_eq!(a.attacks, bleedwatch_store::AttackEvidence::default(), "a honeypot is not exposed by attacks on it");

    // Refused, and nothing of the batch written.
    let mut bad = AttackInput::from_honeypot_attempt(&lines[0], None).unwrap();
    bad.severity = "catastrophic".into();
    let good = AttackInput::from_honeypot_attempt(&lines[1], None).unwrap();
    assert!(matches!(store.record_attacks(&[good, bad]).await.unwrap_err(), StoreError::BadResult(_)));
    let mut bad = AttackInput::from_honeypot_attempt(&lines[0], None).unwrap();
    bad.origin = "rumour".into();
    assert!(matches!(store.record_attack(&bad).await.unwrap_err(), StoreError::BadResult(_)));
    assert_eq!(store.attacks(&AttackFilter::default()).await.unwrap().len(), 10);
}

/// `bleedwatch audit` findings: recorded per asset, the latest audit wins, a bad finding records
/// nothing, and the asset's copies on disk meet the endpoints it serves.
pub async fn disk_audits_meet_their_endpoints(backend: Backend) {
    let Some(test) = open(backend).await else { return };
    let store = test.store.clone();
    let site = Site::start(Behaviour::Vulnerable, &identity(LAB_RSA_KEY_A, 1)).await;
    let (scanned, _) = scan_into(&store, &site).await;
    let csv = "host,owner,criticality\n127.0.0.1,appliance team,high\n";
    store.import_assets(&parse_asset_csv(csv.as_bytes(), "assets.csv").unwrap(), "csv").await.unwrap();

    let copy = |path: &str, verdict: &str, package: Option<PackageRecord>| DiskFinding {
        location: vec!["appliance.tar".into(), path.into()],
        image: Some("sha256:ab".into()),
        kind: "shared-libssl".into(),
        version: Some("1.0.1e".into()),
        heartbeats: "compiled-in".into(),
        package,
        verdict: verdict.into(),
        reason: "test".into(),
    };
    let debian = PackageRecord {
        name: "libssl1.0.0".into(),
        version: "1.0.1e-2+deb7u5".into(),
        distribution: Some("debian".into()),
        advisory: Some("DSA-2896-1".into()),
    };
    let run = store.start_run("audit", &["audit".into(), "appliance.tar".into()]).await.unwrap();
    let first = DiskAuditInput {
        run,
        asset: "127.0.0.1".into(),
        audited_at_ms: now(),
        unread: vec![],
        findings: vec![copy("opt/agent/libssl.so.1.0.0", "vulnerable", None), copy("usr/lib/libssl.so.1.0.0", "fixed-by-distribution", Some(debian.clone()))],
    };
    store.record_disk_audit(&first).await.unwrap();
    assert!(store.record_disk_audit(&first).await.is_err(), "the same asset twice in one run");

    let assessed = store.assess_all(now()).await.unwrap();
    let products = store.products(&assessed).await.unwrap();
    assert_eq!(products.len(), 1, "{products:?}");
    let product = &products[0];
    assert_eq!((product.asset.as_str(), product.owner.as_str(), product.criticality.as_str()), ("127.0.0.1", "appliance team", "high"));
    assert!(product.carries_vulnerable_openssl() && product.complete);
    assert_eq!(product.worst_verdict(), Some("vulnerable"));
    assert_eq!(product.findings[1].package.as_ref(), Some(&debian));
    assert_eq!(product.findings[0].location, ["appliance.tar", "opt/agent/libssl.so.1.0.0"]);
    let served = store.endpoint(scanned.endpoint_id()).await.unwrap().label();
    assert_eq!(product.endpoints.iter().map(|e| (e.label.as_str(), e.state.as_str())).collect::<Vec<_>>(), [(served.as_str(), "vulnerable")]);

    // A bad finding records nothing of its audit; the earlier audit stays the latest.
    let later = store.start_run("audit", &[]).await.unwrap();
    let mut bad = DiskAuditInput { run: later, audited_at_ms: now() + 1, findings: vec![copy("x", "patched?", None)], ..first.clone() };
    let error = store.record_disk_audit(&bad).await.unwrap_err().to_string();
    assert!(error.contains("verdict \"patched?\""), "{error}");
    assert_eq!(store.products(&assessed).await.unwrap()[0].run, run);

    // The vendor's update removed the agent's copy: the newest audit decides, and what it could not
    // read is kept.
    bad.findings = vec![copy("usr/lib/libssl.so.1.0.0", "fixed-by-distribution", Some(debian))];
    bad.unread = vec!["appliance.tar ▸ firmware.bin: truncated".into()];
    store.record_disk_audit(&bad).await.unwrap();
    let products = store.products(&assessed).await.unwrap();
    assert_eq!(products[0].run, later);
    assert!(!products[0].carries_vulnerable_openssl() && !products[0].complete);
    assert_eq!(products[0].unread, ["appliance.tar ▸ firmware.bin: truncated"]);
}

/// Notices: recorded `sending` before the SMTP transaction and finished after it; nothing recorded
/// is claimed twice (sent, failed, or uncertain — left `sending` by a killed run) unless asked; a
/// pending one (refused for now) is claimed again with its first Message-ID.
pub async fn notices_are_claimed_once(backend: Backend) {
    use bleedwatch_store::notices::{Claim, ClaimPolicy, NoticeCounts, NoticeInput, NoticeState};
    let Some(test) = open(backend).await else { return };
    let store = test.store.clone();
    let endpoint = record_scan(&store, &recorded_scan("192.0.2.7", Some("www.example.org"), "not-vulnerable", "2026-01-01T00:00:00Z")).await;
    let input = |recipient: &str, message_id: &str| NoticeInput {
        incident: "CVE-2014-0160".into(),
        endpoint_id: endpoint,
        recipient: recipient.into(),
        recipient_name: "Alice".into(),
        locale: "en".into(),
        message_id: message_id.into(),
    };
    let policy = ClaimPolicy::default();
    let claim = |who: &str, id: &str, policy: ClaimPolicy| {
        let store = store.clone();
        let input = input(who, id);
        async move { store.claim_notice(&input, policy, now()).await.unwrap() }
    };
    let Claim::Send(alice) = claim("alice@example.org", "<1@bw>", policy).await else { panic!("a new notice is sent") };
    assert_eq!((alice.state, alice.attempts, alice.message_id.as_str()), (NoticeState::Sending, 1, "<1@bw>"));
    // Before it is finished (a killed run), it is uncertain: not claimed again.
    let Claim::Skip(uncertain) = claim("alice@example.org", "<2@bw>", policy).await else { panic!("uncertain is not resent") };
    assert_eq!(uncertain.state.reported(), "uncertain");
    // Unless asked, and then with its first Message-ID.
    let resend = ClaimPolicy { resend_uncertain: true, ..policy };
    let Claim::Send(again) = claim("alice@example.org", "<3@bw>", resend).await else { panic!("resent when asked") };
    assert_eq!((again.id, again.attempts, again.message_id.as_str()), (alice.id, 2, "<1@bw>"));
    store.finish_notice(alice.id, NoticeState::Sent, "250 2.0.0 Ok: queued as 4ABC", now()).await.unwrap();
    assert!(matches!(claim("alice@example.org", "<4@bw>", resend).await, Claim::Skip(_)), "sent is never sent again");

    let Claim::Send(bob) = claim("bob@example.org", "<5@bw>", policy).await else { panic!() };
    store.finish_notice(bob.id, NoticeState::Pending, "451 4.3.0 try later", now()).await.unwrap();
    let Claim::Send(bob_again) = claim("bob@example.org", "<6@bw>", policy).await else { panic!("pending is sent by the next run") };
    assert_eq!((bob_again.id, bob_again.message_id.as_str()), (bob.id, "<5@bw>"));
    store.finish_notice(bob.id, NoticeState::Failed, "550 5.1.1 no such user", now()).await.unwrap();
    assert!(matches!(claim("bob@example.org", "<7@bw>", policy).await, Claim::Skip(_)));
    let Claim::Send(_) = claim("carol@example.org", "<8@bw>", policy).await else { panic!() };

    assert_eq!(store.notice_counts().await.unwrap(), NoticeCounts { sent: 1, pending: 0, uncertain: 1, failed: 1 });
    let rows = store.notices(Some("CVE-2014-0160")).await.unwrap();
    assert_eq!(rows.iter().map(|r| r.recipient.as_str()).collect::<Vec<_>>(), ["alice@example.org", "bob@example.org", "carol@example.org"]);
    assert_eq!(rows[0].smtp_reply.as_deref(), Some("250 2.0.0 Ok: queued as 4ABC"));
    assert!(rows[0].sent_at_ms.is_some() && rows[1].sent_at_ms.is_none());
    assert!(store.notices(Some("other")).await.unwrap().is_empty());
    assert!(store.finish_notice(9999, NoticeState::Sent, "250", now()).await.is_err());
}
