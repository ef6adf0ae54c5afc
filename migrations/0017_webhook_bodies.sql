-- Verified webhook bodies seen, by the SHA-256 of the raw body, per app and whatever the
-- forge: a body seen before is a replay even with no delivery id, a new one, or sent to
-- another forge's URL with the same signature. Kept 7 days like webhook_deliveries (pruned
-- as new ones arrive); no foreign key, a deleted app's rows age out like the others.
CREATE TABLE webhook_bodies (
    app          TEXT NOT NULL,
    body_sha256  TEXT NOT NULL,
    received_at  INTEGER NOT NULL,
    outcome      TEXT NOT NULL DEFAULT 'received',
    PRIMARY KEY (app, body_sha256)
);
CREATE INDEX webhook_bodies_by_age ON webhook_bodies (received_at);
