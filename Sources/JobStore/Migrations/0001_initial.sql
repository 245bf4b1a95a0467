-- 0001: datasets, jobs and their per-epoch metrics.
-- Append-only: never edit this file once it has landed; add 0002_….sql instead.
-- Dates are GRDB's text format ('YYYY-MM-DD HH:MM:SS.SSS', UTC), so they sort as text.
-- JSON columns are checked with json_valid: only well-formed JSON text can be stored.

CREATE TABLE datasets (
    id            TEXT    NOT NULL PRIMARY KEY,
    name          TEXT    NOT NULL,
    format        TEXT    NOT NULL CHECK (format IN ('csv', 'idx', 'npy')),
    rows          INTEGER NOT NULL CHECK (rows >= 0),
    features      INTEGER NOT NULL CHECK (features >= 0),
    feature_names TEXT    NOT NULL CHECK (json_valid(feature_names)),
    target        TEXT,
    task          TEXT    NOT NULL CHECK (task IN ('classification', 'regression')),
    classes       TEXT             CHECK (classes IS NULL OR json_valid(classes)),
    shape         TEXT    NOT NULL CHECK (json_valid(shape)),
    bytes         INTEGER NOT NULL CHECK (bytes >= 0),
    file_name     TEXT    NOT NULL,
    created_at    TEXT    NOT NULL
);

-- No foreign key to datasets: built-in datasets have ids like 'builtin:spirals' and no row.
-- Deleting a dataset that active jobs use is refused by the repository instead.
CREATE TABLE jobs (
    id               TEXT    NOT NULL PRIMARY KEY,
    name             TEXT,
    status           TEXT    NOT NULL DEFAULT 'queued'
                             CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    priority         INTEGER NOT NULL DEFAULT 0,
    dataset_id       TEXT    NOT NULL,
    spec             TEXT    NOT NULL CHECK (json_valid(spec)),
    attempt          INTEGER NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts     INTEGER NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    epoch            INTEGER NOT NULL DEFAULT 0 CHECK (epoch >= 0),
    epochs           INTEGER NOT NULL CHECK (epochs >= 0),
    progress         REAL    NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 1),
    latest           TEXT             CHECK (latest IS NULL OR json_valid(latest)),
    best_epoch       INTEGER,
    stopped_early    INTEGER NOT NULL DEFAULT 0 CHECK (stopped_early IN (0, 1)),
    error_code       TEXT,
    error_message    TEXT,
    result           TEXT             CHECK (result IS NULL OR json_valid(result)),
    cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
    idempotency_key  TEXT    UNIQUE,
    created_at       TEXT    NOT NULL,
    started_at       TEXT,
    finished_at      TEXT,
    -- A job has a finish time exactly when it is in a final state.
    CHECK ((finished_at IS NOT NULL) = (status IN ('succeeded', 'failed', 'cancelled'))),
    -- A running job has been started.
    CHECK (status <> 'running' OR started_at IS NOT NULL)
);

-- The claim query: WHERE status = 'queued' ORDER BY priority DESC, created_at, rowid.
-- (Every index ends with the rowid, so the tie-break is covered too.)
CREATE INDEX jobs_queue ON jobs (status, priority DESC, created_at);
-- Listing newest first (ORDER BY created_at DESC, id DESC), optionally by status.
CREATE INDEX jobs_created ON jobs (created_at, id);
CREATE INDEX jobs_status_created ON jobs (status, created_at, id);
-- "Is this dataset used by a queued or running job?"
CREATE INDEX jobs_dataset ON jobs (dataset_id, status);

-- A plain rowid table (not WITHOUT ROWID): GRDB's upsert relies on the rowid.
CREATE TABLE metrics (
    job_id             TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    epoch              INTEGER NOT NULL CHECK (epoch >= 1),
    train_loss         REAL    NOT NULL,
    train_accuracy     REAL,
    val_loss           REAL,
    val_accuracy       REAL,
    lr                 REAL    NOT NULL,
    grad_norm          REAL    NOT NULL,
    penalty            REAL    NOT NULL,
    sparsity           REAL    NOT NULL CHECK (sparsity BETWEEN 0 AND 1),
    seconds            REAL    NOT NULL CHECK (seconds >= 0),
    samples_per_second REAL    NOT NULL CHECK (samples_per_second >= 0),
    PRIMARY KEY (job_id, epoch)
);
