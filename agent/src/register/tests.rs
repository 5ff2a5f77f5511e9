use super::*;
use crate::config::ControlPlaneConfig;
use std::net::SocketAddr;

#[test]
fn the_scrape_url_comes_from_advertise_or_the_bound_address() {
    let bound: SocketAddr = "127.0.0.1:9410".parse().unwrap();
    assert_eq!(advertise_url("", bound, "h"), "http://127.0.0.1:9410");
    assert_eq!(
        advertise_url("http://n1:9410/", bound, "h"),
        "http://n1:9410"
    );
    let any: SocketAddr = "0.0.0.0:9410".parse().unwrap();
    assert_eq!(advertise_url("", any, "gpu-07"), "http://gpu-07:9410");
}

#[test]
fn backoff_doubles_up_to_the_cap_with_jitter() {
    let max = Duration::from_secs(60);
    for n in 0..20 {
        let d = backoff(n, max);
        let base = Duration::from_secs(1u64 << n.min(6)).min(max);
        assert!(
            d >= base.mul_f64(0.79) && d <= base.mul_f64(1.21),
            "attempt {n}: {d:?}"
        );
    }
}

#[test]
fn credentials_are_tried_kept_token_first_without_repeats() {
    let dir = std::env::temp_dir().join(format!("gw-reg-{}", fastrand::u64(..)));
    let file = dir.join("node-token");
    write_token(&file, "gwn_kept").unwrap();
    let cfg = ControlPlaneConfig {
        token: "gwn_join".into(),
        bootstrap_token: "boot-strap-token-1".into(),
        token_file: file.clone(),
        ..ControlPlaneConfig::default()
    };
    assert_eq!(
        credentials(&cfg, Some(&file), Some("boot-strap-token-1".into())),
        ["gwn_kept", "gwn_join", "boot-strap-token-1"]
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// A token file an operator left readable by others becomes 0600 when the agent rewrites it,
/// and a rewrite leaves no temporary file behind.
#[test]
fn a_rewritten_token_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("gw-reg-{}", fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("node-token");
    std::fs::write(&file, "old-token-old-token\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    write_token(&file, "gwn_new_token_0123456789").unwrap();
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "gwn_new_token_0123456789\n"
    );
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    let _ = std::fs::remove_dir_all(dir);
}
