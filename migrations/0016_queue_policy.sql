-- Queue policy (issue 21 item 7): whether a deployment counts against its app's hourly
-- rate limit. An admin's deployments do not (they may override the limit); the rest do,
-- the older ones among them.
ALTER TABLE deployments ADD COLUMN rate_exempt INTEGER NOT NULL DEFAULT 0;
CREATE INDEX deployments_rate_window ON deployments (app, created_at);
