//! The executive summary: the numbers a CISO asks for, open items by owner, and what to do next,
//! all derived from the endpoint views, certificates and alerts (pure).

use std::collections::BTreeMap;

use bleedwatch_store::assess::State;
use bleedwatch_store::views::{CertificateView, EndpointView, FunnelRow};
use bleedwatch_store::AlertRow;
use serde::Serialize;

use crate::text::{display_date_seconds, display_duration, owner_name, plural, thousands};
use crate::ScanCoverage;

/// The headline numbers. "Affected" endpoints are those the response is about: seen vulnerable, or
/// presenting a key that leaked elsewhere.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub endpoints: u64,
    pub internet_facing: u64,
    pub affected: u64,
    pub affected_internet_facing: u64,
    pub vulnerable: u64,
    pub vulnerable_internet_facing: u64,
    /// No longer vulnerable (whatever else holds).
    pub patched: u64,
    pub patched_internet_facing: u64,
    pub rekeyed: u64,
    pub rekeyed_internet_facing: u64,
    /// Every exposed certificate revoked.
    pub revoked: u64,
    pub revoked_internet_facing: u64,
    pub notify_ready: u64,
    pub notify_ready_internet_facing: u64,
    /// Affected and not notify-ready.
    pub open: u64,
    pub open_internet_facing: u64,
    pub never_vulnerable: u64,
    /// No conclusive scan yet.
    pub unknown: u64,
    pub unknown_internet_facing: u64,
    pub open_alerts: u64,
    /// Endpoints a Heartbleed attack in a packet capture hit while they were vulnerable: their
    /// memory may have been read.
    pub attacked_while_vulnerable: u64,
    pub attacked_while_vulnerable_internet_facing: u64,
    /// Certificates on exposed keys, unexpired and not revoked.
    pub exposed_certificates_valid: u64,
    /// The latest end of validity among those (Unix seconds).
    pub exposed_certificates_valid_until: Option<i64>,
}

impl Summary {
    pub fn build(endpoints: &[&EndpointView], certificates: &[CertificateView], alerts: &[AlertRow], now_ms: i64) -> Summary {
        let mut summary = Summary::default();
        let count = |total: &mut u64, internet: &mut u64, view: &EndpointView| {
            *total += 1;
            *internet += u64::from(view.internet_facing);
        };
        for view in endpoints {
            let view: &EndpointView = view;
            count(&mut summary.endpoints, &mut summary.internet_facing, view);
            let affected = view.state.needs_action() || view.state == State::NotifyReady;
            if affected {
                count(&mut summary.affected, &mut summary.affected_internet_facing, view);
            }
            if view.state.needs_action() {
                count(&mut summary.open, &mut summary.open_internet_facing, view);
            }
            if view.fixed {
                count(&mut summary.patched, &mut summary.patched_internet_facing, view);
            }
            if view.rekeyed {
                count(&mut summary.rekeyed, &mut summary.rekeyed_internet_facing, view);
            }
            if view.revoked {
                count(&mut summary.revoked, &mut summary.revoked_internet_facing, view);
            }
            if view.attacked_while_vulnerable {
                count(&mut summary.attacked_while_vulnerable, &mut summary.attacked_while_vulnerable_internet_facing, view);
            }
            match view.state {
                State::Vulnerable => count(&mut summary.vulnerable, &mut summary.vulnerable_internet_facing, view),
                State::NotifyReady => count(&mut summary.notify_ready, &mut summary.notify_ready_internet_facing, view),
                State::Unknown => count(&mut summary.unknown, &mut summary.unknown_internet_facing, view),
                State::NeverVulnerable => summary.never_vulnerable += 1,
                State::Fixed | State::Rekeyed | State::Revoked => {}
            }
        }
        let still_valid: Vec<&CertificateView> = certificates.iter().filter(|c| exposed_and_valid(c, now_ms)).collect();
        summary.exposed_certificates_valid = still_valid.len() as u64;
        summary.exposed_certificates_valid_until = still_valid.iter().map(|c| c.not_after_unix).max();
        summary.open_alerts = alerts.iter().filter(|a| a.acknowledged_at_ms.is_none()).count() as u64;
        summary
    }
}

/// Exposed, not revoked, and not expired at `now_ms`: an attacker holding the key can still
/// impersonate the service with it.
pub fn exposed_and_valid(certificate: &CertificateView, now_ms: i64) -> bool {
    certificate.exposed && !certificate.revoked && certificate.not_after_unix.saturating_mul(1000) > now_ms
}

