//! The only module that knows about Python: argument adaptation, the GIL, asyncio, exceptions.
//!
//! Sync calls run the core's futures with `block_on` inside `py.detach` (the GIL is released while
//! the call waits on the network or the throttle), on the calling thread (the per-process
//! current-thread runtime of runtime.rs), and check for signals every 100 ms so Ctrl-C and worker
//! shutdown interrupt a wait. Async calls run the same futures on the per-process multi-thread
//! runtime, bridged to asyncio by pyo3-async-runtimes' generic API, so the async client is
//! fork-safe too.

use std::cell::OnceCell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::exceptions::{PyStopAsyncIteration, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use pyo3::Borrowed;
use pyo3_async_runtimes::generic::{ContextExt, Runtime as AsyncRuntime};
use pyo3_async_runtimes::TaskLocals;
use serde_json::{Map, Number, Value};

use crate::client::{
    check_count, AuthOverride, Body, Client, ClientConfig, Credential, Hooks, Request, Secret,
    MAX_RETRIES_RANGE, REQUESTS_PER_MINUTE_RANGE,
};
use crate::errors::CoreError;
use crate::pager::{PagerState, MAX_PER_PAGE};
use crate::retry::RetryPolicy;
use crate::runtime;
use crate::tls::CaBundle;

// ---------------------------------------------------------------------------------------------
// Exceptions

/// Converts a core error into the matching `plane_connector` exception.
fn to_pyerr(py: Python<'_>, err: CoreError, pending: Option<PyErr>) -> PyErr {
    if let (CoreError::External(_), Some(original)) = (&err, pending) {
        return original;
    }
    match build_exception(py, &err) {
        Ok(e) => e,
        // The exceptions module failed to import: still raise something readable.
        Err(import_err) => import_err,
    }
}

fn build_exception(py: Python<'_>, err: &CoreError) -> PyResult<PyErr> {
    let module = py.import("plane_connector._errors")?;
    let text = err.to_string();
    let class_name = match err {
        CoreError::Config(_) => "ConfigError",
        CoreError::Transport { timeout: true, .. } => "TimeoutError",
        CoreError::Transport { .. } => "TransportError",
        CoreError::Pagination(_) => "PaginationError",
        CoreError::External(_) => "PlaneError",
        CoreError::Http { status, .. } => match status {
            401 | 403 => "AuthError",
            404 => "NotFoundError",
            409 => "ConflictError",
            429 => "RateLimitError",
            _ => "HTTPError",
        },
    };
    let class = module.getattr(class_name)?;
    let instance = match err {
        CoreError::Http {
            status,
            message,
            body,
            retry_after,
            existing_id,
            ..
        } => {
            let kwargs = PyDict::new(py);
            kwargs.set_item("status", *status)?;
            kwargs.set_item("body", body)?;
            kwargs.set_item("message", message)?;
            kwargs.set_item("retry_after", *retry_after)?;
            kwargs.set_item("existing_id", existing_id.as_deref())?;
            class.call((text,), Some(&kwargs))?
        }
        _ => class.call1((text,))?,
    };
    Ok(PyErr::from_value(instance))
}

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

/// Runs a Python hook that may block: a database round trip for the shared budget, or a token
/// refresh that itself sends an HTTP request through this same runtime. On a runtime worker
/// thread (the async client) that would starve the runtime's two workers and deadlock when
/// several requests wait on one refresh, so tokio is told to move its other tasks elsewhere.
fn blocking_hook<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

// ---------------------------------------------------------------------------------------------
// Running futures: sync (GIL released, interruptible) and async (asyncio bridge)

/// Runs `fut` to completion on this process's runtime with the GIL released.
fn run_sync<T, F>(py: Python<'_>, hooks: &PyHooks, fut: F) -> PyResult<T>
where
    T: Send,
    F: Future<Output = Result<T, CoreError>> + Send,
{
    let result = py.detach(|| {
        let interruptible = async {
            tokio::pin!(fut);
            // The first check after 100 ms: quick calls never touch the GIL again.
            let period = Duration::from_millis(100);
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    out = &mut fut => return out,
                    _ = tick.tick() => {
                        if let Err(e) = Python::attach(|py| py.check_signals()) {
                            return Err(hooks.keep(e, "a signal handler"));
                        }
                    }
                }
            }
        };
        let state = runtime::current();
        if tokio::runtime::Handle::try_current().is_ok() {
            // Called from inside a runtime (a token provider or rate budget calling a sync
            // client): block_on would panic here, and the current-thread runtime is held by the
            // very call that is waiting on this hook. So block on a helper thread, on the
            // multi-thread runtime.
            std::thread::scope(|s| {
                s.spawn(|| state.runtime().block_on(interruptible))
                    .join()
                    .unwrap_or_else(|_| Err(CoreError::External("worker thread panicked".into())))
            })
        } else {
            state.sync_runtime().block_on(async {
                settle_idle_connections().await;
                interruptible.await
            })
        }
    });
    result.map_err(|e| hooks.convert(py, e))
}

