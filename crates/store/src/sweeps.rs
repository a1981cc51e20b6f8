//! Sweeps: one scan run shared by many workers, each walking one shard of a seeded order, with
//! each shard's progress kept as "positions below X are recorded". A leaf: it writes runs itself
//! and reads nothing of the other query modules.

use sqlx::any::AnyRow;

use crate::row::get;
use crate::run_id::RunId;
use crate::{now_ms, Result, Store, StoreError};

/// What a worker asks to join: the sweep's name and what it sweeps.
#[derive(Debug, Clone)]
pub struct SweepSpec<'a> {
    pub name: &'a str,
    /// The seed for a sweep this worker creates (a joining worker takes the stored one).
    pub seed: u64,
    pub shard_count: u64,
    /// What is swept, as the binary serialises it; every worker must give the same.
    pub plan: &'a str,
    /// The command-line words of the sweep's scan run.
    pub arguments: &'a [String],
}

/// A sweep as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepRow {
    pub id: i64,
    pub name: String,
    pub run: RunId,
    pub seed: u64,
    pub shard_count: u64,
    pub plan: String,
    pub shards_finished: u64,
}

/// Whether this worker created the sweep or joined one that existed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SweepJoin {
    Created(SweepRow),
    Joined(SweepRow),
}

impl SweepJoin {
    pub fn sweep(&self) -> &SweepRow {
        match self {
            SweepJoin::Created(row) | SweepJoin::Joined(row) => row,
        }
    }
}

/// One shard's progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardRow {
    pub shard: u64,
    pub positions: u64,
    /// Positions below this have their results recorded.
    pub positions_done: u64,
    pub finished: bool,
}

fn sweep_row(row: &AnyRow) -> Result<SweepRow> {
    let unsigned = |column: &str| -> Result<u64> {
        u64::try_from(get::<i64>(row, column)?).map_err(|_| StoreError::Corrupt(format!("sweeps.{column} is negative")))
    };
    Ok(SweepRow {
        id: get(row, "id")?,
        name: get(row, "name")?,
        run: RunId(get(row, "scan_run_id")?),
        // The seed's bits, stored as a signed integer.
        seed: get::<i64>(row, "seed")? as u64,
        shard_count: unsigned("shard_count")?,
        plan: get(row, "plan")?,
        shards_finished: unsigned("shards_finished")?,
    })
}

fn shard_row(row: &AnyRow) -> Result<ShardRow> {
    let unsigned = |column: &str| -> Result<u64> {
        u64::try_from(get::<i64>(row, column)?).map_err(|_| StoreError::Corrupt(format!("sweep_shards.{column} is negative")))
    };
    Ok(ShardRow {
        shard: unsigned("shard")?,
        positions: unsigned("positions")?,
        positions_done: unsigned("positions_done")?,
        finished: get::<Option<i64>>(row, "finished_at_ms")?.is_some(),
    })
}

/// A count as the database stores it (BIGINT).
fn signed(value: u64, what: &str) -> Result<i64> {
    i64::try_from(value).map_err(|_| StoreError::BadResult(format!("{what} {value} is too large for the inventory")))
}

const SWEEP_COLUMNS: &str = "id, name, scan_run_id, seed, shard_count, plan, shards_finished";

impl Store {
    /// Creates the sweep `spec.name` with its scan run, or joins it when it exists (workers
    /// starting at once agree on one: the name is unique and the loser's run is rolled back).
    pub async fn join_sweep(&self, spec: &SweepSpec<'_>) -> Result<SweepJoin> {
        let arguments = serde_json::to_string(spec.arguments).map_err(|e| StoreError::BadResult(e.to_string()))?;
        let shard_count = signed(spec.shard_count, "shard count")?;
        if let Some(existing) = self.sweep(spec.name).await? {
            return Ok(SweepJoin::Joined(existing));
        }
        let mut tx = self.begin().await?;
        let now = now_ms();
        let run: AnyRow = sqlx::query(
            "INSERT INTO scan_runs (command, arguments, started_at_ms, status) VALUES ('scan', $1, $2, 'running') RETURNING id",
        )
        .bind(arguments)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let run: i64 = get(&run, "id")?;
        let created = sqlx::query(&format!(
            "INSERT INTO sweeps (name, scan_run_id, seed, shard_count, plan, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (name) DO NOTHING RETURNING {SWEEP_COLUMNS}"
        ))
        .bind(spec.name)
        .bind(run)
        .bind(spec.seed as i64)
        .bind(shard_count)
        .bind(spec.plan)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        match created {
            Some(row) => {
                let sweep = sweep_row(&row)?;
                tx.commit().await?;
                Ok(SweepJoin::Created(sweep))
            }
            None => {
                tx.rollback().await?;
                let existing = self.sweep(spec.name).await?;
                existing.map(SweepJoin::Joined).ok_or_else(|| StoreError::NotFound(format!("sweep {:?} vanished while joining it", spec.name)))
            }
        }
    }

