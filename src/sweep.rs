//! `scan --sweep NAME --shard K/N`: a worker of a sweep that many processes (or Kubernetes pods)
//! share through one inventory. The first worker creates the sweep (its run, seed and plan),
//! the others join it and must give the same plan; each worker walks its shard of the seeded
//! order from where the shard's recorded progress stopped. A leaf: the scan engine uses it.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Result};
use bleedwatch_store::{Store, SweepJoin, SweepRow, SweepSpec};
use bleedwatch_targets::Shard;

/// Which shard positions have their results recorded: every position below the lowest one still
/// in flight (or below the walk's cursor when none is). Memory is bounded by the scheduler's
/// read-ahead, whatever the size of the shard.
#[derive(Debug, Default)]
pub struct ShardTracker {
    state: Mutex<TrackerState>,
}

#[derive(Debug, Default)]
struct TrackerState {
    /// Positions below this have been handed out (or skipped as excluded).
    cursor: u128,
    in_flight: BTreeSet<u128>,
    /// In-flight positions by item key (a key given twice, by duplicate specs, has two).
    by_key: HashMap<String, VecDeque<u128>>,
}

impl ShardTracker {
    /// A tracker for a shard resumed at `start`.
    pub fn new(start: u128) -> ShardTracker {
        ShardTracker { state: Mutex::new(TrackerState { cursor: start, ..TrackerState::default() }) }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, TrackerState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The walk handed out `position` as the item `key`.
    pub fn handed_out(&self, position: u128, key: &str) {
        let mut state = self.state();
        state.cursor = state.cursor.max(position.saturating_add(1));
        state.in_flight.insert(position);
        state.by_key.entry(key.to_owned()).or_default().push_back(position);
    }

    /// The walk ended at `end` (every position below it handed out or excluded).
    pub fn exhausted(&self, end: u128) {
        let mut state = self.state();
        state.cursor = state.cursor.max(end);
    }

    /// The item `key` has its results recorded.
    pub fn done(&self, key: &str) {
        let mut state = self.state();
        let Some(positions) = state.by_key.get_mut(key) else { return };
        let position = positions.pop_front();
        if positions.is_empty() {
            state.by_key.remove(key);
        }
        if let Some(position) = position {
            state.in_flight.remove(&position);
        }
    }

    /// Positions below this have their results recorded.
    pub fn positions_done(&self) -> u128 {
        let state = self.state();
        state.in_flight.first().copied().unwrap_or(state.cursor)
    }
}

/// A worker's place in its sweep.
pub struct SweepWorker {
    pub store: Store,
    pub sweep: SweepRow,
    pub shard: Shard,
    /// Where the shard's recorded progress stopped.
    pub start: u128,
    pub tracker: Arc<ShardTracker>,
}

impl SweepWorker {
    /// Records the shard's progress as the tracker sees it now.
    pub async fn record_progress(&self) -> Result<()> {
        let done = u64::try_from(self.tracker.positions_done()).unwrap_or(u64::MAX);
        self.store.record_shard_progress(&self.sweep, self.shard.index, done).await?;
        Ok(())
    }
}

/// What a worker brings to its sweep.
pub struct SweepRequest<'a> {
    pub name: &'a str,
    pub seed: Option<u64>,
    pub shard: Shard,
    /// The plan's identity (what is swept, as JSON): every worker must give the same.
    pub plan: &'a serde_json::Value,
    pub arguments: &'a [String],
    /// Positions in the whole walk.
    pub total: u128,
}

/// A seed for a new sweep: different on every call, from the clock and the process.
fn fresh_seed() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one((std::time::SystemTime::now(), std::process::id()))
}

/// The plan's top-level settings that differ between `a` and `b`.
fn differences(a: &serde_json::Value, b: &serde_json::Value) -> Vec<String> {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else { return vec!["the plan".into()] };
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter().filter(|k| a.get(*k) != b.get(*k)).map(|k| k.replace('_', "-")).collect()
}

/// Creates or joins the sweep and starts this worker's shard; `None` when the shard is finished.
pub async fn join(store: Store, request: SweepRequest<'_>) -> Result<Option<SweepWorker>> {
    let plan_text = serde_json::to_string(request.plan)?;
    let spec = SweepSpec {
        name: request.name,
        seed: request.seed.unwrap_or_else(fresh_seed),
        shard_count: request.shard.count,
        plan: &plan_text,
        arguments: request.arguments,
    };
    let joined = store.join_sweep(&spec).await?;
    let sweep = joined.sweep().clone();
    let name = request.name;
    if let SweepJoin::Joined(existing) = &joined {
        if existing.shard_count != request.shard.count {
            bail!("sweep {name:?} has {} shards; this worker was given --shard {} (use --shard K/{})", existing.shard_count, request.shard, existing.shard_count);
        }
        if let Some(seed) = request.seed.filter(|seed| *seed != existing.seed) {
            bail!("sweep {name:?} walks seed {}; this worker was given --seed {seed} (leave --seed out to take the sweep's)", existing.seed);
        }
        let stored: serde_json::Value = serde_json::from_str(&existing.plan)?;
        if stored != *request.plan {
            bail!(
                "sweep {name:?} was started with another plan; every worker must scan the same (differs in: {})",
                differences(&stored, request.plan).join(", ")
            );
        }
    }
    let positions = request.shard.len(request.total);
    let shard = store.start_shard(&sweep, request.shard.index, u64::try_from(positions).unwrap_or(u64::MAX)).await?;
    match &joined {
        SweepJoin::Created(_) => eprintln!("bleedwatch: sweep {name:?} created (scan run {}, seed {}, {} shards)", sweep.run, sweep.seed, sweep.shard_count),
        SweepJoin::Joined(_) => eprintln!("bleedwatch: joined sweep {name:?} (scan run {}, seed {})", sweep.run, sweep.seed),
    }
    if shard.finished {
        eprintln!("bleedwatch: shard {} of sweep {name:?} is already finished", request.shard);
        return Ok(None);
    }
    let start = u128::from(shard.positions_done);
    if start > 0 {
        eprintln!("bleedwatch: shard {} resumes at position {start} of {positions}", request.shard);
    }
    Ok(Some(SweepWorker { store, sweep, shard: request.shard, start, tracker: Arc::new(ShardTracker::new(start)) }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn progress_stops_at_the_lowest_position_in_flight() {
        let tracker = ShardTracker::new(10);
        assert_eq!(tracker.positions_done(), 10);
        tracker.handed_out(10, "a:443");
        tracker.handed_out(12, "b:443"); // 11 was excluded
        tracker.handed_out(13, "a:443"); // a duplicate spec
        assert_eq!(tracker.positions_done(), 10);
        tracker.done("b:443");
        assert_eq!(tracker.positions_done(), 10);
        tracker.done("a:443");
        assert_eq!(tracker.positions_done(), 13);
        tracker.done("a:443");
        assert_eq!(tracker.positions_done(), 14);
        tracker.done("never:1");
        tracker.exhausted(20);
        assert_eq!(tracker.positions_done(), 20);
    }

    #[test]
    fn differences_name_the_settings() {
        let a = serde_json::json!({"targets": ["10.0.0.0/8"], "ports": "443", "exclude_file": []});
        let b = serde_json::json!({"targets": ["10.0.0.0/8"], "ports": "8443", "exclude_file": ["x"]});
        assert_eq!(differences(&a, &b), ["exclude-file", "ports"]);
    }
}
