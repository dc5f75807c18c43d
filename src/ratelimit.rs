//! Client-side sliding-window limiter for one Plane API key.
//!
//! Plane (DRF `SimpleRateThrottle`) keeps the timestamps of the allowed requests of the last
//! window per key and refuses a request when `limit` of them are younger than the window. We keep
//! the same log on our side and reserve each request a send time at which the server will have a
//! free slot, so we wait before sending instead of collecting 429s:
//!
//! `t = max(now, blocked_until, time of the limit-th most recent request + window)`.
//!
//! The server corrects us: `X-RateLimit-Remaining: 0` means another process shares the key (our
//! own log would have blocked otherwise), and a 429's `Retry-After` says when the oldest request
//! leaves the server's window. Times are plain seconds from an injectable clock, so the arithmetic
//! is tested without sleeping.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

/// Process-local reservation log of one key.
#[derive(Debug, Clone)]
pub struct SlidingWindow {
    /// The requests of the last window, oldest `done` first; only the last `limit` matter.
    /// Kept sorted by insertion rather than re-sorted: with a lifted limit it holds every request
    /// of the window (thousands), and each call must stay O(log n) plus a short shift at the end.
    log: VecDeque<Slot>,
    /// Nothing is sent before this time (server said the budget is gone, or a 429).
    blocked_until: f64,
}

/// One request: when it was sent, and the latest moment the server can have counted it (its
/// answer time once known; the send time until then).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Slot {
    sent: f64,
    done: f64,
}

impl Default for SlidingWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl SlidingWindow {
    pub fn new() -> Self {
        SlidingWindow {
            log: VecDeque::new(),
            blocked_until: f64::NEG_INFINITY,
        }
    }

    /// Reserves the next slot and returns the time at which the request may be sent.
    pub fn reserve(&mut self, now: f64, limit: u32, window: f64) -> f64 {
        let limit = limit.max(1) as usize;
        self.forget_before(now - window);
        let mut at = now.max(self.blocked_until);
        if self.log.len() >= limit {
            at = at.max(self.log[self.log.len() - limit].done + window + clock_margin(window));
        }
        self.insert_sorted(Slot { sent: at, done: at });
        if self.log.len() > limit {
            let excess = self.log.len() - limit;
            self.log.drain(..excess);
        }
        at
    }

    /// The request reserved at `reserved_at` got its answer at `now`: the server counted it at
    /// some moment in between, so the later bound is the safe one to age it from.
    pub fn completed(&mut self, reserved_at: f64, now: f64) {
        let first = self.log.partition_point(|s| s.done < reserved_at);
        let found = (first..self.log.len())
            .take_while(|&i| self.log[i].done == reserved_at)
            .find(|&i| self.log[i].sent == reserved_at);
        let done = now.max(reserved_at);
        if let Some(i) = found.filter(|_| done > reserved_at) {
            if let Some(mut slot) = self.log.remove(i) {
                slot.done = done;
                // Before the slots that already had this `done`: they were all behind it (their
                // `done` was >= its old one), and a stable sort keeps that order.
                let at = self.log.partition_point(|s| s.done < done);
                self.log.insert(at, slot);
            }
        }
    }

    /// `X-RateLimit-Remaining` from an allowed answer received at `now`.
    ///
    /// At 0 the server's window is full. If our own log is full too, `reserve` already knows when
    /// the next slot frees. Otherwise the server's limit is lower than ours, or another process
    /// uses the key. Our requests sent within the last window are surely in the server's window,
    /// so the oldest of them leaves it by its answer time + window, and the server's oldest entry
    /// (ours or foreign) no later: a slot is free then (at most `max_wait` from now). Requests
    /// sent before that may already be gone from the server's window and say nothing.
    pub fn observe_remaining(
        &mut self,
        remaining: i64,
        now: f64,
        limit: u32,
        window: f64,
        max_wait: f64,
    ) {
        if remaining > 0 {
            return;
        }
        self.forget_before(now - window);
        let in_window = self.log.iter().filter(|s| s.done <= now).count();
        if in_window >= limit.max(1) as usize {
            return;
        }
        let oldest_counted = self
            .log
            .iter()
            .filter(|s| s.done <= now && s.sent > now - window)
            .map(|s| s.done)
            .fold(f64::INFINITY, f64::min);
        let oldest = if oldest_counted.is_finite() {
            oldest_counted
        } else {
            now
        };
        let until = (oldest + window + clock_margin(window))
            .min(now + max_wait)
            .max(now);
        self.block_until(until);
    }

    /// A 429 asked us to wait `retry_after` seconds (already bounded by the caller).
    pub fn observe_retry_after(&mut self, now: f64, retry_after: f64) {
        self.block_until(now + retry_after.max(0.0));
    }

