DROP TABLE audit;
DROP TABLE commands;
DROP TABLE transitions;
DROP TABLE observations;
DROP TABLE events;
DROP TABLE admin_tokens;
DROP TABLE node_tokens;
DROP TABLE nodes;
