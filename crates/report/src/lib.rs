#![forbid(unsafe_code)]
//! bleedwatch's response report, for the people who decide: one self-contained HTML file that opens
//! with a one-page executive summary (how many endpoints were exposed, patched, re-keyed, revoked and
//! ready for users to be told, internet-facing first; open items by owner; what to do next) and then
//! the details (every endpoint with its state, flags, exposure window and keys; certificates on
//! exposed keys that are still valid; watch alerts). Charts are inline SVG computed in Rust; the page
//! has no script and loads nothing (its Content-Security-Policy forbids both), and prints cleanly.
//! The same data is exported as one JSON document and as CSV (formula cells neutralised).
//!
//! [`gather`] queries the inventory once; [`render_html`], [`render_json`] and [`render_csv`] are
//! pure functions of the [`ReportData`] it returns.

mod charts;
mod export;
mod html;
mod summary;
mod text;
mod timeline;

use std::collections::{BTreeMap, HashMap};

use bleedwatch_store::assess::{RevocationFact, RevocationStatus, State};
use bleedwatch_store::views::{funnel, rfc3339_ms, CertificateView, EndpointView};
use bleedwatch_store::notices::NoticeCounts;
use bleedwatch_store::{AlertFilter, AlertRow, EndpointAssessment, ProductRow, Store, StoreError};
use serde::Serialize;

pub use charts::{funnel_svg, owners_svg, state_color, state_label, timeline_svg, FunnelStage, FunnelStep, MAX_OWNER_BARS};
pub use export::{endpoint_csv_row, neutralize_csv_cell, printable, ENDPOINT_CSV_HEADER};
pub use text::{display_duration, display_time};
pub use summary::{exposed_and_valid, headline, next_steps, owners_open_items, NextStep, OwnerOpenItems, Priority, Summary};
pub use timeline::{state_timeline, timeline_points, EndpointObservations, TimelinePoint, MAX_TIMELINE_POINTS};

/// What can go wrong making a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("inventory: {0}")]
    Store(#[from] StoreError),
    #[error("JSON export: {0}")]
    Json(#[from] serde_json::Error),
    #[error("CSV export: {0}")]
    Csv(#[from] csv::Error),
}

/// How much scanning the report rests on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ScanCoverage {
    pub runs: u64,
    pub observations: u64,
    /// Earliest and latest observation.
    pub first_scan_ms: Option<i64>,
    pub last_scan_ms: Option<i64>,
    /// Assets in the owner's list.
    pub assets: u64,
}

/// One endpoint as the report shows it: the inventory's view plus what the details table adds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportEndpoint {
    #[serde(flatten)]
    pub view: EndpointView,
    /// The matching asset's notes.
    pub asset_notes: String,
    /// What a STARTTLS service said before TLS in the latest scan (printable, capped).
    pub banner: Option<String>,
    /// How long the endpoint was exposed: first vulnerable to first fixed, or to the report's time
    /// while still vulnerable.
    pub exposed_for_ms: Option<i64>,
}

/// Everything the report shows, gathered from the inventory at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportData {
    pub generated_at: String,
    pub generated_at_ms: i64,
    pub scans: ScanCoverage,
    pub summary: Summary,
    pub headline: String,
    pub next_steps: Vec<NextStep>,
    pub funnel: Vec<FunnelStage>,
    /// Owners with open items or open alerts, most urgent first.
    pub owners: Vec<OwnerOpenItems>,
    pub timeline: Vec<TimelinePoint>,
    /// Open items first, internet-facing first within each group.
    pub endpoints: Vec<ReportEndpoint>,
    /// Certificates on exposed keys (expired ones included), not revoked first, then the longest valid.
    pub exposed_certificates: Vec<CertificateView>,
    /// Watch alerts, newest first.
    pub alerts: Vec<AlertRow>,
    /// Assets audited on disk (`bleedwatch audit`), those carrying a vulnerable OpenSSL first, with
    /// the endpoints they serve.
    pub products: Vec<ProductRow>,
    /// The users' notices `notify` recorded: sent, pending, uncertain (a killed run may have sent
    /// them), failed.
    pub notices: NoticeCounts,
}

/// Banners longer than this are cut (they are shown, not parsed).
const MAX_BANNER_CHARS: usize = 240;

