-- Capstan's control-plane state. Add new migration files; never edit this one.

CREATE TABLE apps (
    name        TEXT PRIMARY KEY NOT NULL,
    spec        TEXT NOT NULL,              -- JSON of capstan_core::AppSpec
    live_deployment_id INTEGER,
    created_at  INTEGER NOT NULL,           -- unix milliseconds
    updated_at  INTEGER NOT NULL
);

-- The deployments table is also the queue: the oldest `queued` row whose app has nothing
-- in progress is claimed next.
CREATE TABLE deployments (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    app         TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
    server      TEXT NOT NULL DEFAULT 'local',
    environment TEXT NOT NULL DEFAULT 'production',
    trigger     TEXT NOT NULL,
    state       TEXT NOT NULL,
    git_ref     TEXT,
    commit_sha  TEXT,
    image       TEXT,
    from_release INTEGER,                   -- rollback/restart: the release reused
    error       TEXT,
    created_at  INTEGER NOT NULL,
    started_at  INTEGER,
    finished_at INTEGER
);
CREATE INDEX deployments_by_state ON deployments(state, id);
CREATE INDEX deployments_by_app ON deployments(app, id);

-- When each state was entered.
CREATE TABLE deployment_phases (
    deployment_id INTEGER NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
    state       TEXT NOT NULL,
    at          INTEGER NOT NULL,
    PRIMARY KEY (deployment_id, state)
);

CREATE TABLE deployment_logs (
    deployment_id INTEGER NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    stream      TEXT NOT NULL,              -- 'capstan', 'build', 'container'
    at          INTEGER NOT NULL,
    line        TEXT NOT NULL,
    PRIMARY KEY (deployment_id, seq)
);

-- What a successful deployment produced; rollback and restart reuse it.
CREATE TABLE releases (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    app         TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
    deployment_id INTEGER NOT NULL UNIQUE REFERENCES deployments(id) ON DELETE CASCADE,
    image       TEXT NOT NULL,
    commit_sha  TEXT,
    compose_spec TEXT NOT NULL,
    app_spec    TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE api_tokens (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,       -- hex SHA-256 of the token; the token itself is never stored
    scopes      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    last_used_at INTEGER
);
