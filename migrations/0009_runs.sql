-- One-off commands: each run of a command in a fresh container of an app's live release,
-- with who started it, how it ended and its output (masked like deployment logs).
CREATE TABLE runs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    app           TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
    deployment_id INTEGER NOT NULL,         -- the live deployment whose release it ran
    image         TEXT NOT NULL,
    command       TEXT NOT NULL,            -- JSON array (argv), secret values masked
    timeout_secs  INTEGER NOT NULL,
    state         TEXT NOT NULL,            -- running, succeeded, failed, timed_out
    exit_code     INTEGER,
    error         TEXT,
    actor         TEXT NOT NULL,
    started_at    INTEGER NOT NULL,         -- unix milliseconds
    finished_at   INTEGER
);
CREATE INDEX runs_by_app ON runs (app, id);
CREATE INDEX runs_by_state ON runs (state);

CREATE TABLE run_output (
    run_id  INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    stream  TEXT NOT NULL,                  -- 'output', 'capstan'
    at      INTEGER NOT NULL,
    line    TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
