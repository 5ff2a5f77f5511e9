-- GPUs each node is expected to have: the most it ever registered with, lowered only by an
-- operator (POST /v1/nodes/{id}/expected-gpus). A node without a row here is expected to
-- have the GPUs its last registration listed.
CREATE TABLE expected_gpus (
    node_id TEXT PRIMARY KEY NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    gpus INTEGER NOT NULL,
    updated_at BIGINT NOT NULL
);