    /// Seconds until a server-imposed block ends (0 if none).
    pub fn blocked_wait(&self, now: f64) -> f64 {
        (self.blocked_until - now).max(0.0)
    }

    pub fn block_until(&mut self, until: f64) {
        if until > self.blocked_until {
            self.blocked_until = until;
        }
    }

    fn forget_before(&mut self, cutoff: f64) {
        // Strictly older than the window: DRF drops entries at or before `now - window`.
        let stale = self.log.partition_point(|s| s.done <= cutoff);
        self.log.drain(..stale);
    }

    /// A new slot goes after every slot with the same or an earlier `done`, as push + stable sort.
    fn insert_sorted(&mut self, slot: Slot) {
        let at = self.log.partition_point(|s| s.done <= slot.done);
        self.log.insert(at, slot);
    }

    pub fn reserved(&self) -> usize {
        self.log.len()
    }
}

/// Extra wait past the window: our monotonic clock and the server's wall clock tick at slightly
/// different rates (NTP slews wall clocks by up to 0.05 %), and a slot that frees "exactly" one
/// window later by our clock can still be a fraction of a millisecond early by Plane's.
pub fn clock_margin(window: f64) -> f64 {
    window * 0.002 + 0.001
}

/// Seconds on a process-wide monotonic clock (the limiter's time axis).
pub fn monotonic_now() -> f64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

/// The limiters of one process, one per key id, so every client holding the same key shares it.
#[derive(Default)]
pub struct LimiterRegistry {
    limiters: Mutex<HashMap<String, Arc<Mutex<SlidingWindow>>>>,
}