/// Queries the inventory and assembles the report as of `now_ms` (Unix milliseconds). Assessing
/// records any watch alert not recorded yet, as `bleedwatch status` does.
pub async fn gather(store: &Store, now_ms: i64) -> Result<ReportData, ReportError> {
    let assessed = store.assess_all(now_ms).await?;
    let alerts = store.alerts(&AlertFilter::default()).await?;
    let certificates = store.certificate_views().await?;
    let assets = store.assets().await?.len() as u64;

    let labels: HashMap<i64, String> = assessed.iter().map(|a| (a.endpoint.id, a.endpoint.label())).collect();
    let mut histories: BTreeMap<i64, Vec<bleedwatch_store::assess::Observation>> = BTreeMap::new();
    let mut run_ends = Vec::new();
    let mut coverage = ScanCoverage { assets, ..ScanCoverage::default() };
    let runs = store.runs().await?;
    for run in &runs {
        let observations = store.run_observations(run.id).await?;
        if let Some(end) = observations.iter().map(|o| o.observed_at_ms).max() {
            run_ends.push(end);
            coverage.runs += 1;
        }
        for observation in &observations {
            coverage.observations += 1;
            coverage.first_scan_ms =
                Some(coverage.first_scan_ms.map_or(observation.observed_at_ms, |t| t.min(observation.observed_at_ms)));
            coverage.last_scan_ms =
                Some(coverage.last_scan_ms.map_or(observation.observed_at_ms, |t| t.max(observation.observed_at_ms)));
            histories.entry(observation.endpoint_id).or_default().push(observation.to_assess());
        }
    }
    let histories: Vec<EndpointObservations> = histories
        .into_iter()
        .filter_map(|(id, observations)| Some(EndpointObservations { label: labels.get(&id)?.clone(), observations }))
        .collect();
    let revocations: Vec<RevocationFact> = store
        .revocation_checks(None)
        .await?
        .into_iter()
        .filter_map(|row| {
            RevocationStatus::parse(&row.check.result).map(|status| RevocationFact {
                cert_sha256: row.check.cert_sha256,
                status,
                checked_at_ms: row.check.checked_at_ms,
            })
        })
        .collect();
    let revocation_times: Vec<i64> = revocations.iter().map(|r| r.checked_at_ms).collect();
    let points = timeline_points(&run_ends, &revocation_times, now_ms);
    let timeline = state_timeline(&histories, &revocations, &points);

    let mut banners = HashMap::new();
    for item in &assessed {
        let Some(latest) = item.latest.as_ref().filter(|o| o.service != "tls") else { continue };
        let result = store.observation_json(latest.id).await?;
        if let Some(banner) = result.get("banner").and_then(|b| b.as_str()).filter(|b| !b.is_empty()) {
            banners.insert(item.endpoint.id, printable(&banner.chars().take(MAX_BANNER_CHARS).collect::<String>()));
        }
    }

    let products = store.products(&assessed).await?;
    let mut data = assemble(now_ms, &assessed, certificates, alerts, coverage, timeline, &banners);
    data.notices = store.notice_counts().await?;
    data.add_products(products);
    Ok(data)
}

impl ReportData {
    /// Adds the disk audits, and the step they call for: a product carrying a vulnerable OpenSSL
    /// leaks whether or not a scan reached it, so it comes right after the vulnerable endpoints.
    fn add_products(&mut self, products: Vec<ProductRow>) {
        if let Some(step) = summary::product_step(&products) {
            let at = self.next_steps.iter().take_while(|s| s.priority == Priority::Now).count();
            self.next_steps.insert(at, step);
        }
        self.products = products;
    }
}

/// Open items first (vulnerable, patched, revoked, re-keyed), then no result, notify-ready and not
/// affected.
fn urgency(state: State) -> u8 {
    match state {
        State::Vulnerable => 0,
        State::Fixed => 1,
        State::Revoked => 2,
        State::Rekeyed => 3,
        State::Unknown => 4,
        State::NotifyReady => 5,
        State::NeverVulnerable => 6,
    }
}

