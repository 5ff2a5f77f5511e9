//! Reaching the control plane: where it is and which token to send ([`Target`]: flags,
//! environment, the CLI config file, the `admin-token` file), and the HTTP calls ([`Client`]).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{json, Value};

use super::{CliError, PolicyProblem};

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
pub(super) fn read_cli_file(p: &Path) -> Result<CliFile, CliError> {
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
                serde_json::to_vec(&body.unwrap_or_else(|| json!({}))).unwrap_or_default(),
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
        self.send(method, path, Some((text.into_bytes(), content_type)))
    }

    /// Sends `bytes` (a plugin component, say) as the body.
    pub fn call_bytes(
        &self,
        method: &str,
        path: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<Value, CliError> {
        self.send(method, path, Some((bytes, content_type)))
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<(Vec<u8>, &str)>,
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
        let json = serde_json::from_str::<Value>(&text);
        if (200..300).contains(&status) && !text.is_empty() && json.is_err() {
            // Something answered, but not the REST API (another service on that port).
            return Err(CliError::Unreachable {
                url: crate::validate::redact_url(&self.target.server),
                message: format!(
                    "HTTP {status} with a body that is not JSON: is this a gpuwarden control plane?"
                ),
            });
        }
        let v: Value = if text.is_empty() {
            Value::Null
        } else {
            json.unwrap_or(Value::String(text))
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
