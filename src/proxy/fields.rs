//! Setting fields on request and response heads without parsing names we already hold.
//!
//! Pingora's `RequestHeader::insert_header` turns every name into bytes and parses it back
//! into a `HeaderName`, even when it was one already; for the three forwarding headers that
//! was a fifth of the own HTTP/1 loop's instructions per request. A head that keeps no name
//! case and whose target its URI holds (every head the own loop builds) is taken apart into
//! `http` parts and its map written directly; any other head (Pingora's path keeps the
//! client's name case) goes through `insert_header`, so its case map stays whole. The same
//! holds for response heads (the own engines' keep no case and no reason phrase): a
//! script's `resp:set_header` costs a map insert, not two copies of the name and a parse.

use http::{HeaderMap, HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};

/// Insert (replace) each `(name, value)` on `head`.
pub fn insert<const N: usize>(
    head: &mut RequestHeader,
    fields: [(&HeaderName, HeaderValue); N],
) -> pingora::Result<()> {
    if !plain(head) {
        for (name, value) in fields {
            head.insert_header(name.clone(), value)?;
        }
        return Ok(());
    }
    edit(head, |map| {
        for (name, value) in fields {
            map.insert(name.clone(), value);
        }
    });
    Ok(())
}

/// Insert (`replace`) or append one field on a request head.
pub fn set_request(
    head: &mut RequestHeader,
    name: HeaderName,
    value: HeaderValue,
    replace: bool,
) -> pingora::Result<()> {
    if !plain(head) {
        return if replace {
            head.insert_header(name, value)
        } else {
            head.append_header(name, value).map(|_| ())
        };
    }
    edit(head, |map| put(map, name, value, replace));
    Ok(())
}

/// Insert (`replace`) or append one field on a response head.
pub fn set_response(
    head: &mut ResponseHeader,
    name: HeaderName,
    value: HeaderValue,
    replace: bool,
) -> pingora::Result<()> {
    // a reason phrase of its own would be lost taking the head apart
    if head.has_case() || head.get_reason_phrase() != head.status.canonical_reason() {
        return if replace {
            head.insert_header(name, value)
        } else {
            head.append_header(name, value).map(|_| ())
        };
    }
    let empty = ResponseHeader::from(http::Response::new(()).into_parts().0);
    let mut parts = http::response::Parts::from(std::mem::replace(head, empty));
    put(&mut parts.headers, name, value, replace);
    *head = ResponseHeader::from(parts);
    Ok(())
}

fn put(map: &mut HeaderMap, name: HeaderName, value: HeaderValue, replace: bool) {
    if replace {
        map.insert(name, value);
    } else {
        map.append(name, value);
    }
}

/// The head keeps no name case, and its target is its URI's (not kept apart as raw bytes,
/// which taking it apart would lose).
fn plain(head: &RequestHeader) -> bool {
    let from_uri = head
        .uri
        .path_and_query()
        .is_some_and(|pq| std::ptr::eq(pq.as_str().as_bytes(), head.raw_path()));
    !head.has_case() && from_uri
}

/// Run `f` on the field map of a [`plain`] head (moves only: nothing is copied).
fn edit(head: &mut RequestHeader, f: impl FnOnce(&mut HeaderMap)) {
    let empty = RequestHeader::from(http::Request::new(()).into_parts().0);
    let mut parts = http::request::Parts::from(std::mem::replace(head, empty));
    f(&mut parts.headers);
    *head = RequestHeader::from(parts);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_kinds_of_head_get_the_fields() {
        let name = HeaderName::from_static("x-real-ip");
        // Pingora's kind: case kept, so the new name gets its case entry too
        let mut cased = RequestHeader::build("GET", b"/a?b", None).unwrap();
        cased.insert_header("Host", "h").unwrap();
        insert(&mut cased, [(&name, HeaderValue::from_static("1"))]).unwrap();
        let mut wire = Vec::new();
        cased.header_to_h1_wire(&mut wire);
        assert_eq!(wire, b"Host: h\r\nx-real-ip: 1\r\n");
        // the own loop's kind: edited in place, target and fields intact
        let mut parts = http::Request::new(()).into_parts().0;
        parts.uri = "/a?b".parse().unwrap();
        parts.headers.insert("host", HeaderValue::from_static("h"));
        let mut plain_head = RequestHeader::from(parts);
        assert!(plain(&plain_head));
        insert(&mut plain_head, [(&name, HeaderValue::from_static("2"))]).unwrap();
        assert_eq!(plain_head.raw_path(), b"/a?b");
        assert_eq!(plain_head.headers.get("x-real-ip").unwrap(), "2");
        assert_eq!(plain_head.headers.get("host").unwrap(), "h");
        // an absolute target is kept apart from the URI: not taken apart
        let abs = RequestHeader::build_no_case("GET", b"http://x/a", None).unwrap();
        assert!(!plain(&abs));
    }

    #[test]
    fn response_fields_are_set_and_appended_on_both_kinds() {
        let name = HeaderName::from_static("x-checked");
        let v = |s: &'static str| HeaderValue::from_static(s);
        // no case kept: edited in place
        let mut plain_resp = ResponseHeader::from(http::Response::new(()).into_parts().0);
        set_response(&mut plain_resp, name.clone(), v("1"), true).unwrap();
        set_response(&mut plain_resp, name.clone(), v("2"), false).unwrap();
        let all: Vec<_> = plain_resp.headers.get_all(&name).iter().collect();
        assert_eq!(all, [v("1"), v("2")]);
        set_response(&mut plain_resp, name.clone(), v("3"), true).unwrap();
        assert_eq!(plain_resp.headers.get_all(&name).iter().count(), 1);
        // Pingora's kind keeps its case map and reason phrase
        let mut cased = ResponseHeader::build(404, None).unwrap();
        cased.set_reason_phrase(Some("Gone Fishing")).unwrap();
        set_response(&mut cased, name.clone(), v("1"), true).unwrap();
        assert_eq!(cased.get_reason_phrase(), Some("Gone Fishing"));
        let mut wire = Vec::new();
        cased.header_to_h1_wire(&mut wire);
        assert_eq!(wire, b"x-checked: 1\r\n");
        // requests too
        let mut parts = http::Request::new(()).into_parts().0;
        parts.uri = "/p".parse().unwrap();
        let mut req = RequestHeader::from(parts);
        set_request(&mut req, name.clone(), v("a"), false).unwrap();
        set_request(&mut req, name.clone(), v("b"), false).unwrap();
        assert_eq!(req.headers.get_all(&name).iter().count(), 2);
        assert_eq!(req.raw_path(), b"/p");
    }
}
