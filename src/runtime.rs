//! Per-process runtimes, HTTP connection pools and rate limiters.
//!
//! Two runtimes, each with its own pool: sync calls are driven by the calling thread on a
//! current-thread runtime (no hand-off to another thread, no thread at all in a prefork worker),
//! async calls and the hooks nested inside a sync call run on a two-worker multi-thread runtime.
//!
//! Odoo imports the wheel in its master process and forks workers afterwards. A tokio runtime's
//! threads and a connection pool's sockets do not survive a fork (the child would share the
//! parent's TCP connections, and its runtime threads do not exist), and a mutex held by a parent
//! thread at fork time stays locked forever in the child. So everything lives in one
//! `ProcessState` built lazily on first use and rebuilt when the process id changes; the parent's
//! copy is leaked in the child, never dropped (dropping would join threads that do not exist).
//! Nothing is built at import time.

use std::collections::HashMap;
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::errors::CoreError;
use crate::ratelimit::LimiterRegistry;
use crate::tls::{self, CaBundle};

/// Everything that must not cross a fork.
pub struct ProcessState {
    pid: u32,
    runtime: OnceLock<tokio::runtime::Runtime>,
    http: OnceLock<reqwest::Client>,
    sync_runtime: OnceLock<tokio::runtime::Runtime>,
    sync_http: OnceLock<reqwest::Client>,
    /// Pools of clients with their own `ca_bundle`, by (sync runtime?, bundle fingerprint).
    bundle_http: Mutex<HashMap<(bool, String), reqwest::Client>>,
    /// Bundled roots plus the system store, read once per process.
    roots: OnceLock<rustls::RootCertStore>,
    limiters: LimiterRegistry,
}

static CURRENT: AtomicPtr<ProcessState> = AtomicPtr::new(ptr::null_mut());

/// The state of the calling process, created on first use after start or fork.
pub fn current() -> &'static ProcessState {
    let pid = std::process::id();
    loop {
        let seen = CURRENT.load(Ordering::Acquire);
        // SAFETY: every pointer stored in CURRENT comes from Box::into_raw and is never freed.
        if let Some(state) = unsafe { seen.as_ref() } {
            if state.pid == pid {
                return state;
            }
        }
        let fresh = Box::into_raw(Box::new(ProcessState::new(pid)));
        match CURRENT.compare_exchange(seen, fresh, Ordering::AcqRel, Ordering::Acquire) {
            // SAFETY: just stored; never freed (see above).
            Ok(_) => return unsafe { &*fresh },
            Err(_) => {
                // Another thread won the race; ours was never shared or initialised.
                // SAFETY: `fresh` came from Box::into_raw above and nobody else saw it.
                drop(unsafe { Box::from_raw(fresh) });
            }
        }
    }
}

impl ProcessState {
    fn new(pid: u32) -> Self {
        ProcessState {
            pid,
            runtime: OnceLock::new(),
            http: OnceLock::new(),
            sync_runtime: OnceLock::new(),
            sync_http: OnceLock::new(),
            bundle_http: Mutex::new(HashMap::new()),
            roots: OnceLock::new(),
            limiters: LimiterRegistry::default(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The tokio runtime of this process (two worker threads: the work is I/O, not CPU).
    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("plane-connector")
                .enable_all()
                .build()
                .expect("cannot start the tokio runtime (out of threads or file descriptors?)")
        })
    }

    /// The runtime that sync calls are driven on, by the calling thread itself.
    ///
    /// On the multi-thread runtime a sync call from Python hands its request to a worker and
    /// sleeps until a worker hands the answer back: two cross-thread wake-ups per call, which on
    /// an idle machine cost more than the loopback round trip itself. A current-thread runtime
    /// polls the connection on the caller's own thread. Several Python threads may block on it
    /// at once: one drives the I/O for all and the others take over when it returns.
    pub fn sync_runtime(&self) -> &tokio::runtime::Runtime {
        self.sync_runtime.get_or_init(|| {
            tokio::runtime::Builder::new_current_thread()
                .thread_name("plane-connector-blocking")
                .enable_all()
                .build()
                .expect("cannot start the tokio runtime (out of threads or file descriptors?)")
        })
    }

    /// The connection pool for whichever of the two runtimes the caller runs on, trusting the
    /// default roots plus `ca_bundle`.
    ///
    /// Each pool's connection tasks live on the runtime that opened them, so a pool must not be
    /// shared: a connection opened by the current-thread runtime only makes progress while some
    /// thread is inside its `block_on`, and a multi-thread task that checked it out would hang.
    /// Proxy settings (`HTTPS_PROXY`, `NO_PROXY`, ...) are read when a pool is built.
    pub fn http(&self, ca_bundle: Option<&CaBundle>) -> Result<reqwest::Client, CoreError> {
        let on_sync = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread);
        let build = || {
            // hyper-util spawns nothing at build time, but a pool for the async runtime is
            // built inside it all the same so any future change stays on the right runtime.
            let _guard = (!on_sync).then(|| self.runtime().enter());
            build_http(self.roots(), ca_bundle)
        };
        if let Some(bundle) = ca_bundle {
            let key = (on_sync, bundle.fingerprint().to_string());
            let mut pools = self.bundle_http.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(found) = pools.get(&key) {
                return Ok(found.clone());
            }
            let client = build()?;
            pools.insert(key, client.clone());
            return Ok(client);
        }
        let cell = if on_sync { &self.sync_http } else { &self.http };
        if let Some(found) = cell.get() {
            return Ok(found.clone());
        }
        let client = build()?;
        Ok(cell.get_or_init(|| client).clone())
    }

    fn roots(&self) -> &rustls::RootCertStore {
        self.roots.get_or_init(tls::default_roots)
    }

    pub fn limiters(&self) -> &LimiterRegistry {
        &self.limiters
    }
}

fn build_http(
    roots: &rustls::RootCertStore,
    ca_bundle: Option<&CaBundle>,
) -> Result<reqwest::Client, CoreError> {
    reqwest::Client::builder()
        .user_agent(concat!("plane-connector/", env!("CARGO_PKG_VERSION")))
        .pool_idle_timeout(std::time::Duration::from_secs(60))
        .redirect(same_origin_redirects())
        .tls_backend_preconfigured(tls::client_config(roots, ca_bundle)?)
        .build()
        .map_err(|e| CoreError::Config(format!("cannot set up the HTTP client: {e}")))
}

/// Follows at most 5 redirects and only within the same origin: reqwest strips `Authorization` on a
/// cross-host redirect but not `X-API-Key`, which must never reach another host.
fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let same_origin = attempt.previous().first().is_some_and(|first| {
            first.scheme() == attempt.url().scheme()
                && first.host_str() == attempt.url().host_str()
                && first.port_or_known_default() == attempt.url().port_or_known_default()
        });
        if attempt.previous().len() > 5 || !same_origin {
            attempt.stop()
        } else {
            attempt.follow()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_process_same_state() {
        let a = current() as *const ProcessState;
        let b = current() as *const ProcessState;
        assert_eq!(a, b);
        assert_eq!(current().pid(), std::process::id());
    }
}
