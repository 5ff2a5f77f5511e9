//! The OpenAPI document served at `/v1/openapi.json`: every path parameter declared where it
//! is, query parameters in the query, every reference resolved, and (with the PyPI package
//! `openapi-spec-validator`, which `.ci/run` installs) valid OpenAPI 3.1. Generated clients
//! and the schema-driven API test (`.ci/schemathesis`) depend on it.

use std::collections::{BTreeSet, HashSet};

use actix_web::http::StatusCode;
use serde_json::Value;

use crate::api::{app, env, send};

async fn document() -> Value {
    let e = env(false);
    let app = app!(e);
    let (st, doc) = send(&app, "GET", "/v1/openapi.json", None, None).await;
    assert_eq!(st, StatusCode::OK);
    doc
}

/// The `{name}`s of a path template.
fn template_params(path: &str) -> BTreeSet<String> {
    path.split('{')
        .skip(1)
        .filter_map(|s| s.split_once('}').map(|(n, _)| n.to_string()))
        .collect()
}

fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r.clone());
            }
            m.values().for_each(|x| refs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

/// Every problem of the document's parameters, operations and references.
fn problems(doc: &Value) -> Vec<String> {
    let mut p = Vec::new();
    let mut ids = HashSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let template = template_params(path);
        for (method, op) in item.as_object().expect("path item") {
            if !["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                continue;
            }
            let at = format!("{} {path}", method.to_uppercase());
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let mut seen = HashSet::new();
            let mut in_path = BTreeSet::new();
            for prm in &params {
                let name = prm["name"].as_str().unwrap_or("").to_string();
                let place = prm["in"].as_str().unwrap_or("");
                if !seen.insert((name.clone(), place.to_string())) {
                    p.push(format!("{at}: {name} declared twice in {place}"));
                }
                match place {
                    "path" => {
                        if !template.contains(&name) {
                            p.push(format!("{at}: {name} is in: path but not in the template"));
                        }
                        if prm["required"] != Value::Bool(true) {
                            p.push(format!("{at}: path parameter {name} is not required"));
                        }
                        in_path.insert(name.clone());
                    }
                    "query" | "header" | "cookie" => {
                        if template.contains(&name) {
                            p.push(format!("{at}: {name} is in the template but in: {place}"));
                        }
                    }
                    other => p.push(format!("{at}: {name} has in: {other:?}")),
                }
                if prm.get("schema").is_none() && prm.get("content").is_none() {
                    p.push(format!("{at}: {name} has no schema"));
                }
            }
            for t in template.difference(&in_path) {
                p.push(format!("{at}: template parameter {{{t}}} is not declared"));
            }
            if op["responses"].as_object().is_none_or(|r| r.is_empty()) {
                p.push(format!("{at}: no responses"));
            }
            if let Some(id) = op["operationId"].as_str() {
                if !ids.insert(id.to_string()) {
                    p.push(format!("{at}: operationId {id} is used twice"));
                }
            }
        }
    }
    let mut all = Vec::new();
    refs(doc, &mut all);
    for r in all {
        let target = r
            .strip_prefix("#/")
            .map(|path| path.split('/').fold(doc, |v, k| &v[k]));
        if target.is_none_or(Value::is_null) {
            p.push(format!("$ref {r} resolves to nothing"));
        }
    }
    p
}

#[actix_web::test]
async fn every_parameter_is_declared_where_it_is_and_every_reference_resolves() {
    let doc = document().await;
    let p = problems(&doc);
    assert!(p.is_empty(), "{} problem(s):\n{}", p.len(), p.join("\n"));
    // The regressions of the issue: query parameters were declared in: path, and {id} was
    // missing from every node operation.
    let list = &doc["paths"]["/v1/nodes"]["get"]["parameters"];
    let limit = list
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "limit")
        .unwrap();
    assert_eq!(limit["in"], "query");
    let step = &doc["paths"]["/v1/nodes/{id}/{action}"]["post"]["parameters"];
    assert_eq!(step.as_array().unwrap().len(), 2, "{step}");
}

#[test]
fn the_checks_find_what_they_are_for() {
    let bad = serde_json::json!({
        "paths": {"/v1/x/{id}": {"get": {
            "parameters": [{"name": "limit", "in": "path", "required": true, "schema": {}}],
            "responses": {"200": {"$ref": "#/components/responses/Nope"}}
        }}}
    });
    let p = problems(&bad);
    assert_eq!(p.len(), 3, "{p:?}");
}

#[actix_web::test]
async fn the_document_is_valid_openapi_by_an_independent_validator() {
    let doc = document().await;
    let dir = crate::util::TempDir::new("openapi");
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, doc.to_string()).unwrap();
    let script = "import json, sys\n\
        from openapi_spec_validator import validate\n\
        validate(json.load(open(sys.argv[1])))\n";
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&file)
        .output();
    let missing = match &out {
        Err(_) => true,
        Ok(o) => String::from_utf8_lossy(&o.stderr).contains("No module named"),
    };
    if missing {
        assert!(
            std::env::var_os("CI").is_none(),
            "python3 with openapi-spec-validator is missing (.ci/run installs it)"
        );
        eprintln!("skipping: python3 -m pip install openapi-spec-validator to run this test");
        return;
    }
    let out = out.unwrap();
    assert!(
        out.status.success(),
        "openapi-spec-validator refuses the document:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
