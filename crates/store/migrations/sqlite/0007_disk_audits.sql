-- bleedwatch inventory (SQLite): what `bleedwatch audit` found on disk, in packages and in images, so
-- that a product carrying a vulnerable OpenSSL and the endpoints it serves meet in one place.
-- migrations/postgres/0007_disk_audits.sql is the same schema.

-- One audit of one asset (a host's files or an image): every OpenSSL copy it found is a finding.
CREATE TABLE disk_audits (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    scan_run_id BIGINT NOT NULL REFERENCES scan_runs (id),
    asset TEXT NOT NULL,                    -- host or image name the files belong to
    audited_at_ms BIGINT NOT NULL,
    complete BIGINT NOT NULL,               -- 1: every file was read; 0: some could not be (the findings may miss copies)
    unread TEXT NOT NULL,                   -- JSON array: what could not be read, and why
    UNIQUE (scan_run_id, asset)
);
CREATE INDEX disk_audits_by_asset ON disk_audits (asset);

CREATE TABLE disk_findings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    audit_id BIGINT NOT NULL REFERENCES disk_audits (id),
    location TEXT NOT NULL,                 -- JSON array: path inside path inside image, outermost first
    image TEXT,                             -- the image's name or digest when the copy is inside one
    kind TEXT NOT NULL,                     -- shared-libssl | shared-libcrypto | static | openssl-tool
    version TEXT,                           -- as the bytes say (1.0.1f)
    heartbeats TEXT NOT NULL,               -- compiled-in | disabled | unknown
    package TEXT,                           -- the owning package: name
    package_version TEXT,
    distribution TEXT,
    advisory TEXT,                          -- the distribution's advisory that decided (DSA-2896-1)
    verdict TEXT NOT NULL,                  -- vulnerable | heartbeats-disabled | fixed-by-distribution | not-affected | unknown
    reason TEXT NOT NULL,
    UNIQUE (audit_id, location)
);
