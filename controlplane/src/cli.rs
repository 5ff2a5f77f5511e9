//! The admin CLI: `gpuwarden nodes …` and `gpuwarden audit` over the REST API.
//!
//! The server URL and token come from flags, else `GPUWARDEN_SERVER` /
//! `GPUWARDEN_ADMIN_TOKEN`, else the CLI config file (`~/.config/gpuwarden/cli.toml`, or
//! `GPUWARDEN_CLI_CONFIG`), else `http://127.0.0.1:8410` and the `admin-token` file a
//! freshly started control plane writes in its data folder. Output is an aligned table, or
//! the API's JSON with `-o json` — errors included (`{"error":{"code","message"}}`, or the
//! API's own error document).

pub mod args;
pub mod commands;
mod escape;
mod invalid;
pub mod run;
mod table;
mod views;

use invalid::invalid_policy;
pub use invalid::PolicyProblem;

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{json, Value};
use thiserror::Error;

pub use escape::{escape, escape_text};
pub use table::Table;
pub use views::{
    audit_table, commands_table, events_table, node_view, nodes_table, simulation_table, step_view,
    transitions_table,
};

/// How the CLI prints answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Aligned columns.
    Table,
    /// The API's JSON (errors too).
    Json,
}

/// How a command's answer is shown as text.
pub type Render = fn(&Value) -> String;

impl Output {
    /// `v` as this output shows it: pretty JSON, or `render`'s text.
    pub fn render(self, v: &Value, render: Render) -> String {
        match self {
            Output::Json => format!("{}\n", serde_json::to_string_pretty(v).unwrap_or_default()),
            Output::Table => escape_text(&render(v)),
        }
    }

    /// An error as this output shows it: `error: …` text, or a JSON document.
    /// Passwords in URLs are masked and control characters escaped in both.
    pub fn error(self, e: &CliError) -> String {
        let text = match self {
            Output::Json => format!(
                "{}\n",
                serde_json::to_string_pretty(&e.to_json()).unwrap_or_default()
            ),
            Output::Table => format!("error: {e}\n"),
        };
        escape_text(&crate::validate::redact_urls(&text))
    }
}

/// Why a CLI command failed.
#[derive(Debug, Error)]
pub enum CliError {
    /// The API answered with an error.
    #[error("{message} ({code}, HTTP {status})")]
    Api {
        /// HTTP status.
        status: u16,
        /// Error code.
        code: String,
        /// Message.
        message: String,
        /// The API's answer as it came (`{"error":…}`, or an invalid policy's
        /// `{"valid":false,"errors":[…]}`).
        body: Value,
    },
    /// The server could not be reached.
    #[error("cannot reach the control plane at {url}: {message}")]
    Unreachable {
        /// Server URL.
        url: String,
        /// Why.
        message: String,
    },
    /// Bad flags or config.
    #[error("{0}")]
    Usage(String),
    /// The control plane found the policy document invalid (HTTP 422): every problem.
    #[error("{}", invalid_policy(.file.as_deref(), .problems))]
    InvalidPolicy {
        /// The file the document was read from, when known ([`CliError::in_file`]).
        file: Option<std::path::PathBuf>,
        /// The problems, as the API gave them.
        problems: Vec<PolicyProblem>,
        /// The API's answer as it came (`{"valid":false,"errors":[…]}`), for `-o json`.
        body: Value,
    },
}

impl CliError {
    /// The process exit status: 1 API error, 2 usage or invalid input, 3 unreachable.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Api { .. } => 1,
            CliError::Usage(_) | CliError::InvalidPolicy { .. } => 2,
            CliError::Unreachable { .. } => 3,
        }
    }

    /// The error as JSON: the API's own answer when it sent one, else
    /// `{"error":{"code":"usage"|"unreachable"|…,"message"}}`.
    pub fn to_json(&self) -> Value {
        match self {
            CliError::Api { body, .. } if body.is_object() => body.clone(),
            CliError::Api {
                code,
                message,
                status,
                ..
            } => {
                json!({"error": {"code": code, "message": message, "status": status}})
            }
            CliError::Usage(m) => json!({"error": {"code": "usage", "message": m}}),
            CliError::Unreachable { .. } => {
                json!({"error": {"code": "unreachable", "message": self.to_string()}})
            }
            CliError::InvalidPolicy { file, body, .. } => {
                let mut v = body.clone();
                if let (Some(f), Some(o)) = (file, v.as_object_mut()) {
                    o.insert("file".into(), json!(f.display().to_string()));
                }
                v
            }
        }
    }

    /// Names the file an invalid policy was read from (its absolute path), so each problem
    /// is shown as `FILE:LINE:COLUMN`.
    pub fn in_file(self, file: &std::path::Path) -> CliError {
        match self {
            CliError::InvalidPolicy { problems, body, .. } => CliError::InvalidPolicy {
                file: Some(std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf())),
                problems,
                body,
            },
            other => other,
        }
    }
}

