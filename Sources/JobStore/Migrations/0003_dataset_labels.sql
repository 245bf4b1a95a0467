-- 0003: IDX and NPY uploads, whose labels may come in a second upload (`labels_of`).
-- Append-only: never edit this file once it has landed; add 0004_….sql instead.
--
-- An images (or features) upload without labels is stored with task 'unlabeled'; the labels
-- upload gives it its task, classes and `labels_file_name` (a second file in datasets/).
-- SQLite cannot change a CHECK constraint in place, so the table is rebuilt (no other table
-- refers to it: jobs.dataset_id has no foreign key, built-in ids having no row).

CREATE TABLE datasets_0003 (
    id               TEXT    NOT NULL PRIMARY KEY,
    name             TEXT    NOT NULL,
    format           TEXT    NOT NULL CHECK (format IN ('csv', 'idx', 'npy')),
    rows             INTEGER NOT NULL CHECK (rows >= 0),
    features         INTEGER NOT NULL CHECK (features >= 0),
    feature_names    TEXT    NOT NULL CHECK (json_valid(feature_names)),
    target           TEXT,
    task             TEXT    NOT NULL CHECK (task IN ('classification', 'regression', 'unlabeled')),
    classes          TEXT             CHECK (classes IS NULL OR json_valid(classes)),
    shape            TEXT    NOT NULL CHECK (json_valid(shape)),
    bytes            INTEGER NOT NULL CHECK (bytes >= 0),
    file_name        TEXT    NOT NULL,
    created_at       TEXT    NOT NULL,
    -- The labels of an IDX or NPY dataset uploaded with `labels_of`, beside `file_name`.
    labels_file_name TEXT,
    CHECK (labels_file_name IS NULL OR format IN ('idx', 'npy')),
    -- Only IDX and NPY data can wait for labels, and while it does it has none.
    CHECK (task <> 'unlabeled' OR (format IN ('idx', 'npy') AND classes IS NULL AND labels_file_name IS NULL))
);

INSERT INTO datasets_0003 (id, name, format, rows, features, feature_names, target, task, classes, shape, bytes, file_name, created_at)
SELECT id, name, format, rows, features, feature_names, target, task, classes, shape, bytes, file_name, created_at FROM datasets;

DROP TABLE datasets;
ALTER TABLE datasets_0003 RENAME TO datasets;
