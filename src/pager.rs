//! Cursor walk over Plane's paginated list endpoints.
//!
//! Plane's cursor is `value:page:is_prev`, but its paginator derives the row offset from the
//! `per_page` query parameter, not from the cursor: a cursor sent without the same `per_page`
//! silently skips rows. So the cursor stays opaque (stored and forwarded, never parsed) and the
//! pager resends one fixed `per_page` with every cursor. `next_cursor` is never empty, even on the
//! last page; only `next_page_results` says whether to go on.

use serde_json::Value;

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
}
