//! The report end to end: an inventory in a SQLite file with a realistic response history (scan
//! results shaped like the scanner's JSON lines, an asset list, a revocation check), gathered,
//! rendered, and opened in headless Chromium (Debian's `chromium`, see
//! scripts/test-packages/report.txt). The browser must render the charts, show a hostile
//! certificate subject as text without running it, and load nothing; the CSV must keep a hostile
//! owner from becoming a formula.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bleedwatch_report::{gather, render_csv, render_html, render_json, ReportData};
use bleedwatch_store::assess::State;
use bleedwatch_store::{parse_asset_csv, RevocationInput, Store};
use serde_json::{json, Value};

/// The report's moment: 2026-12-01T00:00:00Z.
const NOW_MS: i64 = 1_796_083_200_000;
const DAY_MS: i64 = 24 * 3600 * 1000;
const HOSTILE_SUBJECT: &str = "CN=<script>document.title='pwned'</script>";
const HOSTILE_SAN: &str = "\"><img src=x onerror=\"document.title='pwned-img'\">";
const HOSTILE_OWNER: &str = "=HYPERLINK(\"http://x\")";
const BANNER: &str = "220 relay.mail.example.test ESMTP <b onmouseover=\"document.title='pwned-banner'\">Postfix</b>";
const SHOP: &str = "192.0.2.10";
const BILLING: &str = "192.0.2.11";
const REGRESSED: &str = "192.0.2.12";
const MAIL: &str = "198.51.100.25";
const WILDCARD: &str = "198.51.100.26";
const VPN: &str = "203.0.113.5";
const UNOWNED: &str = "203.0.113.6";

/// A 64-digit hex "hash" unique to `name` (the report shows them, nothing checks them).
fn hash(name: &str) -> String {
    let mut value: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes() {
        value = (value ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3);
    }
    format!("{value:016x}").repeat(4)
}

/// A certificate summary as the scanner writes it.
fn certificate(name: &str, key: &str, subject: &str, sans: &[&str], not_after_unix: i64) -> Value {
    json!({
        "subject": subject, "issuer": "CN=Example Issuing CA 2026, O=Example Trust", "serial": format!("{:x}", not_after_unix ^ 0x5eed),
        "sans": sans, "not_before": "2026-01-01T00:00:00Z", "not_after": "", "not_before_unix": 1_767_225_600_i64,
        "not_after_unix": not_after_unix, "spki_sha256": hash(key), "cert_sha256": hash(name), "key_type": "rsa",
        "key_bits": 2048, "signature_algorithm": "sha256WithRSAEncryption", "self_signed": false,
        "crl_urls": ["http://crl.example.test/issuing.crl"], "ocsp_urls": ["http://ocsp.example.test/"], "ca_issuer_urls": []
    })
}

/// One endpoint's result, shaped like the probe's `EndpointResult` JSON line.
fn result(address: &str, port: u16, sni: Option<&str>, day: i64, verdict: &str, leaf: Option<Value>) -> Value {
    let (status, heartbleed) = match verdict {
        "timeout" => ("connection-timeout", "inconclusive"),
        other => ("success", other),
    };
    let started = NOW_MS - day * DAY_MS + 3_600_000;
    json!({
        "address": address, "port": port, "transport": "tcp", "host": sni, "service": "tls", "sni": sni,
        "status": status, "heartbleed": heartbleed,
        "reason": if heartbleed == "vulnerable" { Value::Null } else { json!("honest heartbeat answered, unpadded test heartbeat dropped") },
        "versions": {"ssl3": "not-supported", "tls1.0": heartbleed, "tls1.1": heartbleed, "tls1.2": heartbleed},
        "certificate": leaf.clone(), "chain": leaf.map(|l| vec![l]).unwrap_or_default(),
        "details": [{"offered": "tls1.2", "negotiated": "tls1.2", "cipher": "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                     "heartbeat_extension": "peer-allowed-to-send", "verdict": heartbleed, "reason": null, "sni": sni.is_some(), "log": [],
                     "evidence": match heartbleed {
                         "vulnerable" => json!({"kind": "test-heartbeat-echoed"}),
                         "not-vulnerable" => json!({"kind": "honest-heartbeat-echoed"}),
                         _ => json!({"kind": "inconclusive", "why": {"kind": "refused"}}),
                     }}],
        "started_at": bleedwatch_store::views::rfc3339_ms(started), "duration_ms": 41
    })
}

