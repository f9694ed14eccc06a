//! Which server a session goes to when `--endpoint` names several.
//!
//! Routing is per session: all of a session's turns go to the server its
//! first turn went to, so each server keeps its sessions' prefixes cached.
//! - `round-robin` (the default): session i goes to server i mod N, the
//!   same every run.
//! - `least-busy`: a session goes to the server with the fewest sessions in
//!   progress (a session waiting out a think time counts: it comes back to
//!   the same server), ties broken in turn. This follows the servers' speed,
//!   as a load balancer would, at the cost of a schedule that depends on it.
//!   A level's later rounds send each session where round 1 sent it, so a
//!   warm round finds its own prefixes cached.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Route {
    #[default]
    RoundRobin,
    LeastBusy,
}

impl Route {
    pub fn parse(s: &str) -> Option<Route> {
        match s {
            "round-robin" => Some(Route::RoundRobin),
            "least-busy" => Some(Route::LeastBusy),
            _ => None,
        }
    }
}

/// The servers' sessions in progress, and the policy that reads them.
pub struct Router {
    route: Route,
    busy: Arc<[AtomicUsize]>,
    /// `least-busy`: the server each of the level's sessions went to.
    chosen: Mutex<HashMap<usize, usize>>,
}

/// A session's place on its server: the server's count goes down when the
/// last copy of it is dropped (at the session's end).
pub struct Assigned {
    busy: Arc<[AtomicUsize]>,
    server: usize,
}

impl Drop for Assigned {
    fn drop(&mut self) {
        self.busy[self.server].fetch_sub(1, Ordering::Relaxed);
    }
}

impl Router {
    pub fn new(route: Route, servers: usize) -> Router {
        Router {
            route,
            busy: (0..servers.max(1)).map(|_| AtomicUsize::new(0)).collect(),
            chosen: Mutex::new(HashMap::new()),
        }
    }

    /// A new level begins (its first round): its sessions are routed anew.
    pub fn new_level(&self) {
        if let Ok(mut chosen) = self.chosen.lock() {
            chosen.clear();
        }
    }

    /// The server of the `i`-th session of a level, counted as busy until
    /// the returned guard is dropped.
    pub fn assign(&self, i: usize) -> (usize, Arc<Assigned>) {
        let n = self.busy.len();
        let first = i % n;
        let server = match self.route {
            Route::RoundRobin => first,
            // Scanning from the session's round-robin turn spreads ties.
            Route::LeastBusy => {
                let mut chosen = self.chosen.lock().unwrap_or_else(|e| e.into_inner());
                *chosen.entry(i).or_insert_with(|| {
                    (0..n)
                        .map(|k| (first + k) % n)
                        .min_by_key(|&s| self.busy[s].load(Ordering::Relaxed))
                        .unwrap_or(first)
                })
            }
        };
        self.busy[server].fetch_add(1, Ordering::Relaxed);
        let guard = Arc::new(Assigned {
            busy: self.busy.clone(),
            server,
        });
        (server, guard)
    }

    /// Sessions in progress on each server.
    #[cfg(test)]
    fn busy(&self) -> Vec<usize> {
        self.busy
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_takes_the_servers_in_turn_whatever_their_load() {
        let r = Router::new(Route::RoundRobin, 3);
        let held: Vec<_> = (0..7).map(|i| r.assign(i)).collect();
        let servers: Vec<usize> = held.iter().map(|(s, _)| *s).collect();
        assert_eq!(servers, vec![0, 1, 2, 0, 1, 2, 0]);
        assert_eq!(r.busy(), vec![3, 2, 2]);
        drop(held);
        assert_eq!(r.busy(), vec![0, 0, 0]);
    }

    #[test]
    fn least_busy_fills_the_server_whose_sessions_ended() {
        let r = Router::new(Route::LeastBusy, 2);
        let (a, ga) = r.assign(0);
        let (b, gb) = r.assign(1);
        assert_eq!((a, b), (0, 1));
        // Server 0's session ends; server 1's goes on: the next two
        // sessions both see server 0 as the less busy one in turn.
        drop(ga);
        let (c, gc) = r.assign(2);
        assert_eq!(c, 0);
        assert_eq!(r.busy(), vec![1, 1]);
        // A tie: the session's own turn (3 mod 2 = 1) decides.
        let (d, gd) = r.assign(3);
        assert_eq!(d, 1);
        assert_eq!(r.busy(), vec![1, 2]);
        // The guard is shared by a session's copies: one count per session.
        let copy = gc.clone();
        drop(gc);
        assert_eq!(r.busy(), vec![1, 2]);
        drop(copy);
        assert_eq!(r.busy(), vec![0, 2]);
        drop((gb, gd));
        assert_eq!(r.busy(), vec![0, 0]);
    }

    #[test]
    fn later_rounds_send_a_session_where_round_one_did() {
        let r = Router::new(Route::LeastBusy, 2);
        // Round 1: session 0 on server 0 is still running when session 1
        // starts, and session 2 comes when both are done.
        let (a, ga) = r.assign(0);
        let (b, gb) = r.assign(1);
        drop((ga, gb));
        let _ = r.assign(2);
        // Round 2, with server 0 busy: session 0 still goes to server 0.
        let (held, _g) = r.assign(6);
        assert_eq!((a, b, held), (0, 1, 0));
        assert_eq!(r.assign(0).0, a);
        assert_eq!(r.assign(1).0, b);
        // A new level routes anew: session 0 now goes to the idle server 1.
        r.new_level();
        assert_eq!(r.assign(0).0, 1);
    }

    #[test]
    fn routes_parse_by_name() {
        assert_eq!(Route::parse("least-busy"), Some(Route::LeastBusy));
        assert_eq!(Route::parse("round-robin"), Some(Route::RoundRobin));
        assert_eq!(Route::parse("random"), None);
    }
}