/// The CLI config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CliFile {
    /// Control-plane URL.
    pub server: Option<String>,
    /// Admin token.
    pub token: Option<String>,
    /// A file holding the admin token.
    pub token_file: Option<PathBuf>,
}

/// Where the CLI connects, and with what.
#[derive(Debug, Clone)]
pub struct Target {
    /// Base URL.
    pub server: String,
    /// Admin token.
    pub token: Option<String>,
}

fn read_token_file(p: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(p)
        .map(|s| s.trim().to_string())
        .map_err(|e| CliError::Usage(format!("token file {}: {e}", p.display())))
}

impl Target {
    /// Resolves flags, environment, the config file and defaults.
    pub fn resolve(server: Option<String>, token: Option<String>) -> Result<Self, CliError> {
        let path = std::env::var_os("GPUWARDEN_CLI_CONFIG")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .map(|h| PathBuf::from(h).join(".config/gpuwarden/cli.toml"))
            });
        let file: CliFile = match path.filter(|p| p.exists()) {
            Some(p) => read_cli_file(&p)?,
            None => CliFile::default(),
        };
        let env = |k| std::env::var(k).ok().filter(|v: &String| !v.is_empty());
        let server = server
            .or_else(|| env("GPUWARDEN_SERVER"))
            .or(file.server)
            .unwrap_or_else(|| "http://127.0.0.1:8410".into());
        let token = match token
            .or_else(|| env("GPUWARDEN_ADMIN_TOKEN"))
            .or(file.token)
        {
            Some(t) => Some(t),
            None => match &file.token_file {
                Some(p) => Some(read_token_file(p)?),
                None => Path::new("admin-token")
                    .exists()
                    .then(|| read_token_file(Path::new("admin-token")))
                    .transpose()?,
            },
        };
        Ok(Self {
            server: server.trim_end_matches('/').to_string(),
            token,
        })
    }
}

/// Reads the CLI config file; every problem of it at once, each with its key and the file's
/// absolute path, as `--check-config` reports the programs' files.
fn read_cli_file(p: &Path) -> Result<CliFile, CliError> {
    use figment::providers::{Format, Toml};
    let out = gpuwarden_configfile::extract_all::<CliFile>(|pr| {
        figment::Figment::from(pr.wrap(Toml::file_exact(p)))
    });
    match out.value {
        Some(f) if out.problems.is_empty() => Ok(f),
        _ => {
            let lines: Vec<String> = out.problems.iter().map(|p| format!("\n  {p}")).collect();
            Err(CliError::Usage(format!(
                "invalid CLI config file {}:{}",
                std::path::absolute(p)
                    .unwrap_or_else(|_| p.to_path_buf())
                    .display(),
                lines.concat()
            )))
        }
    }
}

/// A small blocking client of the REST API.
#[derive(Debug)]
pub struct Client {
    target: Target,
    agent: ureq::Agent,
}

