//! `gpuwarden db copy`: moving a control plane's database from SQLite to PostgreSQL
//! (`store::copy`), with progress on stderr.

use std::process::ExitCode;

use clap::Subcommand;

use crate::store::copy::{copy, open_source};
use crate::store::{Store, StoreOptions};
use crate::validate::redact_url;

/// Database commands (run where the database is reachable; they do not call the API).
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Copy every row of a SQLite database into a new, empty PostgreSQL database (stop the
    /// control plane first; the target's schema is created, the copy is one transaction).
    Copy {
        /// The SQLite database: sqlite://PATH (the control plane's database.url).
        #[arg(long, value_name = "URL")]
        from: String,
        /// The PostgreSQL database: postgres://USER:PASS@HOST:PORT/DB (empty; created tables).
        #[arg(long, value_name = "URL")]
        to: String,
    },
}

/// Runs a database command; exit 0 done, 1 failed (nothing written), 2 bad arguments.
pub fn run(command: DbCommand) -> ExitCode {
    match command {
        DbCommand::Copy { from, to } => {
            if !from.starts_with("sqlite://") || !to.starts_with("postgres") {
                eprintln!(
                    "error: db copy goes from --from sqlite://PATH to --to postgres://USER:PASS@HOST/DB"
                );
                return ExitCode::from(2);
            }
            let path = from.trim_start_matches("sqlite://");
            if !std::path::Path::new(path).is_file() {
                eprintln!("error: --from {from}: no such SQLite file");
                return ExitCode::from(2);
            }
            // The source read-only (a copy never changes it); the target migrated.
            let mut src = match open_source(std::path::Path::new(path)) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(1);
                }
            };
            let dst = match Store::open(&to, &StoreOptions::default()) {
                Ok(d) => d,
                Err(e) => {
                    eprintln!("error: {}: {e}", redact_url(&to));
                    return ExitCode::from(1);
                }
            };
            let mut last = String::new();
            let started = std::time::Instant::now();
            let result = copy(&mut src, &dst, |table, done, total| {
                // A line per table, and one per tenth of a large one.
                let step = (total / 10).max(10_000);
                if table != last || done == total || done % step < 1000 {
                    eprintln!("  {table}: {done} of {total} rows");
                    last = table.to_string();
                }
            });
            match result {
                Ok(tables) => {
                    let rows: i64 = tables.iter().map(|(_, n)| n).sum();
                    println!(
                        "copied {rows} rows in {} tables from {from} to {} in {:.1}s; point database.url at it and start the control plane",
                        tables.len(),
                        redact_url(&to),
                        started.elapsed().as_secs_f64()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}; nothing was written to {}", redact_url(&to));
                    ExitCode::from(1)
                }
            }
        }
    }
}
