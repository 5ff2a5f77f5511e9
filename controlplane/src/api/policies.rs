//! `POST /v1/policies/validate`: checks a policy document without loading it.

use actix_web::{get, post, put, web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::body::{Json, Text};
use super::caller::Admin;
use super::error::ApiError;
use super::state::AppState;
use crate::judge::policy::{Policy, PolicyError};
use crate::model::observation::NodeObservation;

/// Answer of `POST /v1/policies/validate` for a valid document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Valid {
    /// Always true.
    pub valid: bool,
    /// How many rules it has.
    pub rules: usize,
}

/// Answer for an invalid document: every problem.
#[derive(Debug, Serialize, ToSchema)]
pub struct Invalid {
    /// Always false.
    pub valid: bool,
    /// Each problem with its rule, line and column.
    #[schema(value_type = Vec<Object>)]
    pub errors: Vec<PolicyError>,
}

#[utoipa::path(
    post, path = "/v1/policies/validate",
    request_body(content((String = "application/toml"), (String = "text/plain")), description = "The policy document (TOML, UTF-8)"),
    responses(
        (status = 200, body = Valid),
        (status = 422, description = "Every problem, with rule, line and column", body = Invalid),
        (status = 400, description = "The body is not UTF-8"),
        (status = 401),
    )
)]
#[post("/v1/policies/validate")]
pub(super) async fn validate(_admin: Admin, body: Text) -> Result<HttpResponse, ApiError> {
    let text = body.0;
    // Compiling CEL takes a fraction of a millisecond per rule: off the workers all the same.
    let outcome = web::block(move || Policy::parse(&text).map(|p| p.rules().len())).await?;
    Ok(match outcome {
        Ok(rules) => HttpResponse::Ok().json(Valid { valid: true, rules }),
        Err(errors) => HttpResponse::UnprocessableEntity().json(Invalid {
            valid: false,
            errors,
        }),
    })
}

/// A rule as `GET /v1/policies` shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleView {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// `event` | `gpu` | `node`.
    pub scope: String,
    /// The CEL expression.
    pub when: String,
    /// `degraded` | `unhealthy`.
    pub verdict: String,
    /// How long it must hold, like `2m`.
    pub r#for: Option<String>,
    /// Recommended action.
    pub action: Option<String>,
}

/// Answer of `GET /v1/policies`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyView {
    /// The rules, in order.
    pub rules: Vec<RuleView>,
    /// The TOML document.
    pub source: String,
}

/// The policy as `GET /v1/policies` shows it.
pub fn policy_view(p: &Policy) -> PolicyView {
    PolicyView {
        rules: p
            .rules()
            .iter()
            .map(|r| RuleView {
                name: r.name.clone(),
                description: r.description.clone(),
                scope: r.scope.as_str().to_string(),
                when: r.when.clone(),
                verdict: r.verdict.as_str().to_string(),
                r#for: r.hold.map(|d| humantime::format_duration(d).to_string()),
                action: r.action.clone(),
            })
            .collect(),
        source: p.source().to_string(),
    }
}

#[utoipa::path(get, path = "/v1/policies", operation_id = "get_policies", responses((status = 200, body = PolicyView), (status = 401)))]
#[get("/v1/policies")]
pub(super) async fn get(_admin: Admin, state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(policy_view(&crate::judge::policy::current(&state.policy)))
}

