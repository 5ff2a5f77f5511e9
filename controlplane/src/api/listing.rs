//! Rendered pages of `GET /v1/nodes`, kept while nothing they were made from has changed.
//!
//! A page is made from the database (the page's rows and the count) and from the scraper's
//! memory (each row's scrape state and expected GPUs). It is served again only when both
//! are as they were: the SQLite file's change counter ([`Changes`]) equals the one read
//! *before* the page's rows were read, and every row's [`FleetView`] equals the one the
//! page was rendered with. Any commit to the file moves the counter and empties the cache,
//! so an answer after a write always shows it. Pages are bounded in count and in bytes
//! (least recently used first out). PostgreSQL has no such counter: there is no cache.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::web::Bytes;

use super::changes::Changes;
use crate::model::{Connectivity, ScrapeInfo};
use crate::scrape::fleet::Fleet;

/// Pages kept at most.
pub const MAX_PAGES: usize = 64;
/// Bytes of rendered pages kept at most by default (`database.listing_cache_bytes`).
pub const DEFAULT_MAX_BYTES: usize = 16 << 20;

/// What a node's JSON takes from the scraper's memory rather than the database.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetView {
    /// Scrape state, connectivity and last success, when the node is a target.
    pub scrape: Option<(ScrapeInfo, Connectivity, Option<i64>)>,
    /// The GPUs it is expected to have, when the node is a target.
    pub expected_gpus: Option<usize>,
}

impl FleetView {
    /// What keeping it takes, in bytes (its own size and the text it holds).
    fn heap_bytes(&self) -> usize {
        let text = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        std::mem::size_of::<(String, Self)>()
            + self
                .scrape
                .as_ref()
                .map_or(0, |(s, _, _)| text(&s.last_scrape) + text(&s.last_error))
    }

    /// The node's view now.
    pub fn of(fleet: &Fleet, id: &str) -> Self {
        Self {
            scrape: fleet.scrape_view(id),
            expected_gpus: fleet.expected_gpus(id),
        }
    }
}

struct Page {
    body: Bytes,
    views: Vec<(String, FleetView)>,
    bytes: usize,
    used: AtomicU64,
}

#[derive(Default)]
struct Pages {
    version: i64,
    bytes: usize,
    tick: u64,
    map: HashMap<String, Arc<Page>>,
}

impl Pages {
    /// Moves to `version`: pages of an older one are dropped; `false` when `version` is
    /// older than what the cache holds (a slow request's page: not kept).
    fn at(&mut self, version: i64) -> bool {
        if version > self.version {
            self.map.clear();
            self.bytes = 0;
            self.version = version;
        }
        version == self.version
    }
}

