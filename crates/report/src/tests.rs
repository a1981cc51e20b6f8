//! Assembly and rendering from hand-made inventory data (the store-backed path and the browser are
//! in `tests/report.rs`).
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};

use bleedwatch_store::assess::{self, EndpointHistory, Leaf, Observation, RevocationIndex, Verdict};
use bleedwatch_store::{AssetRow, AttackEvidence, DiskFinding, EndpointRow, ProductEndpoint};

use super::*;

const DAY: i64 = 24 * 3600 * 1000;
const NOW: i64 = 1_795_891_154_250;
const HOSTILE_SUBJECT: &str = "CN=<script>document.title='pwned'</script>";
const HOSTILE_OWNER: &str = "=HYPERLINK(\"http://x\")";
const HOSTILE_NOTES: &str = "\"><img src=x onerror=alert(1)>";

fn leaf(key: &str) -> Leaf {
    Leaf { cert_sha256: format!("cert-{key}"), spki_sha256: format!("key-{key}"), not_after_unix: NOW / 1000 + 400 * 86_400 }
}

fn observation(id: i64, days_ago: i64, verdict: Verdict, key: &str) -> Observation {
    Observation { id, at_ms: NOW - days_ago * DAY, verdict, vulnerable_versions: Default::default(), leaf: Some(leaf(key)) }
}

fn endpoint(id: i64, address: &str, owner: &str, internet_facing: bool, notes: &str) -> EndpointRow {
    EndpointRow {
        id,
        address: address.into(),
        port: 443,
        transport: "tcp".into(),
        sni: String::new(),
        host: None,
        service: "tls".into(),
        first_seen_ms: NOW - 30 * DAY,
        last_seen_ms: NOW - DAY,
        asset: Some(AssetRow {
            id,
            host: address.into(),
            owner: owner.into(),
            criticality: "high".into(),
            internet_facing,
            notes: notes.into(),
            source: "test".into(),
            updated_at_ms: NOW,
        }),
    }
}

/// Four endpoints: one still vulnerable (internet-facing), one patched on its old key, one fully
/// remediated, one never affected.
fn assessed() -> Vec<EndpointAssessment> {
    let endpoints = vec![
        endpoint(1, "192.0.2.13", "ops", false, ""),
        endpoint(2, "192.0.2.11", HOSTILE_OWNER, false, HOSTILE_NOTES),
        endpoint(3, "192.0.2.12", "web", true, ""),
        endpoint(4, "192.0.2.10", "web", true, ""),
    ];
    let histories = [
        vec![observation(1, 20, Verdict::NotVulnerable, "d")],
        vec![observation(2, 20, Verdict::Vulnerable, "b"), observation(3, 10, Verdict::NotVulnerable, "b")],
        vec![
            observation(4, 20, Verdict::Vulnerable, "c"),
            observation(5, 10, Verdict::NotVulnerable, "c"),
            observation(6, 5, Verdict::NotVulnerable, "c2"),
        ],
        vec![observation(7, 20, Verdict::Vulnerable, "a"), observation(8, 1, Verdict::Vulnerable, "a")],
    ];
    let labels: Vec<String> = endpoints.iter().map(EndpointRow::label).collect();
    let inputs: Vec<EndpointHistory<'_>> =
        labels.iter().zip(&histories).map(|(label, observations)| EndpointHistory { label, observations, pins: &[] }).collect();
    let revoked = assess::RevocationFact {
        cert_sha256: "cert-c".into(),
        status: assess::RevocationStatus::Revoked,
        checked_at_ms: NOW - 2 * DAY,
    };
    let assessments = assess::assess_all(&inputs, &RevocationIndex::build([&revoked]), NOW);
    endpoints
        .into_iter()
        .zip(assessments)
        .map(|(endpoint, assessment)| {
            // The vulnerable endpoint was attacked (a capture finding) inside its exposure window.
            let attack_times: &[(i64, bool)] = if endpoint.id == 4 { &[(NOW - 3 * DAY, false)] } else { &[] };
            let attacks = AttackEvidence::build(attack_times, &assessment.exposure);
            EndpointAssessment { endpoint, assessment, latest: None, attacks }
        })
        .collect()
}

