-- What the pool manager keeps beyond the pools' own rows (docs/POOLS.md, "Budget" and
-- "Predictive"). Times are Unix milliseconds.

-- An operator's remediation budget, over the configured one until cleared
-- (PUT/DELETE /v1/remediation/budget). scope: 'fleet', or 'pool:NAME'.
CREATE TABLE remediation_budgets (
    scope TEXT PRIMARY KEY NOT NULL,
    max_percent DOUBLE PRECISION NOT NULL,
    max_nodes INTEGER NOT NULL,
    set_by TEXT NOT NULL,
    set_at BIGINT NOT NULL
);

-- Held nodes an operator released (POST /v1/nodes/{id}/release): the pool manager
-- remediates each past the budget at its next evaluation, then forgets the release.
CREATE TABLE remediation_releases (
    node_id TEXT PRIMARY KEY NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    pool TEXT NOT NULL,
    released_by TEXT NOT NULL,
    released_at BIGINT NOT NULL
);

-- Each pool's average GPU utilization, one sample per evaluation, for the predictive
-- autoscaler; only the pool's window is kept (older samples are pruned as new ones come).
CREATE TABLE pool_utilization (
    pool TEXT NOT NULL REFERENCES pools (name) ON DELETE CASCADE,
    time BIGINT NOT NULL,
    ratio DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (pool, time)
);
