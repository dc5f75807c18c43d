//! The only module that knows about Python: argument adaptation, the GIL, asyncio, exceptions.
//!
//! This file is the glue: exceptions, the Python hooks, and the classes and functions of
//! `plane_connector._core`. How a call runs is in `run`: sync calls run the core's futures with
//! `block_on` inside `py.detach` (the GIL is released while the call waits on the network or the
//! throttle), on the calling thread (the per-process current-thread runtime of runtime.rs), and
//! check for signals every 100 ms so Ctrl-C and worker shutdown interrupt a wait; async calls
//! run the same futures on the per-process multi-thread runtime, bridged to asyncio by
//! pyo3-async-runtimes' generic API, so the async client is fork-safe too. Values cross in
//! `convert` (JSON, query pairs, numbers, errors). The pager's step machine is plain Rust (`pager`).

mod convert;
mod run;

use std::sync::{Arc, Mutex};

use pyo3::exceptions::{PyStopAsyncIteration, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};
use serde_json::Value;

use crate::client::{
    AuthOverride, Body, Client, ClientConfig, Credential, Hooks, Request, Secret,
    MAX_RETRIES_RANGE, REQUESTS_PER_MINUTE_RANGE,
};
use crate::errors::CoreError;
use crate::pager::{next_item, PageWalk, PagerState, MAX_PER_PAGE};
use crate::retry::RetryPolicy;
use crate::tls::CaBundle;
use convert::{
    form_to_pairs, json_to_py, params_to_pairs, py_to_json, to_pyerr, JsonOut, PyNumber,
};
use run::{blocking_hook, run_async, run_sync, ForkSafeRuntime};

// ---------------------------------------------------------------------------------------------
// Python hooks: shared rate budget, token provider, and the exception they may raise

struct PyHooks {
    rate_budget: Option<Py<PyAny>>,
    token_provider: Option<Py<PyAny>>,
    /// The Python exception behind a `CoreError::External`, re-raised as it is.
    pending: Mutex<Option<PyErr>>,
}

impl PyHooks {
    fn new(rate_budget: Option<Py<PyAny>>, token_provider: Option<Py<PyAny>>) -> Self {
        PyHooks {
            rate_budget,
            token_provider,
            pending: Mutex::new(None),
        }
    }

    fn keep(&self, err: PyErr, what: &str) -> CoreError {
        *self.pending.lock().unwrap_or_else(|e| e.into_inner()) = Some(err);
        CoreError::External(format!("{what} raised"))
    }

    fn take_pending(&self) -> Option<PyErr> {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    fn convert(&self, py: Python<'_>, err: CoreError) -> PyErr {
        to_pyerr(py, err, self.take_pending())
    }
}

impl Hooks for PyHooks {
    fn reserve_budget(
        &self,
        key_id: &str,
        limit: u32,
        window: f64,
    ) -> Option<Result<f64, CoreError>> {
        let budget = self.rate_budget.as_ref()?;
        Some(blocking_hook(|| {
            Python::attach(|py| {
                let answer = match budget
                    .bind(py)
                    .call_method1("reserve", (key_id, limit, window))
                {
                    Ok(answer) => answer,
                    Err(e) => return Err(self.keep(e, "rate_budget.reserve()")),
                };
                // The client validates and clamps the number (NaN is an error, inf is max_wait).
                let number = answer
                    .extract::<PyNumber>()
                    .map_err(|e| self.keep(e, "rate_budget.reserve()"))?;
                match number {
                    PyNumber::Float(f) => Ok(f),
                    PyNumber::Int(i) => Ok(i as f64),
                    other => Err(CoreError::Config(format!(
                        "rate_budget.reserve() must return the seconds to wait as a number, \
                         got {}",
                        match other {
                            PyNumber::Other(t) => t,
                            _ => "an int too large for any wait".into(),
                        }
                    ))),
                }
            })
        }))
    }