/// One owner's endpoints that still need work.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OwnerOpenItems {
    /// As in the asset list ('' when no asset matched).
    pub owner: String,
    pub vulnerable: u64,
    /// Patched, still on the exposed key, certificates not all revoked.
    pub fixed: u64,
    pub rekeyed: u64,
    pub revoked: u64,
    /// Open endpoints that face the internet.
    pub internet_facing_open: u64,
    pub open_alerts: u64,
}

impl OwnerOpenItems {
    pub fn open(&self) -> u64 {
        self.vulnerable.saturating_add(self.fixed).saturating_add(self.rekeyed).saturating_add(self.revoked)
    }

    /// Counts in funnel order, for the chart.
    pub fn by_state(&self) -> [(State, u64); 4] {
        [
            (State::Vulnerable, self.vulnerable),
            (State::Fixed, self.fixed),
            (State::Rekeyed, self.rekeyed),
            (State::Revoked, self.revoked),
        ]
    }
}

/// Open items per owner from the funnel rows (which split owners by internet exposure), most urgent
/// first: internet-facing open items, then all open items, then open alerts; no owner last.
pub fn owners_open_items(funnel: &[FunnelRow], open_alerts_by_owner: &BTreeMap<String, u64>) -> Vec<OwnerOpenItems> {
    let mut owners: BTreeMap<String, OwnerOpenItems> = BTreeMap::new();
    for row in funnel {
        let entry =
            owners.entry(row.owner.clone()).or_insert_with(|| OwnerOpenItems { owner: row.owner.clone(), ..Default::default() });
        let count = |state| row.counts.get(&state).copied().unwrap_or(0);
        entry.vulnerable = entry.vulnerable.saturating_add(count(State::Vulnerable));
        entry.fixed = entry.fixed.saturating_add(count(State::Fixed));
        entry.rekeyed = entry.rekeyed.saturating_add(count(State::Rekeyed));
        entry.revoked = entry.revoked.saturating_add(count(State::Revoked));
        if row.internet_facing {
            let open = [State::Vulnerable, State::Fixed, State::Rekeyed, State::Revoked]
                .into_iter()
                .map(count)
                .fold(0u64, u64::saturating_add);
            entry.internet_facing_open = entry.internet_facing_open.saturating_add(open);
        }
    }
    for (owner, alerts) in open_alerts_by_owner {
        let entry = owners.entry(owner.clone()).or_insert_with(|| OwnerOpenItems { owner: owner.clone(), ..Default::default() });
        entry.open_alerts = entry.open_alerts.saturating_add(*alerts);
    }
    let mut list: Vec<OwnerOpenItems> = owners.into_values().filter(|o| o.open() > 0 || o.open_alerts > 0).collect();
    list.sort_by(|a, b| {
        (b.internet_facing_open, b.open(), b.open_alerts, a.owner.is_empty(), &a.owner).cmp(&(
            a.internet_facing_open,
            a.open(),
            a.open_alerts,
            b.owner.is_empty(),
            &b.owner,
        ))
    });
    list
}

/// How soon a step must be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Priority {
    Now,
    Next,
    Then,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Now => "now",
            Priority::Next => "next",
            Priority::Then => "then",
        }
    }
}

/// One recommended action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NextStep {
    pub priority: Priority,
    pub title: String,
    pub detail: String,
}

/// The step for products found carrying a vulnerable OpenSSL on disk, if any.
pub fn product_step(products: &[bleedwatch_store::ProductRow]) -> Option<NextStep> {
    let carrying: Vec<&bleedwatch_store::ProductRow> = products.iter().filter(|p| p.carries_vulnerable_openssl()).collect();
    if carrying.is_empty() {
        return None;
    }
    let copies: usize = carrying.iter().map(|p| p.count("vulnerable")).sum();
    let named: Vec<&str> = carrying.iter().take(3).map(|p| p.asset.as_str()).collect();
    let more = carrying.len().saturating_sub(named.len());
    let names = if more == 0 { named.join(", ") } else { format!("{} and {more} more", named.join(", ")) };
    Some(NextStep {
        priority: Priority::Now,
        title: format!(
            "Update OpenSSL in {} carrying a vulnerable copy ({copies} {} on disk)",
            plural(carrying.len() as u64, "product"),
            if copies == 1 { "copy" } else { "copies" }
        ),
        detail: format!(
            "bleedwatch audit found OpenSSL 1.0.1–1.0.1f with heartbeats on disk in {names}: whatever of it listens, or will              once deployed, can leak memory, whether or not a scan reached it. Ask the vendor for a fixed build, then audit again."
        ),
    })
}

