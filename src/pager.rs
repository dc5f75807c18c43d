//! Cursor walk over Plane's paginated list endpoints.
//!
//! Plane's cursor is `value:page:is_prev`, but its paginator derives the row offset from the
//! `per_page` query parameter, not from the cursor: a cursor sent without the same `per_page`
//! silently skips rows. So the cursor stays opaque (stored and forwarded, never parsed) and the
//! pager resends one fixed `per_page` with every cursor. `next_cursor` is never empty, even on the
//! last page; only `next_page_results` says whether to go on.
//!
//! `PagerState` is the cursor bookkeeping of one walk; `PageWalk` adds the items of the page being
//! read and says what to do next (`Step`) without awaiting, so a lock on it is never held across
//! a request; `next_item` drives it with the client. The Python iterator (`CursorPager` in
//! `python`) only wraps `next_item`.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde_json::Value;

use crate::client::{Client, Hooks, Request};
use crate::errors::CoreError;

/// Plane refuses `per_page` above 1000 and answers 500 to 0.
pub const MAX_PER_PAGE: u32 = 1000;

/// Empty pages in a row, each claiming more results, after which the walk is declared stuck.
pub const MAX_EMPTY_PAGES: u32 = 3;

/// State of one cursor walk.
#[derive(Debug, Clone)]
pub struct PagerState {
    per_page: u32,
    /// Cursor of the page being read (`None`: the first page, fetched without a cursor).
    cursor: Option<String>,
    /// Cursor of the page after it, once the current page is in.
    next_cursor: Option<String>,
    done: bool,
    empty_pages: u32,
    seen: std::collections::HashSet<String>,
    /// Ids of the previous page, to catch a server that ignores the cursor.
    previous_ids: Vec<Value>,
    pages: u64,
}

/// One decoded page.
#[derive(Debug)]
pub struct Page {
    pub items: Vec<Value>,
    pub total: Option<u64>,
}

impl PagerState {
    pub fn new(per_page: u32, cursor: Option<String>) -> Result<Self, CoreError> {
        if per_page == 0 || per_page > MAX_PER_PAGE {
            return Err(CoreError::Config(format!(
                "per_page must be between 1 and {MAX_PER_PAGE}, got {per_page}"
            )));
        }
        let cursor = cursor.filter(|c| !c.is_empty());
        Ok(PagerState {
            per_page,
            cursor,
            next_cursor: None,
            done: false,
            empty_pages: 0,
            seen: Default::default(),
            previous_ids: Vec::new(),
            pages: 0,
        })
    }

    pub fn per_page(&self) -> u32 {
        self.per_page
    }

    pub fn cursor(&self) -> Option<&str> {
        self.cursor.as_deref()
    }