    fn token(&self, force_refresh: bool) -> Result<String, CoreError> {
        let Some(provider) = self.token_provider.as_ref() else {
            return Err(CoreError::Config("no token_provider configured".into()));
        };
        blocking_hook(|| {
            Python::attach(|py| {
                match provider
                    .bind(py)
                    .call1((force_refresh,))
                    .and_then(|v| v.extract::<String>())
                {
                    Ok(token) if !token.is_empty() => Ok(token),
                    Ok(_) => Err(CoreError::Config(
                        "token_provider returned an empty token".into(),
                    )),
                    Err(e) => Err(self.keep(e, "token_provider")),
                }
            })
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Module functions

#[pyfunction]
fn build_url(py: Python<'_>, base_url: &str, path: &str) -> PyResult<String> {
    crate::url::build_url(base_url, path).map_err(|e| to_pyerr(py, e, None))
}

/// Accept the secret as `str` (UTF-8 bytes, as Plane keys the HMAC) or `bytes`. Borrowed, not
/// copied: a webhook receiver calls this per delivery, and a copy of the key would be one more
/// allocation (and one more copy of a secret in freed memory) per call.
fn secret_bytes<'a>(secret: &'a Bound<'_, PyAny>) -> PyResult<&'a [u8]> {
    if let Ok(s) = secret.cast::<PyString>() {
        return Ok(s.to_str()?.as_bytes());
    }
    if let Ok(b) = secret.cast::<PyBytes>() {
        return Ok(b.as_bytes());
    }
    Err(PyTypeError::new_err("secret must be str or bytes"))
}

#[pyfunction]
#[pyo3(signature = (secret, body, signature))]
fn verify_signature(
    py: Python<'_>,
    secret: &Bound<'_, PyAny>,
    body: &[u8],
    signature: Option<&str>,
) -> PyResult<bool> {
    let key = secret_bytes(secret)?;
    let Some(sig) = signature else {
        return Ok(false);
    };
    // Large bodies: hash without holding the GIL. No copy is needed: `bytes` is immutable and
    // the caller's reference keeps it alive for the whole call.
    if body.len() > 64 * 1024 {
        return Ok(py.detach(|| crate::signature::verify(key, body, sig)));
    }
    Ok(crate::signature::verify(key, body, sig))
}

#[pyfunction]
fn sign_body(secret: &Bound<'_, PyAny>, body: &[u8]) -> PyResult<String> {
    Ok(crate::signature::sign(secret_bytes(secret)?, body))
}

// ---------------------------------------------------------------------------------------------
// Clients

/// The server's latest word on the rate budget.
#[pyclass(frozen, module = "plane_connector._core")]
struct RateLimitInfo {
    /// Requests left in the server's window (`X-RateLimit-Remaining`), if known.
    #[pyo3(get)]
    remaining: Option<i64>,
    /// `X-RateLimit-Reset` in epoch seconds (Plane sends "now + 60").
    #[pyo3(get)]
    reset_at: Option<f64>,
    /// The client's configured requests per window.
    #[pyo3(get)]
    limit: u32,
}

#[pymethods]
impl RateLimitInfo {
    fn __repr__(&self) -> String {
        format!(
            "RateLimitInfo(remaining={}, reset_at={}, limit={})",
            self.remaining.map_or("None".into(), |v| v.to_string()),
            self.reset_at.map_or("None".into(), |v| v.to_string()),
            self.limit
        )
    }
}

/// What both clients share: the core client and the Python hooks.
struct Shared {
    core: Arc<Client>,
    rate_budget: Option<Py<PyAny>>,
    token_provider: Option<Py<PyAny>>,
}

impl Shared {
    #[allow(clippy::too_many_arguments)]
    fn new(
        base_url: &str,
        api_key: Option<String>,
        access_token: Option<String>,
        timeout: &PyNumber,
        requests_per_minute: &PyNumber,
        max_retries: &PyNumber,
        rate_window: &PyNumber,
        max_wait: &PyNumber,
        rate_budget: Option<Py<PyAny>>,
        token_provider: Option<Py<PyAny>>,
        backoff_base: &PyNumber,
        ca_bundle: Option<&str>,
    ) -> Result<Self, CoreError> {
        let api_key = api_key.filter(|k| !k.is_empty());
        let access_token = access_token.filter(|k| !k.is_empty());
        let credential = match (api_key, access_token, token_provider.is_some()) {
            (Some(k), None, false) => Credential::ApiKey(Secret::new(k)),
            (None, Some(t), false) => Credential::Bearer(Secret::new(t)),
            (None, None, true) => Credential::TokenProvider,
            (None, None, false) => Credential::Anonymous,
            _ => {
                return Err(CoreError::Config(
                    "give exactly one of api_key, access_token or token_provider".into(),
                ))
            }
        };
        let config = ClientConfig {
            base_url: base_url.to_string(),
            timeout: timeout.seconds("timeout")?,
            requests_per_minute: requests_per_minute
                .count("requests_per_minute", REQUESTS_PER_MINUTE_RANGE)?,
            rate_window: rate_window.seconds("rate_window")?,
            retry: RetryPolicy {
                max_retries: max_retries.count("max_retries", MAX_RETRIES_RANGE)?,
                max_wait: max_wait.seconds("max_wait")?,
                backoff_base: backoff_base.seconds("backoff_base")?,
            },
            ca_bundle: ca_bundle.map(CaBundle::from_pem_file).transpose()?,
        };
        Ok(Shared {
            core: Arc::new(Client::new(config, credential)?),
            rate_budget,
            token_provider,
        })
    }

    fn hooks(&self, py: Python<'_>) -> PyHooks {
        PyHooks::new(
            self.rate_budget.as_ref().map(|b| b.clone_ref(py)),
            self.token_provider.as_ref().map(|t| t.clone_ref(py)),
        )
    }

    fn repr(&self, class: &str) -> String {
        let auth = match self.core.credential() {
            Credential::ApiKey(_) => "api_key=***",
            Credential::Bearer(_) => "access_token=***",
            Credential::TokenProvider => "token_provider=<callable>",
            Credential::Anonymous => "auth=None",
        };
        format!("{class}(base_url={:?}, {auth})", self.core.base_url())
    }

    fn rate_limit(&self) -> RateLimitInfo {
        let info = self.core.rate_info();
        RateLimitInfo {
            remaining: info.remaining,
            reset_at: info.reset_at,
            limit: self.core.config().requests_per_minute,
        }
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        use std::sync::atomic::Ordering::Relaxed;
        let s = &self.core.stats;
        let d = PyDict::new(py);
        d.set_item("requests", s.requests.load(Relaxed))?;
        d.set_item("retries", s.retries.load(Relaxed))?;
        d.set_item("throttle_waits", s.throttle_waits.load(Relaxed))?;
        d.set_item("throttle_wait_seconds", s.throttle_wait_seconds())?;
        d.set_item("rate_limited", s.rate_limited.load(Relaxed))?;
        d.set_item("transport_errors", s.transport_errors.load(Relaxed))?;
        Ok(d)
    }

    fn request(
        method: &str,
        path: &str,
        params: Option<&Bound<'_, PyAny>>,
        json: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Request> {
        let mut req = Request::new(method, path);
        req.query = params_to_pairs("params", params)?;
        if let Some(j) = json.filter(|j| !j.is_none()) {
            req.body = Body::Json(py_to_json(j, 0)?);
        }
        Ok(req)
    }

    #[allow(clippy::too_many_arguments)]
    fn oauth(
        method: &str,
        path: &str,
        form: Option<&Bound<'_, PyAny>>,
        json: Option<&Bound<'_, PyAny>>,
        basic_auth: Option<(String, String)>,
        bearer: Option<String>,
        params: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Request> {
        let mut req = Shared::request(method, path, params, json)?;
        req.raw_root = true;
        if let Some(pairs) = form_to_pairs(form)? {
            if matches!(req.body, Body::Json(_)) {
                return Err(PyValueError::new_err("give form= or json=, not both"));
            }
            req.body = Body::Form(pairs);
        }
        req.auth = match (basic_auth, bearer) {
            (Some(_), Some(_)) => {
                return Err(PyValueError::new_err(
                    "give basic_auth= or bearer=, not both",
                ))
            }
            (Some((u, p)), None) => AuthOverride::Basic(Secret::new(u), Secret::new(p)),
            (None, Some(t)) => AuthOverride::Bearer(Secret::new(t)),
            // The API key never goes to the OAuth endpoints.
            (None, None) => AuthOverride::None,
        };
        Ok(req)
    }

    fn pager(
        &self,
        py: Python<'_>,
        path: &str,
        params: Option<&Bound<'_, PyAny>>,
        per_page: &PyNumber,
        cursor: Option<String>,
    ) -> PyResult<CursorPager> {
        let per_page = per_page
            .count("per_page", (1, MAX_PER_PAGE))
            .map_err(|e| to_pyerr(py, e, None))?;
        let query = params_to_pairs("params", params)?;
        if query.iter().any(|(k, _)| k == "cursor" || k == "per_page") {
            return Err(to_pyerr(
                py,
                CoreError::Config(
                    "pass per_page= and cursor= as arguments of paginate(), not in params".into(),
                ),
                None,
            ));
        }
        let state = PagerState::new(per_page, cursor).map_err(|e| to_pyerr(py, e, None))?;
        Ok(CursorPager {
            core: self.core.clone(),
            rate_budget: self.rate_budget.as_ref().map(|b| b.clone_ref(py)),
            token_provider: self.token_provider.as_ref().map(|t| t.clone_ref(py)),
            walk: Arc::new(Mutex::new(PageWalk::new(path, query, state))),
        })
    }
}

/// Synchronous Plane REST client (see the package docs for the throttle and retry rules).
#[pyclass(frozen, module = "plane_connector._core")]
struct PlaneClient {
    shared: Shared,
}

/// asyncio twin of `PlaneClient`: same arguments, awaitable methods.
#[pyclass(frozen, module = "plane_connector._core")]
struct AsyncPlaneClient {
    shared: Shared,
}

/// The Python methods both clients share. Each class supplies `run(py, Op)`: the sync client runs
/// the operation with the GIL released, the async one wraps it in an asyncio awaitable.
macro_rules! client_class {
    ($ty:ident, $name:literal) => {
        #[pymethods]
        impl $ty {
            #[new]
            #[pyo3(signature = (
                    base_url = "https://api.plane.so", *, api_key = None, access_token = None,
                    timeout = PyNumber::Float(30.0), requests_per_minute = PyNumber::Int(60),
                    max_retries = PyNumber::Int(3), rate_window = PyNumber::Float(60.0),
                    max_wait = PyNumber::Float(120.0), rate_budget = None, token_provider = None,
                    backoff_base = PyNumber::Float(0.5), ca_bundle = None
                ),
                text_signature = "(base_url=\"https://api.plane.so\", *, api_key=None, \
                    access_token=None, timeout=30.0, requests_per_minute=60, max_retries=3, \
                    rate_window=60.0, max_wait=120.0, rate_budget=None, token_provider=None, \
                    backoff_base=0.5, ca_bundle=None)"
            )]
            #[allow(clippy::too_many_arguments)]
            fn new(
                py: Python<'_>,
                base_url: &str,
                api_key: Option<String>,
                access_token: Option<String>,
                timeout: PyNumber,
                requests_per_minute: PyNumber,
                max_retries: PyNumber,
                rate_window: PyNumber,
                max_wait: PyNumber,
                rate_budget: Option<Py<PyAny>>,
                token_provider: Option<Py<PyAny>>,
                backoff_base: PyNumber,
                ca_bundle: Option<std::path::PathBuf>,
            ) -> PyResult<Self> {
                let rate_budget = rate_budget.filter(|b| !b.is_none(py));
                let token_provider = token_provider.filter(|t| !t.is_none(py));
                if let Some(b) = &rate_budget {
                    if !b.bind(py).hasattr("reserve")? {
                        return Err(to_pyerr(
                            py,
                            CoreError::Config(
                                "rate_budget must have a reserve(key_id, limit, window) method"
                                    .into(),
                            ),
                            None,
                        ));
                    }
                }
                if let Some(t) = &token_provider {
                    if !t.bind(py).is_callable() {
                        return Err(to_pyerr(
                            py,
                            CoreError::Config("token_provider must be callable".into()),
                            None,
                        ));
                    }
                }
                Shared::new(
                    base_url,
                    api_key,
                    access_token,
                    &timeout,
                    &requests_per_minute,
                    &max_retries,
                    &rate_window,
                    &max_wait,
                    rate_budget,
                    token_provider,
                    &backoff_base,
                    ca_bundle.as_deref().map(|p| p.to_string_lossy()).as_deref(),
                )
                .map(|shared| Self { shared })
                .map_err(|e| to_pyerr(py, e, None))
            }

            fn __repr__(&self) -> String {
                self.shared.repr($name)
            }

            /// The normalised base URL (scheme, host, port, sub-path; no `/api/v1`).
            #[getter]
            fn base_url(&self) -> String {
                self.shared.core.base_url().to_string()
            }

            /// The latest `X-RateLimit-Remaining` / `X-RateLimit-Reset` seen.
            #[getter]
            fn rate_limit(&self) -> RateLimitInfo {
                self.shared.rate_limit()
            }

            /// Counters: requests, retries, throttle_waits, throttle_wait_seconds, rate_limited,
            /// transport_errors.
            #[getter]
            fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
                self.shared.stats(py)
            }

            /// sha256 hex of the credential: the key of the rate budget (never the key itself).
            #[getter]
            fn key_id(&self) -> String {
                self.shared.core.key_id().to_string()
            }

            /// A lazy iterator over the items of every page, following `next_cursor`.
            #[pyo3(
                signature = (path, *, params = None, per_page = PyNumber::Int(100), cursor = None),
                text_signature = "($self, path, *, params=None, per_page=100, cursor=None)"
            )]
            fn paginate(
                &self,
                py: Python<'_>,
                path: &str,
                params: Option<&Bound<'_, PyAny>>,
                per_page: PyNumber,
                cursor: Option<String>,
            ) -> PyResult<CursorPager> {
                self.shared.pager(py, path, params, &per_page, cursor)
            }

            /// Sends one request; `path` is relative to `/api/v1/`. Decoded JSON, or None for 204.
            #[pyo3(signature = (method, path, *, params = None, json = None))]
            fn request<'py>(
                &self,
                py: Python<'py>,
                method: &str,
                path: &str,
                params: Option<&Bound<'_, PyAny>>,
                json: Option<&Bound<'_, PyAny>>,
            ) -> PyResult<Bound<'py, PyAny>> {
                self.run(py, Op::Send(Shared::request(method, path, params, json)?))
            }