impl Client {
    /// A client for `target`.
    pub fn new(target: Target) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(30)))
            .build()
            .into();
        Self { target, agent }
    }

    /// Sends a request; returns the JSON answer (`null` for 204).
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, CliError> {
        let body = match method {
            "GET" | "DELETE" => None,
            _ => Some((
                serde_json::to_string(&body.unwrap_or_else(|| json!({}))).unwrap_or_default(),
                "application/json",
            )),
        };
        self.send(method, path, body)
    }

    /// Sends `text` (a policy document, say) as the body.
    pub fn call_text(
        &self,
        method: &str,
        path: &str,
        text: String,
        content_type: &str,
    ) -> Result<Value, CliError> {
        self.send(method, path, Some((text, content_type)))
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<(String, &str)>,
    ) -> Result<Value, CliError> {
        let url = format!("{}{path}", self.target.server);
        let auth = self.target.token.as_ref().map(|t| format!("Bearer {t}"));
        let result = match (method, body) {
            ("DELETE", _) => {
                let mut r = self.agent.delete(&url);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.call()
            }
            (_, None) => {
                let mut r = self.agent.get(&url);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.call()
            }
            (_, Some((text, ct))) => {
                let mut r = if method == "PUT" {
                    self.agent.put(&url)
                } else {
                    self.agent.post(&url)
                };
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.header("Content-Type", ct).send(text)
            }
        };
        let mut resp = result.map_err(|e| CliError::Unreachable {
            url: crate::validate::redact_url(&self.target.server),
            message: e.to_string(),
        })?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .map_err(|e| CliError::Unreachable {
                url: crate::validate::redact_url(&self.target.server),
                message: e.to_string(),
            })?;
        let v: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if (200..300).contains(&status) {
            return Ok(v);
        }
        if status == 422 && v["error"].is_null() {
            // An invalid policy: every problem.
            if let Ok(problems) = serde_json::from_value::<Vec<PolicyProblem>>(v["errors"].clone())
            {
                return Err(CliError::InvalidPolicy {
                    file: None,
                    problems,
                    body: v,
                });
            }
        }
        let code = v["error"]["code"].as_str().unwrap_or("invalid").to_string();
        let mut message = v["error"]["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string());
        if status == 401 && self.target.token.is_none() {
            message.push_str(
                "; give an admin token with --token, GPUWARDEN_ADMIN_TOKEN or the CLI config file",
            );
        }
        Err(CliError::Api {
            status,
            code,
            message,
            body: v,
        })
    }
}

/// Percent-encodes a query value.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `a=1&b=2` from the pairs that have a value.
pub fn query(pairs: &[(&str, Option<String>)]) -> String {
    let q: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode(v))))
        .collect();
    if q.is_empty() {
        String::new()
    } else {
        format!("?{}", q.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_encoded_and_empty_values_left_out() {
        assert_eq!(
            query(&[
                ("pool", Some("a b".into())),
                ("status", None),
                ("since", Some("2026-11-23T10:00:00+01:00".into()))
            ]),
            "?pool=a%20b&since=2026-11-23T10%3A00%3A00%2B01%3A00"
        );
        assert_eq!(query(&[("x", None)]), "");
    }

    #[test]
    fn node_lists_render_as_aligned_tables() {
        let v = json!({"nodes":[
            {"name":"gpu-01","id":"node-1","pool":"default","status":"active","health":"unknown",
             "connectivity":"online","gpus":[{},{}],"last_seen":null,"address":"http://a:9410"},
            {"name":"g2","id":"node-22","pool":"train","status":"cordoned","health":"unknown",
             "connectivity":"offline","gpus":[],"last_seen":"2026-11-23T10:00:00.000Z","address":null}
        ],"total":2});
        let out = nodes_table(&v);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4, "{out}");
        let col = lines[0].find("STATUS").unwrap();
        assert_eq!(&lines[1][col..col + 6], "active");
        assert_eq!(&lines[2][col..col + 8], "cordoned");
        assert!(lines[3].starts_with("2 of 2 nodes"));
    }

    /// The CLI config file reports every problem at once, with the file's absolute path.
    #[test]
    fn a_bad_cli_config_file_lists_every_problem() {
        let dir = std::env::temp_dir().join(format!("gw-cli-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("cli.toml");
        std::fs::write(&f, "sever = \"http://x\"\ntoken = 5\n").unwrap();
        let e = read_cli_file(&f).unwrap_err().to_string();
        assert!(
            e.contains(&format!("{}: sever: unknown key", f.display())),
            "{e}"
        );
        assert!(
            e.contains(&format!("{}: token: expected", f.display())),
            "{e}"
        );
        std::fs::write(&f, "server = \"http://x\"\n").unwrap();
        assert_eq!(
            read_cli_file(&f).unwrap().server.as_deref(),
            Some("http://x")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
