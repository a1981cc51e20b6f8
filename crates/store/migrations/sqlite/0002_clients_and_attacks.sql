-- bleedwatch inventory, version 2 (SQLite): the TLS clients `client-test` tested, and the Heartbleed
-- attempts the honeypot saw or packet captures showed. migrations/postgres/0002_clients_and_attacks.sql
-- creates the same tables and columns. Same conventions as version 1: Unix milliseconds, 0/1 flags,
-- rows only added (an attack's endpoint link is filled in once the endpoint is known).

CREATE TABLE client_tests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    scan_run_id BIGINT REFERENCES scan_runs (id),   -- the client-test run that saw the client
    listener TEXT NOT NULL,                 -- address:port the client connected to
    tested_at_ms BIGINT NOT NULL,
    client_address TEXT NOT NULL,
    client_port BIGINT NOT NULL,
    service TEXT NOT NULL,                  -- tls, or the STARTTLS dialect the client spoke first
    tls_version TEXT,                       -- the version the test spoke (the offer, capped at TLS 1.2)
    offered_version TEXT,                   -- the version of the client's ClientHello
    heartbeat_mode TEXT,                    -- the client's heartbeat extension mode; NULL = not offered
    server_name TEXT,                       -- the SNI the client sent
    verdict TEXT NOT NULL,                  -- vulnerable | not-vulnerable | no-heartbeat | inconclusive
    reason TEXT,
    leaked_bytes BIGINT,                    -- --prove only: a count, never the bytes
    leak_sha256 TEXT,
    result_json TEXT NOT NULL               -- the client-test JSON line as written (no secrets in it)
);
CREATE INDEX client_tests_by_client ON client_tests (client_address, tested_at_ms);

CREATE TABLE attacks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    scan_run_id BIGINT REFERENCES scan_runs (id),   -- the honeypot or pcap run that recorded it
    origin TEXT NOT NULL,                   -- honeypot | pcap
    observed_at_ms BIGINT NOT NULL,         -- when the heartbeat was seen (capture time for pcap)
    source_address TEXT NOT NULL,           -- who sent the heartbeat
    source_port BIGINT NOT NULL,
    target_address TEXT NOT NULL,           -- who was asked (the honeypot's listener, the capture's victim)
    target_port BIGINT NOT NULL,
    transport TEXT NOT NULL,                -- tcp | udp
    kind TEXT NOT NULL,                     -- honeypot: over-read | memory-safe-probe | honest; pcap: the finding's kind
    severity TEXT NOT NULL,                 -- info | suspicious | probe | attack | success
    notice TEXT,                            -- the Zeek notice name (pcap)
    tls_version TEXT,
    encrypted BIGINT NOT NULL,
    record_length BIGINT,
    claimed_length BIGINT,                  -- the heartbeat's payload_length
    payload_length BIGINT,                  -- payload bytes it really carried
    succeeded BIGINT NOT NULL,              -- the target answered: it was vulnerable, memory may have leaked
    leaked_bytes BIGINT,                    -- a count, never the bytes
    file TEXT,                              -- pcap: the capture as named when imported
    file_sha256 TEXT,                       -- pcap: the capture's SHA-256
    connection BIGINT,                      -- pcap: connection number within the capture
    evidence_key TEXT UNIQUE,               -- pcap: sha256/connection/time/kind/occurrence, so re-imports add nothing
    endpoint_id BIGINT REFERENCES endpoints (id),   -- pcap: the inventory endpoint at the target address and port
    details TEXT NOT NULL,                  -- the producer's JSON line (no payload bytes in it)
    recorded_at_ms BIGINT NOT NULL
);
CREATE INDEX attacks_by_target ON attacks (target_address, target_port, transport);
CREATE INDEX attacks_by_source ON attacks (source_address, observed_at_ms);
CREATE INDEX attacks_by_endpoint ON attacks (endpoint_id);
