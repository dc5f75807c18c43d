//! Retry policy: what is retried, how long to wait, and how hostile headers are bounded.
//!
//! - 429: retried at most `max_retries` times after `Retry-After` plus jitter (Plane sends whole
//!   seconds and no `X-RateLimit-*` headers on a 429).
//! - Connect errors, timeouts, 502/503/504: retried with jittered exponential backoff, but only for
//!   idempotent methods, or for a POST that is idempotent by construction (external_id +
//!   external_source: Plane answers 409 with the existing id instead of creating a duplicate).
//! - Every wait is clamped to `[0, max_wait]`, whatever the server sent.

use std::time::Duration;

use rand::{Rng, RngExt};

/// Retry knobs of one client.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_retries: u32,
    /// Ceiling of any single wait, seconds.
    pub max_wait: f64,
    /// First backoff step, seconds; doubles per attempt. Also the maximum jitter added to a
    /// server-requested wait.
    pub backoff_base: f64,
}

/// Wait used when a 429 has no usable `Retry-After`.
pub const DEFAULT_RETRY_AFTER: f64 = 1.0;

/// What went wrong with one attempt, as far as the policy cares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    RateLimited,
    /// 502/503/504: the gateway or server is briefly unavailable.
    Unavailable,
    /// No answer at all; `maybe_sent` is false when the connection was never established.
    Transport {
        maybe_sent: bool,
    },
}

impl RetryPolicy {
    /// Whether attempt number `attempt` (0 = the first retry) may happen.
    pub fn should_retry(&self, outcome: Outcome, attempt: u32, idempotent: bool) -> bool {
        if attempt >= self.max_retries {
            return false;
        }
        match outcome {
            // A 429 was refused before any side effect: always safe to resend.
            Outcome::RateLimited => true,
            Outcome::Transport { maybe_sent: false } => true,
            Outcome::Unavailable | Outcome::Transport { maybe_sent: true } => idempotent,
        }
    }

    /// Jittered exponential backoff for retry `attempt` (0-based), bounded by `max_wait`.
    pub fn backoff(&self, attempt: u32, rng: &mut impl Rng) -> f64 {
        let step = self.backoff_base.max(0.0) * 2f64.powi(attempt.min(30) as i32);
        // "Equal jitter": half fixed, half random, so retries from many workers spread out.
        let wait = step / 2.0 + rng.random_range(0.0..=1.0) * step / 2.0;
        clamp_wait(wait, self.max_wait)
    }

    /// Wait before retrying a 429: the server's `Retry-After` plus jitter, bounded.
    pub fn rate_limit_wait(&self, retry_after: Option<f64>, rng: &mut impl Rng) -> f64 {
        let base = retry_after.unwrap_or(DEFAULT_RETRY_AFTER);
        let jitter = rng.random_range(0.0..=1.0) * self.backoff_base.max(0.0);
        clamp_wait(base + jitter, self.max_wait)
    }
}

/// Whether an HTTP method is idempotent by definition (safe to resend after a lost answer).
pub fn is_idempotent_method(method: &str) -> bool {
    matches!(
        method.to_ascii_uppercase().as_str(),
        "GET" | "HEAD" | "PUT" | "DELETE" | "OPTIONS"
    )
}

/// Whether a status is a transient unavailability worth retrying.
pub fn is_unavailable(status: u16) -> bool {
    matches!(status, 502..=504)
}

/// Ceiling of a `Retry-After` (and of how far ahead an `X-RateLimit-Reset` may lie), seconds.
/// The value reaches Python as `RateLimitError.retry_after`, where a job's error handler adds it
/// to a datetime: 3e11 s raised `OverflowError` there. Plane's window is 60 s; an hour is ample.
/// `plane_connector._errors.MAX_RETRY_AFTER` is the same number.
pub const MAX_RETRY_AFTER: f64 = 3_600.0;

/// Parses `Retry-After` as seconds, clamped to `MAX_RETRY_AFTER` (`inf` and overflowing numbers
/// such as `1e400` too). Negative, NaN or garbage values give `None` (the caller then uses a
/// default); HTTP-dates are not sent by Plane and are treated as garbage.
pub fn parse_retry_after(value: Option<&str>) -> Option<f64> {
    let secs: f64 = value?.trim().parse().ok()?;
    if secs.is_nan() || secs < 0.0 {
        None
    } else {
        Some(secs.min(MAX_RETRY_AFTER))
    }
}

/// Parses `X-RateLimit-Reset` (epoch seconds): garbage or a negative value gives `None`, a reset
/// further ahead of the wall clock `now_epoch` than `MAX_RETRY_AFTER` is cut to that horizon (it
/// reaches Python as `rate_limit.reset_at`, where 9.2e18 makes no datetime).
pub fn parse_reset_at(value: Option<&str>, now_epoch: f64) -> Option<f64> {
    let reset = parse_int_header(value)?;
    if reset < 0 {
        return None;
    }
    Some((reset as f64).min(now_epoch + MAX_RETRY_AFTER))
}

/// Parses an integer rate header such as `X-RateLimit-Remaining`; garbage gives `None`.
pub fn parse_int_header(value: Option<&str>) -> Option<i64> {
    let v = value?.trim();
    v.parse::<i64>().ok().or_else(|| {
        v.parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(|f| f as i64)
    })
}

/// A wait in seconds as a `Duration`, for any f64: NaN and negatives are no wait, and anything
/// past a day (which no validated setting reaches) is a day. `Duration::from_secs_f64` panics
/// on huge or non-finite values, and a panic must never reach Python.
pub fn duration(secs: f64) -> Duration {
    const CEILING: Duration = Duration::from_secs(MAX_SECONDS as u64);
    if secs.is_nan() || secs <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(secs).map_or(CEILING, |d| d.min(CEILING))
}

