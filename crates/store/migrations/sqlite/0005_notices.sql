-- bleedwatch inventory, version 5 (SQLite): the notices `bleedwatch notify` sends users once an
-- endpoint is notify-ready. migrations/postgres/0005_notices.sql creates the same table and columns.
-- A notice is written (state sending, its Message-ID fixed) in its own transaction before the SMTP
-- transaction and updated after it, so a killed run never sends anyone the same notice twice.

CREATE TABLE notices (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    incident TEXT NOT NULL,                 -- what the notice is about (e.g. CVE-2014-0160)
    endpoint_id BIGINT NOT NULL REFERENCES endpoints (id),
    recipient TEXT NOT NULL,                -- the address, as the recipients file gave it (lower-cased)
    recipient_name TEXT NOT NULL,
    locale TEXT NOT NULL,
    message_id TEXT NOT NULL UNIQUE,        -- the Message-ID header, fixed before sending
    state TEXT NOT NULL,                    -- sending | sent | pending | failed; sending after a run = uncertain
    attempts BIGINT NOT NULL,               -- SMTP transactions started
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    sent_at_ms BIGINT,                      -- when the relay accepted it
    smtp_reply TEXT,                        -- the relay's last reply (or the error)
    UNIQUE (incident, endpoint_id, recipient)
);
CREATE INDEX notices_by_state ON notices (incident, state);
