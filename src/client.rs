//! The one Plane REST client: auth, throttle, retries, error mapping, rate facts and stats.
//!
//! It is plain async Rust; `python/run.rs` drives it with `block_on` (GIL released) for the sync
//! API and through the asyncio bridge for the async one. Python-side hooks (a shared rate budget,
//! an OAuth token provider) come in through the `Hooks` trait so this module stays free of PyO3.
//!
//! Over 800 lines as one job: a request's life (credential, throttle, attempt, retry, error
//! mapping, stats) reads in one place; the parts that stand alone already live in `retry`,
//! `ratelimit`, `url`, `tls` and `runtime`.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rand::rngs::SmallRng;
use rand::SeedableRng;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::errors::{redact, CoreError};
use crate::ratelimit::monotonic_now;
use crate::retry::{
    clamp_wait, duration, is_idempotent_method, is_unavailable, parse_int_header, parse_reset_at,
    parse_retry_after, Outcome, RetryPolicy, MAX_SECONDS,
};
use crate::runtime;
use crate::tls::{self, CaBundle};
use crate::url::{build_root_url, build_url, root_url};

/// A credential. Its `Debug` never shows the value.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// How requests to `/api/v1/` authenticate.
#[derive(Debug, Clone)]
pub enum Credential {
    /// `X-API-Key` (the only scheme Plane CE accepts).
    ApiKey(Secret),
    /// `Authorization: Bearer` with a fixed OAuth access or bot token.
    Bearer(Secret),
    /// `Authorization: Bearer` with the token of `Hooks::token`, refreshed once after a 401.
    TokenProvider,
    /// No credential: only useful for the OAuth endpoints.
    Anonymous,
}

impl Credential {
    pub fn kind(&self) -> &'static str {
        match self {
            Credential::ApiKey(_) => "api_key",
            Credential::Bearer(_) => "access_token",
            Credential::TokenProvider => "token_provider",
            Credential::Anonymous => "none",
        }
    }
}

/// Largest response body read: a full 1000-item page of work items is a few MiB.
pub const MAX_BODY_BYTES: usize = 64 << 20;

/// How far a failed attempt got, which decides whether it may be sent again.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Failure {
    /// No connection was made: always safe to resend.
    NotSent,
    /// The request may have reached the server: resent only when idempotent.
    MaybeSent,
    /// Sending again cannot help (a refused certificate, a bad header, an oversized body).
    Final,
}

/// Name and value of the authentication header of one attempt.
type AuthHeader = (&'static str, String);

/// Settings of one client.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub base_url: String,
    pub timeout: f64,
    pub requests_per_minute: u32,
    /// Length of the throttle window in seconds (60 for Plane; shorter in tests and benchmarks).
    pub rate_window: f64,
    pub retry: RetryPolicy,
    /// Extra certificate authorities trusted by this client (on top of the bundled roots and
    /// the system store).
    pub ca_bundle: Option<CaBundle>,
}

/// Accepted ranges of the numeric settings. Anything outside is a `ConfigError`: a huge value
/// would overflow a `Duration` (a panic), and a NaN would make every comparison false.
pub const TIMEOUT_RANGE: (f64, f64) = (0.0, MAX_SECONDS);
pub const RATE_WINDOW_RANGE: (f64, f64) = (0.0, MAX_SECONDS);
pub const MAX_WAIT_RANGE: (f64, f64) = (0.0, MAX_SECONDS);
pub const BACKOFF_BASE_RANGE: (f64, f64) = (0.0, 3_600.0);
pub const REQUESTS_PER_MINUTE_RANGE: (u32, u32) = (1, 1_000_000);
pub const MAX_RETRIES_RANGE: (u32, u32) = (0, 100);

