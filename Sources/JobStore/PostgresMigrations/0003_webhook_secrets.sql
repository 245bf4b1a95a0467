-- 0003: each tenant's webhook signing secret (`descent webhook-secret rotate`). Kept in the clear: the
-- server needs it to sign. After a rotation the previous secret signs too until previous_expires_at,
-- so receivers can switch without losing a delivery.
-- Append-only: never edit this file once it has landed; add 0004_….sql instead.

CREATE TABLE webhook_secrets (
    tenant              text        NOT NULL PRIMARY KEY CHECK (tenant ~ '^[A-Za-z0-9_-]{1,64}$'),
    secret              text        NOT NULL,
    created_at          timestamptz NOT NULL,
    previous_secret     text,
    previous_expires_at timestamptz
);
