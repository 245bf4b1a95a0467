-- 0004: the per-epoch metrics of GAN jobs (`"task": "gan"`), NULL for supervised jobs.
-- Append-only: never edit this file once it has landed; add 0005_….sql instead.

-- The discriminator's loss: BCE on real samples (target 1) plus BCE on generated ones (target 0).
ALTER TABLE metrics ADD COLUMN d_loss REAL;
-- The generator's non-saturating loss: BCE of D(G(z)) against target 1.
ALTER TABLE metrics ADD COLUMN g_loss REAL;
-- Mean D(x) over the real samples of the epoch (sigmoid of the logits): a probability.
ALTER TABLE metrics ADD COLUMN d_real REAL CHECK (d_real IS NULL OR d_real BETWEEN 0 AND 1);
-- Mean D(G(z)) over the generated samples of the epoch, in the discriminator's step.
ALTER TABLE metrics ADD COLUMN d_fake REAL CHECK (d_fake IS NULL OR d_fake BETWEEN 0 AND 1);