fn assemble(
    now_ms: i64,
    assessed: &[EndpointAssessment],
    certificates: Vec<CertificateView>,
    alerts: Vec<AlertRow>,
    scans: ScanCoverage,
    timeline: Vec<TimelinePoint>,
    banners: &HashMap<i64, String>,
) -> ReportData {
    let mut endpoints: Vec<ReportEndpoint> = assessed
        .iter()
        .map(|item| {
            let window = item.assessment.exposure;
            ReportEndpoint {
                view: EndpointView::from(item),
                asset_notes: item.endpoint.asset.as_ref().map(|a| a.notes.clone()).unwrap_or_default(),
                banner: banners.get(&item.endpoint.id).cloned(),
                exposed_for_ms: window
                    .first_vulnerable_ms
                    .map(|from| window.first_fixed_ms.unwrap_or(now_ms).saturating_sub(from).max(0)),
            }
        })
        .collect();
    endpoints.sort_by(|a, b| {
        let key = |e: &ReportEndpoint| {
            let state = e.view.state;
            (urgency(state) > 3, !e.view.internet_facing, urgency(state), e.view.address.clone(), e.view.port, e.view.sni.clone())
        };
        key(a).cmp(&key(b))
    });
    let views: Vec<&EndpointView> = endpoints.iter().map(|e| &e.view).collect();

    let mut exposed_certificates: Vec<CertificateView> = certificates.iter().filter(|c| c.exposed).cloned().collect();
    exposed_certificates
        .sort_by(|a, b| (a.revoked, b.not_after_unix, &a.cert_sha256).cmp(&(b.revoked, a.not_after_unix, &b.cert_sha256)));

    let summary = Summary::build(&views, &certificates, &alerts, now_ms);
    let owner_of: HashMap<i64, &str> = assessed.iter().map(|a| (a.endpoint.id, a.endpoint.owner())).collect();
    let mut open_alerts_by_owner: BTreeMap<String, u64> = BTreeMap::new();
    for alert in alerts.iter().filter(|a| a.acknowledged_at_ms.is_none()) {
        let owner = owner_of.get(&alert.endpoint_id).copied().unwrap_or_default();
        *open_alerts_by_owner.entry(owner.to_owned()).or_default() += 1;
    }
    let owners = owners_open_items(&funnel(assessed), &open_alerts_by_owner);
    let count = |pick: &dyn Fn(&EndpointView) -> bool| {
        let matching = views.iter().filter(|v| pick(v));
        let (total, internet) = matching.fold((0u64, 0u64), |(t, i), v| (t + 1, i + u64::from(v.internet_facing)));
        (total, internet)
    };
    let funnel_stages: Vec<FunnelStage> = FunnelStep::ALL
        .iter()
        .map(|step| {
            let (total, internet_facing) = match step {
                FunnelStep::Exposed => count(&|v| v.state.needs_action() || v.state == State::NotifyReady),
                FunnelStep::Patched => count(&|v| v.fixed),
                FunnelStep::Rekeyed => count(&|v| v.rekeyed),
                FunnelStep::Revoked => count(&|v| v.revoked),
                FunnelStep::NotifyReady => count(&|v| v.state == State::NotifyReady),
            };
            FunnelStage { step: *step, total, internet_facing }
        })
        .collect();
    let next = next_steps(&summary, &views, &owners, &alerts, &scans, now_ms);
    ReportData {
        generated_at: rfc3339_ms(now_ms),
        generated_at_ms: now_ms,
        headline: headline(&summary),
        next_steps: next,
        summary,
        funnel: funnel_stages,
        owners,
        timeline,
        endpoints,
        exposed_certificates,
        alerts,
        notices: NoticeCounts::default(),
        scans,
        products: Vec::new(),
    }
}

/// The report as one self-contained HTML document.
pub fn render_html(data: &ReportData) -> String {
    html::render(data)
}

/// The report as one JSON document (the same data as the HTML, machine-readable).
pub fn render_json(data: &ReportData) -> Result<String, ReportError> {
    Ok(serde_json::to_string_pretty(data)? + "\n")
}

/// The endpoints as CSV, in the columns of `bleedwatch endpoints --csv`; every cell neutralised
/// against spreadsheet formulas.
pub fn render_csv(data: &ReportData) -> Result<String, ReportError> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(ENDPOINT_CSV_HEADER)?;
    for endpoint in &data.endpoints {
        writer.write_record(endpoint_csv_row(&endpoint.view))?;
    }
    let bytes = writer.into_inner().map_err(|e| csv::Error::from(e.into_error()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests;