fn certificate(key: &str, subject: &str, revoked: bool) -> CertificateView {
    CertificateView {
        cert_sha256: format!("cert-{key}"),
        spki_sha256: format!("key-{key}"),
        subject: subject.into(),
        issuer: "CN=Test CA & Co <ca@example.test>".into(),
        serial: "01".into(),
        sans: vec!["www.example.test".into(), "<b>bold</b>".into()],
        not_after: String::new(),
        not_after_unix: NOW / 1000 + 400 * 86_400,
        exposed: true,
        revoked,
        revocation: BTreeMap::from([("ocsp".to_owned(), if revoked { "revoked" } else { "good" }.to_owned())]),
        last_checked: None,
        endpoints: vec!["192.0.2.10:443/tcp".into()],
        crl_urls: vec!["http://crl.example.test/ca.crl".into()],
        ocsp_urls: Vec::new(),
    }
}

fn alert() -> AlertRow {
    AlertRow {
        id: 1,
        endpoint_id: 4,
        endpoint: "192.0.2.10:443/tcp".into(),
        observation_id: 8,
        kind: "regressed".into(),
        spki_sha256: Some("key-a".into()),
        detail: "vulnerable again <after> fix".into(),
        raised_at_ms: NOW - DAY,
        recorded_at_ms: NOW - DAY,
        acknowledged_at_ms: None,
    }
}

fn data() -> ReportData {
    let assessed = assessed();
    let certificates =
        vec![certificate("a", HOSTILE_SUBJECT, false), certificate("c", "CN=done", true), certificate("b", "CN=b", false)];
    let coverage =
        ScanCoverage { runs: 3, observations: 8, first_scan_ms: Some(NOW - 20 * DAY), last_scan_ms: Some(NOW - DAY), assets: 4 };
    let banners = HashMap::from([(1, "220 mail <script>x</script> ESMTP".to_owned())]);
    assemble(NOW, &assessed, certificates, vec![alert()], coverage, Vec::new(), &banners)
}

#[test]
fn assembles_the_summary_internet_facing_first() {
    let data = data();
    let states: Vec<(&str, State)> = data.endpoints.iter().map(|e| (e.view.address.as_str(), e.view.state)).collect();
    assert_eq!(
        states,
        [
            ("192.0.2.10", State::Vulnerable),
            ("192.0.2.11", State::Fixed),
            ("192.0.2.12", State::NotifyReady),
            ("192.0.2.13", State::NeverVulnerable)
        ]
    );
    let s = &data.summary;
    assert_eq!((s.endpoints, s.internet_facing, s.affected, s.affected_internet_facing), (4, 2, 3, 2));
    assert_eq!((s.vulnerable, s.vulnerable_internet_facing, s.patched, s.rekeyed, s.revoked, s.notify_ready), (1, 1, 2, 1, 1, 1));
    assert_eq!((s.open, s.never_vulnerable, s.unknown, s.open_alerts, s.exposed_certificates_valid), (2, 1, 0, 1, 2));
    let funnel: Vec<(FunnelStep, u64, u64)> = data.funnel.iter().map(|s| (s.step, s.total, s.internet_facing)).collect();
    assert_eq!(
        funnel,
        [
            (FunnelStep::Exposed, 3, 2),
            (FunnelStep::Patched, 2, 1),
            (FunnelStep::Rekeyed, 1, 1),
            (FunnelStep::Revoked, 1, 1),
            (FunnelStep::NotifyReady, 1, 1)
        ]
    );
    let owners: Vec<(&str, u64, u64, u64)> =
        data.owners.iter().map(|o| (o.owner.as_str(), o.open(), o.internet_facing_open, o.open_alerts)).collect();
    assert_eq!(owners, [("web", 1, 1, 1), (HOSTILE_OWNER, 1, 0, 0)]);
    assert_eq!((s.attacked_while_vulnerable, s.attacked_while_vulnerable_internet_facing), (1, 1));
    let priorities: Vec<Priority> = data.next_steps.iter().map(|s| s.priority).collect();
    assert_eq!(priorities[..3], [Priority::Now, Priority::Now, Priority::Now]);
    assert!(
        data.next_steps[0].title.starts_with("Treat 1 endpoint attacked while vulnerable as breached"),
        "{:?}",
        data.next_steps
    );
    assert!(data.next_steps[1].title.starts_with("Patch 1 vulnerable endpoint (1 internet-facing)"), "{:?}", data.next_steps);
    assert!(
        data.headline.ends_with("1 endpoint was attacked while vulnerable (1 internet-facing): treat them as breached."),
        "{}",
        data.headline
    );
    assert!(data.next_steps.iter().any(|s| s.title == "Revoke 2 certificates on exposed keys"), "{:?}", data.next_steps);
    assert!(data.next_steps.iter().any(|s| s.title.starts_with("Tell the users of 1 remediated endpoint")));
    assert_eq!(data.endpoints[0].exposed_for_ms, Some(20 * DAY));
    assert_eq!(data.endpoints[1].exposed_for_ms, Some(10 * DAY));
    // Not revoked first, then by validity.
    assert_eq!(data.exposed_certificates.last().map(|c| c.subject.as_str()), Some("CN=done"));
}

