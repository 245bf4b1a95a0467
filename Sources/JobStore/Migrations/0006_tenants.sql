-- 0006: tenants and access tokens. Every dataset, job and study belongs to one tenant: the tenant
-- of the token that created it, or 'default' (auth off, and everything stored before this file).
-- Append-only: never edit this file once it has landed; add 0007_….sql instead.
--
-- A tenant name is 1 to 64 letters, digits, '-' and '_' (the same rule as `Tenant.isValidName`).

ALTER TABLE datasets ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default'
    CHECK (length(tenant) BETWEEN 1 AND 64 AND tenant NOT GLOB '*[^A-Za-z0-9_-]*');
ALTER TABLE studies ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default'
    CHECK (length(tenant) BETWEEN 1 AND 64 AND tenant NOT GLOB '*[^A-Za-z0-9_-]*');

-- Listing a tenant's datasets and studies newest first (ORDER BY created_at DESC, id DESC).
CREATE INDEX datasets_tenant_created ON datasets (tenant, created_at, id);
CREATE INDEX studies_tenant_created ON studies (tenant, created_at, id);

-- jobs is rebuilt (SQLite cannot drop a UNIQUE constraint in place): an idempotency key was unique
-- across the table and is now unique per tenant, so two tenants may pick the same key and neither
-- reaches the other's job through it. Rows keep their rowids (the queue's and the studies' order).
-- Foreign keys are off during migrations, so dropping the old table leaves the metrics in place.
CREATE TABLE jobs_0006 (
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
    idempotency_key  TEXT,
    created_at       TEXT    NOT NULL,
    started_at       TEXT,
    finished_at      TEXT,
    study_id         TEXT    REFERENCES studies (id) ON DELETE SET NULL,
    study_parameters TEXT
                     CHECK (study_parameters IS NULL OR (json_valid(study_parameters) AND json_type(study_parameters) = 'object'))
                     CHECK (study_id IS NULL OR study_parameters IS NOT NULL),
    tenant           TEXT    NOT NULL DEFAULT 'default'
                             CHECK (length(tenant) BETWEEN 1 AND 64 AND tenant NOT GLOB '*[^A-Za-z0-9_-]*'),
    CHECK ((finished_at IS NOT NULL) = (status IN ('succeeded', 'failed', 'cancelled'))),
    CHECK (status <> 'running' OR started_at IS NOT NULL),
    UNIQUE (tenant, idempotency_key)
);

INSERT INTO jobs_0006 (
    rowid, id, name, status, priority, dataset_id, spec, attempt, max_attempts, epoch, epochs, progress, latest,
    best_epoch, stopped_early, error_code, error_message, result, cancel_requested, idempotency_key, created_at,
    started_at, finished_at, study_id, study_parameters)
SELECT
    rowid, id, name, status, priority, dataset_id, spec, attempt, max_attempts, epoch, epochs, progress, latest,
    best_epoch, stopped_early, error_code, error_message, result, cancel_requested, idempotency_key, created_at,
    started_at, finished_at, study_id, study_parameters
FROM jobs;

DROP TABLE jobs;
ALTER TABLE jobs_0006 RENAME TO jobs;

-- The indexes of 0001 and 0002 went with the old table. The claim query (all tenants):
CREATE INDEX jobs_queue ON jobs (status, priority DESC, created_at);
-- "Is this dataset used by a queued or running job?"
CREATE INDEX jobs_dataset ON jobs (dataset_id, status);
-- "The jobs of this study", in the order they were created.
CREATE INDEX jobs_study ON jobs (study_id);
-- Listing a tenant's jobs newest first, optionally by status; counting its queued and running jobs.
-- (They replace 0001's jobs_created and jobs_status_created: every listing is a tenant's now.)
CREATE INDEX jobs_tenant_created ON jobs (tenant, created_at, id);
CREATE INDEX jobs_tenant_status_created ON jobs (tenant, status, created_at, id);

-- Access tokens (`descent token create`). Only the SHA-256 of a token is stored: the token itself
-- is shown once, when it is made. A revoked token stays listed, with the time it was revoked.
CREATE TABLE tokens (
    id         TEXT NOT NULL PRIMARY KEY CHECK (id LIKE 'tok\_%' ESCAPE '\'),
    tenant     TEXT NOT NULL CHECK (length(tenant) BETWEEN 1 AND 64 AND tenant NOT GLOB '*[^A-Za-z0-9_-]*'),
    -- Lowercase hex; UNIQUE gives the index each request's lookup uses.
    token_hash TEXT NOT NULL UNIQUE CHECK (length(token_hash) = 64 AND token_hash NOT GLOB '*[^0-9a-f]*'),
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
