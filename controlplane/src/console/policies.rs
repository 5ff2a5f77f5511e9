//! `/ui/policies`: the running health policy; a candidate checked in the browser, with each
//! problem at its line, and the what-if simulation of the candidate beside the running one
//! (the same code as `POST /v1/policies/simulate`). Checking changes nothing, so a viewer
//! may check too; putting a policy in force stays with `PUT /v1/policies` (an admin).

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::common::{badge, page, Chrome, Signed, UiError};
use crate::api::{policy_view, simulate_policy, AppState, PolicyView, SimulateRequest};

/// Windows the what-if may look back over.
const WINDOWS: [&str; 4] = ["1h", "24h", "7d", "30d"];

/// A line of the candidate, with its problems.
#[derive(Debug)]
pub struct SourceLine {
    /// From 1.
    pub number: usize,
    /// The text.
    pub text: String,
    /// Problems at this line.
    pub problems: Vec<String>,
}

/// A node the policies disagree on or flag.
#[derive(Debug)]
pub struct Row {
    /// Node id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Pool.
    pub pool: String,
    /// Running policy's verdict and rules.
    pub current: String,
    /// Candidate's verdict and rules.
    pub candidate: String,
    /// Whether they differ.
    pub changed: bool,
}

/// The what-if's answer as the page shows it.
#[derive(Debug)]
pub struct WhatIf {
    /// Window.
    pub since: String,
    /// Window.
    pub until: String,
    /// Nodes looked at.
    pub nodes: usize,
    /// Events evaluated.
    pub events: usize,
    /// `(verdict, running, candidate)`.
    pub counts: Vec<(String, usize, usize)>,
    /// Nodes whose verdict changes.
    pub changed: usize,
    /// Nodes either flagged.
    pub rows: Vec<Row>,
    /// Rules that failed at run time.
    pub failures: Vec<String>,
    /// What it cannot see.
    pub notes: Vec<String>,
}

#[derive(Template)]
#[template(path = "console/policies.html")]
struct PoliciesPage {
    chrome: Chrome,
    running: PolicyView,
    rules: Vec<[String; 6]>,
    candidate: String,
    window: String,
    windows: [&'static str; 4],
    valid: Option<usize>,
    errors: Vec<String>,
    lines: Vec<SourceLine>,
    what_if: Option<WhatIf>,
}

fn base(who: &Signed, state: &AppState) -> PoliciesPage {
    let running = policy_view(&crate::judge::policy::current(&state.policy));
    let rules = running
        .rules
        .iter()
        .map(|r| {
            [
                r.name.clone(),
                r.scope.clone(),
                r.verdict.clone(),
                r.r#for.clone().unwrap_or_default(),
                r.when.clone(),
                r.description.clone(),
            ]
        })
        .collect();
    PoliciesPage {
        chrome: who.chrome("Policies", "policies"),
        rules,
        candidate: running.source.clone(),
        running,
        window: "24h".into(),
        windows: WINDOWS,
        valid: None,
        errors: Vec::new(),
        lines: Vec::new(),
        what_if: None,
    }
}

/// `GET /ui/policies`.
#[get("/policies")]
pub async fn policies(who: Signed, state: web::Data<AppState>) -> Result<HttpResponse, UiError> {
    page(&base(&who, &state))
}

/// The candidate form.
#[derive(Debug, Deserialize)]
pub struct CheckForm {
    /// CSRF token.
    #[serde(default)]
    csrf: String,
    /// The candidate (TOML).
    #[serde(default)]
    policy: String,
    /// The what-if window: `1h`, `24h`, `7d` or `30d`.
    #[serde(default)]
    since: String,
}

fn verdicts(v: &crate::judge::simulate::Verdicts) -> String {
    let rules: Vec<&str> = v.rules.iter().map(|r| r.rule.as_str()).collect();
    if rules.is_empty() {
        badge(&v.verdict)
    } else {
        format!("{} ({})", badge(&v.verdict), rules.join(", "))
    }
}

/// `POST /ui/policies`: checks the candidate; when it is valid, runs the what-if.
#[post("/policies")]
pub async fn check(
    req: HttpRequest,
    who: Signed,
    state: web::Data<AppState>,
    form: web::Form<CheckForm>,
) -> Result<HttpResponse, UiError> {
    let f = form.into_inner();
    // A check changes nothing: a viewer may run it, with the session's CSRF token all the same.
    who.csrf(&req, Some(&f.csrf))?;
    let window = match f.since.as_str() {
        "" => "24h".to_string(),
        w if WINDOWS.contains(&w) => w.to_string(),
        w => {
            return Err(UiError::BadRequest(format!(
                "since {:?}: use one of {}",
                w.chars().take(32).collect::<String>(),
                WINDOWS.join(", ")
            )))
        }
    };
    let mut p = base(&who, &state);
    p.candidate = f.policy.clone();
    p.window = window.clone();
    let req = SimulateRequest {
        policy: f.policy.clone(),
        since: Some(window),
        until: None,
        pool: None,
    };
    match simulate_policy(&state, req).await? {
        Err(errors) => {
            let mut lines: Vec<SourceLine> = f
                .policy
                .lines()
                .enumerate()
                .map(|(i, text)| SourceLine {
                    number: i + 1,
                    text: text.to_string(),
                    problems: Vec::new(),
                })
                .collect();
            for e in &errors {
                let rule = e
                    .rule
                    .as_deref()
                    .map_or(String::new(), |r| format!("rule {r}: "));
                let msg = format!("line {}, column {}: {rule}{}", e.line, e.column, e.message);
                if let Some(l) = lines.get_mut(e.line.saturating_sub(1)) {
                    l.problems.push(msg.clone());
                }
                p.errors.push(msg);
            }
            p.lines = lines;
        }
        Ok((sim, rules)) => {
            p.valid = Some(rules);
            p.what_if = Some(WhatIf {
                since: super::common::when_rfc3339(&sim.since),
                until: super::common::when_rfc3339(&sim.until),
                nodes: sim.nodes_evaluated,
                events: sim.events_evaluated,
                counts: vec![
                    (badge("healthy"), sim.current.healthy, sim.candidate.healthy),
                    (
                        badge("degraded"),
                        sim.current.degraded,
                        sim.candidate.degraded,
                    ),
                    (
                        badge("unhealthy"),
                        sim.current.unhealthy,
                        sim.candidate.unhealthy,
                    ),
                ],
                changed: sim.changed,
                rows: sim
                    .nodes
                    .iter()
                    .map(|n| Row {
                        id: n.id.clone(),
                        name: n.name.clone(),
                        pool: n.pool.clone(),
                        current: verdicts(&n.current),
                        candidate: verdicts(&n.candidate),
                        changed: n.changed,
                    })
                    .collect(),
                failures: sim
                    .failures
                    .iter()
                    .map(|x| {
                        format!(
                            "{} policy, rule {}: {} times, first: {}",
                            x.policy, x.rule, x.count, x.error
                        )
                    })
                    .collect(),
                notes: sim.notes,
            });
        }
    }
    let status = if p.errors.is_empty() {
        actix_web::http::StatusCode::OK
    } else {
        actix_web::http::StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok(super::common::html_with(status, p.render()?))
}