#[test]
fn every_network_string_is_escaped() {
    let html = render_html(&data());
    assert!(!html.contains("<script"), "a script element made it into the page");
    assert!(!html.contains("<img"), "an img element made it into the page");
    assert!(!html.contains("<b>bold"), "markup from a SAN made it into the page");
    // askama writes numeric character references.
    assert!(html.contains("CN=&#60;script&#62;document.title=&#39;pwned&#39;&#60;/script&#62;"));
    assert!(html.contains("=HYPERLINK(&#34;http://x&#34;)"));
    assert!(html.contains("&#34;&#62;&#60;img src=x onerror=alert(1)&#62;"));
    assert!(html.contains("220 mail &#60;script&#62;x&#60;/script&#62; ESMTP"));
    assert!(html.contains("CN=Test CA &#38; Co &#60;ca@example.test&#62;"));
    assert!(html.contains("vulnerable again &#60;after&#62; fix"));
    // The hostile owner is escaped in the owners chart too.
    let owners_chart = html.split("id=\"chart-owners\"").nth(1).unwrap();
    assert!(owners_chart.contains("=HYPERLINK(&#34;http://x&#34;)"), "{owners_chart}");
}

#[test]
fn the_page_is_self_contained() {
    let html = render_html(&data());
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("Content-Security-Policy\" content=\"default-src 'none'"));
    for id in ["chart-funnel", "chart-owners", "chart-timeline", "summary", "endpoints", "certificates", "alerts"] {
        assert!(html.contains(&format!("id=\"{id}\"")), "{id}");
    }
    // Every literal `<` starts a real tag (text is escaped): no tag may load or link anything.
    let tags: Vec<&str> = html.split('<').skip(1).map(|rest| rest.split('>').next().unwrap_or(rest)).collect();
    assert!(tags.len() > 100);
    for tag in &tags {
        let name = tag.split_whitespace().next().unwrap_or_default().to_ascii_lowercase();
        assert!(
            !["script", "link", "img", "iframe", "object", "embed", "base", "image", "use"].contains(&name.as_str()),
            "<{tag}>"
        );
        // Attribute names only: quoted values are text.
        let names: String = tag.split('"').step_by(2).collect::<Vec<_>>().join(" ").to_ascii_lowercase();
        for attribute in ["src=", "href=", "xlink:", "srcset=", "action=", " on"] {
            assert!(!names.contains(attribute), "{attribute} in <{tag}>");
        }
    }
    for reference in ["url(", "@import"] {
        assert!(!html.contains(reference), "{reference} in the page");
    }
    // CRL URLs are in the JSON export only.
    assert!(!html.contains("crl.example.test"));
    assert!(render_json(&data()).unwrap().contains("http://crl.example.test/ca.crl"));
}

#[test]
fn csv_neutralises_formulas_and_json_has_everything() {
    let data = data();
    let csv_text = render_csv(&data).unwrap();
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    assert_eq!(headers.iter().collect::<Vec<_>>(), ENDPOINT_CSV_HEADER);
    let owner_column = headers.iter().position(|h| h == "owner").unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 4);
    let owners: Vec<&str> = rows.iter().map(|r| r.get(owner_column).unwrap()).collect();
    assert_eq!(owners, ["web", "'=HYPERLINK(\"http://x\")", "web", "ops"]);
    for row in &rows {
        for cell in row {
            assert!(!cell.starts_with(['=', '+', '-', '@', '\t', '\r']), "{cell:?}");
        }
    }

    let json: serde_json::Value = serde_json::from_str(&render_json(&data).unwrap()).unwrap();
    assert_eq!(json["summary"]["vulnerable"], 1);
    assert_eq!(json["endpoints"][0]["state"], "vulnerable");
    assert_eq!(json["endpoints"][0]["address"], "192.0.2.10");
    assert_eq!(json["endpoints"][1]["asset_notes"], HOSTILE_NOTES);
    assert_eq!(json["funnel"][0]["step"], "exposed");
    assert_eq!(json["next_steps"][0]["priority"], "now");
    assert_eq!(json["exposed_certificates"][0]["subject"], HOSTILE_SUBJECT);
    assert_eq!(json["alerts"][0]["kind"], "regressed");
}

