CREATE INDEX commands_due ON commands (state, next_attempt_at);