/// What to do next, most urgent first.
pub fn next_steps(
    summary: &Summary,
    endpoints: &[&EndpointView],
    owners: &[OwnerOpenItems],
    alerts: &[AlertRow],
    coverage: &ScanCoverage,
    now_ms: i64,
) -> Vec<NextStep> {
    let mut steps = Vec::new();
    let with_flag = |name: &str| endpoints.iter().filter(|v| v.has_flag(name)).count();
    if summary.attacked_while_vulnerable > 0 {
        steps.push(NextStep {
            priority: Priority::Now,
            title: format!(
                "Treat {} as breached ({} internet-facing)",
                plural(summary.attacked_while_vulnerable, "endpoint attacked while vulnerable"),
                summary.attacked_while_vulnerable_internet_facing
            ),
            detail: "Packet captures show Heartbleed attacks reaching them while they were vulnerable: assume their private \
                     keys, passwords and session cookies were read. Re-key and revoke them first, end active sessions, and \
                     start incident response."
                .to_owned(),
        });
    }
    if summary.vulnerable > 0 {
        let mut vulnerable_owners: Vec<&OwnerOpenItems> = owners.iter().filter(|o| o.vulnerable > 0).collect();
        vulnerable_owners.sort_by_key(|o| std::cmp::Reverse(o.vulnerable));
        let named: Vec<String> =
            vulnerable_owners.iter().take(3).map(|o| format!("{} ({})", owner_name(&o.owner), o.vulnerable)).collect();
        let more = vulnerable_owners.len().saturating_sub(3);
        let owners_text = match (named.is_empty(), more) {
            (true, _) => String::new(),
            (false, 0) => format!(" Owners: {}.", named.join(", ")),
            (false, more) => format!(" Owners: {} and {more} more.", named.join(", ")),
        };
        steps.push(NextStep {
            priority: Priority::Now,
            title: format!(
                "Patch {} ({} internet-facing)",
                plural(summary.vulnerable, "vulnerable endpoint"),
                summary.vulnerable_internet_facing
            ),
            detail: format!(
                "Upgrade OpenSSL to 1.0.1g or later (or rebuild it without heartbeats) and restart every service that loaded it; \
                 internet-facing endpoints first.{owners_text}"
            ),
        });
    }
    let open_alerts: Vec<&AlertRow> = alerts.iter().filter(|a| a.acknowledged_at_ms.is_none()).collect();
    if !open_alerts.is_empty() {
        let mut kinds: BTreeMap<&str, u64> = BTreeMap::new();
        for alert in &open_alerts {
            *kinds.entry(alert.kind.as_str()).or_default() += 1;
        }
        let kinds: Vec<String> = kinds.iter().map(|(kind, n)| format!("{n} {kind}")).collect();
        steps.push(NextStep {
            priority: Priority::Now,
            title: format!("Investigate {}", plural(open_alerts.len() as u64, "open alert")),
            detail: format!(
                "{}. A returning exposed key can mean a rollback or a stolen key in use; an unexpected key can mean \
                 interception. Acknowledge each one once explained.",
                kinds.join(", ")
            ),
        });
    }
    let on_exposed_key = endpoints.iter().filter(|v| v.fixed && !v.rekeyed).count() as u64;
    if on_exposed_key > 0 {
        let reissued = with_flag("reissued-same-key");
        let shared = with_flag("exposed-key-shared");
        let mut detail = "Generate a new private key, get a certificate for it and deploy it: a certificate reissued on the old \
                          key leaves the stolen key usable."
            .to_owned();
        if reissued > 0 {
            detail.push_str(&format!(" {} already reissued on the same key.", plural(reissued as u64, "endpoint")));
        }
        if shared > 0 {
            detail.push_str(&format!(
                " {} share an exposed key with other endpoints: replace it everywhere it is used.",
                plural(shared as u64, "endpoint")
            ));
        }
        steps.push(NextStep {
            priority: Priority::Next,
            title: format!("Replace the private key on {} still serving an exposed key", plural(on_exposed_key, "endpoint")),
            detail,
        });
    }
    if summary.exposed_certificates_valid > 0 {
        let until = summary
            .exposed_certificates_valid_until
            .map(|t| format!(" The last of them stays valid until {}.", display_date_seconds(t)))
            .unwrap_or_default();
        steps.push(NextStep {
            priority: Priority::Next,
            title: format!("Revoke {} on exposed keys", plural(summary.exposed_certificates_valid, "certificate")),
            detail: format!(
                "Until revoked (or expired) anyone holding a leaked key can impersonate the service with them.{until} \
                 Ask the issuing CA to revoke, then run `bleedwatch revocation check`."
            ),
        });
    }
    let key_unknown = with_flag("exposed-key-unknown");
    if key_unknown > 0 {
        steps.push(NextStep {
            priority: Priority::Next,
            title: format!("Find out which key leaked on {}", plural(key_unknown as u64, "endpoint")),
            detail: "They were seen vulnerable without a certificate captured: treat every key they served as exposed, \
                     re-key and revoke."
                .to_owned(),
        });
    }
    if summary.unknown > 0 {
        steps.push(NextStep {
            priority: Priority::Next,
            title: format!(
                "Get a conclusive result for {} ({} internet-facing)",
                plural(summary.unknown, "endpoint"),
                summary.unknown_internet_facing
            ),
            detail: "Scans failed or timed out, so their exposure is not known. Check reachability and run `bleedwatch rescan`."
                .to_owned(),
        });
    }
    if summary.notify_ready > 0 {
        steps.push(NextStep {
            priority: Priority::Then,
            title: format!("Tell the users of {} to change their passwords", plural(summary.notify_ready, "remediated endpoint")),
            detail: "Patched, re-keyed and every exposed certificate revoked or expired: credentials and session cookies sent to them \
                     before the fix may have leaked."
                .to_owned(),
        });
    }
    const STALE_MS: i64 = 7 * 24 * 3600 * 1000;
    if let Some(last) = coverage.last_scan_ms.filter(|last| now_ms.saturating_sub(*last) > STALE_MS) {
        steps.push(NextStep {
            priority: Priority::Then,
            title: format!("Scan again: the last scan is {} old", display_duration(now_ms.saturating_sub(last))),
            detail: "States only move when endpoints are scanned: `bleedwatch rescan --in-progress --stale-after 7d`.".to_owned(),
        });
    }
    if coverage.assets == 0 && summary.endpoints > 0 {
        steps.push(NextStep {
            priority: Priority::Then,
            title: "Import the asset list".to_owned(),
            detail: "Without it no endpoint has an owner or counts as internet-facing, so nothing can be ranked by exposure: \
                     `bleedwatch assets import assets.csv` (host, owner, criticality, internet-facing, notes)."
                .to_owned(),
        });
    }
    if steps.is_empty() {
        steps.push(NextStep {
            priority: Priority::Then,
            title: "Nothing open".to_owned(),
            detail: "No endpoint is vulnerable or waiting for re-keying or revocation. Keep scanning new and changed \
                     endpoints (`bleedwatch rescan --stale-after 7d`)."
                .to_owned(),
        });
    }
    steps
}

