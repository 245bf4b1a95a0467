-- 0005: per-class recall and macro F1 on the validation set, for classification jobs.
-- Append-only: never edit this file once it has landed; add 0006_….sql instead.

-- JSON array of recalls in class order (null for a class absent from the validation set).
ALTER TABLE metrics ADD COLUMN val_class_recall TEXT CHECK (val_class_recall IS NULL OR json_valid(val_class_recall));
-- Mean over classes of F1 = 2·precision·recall / (precision + recall).
ALTER TABLE metrics ADD COLUMN val_macro_f1 REAL CHECK (val_macro_f1 IS NULL OR val_macro_f1 BETWEEN 0 AND 1);
