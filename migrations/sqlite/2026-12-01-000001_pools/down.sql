ALTER TABLE nodes DROP COLUMN instance_id;
DROP TABLE instances;
DROP TABLE pool_decisions;
DROP TABLE pools;