/// Lets the current-thread runtime notice what happened to its pooled connections while no
/// thread was driving it (a server closing an idle keep-alive connection, say) before this call
/// checks one out. The first yield makes the scheduler poll the I/O driver, which wakes the
/// connection tasks that have news; the second lets those tasks run and drop a dead connection
/// from the pool. Without this a request could be written to a socket the server already closed,
/// and a POST that fails that way cannot be retried.
async fn settle_idle_connections() {
    tokio::task::yield_now().await;
    tokio::task::yield_now().await;
}

/// pyo3-async-runtimes' tokio runtime is a process-global built once; after a fork it is dead.
/// This runtime spawns on the per-process runtime of runtime.rs instead.
struct ForkSafeRuntime;

tokio::task_local! {
    static TASK_LOCALS: OnceCell<TaskLocals>;
}

impl AsyncRuntime for ForkSafeRuntime {
    type JoinError = tokio::task::JoinError;
    type JoinHandle = tokio::task::JoinHandle<()>;

    fn spawn<F>(fut: F) -> Self::JoinHandle
    where
        F: Future<Output = ()> + Send + 'static,
    {
        runtime::current().runtime().spawn(fut)
    }

    /// pyo3-async-runtimes hands an awaitable its result here, on a runtime thread holding the
    /// GIL. Those callbacks are counted so that interpreter exit waits for them (see
    /// `drain_python_callbacks`).
    fn spawn_blocking<F>(f: F) -> Self::JoinHandle
    where
        F: FnOnce() + Send + 'static,
    {
        let guard = CallbackGuard::enter();
        runtime::current().runtime().spawn_blocking(move || {
            let _guard = guard;
            // After exit began nobody awaits the result, and attaching to a finalizing
            // interpreter crashes it; dropping `f` only queues its references for release.
            if !EXITING.load(Ordering::Acquire) {
                f();
            }
        })
    }
}

/// Callbacks into Python queued or running on runtime threads.
static PY_CALLBACKS: AtomicUsize = AtomicUsize::new(0);
/// Set by the `atexit` hook: no callback runs after it.
static EXITING: AtomicBool = AtomicBool::new(false);

struct CallbackGuard;

impl CallbackGuard {
    fn enter() -> Self {
        PY_CALLBACKS.fetch_add(1, Ordering::AcqRel);
        CallbackGuard
    }
}

