-- 0007: the epoch of a running job's last checkpoint, committed after its file is on disk.
-- Append-only: never edit this file once it has landed; add 0008_….sql instead.

-- NULL: no checkpoint (not started, or finished and its checkpoint files removed).
ALTER TABLE jobs ADD COLUMN checkpoint_epoch INTEGER CHECK (checkpoint_epoch IS NULL OR checkpoint_epoch >= 1);