/// Upper bound of every duration setting (timeout, rate_window, max_wait): one day.
pub const MAX_SECONDS: f64 = 86_400.0;

/// Clamps a wait to `[0, max_wait]`; NaN becomes 0.
pub fn clamp_wait(wait: f64, max_wait: f64) -> f64 {
    let ceiling = if max_wait.is_finite() {
        max_wait.max(0.0)
    } else {
        0.0
    };
    if wait.is_nan() {
        0.0
    } else {
        wait.clamp(0.0, ceiling)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_retries: 3,
            max_wait: 120.0,
            backoff_base: 0.5,
        }
    }

    #[test]
    fn retry_after_parsing_is_bounded() {
        assert_eq!(parse_retry_after(Some("57")), Some(57.0));
        assert_eq!(parse_retry_after(Some(" 2 ")), Some(2.0));
        assert_eq!(parse_retry_after(Some("0.5")), Some(0.5));
        assert_eq!(parse_retry_after(Some("-5")), None);
        assert_eq!(parse_retry_after(Some("soon")), None);
        assert_eq!(parse_retry_after(Some("NaN")), None);
        assert_eq!(parse_retry_after(Some("-inf")), None);
        assert_eq!(
            parse_retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            None
        );
        assert_eq!(parse_retry_after(None), None);
        let mut rng = StdRng::seed_from_u64(1);
        // A year-long Retry-After is cut to the ceiling.
        let p = policy();
        assert_eq!(p.rate_limit_wait(Some(31_536_000.0), &mut rng), 120.0);
        let w = p.rate_limit_wait(None, &mut rng);
        assert!((1.0..=1.5).contains(&w), "{w}");
        let w = p.rate_limit_wait(Some(57.0), &mut rng);
        assert!((57.0..=57.5).contains(&w), "{w}");
    }

    #[test]
    fn absurd_retry_after_is_clamped_to_an_hour() {
        // 3e11 s used to reach Python as is, and overflowed a job's `timedelta` arithmetic.
        for huge in ["300000000000", "1e400", "inf", "+inf", "1e308", "3601"] {
            assert_eq!(
                parse_retry_after(Some(huge)),
                Some(MAX_RETRY_AFTER),
                "{huge}"
            );
        }
        assert_eq!(parse_retry_after(Some("3600")), Some(3600.0));
        for garbage in ["nan", "-1", "-1e400", "soon", ""] {
            assert_eq!(parse_retry_after(Some(garbage)), None, "{garbage}");
        }
    }

    #[test]
    fn rate_limit_reset_is_bounded_by_the_clock() {
        let now = 1_700_000_000.0;
        assert_eq!(
            parse_reset_at(Some("1700000060"), now),
            Some(1_700_000_060.0)
        );
        assert_eq!(
            parse_reset_at(Some("99999999999999"), now),
            Some(now + MAX_RETRY_AFTER)
        );
        assert_eq!(parse_reset_at(Some("1e400"), now), None);
        assert_eq!(parse_reset_at(Some("-5"), now), None);
        assert_eq!(parse_reset_at(Some("x"), now), None);
    }

    #[test]
    fn backoff_grows_and_is_bounded() {
        let mut rng = StdRng::seed_from_u64(7);
        let p = policy();
        for attempt in 0..3 {
            let step = 0.5 * 2f64.powi(attempt as i32);
            let w = p.backoff(attempt, &mut rng);
            assert!(w >= step / 2.0 && w <= step, "attempt {attempt}: {w}");
        }
        assert!(p.backoff(60, &mut rng) <= 120.0);
    }

    #[test]
    fn what_is_retried() {
        let p = policy();
        assert!(p.should_retry(Outcome::RateLimited, 0, false));
        assert!(p.should_retry(Outcome::RateLimited, 2, false));
        assert!(!p.should_retry(Outcome::RateLimited, 3, false));
        assert!(p.should_retry(Outcome::Unavailable, 0, true));
        assert!(!p.should_retry(Outcome::Unavailable, 0, false));
        assert!(!p.should_retry(Outcome::Transport { maybe_sent: true }, 0, false));
        assert!(p.should_retry(Outcome::Transport { maybe_sent: false }, 0, false));
        assert!(is_idempotent_method("get") && is_idempotent_method("DELETE"));
        assert!(!is_idempotent_method("POST") && !is_idempotent_method("PATCH"));
        assert!(is_unavailable(503) && !is_unavailable(500) && !is_unavailable(501));
    }

    #[test]
    fn durations_never_panic() {
        assert_eq!(duration(f64::NAN), Duration::ZERO);
        assert_eq!(duration(-1.0), Duration::ZERO);
        assert_eq!(duration(f64::NEG_INFINITY), Duration::ZERO);
        assert_eq!(duration(1.5), Duration::from_millis(1500));
        for huge in [f64::INFINITY, 1e20, 1e300, f64::MAX] {
            assert_eq!(duration(huge), Duration::from_secs(86_400), "{huge}");
        }
    }

    #[test]
    fn clamps() {
        assert_eq!(clamp_wait(-3.0, 10.0), 0.0);
        assert_eq!(clamp_wait(f64::NAN, 10.0), 0.0);
        assert_eq!(clamp_wait(f64::INFINITY, 10.0), 10.0);
        assert_eq!(parse_int_header(Some("59")), Some(59));
        assert_eq!(parse_int_header(Some("x")), None);
    }
}