#[test]
fn an_empty_inventory_still_makes_a_report() {
    let data = assemble(NOW, &[], Vec::new(), Vec::new(), ScanCoverage::default(), Vec::new(), &HashMap::new());
    assert_eq!(data.summary, Summary::default());
    let html = render_html(&data);
    assert!(html.contains("no scanned endpoint yet"), "{html}");
    assert!(html.contains("No endpoint was exposed") && html.contains("No open items") && html.contains("No scan recorded yet"));
    assert!(html.contains("Nothing open"));
    assert_eq!(render_csv(&data).unwrap().lines().count(), 1);
}

fn product(asset: &str, verdict: &str) -> ProductRow {
    ProductRow {
        asset: asset.into(),
        owner: "appliances".into(),
        criticality: "high".into(),
        audited_at_ms: NOW - DAY,
        audited_at: String::new(),
        run: bleedwatch_store::RunId(9),
        complete: verdict != "unknown",
        unread: if verdict == "unknown" { vec!["fw.bin: truncated".into()] } else { vec![] },
        findings: vec![DiskFinding {
            location: vec!["vpn.img".into(), "usr/lib/libssl.so.1.0.0".into()],
            image: None,
            kind: "shared-libssl".into(),
            version: Some("1.0.1f".into()),
            heartbeats: "compiled-in".into(),
            package: None,
            verdict: verdict.into(),
            reason: "no package owns it; the version string decides".into(),
        }],
        endpoints: vec![ProductEndpoint { label: "192.0.2.10:443/tcp".into(), state: "vulnerable".into(), verdict: Some("vulnerable".into()) }],
    }
}

#[test]
fn products_on_disk_get_their_section_and_step() {
    let mut data = data();
    let now_steps = data.next_steps.iter().filter(|s| s.priority == Priority::Now).count();
    data.add_products(vec![product("<vpn> appliance", "vulnerable"), product("mail gateway", "not-affected")]);
    assert_eq!(data.next_steps[now_steps].title, "Update OpenSSL in 1 product carrying a vulnerable copy (1 copy on disk)");
    assert!(data.next_steps[now_steps].detail.contains("<vpn> appliance"));
    let html = render_html(&data);
    assert!(html.contains("vpn&#62; appliance") && !html.contains("<vpn>"), "asset names are escaped");
    assert!(html.contains("vpn.img ▸ usr/lib/libssl.so.1.0.0") && html.contains("192.0.2.10:443/tcp (vulnerable)"));
    let json: serde_json::Value = serde_json::from_str(&render_json(&data).unwrap()).unwrap();
    assert_eq!(json["products"][0]["findings"][0]["verdict"], "vulnerable");

    let mut clean = self::data();
    clean.add_products(vec![product("mail gateway", "not-affected")]);
    assert!(clean.next_steps.iter().all(|s| !s.title.contains("OpenSSL in")), "nothing vulnerable on disk, no step");
    assert!(render_html(&self::data()).contains("No disk audit yet"));
}

#[test]
fn notices_are_counted_in_the_summary_and_the_json() {
    let mut data = data();
    data.notices = bleedwatch_store::notices::NoticeCounts { sent: 1200, pending: 2, uncertain: 1, failed: 3 };
    let html = render_html(&data);
    assert!(html.contains("<code>bleedwatch notify</code>): 1,200 sent, 2 pending, 1 uncertain"), "{html}");
    assert!(html.contains("3 failed."));
    let json: serde_json::Value = serde_json::from_str(&render_json(&data).unwrap()).unwrap();
    assert_eq!(json["notices"], serde_json::json!({"sent": 1200, "pending": 2, "uncertain": 1, "failed": 3}));
}