#[utoipa::path(
    put, path = "/v1/policies",
    description = "Validates the document, then swaps the running policy atomically (and writes it to `health.policy_file` when one is set). An invalid document changes nothing.",
    request_body(content((String = "application/toml"), (String = "text/plain")), description = "The policy document (TOML, UTF-8)"),
    responses((status = 200, body = PolicyView), (status = 400, description = "The body is not UTF-8"), (status = 422, body = Invalid), (status = 401))
)]
#[put("/v1/policies")]
pub(super) async fn put(
    admin: Admin,
    state: web::Data<AppState>,
    body: Text,
) -> Result<HttpResponse, ApiError> {
    let text = body.0;
    let file = state.policy_file.clone();
    let parsed = web::block(
        move || -> Result<Result<Policy, Vec<PolicyError>>, std::io::Error> {
            let p = match Policy::parse(&text) {
                Ok(p) => p,
                Err(e) => return Ok(Err(e)),
            };
            if !file.as_os_str().is_empty() {
                // Written whole, then renamed: a crash never leaves half a policy.
                let tmp = file.with_extension("toml.new");
                std::fs::write(&tmp, &text)?;
                std::fs::rename(&tmp, &file)?;
            }
            Ok(Ok(p))
        },
    )
    .await?
    .map_err(|e| ApiError::internal(format!("writing the policy file: {e}")))?;
    let now = state.clock.now_ms();
    match parsed {
        Err(errors) => {
            let entry = crate::store::rows::NewAudit {
                result: format!("rejected: {} problem(s)", errors.len()),
                ..crate::store::rows::NewAudit::ok(
                    &admin.0,
                    "policy.put",
                    "policy",
                    serde_json::json!({}),
                    now,
                )
            };
            let store = state.store.clone();
            super::state::blocking(move || store.audit(entry)).await?;
            Ok(HttpResponse::UnprocessableEntity().json(Invalid {
                valid: false,
                errors,
            }))
        }
        Ok(p) => {
            let rules = p.rules().len();
            state
                .metrics
                .init_rules(p.rules().iter().map(|r| r.name.as_str()));
            let out = policy_view(&p);
            *state.policy.write().unwrap_or_else(|e| e.into_inner()) = std::sync::Arc::new(p);
            tracing::info!(rules, by = %admin.0, "health policy replaced");
            let entry = crate::store::rows::NewAudit::ok(
                &admin.0,
                "policy.put",
                "policy",
                serde_json::json!({"rules": rules}),
                now,
            );
            let store = state.store.clone();
            super::state::blocking(move || store.audit(entry)).await?;
            Ok(HttpResponse::Ok().json(out))
        }
    }
}

/// Body of `POST /v1/policies/simulate`.
#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimulateRequest {
    /// The candidate policy (TOML).
    pub policy: String,
    /// Window start: RFC 3339, or a duration back from now like `24h` (default `24h`).
    #[serde(default)]
    pub since: Option<String>,
    /// Window end: RFC 3339, or a duration back from now (default: now).
    #[serde(default)]
    pub until: Option<String>,
    /// Only nodes of this pool.
    #[serde(default)]
    pub pool: Option<String>,
}

/// Most events one simulation reads.
const SIMULATE_MAX_EVENTS: i64 = 2_000_000;

fn time_arg(v: Option<&str>, default_ago: std::time::Duration, now: i64) -> Result<i64, ApiError> {
    let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    match v {
        None => Ok(now - ms(default_ago)),
        Some(s) => {
            if let Ok(d) = humantime::parse_duration(s) {
                return Ok(now - ms(d));
            }
            crate::clock::parse_rfc3339(s).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "{s:?} is neither an RFC 3339 time nor a duration like 24h"
                ))
            })
        }
    }
}

#[utoipa::path(
    post, path = "/v1/policies/simulate",
    description = "Evaluates a candidate policy and the running one over the stored events and latest observations of a time window; answers per node the verdict of each, the rules behind it, and which nodes the candidate would change.",
    request_body = SimulateRequest,
    responses(
        (status = 200, body = crate::judge::simulate::Simulation),
        (status = 422, description = "The candidate policy is invalid: every problem", body = Invalid),
        (status = 400, description = "Malformed body, or `since`/`until` neither RFC 3339 nor a duration, or not in order"), (status = 401),
    )
)]
#[post("/v1/policies/simulate")]
pub(super) async fn simulate(
    _admin: Admin,
    state: web::Data<AppState>,
    body: Json<SimulateRequest>,
) -> Result<HttpResponse, ApiError> {
    Ok(match simulate_policy(&state, body.0).await? {
        Ok((sim, _)) => HttpResponse::Ok().json(sim),
        Err(errors) => HttpResponse::UnprocessableEntity().json(Invalid {
            valid: false,
            errors,
        }),
    })
}

