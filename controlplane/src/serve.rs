//! `gpuwarden serve`: opens the store, sets up tokens, loads the targets, starts the scraper
//! and the HTTP server. [`start`] is what the binary and the end-to-end tests both run.

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::{web, App, HttpServer};
use tracing::{info, warn};

use crate::act::deliver::{Dispatcher, DispatcherHandle, HttpSender};
use crate::act::remediate::{Remediator, RemediatorHandle};
use crate::act::wake::Links;
use crate::act::webhooks::{Notifier, NotifierHandle};
use crate::api::{self, auth_digest, ApiSettings, AppState, Auth};
use crate::clock::SharedClock;
use crate::config::ControlPlaneConfig;
use crate::judge::health::HealthSettings;
use crate::metrics::Metrics;
use crate::model::{Source, Status};
use crate::scrape::fleet::{Fleet, FleetSettings};
use crate::scrape::{HttpFetcher, Scraper, ScraperHandle};
use crate::store::rows::NodeRow;
use crate::store::{Store, StoreOptions};
use crate::token;

pub mod command;
mod error;
mod policy_watch;
pub mod pool_loops;
mod pools;
pub mod reload;
mod signal;
mod tokens;

pub use error::{redact, ServeError};
pub use signal::ShutdownSignal;
use tokens::admin_tokens;
pub use tokens::{EnvTokens, Generated};

/// A running control plane.
pub struct Running {
    /// Where the API listens.
    pub addr: SocketAddr,
    /// The admin token generated at this start, if one was.
    pub generated_admin_token: Option<Generated>,
    server: actix_web::dev::ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    scraper: ScraperHandle,
    pools: Option<crate::serve::pool_loops::PoolLoops>,
    reload: Option<reload::ReloadHandle>,
    /// Rereads the API tokens every `auth.api_token_refresh`.
    token_refresh: Option<tokio::task::JoinHandle<()>>,
    loops: Option<(
        DispatcherHandle,
        RemediatorHandle,
        NotifierHandle,
        Option<crate::judge::policy::watch::WatchHandle>,
    )>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Running {
    /// Reloads the config file's `[[pools]]` now, as SIGHUP does ([`reload`]); `None` when
    /// the reload thread is gone.
    pub fn reload_pools(&self) -> Option<reload::PoolsReload> {
        self.reload.as_ref()?.reload()
    }

    /// Stops serving, stops the scraper, and writes the observations once more.
    pub async fn stop(self) {
        self.server.stop(true).await;
        let _ = self.task.await;
        if let Some(t) = self.token_refresh {
            t.abort();
            let _ = t.await;
        }
        let (scraper, loops, pool_loops) = (self.scraper, self.loops, self.pools);
        let reload = self.reload;
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(r) = reload {
                r.stop();
            }
            if let Some(p) = pool_loops {
                p.stop();
            }
            if let Some((d, r, n, w)) = loops {
                if let Some(w) = w {
                    w.stop();
                }
                r.stop();
                d.stop();
                n.stop();
            }
            scraper.stop();
        })
        .await;
    }
}

fn static_row(t: &crate::config::StaticTarget, now: i64) -> Result<NodeRow, ServeError> {
    Ok(NodeRow::fresh(
        token::random_id("node-")?,
        &t.name,
        &t.pool,
        &t.labels,
        Some(t.address.trim_end_matches('/').to_string()),
        Status::Active,
        Source::Static,
        now,
    ))
}

