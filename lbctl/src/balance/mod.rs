//! Backend selection for the L7 proxy: the shared runtime state of each backend, and the
//! algorithms that pick one (smooth weighted round robin, leastconn, cookie stickiness,
//! content routing), combined by [`Balancer`].
#![forbid(unsafe_code)]
pub mod backend;
pub mod counter;
pub mod estimate;
pub mod latency;
pub mod leastconn;
pub mod observe;
pub mod rotation;
pub mod route;
pub mod rr;
pub mod sticky;

use crate::config::{Balance, Route};
use backend::BackendState;
use hyper::header::{HeaderMap, HeaderValue};
use smallvec::SmallVec;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// A chosen backend, counted in its `active` (requests in flight) until dropped.
pub struct Pick {
    pub idx: usize,
    pub backend: Arc<BackendState>,
}

impl Pick {
    fn new(idx: usize, backend: &Arc<BackendState>) -> Pick {
        backend.active.fetch_add(1, Ordering::Relaxed);
        Pick {
            idx,
            backend: backend.clone(),
        }
    }
}

impl Drop for Pick {
    fn drop(&mut self) {
        self.backend.active.fetch_sub(1, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Pick {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pick({})", self.backend.name)
    }
}

/// Picks backends: routes choose the pool, the cookie (when configured) pins a client to
/// an up backend, otherwise round robin or leastconn over the pool's up backends.
pub struct Balancer {
    backends: Vec<Arc<BackendState>>,
    weights: Vec<u32>,
    algo: Balance,
    cookie: Option<String>,
    routes: Vec<Route>,
    /// Smooth WRR current weights, one per backend. Picking (and counting the pick in
    /// `active`) happens under this lock so leastconn sees its own earlier picks.
    current: Mutex<Vec<i64>>,
    /// Round robin over equal weights takes no lock: this rotation instead of `current`.
    rotation: Option<rotation::Rotation>,
}

impl Balancer {
    /// `cookie` is ignored (with a warning) if it is not a valid cookie name.
    pub fn new(
        backends: Vec<Arc<BackendState>>,
        algo: Balance,
        cookie: Option<String>,
        routes: Vec<Route>,
    ) -> Balancer {
        let cookie = cookie.filter(|c| {
            let ok = sticky::valid_name(c);
            if !ok {
                tracing::warn!(cookie = %c, "invalid cookie name, stickiness disabled");
            }
            ok
        });
        let weights: Vec<u32> = backends.iter().map(|b| b.weight).collect();
        let rotation = (algo == Balance::Roundrobin && rotation::Rotation::fits(&weights))
            .then(rotation::Rotation::default);
        Balancer {
            weights,
            rotation,
            current: Mutex::new(vec![0; backends.len()]),
            backends,
            algo,
            cookie,
            routes,
        }
    }

    pub fn backends(&self) -> &[Arc<BackendState>] {
        &self.backends
    }

    pub fn cookie_name(&self) -> Option<&str> {
        self.cookie.as_deref()
    }

    /// The pool serving `path` (first matching route, else "default").
    pub fn pool_for(&self, path: &str) -> &str {
        route::pool_for(&self.routes, path)
    }

    /// Up backends of `pool` not in `exclude`, in config order (on the stack: this runs
    /// for every request).
    fn candidates(&self, pool: &str, exclude: &[usize]) -> SmallVec<[usize; 16]> {
        (0..self.backends.len())
            .filter(|i| {
                let b = &self.backends[*i];
                b.pool == pool && b.is_up() && !exclude.contains(i)
            })
            .collect()
    }

    /// The next backend of `pool` by the configured algorithm, skipping `exclude` (the
    /// backends already tried for this request). `None` when no up backend is left.
    pub fn pick(&self, pool: &str, exclude: &[usize]) -> Option<Pick> {
        let cands = self.candidates(pool, exclude);
        if let Some(r) = &self.rotation {
            let idx = r.next(&cands)?;
            return Some(Pick::new(idx, &self.backends[idx]));
        }
        let mut cur = crate::locks::lock(&self.current);
        let idx = match self.algo {
            Balance::Roundrobin => rr::pick(&cands, &self.weights, &mut cur),
            Balance::Leastconn => {
                let active: Vec<u64> = self
                    .backends
                    .iter()
                    .map(|b| b.active.load(Ordering::Relaxed))
                    .collect();
                leastconn::pick(&cands, &active, &self.weights, &mut cur)
            }
        }?;
        Some(Pick::new(idx, &self.backends[idx]))
    }

    /// The backend named by the request's stickiness cookie, if it is up, in `pool` and
    /// not excluded (weight 0 backends still get their sticky clients, as in HAProxy).
    pub fn sticky(&self, pool: &str, headers: &HeaderMap, exclude: &[usize]) -> Option<Pick> {
        let value = sticky::find(headers, self.cookie.as_deref()?)?;
        let idx = self.backends.iter().position(|b| b.name == value)?;
        let b = &self.backends[idx];
        (b.pool == pool && b.is_up() && !exclude.contains(&idx)).then(|| Pick::new(idx, b))
    }

    /// The whole selection for a request: the sticky backend if valid, else a normal pick.
    #[cfg(test)]
    pub fn select(&self, path: &str, headers: &HeaderMap) -> Option<Pick> {
        self.select_in(self.pool_for(path), headers)
    }

    /// [`Balancer::select`] in a pool the caller already looked up.
    pub fn select_in(&self, pool: &str, headers: &HeaderMap) -> Option<Pick> {
        self.sticky(pool, headers, &[])
            .or_else(|| self.pick(pool, &[]))
    }

    /// The `Set-Cookie` value to add to a response from backend `idx` when the request did
    /// not already carry that backend's cookie; `None` when stickiness is off.
    pub fn set_cookie_for(&self, idx: usize, request: &HeaderMap) -> Option<HeaderValue> {
        let name = self.cookie.as_deref()?;
        let b = &self.backends[idx];
        if sticky::find(request, name) == Some(b.name.as_str()) {
            return None;
        }
        sticky::set_cookie(name, &b.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::COOKIE;
    use std::time::Duration;

    fn be(name: &str, weight: u32, pool: &str) -> Arc<BackendState> {
        Arc::new(BackendState::new(
            name,
            "127.0.0.1:1".parse().unwrap(),
            weight,
            pool,
        ))
    }

    fn names(b: &Balancer, path: &str, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| {
                b.select(path, &HeaderMap::new())
                    .unwrap()
                    .backend
                    .name
                    .clone()
            })
            .collect()
    }

    fn down(b: &BackendState) {
        for _ in 0..3 {
            b.record(false, "x", Duration::ZERO, true, 2, 3);
        }
        assert!(!b.is_up());
    }

    #[test]
    fn a_panic_under_the_pick_lock_does_not_poison_later_requests() {
        // Unequal weights: the locked path (equal ones take the lock-free rotation).
        let bs = vec![be("s1", 2, "default"), be("s2", 1, "default")];
        let b = Balancer::new(bs.clone(), Balance::Roundrobin, None, vec![]);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _pick = b.current.lock().unwrap();
            panic!("one request panicked");
        }));
        assert!(r.is_err() && b.current.is_poisoned());
        assert_eq!(names(&b, "/", 2), ["s1", "s2"]);
    }