            #[pyo3(signature = (path, *, params = None))]
            fn get<'py>(
                &self,
                py: Python<'py>,
                path: &str,
                params: Option<&Bound<'_, PyAny>>,
            ) -> PyResult<Bound<'py, PyAny>> {
                self.request(py, "GET", path, params, None)
            }

            #[pyo3(signature = (path, *, json = None, params = None))]
            fn post<'py>(
                &self,
                py: Python<'py>,
                path: &str,
                json: Option<&Bound<'_, PyAny>>,
                params: Option<&Bound<'_, PyAny>>,
            ) -> PyResult<Bound<'py, PyAny>> {
                self.request(py, "POST", path, params, json)
            }

            #[pyo3(signature = (path, *, json = None, params = None))]
            fn patch<'py>(
                &self,
                py: Python<'py>,
                path: &str,
                json: Option<&Bound<'_, PyAny>>,
                params: Option<&Bound<'_, PyAny>>,
            ) -> PyResult<Bound<'py, PyAny>> {
                self.request(py, "PATCH", path, params, json)
            }

            #[pyo3(signature = (path, *, params = None))]
            fn delete<'py>(
                &self,
                py: Python<'py>,
                path: &str,
                params: Option<&Bound<'_, PyAny>>,
            ) -> PyResult<Bound<'py, PyAny>> {
                self.request(py, "DELETE", path, params, None)
            }

            /// GET `users/me/`: the user (or bot) the credential belongs to.
            fn me<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                self.run(py, Op::Send(Request::new("GET", "users/me/")))
            }

            /// POST carrying external_id + external_source; a 409 returns the existing object.
            fn create_idempotent<'py>(
                &self,
                py: Python<'py>,
                path: &str,
                json: &Bound<'_, PyAny>,
            ) -> PyResult<Bound<'py, PyAny>> {
                self.run(py, Op::Create(path.to_string(), py_to_json(json, 0)?))
            }

            /// A request to a path under the base URL root (not `/api/v1/`), e.g. `/auth/o/token/`.
            #[pyo3(signature = (
                    method, path, *, form = None, json = None, basic_auth = None, bearer = None,
                    params = None
                ))]
            #[allow(clippy::too_many_arguments)]
            fn oauth_request<'py>(
                &self,
                py: Python<'py>,
                method: &str,
                path: &str,
                form: Option<&Bound<'_, PyAny>>,
                json: Option<&Bound<'_, PyAny>>,
                basic_auth: Option<(String, String)>,
                bearer: Option<String>,
                params: Option<&Bound<'_, PyAny>>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let req = Shared::oauth(method, path, form, json, basic_auth, bearer, params)?;
                self.run(py, Op::Send(req))
            }
        }
    };
}