    /// The sweep called `name`.
    pub async fn sweep(&self, name: &str) -> Result<Option<SweepRow>> {
        let row = sqlx::query(&format!("SELECT {SWEEP_COLUMNS} FROM sweeps WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(sweep_row).transpose()
    }

    /// The sweep whose scan run is `run`, if it is one.
    pub async fn sweep_of_run(&self, run: RunId) -> Result<Option<SweepRow>> {
        let row = sqlx::query(&format!("SELECT {SWEEP_COLUMNS} FROM sweeps WHERE scan_run_id = $1"))
            .bind(run.0)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(sweep_row).transpose()
    }

    /// Starts shard `shard` of `sweep` (`positions` long), or finds where it stopped: a replaced
    /// worker continues from the returned row's `positions_done`.
    pub async fn start_shard(&self, sweep: &SweepRow, shard: u64, positions: u64) -> Result<ShardRow> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO sweep_shards (sweep_id, shard, positions, positions_done, started_at_ms, updated_at_ms) \
             VALUES ($1, $2, $3, 0, $4, $4) ON CONFLICT (sweep_id, shard) DO NOTHING",
        )
        .bind(sweep.id)
        .bind(signed(shard, "shard")?)
        .bind(signed(positions, "shard length")?)
        .bind(now)
        .execute(&self.pool)
        .await?;
        let row = sqlx::query(
            "SELECT shard, positions, positions_done, finished_at_ms FROM sweep_shards WHERE sweep_id = $1 AND shard = $2",
        )
        .bind(sweep.id)
        .bind(signed(shard, "shard")?)
        .fetch_one(&self.pool)
        .await?;
        shard_row(&row)
    }

    /// Records that the shard's positions below `positions_done` have their results recorded
    /// (never moves backwards: a slower writer cannot undo a later one's progress).
    pub async fn record_shard_progress(&self, sweep: &SweepRow, shard: u64, positions_done: u64) -> Result<()> {
        sqlx::query(
            "UPDATE sweep_shards SET positions_done = CASE WHEN positions_done > $1 THEN positions_done ELSE $1 END, \
             updated_at_ms = $2 WHERE sweep_id = $3 AND shard = $4",
        )
        .bind(signed(positions_done, "shard position")?)
        .bind(now_ms())
        .bind(sweep.id)
        .bind(signed(shard, "shard")?)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks the shard finished; when it was the sweep's last, the sweep's run is finished too.
    /// Returns whether the whole sweep is now finished.
    pub async fn finish_shard(&self, sweep: &SweepRow, shard: u64) -> Result<bool> {
        let mut tx = self.begin().await?;
        let now = now_ms();
        let changed = sqlx::query(
            "UPDATE sweep_shards SET positions_done = positions, finished_at_ms = $1, updated_at_ms = $1 \
             WHERE sweep_id = $2 AND shard = $3 AND finished_at_ms IS NULL",
        )
        .bind(now)
        .bind(sweep.id)
        .bind(signed(shard, "shard")?)
        .execute(&mut *tx)
        .await?;
        // Counted on the sweep's row, which serialises the shards finishing at once.
        let row = sqlx::query(
            "UPDATE sweeps SET shards_finished = shards_finished + $1 WHERE id = $2 RETURNING shards_finished, shard_count",
        )
        .bind(i64::from(changed.rows_affected() > 0))
        .bind(sweep.id)
        .fetch_one(&mut *tx)
        .await?;
        let (finished, count): (i64, i64) = (get(&row, "shards_finished")?, get(&row, "shard_count")?);
        let all = finished >= count;
        if all {
            sqlx::query("UPDATE scan_runs SET finished_at_ms = $1, status = 'finished' WHERE id = $2 AND finished_at_ms IS NULL")
                .bind(now)
                .bind(sweep.run.0)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(all)
    }

    /// The sweep's shards that have started, by shard number.
    pub async fn sweep_shards(&self, sweep: &SweepRow) -> Result<Vec<ShardRow>> {
        let rows = sqlx::query(
            "SELECT shard, positions, positions_done, finished_at_ms FROM sweep_shards WHERE sweep_id = $1 ORDER BY shard",
        )
        .bind(sweep.id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(shard_row).collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn spec<'a>(name: &'a str, plan: &'a str, shards: u64) -> SweepSpec<'a> {
        SweepSpec { name, seed: u64::MAX - 5, shard_count: shards, plan, arguments: &[] }
    }

    #[tokio::test]
    async fn workers_share_one_sweep_and_its_run_finishes_with_the_last_shard() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let first = store.join_sweep(&spec("net", "{}", 2)).await.unwrap();
        let SweepJoin::Created(sweep) = first else { panic!("{first:?}") };
        assert_eq!(sweep.seed, u64::MAX - 5);
        let again = store.join_sweep(&SweepSpec { seed: 1, ..spec("net", "{}", 2) }).await.unwrap();
        assert_eq!(again, SweepJoin::Joined(sweep.clone()));
        assert_eq!(store.runs().await.unwrap().len(), 1, "one run for the sweep");

        let shard = store.start_shard(&sweep, 1, 10).await.unwrap();
        assert_eq!((shard.positions_done, shard.finished), (0, false));
        store.record_shard_progress(&sweep, 1, 7).await.unwrap();
        store.record_shard_progress(&sweep, 1, 3).await.unwrap();
        // A replaced worker finds the furthest progress.
        assert_eq!(store.start_shard(&sweep, 1, 10).await.unwrap().positions_done, 7);

        assert!(!store.finish_shard(&sweep, 1).await.unwrap());
        // Finishing the same shard twice (a replaced worker) counts once.
        assert!(!store.finish_shard(&sweep, 1).await.unwrap());
        assert!(store.run(sweep.run).await.unwrap().finished_at_ms.is_none());
        store.start_shard(&sweep, 0, 10).await.unwrap();
        assert!(store.finish_shard(&sweep, 0).await.unwrap());
        let run = store.run(sweep.run).await.unwrap();
        assert_eq!(run.status, "finished");
        let shards = store.sweep_shards(&sweep).await.unwrap();
        assert!(shards.iter().all(|s| s.finished && s.positions_done == s.positions));
        assert_eq!(store.sweep_of_run(sweep.run).await.unwrap(), store.sweep("net").await.unwrap());
    }
}
