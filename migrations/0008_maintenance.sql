-- Apps in maintenance mode: the proxy answers their requests with a 503 page carrying
-- this message and Retry-After. A row means "on"; it survives daemon restarts.
CREATE TABLE app_maintenance (
    app              TEXT PRIMARY KEY NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
    message          TEXT NOT NULL,
    retry_after_secs INTEGER NOT NULL,
    since            INTEGER NOT NULL,   -- unix milliseconds
    actor            TEXT NOT NULL
);
