//! The cloud-init `user_data` of a launched instance: a shell script that writes the
//! agent's config (the join token in a file of mode 0600, never on a command line), runs
//! the operator's install command, and starts the agent as a systemd service.

use crate::pool::provider::ProvisionRequest;

/// Most bytes of `user_data` the API takes.
pub const MAX_USER_DATA: usize = 1 << 20;

/// A TOML basic string holding `s`.
fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The script for `req`; `install` runs before the agent starts (e.g. a download of the
/// agent binary); `agent` is the agent's path on the instance.
pub fn script(req: &ProvisionRequest, install: Option<&str>, agent: &str) -> String {
    let mut labels = String::new();
    for (k, v) in &req.labels {
        labels.push_str(&format!("{} = {}\n", toml_str(k), toml_str(v)));
    }
    format!(
        r#"#!/bin/sh
# gpuwarden instance {instance} of pool {pool}: join the control plane as {node}.
set -eu
umask 077
mkdir -p /etc/gpuwarden /var/lib/gpuwarden-agent
cat > /etc/gpuwarden/agent.toml <<'GPUWARDEN_EOF'
[node]
id = {node_toml}
state_dir = "/var/lib/gpuwarden-agent"

[node.labels]
{labels}
[control_plane]
url = {url_toml}
token = {token_toml}
pool = {pool_toml}
GPUWARDEN_EOF
chmod 600 /etc/gpuwarden/agent.toml
{install}
cat > /etc/systemd/system/gpuwarden-agent.service <<'GPUWARDEN_EOF'
[Unit]
Description=gpuwarden agent
After=network-online.target
Wants=network-online.target

[Service]
ExecStart={agent} --config /etc/gpuwarden/agent.toml
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
GPUWARDEN_EOF
systemctl daemon-reload
systemctl enable --now gpuwarden-agent
"#,
        instance = req.instance_id,
        pool = req.pool,
        node = req.node_name,
        node_toml = toml_str(&req.node_name),
        url_toml = toml_str(&req.control_plane_url),
        token_toml = toml_str(&req.join_token),
        pool_toml = toml_str(&req.pool),
        install = install.unwrap_or("# (no install command: the image has the agent)"),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn the_script_writes_the_token_into_a_private_config_and_starts_the_agent() {
        let req = ProvisionRequest {
            instance_id: "inst-7".into(),
            pool: "train".into(),
            node_name: "train-7".into(),
            instance_type: "gpu_1x_a100".into(),
            region: "us-east-1".into(),
            zone: None,
            labels: BTreeMap::from([("team".to_string(), "a \"b\"".to_string())]),
            join_token: "gwj_abc".into(),
            control_plane_url: "https://cp.example:8410".into(),
        };
        let s = script(
            &req,
            Some("curl -fsSL https://x/agent -o /usr/local/bin/gpuwarden-agent"),
            "/usr/local/bin/gpuwarden-agent",
        );
        assert!(s.starts_with("#!/bin/sh\n"));
        assert!(s.contains("token = \"gwj_abc\"\n"));
        assert!(s.contains("id = \"train-7\"\n"));
        assert!(s.contains("\"team\" = \"a \\\"b\\\"\"\n"));
        assert!(s.contains("chmod 600 /etc/gpuwarden/agent.toml"));
        assert!(s.contains("curl -fsSL"));
        assert!(s.contains(
            "ExecStart=/usr/local/bin/gpuwarden-agent --config /etc/gpuwarden/agent.toml"
        ));
        // The token is in the config file only, never on a command line.
        assert_eq!(s.matches("gwj_abc").count(), 1);
    }
}
