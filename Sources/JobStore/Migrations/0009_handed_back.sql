-- 0009: attempts a graceful shutdown handed back to the queue (SIGTERM, a rolling deploy). They are not
-- failures: max_attempts counts attempt - handed_back.
-- Append-only: never edit this file once it has landed; add 0010_….sql instead.

ALTER TABLE jobs ADD COLUMN handed_back INTEGER NOT NULL DEFAULT 0 CHECK (handed_back >= 0);