/// Starts the control plane with `cfg`; `clock` drives offline detection and token expiry.
pub async fn start(
    cfg: ControlPlaneConfig,
    env: EnvTokens,
    clock: SharedClock,
) -> Result<Running, ServeError> {
    env.check().map_err(ServeError::Tokens)?;
    pools::check(&cfg)?;
    let started = cfg.clone(); // as loaded: what a reload compares the file's sections with
    let url = cfg.database.url.clone();
    let opts = StoreOptions {
        pool_size: cfg.database.pool_size,
        busy_timeout: cfg.database.busy_timeout,
        ..StoreOptions::default()
    };
    let store = tokio::task::spawn_blocking(move || Store::open(&url, &opts))
        .await
        .map_err(|e| ServeError::Io {
            what: "opening the database".into(),
            source: std::io::Error::other(e.to_string()),
        })?
        .map_err(|source| ServeError::Store {
            url: redact(&cfg.database.url),
            source,
        })?;
    let store = Arc::new(store);
    info!(database = %redact(&cfg.database.url), backend = ?store.backend(), "database ready");
    let now = clock.now_ms();
    let mut cfg = cfg;
    pools::apply(&mut cfg, &store, now).map_err(|source| ServeError::Store {
        url: redact(&cfg.database.url),
        source,
    })?;
    let (admin, generated) = admin_tokens(&cfg, &env, &store, now)?;
    let mut bootstrap: Vec<String> = cfg
        .auth
        .bootstrap_tokens
        .iter()
        .map(|t| auth_digest(t))
        .collect();
    bootstrap.extend(env.bootstrap.iter().map(|t| auth_digest(t)));
    if bootstrap.is_empty() {
        info!("no bootstrap token: agents join only as pre-created nodes (POST /v1/nodes, then /token)");
    }
    let replica = if cfg.scrape.replica.is_empty() {
        sysinfo_hostname()
    } else {
        cfg.scrape.replica.clone()
    };
    let fleet = Arc::new(
        Fleet::new(FleetSettings {
            interval: cfg.scrape.interval,
            offline_after: cfg.scrape.offline_after,
            replica,
            health: HealthSettings {
                degraded_clear_after: cfg.health.degraded_clear_after,
            },
        })
        .with_recent(crate::scrape::recent::RecentSettings {
            window: cfg.console.history,
            step: cfg.console.history_step,
            max_bytes: cfg.console.history_max_bytes,
        }),
    );
    let loaded = cfg.health.policy().map_err(ServeError::Policy)?;
    info!(rules = loaded.rules().len(), file = %cfg.health.policy_file.display(), "health policy loaded");
    let policy: crate::judge::policy::SharedPolicy =
        Arc::new(std::sync::RwLock::new(Arc::new(loaded)));
    let store_err = |source| ServeError::Store {
        url: redact(&cfg.database.url),
        source,
    };
    for t in &cfg.static_targets {
        let row = store
            .upsert_static(&static_row(t, now)?)
            .map_err(store_err)?;
        fleet.sync(&row, now);
    }
    for row in store.all_nodes().map_err(store_err)? {
        fleet.sync(&row, now);
    }
    for (id, gpus) in store.all_expected_gpus().map_err(store_err)? {
        fleet.set_expected_gpus(&id, gpus);
    }
    info!(targets = fleet.len(), interval = %humantime::format_duration(cfg.scrape.interval), "scrape targets loaded");
    let metrics = Metrics::new();
    metrics.init_rules(
        crate::judge::policy::current(&policy)
            .rules()
            .iter()
            .map(|r| r.name.as_str()),
    );
    let io = |what: &str| {
        let what = what.to_string();
        move |source| ServeError::Io { what, source }
    };
    let (notifier, notifier_handle) = Notifier::start(&cfg.webhooks, metrics.clone())
        .map_err(io("starting the webhook threads"))?;
    if !cfg.webhooks.is_empty() {
        info!(
            webhooks = cfg.webhooks.len(),
            "notifications go to webhooks"
        );
    }
    let dispatcher = Dispatcher::new(
        store.clone(),
        clock.clone(),
        cfg.commands.clone(),
        Arc::new(HttpSender::new(cfg.commands.timeout)),
        metrics.clone(),
        notifier.clone(),
    );
    let links = Links {
        notifier: notifier.clone(),
        dispatch: dispatcher.wake.clone(),
        remediate: dispatcher.ended.clone(),
        held: crate::act::managed::Held::new(Some(&metrics)),
        pools: Arc::default(),
    };
    let managed = crate::act::managed::ManagedPools::default();
    let remediator = Remediator::new(
        store.clone(),
        clock.clone(),
        cfg.remediation.clone(),
        metrics.clone(),
        notifier,
        links.dispatch.clone(),
        links.remediate.clone(),
    )
    .with_managed(managed.clone());
    let pools: Vec<String> = cfg
        .remediation
        .pools
        .iter()
        .map(|(p, r)| {
            format!(
                "{p}={}",
                r.action.unwrap_or(cfg.remediation.action).as_str()
            )
        })
        .collect();
    info!(action = cfg.remediation.action.as_str(), drain_timeout = %humantime::format_duration(cfg.remediation.drain_timeout), pools = %pools.join(","), "remediation of unhealthy nodes");
    let watcher =
        if cfg.health.policy_file.as_os_str().is_empty() || cfg.health.reload_interval.is_zero() {
            None
        } else {
            Some(
                policy_watch::watch_policy(&cfg, &policy, &store, &metrics, &clock)
                    .map_err(io("starting the policy watcher"))?,
            )
        };
    let dispatcher = dispatcher
        .spawn()
        .map_err(io("starting the command dispatcher"))?;
    let remediator = remediator.spawn().map_err(io("starting remediation"))?;
    let urgent = Arc::new(crate::scrape::Urgent::new(cfg.scrape.notice_concurrency));
    let scraper = Scraper {
        fleet: fleet.clone(),
        store: store.clone(),
        fetch: Arc::new(HttpFetcher::new(
            cfg.scrape.timeout(),
            cfg.scrape.body_limit_bytes,
        )),
        clock: clock.clone(),
        metrics: metrics.clone(),
        sample_limit: cfg.scrape.sample_limit,
        body_retain_bytes: cfg.scrape.body_retain_bytes,
        policy: policy.clone(),
        links: links.clone(),
        event_reads: Default::default(),
        urgent: urgent.clone(),
    }
    .spawn(
        cfg.scrape.concurrency,
        (
            cfg.database.flush_interval,
            cfg.database.observation_write_interval,
        ),
        (cfg.retention.events, cfg.retention.audit),
    )
    .map_err(|source| ServeError::Io {
        what: "starting the scraper threads".into(),
        source,
    })?;
    let pool_parts = crate::serve::pool_loops::Parts {
        store: store.clone(),
        clock: clock.clone(),
        fleet: fleet.clone(),
        notifier: links.notifier.clone(),
        dispatch: links.dispatch.clone(),
        held: links.held.clone(),
        wake: links.pools.clone(),
    };
    let reload_parts = (store.clone(), clock.clone(), metrics.clone());
    let auth = Auth::new(admin, bootstrap);
    for t in store.api_tokens().map_err(|e| ServeError::Store {
        url: "(API tokens)".into(),
        source: e,
    })? {
        auth.add_api_token(&t.id, &t.name, &t.role, &t.digest);
    }
    let state = web::Data::new(AppState {
        store,
        fleet,
        clock,
        metrics,
        auth,
        policy,
        policy_file: cfg.health.policy_file.clone(),
        settings: ApiSettings {
            external_url: cfg.external_url(),
            scrape_interval: cfg.scrape.interval,
            join_token_ttl: cfg.auth.join_token_ttl,
            node_token_ttl: cfg.auth.node_token_ttl,
        },
        links,
    });
    let token_refresh = (!cfg.auth.api_token_refresh.is_zero()).then(|| {
        tokio::spawn(tokens::refresh_api_tokens(
            state.clone().into_inner(),
            cfg.auth.api_token_refresh,
        ))
    });
    let listing = web::Data::new(api::ListingCache::for_database(
        &cfg.database.url,
        cfg.database.listing_cache_bytes,
    ));
    let console = cfg.console.enabled.then(|| {
        web::Data::new(crate::console::Console {
            sessions: crate::console::Sessions::new(
                cfg.console.session_ttl,
                cfg.console.max_sessions,
            ),
            prometheus_url: (!cfg.console.prometheus_url.is_empty())
                .then(|| cfg.console.prometheus_url.clone()),
        })
    });
    if console.is_some() {
        info!(path = "/ui/", "web console");
    }
    let plugin_blobs = web::Data::new(api::plugins::PluginBlobs::new(
        cfg.plugin_store.max_component_bytes,
        cfg.plugin_store.blob_cache_bytes,
        cfg.plugin_store.blob_reads,
        cfg.plugin_store.blob_send_bytes,
    ));
    let server = HttpServer::new(move || {
        let app = App::new()
            .app_data(state.clone())
            .app_data(listing.clone())
            .app_data(plugin_blobs.clone())
            .app_data(web::Data::from(urgent.clone()));
        match &console {
            Some(c) => app
                .app_data(c.clone())
                .configure(crate::console::configure)
                .configure(api::configure),
            None => app.configure(api::configure),
        }
    })
    .workers(cfg.server.workers)
    .disable_signals()
    .shutdown_timeout(5)
    .bind(&cfg.server.listen)
    .map_err(|source| ServeError::Io {
        what: format!("cannot listen on {}", cfg.server.listen),
        source,
    })?;
    let addr = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| ServeError::Io {
            what: "no listening address".into(),
            source: std::io::Error::other("bind returned none"),
        })?;
    info!(%addr, "listening");
    // Agents the pools start join at the address actually bound (listen may be port 0).
    let agents_url = if cfg.server.external_url.is_empty() {
        format!("http://{addr}")
    } else {
        cfg.external_url()
    };
    let pool_ctx = crate::serve::pool_loops::context(&cfg, &agents_url, pool_parts, managed);
    let pool_loops =
        crate::serve::pool_loops::start(pool_ctx).map_err(|source| ServeError::Io {
            what: "starting the pool manager".into(),
            source,
        })?;
    let (store, clock, metrics) = reload_parts;
    let reloader = reload::Reloader::new(started, store, clock, &metrics, Some(pool_loops.wake()));
    let reload = reload::spawn(reloader, cfg.server.config_reload_interval)
        .map_err(io("starting the config reload thread"))?;
    if let Some((_, path)) = &generated {
        warn!(file = %path.display(), "no admin token was configured: generated one, printed once below and written to the file (mode 0600)");
    }
    let server = server.run();
    let handle = server.handle();
    let task = tokio::spawn(server);
    Ok(Running {
        addr,
        generated_admin_token: generated,
        server: handle,
        task,
        scraper,
        pools: Some(pool_loops),
        reload: Some(reload),
        token_refresh,
        loops: Some((dispatcher, remediator, notifier_handle, watcher)),
    })
}

fn sysinfo_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "gpuwarden".into())
}
