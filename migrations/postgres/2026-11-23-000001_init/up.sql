-- gpuwarden control plane, first schema (PostgreSQL). Times are Unix milliseconds; labels,
-- capabilities, parameters and values are JSON text. Keep in step with ../sqlite/.
CREATE TABLE nodes (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    pool TEXT NOT NULL DEFAULT 'default',
    labels TEXT NOT NULL DEFAULT '{}',
    address TEXT,
    status TEXT NOT NULL,
    health TEXT NOT NULL,
    connectivity TEXT NOT NULL,
    capabilities TEXT NOT NULL DEFAULT '{}',
    source TEXT NOT NULL,
    agent_instance TEXT,
    event_cursor BIGINT NOT NULL DEFAULT 0,
    deregistered BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    last_seen BIGINT
);
CREATE INDEX nodes_pool ON nodes (pool);

CREATE TABLE node_tokens (
    digest TEXT PRIMARY KEY NOT NULL,
    node_id TEXT NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT
);
CREATE INDEX node_tokens_node ON node_tokens (node_id);

CREATE TABLE admin_tokens (
    digest TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE events (
    id BIGSERIAL PRIMARY KEY,
    node_id TEXT NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    gpu INTEGER,
    uuid TEXT,
    kind TEXT NOT NULL,
    code BIGINT,
    message TEXT NOT NULL,
    severity TEXT NOT NULL,
    action TEXT NOT NULL,
    time BIGINT NOT NULL,
    agent_instance TEXT NOT NULL,
    agent_seq BIGINT NOT NULL,
    UNIQUE (node_id, agent_instance, agent_seq)
);
CREATE INDEX events_node_time ON events (node_id, time);
CREATE INDEX events_time ON events (time);

CREATE TABLE observations (
    node_id TEXT NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    gpu INTEGER NOT NULL,
    uuid TEXT NOT NULL,
    model TEXT NOT NULL,
    body TEXT NOT NULL,
    observed_at BIGINT NOT NULL,
    PRIMARY KEY (node_id, gpu)
);

CREATE TABLE transitions (
    id BIGSERIAL PRIMARY KEY,
    node_id TEXT NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    field TEXT NOT NULL,
    from_state TEXT NOT NULL,
    to_state TEXT NOT NULL,
    reason TEXT NOT NULL,
    actor TEXT NOT NULL,
    time BIGINT NOT NULL
);
CREATE INDEX transitions_node_time ON transitions (node_id, time);

CREATE TABLE commands (
    id TEXT PRIMARY KEY NOT NULL,
    node_id TEXT NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    params TEXT NOT NULL DEFAULT '{}',
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    result TEXT,
    requested_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    completed_at BIGINT
);
CREATE INDEX commands_node ON commands (node_id, created_at);
CREATE INDEX commands_state ON commands (state, next_attempt_at);

CREATE TABLE audit (
    id BIGSERIAL PRIMARY KEY,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    details TEXT NOT NULL DEFAULT '{}',
    result TEXT NOT NULL,
    time BIGINT NOT NULL
);
CREATE INDEX audit_time ON audit (time);