impl ClientConfig {
    /// Checks every number against its accepted range.
    pub fn validate(&self) -> Result<(), CoreError> {
        // timeout and rate_window must be > 0; max_wait and backoff_base may be 0.
        check_seconds("timeout", self.timeout, TIMEOUT_RANGE, false)?;
        check_seconds("rate_window", self.rate_window, RATE_WINDOW_RANGE, false)?;
        check_seconds("max_wait", self.retry.max_wait, MAX_WAIT_RANGE, true)?;
        check_seconds(
            "backoff_base",
            self.retry.backoff_base,
            BACKOFF_BASE_RANGE,
            true,
        )?;
        check_count(
            "requests_per_minute",
            i128::from(self.requests_per_minute),
            REQUESTS_PER_MINUTE_RANGE,
        )?;
        check_count(
            "max_retries",
            i128::from(self.retry.max_retries),
            MAX_RETRIES_RANGE,
        )?;
        Ok(())
    }
}

/// `value` must be finite and within `(lo, hi]`, or `[lo, hi]` when `zero_ok`.
pub fn check_seconds(
    name: &str,
    value: f64,
    (lo, hi): (f64, f64),
    zero_ok: bool,
) -> Result<(), CoreError> {
    let low_ok = if zero_ok { value >= lo } else { value > lo };
    if value.is_finite() && low_ok && value <= hi {
        return Ok(());
    }
    let low = if zero_ok { "at least" } else { "more than" };
    Err(CoreError::Config(format!(
        "{name} must be a number of seconds {low} {lo} and at most {hi}, got {value:?}"
    )))
}

/// `value` must be a whole number within `[lo, hi]`.
pub fn check_count(name: &str, value: i128, (lo, hi): (u32, u32)) -> Result<u32, CoreError> {
    if value >= i128::from(lo) && value <= i128::from(hi) {
        return Ok(value as u32);
    }
    Err(CoreError::Config(format!(
        "{name} must be a whole number from {lo} to {hi}, got {value}"
    )))
}

/// Python-side services the client calls while it works.
pub trait Hooks: Sync {
    /// Shared budget across processes: seconds to wait before sending, or `None` when the client
    /// has no shared budget (the process-local limiter is used).
    fn reserve_budget(
        &self,
        key_id: &str,
        limit: u32,
        window: f64,
    ) -> Option<Result<f64, CoreError>>;
    /// The current OAuth access token (fresh one when `force_refresh`).
    fn token(&self, force_refresh: bool) -> Result<String, CoreError>;
}

/// Hooks for a client with neither a shared budget nor a token provider.
pub struct NoHooks;

impl Hooks for NoHooks {
    fn reserve_budget(&self, _: &str, _: u32, _: f64) -> Option<Result<f64, CoreError>> {
        None
    }
    fn token(&self, _: bool) -> Result<String, CoreError> {
        Err(CoreError::Config("no token_provider configured".into()))
    }
}

/// Body of a request.
#[derive(Debug, Clone, Default)]
pub enum Body {
    #[default]
    Empty,
    Json(Value),
    Form(Vec<(String, String)>),
}

/// Authentication override for the OAuth endpoints.
#[derive(Debug, Clone, Default)]
pub enum AuthOverride {
    /// The client's own credential.
    #[default]
    Client,
    Basic(Secret, Secret),
    Bearer(Secret),
    None,
}

/// One logical request (retries included).
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Relative to `/api/v1/` (or to the root for `raw_root`).
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Body,
    /// Safe to resend after a lost answer even if the method is not idempotent.
    pub idempotent: bool,
    /// Path under the base URL root instead of `/api/v1/` (OAuth endpoints); not throttled.
    pub raw_root: bool,
    pub auth: AuthOverride,
}

impl Request {
    pub fn new(method: &str, path: &str) -> Self {
        Request {
            method: method.to_ascii_uppercase(),
            path: path.to_string(),
            query: Vec::new(),
            body: Body::Empty,
            idempotent: is_idempotent_method(method),
            raw_root: false,
            auth: AuthOverride::Client,
        }
    }
}

/// The server's latest word on the rate budget.
#[derive(Debug, Clone, Copy, Default)]
pub struct RateInfo {
    pub remaining: Option<i64>,
    /// Epoch seconds (Plane sends "now + 60", not the moment a slot frees).
    pub reset_at: Option<f64>,
}

/// Counters of one client.
#[derive(Debug, Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub retries: AtomicU64,
    pub throttle_waits: AtomicU64,
    throttle_wait_micros: AtomicU64,
    pub rate_limited: AtomicU64,
    pub transport_errors: AtomicU64,
}

