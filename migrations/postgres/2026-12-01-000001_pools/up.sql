-- Pools (docs/POOLS.md): their specs, the pool manager's state, its last decisions, and the
-- instances asked of the providers. Times are Unix milliseconds; JSON documents are text.
CREATE TABLE pools (
    name TEXT PRIMARY KEY NOT NULL,
    -- The PoolSpec as JSON (what POST /v1/pools takes).
    spec TEXT NOT NULL,
    -- 'api' or 'config'; a config pool is read-only through the API.
    source TEXT NOT NULL,
    -- The config file a 'config' pool comes from.
    source_file TEXT,
    -- Nodes an operator asked for (POST /v1/pools/{name}/scale); none: the autoscaler's.
    manual_target INTEGER,
    -- Pending jobs pushed by a scheduler (PUT /v1/pools/{name}/demand), and when.
    demand_pending BIGINT,
    demand_at BIGINT,
    -- The pool manager's last target and when it last scaled up and down.
    last_target INTEGER,
    last_scale_up BIGINT,
    last_scale_down BIGINT,
    -- Provider selection state (pool::select::SelectState) as JSON.
    select_state TEXT NOT NULL DEFAULT '{}',
    -- 'ok', 'degraded' or 'error', with the last error.
    status TEXT NOT NULL DEFAULT 'ok',
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Each evaluation of a pool: its target and why; the last few per pool are kept (store.pool_decisions).
CREATE TABLE pool_decisions (
    id BIGSERIAL PRIMARY KEY,
    pool TEXT NOT NULL REFERENCES pools (name) ON DELETE CASCADE,
    time BIGINT NOT NULL,
    target INTEGER NOT NULL,
    reasons TEXT NOT NULL,
    actions TEXT NOT NULL,
    counts TEXT NOT NULL
);
CREATE INDEX pool_decisions_pool_id ON pool_decisions (pool, id);

-- One machine asked of a provider, recorded before the provider is called. Not tied to the
-- pool by a foreign key: instances outlive a deleted pool until they are terminated.
CREATE TABLE instances (
    id TEXT PRIMARY KEY NOT NULL,
    pool TEXT NOT NULL,
    provider TEXT NOT NULL,
    provider_id TEXT,
    -- model::pool::InstanceState.
    state TEXT NOT NULL,
    node_id TEXT,
    -- SHA-256 of the instance's join token (never the secret).
    token_digest TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    state_since BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX instances_pool ON instances (pool);
CREATE INDEX instances_state ON instances (state);
CREATE INDEX instances_node ON instances (node_id);

-- The instance a node runs on, when a pool provisioned it.
ALTER TABLE nodes ADD COLUMN instance_id TEXT;
