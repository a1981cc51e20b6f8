//! The HTML report: one self-contained file (inline CSS and SVG, no script, no external resource,
//! a Content-Security-Policy that forbids both). askama escapes every value; the only unescaped
//! insertions are the charts, which `charts` builds with the same escaping.

use askama::Template;
use bleedwatch_store::assess::State;
use bleedwatch_store::views::{CertificateView, ATTACKED_FLAG, ATTACKED_WHILE_VULNERABLE_FLAG};
use bleedwatch_store::{AlertRow, ProductRow};

use crate::charts::{self, state_color, state_label};
use crate::summary::{NextStep, OwnerOpenItems, Summary};
use crate::text::{display_date_seconds, display_duration, display_time, owner_name, plural, thousands};
use crate::{ReportData, ReportEndpoint};

/// What each flag means, for tooltips and the legend.
fn flag_meaning(name: &str) -> &'static str {
    match name {
        "reissued-same-key" => "a certificate was reissued on the exposed key: the stolen key stays usable",
        "exposed-key-shared" => "the exposed key is also used on other endpoints: re-key all of them",
        "exposed-cert-valid-until" => "a certificate on the exposed key is not revoked and stays valid until this date",
        "exposed-cert-expired" => "a certificate on the exposed key expired on this date: no client accepts it, so it counts as retired",
        "exposed-key-returned" => "the endpoint was re-keyed but serves an exposed key again",
        "unexpected-certificate" => "the latest key is neither the expected one nor exposed: possible interception",
        "exposed-key-unknown" => "vulnerable while no certificate was captured: which key leaked is unknown",
        ATTACKED_WHILE_VULNERABLE_FLAG => {
            "a Heartbleed attack in a packet capture hit it while vulnerable: assume memory was read"
        }
        ATTACKED_FLAG => "Heartbleed attempts against it were seen in packet captures (not while it was known vulnerable)",
        _ => "",
    }
}

struct Tag {
    text: String,
    meaning: &'static str,
    urgent: bool,
}

/// Flag words as tags: times shortened to the day, repeats counted (`exposed-cert-valid-until=2028-01-15 ×2`).
fn flag_tags(words: &[String]) -> Vec<Tag> {
    let mut tags: Vec<(String, usize, Tag)> = Vec::new();
    for word in words {
        // A word is a flag name, optionally followed by `=value` or `(count)`.
        let name = word.split(['=', '(']).next().unwrap_or_default();
        let text = match word.split_once('=') {
            Some((name, value)) if value.get(10..11) == Some("T") => format!("{name}={}", value.get(..10).unwrap_or(value)),
            _ => word.clone(),
        };
        match tags.iter_mut().find(|(seen, _, _)| *seen == text) {
            Some((_, count, _)) => *count += 1,
            None => tags.push((
                text.clone(),
                1,
                Tag { meaning: flag_meaning(name), urgent: name == ATTACKED_WHILE_VULNERABLE_FLAG, text },
            )),
        }
    }
    tags.into_iter()
        .map(|(text, count, tag)| if count > 1 { Tag { text: format!("{text} ×{count}"), ..tag } } else { tag })
        .collect()
}

struct Key {
    spki: String,
    exposed: bool,
}

struct EndpointRowHtml {
    label: String,
    host: String,
    service: String,
    banner: String,
    owner: String,
    asset: String,
    criticality: String,
    notes: String,
    internet_facing: bool,
    state_class: &'static str,
    state_label: &'static str,
    window: Vec<String>,
    window_detail: String,
    keys: Vec<Key>,
    flags: Vec<Tag>,
    last_seen: String,
    last_result: String,
}