/// The executive summary's first sentence(s), internet exposure first.
pub fn headline(summary: &Summary) -> String {
    if summary.endpoints == 0 {
        return "The inventory holds no scanned endpoint yet: run `bleedwatch scan` to fill it.".to_owned();
    }
    if summary.affected == 0 {
        let unknown = if summary.unknown > 0 {
            format!(" {} still have no conclusive result.", plural(summary.unknown, "endpoint"))
        } else {
            String::new()
        };
        return format!(
            "None of the {} scanned endpoints ({} internet-facing) was found vulnerable to Heartbleed or serves a leaked key.{unknown}",
            thousands(summary.endpoints),
            thousands(summary.internet_facing)
        );
    }
    if summary.internet_facing == 0 {
        let vulnerable = match summary.vulnerable {
            0 => "None is still vulnerable".to_owned(),
            1 => "1 is still vulnerable".to_owned(),
            n => format!("{} are still vulnerable", thousands(n)),
        };
        return format!(
            "{} of {} endpoints were exposed to Heartbleed (no endpoint is marked internet-facing in the asset list). \
             {vulnerable}; {} fully remediated (patched, re-keyed, certificates revoked) and ready for users to be told.",
            thousands(summary.affected),
            thousands(summary.endpoints),
            thousands(summary.notify_ready),
        );
    }
    let vulnerable = if summary.vulnerable == 0 {
        "None is still vulnerable".to_owned()
    } else {
        format!(
            "{} {} still vulnerable, {} of them internet-facing",
            thousands(summary.vulnerable),
            if summary.vulnerable == 1 { "is" } else { "are" },
            thousands(summary.vulnerable_internet_facing)
        )
    };
    let attacked = if summary.attacked_while_vulnerable > 0 {
        format!(
            " {} attacked while vulnerable ({} internet-facing): treat them as breached.",
            plural(summary.attacked_while_vulnerable, "endpoint was"),
            thousands(summary.attacked_while_vulnerable_internet_facing)
        )
        .replace("endpoints was", "endpoints were")
    } else {
        String::new()
    };
    format!(
        "{} of {} endpoints were exposed to Heartbleed, {} of them internet-facing. {vulnerable}; {} fully remediated \
         (patched, re-keyed, certificates revoked) and ready for users to be told.{attacked}",
        thousands(summary.affected),
        thousands(summary.endpoints),
        thousands(summary.affected_internet_facing),
        thousands(summary.notify_ready),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(u64::MAX), "18,446,744,073,709,551,615");
        assert_eq!(plural(1, "endpoint"), "1 endpoint");
        assert_eq!(plural(1200, "endpoint"), "1,200 endpoints");
    }

    fn funnel_row(owner: &str, internet_facing: bool, counts: &[(State, u64)]) -> FunnelRow {
        FunnelRow {
            owner: owner.into(),
            internet_facing,
            counts: counts.iter().copied().collect(),
            total: counts.iter().map(|(_, n)| n).sum(),
        }
    }

    #[test]
    fn owners_merge_and_sort_internet_facing_first() {
        let funnel = vec![
            funnel_row("web", true, &[(State::Vulnerable, 1), (State::NotifyReady, 4)]),
            funnel_row("db", false, &[(State::Fixed, 5)]),
            funnel_row("web", false, &[(State::Rekeyed, 2), (State::NeverVulnerable, 9)]),
            funnel_row("", true, &[(State::Revoked, 1)]),
            funnel_row("done", false, &[(State::NotifyReady, 3)]),
        ];
        let alerts = BTreeMap::from([("quiet".to_owned(), 2u64)]);
        let owners = owners_open_items(&funnel, &alerts);
        let names: Vec<&str> = owners.iter().map(|o| o.owner.as_str()).collect();
        assert_eq!(names, ["web", "", "db", "quiet"]);
        assert_eq!(owners[0].open(), 3);
        assert_eq!(owners[0].internet_facing_open, 1);
        assert_eq!(owners[3].open_alerts, 2);
    }

    #[test]
    fn headline_puts_the_internet_first() {
        let summary = Summary {
            endpoints: 10,
            internet_facing: 4,
            affected: 3,
            affected_internet_facing: 2,
            vulnerable: 1,
            vulnerable_internet_facing: 1,
            notify_ready: 1,
            ..Summary::default()
        };
        let text = headline(&summary);
        assert!(
            text.starts_with("3 of 10 endpoints were exposed to Heartbleed, 2 of them internet-facing. 1 is still vulnerable"),
            "{text}"
        );
        assert!(headline(&Summary::default()).contains("no scanned endpoint"));
        let clean = Summary { endpoints: 5, internet_facing: 1, ..Summary::default() };
        assert!(headline(&clean).starts_with("None of the 5 scanned endpoints"));
    }

    #[test]
    fn nothing_open_still_says_what_to_do() {
        let steps = next_steps(&Summary::default(), &[], &[], &[], &ScanCoverage::default(), 0);
        assert_eq!(steps.len(), 1);
        assert_eq!(steps[0].title, "Nothing open");
        let old_scan = ScanCoverage { last_scan_ms: Some(0), assets: 3, ..ScanCoverage::default() };
        let stale = next_steps(&Summary::default(), &[], &[], &[], &old_scan, 30 * 24 * 3600 * 1000);
        assert!(stale[0].title.starts_with("Scan again: the last scan is 30 days old"), "{:?}", stale[0]);
        let no_assets = next_steps(&Summary { endpoints: 2, ..Summary::default() }, &[], &[], &[], &ScanCoverage::default(), 0);
        assert_eq!(no_assets[0].title, "Import the asset list");
    }
}