impl Drop for CallbackGuard {
    fn drop(&mut self) {
        PY_CALLBACKS.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Registered with `atexit`: waits (at most 2 s) for the callbacks in flight.
///
/// An awaitable's result is set from a runtime thread; setting it wakes the event loop through
/// a socket write that releases the GIL. The main thread can then finish `asyncio.run` and start
/// finalizing while that runtime thread still has to take the GIL back to return, and a thread
/// taking the GIL of a finalizing interpreter aborts or segfaults the process (seen in about 3
/// exits in 100 after an async call). `atexit` hooks run before finalization starts.
#[pyfunction]
fn drain_python_callbacks(py: Python<'_>) {
    EXITING.store(true, Ordering::Release);
    py.detach(|| {
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while PY_CALLBACKS.load(Ordering::Acquire) > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
}

impl ContextExt for ForkSafeRuntime {
    fn scope<F, R>(locals: TaskLocals, fut: F) -> Pin<Box<dyn Future<Output = R> + Send>>
    where
        F: Future<Output = R> + Send + 'static,
    {
        let cell = OnceCell::new();
        let _ = cell.set(locals);
        Box::pin(TASK_LOCALS.scope(cell, fut))
    }

    fn get_task_locals() -> Option<TaskLocals> {
        TASK_LOCALS
            .try_with(|c| c.get().cloned())
            .unwrap_or_default()
    }
}

/// A decoded JSON answer on its way to Python.
struct JsonOut(Option<Value>);

impl<'py> IntoPyObject<'py> for JsonOut {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> Result<Self::Output, Self::Error> {
        match self.0 {
            Some(v) => json_to_py(py, &v),
            None => Ok(py.None().into_bound(py)),
        }
    }
}

/// Runs `make(hooks)` as an asyncio awaitable.
fn run_async<'py, F, Fut>(py: Python<'py>, hooks: PyHooks, make: F) -> PyResult<Bound<'py, PyAny>>
where
    F: FnOnce(Arc<PyHooks>) -> Fut,
    Fut: Future<Output = Result<Option<Value>, CoreError>> + Send + 'static,
{
    let hooks = Arc::new(hooks);
    let fut = make(hooks.clone());
    pyo3_async_runtimes::generic::future_into_py::<ForkSafeRuntime, _, _>(py, async move {
        match fut.await {
            Ok(v) => Ok(JsonOut(v)),
            Err(e) => Err(Python::attach(|py| hooks.convert(py, e))),
        }
    })
}

// ---------------------------------------------------------------------------------------------
// JSON <-> Python

fn json_to_py<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(json_to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map {
                dict.set_item(k, json_to_py(py, v)?)?;
            }
            dict.into_any()
        }
    })
}

fn py_to_json(obj: &Bound<'_, PyAny>, depth: usize) -> PyResult<Value> {
    if depth > 64 {
        return Err(PyValueError::new_err("json= is nested too deeply"));
    }
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(Value::from(i));
        }
        if let Ok(u) = obj.extract::<u64>() {
            return Ok(Value::from(u));
        }
        return Err(PyValueError::new_err("integer too large for JSON"));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Number::from_f64(f.value())
            .map(Value::Number)
            .ok_or_else(|| PyValueError::new_err("NaN and infinity are not valid JSON"));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::String(s.to_str()?.to_string()));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut map = Map::new();
        for (k, v) in d.iter() {
            let key = k
                .cast::<PyString>()
                .map_err(|_| PyTypeError::new_err("json= dict keys must be str"))?
                .to_str()?
                .to_string();
            map.insert(key, py_to_json(&v, depth + 1)?);
        }
        return Ok(Value::Object(map));
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        let mut items = Vec::new();
        for item in obj.try_iter()? {
            items.push(py_to_json(&item?, depth + 1)?);
        }
        return Ok(Value::Array(items));
    }
    Err(PyTypeError::new_err(format!(
        "json= values must be dict, list, str, int, float, bool or None, not {}",
        obj.get_type().name()?
    )))
}

/// `params=` dict to query pairs: None is skipped, bools are `true`/`false`, lists are
/// comma-joined (Plane's `fields=` and `expand=` take comma lists).
fn params_to_pairs(
    arg: &str,
    params: Option<&Bound<'_, PyAny>>,
) -> PyResult<Vec<(String, String)>> {
    let Some(params) = params.filter(|p| !p.is_none()) else {
        return Ok(Vec::new());
    };
    let dict = params
        .cast::<PyDict>()
        .map_err(|_| PyTypeError::new_err(format!("{arg}= must be a dict")))?;
    let mut out = Vec::new();
    for (k, v) in dict.iter() {
        let key: String = k
            .extract()
            .map_err(|_| PyTypeError::new_err(format!("{arg}= keys must be str")))?;
        if v.is_none() {
            continue;
        }
        let value = if v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>() {
            let mut parts = Vec::new();
            for item in v.try_iter()? {
                parts.push(param_scalar(arg, &key, &item?)?);
            }
            parts.join(",")
        } else {
            param_scalar(arg, &key, &v)?
        };
        out.push((key, value));
    }
    Ok(out)
}

