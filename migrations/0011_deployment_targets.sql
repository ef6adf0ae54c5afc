-- Where a deployment runs: one row for each server it targets, with that server's own state
-- (queued, starting, health_checking, switching, live, superseded, failed, cancelled) and
-- error. The deployment's own state sums them up: live when the release went live on at
-- least one server. A server's live row is the version its proxy routes to; a retry of a
-- deployment runs again only where its row failed.
CREATE TABLE deployment_targets (
    deployment_id INTEGER NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
    server        TEXT NOT NULL,
    position      INTEGER NOT NULL DEFAULT 0,  -- the server's place in the app's list
    state         TEXT NOT NULL,
    error         TEXT,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (deployment_id, server)
);
CREATE INDEX deployment_targets_by_server ON deployment_targets (server, state);

-- Every deployment so far ran on its one server, in the deployment's own state.
INSERT INTO deployment_targets (deployment_id, server, position, state, error, updated_at)
SELECT id, server, 0,
       CASE WHEN state IN ('preparing', 'building') THEN 'queued' ELSE state END,
       error, COALESCE(finished_at, started_at, created_at)
FROM deployments;
