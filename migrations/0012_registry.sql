-- The instance's image registry (at most one row): when it is set, an image moves to a
-- server that lacks it through this registry instead of as a layer archive. The password
-- is encrypted with AES-256-GCM under <data-dir>/secret.key, the URL and username as
-- associated data (a row edited to point elsewhere no longer decrypts).
CREATE TABLE registry (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    url         TEXT NOT NULL,
    username    TEXT NOT NULL,
    pw_nonce    BLOB NOT NULL,
    pw_sealed   BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
