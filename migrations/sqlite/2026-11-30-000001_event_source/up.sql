-- Where the agent learned of each event (`nvml`, `kmsg`, `plugin:<name>`, …), kept so a
-- policy simulation sees `event.source` as the live evaluation did ('' for older rows).
ALTER TABLE events ADD COLUMN source TEXT NOT NULL DEFAULT '';
