-- Sweeps: one scan run shared by many workers (processes, Kubernetes pods), each walking one shard
-- of a seeded pseudo-random order over the same plan. The sweep's observations all belong to its
-- one scan run, so UNIQUE (scan_run_id, endpoint_id) keeps a position done twice recorded once.
CREATE TABLE sweeps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    scan_run_id BIGINT NOT NULL REFERENCES scan_runs(id),
    seed BIGINT NOT NULL,                   -- the order's u64 seed, its bits as a signed integer
    shard_count BIGINT NOT NULL,
    plan TEXT NOT NULL,                     -- JSON: what is swept; every worker must give the same
    shards_finished BIGINT NOT NULL DEFAULT 0,
    created_at_ms BIGINT NOT NULL
);

-- A shard's progress: its positions below positions_done have their results recorded (written after
-- the results it covers, so a replaced worker resumes there and loses nothing).
CREATE TABLE sweep_shards (
    sweep_id BIGINT NOT NULL REFERENCES sweeps(id),
    shard BIGINT NOT NULL,
    positions BIGINT NOT NULL,              -- the shard's length
    positions_done BIGINT NOT NULL,
    started_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    finished_at_ms BIGINT,
    PRIMARY KEY (sweep_id, shard)
);
