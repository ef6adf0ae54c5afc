-- The subject line of the commit a deployment built (or reused), for the panel and API.
ALTER TABLE deployments ADD COLUMN commit_message TEXT;