client_class!(PlaneClient, "PlaneClient");

impl PlaneClient {
    /// Runs `op` to completion with the GIL released.
    fn run<'py>(&self, py: Python<'py>, op: Op) -> PyResult<Bound<'py, PyAny>> {
        let hooks = self.shared.hooks(py);
        let core = self.shared.core.clone();
        let value = run_sync(py, &hooks, op.execute(&core, &hooks))?;
        JsonOut(value).into_pyobject(py)
    }
}

client_class!(AsyncPlaneClient, "AsyncPlaneClient");

impl AsyncPlaneClient {
    /// Wraps `op` in an asyncio awaitable.
    fn run<'py>(&self, py: Python<'py>, op: Op) -> PyResult<Bound<'py, PyAny>> {
        let core = self.shared.core.clone();
        run_async(py, self.shared.hooks(py), move |hooks| async move {
            op.execute(&core, hooks.as_ref()).await
        })
    }
}

/// One call of a client method, run by the sync or the async client.
enum Op {
    Send(Request),
    Create(String, Value),
}

impl Op {
    async fn execute<H: Hooks>(self, core: &Client, hooks: &H) -> Result<Option<Value>, CoreError> {
        match self {
            Op::Send(req) => core.send(hooks, &req).await,
            Op::Create(path, body) => core.create_idempotent(hooks, &path, body).await.map(Some),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Cursor pager

/// Lazy iterator over the items of every page (`for` and `async for`).
///
/// `cursor` is the cursor of the page being read: save it, and `paginate(..., cursor=saved)`
/// resumes from the start of that page after a crash (items of that page come again; dedupe by id).
#[pyclass(module = "plane_connector._core")]
struct CursorPager {
    core: Arc<Client>,
    rate_budget: Option<Py<PyAny>>,
    token_provider: Option<Py<PyAny>>,
    walk: Arc<Mutex<PageWalk>>,
}

impl CursorPager {
    fn hooks(&self, py: Python<'_>) -> PyHooks {
        PyHooks::new(
            self.rate_budget.as_ref().map(|b| b.clone_ref(py)),
            self.token_provider.as_ref().map(|t| t.clone_ref(py)),
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PageWalk> {
        self.walk.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[pymethods]
impl CursorPager {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let hooks = self.hooks(py);
        let core = self.core.clone();
        let walk = self.walk.clone();
        let item = run_sync(py, &hooks, async { next_item(&core, &hooks, &walk).await })?;
        item.map(|v| json_to_py(py, &v).map(Bound::unbind))
            .transpose()
    }

    fn __aiter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let hooks = Arc::new(self.hooks(py));
        let core = self.core.clone();
        let walk = self.walk.clone();
        pyo3_async_runtimes::generic::future_into_py::<ForkSafeRuntime, _, _>(py, async move {
            match next_item(&core, hooks.as_ref(), &walk).await {
                Ok(Some(v)) => Ok(JsonOut(Some(v))),
                Ok(None) => Err(PyStopAsyncIteration::new_err(())),
                Err(e) => Err(Python::attach(|py| hooks.convert(py, e))),
            }
        })
    }

    /// Cursor of the page being read (None: the first page, requested without a cursor).
    #[getter]
    fn cursor(&self) -> Option<String> {
        self.lock().state().cursor().map(str::to_string)
    }

    /// Cursor of the page after the current one, once the current page is in (None at the end).
    #[getter]
    fn next_cursor(&self) -> Option<String> {
        self.lock().state().next_cursor().map(str::to_string)
    }

    #[getter]
    fn per_page(&self) -> u32 {
        self.lock().state().per_page()
    }

    /// Pages fetched so far.
    #[getter]
    fn pages(&self) -> u64 {
        self.lock().state().pages()
    }

    /// `total_count` of the latest page, if the endpoint sends one.
    #[getter]
    fn total(&self) -> Option<u64> {
        self.lock().total()
    }

    fn __repr__(&self) -> String {
        let g = self.lock();
        format!(
            "CursorPager(path={:?}, per_page={}, cursor={:?}, pages={})",
            g.path(),
            g.state().per_page(),
            g.state().cursor(),
            g.state().pages()
        )
    }
}
// ---------------------------------------------------------------------------------------------

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // Rust `log` records go to Python's `logging` under `plane_connector.*`. Levels are not
    // cached so `logging.getLogger("plane_connector").setLevel(...)` works at any time.
    // Other crates (reqwest, hyper, rustls) only at WARNING: their debug lines carry full URLs
    // and each record costs a GIL round-trip.
    let _ = pyo3_log::Logger::new(m.py(), pyo3_log::Caching::Loggers)?
        .filter(log::LevelFilter::Warn)
        .filter_target("plane_connector".to_string(), log::LevelFilter::Debug)
        .install();
    m.add_function(wrap_pyfunction!(build_url, m)?)?;
    m.add_function(wrap_pyfunction!(verify_signature, m)?)?;
    m.add_function(wrap_pyfunction!(sign_body, m)?)?;
    m.add_class::<PlaneClient>()?;
    m.add_class::<AsyncPlaneClient>()?;
    m.add_class::<CursorPager>()?;
    m.add_class::<RateLimitInfo>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    let drain = wrap_pyfunction!(run::drain_python_callbacks, m)?;
    m.py()
        .import("atexit")?
        .call_method1("register", (drain,))?;
    Ok(())
}