impl EndpointRowHtml {
    fn new(endpoint: &ReportEndpoint) -> EndpointRowHtml {
        let view = &endpoint.view;
        let exposure = &view.exposure;
        let short_time = |text: &Option<String>| text.as_deref().map(|t| t.get(..10).unwrap_or(t).to_owned());
        // Pieces of the window that must not wrap inside (dates), shown joined by spaces.
        let (window, window_detail): (Vec<String>, String) =
            match (short_time(&exposure.first_vulnerable), short_time(&exposure.first_fixed)) {
                (Some(from), Some(to)) => {
                    (vec![from, "→".to_owned(), to], endpoint.exposed_for_ms.map(display_duration).unwrap_or_default())
                }
                (Some(from), None) => (
                    vec!["since".to_owned(), from],
                    endpoint.exposed_for_ms.map(|d| format!("still open, {}", display_duration(d))).unwrap_or_default(),
                ),
                (None, _) if !view.exposed_spkis.is_empty() => {
                    (["key", "leaked", "elsewhere"].map(str::to_owned).to_vec(), String::new())
                }
                (None, _) => (vec!["–".to_owned()], String::new()),
            };
        EndpointRowHtml {
            label: view.label(),
            host: view.host.clone().filter(|h| Some(h) != view.sni.as_ref()).unwrap_or_default(),
            service: view.service.clone(),
            banner: endpoint.banner.clone().unwrap_or_default(),
            owner: owner_name(&view.owner).to_owned(),
            asset: view.asset.clone().unwrap_or_default(),
            criticality: view.criticality.clone(),
            notes: endpoint.asset_notes.clone(),
            internet_facing: view.internet_facing,
            state_class: view.state.as_str(),
            state_label: state_label(view.state),
            window,
            window_detail,
            keys: view
                .spkis_seen
                .iter()
                .map(|spki| Key { spki: spki.clone(), exposed: view.exposed_spkis.contains(spki) })
                .collect(),
            flags: flag_tags(&view.flag_words()),
            last_seen: view.last_observed.as_deref().map(|t| t.get(..10).unwrap_or(t).to_owned()).unwrap_or_default(),
            last_result: match (&view.last_status, &view.last_verdict, &view.last_evidence) {
                (Some(status), _, _) if status != "success" => status.clone(),
                // The verdict with what it stands on, e.g. "not-vulnerable (honest-heartbeat-echoed)".
                (_, Some(verdict), Some(evidence)) => format!("{verdict} ({})", evidence.kind()),
                (_, Some(verdict), None) => verdict.clone(),
                _ => String::new(),
            },
        }
    }
}

struct CertificateRowHtml {
    subject: String,
    sans: String,
    issuer: String,
    serial: String,
    spki: String,
    cert: String,
    valid_until: String,
    days_left: String,
    revoked: bool,
    revocation: String,
    endpoints: Vec<String>,
}

impl CertificateRowHtml {
    fn new(certificate: &CertificateView, now_ms: i64) -> CertificateRowHtml {
        const MAX_SANS: usize = 8;
        let mut sans: Vec<String> = certificate.sans.iter().take(MAX_SANS).cloned().collect();
        if certificate.sans.len() > MAX_SANS {
            sans.push(format!("and {} more", certificate.sans.len() - MAX_SANS));
        }
        let left_ms = certificate.not_after_unix.saturating_mul(1000).saturating_sub(now_ms);
        let checks: Vec<String> =
            certificate.revocation.iter().map(|(method, result)| format!("{}: {result}", method.to_uppercase())).collect();
        let checked =
            certificate.last_checked.as_deref().map(|t| format!(" (checked {})", t.get(..10).unwrap_or(t))).unwrap_or_default();
        CertificateRowHtml {
            subject: certificate.subject.clone(),
            sans: sans.join(", "),
            issuer: certificate.issuer.clone(),
            serial: certificate.serial.clone(),
            spki: certificate.spki_sha256.clone(),
            cert: certificate.cert_sha256.clone(),
            valid_until: display_date_seconds(certificate.not_after_unix),
            days_left: format!("{} left", display_duration(left_ms)),
            revoked: certificate.revoked,
            revocation: if checks.is_empty() { "not checked".to_owned() } else { format!("{}{checked}", checks.join(", ")) },
            endpoints: certificate.endpoints.clone(),
        }
    }
}

struct AlertRowHtml {
    raised: String,
    kind: String,
    endpoint: String,
    detail: String,
    spki: String,
    open: bool,
    acknowledged: String,
}

impl AlertRowHtml {
    fn new(alert: &AlertRow) -> AlertRowHtml {
        AlertRowHtml {
            raised: display_time(alert.raised_at_ms),
            kind: alert.kind.clone(),
            endpoint: alert.endpoint.clone(),
            detail: alert.detail.clone(),
            spki: alert.spki_sha256.clone().unwrap_or_default(),
            open: alert.acknowledged_at_ms.is_none(),
            acknowledged: alert.acknowledged_at_ms.map(display_time).unwrap_or_default(),
        }
    }
}

struct ProductRowHtml {
    asset: String,
    owner: String,
    audited: String,
    complete: bool,
    unread: String,
    vulnerable: bool,
    verdict: String,
    copies: Vec<CopyHtml>,
    endpoints: Vec<String>,
}

struct CopyHtml {
    location: String,
    what: String,
    verdict: String,
    vulnerable: bool,
    reason: String,
}

