//! `t.http_mock(pattern, response)`: while `tidegate test` runs, `tidegate.http.request`
//! answers from these instead of the network. A URL no mock matches is an error (a test never
//! reaches the network), and every call is recorded for `t.http_calls()`.

use crate::scripting::http_client::Inbound;
use std::cell::RefCell;

/// One canned answer: URLs containing `pattern` (or equal to it when it is a full URL
/// without `*`; `*` matches any run of characters).
#[derive(Debug, Clone)]
pub struct Mock {
    pub pattern: String,
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: bytes::Bytes,
    /// answer with this error instead (a timeout, a refused connection)
    pub error: Option<String>,
}

/// A call a script made: method, URL, headers, body.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: bytes::Bytes,
}

#[derive(Default)]
struct Mocks {
    on: bool,
    mocks: Vec<Mock>,
    calls: Vec<Call>,
}

thread_local! {
    static MOCKS: RefCell<Mocks> = RefCell::new(Mocks::default());
}

/// Start a test: mocks on (and none yet), no calls.
pub fn begin() {
    MOCKS.with(|m| {
        *m.borrow_mut() = Mocks {
            on: true,
            ..Default::default()
        }
    });
}

/// Add a mock; the latest added wins when several match.
pub fn add(mock: Mock) {
    MOCKS.with(|m| m.borrow_mut().mocks.push(mock));
}

/// The calls made since [`begin`].
pub fn calls() -> Vec<Call> {
    MOCKS.with(|m| m.borrow().calls.clone())
}

/// Whether `url` matches `pattern`: `*` is any run of characters; without `*`, a pattern
/// matches a URL that starts with it.
pub fn matches(pattern: &str, url: &str) -> bool {
    if !pattern.contains('*') {
        return url.starts_with(pattern);
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut rest = url;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return part.is_empty() || rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    rest.is_empty()
}

/// Whether this thread runs `tidegate test` (its HTTP calls are mocked).
pub fn active() -> bool {
    MOCKS.with(|m| m.borrow().on)
}

/// The mocked answer to a call, recorded.
pub fn answer(call: Call) -> Result<Inbound, String> {
    MOCKS.with(|m| {
        let mut m = m.borrow_mut();
        let url = call.url.clone();
        m.calls.push(call);
        let found = m.mocks.iter().rev().find(|x| matches(&x.pattern, &url));
        match found {
            Some(x) => match &x.error {
                Some(e) => Err(e.clone()),
                None => Ok(Inbound {
                    status: x.status,
                    headers: x.headers.clone(),
                    body: x.body.clone(),
                }),
            },
            None => Err(format!(
                "tidegate test: no t.http_mock matches {url} (tests never reach the network)"
            )),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn patterns() {
        assert!(matches("http://auth/check", "http://auth/check?x=1"));
        assert!(!matches("http://auth/check", "http://other/check"));
        assert!(matches("http://*/check", "http://auth:80/check"));
        assert!(matches("*check*", "http://auth/check?x"));
        assert!(!matches("http://*/check", "http://auth/other"));
    }
}
