//! `GET /v1/events`: cursor paging, errors, instance id.

use crate::util::Agent;

#[test]
fn events_page_by_cursor_and_report_the_agent_instance() {
    let agent = Agent::start(&["--fake-gpus", "2"], &[]);
    for code in [13, 31, 79] {
        let body = format!(r#"{{"gpu":1,"fault":"xid","code":{code}}}"#);
        assert_eq!(agent.post("/v1/fake/inject", &body).0, 200);
    }
    let all = agent.events_after(0);
    let codes: Vec<u64> = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_u64().unwrap())
        .collect();
    assert_eq!(codes, vec![13, 31, 79]);
    let seqs: Vec<u64> = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    assert_eq!(all["next"], seqs[2]);
    let e = &all["events"][0];
    assert_eq!(e["severity"], "warning");
    assert_eq!(e["action"], "restart_app");
    assert!(e["time"].as_str().unwrap().ends_with('Z'));

    let rest = agent.events_after(seqs[0]);
    assert_eq!(rest["events"].as_array().unwrap().len(), 2);
    let (s, body) = agent.get(&format!("/v1/events?after={}&limit=1", seqs[0]));
    assert_eq!(s, 200);
    let one: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(one["events"].as_array().unwrap().len(), 1);
    assert_eq!(one["next"], seqs[1]);
    assert!(all["instance"].as_str().is_some_and(|i| !i.is_empty()));
    assert_eq!(all["truncated"], false);
}

#[test]
fn bad_event_queries_get_json_errors() {
    let agent = Agent::start(&["--fake-gpus", "1"], &[]);
    for q in [
        "after=-1",
        "after=abc",
        "limit=0",
        "limit=100000",
        "colour=blue",
    ] {
        let (s, body) = agent.get(&format!("/v1/events?{q}"));
        assert_eq!(s, 400, "{q}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"]["code"], "bad_request", "{q}: {body}");
    }
    let (s, body) = agent.get("/v1/nowhere");
    assert_eq!(s, 404);
    assert!(body.contains("not_found"));
}

#[test]
fn healthz_counts_gpus_and_lost_gpus() {
    let agent = Agent::start(&["--fake-gpus", "3"], &[]);
    assert_eq!(
        agent
            .post("/v1/fake/inject", r#"{"gpu":2,"fault":"fell_off_bus"}"#)
            .0,
        200
    );
    let (s, body) = agent.get("/healthz");
    assert_eq!(s, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["gpus"], 3);
    assert_eq!(v["gpus_lost"], 1);
}

#[test]
fn curl_style_posts_without_a_json_content_type_are_accepted() {
    // `curl -XPOST -d '{…}'` sends application/x-www-form-urlencoded, as the README does.
    let agent = Agent::start(&["--fake-gpus", "1"], &[]);
    let mut r = crate::util::http_client()
        .post(&format!("{}/v1/fake/inject", agent.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .send(r#"{"gpu":0,"fault":"xid","code":79}"#)
        .expect("POST");
    assert_eq!(
        r.status().as_u16(),
        200,
        "{}",
        r.body_mut().read_to_string().unwrap()
    );
    assert_eq!(agent.events_after(0)["events"][0]["code"], 79);
}
