-- bleedwatch inventory, version 1 (SQLite). migrations/postgres/0001_inventory.sql creates the same
-- tables and columns; only identity columns and the binary type are spelled differently.
-- Times are Unix milliseconds (*_ms) or seconds (*_unix); flags are 0/1 integers (portable through
-- sqlx's Any driver). Rows are only ever added, or updated in place for "last seen" bookkeeping:
-- history is never overwritten.

CREATE TABLE scan_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    command TEXT NOT NULL,
    arguments TEXT NOT NULL,                -- JSON array of the command-line words
    started_at_ms BIGINT NOT NULL,
    finished_at_ms BIGINT,
    status TEXT NOT NULL                    -- running | finished | failed
);

CREATE TABLE endpoints (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    address TEXT NOT NULL,
    port BIGINT NOT NULL,
    transport TEXT NOT NULL,
    sni TEXT NOT NULL,                      -- server name the endpoint is scanned under; '' = none
    host TEXT,                              -- name the target was given as (latest)
    service TEXT NOT NULL,
    first_seen_ms BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL,
    UNIQUE (address, port, transport, sni)
);

CREATE TABLE certificates (
    cert_sha256 TEXT PRIMARY KEY,
    spki_sha256 TEXT NOT NULL,
    subject TEXT NOT NULL,
    issuer TEXT NOT NULL,
    serial TEXT NOT NULL,
    sans TEXT NOT NULL,                     -- JSON array
    not_before_unix BIGINT NOT NULL,
    not_after_unix BIGINT NOT NULL,
    key_type TEXT NOT NULL,
    key_bits BIGINT,
    signature_algorithm TEXT NOT NULL,
    self_signed BIGINT NOT NULL,
    crl_urls TEXT NOT NULL,                 -- JSON arrays
    ocsp_urls TEXT NOT NULL,
    ca_issuer_urls TEXT NOT NULL,
    der BLOB,                               -- when known (issuers loaded for revocation checks)
    first_seen_ms BIGINT NOT NULL
);
CREATE INDEX certificates_by_spki ON certificates (spki_sha256);

CREATE TABLE observations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    scan_run_id BIGINT NOT NULL REFERENCES scan_runs (id),
    endpoint_id BIGINT NOT NULL REFERENCES endpoints (id),
    observed_at_ms BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    status TEXT NOT NULL,
    verdict TEXT NOT NULL,
    reason TEXT,
    versions TEXT NOT NULL,                 -- JSON object: version -> verdict
    vulnerable_versions TEXT NOT NULL,      -- JSON array
    heartbeat_extension BIGINT NOT NULL,    -- some connection negotiated the heartbeat extension
    service TEXT NOT NULL,
    host TEXT,
    sni_used TEXT,                          -- the SNI that worked (the result's "sni")
    leaf_cert_sha256 TEXT REFERENCES certificates (cert_sha256),
    leaf_spki_sha256 TEXT,
    leaked_bytes BIGINT,                    -- --prove only: a count, never the bytes
    result_json TEXT NOT NULL,              -- the scan's JSON line as written (no secrets in it)
    UNIQUE (scan_run_id, endpoint_id)
);
CREATE INDEX observations_by_endpoint ON observations (endpoint_id, observed_at_ms);
CREATE INDEX observations_by_spki ON observations (leaf_spki_sha256);
CREATE INDEX observations_by_verdict ON observations (verdict);

CREATE TABLE observation_certs (
    observation_id BIGINT NOT NULL REFERENCES observations (id),
    position BIGINT NOT NULL,               -- 0 = leaf, as presented
    cert_sha256 TEXT NOT NULL REFERENCES certificates (cert_sha256),
    PRIMARY KEY (observation_id, position)
);

CREATE TABLE assets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    host TEXT NOT NULL UNIQUE,              -- name, *.domain, address, CIDR or range
    owner TEXT NOT NULL,
    criticality TEXT NOT NULL,
    internet_facing BIGINT NOT NULL,
    notes TEXT NOT NULL,
    source TEXT NOT NULL,                   -- csv | nmap | masscan
    updated_at_ms BIGINT NOT NULL
);

CREATE TABLE endpoint_assets (
    endpoint_id BIGINT PRIMARY KEY REFERENCES endpoints (id),
    asset_id BIGINT NOT NULL REFERENCES assets (id)
);

CREATE TABLE known_targets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    address TEXT NOT NULL,
    port BIGINT NOT NULL,
    transport TEXT NOT NULL,
    hostname TEXT,
    service TEXT,
    source TEXT NOT NULL,                   -- nmap | masscan
    imported_at_ms BIGINT NOT NULL,
    UNIQUE (address, port, transport)
);

CREATE TABLE revocation_checks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    cert_sha256 TEXT NOT NULL REFERENCES certificates (cert_sha256),
    method TEXT NOT NULL,                   -- crl | ocsp
    source TEXT NOT NULL,                   -- URL or file
    result TEXT NOT NULL,                   -- good | revoked | unknown | error
    revoked_at_unix BIGINT,
    reason TEXT,
    detail TEXT NOT NULL,
    checked_at_ms BIGINT NOT NULL
);
CREATE INDEX revocation_checks_by_cert ON revocation_checks (cert_sha256);

CREATE TABLE key_pins (
    endpoint_id BIGINT NOT NULL REFERENCES endpoints (id),
    spki_sha256 TEXT NOT NULL,
    since_ms BIGINT NOT NULL,
    note TEXT NOT NULL,
    PRIMARY KEY (endpoint_id, spki_sha256)
);

CREATE TABLE alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint_id BIGINT NOT NULL REFERENCES endpoints (id),
    observation_id BIGINT NOT NULL REFERENCES observations (id),
    kind TEXT NOT NULL,                     -- exposed-key-returned | unexpected-certificate | regressed
    spki_sha256 TEXT,
    detail TEXT NOT NULL,
    raised_at_ms BIGINT NOT NULL,           -- the observation's time
    recorded_at_ms BIGINT NOT NULL,
    acknowledged_at_ms BIGINT,
    UNIQUE (observation_id, kind)
);

CREATE TABLE scan_targets (
    scan_run_id BIGINT NOT NULL REFERENCES scan_runs (id),
    seq BIGINT NOT NULL,
    target TEXT NOT NULL,
    done BIGINT NOT NULL,
    PRIMARY KEY (scan_run_id, seq),
    UNIQUE (scan_run_id, target)
);
