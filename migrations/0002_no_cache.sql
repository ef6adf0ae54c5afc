-- A deploy may ask for a clean build: no reuse of an earlier image, no layer cache.
ALTER TABLE deployments ADD COLUMN no_cache INTEGER NOT NULL DEFAULT 0;
