DROP INDEX commands_due;
