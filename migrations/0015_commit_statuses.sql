-- Commit statuses (issue 21 item 6): the last status reported to the forge (or tried) for
-- each deployment, for the panel and the API. Never the token. Gone with the deployment.
CREATE TABLE commit_statuses (
    deployment_id  INTEGER PRIMARY KEY NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
    provider       TEXT NOT NULL,
    sha            TEXT NOT NULL,
    state          TEXT NOT NULL,
    delivered      INTEGER NOT NULL,
    tries          INTEGER NOT NULL,
    error          TEXT,
    updated_at     INTEGER NOT NULL
);