fn param_scalar(arg: &str, key: &str, v: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(b) = v.cast::<PyBool>() {
        return Ok(if b.is_true() { "true" } else { "false" }.to_string());
    }
    if v.is_instance_of::<PyString>()
        || v.is_instance_of::<PyInt>()
        || v.is_instance_of::<PyFloat>()
    {
        return Ok(v.str()?.to_str()?.to_string());
    }
    Err(PyTypeError::new_err(format!(
        "{arg}[{key:?}] must be str, int, float, bool, None or a list of those"
    )))
}

fn form_to_pairs(form: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Vec<(String, String)>>> {
    match form.filter(|f| !f.is_none()) {
        None => Ok(None),
        Some(f) => params_to_pairs("form", Some(f)).map(Some),
    }
}

/// A numeric argument as Python gave it. It is checked, with its name, where it is used, so a
/// wrong type, NaN, an infinity or an int too big for any setting is a `ConfigError` (never a
/// `TypeError`, `OverflowError` or a Rust panic from a `Duration` that cannot hold it).
#[derive(Debug, Clone)]
enum PyNumber {
    Float(f64),
    Int(i128),
    /// An int beyond i128: too big for every setting.
    HugeInt,
    /// Not a number: the type's name.
    Other(String),
}

impl<'a, 'py> FromPyObject<'a, 'py> for PyNumber {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if obj.is_instance_of::<PyBool>() {
            // True is an int to Python, but `timeout=True` is a mistake, not one second.
            return Ok(PyNumber::Other("bool".into()));
        }
        if obj.is_instance_of::<PyInt>() {
            return Ok(obj
                .extract::<i128>()
                .map_or(PyNumber::HugeInt, PyNumber::Int));
        }
        if let Ok(f) = obj.extract::<f64>() {
            return Ok(PyNumber::Float(f));
        }
        let type_name = obj
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "?".into());
        Ok(PyNumber::Other(type_name))
    }
}

impl PyNumber {
    /// Seconds: an int or a float; the range is checked by `ClientConfig::validate`.
    fn seconds(&self, name: &str) -> Result<f64, CoreError> {
        match self {
            PyNumber::Float(f) => Ok(*f),
            PyNumber::Int(i) => Ok(*i as f64),
            PyNumber::HugeInt => Ok(f64::INFINITY),
            PyNumber::Other(t) => Err(CoreError::Config(format!(
                "{name} must be a number of seconds, not {t}"
            ))),
        }
    }

