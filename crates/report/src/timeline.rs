//! The exposure timeline: how many endpoints stood in each response state after each scan, judged
//! as the inventory knew it then. Every point replays `bleedwatch-assess` on the histories and
//! revocation checks recorded up to that moment, so the timeline uses the same rules as the rest of
//! the report (a key exposed later makes endpoints that served it affected only from then on).

use std::collections::BTreeMap;

use bleedwatch_store::assess::{assess_all, EndpointHistory, Observation, RevocationFact, RevocationIndex, State};
use serde::Serialize;

/// At most this many points: enough to show the response, few enough to replay quickly on a large
/// inventory.
pub const MAX_TIMELINE_POINTS: usize = 60;

/// Endpoints per state at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimelinePoint {
    pub at_ms: i64,
    /// Endpoints per state among those observed by then (states with no endpoint left out).
    pub counts: BTreeMap<State, u64>,
}

impl TimelinePoint {
    pub fn count(&self, state: State) -> u64 {
        self.counts.get(&state).copied().unwrap_or(0)
    }
}

/// One endpoint's history for the replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointObservations {
    pub label: String,
    pub observations: Vec<Observation>,
}

/// The moments to show: the end of each scan run, each revocation check, and `now`, in order, at most
/// [`MAX_TIMELINE_POINTS`] (evenly thinned, always keeping the latest). Times after `now` are dropped.
pub fn timeline_points(run_ends: &[i64], revocation_times: &[i64], now_ms: i64) -> Vec<i64> {
    let mut times: Vec<i64> = run_ends.iter().chain(revocation_times).copied().filter(|t| *t <= now_ms).collect();
    if times.is_empty() {
        return Vec::new();
    }
    times.push(now_ms);
    times.sort_unstable();
    times.dedup();
    if times.len() <= MAX_TIMELINE_POINTS {
        return times;
    }
    let last = times.len() - 1;
    let steps = MAX_TIMELINE_POINTS - 1;
    let mut picked: Vec<i64> = (0..=steps).filter_map(|k| times.get(k * last / steps).copied()).collect();
    picked.dedup();
    picked
}

/// Replays the assessment at each of `points` (ascending). Pins are not needed: they only raise
/// alerts and never change a state.
pub fn state_timeline(histories: &[EndpointObservations], revocations: &[RevocationFact], points: &[i64]) -> Vec<TimelinePoint> {
    let mut sorted: Vec<(&str, Vec<Observation>)> = histories
        .iter()
        .map(|h| {
            let mut observations = h.observations.clone();
            observations.sort_by_key(|o| (o.at_ms, o.id));
            (h.label.as_str(), observations)
        })
        .collect();
    sorted.retain(|(_, observations)| !observations.is_empty());
    let mut checks: Vec<&RevocationFact> = revocations.iter().collect();
    checks.sort_by_key(|c| c.checked_at_ms);

    points
        .iter()
        .map(|&at| {
            // Each history is sorted, so "recorded by then" is a prefix.
            let known: Vec<EndpointHistory<'_>> = sorted
                .iter()
                .filter_map(|(label, observations)| {
                    let seen = observations.partition_point(|o| o.at_ms <= at);
                    let prefix = observations.get(..seen).filter(|p| !p.is_empty())?;
                    Some(EndpointHistory { label, observations: prefix, pins: &[] })
                })
                .collect();
            let checked = checks.partition_point(|c| c.checked_at_ms <= at);
            let index = RevocationIndex::build(checks.get(..checked).unwrap_or_default().iter().copied());
            let mut counts = BTreeMap::new();
            for assessment in assess_all(&known, &index, at) {
                *counts.entry(assessment.state).or_insert(0u64) += 1;
            }
            TimelinePoint { at_ms: at, counts }
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use bleedwatch_store::assess::{Leaf, RevocationStatus, Verdict};

    fn observation(id: i64, at_ms: i64, verdict: Verdict, key: &str) -> Observation {
        Observation {
            id,
            at_ms,
            verdict,
            vulnerable_versions: Default::default(),
            leaf: Some(Leaf {
                cert_sha256: format!("cert-{key}"),
                spki_sha256: format!("key-{key}"),
                not_after_unix: 4_000_000_000,
            }),
        }
    }

    #[test]
    fn points_are_sorted_capped_and_end_now() {
        assert!(timeline_points(&[], &[], 100).is_empty());
        assert_eq!(timeline_points(&[30, 10, 10], &[20, 500], 100), [10, 20, 30, 100]);
        let many: Vec<i64> = (0..1000).collect();
        let points = timeline_points(&many, &[], 5000);
        assert!(points.len() <= MAX_TIMELINE_POINTS, "{}", points.len());
        assert_eq!(points.first(), Some(&0));
        assert_eq!(points.last(), Some(&5000));
        assert!(points.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn replays_the_response_as_it_was_known() {
        let histories = vec![
            EndpointObservations {
                label: "a".into(),
                observations: vec![
                    observation(3, 300, Verdict::NotVulnerable, "new"),
                    observation(1, 100, Verdict::Vulnerable, "old"),
                    observation(2, 200, Verdict::NotVulnerable, "old"),
                ],
            },
            EndpointObservations { label: "b".into(), observations: vec![observation(4, 150, Verdict::NotVulnerable, "b")] },
            EndpointObservations { label: "never".into(), observations: vec![] },
        ];
        let revoked = RevocationFact { cert_sha256: "cert-old".into(), status: RevocationStatus::Revoked, checked_at_ms: 350 };
        let timeline = state_timeline(&histories, &[revoked], &[50, 100, 150, 200, 300, 400]);
        let states: Vec<Vec<(State, u64)>> = timeline.iter().map(|p| p.counts.clone().into_iter().collect()).collect();
        assert_eq!(states[0], []);
        assert_eq!(states[1], [(State::Vulnerable, 1)]);
        assert_eq!(states[2], [(State::Vulnerable, 1), (State::NeverVulnerable, 1)]);
        assert_eq!(states[3], [(State::Fixed, 1), (State::NeverVulnerable, 1)]);
        assert_eq!(states[4], [(State::Rekeyed, 1), (State::NeverVulnerable, 1)]);
        assert_eq!(states[5], [(State::NotifyReady, 1), (State::NeverVulnerable, 1)]);
        assert_eq!(timeline[5].count(State::NotifyReady), 1);
        assert_eq!(timeline[5].count(State::Vulnerable), 0);
    }
}
