//! `sub_filter`: replacements in streamed bodies, across chunk boundaries, literal and
//! regex, the first or every match; other types left alone; identity asked upstream and the
//! result compressed by a `compression` listed after it.

mod common;
use common::plugins::*;
use common::*;
use std::io::Read;

fn origin() -> Origin {
    Origin::start(|r| {
        let html = ("content-type".to_string(), "text/html".to_string());
        // the upstream saw which encodings were asked for
        let ae = r.header("accept-encoding").unwrap_or("none").to_string();
        match r.path.as_str() {
            // each link split across two chunks
            "/page" => Action::Chunked(
                200,
                vec![html, ("x-ae".into(), ae)],
                vec![
                    b"<html><title>Home</title><a href=\"http://old.".to_vec(),
                    b"test/a\">a</a><title>Again</title><a href=\"http://old".to_vec(),
                    b".test/b\">b</a>".to_vec(),
                    b"</html>".to_vec(),
                ],
            ),
            "/data.json" => Action::Respond(
                200,
                vec![("content-type".into(), "application/json".into())],
                b"{\"u\":\"http://old.test/a\"}".to_vec(),
            ),
            _ => Action::Respond(200, vec![html], b"<p>http://old.test/c</p>".to_vec()),
        }
    })
}

const RULES: &str = r#"
[plugins.rebrand]
category = "sub_filter"
rules = [
  { find = "http://old.test", replace = "https://new.test" },
  { find = "~<title>(.*?)</title>", replace = "<title>$1 | Site</title>", once = true },
]
"#;

#[test]
fn replacements_stream_across_chunks() {
    let o = origin();
    let port = free_port();
    let t = Tidegate::start(&one_location(port, &o, &["rebrand"], RULES), &[port]);
    let r = get(port, "h", "/page", &[("accept-encoding", "gzip")]);
    assert_eq!(r.status, 200, "{}", t.stderr());
    assert_eq!(
        r.text(),
        "<html><title>Home | Site</title><a href=\"https://new.test/a\">a</a><title>Again</title><a href=\"https://new.test/b\">b</a></html>"
    );
    assert_eq!(
        r.header("x-ae"),
        Some("none"),
        "identity was asked upstream"
    );
    assert!(r.header("content-length").is_none());
    // a body with a length is filtered too
    assert_eq!(
        get(port, "h", "/short", &[]).text(),
        "<p>https://new.test/c</p>"
    );
    // another type is left alone
    let r = get(port, "h", "/data.json", &[]);
    assert_eq!(r.text(), "{\"u\":\"http://old.test/a\"}");
    assert!(r.header("content-length").is_some());
}

#[test]
fn compression_after_sub_filter_compresses_the_result() {
    let o = origin();
    let port = free_port();
    let cfg = one_location(
        port,
        &o,
        &["rebrand", "gz"],
        &format!("{RULES}\n[plugins.gz]\ncategory = \"compression\"\nmin_length = \"1B\"\n"),
    );
    let t = Tidegate::start(&cfg, &[port]);
    let r = get(port, "h", "/page", &[("accept-encoding", "gzip")]);
    assert_eq!(r.header("content-encoding"), Some("gzip"), "{}", t.stderr());
    let mut text = String::new();
    flate2::read::GzDecoder::new(&r.body[..])
        .read_to_string(&mut text)
        .unwrap();
    assert!(
        text.contains("https://new.test/a") && text.contains("Home | Site"),
        "{text}"
    );
}

#[test]
fn check_names_the_key_of_a_bad_sub_filter() {
    for (body, key, says) in [
        ("rules = []", "rules", "at least one"),
        (
            "rules = [{ find = \"\", replace = \"x\" }]",
            "rules",
            "empty",
        ),
        (
            "rules = [{ find = \"~(\", replace = \"x\" }]",
            "rules",
            "bad regex",
        ),
        (
            "rules = [{ find = \"~a*\", replace = \"x\" }]",
            "rules",
            "matches empty text",
        ),
        (
            "rules = [{ find = \"a\", replace = \"b\" }]\ntypes = [\"html\"]",
            "types",
            "not a type",
        ),
        (
            "rules = [{ find = \"a\", replace = \"b\" }]\nwindow = \"2MB\"",
            "window",
            "1MB",
        ),
        (
            "rules = [{ find = \"a\", with = \"b\" }]",
            "with",
            "unknown field",
        ),
    ] {
        assert_check_refuses("sub_filter", body, key, says);
    }
}
