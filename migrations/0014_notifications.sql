-- Notifications (issue 21): channels per app (`app` set, removed with the app) or global
-- (`app` NULL), and the outbox their messages are delivered from.
-- `config` holds what may be shown (kind-specific JSON: a masked URL, the SMTP host, port,
-- TLS mode, username, sender and recipients); `sealed` holds what may not (the URL with its
-- token, the webhook signing secret, the SMTP password) as JSON encrypted with AES-256-GCM
-- under <data-dir>/secret.key, the channel's app and kind as associated data.
-- `events` is a JSON array of event names (`deployment.live`, `server.unreachable`, ...).
CREATE TABLE notification_channels (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    app         TEXT REFERENCES apps(name) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    events      TEXT NOT NULL,
    config      TEXT NOT NULL,
    nonce       BLOB NOT NULL,
    sealed      BLOB NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX notification_channels_by_app ON notification_channels (app);

-- One message for one channel: written when the event happens (not sent then), sent by the
-- delivery worker, retried with backoff until delivered or out of tries; it survives a
-- restart. `payload` is the event as JSON (no secrets). `state`: pending, delivered, failed.
CREATE TABLE notification_outbox (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    channel          INTEGER NOT NULL REFERENCES notification_channels(id) ON DELETE CASCADE,
    event            TEXT NOT NULL,
    payload          TEXT NOT NULL,
    state            TEXT NOT NULL DEFAULT 'pending',
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    delivered_at     INTEGER
);
CREATE INDEX notification_outbox_due ON notification_outbox (state, next_attempt_at);
CREATE INDEX notification_outbox_by_channel ON notification_outbox (channel, id);
