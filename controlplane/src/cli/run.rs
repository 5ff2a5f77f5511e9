//! Running an admin command: resolve the server and token, call the API, print the answer
//! (a table, or JSON with `-o json`), and map failures onto exit codes.

use std::process::ExitCode;

use super::args::{Command, Conn};
use super::{commands, CliError, Client, Output, Target};

/// Runs an admin command (every command but `serve`); the process's exit code.
pub fn admin(conn: Conn, command: Command) -> ExitCode {
    match command {
        Command::Serve { .. }
        | Command::Demo { .. }
        | Command::Simulate { .. }
        | Command::Db { .. } => {
            fail(
                conn.output,
                &CliError::Usage("serve, demo, simulate and db are not admin commands".into()),
            );
            ExitCode::from(2)
        }
        Command::Nodes { command } => run_cli(conn, |c, out| commands::nodes(command, c, out)),
        Command::Pools { command } => run_cli(conn, |c, out| super::pools::pools(command, c, out)),
        Command::Instances { command } => {
            run_cli(conn, |c, out| super::pools::instances(command, c, out))
        }
        Command::Tokens { command } => {
            run_cli(conn, |c, out| super::tokens::tokens(command, c, out))
        }
        Command::Plugins { command } => {
            run_cli(conn, |c, out| super::plugins::plugins(command, c, out))
        }
        Command::Remediation { command } => {
            run_cli(conn, |c, out| super::remedy::remediation(command, c, out))
        }
        Command::Policies { command } => {
            run_cli(conn, |c, out| super::policies::policies(command, c, out))
        }
        Command::Audit { limit } => run_cli(conn, |c, out| {
            let v = c.call("GET", &format!("/v1/audit?limit={limit}"), None)?;
            Ok(out.render(&v, super::audit_table))
        }),
    }
}

fn run_cli(conn: Conn, f: impl FnOnce(&Client, Output) -> Result<String, CliError>) -> ExitCode {
    let result =
        Target::resolve(conn.server, conn.token).and_then(|t| f(&Client::new(t), conn.output));
    match result {
        Ok(text) => {
            write_out(&text, false);
            ExitCode::SUCCESS
        }
        Err(e) => {
            fail(conn.output, &e);
            ExitCode::from(e.exit_code())
        }
    }
}

/// Prints an error: text on stderr, or with `-o json` the JSON document on stdout (where a
/// script reads the answer).
pub fn fail(out: Output, e: &CliError) {
    write_out(&out.error(e), out == Output::Table);
}

/// Writes `text` to stdout (or stderr). A reader that went away (`| head`) is not an error of
/// the command: the write is dropped instead of panicking as `print!` does.
fn write_out(text: &str, to_stderr: bool) {
    use std::io::Write;
    let _ = if to_stderr {
        std::io::stderr().lock().write_all(text.as_bytes())
    } else {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes()).and_then(|()| out.flush())
    };
}
