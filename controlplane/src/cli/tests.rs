//! Output rendering, errors and exit codes of the admin CLI.

use super::client::read_cli_file;
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

#[test]
fn a_pool_file_with_a_key_given_twice_is_refused_as_the_api_refuses_it() {
    let dir = std::env::temp_dir().join(format!("gw-cli-dupes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("p.json");
    std::fs::write(
        &f,
        r#"{"name":"j","provider":"fake","min_nodes":1,"min_nodes":2}"#,
    )
    .unwrap();
    let e = super::pools::read_file(&f).unwrap_err().to_string();
    assert!(e.contains("min_nodes") && e.contains("twice"), "{e}");
    std::fs::write(&f, r#"{"name":"j","provider":"fake","min_nodes":1}"#).unwrap();
    assert_eq!(super::pools::read_file(&f).unwrap()["min_nodes"], 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_budget_percentage_must_be_a_finite_number() {
    for bad in ["nan", "NaN", "inf", "-inf", "x"] {
        assert!(super::remedy::finite(bad).is_err(), "{bad}");
    }
    assert_eq!(super::remedy::finite("25"), Ok(25.0));
}