/// The cache of rendered listing pages.
pub struct ListingCache {
    changes: Option<Changes>,
    max_bytes: usize,
    pages: Mutex<Pages>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl std::fmt::Debug for ListingCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListingCache")
            .field("enabled", &self.changes.is_some())
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

impl ListingCache {
    /// A cache over the database at `url` (as `Store::open` takes it), holding at most
    /// `max_bytes` of pages (`database.listing_cache_bytes`). Only a SQLite file has one;
    /// for another database, with `max_bytes` 0, or when the file cannot be watched
    /// (logged), the cache keeps nothing.
    pub fn for_database(url: &str, max_bytes: usize) -> Self {
        let changes = match crate::validate::sqlite_path(url) {
            _ if max_bytes == 0 => None,
            Some(path) if !url.starts_with("postgres") => match Changes::open(path) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "the node listing is not cached");
                    None
                }
            },
            _ => None,
        };
        Self::new(changes, max_bytes)
    }

    /// A cache keyed on `changes` (none: keeps nothing).
    pub fn new(changes: Option<Changes>, max_bytes: usize) -> Self {
        Self {
            changes,
            max_bytes,
            pages: Mutex::new(Pages::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The database's change counter now: read it before reading the page's rows. `None`:
    /// no cache (PostgreSQL, or the counter unreadable).
    pub fn version(&self) -> Option<i64> {
        self.changes.as_ref()?.version()
    }

    /// The page for `key` rendered at `version`, if every row's fleet view is unchanged.
    pub fn get(&self, key: &str, version: i64, fleet: &Fleet) -> Option<Bytes> {
        let page = {
            let mut p = self.lock();
            if p.at(version) {
                p.tick += 1;
                let page = p.map.get(key).cloned();
                if let Some(pg) = &page {
                    pg.used.store(p.tick, Ordering::Relaxed);
                }
                page
            } else {
                None
            }
        };
        let fresh = page.filter(|pg| {
            pg.views
                .iter()
                .all(|(id, view)| FleetView::of(fleet, id) == *view)
        });
        let counter = if fresh.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        fresh.map(|pg| pg.body.clone())
    }

    /// Keeps a page rendered from rows read after `version` was.
    pub fn put(&self, key: String, version: i64, views: Vec<(String, FleetView)>, body: Bytes) {
        let bytes = body.len()
            + key.len()
            + views
                .iter()
                .map(|(id, view)| id.len() + view.heap_bytes())
                .sum::<usize>();
        if bytes > self.max_bytes / 4 {
            return;
        }
        let mut p = self.lock();
        if !p.at(version) {
            return;
        }
        p.tick += 1;
        let used = p.tick;
        if let Some(old) = p.map.remove(&key) {
            p.bytes -= old.bytes;
        }
        while !p.map.is_empty() && (p.bytes + bytes > self.max_bytes || p.map.len() >= MAX_PAGES) {
            let Some(oldest) = p
                .map
                .iter()
                .min_by_key(|(_, pg)| pg.used.load(Ordering::Relaxed))
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(old) = p.map.remove(&oldest) {
                p.bytes -= old.bytes;
            }
        }
        p.bytes += bytes;
        let page = Page {
            body,
            views,
            bytes,
            used: AtomicU64::new(used),
        };
        p.map.insert(key, Arc::new(page));
    }

    /// Pages served from the cache.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Lookups that found no page, or a stale one.
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    /// Bytes of pages held now.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pages> {
        self.pages.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::scrape::fleet::FleetSettings;

    fn fleet() -> Fleet {
        Fleet::new(FleetSettings {
            interval: Duration::from_secs(15),
            offline_after: 3,
            replica: "test".into(),
            health: Default::default(),
        })
    }

    #[test]
    fn a_page_read_before_a_newer_one_is_neither_served_nor_kept() {
        let (c, f) = (ListingCache::new(None, 1 << 20), fleet());
        let page = Bytes::from_static(b"{\"nodes\":[]}");
        c.put("a".into(), 5, vec![], page.clone());
        assert_eq!(c.get("a", 5, &f), Some(page.clone()));
        // The file changed: the page is gone, and one begun before the change is not kept.
        assert_eq!(c.get("a", 6, &f), None);
        c.put("b".into(), 5, vec![], page.clone());
        assert_eq!(c.get("b", 6, &f), None);
        assert_eq!(c.bytes(), 0);
        c.put("b".into(), 6, vec![], page.clone());
        assert_eq!(c.get("b", 6, &f), Some(page));
        assert_eq!((c.hits(), c.misses()), (2, 2));
    }

    #[test]
    fn the_least_recently_used_page_goes_first() {
        let (c, f) = (ListingCache::new(None, 4096), fleet());
        let page = Bytes::from(vec![b' '; 900]);
        for k in ["a", "b", "c", "d"] {
            c.put(k.into(), 1, vec![], page.clone());
        }
        assert!(c.get("a", 1, &f).is_some());
        c.put("e".into(), 1, vec![], page.clone());
        assert!(c.bytes() <= 4096);
        assert!(c.get("a", 1, &f).is_some(), "used last: kept");
        assert!(c.get("b", 1, &f).is_none(), "used least: dropped");
    }
}