impl ProductRowHtml {
    fn new(product: &ProductRow) -> ProductRowHtml {
        ProductRowHtml {
            asset: product.asset.clone(),
            owner: [product.owner.as_str(), product.criticality.as_str()].iter().filter(|s| !s.is_empty()).copied().collect::<Vec<_>>().join(" · "),
            audited: display_time(product.audited_at_ms),
            complete: product.complete,
            unread: product.unread.join("; "),
            vulnerable: product.carries_vulnerable_openssl(),
            verdict: product.worst_verdict().unwrap_or("no OpenSSL found").to_owned(),
            copies: product
                .findings
                .iter()
                .map(|f| CopyHtml {
                    location: f.location.join(" ▸ "),
                    what: [
                        Some(f.kind.clone()),
                        f.version.as_ref().map(|v| format!("OpenSSL {v}")),
                        Some(format!("heartbeats {}", f.heartbeats)),
                        f.package.as_ref().map(|p| {
                            let advisory = p.advisory.as_ref().map(|a| format!(", {a}")).unwrap_or_default();
                            format!("package {} {}{advisory}", p.name, p.version)
                        }),
                    ]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" · "),
                    verdict: f.verdict.clone(),
                    vulnerable: f.verdict == "vulnerable",
                    reason: f.reason.clone(),
                })
                .collect(),
            endpoints: product.endpoints.iter().map(|e| format!("{} ({})", e.label, e.state)).collect(),
        }
    }
}

struct Tile {
    label: &'static str,
    value: String,
    detail: String,
    class: &'static str,
}

struct StateStyle {
    class: &'static str,
    color: &'static str,
}

struct StateLegend {
    class: &'static str,
    label: &'static str,
    meaning: &'static str,
}

#[derive(Template)]
#[template(path = "report.html", escape = "html")]
struct ReportHtml<'a> {
    title: String,
    generated: String,
    scope: String,
    scans: String,
    headline: &'a str,
    tiles: Vec<Tile>,
    notices: String,
    next_steps: &'a [NextStep],
    funnel_svg: String,
    owners_svg: String,
    timeline_svg: String,
    timeline_caption: String,
    internet_open: Vec<EndpointRowHtml>,
    internet_open_more: u64,
    endpoints: Vec<EndpointRowHtml>,
    certificates: Vec<CertificateRowHtml>,
    certificates_expired: u64,
    alerts: Vec<AlertRowHtml>,
    products: Vec<ProductRowHtml>,
    owners: &'a [OwnerOpenItems],
    state_styles: Vec<StateStyle>,
    state_legend: Vec<StateLegend>,
    flag_legend: Vec<(&'static str, &'static str)>,
}

/// Internet-facing open items listed in the summary; the rest are in the details.
const SUMMARY_INTERNET_ROWS: usize = 8;

fn tiles(summary: &Summary) -> Vec<Tile> {
    let internet = |n: u64| format!("{} internet-facing", thousands(n));
    vec![
        Tile {
            label: "Exposed",
            value: thousands(summary.affected),
            detail: format!("{} · of {} scanned", internet(summary.affected_internet_facing), thousands(summary.endpoints)),
            class: "exposed",
        },
        Tile {
            label: "Still vulnerable",
            value: thousands(summary.vulnerable),
            detail: internet(summary.vulnerable_internet_facing),
            class: "vulnerable",
        },
        Tile {
            label: "Patched",
            value: thousands(summary.patched),
            detail: internet(summary.patched_internet_facing),
            class: "fixed",
        },
        Tile {
            label: "Re-keyed",
            value: thousands(summary.rekeyed),
            detail: internet(summary.rekeyed_internet_facing),
            class: "re-keyed",
        },
        Tile {
            label: "Certificates revoked",
            value: thousands(summary.revoked),
            detail: internet(summary.revoked_internet_facing),
            class: "revoked",
        },
        Tile {
            label: "Ready to notify users",
            value: thousands(summary.notify_ready),
            detail: internet(summary.notify_ready_internet_facing),
            class: "notify-ready",
        },
    ]
}

