//! One HTTP client for the tests.

use std::time::Duration;

use serde_json::Value;

/// A blocking client whose non-2xx answers are answers, not errors (tests assert on the
/// status), with a 10 s limit on each whole request.
pub fn client() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// A JSON API client that sends `Authorization: Bearer {token}` with every request.
pub struct Api {
    /// `http://host:port`, without a trailing slash.
    pub base: String,
    /// The bearer token.
    pub token: String,
    http: ureq::Agent,
}

impl Api {
    /// A client of the server at `base` with `token`.
    pub fn new(base: &str, token: &str) -> Self {
        Self {
            base: base.to_string(),
            token: token.to_string(),
            http: client(),
        }
    }

    /// `method path` (GET, DELETE, or else POST with `body` as JSON, `null` when `None`);
    /// returns the status and the body as JSON (a JSON string when it is not JSON). Panics
    /// when the server cannot be reached.
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.try_call(method, path, body)
            .unwrap_or_else(|e| panic!("{method} {}{path}: {e}", self.base))
    }

    /// [`Api::call`], with a connection failure as an error instead of a panic.
    pub fn try_call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), String> {
        let url = format!("{}{path}", self.base);
        let auth = format!("Bearer {}", self.token);
        let r = match method {
            "GET" => self.http.get(&url).header("Authorization", &auth).call(),
            "DELETE" => self.http.delete(&url).header("Authorization", &auth).call(),
            _ => self
                .http
                .post(&url)
                .header("Authorization", &auth)
                .send_json(body.unwrap_or(Value::Null)),
        };
        let mut r = r.map_err(|e| e.to_string())?;
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().unwrap_or_default();
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    /// `GET path`, asserting a 200; the body as JSON.
    pub fn get(&self, path: &str) -> Value {
        let (st, v) = self.call("GET", path, None);
        assert_eq!(st, 200, "GET {path}: {v}");
        v
    }
}