    pub fn next_cursor(&self) -> Option<&str> {
        self.next_cursor.as_deref()
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    pub fn pages(&self) -> u64 {
        self.pages
    }

    /// Query parameters for the next page request, added to the caller's own.
    pub fn query(&self) -> Vec<(String, String)> {
        let mut q = vec![("per_page".to_string(), self.per_page.to_string())];
        if let Some(c) = &self.cursor {
            q.push(("cursor".to_string(), c.clone()));
        }
        q
    }

    /// Moves to the next page after the current one was fully read. Returns false when done.
    pub fn advance(&mut self) -> bool {
        if self.done {
            return false;
        }
        match self.next_cursor.take() {
            Some(next) => {
                self.cursor = Some(next);
                true
            }
            None => {
                self.done = true;
                false
            }
        }
    }

    /// Takes in the body of the page requested with `query()`.
    pub fn on_page(&mut self, body: Value) -> Result<Page, CoreError> {
        self.pages += 1;
        let mut map = match body {
            Value::Object(map) => map,
            // Some list endpoints (members, attachments) are plain arrays: one page, no cursor.
            Value::Array(items) => {
                self.next_cursor = None;
                return Ok(Page { items, total: None });
            }
            other => {
                return Err(CoreError::Pagination(format!(
                    "expected a page object with `results`, got {}",
                    kind(&other)
                )))
            }
        };
        let items = match map.remove("results") {
            Some(Value::Array(items)) => items,
            Some(other) => {
                return Err(CoreError::Pagination(format!(
                    "page `results` is {}, not a list",
                    kind(&other)
                )))
            }
            None => {
                return Err(CoreError::Pagination(
                    "the answer has no `results`: this endpoint is not paginated (use get())"
                        .into(),
                ))
            }
        };
        let total = map.get("total_count").and_then(Value::as_u64);
        let more = map
            .get("next_page_results")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if !more {
            self.next_cursor = None;
            return Ok(Page { items, total });
        }
        let next = match map.get("next_cursor") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => {
                return Err(CoreError::Pagination(
                    "the server says more pages follow but sent no next_cursor".into(),
                ))
            }
        };
        // Loop guard: Plane has been reported to answer next_page_results=true forever.
        if Some(&next) == self.cursor.as_ref() || !self.seen.insert(next.clone()) {
            return Err(CoreError::Pagination(format!(
                "pagination loop: the server sent cursor {next:?} again after {} pages; \
                 stopping instead of reading the same page forever",
                self.pages
            )));
        }
        if let Some(c) = &self.cursor {
            self.seen.insert(c.clone());
        }
        if items.is_empty() {
            self.empty_pages += 1;
            if self.empty_pages >= MAX_EMPTY_PAGES {
                return Err(CoreError::Pagination(format!(
                    "pagination stuck: {} empty pages in a row claim more results \
                     (last cursor {next:?})",
                    self.empty_pages
                )));
            }
        } else {
            self.empty_pages = 0;
            // A server that ignores the cursor (or per_page) serves the same rows again.
            let ids: Vec<Value> = items
                .iter()
                .map(|i| i.get("id").cloned().unwrap_or(Value::Null))
                .collect();
            if ids.iter().all(|id| !id.is_null()) && ids == self.previous_ids {
                return Err(CoreError::Pagination(format!(
                    "pagination loop: the page after cursor {:?} repeats the previous page's \
                     {} items; the server is ignoring the cursor",
                    self.cursor.as_deref().unwrap_or(""),
                    ids.len()
                )));
            }
            self.previous_ids = ids;
        }
        self.next_cursor = Some(next);
        Ok(Page { items, total })
    }
}

/// One walk over a list endpoint: the cursor state plus the items of the page being read.
#[derive(Debug)]
pub struct PageWalk {
    path: String,
    /// The caller's query parameters; `per_page` and `cursor` are added per request.
    query: Vec<(String, String)>,
    state: PagerState,
    buffer: VecDeque<Value>,
    /// Whether the page of `state.cursor()` is in `buffer` already.
    fetched: bool,
    total: Option<u64>,
}

/// What a walk does next.
#[derive(Debug)]
pub enum Step {
    /// The next item, from the page already fetched.
    Item(Value),
    /// The walk is over.
    Done,
    /// Send this request and hand its answer to `PageWalk::on_page`.
    Fetch(Request),
}