/// The what-if simulation of `req.policy` against the running policy (the REST API's
/// `POST /v1/policies/simulate` and the console's policies page): the simulation and the
/// candidate's rule count, or every problem of an invalid candidate (with rule, line and
/// column). 400 for a bad window.
pub async fn simulate_policy(
    state: &AppState,
    req: SimulateRequest,
) -> Result<Result<(crate::judge::simulate::Simulation, usize), Vec<PolicyError>>, ApiError> {
    let now = state.clock.now_ms();
    let since = time_arg(
        req.since.as_deref(),
        std::time::Duration::from_secs(86_400),
        now,
    )?;
    let until = time_arg(req.until.as_deref(), std::time::Duration::ZERO, now)?;
    if until <= since {
        return Err(ApiError::bad_request("until must be after since"));
    }
    let candidate = match web::block(move || Policy::parse(&req.policy)).await? {
        Ok(p) => p,
        Err(errors) => return Ok(Err(errors)),
    };
    let rules = candidate.rules().len();
    let current = crate::judge::policy::current(&state.policy);
    let (store, fleet) = (state.store.clone(), state.fleet.clone());
    let pool = req.pool;
    let out = super::state::blocking(move || {
        let start = std::time::Instant::now();
        let mut events = store.events_between(since, until, SIMULATE_MAX_EVENTS)?;
        let mut by_node: std::collections::HashMap<String, Vec<_>> = Default::default();
        for e in events.drain(..) {
            by_node.entry(e.node_id.clone()).or_default().push(e);
        }
        let nodes = store.all_nodes()?;
        // Stored rows only for nodes without an observation in memory (not scraped since
        // the start): at 2,000 nodes reading every row was 26 MB and ~85 ms a request.
        let missing: Vec<&str> = nodes
            .iter()
            .filter(|n| pool.as_ref().is_none_or(|p| *p == n.pool))
            .filter(|n| fleet.latest(&n.id).is_none())
            .map(|n| n.id.as_str())
            .collect();
        let mut obs: std::collections::HashMap<String, Vec<_>> = Default::default();
        if missing.len() > 100 {
            for r in store.all_observations()? {
                obs.entry(r.node_id.clone()).or_default().push(r);
            }
        } else {
            for id in missing {
                obs.insert(id.to_string(), store.observations(id)?);
            }
        }
        let expected = store.all_expected_gpus()?;
        let mut records = Vec::new();
        for n in nodes {
            if pool.as_ref().is_some_and(|p| *p != n.pool) {
                continue;
            }
            // The one in memory when the node is scraped (the stored rows are written
            // every `database.observation_write_interval`), else the stored one.
            let stored = obs.remove(&n.id);
            let observation = fleet
                .latest(&n.id)
                .map(|(o, at)| (NodeObservation::clone(&o), at))
                .or_else(|| {
                    stored.and_then(|rows| crate::judge::simulate::observation_from_rows(&rows))
                })
                .filter(|(_, at)| (since..until).contains(at));
            let expected_gpus = expected
                .get(&n.id)
                .copied()
                .unwrap_or_else(|| n.registered_gpus());
            let connectivity = fleet
                .scrape_view(&n.id)
                .map_or(n.connectivity.clone(), |(_, c, _)| c.as_str().to_string());
            records.push(crate::judge::simulate::NodeRecord {
                input: crate::judge::policy::NodeInput {
                    name: n.name.clone(),
                    pool: n.pool.clone(),
                    labels: serde_json::from_str(&n.labels).unwrap_or_default(),
                    expected_gpus,
                    connectivity,
                },
                events: by_node.remove(&n.id).unwrap_or_default(),
                observation,
                id: n.id,
            });
        }
        // Evaluated on a thread whose stack is sized for the expression limits, like the
        // scrape workers' (the blocking pool's threads have 2 MiB).
        let Ok(sim) = crate::judge::policy::on_eval_stack(|| {
            crate::judge::simulate::simulate(&current, &candidate, &records, since, until)
        }) else {
            return Ok(None);
        };
        tracing::info!(
            nodes = sim.nodes_evaluated,
            events = sim.events_evaluated,
            changed = sim.changed,
            took_ms = start.elapsed().as_millis() as u64,
            "policy simulated"
        );
        Ok(Some(sim))
    })
    .await?
    .ok_or_else(|| ApiError::internal("cannot start the policy evaluation thread"))?;
    Ok(Ok((out, rules)))
}