impl Stats {
    pub fn throttle_wait_seconds(&self) -> f64 {
        self.throttle_wait_micros.load(Ordering::Relaxed) as f64 / 1e6
    }
    fn add_wait(&self, secs: f64) {
        self.throttle_waits.fetch_add(1, Ordering::Relaxed);
        self.throttle_wait_micros
            .fetch_add((secs * 1e6) as u64, Ordering::Relaxed);
    }
}

/// The client. Cheap to share between threads; holds no runtime or socket itself (see runtime.rs).
pub struct Client {
    config: ClientConfig,
    credential: Credential,
    /// sha256 hex of the credential: the limiter and shared-budget key, never the key itself.
    key_id: String,
    pub stats: Stats,
    rate: Mutex<RateInfo>,
    /// The provider's latest token, kept only to redact it from error bodies.
    last_token: Mutex<Option<Secret>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.config.base_url)
            .field("auth", &self.credential.kind())
            .finish()
    }
}

impl Client {
    pub fn new(mut config: ClientConfig, credential: Credential) -> Result<Self, CoreError> {
        config.base_url = root_url(&config.base_url)?;
        config.validate()?;
        warn_if_cleartext(&config.base_url);
        let key_id = match &credential {
            Credential::ApiKey(s) => sha256_hex(s.expose()),
            Credential::Bearer(s) => sha256_hex(&format!("bearer:{}", s.expose())),
            // A provider's token changes on refresh; the client itself is the budget's unit.
            Credential::TokenProvider | Credential::Anonymous => {
                sha256_hex(&format!("client:{:x}", rand::random::<u64>()))
            }
        };
        Ok(Client {
            config,
            credential,
            key_id,
            stats: Stats::default(),
            rate: Mutex::new(RateInfo::default()),
            last_token: Mutex::new(None),
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    pub fn base_url(&self) -> &str {
        &self.config.base_url
    }

    pub fn credential(&self) -> &Credential {
        &self.credential
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn rate_info(&self) -> RateInfo {
        *self.rate.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends `req` with throttling and retries; the decoded JSON body, or `None` for no content.
    pub async fn send<H: Hooks>(
        &self,
        hooks: &H,
        req: &Request,
    ) -> Result<Option<Value>, CoreError> {
        let url = if req.raw_root {
            build_root_url(&self.config.base_url, &req.path)?
        } else {
            build_url(&self.config.base_url, &req.path)?
        };
        let log_path = url_path(&url);
        let mut rng = SmallRng::from_rng(&mut rand::rng());
        let policy = self.config.retry;
        let throttled = !req.raw_root && !matches!(self.credential, Credential::Anonymous);
        let mut rate_limited_retries = 0u32;
        let mut transient_retries = 0u32;
        let mut refreshed = false;
        let mut force_refresh = false;
        loop {
            let reservation = if throttled {
                self.throttle(hooks).await?
            } else {
                None
            };
            let (auth_header, bearer_from_provider) =
                self.auth_header(hooks, req, force_refresh)?;
            force_refresh = false;
            log::debug!("{} {}", req.method, log_path);
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            let result = self.attempt(&url, req, auth_header).await;
            let now = monotonic_now();
            if let Some(at) = reservation {
                runtime::current()
                    .limiters()
                    .get(&self.key_id)
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .completed(at, now);
            }
            let (status, headers, body) = match result {
                Ok(answer) => answer,
                Err((err, failure)) => {
                    if !matches!(err, CoreError::Transport { .. }) {
                        // A bad header value or an oversized body: resending changes nothing.
                        return Err(err);
                    }
                    self.stats.transport_errors.fetch_add(1, Ordering::Relaxed);
                    let maybe_sent = match failure {
                        Failure::NotSent => false,
                        Failure::MaybeSent => true,
                        // A refused certificate stays refused: no retry storm against it.
                        Failure::Final => return Err(err),
                    };
                    let idempotent = req.idempotent;
                    if policy.should_retry(
                        Outcome::Transport { maybe_sent },
                        transient_retries,
                        idempotent,
                    ) {
                        self.transient_backoff(&mut transient_retries, &mut rng, &err.to_string())
                            .await;
                        continue;
                    }
                    return Err(err);
                }
            };
            if throttled {
                // With a shared budget, `Remaining: 0` is the budget working as planned (it counts
                // every process and already scheduled the next slot); blocking on it as if an
                // unknown process used the key would stall every worker for a whole window.
                let budgeted = throttled && reservation.is_none();
                self.observe_rate_headers(&headers, now, !budgeted);
            }
            if status == 429 {
                self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
                let asked = parse_retry_after(header(&headers, "retry-after"));
                let wait = policy.rate_limit_wait(asked, &mut rng);
                if throttled {
                    self.with_limiter(|w| w.observe_retry_after(monotonic_now(), wait));
                }
                if policy.should_retry(Outcome::RateLimited, rate_limited_retries, req.idempotent) {
                    rate_limited_retries += 1;
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    log::warn!(
                        "{} {}: 429 rate limited (Retry-After {}); retry {}/{} in {:.2}s",
                        req.method,
                        log_path,
                        asked.map_or("missing or invalid".to_string(), |a| format!("{a}s")),
                        rate_limited_retries,
                        policy.max_retries,
                        wait
                    );
                    // When throttled, the limiter now blocks until then; otherwise sleep here.
                    if !throttled {
                        tokio::time::sleep(duration(wait)).await;
                    }
                    continue;
                }
                let mut err = self.http_error(status, req, &log_path, &body);
                if let CoreError::Http {
                    retry_after,
                    message,
                    ..
                } = &mut err
                {
                    *retry_after = asked;
                    message.push_str(&format!(
                        " (gave up after {} retries)",
                        rate_limited_retries
                    ));
                }
                return Err(err);
            }
            if status == 401 && bearer_from_provider && !refreshed {
                // The token may have expired between the provider's check and our request.
                refreshed = true;
                force_refresh = true;
                log::warn!(
                    "{} {}: 401 with the OAuth token; refreshing it once",
                    req.method,
                    log_path
                );
                continue;
            }
            if is_unavailable(status)
                && policy.should_retry(Outcome::Unavailable, transient_retries, req.idempotent)
            {
                let what = format!("{} {}: {} from the server", req.method, log_path, status);
                self.transient_backoff(&mut transient_retries, &mut rng, &what)
                    .await;
                continue;
            }
            if !(200..300).contains(&status) {
                let mut err = self.http_error(status, req, &log_path, &body);
                if status == 401 && bearer_from_provider {
                    if let CoreError::Http { message, .. } = &mut err {
                        message.push_str(
                            " (the refreshed OAuth token was refused too: re-authorize the app)",
                        );
                    }
                }
                return Err(err);
            }
            return self.decode(status, req, &log_path, &body);
        }
    }

    /// POST that is safe to retry because it carries external_id + external_source: a duplicate
    /// answers 409 with the existing id, which is then fetched and returned.
    pub async fn create_idempotent<H: Hooks>(
        &self,
        hooks: &H,
        path: &str,
        json: Value,
    ) -> Result<Value, CoreError> {
        let has_external = |k: &str| {
            json.get(k)
                .is_some_and(|v| !v.is_null() && v.as_str() != Some(""))
        };
        if !has_external("external_id") || !has_external("external_source") {
            return Err(CoreError::Config(
                "create_idempotent needs both external_id and external_source in the payload: \
                 without them a retried POST could create a duplicate"
                    .into(),
            ));
        }
        let mut req = Request::new("POST", path);
        req.body = Body::Json(json);
        req.idempotent = true;
        match self.send(hooks, &req).await {
            Ok(Some(v)) => Ok(v),
            Ok(None) => Err(CoreError::Http {
                status: 204,
                method: "POST".into(),
                path: path.to_string(),
                message: "the create answered with no body; expected the created object".into(),
                body: String::new(),
                retry_after: None,
                existing_id: None,
            }),
            Err(CoreError::Http {
                status: 409,
                existing_id: Some(id),
                ..
            }) => {
                log::debug!("POST {}: already exists, fetching it", path);
                let (base, query) = match path.split_once('?') {
                    Some((b, q)) => (b, Some(q)),
                    None => (path, None),
                };
                let mut detail = format!("{}/{}/", base.trim_end_matches('/'), id);
                if let Some(q) = query {
                    detail.push('?');
                    detail.push_str(q);
                }
                self.send(hooks, &Request::new("GET", &detail))
                    .await?
                    .ok_or_else(|| {
                        CoreError::Config("empty answer fetching the existing object".into())
                    })
            }
            Err(e) => Err(e),
        }
    }

    /// Sleeps the backoff of the next transient retry (a 5xx or a transport error) and counts it.
    async fn transient_backoff(&self, retries: &mut u32, rng: &mut SmallRng, what: &str) {
        let policy = self.config.retry;
        let wait = policy.backoff(*retries, rng);
        *retries += 1;
        self.stats.retries.fetch_add(1, Ordering::Relaxed);
        log::warn!(
            "{what}; retry {retries}/{} in {wait:.2}s",
            policy.max_retries
        );
        tokio::time::sleep(duration(wait)).await;
    }

    async fn throttle<H: Hooks>(&self, hooks: &H) -> Result<Option<f64>, CoreError> {
        let limit = self.config.requests_per_minute;
        let window = self.config.rate_window;
        let max_wait = self.config.retry.max_wait;
        if matches!(self.credential, Credential::ApiKey(_)) {
            if let Some(wait) = hooks.reserve_budget(&self.key_id, limit, window) {
                let wait = wait?;
                if wait.is_nan() {
                    return Err(CoreError::Config(
                        "rate_budget.reserve() returned NaN: it must return the seconds to wait \
                         (a number >= 0)"
                            .into(),
                    ));
                }
                // A negative answer is no wait, an absurd one (inf, 1e300) is max_wait.
                let wait = clamp_wait(wait, max_wait);
                // The shared budget replaces the local window, but a server block still applies.
                let blocked = self.with_limiter(|w| w.blocked_wait(monotonic_now()));
                let wait = wait.max(clamp_wait(blocked, max_wait));
                self.wait(wait).await;
                return Ok(None);
            }
        }
        let now = monotonic_now();
        let at = self.with_limiter(|w| w.reserve(now, limit, window));
        // Our own window is not clamped: its waits are the configured rate itself, and sending
        // early would only collect 429s.
        self.wait(at - now).await;
        Ok(Some(at))
    }

    async fn wait(&self, secs: f64) {
        if secs > 0.0005 {
            self.stats.add_wait(secs);
            log::debug!("throttle: waiting {secs:.3}s for the rate budget");
            tokio::time::sleep(duration(secs)).await;
        }
    }

    fn with_limiter<T>(&self, f: impl FnOnce(&mut crate::ratelimit::SlidingWindow) -> T) -> T {
        let limiter = runtime::current().limiters().get(&self.key_id);
        let mut guard = limiter.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }

    fn observe_rate_headers(
        &self,
        headers: &reqwest::header::HeaderMap,
        now: f64,
        block_on_empty: bool,
    ) {
        let remaining = parse_int_header(header(headers, "x-ratelimit-remaining"));
        let reset = parse_reset_at(header(headers, "x-ratelimit-reset"), epoch_now());
        if remaining.is_none() && reset.is_none() {
            return;
        }
        {
            let mut rate = self.rate.lock().unwrap_or_else(|e| e.into_inner());
            if remaining.is_some() {
                rate.remaining = remaining;
            }
            if reset.is_some() {
                rate.reset_at = reset;
            }
        }
        if let (Some(r), true) = (remaining, block_on_empty) {
            let (limit, window, max_wait) = (
                self.config.requests_per_minute,
                self.config.rate_window,
                self.config.retry.max_wait,
            );
            self.with_limiter(|w| w.observe_remaining(r, now, limit, window, max_wait));
        }
    }

    fn auth_header<H: Hooks>(
        &self,
        hooks: &H,
        req: &Request,
        force_refresh: bool,
    ) -> Result<(Option<AuthHeader>, bool), CoreError> {
        let header = match &req.auth {
            AuthOverride::None => None,
            AuthOverride::Bearer(t) => Some(("authorization", format!("Bearer {}", t.expose()))),
            AuthOverride::Basic(user, pass) => {
                let raw = format!("{}:{}", user.expose(), pass.expose());
                Some(("authorization", format!("Basic {}", base64(raw.as_bytes()))))
            }
            AuthOverride::Client => match &self.credential {
                Credential::ApiKey(k) => Some(("x-api-key", k.expose().to_string())),
                Credential::Bearer(t) => Some(("authorization", format!("Bearer {}", t.expose()))),
                Credential::TokenProvider => {
                    let token = hooks.token(force_refresh)?;
                    *self.last_token.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(Secret::new(token.clone()));
                    return Ok((Some(("authorization", format!("Bearer {token}"))), true));
                }
                Credential::Anonymous => None,
            },
        };
        Ok((header, false))
    }

    async fn attempt(
        &self,
        url: &str,
        req: &Request,
        auth: Option<AuthHeader>,
    ) -> Result<(u16, reqwest::header::HeaderMap, String), (CoreError, Failure)> {
        let http = runtime::current()
            .http(self.config.ca_bundle.as_ref())
            .map_err(|e| (e, Failure::Final))?;
        let method = reqwest::Method::from_bytes(req.method.as_bytes()).map_err(|_| {
            (
                CoreError::Config(format!("invalid HTTP method {:?}", req.method)),
                Failure::Final,
            )
        })?;
        let mut builder = http
            .request(method, url)
            .timeout(duration(self.config.timeout))
            .header("accept", "application/json");
        if !req.query.is_empty() {
            builder = builder.query(&req.query);
        }
        if let Some((name, value)) = auth {
            let mut value = reqwest::header::HeaderValue::from_str(&value).map_err(|_| {
                (
                    CoreError::Config(
                        "the credential contains characters not allowed in an HTTP header".into(),
                    ),
                    Failure::Final,
                )
            })?;
            value.set_sensitive(true);
            builder = builder.header(name, value);
        }
        builder = match &req.body {
            Body::Empty => builder,
            Body::Json(v) => builder.json(v),
            Body::Form(pairs) => builder.form(pairs),
        };
        let path = url_path(url);
        let resp = builder.send().await.map_err(|e| {
            let failure = if tls::tls_failure(&e).is_some() {
                Failure::Final
            } else if e.is_connect() {
                Failure::NotSent
            } else {
                Failure::MaybeSent
            };
            (self.transport_error(&req.method, &path, &e), failure)
        })?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let mut resp = resp;
        let mut raw: Vec<u8> = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| {
            (
                self.transport_error(&req.method, &path, &e),
                Failure::MaybeSent,
            )
        })? {
            if raw.len() + chunk.len() > MAX_BODY_BYTES {
                // A broken or hostile server must not exhaust an Odoo worker's memory.
                let err = CoreError::Http {
                    status,
                    method: req.method.clone(),
                    path,
                    message: format!(
                        "the response body exceeds {} MiB; not reading it",
                        MAX_BODY_BYTES >> 20
                    ),
                    body: String::new(),
                    retry_after: None,
                    existing_id: None,
                };
                return Err((err, Failure::Final));
            }
            raw.extend_from_slice(&chunk);
        }
        Ok((status, headers, String::from_utf8_lossy(&raw).into_owned()))
    }

    fn transport_error(&self, method: &str, path: &str, err: &reqwest::Error) -> CoreError {
        let timeout = err.is_timeout();
        if let Some(tls) = tls::tls_failure(err) {
            return CoreError::Transport {
                message: self.redact(&format!(
                    "{method} {}{path}: {}",
                    origin(&self.config.base_url),
                    tls::describe_tls_failure(tls)
                )),
                timeout: false,
            };
        }
        let what = if timeout {
            format!("timed out after {}s", self.config.timeout)
        } else if err.is_connect() {
            "could not connect".to_string()
        } else {
            "connection failed".to_string()
        };
        // The source chain without the URL (its query string could hold anything).
        let mut detail = Vec::new();
        let mut source = std::error::Error::source(err);
        while let Some(s) = source {
            detail.push(s.to_string());
            source = s.source();
        }
        let detail = if detail.is_empty() {
            String::new()
        } else {
            format!(" ({})", detail.join(": "))
        };
        CoreError::Transport {
            message: self.redact(&format!(
                "{method} {}{path}: {what}{detail}",
                origin(&self.config.base_url)
            )),
            timeout,
        }
    }

    fn http_error(&self, status: u16, req: &Request, path: &str, body: &str) -> CoreError {
        let body = self.redact(body);
        let mut err = CoreError::from_response(status, &req.method, path, &body);
        if let CoreError::Http { message, .. } = &mut err {
            *message = self.redact(message);
        }
        err
    }

    fn decode(
        &self,
        status: u16,
        req: &Request,
        path: &str,
        body: &str,
    ) -> Result<Option<Value>, CoreError> {
        if status == 204 || body.trim().is_empty() {
            return Ok(None);
        }
        serde_json::from_str(body).map(Some).map_err(|e| {
            let body = self.redact(body);
            CoreError::Http {
                status,
                method: req.method.clone(),
                path: path.to_string(),
                message: format!("the response body is not valid JSON ({e})"),
                body: crate::errors::excerpt(&body),
                retry_after: None,
                existing_id: None,
            }
        })
    }

    fn redact(&self, text: &str) -> String {
        let token = self
            .last_token
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut secrets: Vec<&str> = Vec::new();
        match &self.credential {
            Credential::ApiKey(s) | Credential::Bearer(s) => secrets.push(s.expose()),
            _ => {}
        }
        if let Some(t) = &token {
            secrets.push(t.expose());
        }
        redact(text, &secrets)
    }
}

/// Logs once per process and base URL when the API key would travel unencrypted: plain
/// `http://` to anything but this machine. Loopback (the emulator, a local proxy) is fine.
fn warn_if_cleartext(base_url: &str) {
    static WARNED: Mutex<Option<std::collections::HashSet<String>>> = Mutex::new(None);
    let Ok(parsed) = url::Url::parse(base_url) else {
        return;
    };
    if parsed.scheme() != "http" {
        return;
    }
    let loopback = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.');
            name.eq_ignore_ascii_case("localhost")
                || name.to_ascii_lowercase().ends_with(".localhost")
        }
        None => true,
    };
    if loopback {
        return;
    }
    let mut warned = WARNED.lock().unwrap_or_else(|e| e.into_inner());
    if warned
        .get_or_insert_with(Default::default)
        .insert(base_url.to_string())
    {
        log::warn!(
            "base URL {base_url} is plain http:// to another host: the API key, tokens and every \
             payload cross the network unencrypted; use https://"
        );
    }
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The path of a URL (no query string: query values could be anything).
fn url_path(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => u.path().to_string(),
        Err(_) => String::from("?"),
    }
}

fn origin(base: &str) -> String {
    match url::Url::parse(base) {
        Ok(u) => u.origin().ascii_serialization(),
        Err(_) => String::new(),
    }
}

pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// Current wall-clock time in epoch seconds.
pub fn epoch_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// RFC 4648 base64 (with padding), for a Basic credential.
fn base64(input: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_debug_is_masked() {
        let c = Credential::ApiKey(Secret::new("plane_api_0123456789abcdef"));
        assert!(!format!("{c:?}").contains("0123456789"));
        let client = Client::new(
            ClientConfig {
                base_url: "https://api.plane.so".into(),
                timeout: 30.0,
                requests_per_minute: 60,
                rate_window: 60.0,
                retry: RetryPolicy {
                    max_retries: 3,
                    max_wait: 120.0,
                    backoff_base: 0.5,
                },
                ca_bundle: None,
            },
            c,
        )
        .unwrap();
        let dbg = format!("{client:?}");
        assert!(!dbg.contains("0123456789"), "{dbg}");
        assert_eq!(client.key_id(), sha256_hex("plane_api_0123456789abcdef"));
    }

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(b"client:secret"), "Y2xpZW50OnNlY3JldA==");
    }
}
