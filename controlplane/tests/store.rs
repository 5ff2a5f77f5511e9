//! The store on both backends: the same suite (`store_suite`) runs on a SQLite file and on a
//! real PostgreSQL 15 server started for the test; migrations are applied from scratch on
//! each and are idempotent; unusable database URLs are clear errors.

use gpuwarden_controlplane::store::{Backend, Store, StoreError, StoreOptions};

use crate::store_suite::suite;
use crate::store_suite_plugins::plugins;
use crate::store_suite_pools::pools;
use crate::store_suite_remedy::remedy;
use crate::util::{sqlite_store, Postgres, TempDir};

#[test]
fn sqlite_store_does_everything_the_control_plane_needs() {
    let dir = TempDir::new("store");
    let s = sqlite_store(&dir);
    assert_eq!(s.backend(), Backend::Sqlite);
    suite(&s);
    // Migrations are idempotent: opening again applies nothing and keeps the rows.
    drop(s);
    let s = sqlite_store(&dir);
    assert_eq!(s.count("nodes").unwrap(), 6);
    pools(&s);
    remedy(&s);
    plugins(&s);
}

#[test]
fn postgres_store_does_everything_the_control_plane_needs() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.database("gw_store");
    let s = Store::open(&url, &StoreOptions::default()).unwrap();
    assert_eq!(s.backend(), Backend::Postgres);
    suite(&s);
    drop(s);
    let s = Store::open(&url, &StoreOptions::default()).unwrap();
    assert_eq!(s.count("nodes").unwrap(), 6);
    pools(&s);
    remedy(&s);
    plugins(&s);
}

/// libpq is compiled in with TLS (pq-sys's `bundled`, OpenSSL built from source): with
/// `sslmode=require` the store works over TLS to a server that takes it, and a server without
/// TLS is refused for that reason (a libpq built without TLS would refuse the mode itself).
#[test]
fn postgres_over_tls_works_with_the_compiled_in_libpq() {
    let Some(pg) = Postgres::start_tls() else {
        return;
    };
    let url = format!("{}?sslmode=require", pg.database("gw_tls"));
    let s = Store::open(&url, &StoreOptions::default()).unwrap();
    assert_eq!(s.backend(), Backend::Postgres);
    suite(&s);
    drop(s);

    let Some(plain) = Postgres::start() else {
        return;
    };
    let url = format!("{}?sslmode=require", plain.database("gw_plain"));
    let opts = StoreOptions {
        connect_timeout: std::time::Duration::from_secs(3),
        ..StoreOptions::default()
    };
    let e = Store::open(&url, &opts).unwrap_err().to_string();
    assert!(e.contains("does not support SSL"), "{e}");
    assert!(!e.contains("not compiled in"), "{e}");
}

#[test]
fn unusable_database_urls_are_clear_errors() {
    let e = Store::open("mysql://x/y", &StoreOptions::default()).unwrap_err();
    assert!(e.to_string().contains("unsupported database URL"), "{e}");
    let opts = StoreOptions {
        connect_timeout: std::time::Duration::from_millis(500),
        ..StoreOptions::default()
    };
    let e = Store::open("postgres://nobody@127.0.0.1:1/none", &opts).unwrap_err();
    assert!(matches!(e, StoreError::Pool(_)), "{e}");
}
