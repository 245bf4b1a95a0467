-- 0002: studies (comparisons and hyperparameter searches) and the link from each job to its study.
-- Append-only: never edit this file once it has landed; add 0003_….sql instead.

CREATE TABLE studies (
    id               TEXT    NOT NULL PRIMARY KEY CHECK (id LIKE 'st\_%' ESCAPE '\'),
    name             TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- The request as posted (base spec, search, parameters, objective), defaults filled in.
    spec             TEXT    NOT NULL CHECK (json_valid(spec) AND json_type(spec) = 'object'),
    strategy         TEXT    NOT NULL CHECK (strategy IN ('grid', 'random')),
    objective_metric TEXT    NOT NULL
                             CHECK (objective_metric IN ('val_loss', 'val_accuracy', 'train_loss', 'train_accuracy', 'test_accuracy')),
    objective_mode   TEXT    NOT NULL CHECK (objective_mode IN ('min', 'max')),
    created_at       TEXT    NOT NULL
);

-- Listing newest first (ORDER BY created_at DESC, id DESC).
CREATE INDEX studies_created ON studies (created_at, id);

-- Deleting a study keeps its jobs: they become ordinary jobs (study_id NULL) and keep the
-- parameters they were created with.
ALTER TABLE jobs ADD COLUMN study_id TEXT REFERENCES studies (id) ON DELETE SET NULL;
-- JSON object {"<path>": value, …}: the values this job's spec took from the study's parameters.
-- A job of a study always has them.
ALTER TABLE jobs ADD COLUMN study_parameters TEXT
    CHECK (study_parameters IS NULL OR (json_valid(study_parameters) AND json_type(study_parameters) = 'object'))
    CHECK (study_id IS NULL OR study_parameters IS NOT NULL);

-- "The jobs of this study", in the order they were created.
CREATE INDEX jobs_study ON jobs (study_id);
