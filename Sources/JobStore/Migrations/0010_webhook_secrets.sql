-- 0010: each tenant's webhook signing secret (`descent webhook-secret rotate`). Kept in the clear: the
-- server needs it to sign. After a rotation the previous secret signs too until previous_expires_at,
-- so receivers can switch without losing a delivery.
-- Append-only: never edit this file once it has landed; add 0011_….sql instead.

CREATE TABLE webhook_secrets (
    tenant              TEXT     NOT NULL PRIMARY KEY
                                 CHECK (length(tenant) BETWEEN 1 AND 64 AND tenant NOT GLOB '*[^A-Za-z0-9_-]*'),
    secret              TEXT     NOT NULL,
    created_at          TEXT     NOT NULL,
    previous_secret     TEXT,
    previous_expires_at TEXT
);
