-- Servers: the hosts apps run on. `local` (the engine beside the daemon) always exists and
-- cannot be removed. Each other server has an ed25519 key pair made by Capstan: the public
-- half in clear (the line for `authorized_keys`), the private half encrypted with
-- AES-256-GCM under <data-dir>/secret.key, the server's name as associated data.
CREATE TABLE servers (
    name                 TEXT PRIMARY KEY,
    kind                 TEXT NOT NULL,          -- local, ssh, swarm
    host                 TEXT NOT NULL DEFAULT '',
    port                 INTEGER NOT NULL DEFAULT 22,
    user                 TEXT NOT NULL DEFAULT 'root',
    host_key_fingerprint TEXT,                   -- SHA256:... (OpenSSH form), NULL until pinned
    build_slots          INTEGER,
    proxy_http_port      INTEGER,
    proxy_https_port     INTEGER,
    namespace            TEXT,                   -- NULL: the instance's name
    docker_socket        TEXT,                   -- NULL: /var/run/docker.sock
    labels               TEXT NOT NULL DEFAULT '{}', -- JSON object
    public_key           TEXT,                   -- OpenSSH line
    key_nonce            BLOB,
    key_ciphertext       BLOB,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL
);
INSERT INTO servers (name, kind, created_at, updated_at)
VALUES ('local', 'local', CAST(strftime('%s', 'now') AS INTEGER) * 1000,
        CAST(strftime('%s', 'now') AS INTEGER) * 1000);
