-- Plugins distributed from the control plane (docs/plugins-distribution.md).
--
-- plugin_blobs: WebAssembly components uploaded with POST /v1/plugins (gpuwarden plugins push),
-- kept by their SHA-256 ("sha256:<64 hex>"); agents fetch them with GET /v1/blobs/{digest}.
CREATE TABLE plugin_blobs (
    digest TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    size BIGINT NOT NULL,
    data BYTEA NOT NULL,
    uploaded_by TEXT NOT NULL,
    uploaded_at BIGINT NOT NULL
);
CREATE INDEX plugin_blobs_name ON plugin_blobs (name, uploaded_at);

-- plugin_assignments: which plugin (by name, pinned to a digest) runs on the nodes of a pool
-- ("*": every node), with its config (JSON object of strings), interval, timeout and memory
-- limit (NULL: the agent's defaults). A stored digest cannot be deleted while assigned; a
-- pool spec (the config file) may pin one not pushed yet (no foreign key): its agents report
-- it missing until it is.
CREATE TABLE plugin_assignments (
    pool TEXT NOT NULL,
    name TEXT NOT NULL,
    digest TEXT NOT NULL,
    config TEXT NOT NULL,
    interval_ms BIGINT,
    timeout_ms BIGINT,
    memory_limit_mib INTEGER,
    assigned_by TEXT NOT NULL,
    assigned_at BIGINT NOT NULL,
    PRIMARY KEY (pool, name)
);

-- node_plugins: what each agent last reported it runs (POST /v1/nodes/{id}/plugins): the digest
-- running (NULL: none loaded), the one it was asked for and why it refused it, if it did.
CREATE TABLE node_plugins (
    node_id TEXT NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    source TEXT NOT NULL,
    running TEXT,
    status TEXT,
    message TEXT NOT NULL,
    error TEXT,
    reported_at BIGINT NOT NULL,
    PRIMARY KEY (node_id, name)
);
