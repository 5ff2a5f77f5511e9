//! `/ui/pools`: each pool's bounds, size, instances in flight and target; the pool manager's
//! last decisions and their reasons; cooldowns left; the pool's instances and their states.

use actix_web::{get, web, HttpResponse};
use askama::Template;

use super::common::{ago, badge, page, when_rfc3339, Chrome, Signed, UiError};
use crate::api::pools::PoolDetail;
use crate::api::{blocking, pool_detail, AppState};
use crate::store::InstanceFilter;

/// Decisions shown per pool.
const DECISIONS: usize = 5;
/// Instances shown per pool.
const INSTANCES: i64 = 50;

/// One pool's section.
#[derive(Debug)]
pub struct PoolSection {
    /// The pool and its manager's state.
    pub d: PoolDetail,
    /// `(when, target, reasons)`, newest first.
    pub decisions: Vec<(String, i32, String)>,
    /// `(id, state with symbol, provider, node, since, error)`.
    pub instances: Vec<[String; 6]>,
    /// Instances of the pool in all.
    pub instances_total: i64,
    /// Cooldowns, as text.
    pub cooldown: String,
    /// Status with its symbol.
    pub status: String,
}

#[derive(Template)]
#[template(path = "console/pools.html")]
struct PoolsPage {
    chrome: Chrome,
    pools: Vec<PoolSection>,
}

/// `GET /ui/pools`.
#[get("/pools")]
pub async fn pools(who: Signed, state: web::Data<AppState>) -> Result<HttpResponse, UiError> {
    let store = state.store.clone();
    let rows = blocking(move || store.pools()).await?;
    let now = state.clock.now_ms();
    let mut pools = Vec::new();
    for row in rows {
        let d = pool_detail(&state, row.name.clone()).await?;
        let (store, name) = (state.store.clone(), row.name.clone());
        let (instances, total) = blocking(move || {
            store.list_instances(&InstanceFilter {
                pool: Some(name),
                states: Vec::new(),
                offset: 0,
                limit: INSTANCES,
            })
        })
        .await?;
        let decisions = d
            .decisions
            .iter()
            .take(DECISIONS)
            .map(|x| (when_rfc3339(&x.time), x.target, x.reasons.join("; ")))
            .collect();
        let instances = instances
            .into_iter()
            .map(|i| {
                [
                    i.id,
                    badge(&i.state),
                    i.provider,
                    i.node_id.unwrap_or_default(),
                    ago(i.state_since, now),
                    i.error.unwrap_or_default(),
                ]
            })
            .collect();
        let c = &d.cooldowns;
        let cooldown = format!(
            "scale-up {}, scale-down {}",
            secs(c.scale_up_seconds),
            secs(c.scale_down_seconds)
        );
        pools.push(PoolSection {
            status: badge(&d.pool.status),
            d,
            decisions,
            instances,
            instances_total: total,
            cooldown,
        });
    }
    page(&PoolsPage {
        chrome: who.chrome("Pools", "pools"),
        pools,
    })
}

fn secs(s: f64) -> String {
    if s <= 0.0 {
        "now".into()
    } else {
        format!(
            "in {}",
            humantime::format_duration(std::time::Duration::from_secs(s.ceil() as u64))
        )
    }
}