/// The mail relay speaks SMTP with STARTTLS and greets with a banner carrying markup.
fn smtp(mut result: Value) -> Value {
    result["service"] = json!("smtp");
    result["banner"] = json!(BANNER);
    result
}

async fn record_run(store: &Store, results: &[Value]) {
    let run = store.start_run("scan", &["scan".into(), "-iL".into(), "targets.txt".into()]).await.unwrap();
    for result in results {
        store.record(run, &serde_json::from_value(result.clone()).unwrap(), None).await.unwrap();
    }
    store.finish_run(run, "finished").await.unwrap();
}

/// A month of response: the shop re-keys, billing stays vulnerable, mail is fully remediated, a
/// host sharing mail's wildcard key must re-key too, one endpoint regresses, the VPN never answers.
async fn build_inventory(path: &Path) -> Store {
    let store = Store::open(&path.display().to_string()).await.unwrap();
    let assets = format!(
        "host,owner,criticality,internet-facing,notes\n\
         {SHOP},Web Platform,high,yes,Public shop and checkout\n\
         {BILLING},\"=HYPERLINK(\"\"http://x\"\")\",high,no,\"{}\"\n\
         {REGRESSED},Web Platform,medium,yes,Legacy API\n\
         198.51.100.0/24,Messaging,high,yes,Mail relays\n\
         {VPN},Remote Access,critical,yes,\n",
        HOSTILE_SAN.replace('"', "\"\"")
    );
    let assets = parse_asset_csv(assets.as_bytes(), "assets.csv").unwrap();
    assert_eq!(assets[1].owner, HOSTILE_OWNER);
    store.import_assets(&assets, "assets.csv").await.unwrap();

    let valid_until = 1_831_507_200; // 2028-01-15
    let shop_old = certificate("shop-1", "shop-key-1", HOSTILE_SUBJECT, &["shop.example.test", HOSTILE_SAN], valid_until);
    let shop_new = certificate("shop-2", "shop-key-2", "CN=shop.example.test", &["shop.example.test"], valid_until);
    let billing = certificate(
        "billing-1",
        "billing-key",
        "CN=billing.internal.example.test",
        &["billing.internal.example.test"],
        1_803_859_200,
    );
    let mail_old = certificate("mail-1", "mail-key-1", "CN=*.mail.example.test", &["*.mail.example.test"], valid_until);
    let mail_new = certificate("mail-2", "mail-key-2", "CN=*.mail.example.test", &["*.mail.example.test"], valid_until);
    let api_old = certificate("api-1", "api-key-1", "CN=api.example.test", &["api.example.test"], valid_until);
    let api_new = certificate("api-2", "api-key-2", "CN=api.example.test", &["api.example.test"], valid_until);
    let other = certificate("status-1", "status-key", "CN=status.example.test", &["status.example.test"], valid_until);

    let shop = Some("shop.example.test");
    record_run(
        &store,
        &[
            result(SHOP, 443, shop, 30, "vulnerable", Some(shop_old.clone())),
            result(BILLING, 443, None, 30, "vulnerable", Some(billing.clone())),
            result(REGRESSED, 443, None, 30, "vulnerable", Some(api_old.clone())),
            smtp(result(MAIL, 465, None, 30, "vulnerable", Some(mail_old.clone()))),
            result(WILDCARD, 443, None, 30, "not-vulnerable", Some(mail_old.clone())),
            result(VPN, 443, None, 30, "timeout", None),
            result(UNOWNED, 8443, None, 30, "not-vulnerable", Some(other.clone())),
        ],
    )
    .await;
    record_run(
        &store,
        &[
            result(SHOP, 443, shop, 20, "vulnerable", Some(shop_old.clone())),
            result(BILLING, 443, None, 20, "vulnerable", Some(billing.clone())),
            result(REGRESSED, 443, None, 20, "not-vulnerable", Some(api_new.clone())),
            smtp(result(MAIL, 465, None, 20, "not-vulnerable", Some(mail_old.clone()))),
        ],
    )
    .await;
    record_run(
        &store,
        &[
            result(SHOP, 443, shop, 10, "not-vulnerable", Some(shop_old)),
            smtp(result(MAIL, 465, None, 10, "not-vulnerable", Some(mail_new.clone()))),
            result(WILDCARD, 443, None, 10, "not-vulnerable", Some(mail_old)),
        ],
    )
    .await;
    let mail_old_hash = hash("mail-1");
    store
        .record_revocation(&RevocationInput {
            cert_sha256: mail_old_hash,
            method: "ocsp".into(),
            source: "http://ocsp.example.test/".into(),
            result: "revoked".into(),
            revoked_at_unix: Some(1_795_219_200),
            reason: Some("keyCompromise".into()),
            unknown_reason: None,
            detail: String::new(),
            checked_at_ms: NOW_MS - 5 * DAY_MS,
        })
        .await
        .unwrap();
    record_run(
        &store,
        &[
            result(SHOP, 443, shop, 2, "not-vulnerable", Some(shop_new)),
            result(BILLING, 443, None, 2, "vulnerable", Some(billing)),
            result(REGRESSED, 443, None, 2, "vulnerable", Some(api_new)),
            smtp(result(MAIL, 465, None, 2, "not-vulnerable", Some(mail_new))),
            result(VPN, 443, None, 2, "timeout", None),
            result(UNOWNED, 8443, None, 2, "not-vulnerable", Some(other)),
        ],
    )
    .await;
    store
}

