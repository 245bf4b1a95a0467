-- PostgreSQL 0001: the schema of the SQLite migrations 0001…0008 as it stands after them, for a fleet
-- of servers that share one queue (`descent serve --database postgres://…`), plus the lease of a
-- running job. Append-only like the SQLite files: add 0002_….sql, never edit this one once landed.
-- Each statement ends with a semicolon at the end of a line (the runner splits on them).
-- JSON columns are text checked by a cast to jsonb (malformed JSON fails the insert).

CREATE TABLE datasets (
    id               text        NOT NULL PRIMARY KEY,
    tenant           text        NOT NULL DEFAULT 'default' CHECK (tenant ~ '^[A-Za-z0-9_-]{1,64}$'),
    name             text        NOT NULL,
    format           text        NOT NULL CHECK (format IN ('csv', 'idx', 'npy')),
    rows             bigint      NOT NULL CHECK (rows >= 0),
    features         bigint      NOT NULL CHECK (features >= 0),
    feature_names    text        NOT NULL CHECK (feature_names::jsonb IS NOT NULL),
    target           text,
    task             text        NOT NULL CHECK (task IN ('classification', 'regression', 'unlabeled')),
    classes          text                 CHECK (classes IS NULL OR classes::jsonb IS NOT NULL),
    shape            text        NOT NULL CHECK (shape::jsonb IS NOT NULL),
    bytes            bigint      NOT NULL CHECK (bytes >= 0),
    file_name        text        NOT NULL,
    created_at       timestamptz NOT NULL,
    labels_file_name text,
    CHECK (labels_file_name IS NULL OR format IN ('idx', 'npy')),
    CHECK (task <> 'unlabeled' OR (format IN ('idx', 'npy') AND classes IS NULL AND labels_file_name IS NULL))
);
CREATE INDEX datasets_tenant_created ON datasets (tenant, created_at, id);

CREATE TABLE studies (
    id               text        NOT NULL PRIMARY KEY CHECK (id LIKE 'st\_%'),
    tenant           text        NOT NULL DEFAULT 'default' CHECK (tenant ~ '^[A-Za-z0-9_-]{1,64}$'),
    name             text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    spec             text        NOT NULL CHECK (jsonb_typeof(spec::jsonb) = 'object'),
    strategy         text        NOT NULL CHECK (strategy IN ('grid', 'random')),
    objective_metric text        NOT NULL
                                 CHECK (objective_metric IN ('val_loss', 'val_accuracy', 'train_loss', 'train_accuracy', 'test_accuracy')),
    objective_mode   text        NOT NULL CHECK (objective_mode IN ('min', 'max')),
    created_at       timestamptz NOT NULL
);
CREATE INDEX studies_tenant_created ON studies (tenant, created_at, id);

