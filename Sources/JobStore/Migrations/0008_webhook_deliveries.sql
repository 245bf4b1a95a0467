-- 0008: every attempt to deliver a job's webhook (`notify`), for the job page's delivery log.
-- Append-only: never edit this file once it has landed; add 0009_….sql instead.

CREATE TABLE webhook_deliveries (
    id           INTEGER PRIMARY KEY,
    job_id       TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    event        TEXT    NOT NULL CHECK (event IN ('succeeded', 'failed', 'cancelled')),
    url          TEXT    NOT NULL,
    -- 1 for the first try, then one more per retry.
    attempt      INTEGER NOT NULL CHECK (attempt >= 1),
    -- The receiver's HTTP status, or NULL when no answer came (connection refused, timeout).
    status_code  INTEGER,
    error        TEXT,
    delivered    INTEGER NOT NULL CHECK (delivered IN (0, 1)),
    duration_ms  REAL    NOT NULL CHECK (duration_ms >= 0),
    attempted_at TEXT    NOT NULL
);
CREATE INDEX webhook_deliveries_job ON webhook_deliveries (job_id, id);