fn state_of(data: &ReportData, address: &str) -> State {
    data.endpoints.iter().find(|e| e.view.address == address).unwrap().view.state
}

// ---- headless Chromium ----

fn chromium() -> PathBuf {
    for candidate in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if Path::new(candidate).exists() {
            return candidate.into();
        }
    }
    panic!("Debian's chromium is needed (bash scripts/install-test-deps.sh installs it, see scripts/test-packages/report.txt)");
}

/// Runs headless Chromium on `page` with a fresh profile, no network beyond the file, and a time
/// limit; returns what it wrote on standard output.
fn run_chromium(page: &Path, scratch: &Path, extra: &[String]) -> String {
    const LIMIT: Duration = Duration::from_secs(120);
    let profile = tempfile::Builder::new().prefix("profile").tempdir_in(scratch).unwrap();
    let stdout_path = profile.path().join("stdout.txt");
    let stderr_path = profile.path().join("stderr.txt");
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-default-apps",
            // Any name lookup fails: a page that tried to load something from the web could not.
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > LIMIT {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("chromium did not finish within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = std::fs::read_to_string(&stdout_path).unwrap();
    assert!(status.success(), "chromium failed ({status}): {}", std::fs::read_to_string(&stderr_path).unwrap_or_default());
    stdout
}

fn dump_dom(page: &Path, scratch: &Path) -> String {
    let dom = run_chromium(page, scratch, &["--dump-dom".to_owned()]);
    assert!(dom.contains("</html>"), "no DOM dumped: {dom}");
    dom
}

fn title_of(dom: &str) -> &str {
    dom.split("<title>").nth(1).and_then(|rest| rest.split("</title>").next()).unwrap_or_default()
}

/// Every tag (a literal `<` in escaped HTML always starts one) with its quoted values removed.
fn tags_without_values(html: &str) -> Vec<String> {
    html.split('<')
        .skip(1)
        .map(|rest| rest.split('>').next().unwrap_or(rest))
        .map(|tag| tag.split('"').step_by(2).collect::<Vec<_>>().join(" ").to_ascii_lowercase())
        .collect()
}

fn assert_loads_nothing(html: &str) {
    let tags = tags_without_values(html);
    assert!(tags.len() > 200, "{} tags", tags.len());
    for tag in &tags {
        let name = tag.split_whitespace().next().unwrap_or_default();
        for forbidden in
            ["script", "img", "link", "iframe", "object", "embed", "base", "image", "use", "audio", "video", "source"]
        {
            assert_ne!(name, forbidden, "<{tag}>");
        }
        for attribute in [" src=", " href=", " srcset=", " action=", " xlink:href=", " on"] {
            assert!(!format!(" {tag}").contains(attribute), "{attribute} in <{tag}>");
        }
    }
    assert!(!html.contains("url(") && !html.contains("@import"), "CSS loads something");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_renders_in_chromium_safely() {
    let scratch = tempfile::tempdir().unwrap();
    let store = build_inventory(&scratch.path().join("inventory.db")).await;
    let data = gather(&store, NOW_MS).await.unwrap();
    store.close().await;

    // The history became the expected response picture.
    assert_eq!(state_of(&data, SHOP), State::Rekeyed);
    assert_eq!(state_of(&data, BILLING), State::Vulnerable);
    assert_eq!(state_of(&data, REGRESSED), State::Vulnerable);
    assert_eq!(state_of(&data, MAIL), State::NotifyReady);
    assert_eq!(state_of(&data, WILDCARD), State::Revoked);
    assert_eq!(state_of(&data, VPN), State::Unknown);
    assert_eq!(state_of(&data, UNOWNED), State::NeverVulnerable);
    let s = &data.summary;
    assert_eq!((s.endpoints, s.internet_facing, s.affected, s.affected_internet_facing), (7, 5, 5, 4));
    assert_eq!((s.vulnerable, s.vulnerable_internet_facing, s.patched, s.rekeyed, s.revoked, s.notify_ready), (2, 1, 3, 2, 2, 1));
    assert_eq!((s.unknown, s.never_vulnerable, s.open), (1, 1, 4));
    // shop-1 (hostile subject), billing-1, api-1 and api-2 (served while vulnerable again); mail-1 is revoked.
    assert_eq!(s.exposed_certificates_valid, 4);
    assert!(data.alerts.iter().any(|a| a.kind == "regressed"), "{:?}", data.alerts);
    assert_eq!(data.scans.runs, 4);
    assert_eq!(data.scans.assets, 5);
    // Internet-facing open items come first.
    let first: Vec<&str> = data.endpoints.iter().take(3).map(|e| e.view.address.as_str()).collect();
    assert_eq!(first, [REGRESSED, WILDCARD, SHOP]);
    // Timeline: one point per run, one for the revocation check, one for now.
    assert_eq!(data.timeline.len(), 6);
    assert_eq!(data.timeline.first().unwrap().count(State::Vulnerable), 4);
    assert_eq!(data.timeline.last().unwrap().count(State::NotifyReady), 1);
    assert_eq!(data.timeline.last().unwrap().at_ms, NOW_MS);

    let html = render_html(&data);
    assert_loads_nothing(&html);
    let page = scratch.path().join("report.html");
    std::fs::write(&page, &html).unwrap();

    // 1. The report as written: rendered, charts present, the hostile subject shown as text.
    let dom = dump_dom(&page, scratch.path());
    let expected_title = "Heartbleed response report – 2026-12-01";
    assert_eq!(title_of(&dom), expected_title, "a script changed the title");
    for id in ["chart-funnel", "chart-owners", "chart-timeline"] {
        let svg = dom.split(&format!("<svg id=\"{id}\"")).nth(1).unwrap_or_else(|| panic!("no {id} in the DOM"));
        let svg = svg.split("</svg>").next().unwrap();
        assert!(svg.contains("<rect") || svg.contains("<polygon"), "{id} draws nothing: {svg}");
    }
    assert!(dom.contains("<polygon"), "the timeline has areas");
    assert!(dom.contains("CN=&lt;script&gt;document.title='pwned'&lt;/script&gt;"), "the subject is not shown as text");
    assert!(dom.contains("=HYPERLINK(\"http://x\")"), "the owner is not shown");
    assert!(
        dom.contains("ESMTP &lt;b onmouseover=\"document.title='pwned-banner'\"&gt;Postfix&lt;/b&gt;"),
        "the banner is not shown as text"
    );
    assert!(!dom.contains("<script") && !dom.contains("<img") && !dom.contains("<b "), "markup from the network became elements");
    assert_loads_nothing(&dom);

    // 2. Escaping alone holds: without the Content-Security-Policy, still nothing runs.
    let csp_start = html.find("<meta http-equiv=\"Content-Security-Policy\"").unwrap();
    let csp_end = csp_start + html[csp_start..].find('>').unwrap() + 1;
    let without_csp = format!("{}{}", &html[..csp_start], &html[csp_end..]);
    let page_without_csp = scratch.path().join("report-without-csp.html");
    std::fs::write(&page_without_csp, &without_csp).unwrap();
    let dom = dump_dom(&page_without_csp, scratch.path());
    assert_eq!(title_of(&dom), expected_title);
    assert!(!dom.contains("<script") && !dom.contains("<img"));

    // 3. Control: the same page with the subject unescaped does run the script, so the checks above
    //    would have caught an escaping failure.
    let escaped = "CN=&#60;script&#62;document.title=&#39;pwned&#39;&#60;/script&#62;";
    assert!(without_csp.contains(escaped));
    let injected = scratch.path().join("report-injected.html");
    std::fs::write(&injected, without_csp.replace(escaped, HOSTILE_SUBJECT)).unwrap();
    assert_eq!(title_of(&dump_dom(&injected, scratch.path())), "pwned", "the harness cannot see scripts run");

    // A screenshot and a print: the page paints and prints.
    let screenshot = scratch.path().join("report.png");
    run_chromium(
        &page,
        scratch.path(),
        &[format!("--screenshot={}", screenshot.display()), "--window-size=1280,1900".to_owned()],
    );
    let png = std::fs::read(&screenshot).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 50_000, "{} bytes", png.len());
    let pdf = scratch.path().join("report.pdf");
    run_chromium(&page, scratch.path(), &[format!("--print-to-pdf={}", pdf.display()), "--no-pdf-header-footer".to_owned()]);
    let pdf_bytes = std::fs::read(&pdf).unwrap();
    assert!(pdf_bytes.starts_with(b"%PDF") && pdf_bytes.len() > 10_000, "{} bytes", pdf_bytes.len());

    // Exports: CSV cells never start a formula; JSON carries the same data.
    let csv_text = render_csv(&data).unwrap();
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let owner_column = reader.headers().unwrap().iter().position(|h| h == "owner").unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 7);
    assert!(rows.iter().any(|r| r.get(owner_column) == Some("'=HYPERLINK(\"http://x\")")), "{csv_text}");
    for cell in rows.iter().flat_map(|r| r.iter()) {
        assert!(!cell.starts_with(['=', '+', '-', '@', '\t', '\r']), "{cell:?}");
    }
    let json: Value = serde_json::from_str(&render_json(&data).unwrap()).unwrap();
    assert_eq!(json["summary"]["vulnerable"], 2);
    assert_eq!(json["endpoints"].as_array().unwrap().len(), 7);
    assert!(json["exposed_certificates"].as_array().unwrap().iter().any(|c| c["subject"] == HOSTILE_SUBJECT));

    // To look at the output: BLEEDWATCH_REPORT_KEEP=DIR keeps the page, screenshot, PDF and exports.
    if let Some(keep) = std::env::var_os("BLEEDWATCH_REPORT_KEEP") {
        let keep = PathBuf::from(keep);
        std::fs::create_dir_all(&keep).unwrap();
        for file in ["report.html", "report.png", "report.pdf"] {
            std::fs::copy(scratch.path().join(file), keep.join(file)).unwrap();
        }
        std::fs::write(keep.join("report.csv"), csv_text).unwrap();
        std::fs::write(keep.join("report.json"), render_json(&data).unwrap()).unwrap();
    }
}
