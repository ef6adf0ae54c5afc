-- Who changed what: app creation and deletion, settings changes, secrets set or removed
-- (names only, never values). Kept after an app is deleted.
CREATE TABLE app_events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    app     TEXT NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    detail  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX app_events_by_app ON app_events (app, id);