impl LimiterRegistry {
    pub fn get(&self, key_id: &str) -> Arc<Mutex<SlidingWindow>> {
        let mut map = self.limiters.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = map.get(key_id) {
            return found.clone();
        }
        map.entry(key_id.to_string())
            .or_insert_with(|| Arc::new(Mutex::new(SlidingWindow::new())))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake clock: reserve `n` requests each sent as soon as allowed, return their send times.
    fn burst(w: &mut SlidingWindow, now: f64, n: usize, limit: u32, window: f64) -> Vec<f64> {
        (0..n).map(|_| w.reserve(now, limit, window)).collect()
    }

    #[test]
    fn first_limit_requests_go_now_then_one_window_later() {
        let mut w = SlidingWindow::new();
        let times = burst(&mut w, 100.0, 130, 60, 60.0);
        assert!(times[..60].iter().all(|t| *t == 100.0));
        let m = clock_margin(60.0);
        assert!(times[60..120].iter().all(|t| *t == 160.0 + m));
        assert!(times[120..]
            .iter()
            .all(|t| (*t - (220.0 + 2.0 * m)).abs() < 1e-9));
    }

    #[test]
    fn no_window_ever_holds_more_than_limit() {
        let mut w = SlidingWindow::new();
        let mut sent = Vec::new();
        let mut now = 0.0;
        for i in 0..500 {
            // Irregular arrivals on a fake clock.
            now += (i % 7) as f64 * 0.37;
            sent.push(w.reserve(now, 10, 5.0));
        }
        sent.sort_by(|a, b| a.partial_cmp(b).unwrap());
        for (i, t) in sent.iter().enumerate() {
            let in_window = sent[i..].iter().take_while(|u| **u < t + 5.0).count();
            assert!(
                in_window <= 10,
                "{in_window} requests in the window starting at {t}"
            );
        }
    }

    #[test]
    fn old_requests_age_out() {
        let mut w = SlidingWindow::new();
        burst(&mut w, 0.0, 60, 60, 60.0);
        // 61 s later the whole window is free again.
        assert_eq!(w.reserve(61.0, 60, 60.0), 61.0);
        assert!(w.reserved() <= 60);
    }

    #[test]
    fn completion_time_ages_the_slot() {
        let mut w = SlidingWindow::new();
        let t = w.reserve(0.0, 1, 10.0);
        w.completed(t, 2.5);
        // The server may have counted it as late as 2.5 s: the next slot is 12.5, not 10.
        assert_eq!(w.reserve(3.0, 1, 10.0), 12.5 + clock_margin(10.0));
    }

    #[test]
    fn remaining_zero_with_foreign_traffic_waits_for_our_oldest() {
        let mut w = SlidingWindow::new();
        let t = w.reserve(10.0, 60, 60.0);
        w.completed(t, 10.0);
        w.observe_remaining(0, 12.0, 60, 60.0, 120.0);
        assert_eq!(w.reserve(12.0, 60, 60.0), 70.0 + clock_margin(60.0));
    }

    #[test]
    fn remaining_zero_ignores_requests_the_server_may_have_dropped() {
        // Local limit too high (1000); the server allows 3 per 10 s. Request 1 was sent at 0
        // and answered at 10.05; the server counted it near 0, so at 10.2 it is gone there and
        // the server's window is requests 2-4. Waiting for request 1's answer + 10 (20.05)
        // would send into a 429; request 2 (sent and answered at 10.1) is the first surely
        // counted, so the next slot is 20.1.
        let mut w = SlidingWindow::new();
        let sent = [0.0, 10.1, 10.15, 10.2];
        for (i, t) in sent.iter().enumerate() {
            let at = w.reserve(*t, 1000, 10.0);
            w.completed(at, if i == 0 { 10.05 } else { *t });
        }
        w.observe_remaining(0, 10.2, 1000, 10.0, 120.0);
        assert_eq!(w.reserve(10.2, 1000, 10.0), 20.1 + clock_margin(10.0));
    }

    #[test]
    fn remaining_zero_is_bounded_by_max_wait() {
        let mut w = SlidingWindow::new();
        w.reserve(10.0, 60, 60.0);
        w.observe_remaining(0, 10.0, 60, 60.0, 5.0);
        assert_eq!(w.reserve(10.0, 60, 60.0), 15.0);
    }

    #[test]
    fn remaining_positive_changes_nothing() {
        let mut w = SlidingWindow::new();
        w.reserve(0.0, 60, 60.0);
        w.observe_remaining(5, 0.0, 60, 60.0, 120.0);
        assert_eq!(w.reserve(0.0, 60, 60.0), 0.0);
    }

    #[test]
    fn retry_after_blocks_everyone() {
        let mut w = SlidingWindow::new();
        w.observe_retry_after(5.0, 57.0);
        assert_eq!(w.reserve(6.0, 60, 60.0), 62.0);
        // A shorter, later hint never shortens the block.
        w.observe_retry_after(7.0, 1.0);
        assert_eq!(w.reserve(7.0, 60, 60.0), 62.0);
    }

    #[test]
    fn registry_shares_by_key() {
        let reg = LimiterRegistry::default();
        let a = reg.get("k1");
        let b = reg.get("k1");
        let c = reg.get("k2");
        a.lock().unwrap().reserve(0.0, 1, 60.0);
        assert_eq!(
            b.lock().unwrap().reserve(0.0, 1, 60.0),
            60.0 + clock_margin(60.0)
        );
        assert_eq!(c.lock().unwrap().reserve(0.0, 1, 60.0), 0.0);
    }

    /// The log as it was kept before it was made incremental: push, then a full stable sort,
    /// and a linear search. The incremental log must reserve the same times.
    #[derive(Default)]
    struct Reference {
        log: Vec<Slot>,
    }

    impl Reference {
        fn sort(&mut self) {
            self.log
                .sort_by(|a, b| a.done.partial_cmp(&b.done).unwrap());
        }

        fn reserve(&mut self, now: f64, limit: usize, window: f64) -> f64 {
            self.log.retain(|s| s.done > now - window);
            let mut at = now;
            if self.log.len() >= limit {
                at = at.max(self.log[self.log.len() - limit].done + window + clock_margin(window));
            }
            self.log.push(Slot { sent: at, done: at });
            self.sort();
            if self.log.len() > limit {
                let excess = self.log.len() - limit;
                self.log.drain(..excess);
            }
            at
        }

        fn completed(&mut self, reserved_at: f64, now: f64) {
            if let Some(slot) = self
                .log
                .iter_mut()
                .find(|s| s.sent == reserved_at && s.done == reserved_at)
            {
                slot.done = now.max(reserved_at);
            }
            self.sort();
        }
    }

    #[test]
    fn incremental_log_matches_a_full_sort() {
        // Requests complete out of order and with equal times, on coarse clock steps so ties
        // happen; a small LCG keeps the sequence reproducible.
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move |n: u64| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % n
        };
        for limit in [1usize, 3, 60, 1000] {
            let (mut ours, mut reference) = (SlidingWindow::new(), Reference::default());
            let mut open: Vec<f64> = Vec::new();
            let mut now = 0.0;
            for _ in 0..5000 {
                now += next(4) as f64 * 0.25;
                if open.is_empty() || next(3) > 0 {
                    let a = ours.reserve(now, limit as u32, 10.0);
                    assert_eq!(a, reference.reserve(now, limit, 10.0));
                    open.push(a);
                } else {
                    let at = open.swap_remove(next(open.len() as u64) as usize);
                    let done = at.max(now) + next(3) as f64 * 0.5;
                    ours.completed(at, done);
                    reference.completed(at, done);
                }
                assert_eq!(ours.log.iter().copied().collect::<Vec<_>>(), reference.log);
            }
        }
    }
}