/// Renders the whole report.
pub fn render(data: &ReportData) -> String {
    let now = data.generated_at_ms;
    let coverage = &data.scans;
    let scans = match (coverage.first_scan_ms, coverage.last_scan_ms) {
        (Some(first), Some(last)) => format!(
            "{} from {} to {}",
            plural(coverage.runs, "scan run"),
            display_time(first).get(..10).unwrap_or_default(),
            display_time(last).get(..10).unwrap_or_default()
        ),
        _ => "no scan yet".to_owned(),
    };
    let internet_open_all: Vec<&ReportEndpoint> =
        data.endpoints.iter().filter(|e| e.view.internet_facing && e.view.state.needs_action()).collect();
    let visible_certificates: Vec<&CertificateView> =
        data.exposed_certificates.iter().filter(|c| c.not_after_unix.saturating_mul(1000) > now).collect();
    let mut alerts: Vec<&AlertRow> = data.alerts.iter().collect();
    alerts.sort_by_key(|a| a.acknowledged_at_ms.is_some());
    let timeline_caption = match (data.timeline.first(), data.timeline.last()) {
        (Some(first), Some(last)) if data.timeline.len() > 1 => format!(
            "Affected endpoints by state after each scan and revocation check, {} to {}, as known at the time.",
            display_time(first.at_ms).get(..10).unwrap_or_default(),
            display_time(last.at_ms).get(..10).unwrap_or_default()
        ),
        _ => "Affected endpoints by state, as known at the time of each scan.".to_owned(),
    };
    let template = ReportHtml {
        title: format!("Heartbleed response report – {}", display_time(now).get(..10).unwrap_or_default()),
        generated: display_time(now),
        scope: format!(
            "{} ({} internet-facing) · {}",
            plural(data.summary.endpoints, "endpoint"),
            thousands(data.summary.internet_facing),
            plural(coverage.assets, "asset")
        ),
        scans,
        headline: &data.headline,
        tiles: tiles(&data.summary),
        notices: {
            let n = &data.notices;
            format!("{} sent, {} pending, {} uncertain (a stopped run may have sent them), {} failed", thousands(n.sent), thousands(n.pending), thousands(n.uncertain), thousands(n.failed))
        },
        next_steps: &data.next_steps,
        funnel_svg: charts::funnel_svg(&data.funnel),
        owners_svg: charts::owners_svg(&data.owners),
        timeline_svg: charts::timeline_svg(&data.timeline),
        timeline_caption,
        internet_open: internet_open_all.iter().take(SUMMARY_INTERNET_ROWS).map(|e| EndpointRowHtml::new(e)).collect(),
        internet_open_more: internet_open_all.len().saturating_sub(SUMMARY_INTERNET_ROWS) as u64,
        endpoints: data.endpoints.iter().map(EndpointRowHtml::new).collect(),
        certificates: visible_certificates.iter().map(|c| CertificateRowHtml::new(c, now)).collect(),
        certificates_expired: (data.exposed_certificates.len() - visible_certificates.len()) as u64,
        alerts: alerts.into_iter().map(AlertRowHtml::new).collect(),
        products: data.products.iter().map(ProductRowHtml::new).collect(),
        owners: &data.owners,
        state_styles: State::ALL.iter().map(|s| StateStyle { class: s.as_str(), color: state_color(*s) }).collect(),
        state_legend: State::ALL
            .iter()
            .map(|s| StateLegend {
                class: s.as_str(),
                label: state_label(*s),
                meaning: match s {
                    State::Vulnerable => "the latest conclusive scan found the endpoint vulnerable",
                    State::Fixed => {
                        "no longer vulnerable, but still serving the exposed key, and its certificates are not all revoked"
                    }
                    State::Rekeyed => "serving a new key; certificates on the old key are not all revoked",
                    State::Revoked => "every certificate on the exposed key is revoked (or expired), but the exposed key is still served",
                    State::NotifyReady => "patched, re-keyed and revoked (or expired): users can be told to change their passwords",
                    State::NeverVulnerable => "never seen vulnerable and never served a leaked key",
                    State::Unknown => "no conclusive scan yet (refused, timed out, failed)",
                },
            })
            .collect(),
        flag_legend: [
            "reissued-same-key",
            "exposed-key-shared",
            "exposed-cert-valid-until",
            "exposed-cert-expired",
            "exposed-key-returned",
            "unexpected-certificate",
            "exposed-key-unknown",
            ATTACKED_WHILE_VULNERABLE_FLAG,
            ATTACKED_FLAG,
        ]
        .into_iter()
        .map(|name| (name, flag_meaning(name)))
        .collect(),
    };
    // Rendering into a String only fails if a Display impl fails; ours cannot.
    template.render().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_durations() {
        assert_eq!(display_time(1_795_891_154_250), "2026-11-28 18:39 UTC");
        assert_eq!(display_time(i64::MAX), i64::MAX.to_string());
        assert_eq!(display_date_seconds(1_798_761_600), "2027-01-01");
        assert_eq!(display_duration(59_999), "0 min");
        assert_eq!(display_duration(3 * 3_600_000), "3 h");
        assert_eq!(display_duration(19 * 86_400_000), "19 days");
        assert_eq!(display_duration(-5), "0 min");
        assert!(display_duration(i64::MAX).ends_with(" days"));
    }

    #[test]
    fn flags_become_short_counted_tags() {
        let words: Vec<String> = [
            "exposed-cert-valid-until=2028-01-15T00:00:00Z",
            "exposed-cert-valid-until=2028-01-15T00:00:00Z",
            "exposed-cert-valid-until=2027-03-01T00:00:00Z",
            "exposed-key-shared(2)",
            "attacked-while-vulnerable(3)",
        ]
        .map(str::to_owned)
        .to_vec();
        let tags = flag_tags(&words);
        let texts: Vec<&str> = tags.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "exposed-cert-valid-until=2028-01-15 ×2",
                "exposed-cert-valid-until=2027-03-01",
                "exposed-key-shared(2)",
                "attacked-while-vulnerable(3)"
            ]
        );
        assert!(tags[2].meaning.contains("other endpoints"));
        assert!(tags[3].urgent && !tags[0].urgent);
    }
}