    #[test]
    fn round_robin_cycles_in_config_order_and_skips_down() {
        let bs = vec![
            be("s1", 1, "default"),
            be("s2", 1, "default"),
            be("s3", 1, "default"),
        ];
        let b = Balancer::new(bs.clone(), Balance::Roundrobin, None, vec![]);
        assert_eq!(names(&b, "/", 6), ["s1", "s2", "s3", "s1", "s2", "s3"]);
        down(&bs[1]);
        assert_eq!(names(&b, "/", 4), ["s1", "s3", "s1", "s3"]);
        down(&bs[0]);
        down(&bs[2]);
        assert!(b.select("/", &HeaderMap::new()).is_none());
    }

    #[test]
    fn weights_3_1_give_a_a_b_a() {
        let b = Balancer::new(
            vec![be("a", 3, "default"), be("b", 1, "default")],
            Balance::Roundrobin,
            None,
            vec![],
        );
        assert_eq!(names(&b, "/", 8), ["a", "a", "b", "a", "a", "a", "b", "a"]);
    }

    #[test]
    fn picks_count_in_active_until_dropped() {
        let bs = vec![be("s1", 1, "default"), be("s2", 1, "default")];
        let b = Balancer::new(bs.clone(), Balance::Leastconn, None, vec![]);
        let p1 = b.select("/", &HeaderMap::new()).unwrap();
        assert_eq!(p1.backend.name, "s1");
        assert_eq!(bs[0].active.load(Ordering::Relaxed), 1);
        // s1 busy: leastconn sends the next one to s2.
        let p2 = b.select("/", &HeaderMap::new()).unwrap();
        assert_eq!(p2.backend.name, "s2");
        // Both busy: a tie, settled by round robin.
        let p3 = b.select("/", &HeaderMap::new()).unwrap();
        assert_eq!(
            bs[0].active.load(Ordering::Relaxed) + bs[1].active.load(Ordering::Relaxed),
            3
        );
        drop(p1);
        drop(p3);
        // Now s1 is idle and s2 has one in flight.
        let p4 = b.select("/", &HeaderMap::new()).unwrap();
        assert_eq!(p4.backend.name, "s1");
        drop((p2, p4));
        assert_eq!(bs[0].active.load(Ordering::Relaxed), 0);
        assert_eq!(bs[1].active.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn exclude_skips_tried_backends() {
        let bs = vec![be("s1", 1, "default"), be("s2", 1, "default")];
        let b = Balancer::new(bs, Balance::Roundrobin, None, vec![]);
        assert_eq!(b.pick("default", &[0]).unwrap().idx, 1);
        assert_eq!(b.pick("default", &[0]).unwrap().idx, 1);
        assert!(b.pick("default", &[0, 1]).is_none());
    }

    #[test]
    fn cookie_sticks_to_an_up_backend_and_is_set_otherwise() {
        let bs = vec![be("s1", 1, "default"), be("s2", 1, "default")];
        let b = Balancer::new(bs.clone(), Balance::Roundrobin, Some("SRV".into()), vec![]);
        let mut h = HeaderMap::new();
        h.insert(COOKIE, HeaderValue::from_static("x=1; SRV=s2"));
        for _ in 0..3 {
            let p = b.select("/", &h).unwrap();
            assert_eq!(p.backend.name, "s2");
            assert!(b.set_cookie_for(p.idx, &h).is_none());
        }
        // No cookie: normal pick and a cookie naming it.
        let p = b.select("/", &HeaderMap::new()).unwrap();
        assert_eq!(
            b.set_cookie_for(p.idx, &HeaderMap::new()).unwrap(),
            format!("SRV={}; Path=/; HttpOnly", p.backend.name).as_str()
        );
        // Unknown or down backend: normal pick, new cookie.
        h.insert(COOKIE, HeaderValue::from_static("SRV=nope"));
        let p = b.select("/", &h).unwrap();
        assert!(b.set_cookie_for(p.idx, &h).is_some());
        down(&bs[1]);
        h.insert(COOKIE, HeaderValue::from_static("SRV=s2"));
        let p = b.select("/", &h).unwrap();
        assert_eq!(p.backend.name, "s1");
        assert_eq!(
            b.set_cookie_for(p.idx, &h).unwrap(),
            "SRV=s1; Path=/; HttpOnly"
        );
    }

    #[test]
    fn invalid_cookie_name_disables_stickiness() {
        let b = Balancer::new(
            vec![be("s1", 1, "default")],
            Balance::Roundrobin,
            Some("A\r\nB".into()),
            vec![],
        );
        assert!(b.cookie_name().is_none());
        assert!(b.set_cookie_for(0, &HeaderMap::new()).is_none());
    }

    #[test]
    fn routes_pick_the_pool() {
        let bs = vec![
            be("web1", 1, "default"),
            be("st1", 1, "static"),
            be("st2", 1, "static"),
        ];
        let routes = vec![Route {
            path_prefix: Some("/static/".into()),
            extensions: vec!["css".into()],
            pool: "static".into(),
        }];
        let b = Balancer::new(bs, Balance::Roundrobin, None, routes);
        assert_eq!(names(&b, "/static/x", 2), ["st1", "st2"]);
        assert_eq!(names(&b, "/a/site.css", 1), ["st1"]);
        assert_eq!(names(&b, "/index.html", 2), ["web1", "web1"]);
        // A route to a pool without backends has nothing to offer.
        let b = Balancer::new(
            vec![be("web1", 1, "default")],
            Balance::Roundrobin,
            None,
            vec![Route {
                path_prefix: Some("/x".into()),
                extensions: vec![],
                pool: "empty".into(),
            }],
        );
        assert!(b.select("/x", &HeaderMap::new()).is_none());
    }
}