    /// A whole number within `range`.
    fn count(&self, name: &str, range: (u32, u32)) -> Result<u32, CoreError> {
        match self {
            PyNumber::Int(i) => check_count(name, *i, range),
            PyNumber::HugeInt => Err(CoreError::Config(format!(
                "{name} must be a whole number from {} to {}, got a far bigger one",
                range.0, range.1
            ))),
            PyNumber::Float(_) => Err(CoreError::Config(format!(
                "{name} must be a whole number from {} to {}, not a float",
                range.0, range.1
            ))),
            PyNumber::Other(t) => Err(CoreError::Config(format!(
                "{name} must be a whole number from {} to {}, not {t}",
                range.0, range.1
            ))),
        }
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
            inner: Arc::new(Mutex::new(PagerInner {
                path: path.to_string(),
                query,
                state,
                buffer: VecDeque::new(),
                fetched: false,
                total: None,
            })),
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

struct PagerInner {
    path: String,
    query: Vec<(String, String)>,
    state: PagerState,
    buffer: VecDeque<Value>,
    /// Whether the page of `state.cursor()` is in `buffer` already.
    fetched: bool,
    total: Option<u64>,
}

/// Lazy iterator over the items of every page (`for` and `async for`).
///
/// `cursor` is the cursor of the page being read: save it, and `paginate(..., cursor=saved)`
/// resumes from the start of that page after a crash (items of that page come again; dedupe by id).
#[pyclass(module = "plane_connector._core")]
struct CursorPager {
    core: Arc<Client>,
    rate_budget: Option<Py<PyAny>>,
    token_provider: Option<Py<PyAny>>,
    inner: Arc<Mutex<PagerInner>>,
}

enum Step {
    Item(Value),
    Done,
    Fetch(Request),
}

impl PagerInner {
    /// What to do next, without awaiting (the lock is never held across a request).
    fn step(&mut self) -> Step {
        if let Some(item) = self.buffer.pop_front() {
            return Step::Item(item);
        }
        if self.fetched {
            if !self.state.advance() {
                return Step::Done;
            }
            self.fetched = false;
        }
        if self.state.is_done() {
            return Step::Done;
        }
        let mut req = Request::new("GET", &self.path);
        req.query = self.query.clone();
        req.query.extend(self.state.query());
        Step::Fetch(req)
    }
}

/// Next item of the walk, fetching pages as needed.
async fn pager_next<H: Hooks>(
    core: &Client,
    hooks: &H,
    inner: &Mutex<PagerInner>,
) -> Result<Option<Value>, CoreError> {
    loop {
        let step = inner.lock().unwrap_or_else(|e| e.into_inner()).step();
        let req = match step {
            Step::Item(v) => return Ok(Some(v)),
            Step::Done => return Ok(None),
            Step::Fetch(req) => req,
        };
        let body = match core.send(hooks, &req).await {
            Ok(body) => body.unwrap_or(Value::Null),
            Err(CoreError::Http {
                status: 400,
                message,
                ..
            }) if req.query.iter().any(|(k, _)| k == "cursor") => {
                let g = inner.lock().unwrap_or_else(|e| e.into_inner());
                return Err(CoreError::Pagination(format!(
                    "Plane rejected cursor {:?} (per_page={}): {message}",
                    g.state.cursor().unwrap_or_default(),
                    g.state.per_page()
                )));
            }
            Err(e) => return Err(e),
        };
        let mut g = inner.lock().unwrap_or_else(|e| e.into_inner());
        let page = g.state.on_page(body)?;
        if page.total.is_some() {
            g.total = page.total;
        }
        g.buffer.extend(page.items);
        g.fetched = true;
    }
}

impl CursorPager {
    fn hooks(&self, py: Python<'_>) -> PyHooks {
        PyHooks::new(
            self.rate_budget.as_ref().map(|b| b.clone_ref(py)),
            self.token_provider.as_ref().map(|t| t.clone_ref(py)),
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PagerInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
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
        let inner = self.inner.clone();
        let item = run_sync(py, &hooks, async {
            pager_next(&core, &hooks, &inner).await
        })?;
        item.map(|v| json_to_py(py, &v).map(Bound::unbind))
            .transpose()
    }

    fn __aiter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let hooks = Arc::new(self.hooks(py));
        let core = self.core.clone();
        let inner = self.inner.clone();
        pyo3_async_runtimes::generic::future_into_py::<ForkSafeRuntime, _, _>(py, async move {
            match pager_next(&core, hooks.as_ref(), &inner).await {
                Ok(Some(v)) => Ok(JsonOut(Some(v))),
                Ok(None) => Err(PyStopAsyncIteration::new_err(())),
                Err(e) => Err(Python::attach(|py| hooks.convert(py, e))),
            }
        })
    }

    /// Cursor of the page being read (None: the first page, requested without a cursor).
    #[getter]
    fn cursor(&self) -> Option<String> {
        self.lock().state.cursor().map(str::to_string)
    }

    /// Cursor of the page after the current one, once the current page is in (None at the end).
    #[getter]
    fn next_cursor(&self) -> Option<String> {
        self.lock().state.next_cursor().map(str::to_string)
    }

    #[getter]
    fn per_page(&self) -> u32 {
        self.lock().state.per_page()
    }

    /// Pages fetched so far.
    #[getter]
    fn pages(&self) -> u64 {
        self.lock().state.pages()
    }

    /// `total_count` of the latest page, if the endpoint sends one.
    #[getter]
    fn total(&self) -> Option<u64> {
        self.lock().total
    }

    fn __repr__(&self) -> String {
        let g = self.lock();
        format!(
            "CursorPager(path={:?}, per_page={}, cursor={:?}, pages={})",
            g.path,
            g.state.per_page(),
            g.state.cursor(),
            g.state.pages()
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
    let drain = wrap_pyfunction!(drain_python_callbacks, m)?;
    m.py()
        .import("atexit")?
        .call_method1("register", (drain,))?;
    Ok(())
}
