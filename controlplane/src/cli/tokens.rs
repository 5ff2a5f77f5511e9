//! `gpuwarden tokens create|list|revoke`: API tokens, admin (can act) or viewer (can only
//! read) (`POST/GET/DELETE /v1/tokens`).

use clap::Subcommand;
use serde_json::{json, Value};

use super::table::Table;
use super::views::s;
use super::{encode, CliError, Client, Output};

#[allow(missing_docs)]
#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create a token; its secret is printed this once (audited).
    Create {
        /// A name for it (who or what holds it).
        name: String,
        /// admin (can act) or viewer (can only read).
        #[arg(long, value_parser = ["admin", "viewer"], default_value = "viewer")]
        role: String,
    },
    /// The tokens (never their secrets).
    List,
    /// Revoke a token at once (audited).
    Revoke {
        /// Its id (tok_…), as `tokens list` shows.
        id: String,
    },
}

fn list_view(v: &Value) -> String {
    let tokens = v["tokens"].as_array().cloned().unwrap_or_default();
    if tokens.is_empty() {
        return "no API tokens\n".into();
    }
    let mut t = Table::new(&["ID", "NAME", "ROLE", "CREATED BY", "CREATED AT"]);
    for k in &tokens {
        t.row(vec![
            s(&k["id"]),
            s(&k["name"]),
            s(&k["role"]),
            s(&k["created_by"]),
            s(&k["created_at"]),
        ]);
    }
    t.render()
}

/// Runs a `tokens` command; the text to print.
pub fn tokens(cmd: TokensCommand, client: &Client, out: Output) -> Result<String, CliError> {
    Ok(match cmd {
        TokensCommand::Create { name, role } => {
            let v = client.call(
                "POST",
                "/v1/tokens",
                Some(json!({"name": name, "role": role})),
            )?;
            out.render(&v, |v| {
                format!(
                    "{} token {} ({}) created; it is shown only now:\n{}\n",
                    s(&v["role"]),
                    s(&v["name"]),
                    s(&v["id"]),
                    s(&v["token"])
                )
            })
        }
        TokensCommand::List => {
            let v = client.call("GET", "/v1/tokens", None)?;
            out.render(&v, list_view)
        }
        TokensCommand::Revoke { id } => {
            client.call("DELETE", &format!("/v1/tokens/{}", encode(&id)), None)?;
            let v = json!({"revoked": id});
            out.render(&v, |v| format!("token {} revoked\n", s(&v["revoked"])))
        }
    })
}