impl PageWalk {
    pub fn new(path: &str, query: Vec<(String, String)>, state: PagerState) -> Self {
        PageWalk {
            path: path.to_string(),
            query,
            state,
            buffer: VecDeque::new(),
            fetched: false,
            total: None,
        }
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn state(&self) -> &PagerState {
        &self.state
    }

    /// `total_count` of the latest page that carried one.
    pub fn total(&self) -> Option<u64> {
        self.total
    }

    /// What to do next, without awaiting.
    pub fn step(&mut self) -> Step {
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

    /// Takes in the answer to the last `Step::Fetch` (`None`: an empty 204 answer).
    pub fn on_page(&mut self, body: Option<Value>) -> Result<(), CoreError> {
        let page = self.state.on_page(body.unwrap_or(Value::Null))?;
        if page.total.is_some() {
            self.total = page.total;
        }
        self.buffer.extend(page.items);
        self.fetched = true;
        Ok(())
    }

    /// The error for a 400 to a request that carried a cursor: it names the cursor and `per_page`,
    /// since a saved cursor given back to `paginate()` is the likely culprit.
    fn rejected_cursor(&self, message: &str) -> CoreError {
        CoreError::Pagination(format!(
            "Plane rejected cursor {:?} (per_page={}): {message}",
            self.state.cursor().unwrap_or_default(),
            self.state.per_page()
        ))
    }
}

/// Next item of the walk, fetching pages as needed.
pub async fn next_item<H: Hooks>(
    core: &Client,
    hooks: &H,
    walk: &Mutex<PageWalk>,
) -> Result<Option<Value>, CoreError> {
    let lock = || walk.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let req = match lock().step() {
            Step::Item(v) => return Ok(Some(v)),
            Step::Done => return Ok(None),
            Step::Fetch(req) => req,
        };
        let body = match core.send(hooks, &req).await {
            Ok(body) => body,
            Err(CoreError::Http {
                status: 400,
                message,
                ..
            }) if req.query.iter().any(|(k, _)| k == "cursor") => {
                return Err(lock().rejected_cursor(&message));
            }
            Err(e) => return Err(e),
        };
        lock().on_page(body)?;
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn page(ids: &[u32], next: &str, more: bool) -> Value {
        json!({
            "total_count": 301, "next_cursor": next, "prev_cursor": "50:-1:1",
            "next_page_results": more, "prev_page_results": false, "count": ids.len(),
            "results": ids.iter().map(|i| json!({"id": i})).collect::<Vec<_>>(),
        })
    }

    #[test]
    fn follows_real_cursors_with_fixed_per_page() {
        let mut p = PagerState::new(50, None).unwrap();
        assert_eq!(p.query(), vec![("per_page".into(), "50".into())]);
        let got = p.on_page(page(&[1, 2], "50:1:0", true)).unwrap();
        assert_eq!(got.items.len(), 2);
        assert_eq!(got.total, Some(301));
        assert!(p.advance());
        assert_eq!(p.cursor(), Some("50:1:0"));
        assert_eq!(
            p.query(),
            vec![
                ("per_page".into(), "50".into()),
                ("cursor".into(), "50:1:0".into())
            ]
        );
        // Last page: next_cursor is still non-empty, next_page_results says stop.
        p.on_page(page(&[3], "50:2:0", false)).unwrap();
        assert!(!p.advance());
        assert!(p.is_done());
    }

    #[test]
    fn resumes_from_a_saved_cursor() {
        let p = PagerState::new(50, Some("50:4:0".into())).unwrap();
        assert_eq!(p.cursor(), Some("50:4:0"));
        assert_eq!(p.query()[1], ("cursor".into(), "50:4:0".into()));
    }

    #[test]
    fn loop_guard_on_repeated_cursor() {
        let mut p = PagerState::new(50, None).unwrap();
        p.on_page(page(&[1], "50:1:0", true)).unwrap();
        p.advance();
        let err = p.on_page(page(&[2], "50:1:0", true)).unwrap_err();
        assert!(matches!(err, CoreError::Pagination(_)), "{err:?}");
        assert!(err.to_string().contains("loop"));
    }

    #[test]
    fn loop_guard_on_a_repeated_page() {
        let mut p = PagerState::new(2, None).unwrap();
        p.on_page(page(&[1, 2], "2:1:0", true)).unwrap();
        assert!(p.advance());
        let err = p.on_page(page(&[1, 2], "2:2:0", true)).unwrap_err();
        assert!(err.to_string().contains("ignoring the cursor"), "{err}");
    }

    #[test]
    fn loop_guard_on_endless_empty_pages() {
        let mut p = PagerState::new(10, None).unwrap();
        let mut failed = false;
        for i in 1..10 {
            match p.on_page(page(&[], &format!("10:{i}:0"), true)) {
                Ok(_) => assert!(p.advance()),
                Err(e) => {
                    assert!(e.to_string().contains("stuck"));
                    failed = true;
                    break;
                }
            }
        }
        assert!(failed);
    }

    #[test]
    fn rejects_bad_shapes_and_per_page() {
        assert!(PagerState::new(0, None).is_err());
        assert!(PagerState::new(1001, None).is_err());
        let mut p = PagerState::new(10, None).unwrap();
        assert!(p.on_page(json!({"detail": "x"})).is_err());
        assert!(p.on_page(json!("x")).is_err());
        assert!(p.on_page(json!({"results": 3})).is_err());
        assert!(p
            .on_page(json!({"results": [], "next_page_results": true, "next_cursor": ""}))
            .is_err());
        let arr = p.on_page(json!([{"id": 1}])).unwrap();
        assert_eq!(arr.items.len(), 1);
        assert!(!p.advance());
    }

    fn item_id(step: Step) -> u64 {
        match step {
            Step::Item(v) => v["id"].as_u64().unwrap(),
            other => panic!("expected an item, got {other:?}"),
        }
    }

    fn fetch(step: Step) -> Request {
        match step {
            Step::Fetch(req) => req,
            other => panic!("expected a fetch, got {other:?}"),
        }
    }

    fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
        q.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_walk_steps_through_pages_without_awaiting() {
        let state = PagerState::new(2, None).unwrap();
        let mut w = PageWalk::new("items", pairs(&[("state", "open")]), state);
        let req = fetch(w.step());
        assert_eq!((req.method.as_str(), req.path.as_str()), ("GET", "items"));
        assert_eq!(req.query, pairs(&[("state", "open"), ("per_page", "2")]));
        // No answer taken in (the request failed): the next step asks for the same page.
        assert_eq!(fetch(w.step()).query, req.query);
        w.on_page(Some(page(&[1, 2], "2:1:0", true))).unwrap();
        assert_eq!(item_id(w.step()), 1);
        assert_eq!(item_id(w.step()), 2);
        assert_eq!(w.state().cursor(), None);
        let req = fetch(w.step());
        assert_eq!(w.state().cursor(), Some("2:1:0"));
        assert_eq!(
            req.query,
            pairs(&[("state", "open"), ("per_page", "2"), ("cursor", "2:1:0")])
        );
        w.on_page(Some(page(&[3], "2:2:0", false))).unwrap();
        assert_eq!(item_id(w.step()), 3);
        assert!(matches!(w.step(), Step::Done));
        assert!(matches!(w.step(), Step::Done));
        assert_eq!((w.total(), w.state().pages()), (Some(301), 2));
    }

    #[test]
    fn a_walk_resumes_from_a_saved_cursor() {
        let state = PagerState::new(50, Some("50:4:0".into())).unwrap();
        let mut w = PageWalk::new("items", Vec::new(), state);
        let req = fetch(w.step());
        assert_eq!(
            req.query,
            pairs(&[("per_page", "50"), ("cursor", "50:4:0")])
        );
    }

    #[test]
    fn a_walk_keeps_the_last_total_and_reads_plain_lists() {
        let mut w = PageWalk::new("items", Vec::new(), PagerState::new(1, None).unwrap());
        fetch(w.step());
        w.on_page(Some(page(&[1], "1:1:0", true))).unwrap();
        item_id(w.step());
        fetch(w.step());
        // A page without total_count keeps the one seen before.
        let no_total = json!({"results": [{"id": 2}], "next_page_results": false});
        w.on_page(Some(no_total)).unwrap();
        assert_eq!(item_id(w.step()), 2);
        assert!(matches!(w.step(), Step::Done));
        assert_eq!(w.total(), Some(301));

        let mut w = PageWalk::new("members", Vec::new(), PagerState::new(9, None).unwrap());
        fetch(w.step());
        w.on_page(Some(json!([{"id": 7}, {"id": 8}]))).unwrap();
        assert_eq!((item_id(w.step()), item_id(w.step())), (7, 8));
        assert!(matches!(w.step(), Step::Done));
        assert_eq!(w.total(), None);

        // An empty answer (204) is no page.
        let mut w = PageWalk::new("x", Vec::new(), PagerState::new(9, None).unwrap());
        fetch(w.step());
        let err = w.on_page(None).unwrap_err();
        assert!(matches!(err, CoreError::Pagination(_)), "{err:?}");
    }

    /// `next_item` against a loopback server answering `answer(target)` with JSON.
    mod driven {
        use super::*;
        use crate::client::{ClientConfig, Credential, NoHooks};
        use crate::retry::RetryPolicy;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        async fn serve(answer: fn(&str) -> (u16, Value)) -> String {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move {
                while let Ok((mut sock, _)) = listener.accept().await {
                    tokio::spawn(async move {
                        let mut head = Vec::new();
                        let mut chunk = [0u8; 1024];
                        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                            match sock.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => head.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let head = String::from_utf8_lossy(&head);
                        let (status, body) = answer(head.split(' ').nth(1).unwrap_or(""));
                        let body = body.to_string();
                        let reply = format!(
                            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n\
                             content-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = sock.write_all(reply.as_bytes()).await;
                    });
                }
            });
            format!("http://{addr}")
        }

        fn client(base_url: String) -> Client {
            let config = ClientConfig {
                base_url,
                timeout: 10.0,
                requests_per_minute: 600,
                rate_window: 60.0,
                retry: RetryPolicy {
                    max_retries: 0,
                    max_wait: 1.0,
                    backoff_base: 0.1,
                },
                ca_bundle: None,
            };
            Client::new(config, Credential::Anonymous).unwrap()
        }

        /// Runs `fut` as a sync call from Python does: on the per-process current-thread runtime.
        fn block_on<T>(fut: impl std::future::Future<Output = T>) -> T {
            crate::runtime::current().sync_runtime().block_on(fut)
        }

        fn two_pages(target: &str) -> (u16, Value) {
            assert!(target.starts_with("/api/v1/items/?"), "{target}");
            if target.contains("cursor=") {
                (200, page(&[3], "2:2:0", false))
            } else {
                (200, page(&[1, 2], "2:1:0", true))
            }
        }

        #[test]
        fn next_item_walks_every_page() {
            block_on(async {
                let core = client(serve(two_pages).await);
                let state = PagerState::new(2, None).unwrap();
                let walk = Mutex::new(PageWalk::new("items", Vec::new(), state));
                let mut ids = Vec::new();
                while let Some(item) = next_item(&core, &NoHooks, &walk).await.unwrap() {
                    ids.push(item["id"].as_u64().unwrap());
                }
                assert_eq!(ids, [1, 2, 3]);
                assert!(next_item(&core, &NoHooks, &walk).await.unwrap().is_none());
                assert_eq!(walk.lock().unwrap().state().pages(), 2);
                assert_eq!(
                    core.stats
                        .requests
                        .load(std::sync::atomic::Ordering::Relaxed),
                    2
                );
            });
        }

        fn bad_request(_: &str) -> (u16, Value) {
            (400, json!({"detail": "Invalid cursor"}))
        }

        #[test]
        fn a_rejected_cursor_is_a_pagination_error() {
            block_on(async {
                let core = client(serve(bad_request).await);
                let state = PagerState::new(2, Some("9:9:9".into())).unwrap();
                let walk = Mutex::new(PageWalk::new("items", Vec::new(), state));
                let err = next_item(&core, &NoHooks, &walk).await.unwrap_err();
                assert!(matches!(err, CoreError::Pagination(_)), "{err:?}");
                let msg = err.to_string();
                assert!(
                    msg.contains("\"9:9:9\"") && msg.contains("per_page=2"),
                    "{msg}"
                );
                // Without a cursor a 400 is the server's answer to the request as it is.
                let walk = Mutex::new(PageWalk::new(
                    "items",
                    Vec::new(),
                    PagerState::new(2, None).unwrap(),
                ));
                let err = next_item(&core, &NoHooks, &walk).await.unwrap_err();
                assert!(
                    matches!(err, CoreError::Http { status: 400, .. }),
                    "{err:?}"
                );
            });
        }
    }
}
