//! How a Python call runs a core future: sync calls block the calling thread with the GIL
//! released and stay interruptible; async calls become asyncio awaitables spawned on the
//! per-process runtime (`crate::runtime`), so both survive a fork. Also the `atexit` drain that
//! keeps runtime threads from touching a finalizing interpreter.

use std::cell::OnceCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3_async_runtimes::generic::{ContextExt, Runtime as AsyncRuntime};
use pyo3_async_runtimes::TaskLocals;
use serde_json::Value;

use super::convert::JsonOut;
use super::PyHooks;
use crate::errors::CoreError;
use crate::runtime;

/// Runs a Python hook that may block: a database round trip for the shared budget, or a token
/// refresh that itself sends an HTTP request through this same runtime. On a runtime worker
/// thread (the async client) that would starve the runtime's two workers and deadlock when
/// several requests wait on one refresh, so tokio is told to move its other tasks elsewhere.
pub(super) fn blocking_hook<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// Runs `fut` to completion on this process's runtime with the GIL released.
pub(super) fn run_sync<T, F>(py: Python<'_>, hooks: &PyHooks, fut: F) -> PyResult<T>
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
pub(super) struct ForkSafeRuntime;

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
pub(super) fn drain_python_callbacks(py: Python<'_>) {
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

/// Runs `make(hooks)` as an asyncio awaitable.
pub(super) fn run_async<'py, F, Fut>(
    py: Python<'py>,
    hooks: PyHooks,
    make: F,
) -> PyResult<Bound<'py, PyAny>>
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
