-- The repo's capstan.toml a release was built with, so a restart can apply it to the
-- app's current settings without the source.
ALTER TABLE releases ADD COLUMN repo_config_file TEXT;
ALTER TABLE releases ADD COLUMN repo_config TEXT;

-- Secrets, encrypted with AES-256-GCM under the key in <data-dir>/secret.key. The app and
-- name are the associated data, so a ciphertext moved to another row does not decrypt.
CREATE TABLE secrets (
    app         TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    nonce       BLOB NOT NULL,
    ciphertext  BLOB NOT NULL,
    build       INTEGER NOT NULL DEFAULT 0,   -- also passed to the build as a build argument
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (app, name)
);