CREATE TABLE jobs (
    id               text        NOT NULL PRIMARY KEY,
    -- Insertion order: the queue's last tie-break and the order of a study's jobs (SQLite's rowid).
    seq              bigint      GENERATED ALWAYS AS IDENTITY,
    tenant           text        NOT NULL DEFAULT 'default' CHECK (tenant ~ '^[A-Za-z0-9_-]{1,64}$'),
    name             text,
    status           text        NOT NULL DEFAULT 'queued'
                                 CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    priority         bigint      NOT NULL DEFAULT 0,
    dataset_id       text        NOT NULL,
    spec             text        NOT NULL CHECK (spec::jsonb IS NOT NULL),
    attempt          bigint      NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts     bigint      NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    epoch            bigint      NOT NULL DEFAULT 0 CHECK (epoch >= 0),
    epochs           bigint      NOT NULL CHECK (epochs >= 0),
    progress         double precision NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 1),
    latest           text                 CHECK (latest IS NULL OR latest::jsonb IS NOT NULL),
    best_epoch       bigint,
    stopped_early    boolean     NOT NULL DEFAULT false,
    error_code       text,
    error_message    text,
    result           text                 CHECK (result IS NULL OR result::jsonb IS NOT NULL),
    cancel_requested boolean     NOT NULL DEFAULT false,
    idempotency_key  text,
    created_at       timestamptz NOT NULL,
    started_at       timestamptz,
    finished_at      timestamptz,
    study_id         text        REFERENCES studies (id) ON DELETE SET NULL,
    study_parameters text
                     CHECK (study_parameters IS NULL OR jsonb_typeof(study_parameters::jsonb) = 'object')
                     CHECK (study_id IS NULL OR study_parameters IS NOT NULL),
    checkpoint_epoch bigint               CHECK (checkpoint_epoch IS NULL OR checkpoint_epoch >= 1),
    -- The node (`--node-id`) that claimed the job last: kept after it finishes (who ran it).
    lease_owner      text,
    -- A running job's lease, renewed by its node's heartbeat; once past, any node requeues the job.
    lease_expires_at timestamptz,
    CHECK ((finished_at IS NOT NULL) = (status IN ('succeeded', 'failed', 'cancelled'))),
    CHECK (status <> 'running' OR (started_at IS NOT NULL AND lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL)),
    UNIQUE (tenant, idempotency_key)
);
-- The claim query: WHERE status = 'queued' ORDER BY priority DESC, created_at, seq … FOR UPDATE SKIP LOCKED.
CREATE INDEX jobs_queue ON jobs (priority DESC, created_at, seq) WHERE status = 'queued';
-- The heartbeat's sweep for expired leases.
CREATE INDEX jobs_leases ON jobs (lease_expires_at) WHERE status = 'running';
CREATE INDEX jobs_dataset ON jobs (dataset_id, status);
CREATE INDEX jobs_study ON jobs (study_id, seq);
CREATE INDEX jobs_tenant_created ON jobs (tenant, created_at, id);
CREATE INDEX jobs_tenant_status_created ON jobs (tenant, status, created_at, id);

CREATE TABLE metrics (
    job_id             text             NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    epoch              bigint           NOT NULL CHECK (epoch >= 1),
    train_loss         double precision NOT NULL,
    train_accuracy     double precision,
    val_loss           double precision,
    val_accuracy       double precision,
    lr                 double precision NOT NULL,
    grad_norm          double precision NOT NULL,
    penalty            double precision NOT NULL,
    sparsity           double precision NOT NULL CHECK (sparsity BETWEEN 0 AND 1),
    seconds            double precision NOT NULL CHECK (seconds >= 0),
    samples_per_second double precision NOT NULL CHECK (samples_per_second >= 0),
    d_loss             double precision,
    g_loss             double precision,
    d_real             double precision CHECK (d_real IS NULL OR d_real BETWEEN 0 AND 1),
    d_fake             double precision CHECK (d_fake IS NULL OR d_fake BETWEEN 0 AND 1),
    val_class_recall   text             CHECK (val_class_recall IS NULL OR val_class_recall::jsonb IS NOT NULL),
    val_macro_f1       double precision CHECK (val_macro_f1 IS NULL OR val_macro_f1 BETWEEN 0 AND 1),
    PRIMARY KEY (job_id, epoch)
);

CREATE TABLE tokens (
    id         text        NOT NULL PRIMARY KEY CHECK (id LIKE 'tok\_%'),
    tenant     text        NOT NULL CHECK (tenant ~ '^[A-Za-z0-9_-]{1,64}$'),
    token_hash text        NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    created_at timestamptz NOT NULL,
    revoked_at timestamptz
);

CREATE TABLE webhook_deliveries (
    id           bigint           GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id       text             NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    event        text             NOT NULL CHECK (event IN ('succeeded', 'failed', 'cancelled')),
    url          text             NOT NULL,
    attempt      bigint           NOT NULL CHECK (attempt >= 1),
    status_code  bigint,
    error        text,
    delivered    boolean          NOT NULL,
    duration_ms  double precision NOT NULL CHECK (duration_ms >= 0),
    attempted_at timestamptz      NOT NULL
);
CREATE INDEX webhook_deliveries_job ON webhook_deliveries (job_id, id);
