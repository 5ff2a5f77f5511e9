//! Tries to read a file, open a socket, read the environment and the clock, and reports what
//! happened. In the agent's sandbox every attempt fails and the clock reads the Unix epoch.
use gpuwarden_plugin_sdk::prelude::*;
struct Escape;
impl HealthCheck for Escape {
    fn check(_: &Host) -> Report {
        let file = match std::fs::read_to_string("/etc/passwd") {
            Ok(s) => format!("file READ {} bytes", s.len()),
            Err(e) => format!("file denied ({e})"),
        };
        let dir = match std::fs::read_dir("/") {
            Ok(_) => "dir LISTED".to_string(),
            Err(e) => format!("dir denied ({e})"),
        };
        let net = match std::net::TcpStream::connect("127.0.0.1:9410") {
            Ok(_) => "socket CONNECTED".to_string(),
            Err(e) => format!("socket denied ({e})"),
        };
        let env = format!("env vars {}", std::env::vars().count());
        let clock = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| format!("clock {}s", d.as_secs()))
            .unwrap_or_else(|_| "clock before epoch".into());
        let escaped = file.contains("READ") || dir.contains("LISTED") || net.contains("CONNECTED");
        let status = if escaped {
            Status::Unhealthy
        } else {
            Status::Healthy
        };
        let mut r = ReportBuilder::new();
        r.finding(
            None,
            status,
            format!("{file}; {dir}; {net}; {env}; {clock}"),
            Action::None,
        );
        let mut report = r.finish("");
        report.message = report.findings[0].message.clone();
        report
    }
}
export_health_check!(Escape);
