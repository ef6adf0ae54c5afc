-- Who asked for each deployment: `token:<name>` for an API token, `capstan` for the daemon
-- itself. Older rows have none.
ALTER TABLE deployments ADD COLUMN actor TEXT;
