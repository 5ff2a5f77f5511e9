//! `exec`: the operator's programs provision, terminate and list machines, with a JSON
//! contract on stdin and stdout (docs/POOLS.md, "Providers"). The join token and the
//! instance id travel on stdin, never on the command line (which every user of the host
//! can read). Each run has a deadline that kills the program's process group; its
//! environment holds only `PATH`, `HOME`, `LANG` and the `env` param (the control plane's
//! own tokens are not handed down).
//!
//! Params: `provision`, `terminate`, `list` (each a program path or `[program, args…]`;
//! one program may serve all three, reading `action` from stdin), `timeout` (each run,
//! default 60s), `env` (variables for the programs).
//!
//! Contract. stdin is one JSON object with `action`:
//! - `provision`: `instance_id`, `pool`, `node_name`, `instance_type`, `region`, `zone`,
//!   `labels`, `join_token`, `control_plane_url` → stdout
//!   `{"provider_id": "…", "address": "http://…" (optional)}`;
//! - `terminate`: `provider_id` → exit 0 (stdout ignored); an `not_found` error is success;
//! - `list` → `{"instances": [{"provider_id", "instance_id", "state"}]}` with states
//!   `pending`, `running`, `terminating`, `gone`.
//!
//! A failure: a non-zero exit with stdout
//! `{"error": {"kind": "capacity", "message": "…", "retry_after_seconds": 30}}` (kinds:
//! [`ErrorKind::as_str`]). A non-zero exit without it is `other` with the end of stderr; an
//! exit 0 with an answer that cannot be read is `bad_answer`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::params::Params;
use super::run::{one_line, run, Outcome};
use super::{redact, ErrorKind, Listed, Provider, ProviderError, ProvisionRequest, Provisioned};

/// The provider that runs the operator's programs.
#[derive(Debug)]
pub struct ExecProvider {
    provision: Vec<String>,
    terminate: Vec<String>,
    list: Vec<String>,
    timeout: Duration,
    env: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    kind: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    retry_after_seconds: Option<f64>,
}

#[derive(Deserialize)]
struct ListAnswer {
    instances: Vec<Listed>,
}

impl ExecProvider {
    /// From a pool spec's params (see the module docs).
    pub fn from_params(map: &Map<String, Value>) -> Result<Self, Vec<String>> {
        let mut p = Params::new("exec", map);
        let provision = p.command("provision", true);
        let terminate = p.command("terminate", true);
        let list = p.command("list", true);
        let timeout = p.duration(
            "timeout",
            Duration::from_secs(60),
            Duration::from_millis(100),
            Duration::from_secs(3600),
        );
        let env = p.string_map("env");
        p.finish()?;
        Ok(Self {
            provision: provision.unwrap_or_default(),
            terminate: terminate.unwrap_or_default(),
            list: list.unwrap_or_default(),
            timeout,
            env,
        })
    }

    /// Runs `argv` with `input`; stdout on exit 0, else the error the program reported.
    fn call(
        &self,
        action: &str,
        argv: &[String],
        input: &Value,
        secrets: &[&str],
    ) -> Result<Vec<u8>, ProviderError> {
        let stdin = serde_json::to_vec(input).unwrap_or_default();
        let out = run(argv, &self.env, &stdin, self.timeout).map_err(|e| {
            ProviderError::new(
                ErrorKind::Other,
                format!("{action}: cannot run {}: {e}", argv[0]),
            )
        })?;
        let said = |o: &Outcome| {
            let s = one_line(&redact(&o.stderr, secrets));
            if s.is_empty() {
                String::new()
            } else {
                format!("; stderr: {s}")
            }
        };
        if out.timed_out {
            return Err(ProviderError::new(
                ErrorKind::Timeout,
                format!(
                    "{action}: {} did not finish within {} and was killed{}",
                    argv[0],
                    humantime::format_duration(self.timeout),
                    said(&out)
                ),
            ));
        }
        let status = out.status;
        if status.is_some_and(|s| s.success()) {
            if out.stdout_truncated {
                return Err(bad_answer(action, "more than 1 MiB on stdout"));
            }
            return Ok(out.stdout);
        }
        if let Ok(a) = serde_json::from_slice::<ErrorAnswer>(&out.stdout) {
            let message = redact(&a.error.message, secrets);
            let mut e = match ErrorKind::parse(&a.error.kind) {
                Some(kind) => ProviderError::new(kind, format!("{action}: {message}")),
                None => ProviderError::new(
                    ErrorKind::Other,
                    format!(
                        "{action}: {message} (unknown error kind {:?})",
                        one_line(&a.error.kind)
                    ),
                ),
            };
            if let Some(s) = a
                .error
                .retry_after_seconds
                .filter(|s| s.is_finite() && *s > 0.0)
            {
                e = e.with_retry_after(Duration::from_secs_f64(s.min(86_400.0)));
            }
            return Err(e);
        }
        let how = match status.and_then(|s| s.code()) {
            Some(c) => format!("exited with status {c}"),
            None => "was killed by a signal".to_string(),
        };
        Err(ProviderError::new(
            ErrorKind::Other,
            format!("{action}: {} {how}{}", argv[0], said(&out)),
        ))
    }
}

fn bad_answer(action: &str, e: impl std::fmt::Display) -> ProviderError {
    ProviderError::new(
        ErrorKind::BadAnswer,
        format!("{action}: the program's answer cannot be read: {e}"),
    )
}

impl Provider for ExecProvider {
    fn kind(&self) -> &'static str {
        "exec"
    }

    fn provision(&self, req: &ProvisionRequest) -> Result<Provisioned, ProviderError> {
        let input = json!({
            "action": "provision",
            "instance_id": req.instance_id,
            "pool": req.pool,
            "node_name": req.node_name,
            "instance_type": req.instance_type,
            "region": req.region,
            "zone": req.zone,
            "labels": req.labels,
            "join_token": req.join_token,
            "control_plane_url": req.control_plane_url,
        });
        let out = self.call("provision", &self.provision, &input, &[&req.join_token])?;
        let p: Provisioned =
            serde_json::from_slice(&out).map_err(|e| bad_answer("provision", e))?;
        if p.provider_id.trim().is_empty() || p.provider_id.len() > 256 {
            return Err(bad_answer(
                "provision",
                "provider_id must be 1-256 characters",
            ));
        }
        if let Some(a) = &p.address {
            crate::validate::base_url(a)
                .map_err(|e| bad_answer("provision", format!("address {e}")))?;
        }
        Ok(p)
    }

    fn terminate(&self, provider_id: &str) -> Result<(), ProviderError> {
        let input = json!({"action": "terminate", "provider_id": provider_id});
        match self.call("terminate", &self.terminate, &input, &[]) {
            Ok(_) => Ok(()),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn list(&self) -> Result<Vec<Listed>, ProviderError> {
        let out = self.call("list", &self.list, &json!({"action": "list"}), &[])?;
        let a: ListAnswer = serde_json::from_slice(&out).map_err(|e| bad_answer("list", e))?;
        if let Some(l) = a.instances.iter().find(|l| l.provider_id.trim().is_empty()) {
            return Err(bad_answer("list", format!("an empty provider_id ({l:?})")));
        }
        Ok(a.instances)
    }
}
