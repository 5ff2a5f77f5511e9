-- Tokens created through the API (POST /v1/tokens, `gpuwarden tokens create`): admin tokens
-- can act, viewer tokens can only read (GET, in the console and the REST API alike). Only the
-- SHA-256 digest of the secret is kept; the secret is shown once. Times are Unix milliseconds.
CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    digest TEXT NOT NULL UNIQUE,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
