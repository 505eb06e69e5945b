//! `directory`: files streamed from a root, validators and 304s, single and multiple ranges,
//! precompressed siblings, listings, and every way out of the root refused.

mod common;
use common::plugins::*;
use common::*;

struct Site {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    big: Vec<u8>,
}

fn site() -> Site {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("public");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::create_dir_all(root.join("list")).unwrap();
    std::fs::write(root.join("index.html"), "<h1>home</h1>").unwrap();
    std::fs::write(root.join("a.txt"), "hello world").unwrap();
    std::fs::write(root.join(".secret"), "no").unwrap();
    std::fs::write(root.join("sub/x.txt"), "x").unwrap();
    std::fs::write(root.join("list/<b>&.txt"), "odd").unwrap();
    std::fs::write(root.join("app.js"), "console.log('plain')").unwrap();
    std::fs::write(root.join("app.js.gz"), "GZ-BYTES").unwrap();
    std::fs::write(root.join("app.js.br"), "BR-BYTES").unwrap();
    let big: Vec<u8> = (0..3u32 << 20).map(|i| (i % 251) as u8).collect();
    std::fs::write(root.join("big.bin"), &big).unwrap();
    std::fs::write(dir.path().join("outside.txt"), "SECRET OUTSIDE").unwrap();
    std::os::unix::fs::symlink(dir.path().join("outside.txt"), root.join("link")).unwrap();
    std::os::unix::fs::symlink(root.join("a.txt"), root.join("inlink")).unwrap();
    std::os::unix::fs::symlink("../outside.txt", root.join("rel-out")).unwrap();
    std::os::unix::fs::symlink("sub/x.txt", root.join("rel-in")).unwrap();
    Site {
        _dir: dir,
        root,
        big,
    }
}

fn config(port: u16, s: &Site) -> String {
    let root = s.root.display();
    format!(
        r#"
[servers.main]
addr = "127.0.0.1:{port}"
http2 = true
locations = ["follow", "listed", "files"]

[locations.files]
path = "/"
plugins = ["files"]

[locations.listed]
path = "/list"
plugins = ["listed"]

[locations.follow]
path = "/follow"
plugins = ["follow"]

[plugins.files]
category = "directory"
root = "{root}"
max_age = "1h"
precompressed = true

[plugins.listed]
category = "directory"
root = "{root}"
listing = true

[plugins.follow]
category = "directory"
root = "{root}"
strip_prefix = "/follow"
follow_symlinks = true
"#
    )
}

#[test]
fn files_validators_and_ranges() {
    let s = site();
    let port = free_port();
    let t = Tidegate::start(&config(port, &s), &[port]);
    let r = get(port, "h", "/", &[]);
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "<h1>home</h1>"),
        "{}",
        t.stderr()
    );
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let r = get(port, "h", "/a.txt", &[]);
    assert_eq!(r.text(), "hello world");
    assert_eq!(r.header("content-length"), Some("11"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert_eq!(r.header("cache-control"), Some("max-age=3600"));
    let etag = r.header("etag").unwrap().to_string();
    let modified = r.header("last-modified").unwrap().to_string();
    assert!(etag.starts_with('"'), "a strong validator: {etag}");
    // conditionals
    let r = get(
        port,
        "h",
        "/a.txt",
        &[("if-none-match", &format!("\"x\", {etag}"))],
    );
    assert_eq!((r.status, r.body.len()), (304, 0));
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    assert_eq!(
        get(port, "h", "/a.txt", &[("if-modified-since", &modified)]).status,
        304
    );
    assert_eq!(
        get(port, "h", "/a.txt", &[("if-none-match", "\"other\"")]).status,
        200
    );
    // ranges
    let r = get(port, "h", "/a.txt", &[("range", "bytes=0-4")]);
    assert_eq!((r.status, r.text().as_str()), (206, "hello"));
    assert_eq!(r.header("content-range"), Some("bytes 0-4/11"));
    let r = get(port, "h", "/a.txt", &[("range", "bytes=-5")]);
    assert_eq!(r.text(), "world");
    let r = get(port, "h", "/a.txt", &[("range", "bytes=0-1, 6-7")]);
    assert_eq!(r.status, 206);
    let ct = r.header("content-type").unwrap().to_string();
    let boundary = ct
        .strip_prefix("multipart/byteranges; boundary=")
        .expect(&ct);
    let body = r.text();
    assert_eq!(
        body.len(),
        r.header("content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap()
    );
    assert!(body.contains(&format!("--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Range: bytes 0-1/11\r\n\r\nhe\r\n")), "{body}");
    assert!(body.contains("Content-Range: bytes 6-7/11\r\n\r\nwo\r\n"));
    assert!(body.ends_with(&format!("--{boundary}--\r\n")));
    let r = get(port, "h", "/a.txt", &[("range", "bytes=50-60")]);
    assert_eq!(
        (r.status, r.header("content-range")),
        (416, Some("bytes */11"))
    );
    let r = get(
        port,
        "h",
        "/a.txt",
        &[("range", "bytes=0-4"), ("if-range", "\"stale\"")],
    );
    assert_eq!(
        (r.status, r.body.len()),
        (200, 11),
        "a stale If-Range: the whole file"
    );
    let r = get(
        port,
        "h",
        "/a.txt",
        &[("range", "bytes=0-4"), ("if-range", &etag)],
    );
    assert_eq!(r.status, 206);
    // methods
    let r = request(port, "POST", "h", "/a.txt", &[], b"x");
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
}

#[test]
fn large_files_stream_on_both_engines() {
    let s = site();
    let port = free_port();
    let t = Tidegate::start(&config(port, &s), &[port]);
    let r = get(port, "h", "/big.bin", &[]);
    assert_eq!(r.status, 200, "{}", t.stderr());
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert!(r.body == s.big, "3 MiB intact");
    let r = get(port, "h", "/big.bin", &[("range", "bytes=1048570-1048580")]);
    assert_eq!(r.body, s.big[1048570..=1048580]);
    let r = request(port, "HEAD", "h", "/big.bin", &[], b"");
    assert_eq!(
        (r.header("content-length"), r.body.len()),
        (Some("3145728"), 0)
    );
    // keep-alive still works after a streamed body (the own loop)
    let mut c = connect(port);
    for _ in 0..2 {
        std::io::Write::write_all(&mut c, b"GET /a.txt HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        let r = read_response(&mut std::io::BufReader::new(&c), false).unwrap();
        assert_eq!(r.text(), "hello world");
    }
    let (status, _h, body) = common::lua::h2_request(port, "GET", "/big.bin", b"");
    assert_eq!(status, 200);
    assert!(body == s.big, "over HTTP/2");
}

#[test]
fn nothing_outside_the_root_is_served() {
    let s = site();
    let port = free_port();
    let t = Tidegate::start(&config(port, &s), &[port]);
    for path in [
        "/../outside.txt",
        "/%2e%2e/outside.txt",
        "/%2E%2E%2Foutside.txt",
        "/sub/..%2f..%2foutside.txt",
        "/sub/%2e%2e/%2e%2e/outside.txt",
        "/%252e%252e/outside.txt",
        "/..%5coutside.txt",
        "/a.txt%00.html",
        "/link",
        "/rel-out",
        "/sub/../rel-out",
        "/.secret",
        "/nope.txt",
    ] {
        let r = send(
            port,
            format!("GET {path} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .unwrap();
        assert!(r.status == 404 || r.status == 400, "{path}: {}", r.status);
        assert!(!r.text().contains("SECRET"), "{path} leaked");
    }
    assert_eq!(
        get(port, "h", "/inlink", &[]).text(),
        "hello world",
        "a link inside the root"
    );
    assert_eq!(
        get(port, "h", "/follow/link", &[]).text(),
        "SECRET OUTSIDE",
        "follow_symlinks = true"
    );
    assert!(!t.stderr().contains("panicked"));
}

#[test]
fn directories_listings_and_precompressed_files() {
    let s = site();
    let port = free_port();
    let t = Tidegate::start(&config(port, &s), &[port]);
    let r = get(port, "h", "/sub?x=1", &[]);
    assert_eq!(
        (r.status, r.header("location")),
        (301, Some("/sub/?x=1")),
        "{}",
        t.stderr()
    );
    assert_eq!(
        get(port, "h", "/sub/", &[]).status,
        403,
        "no index, no listing"
    );
    let r = get(port, "h", "/list/", &[]);
    assert_eq!(r.status, 200);
    let page = r.text();
    assert!(
        page.contains("&lt;b&gt;&amp;.txt") && page.contains("href=\"%3Cb%3E%26%2Etxt\""),
        "{page}"
    );
    assert!(!page.contains("<b>&"), "names are escaped");
    let r = get(port, "h", "/app.js", &[("accept-encoding", "gzip, br")]);
    assert_eq!(
        (r.header("content-encoding"), r.text().as_str()),
        (Some("br"), "BR-BYTES")
    );
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    assert_eq!(
        r.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    let r = get(port, "h", "/app.js", &[("accept-encoding", "gzip")]);
    assert_eq!(
        (r.header("content-encoding"), r.text().as_str()),
        (Some("gzip"), "GZ-BYTES")
    );
    let r = get(port, "h", "/app.js", &[]);
    assert_eq!(
        (r.header("content-encoding"), r.text().as_str()),
        (None, "console.log('plain')")
    );
}

#[test]
fn check_names_the_key_of_a_bad_directory() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    std::fs::write(&file, "x").unwrap();
    let d = dir.path().display();
    for (body, key, says) in [
        (
            "root = \"/nonexistent/www\"".to_string(),
            "root",
            "/nonexistent/www",
        ),
        (
            format!("root = \"{}\"", file.display()),
            "root",
            "not a directory",
        ),
        (
            format!("root = \"{d}\"\nindex = [\"a/b.html\"]"),
            "index",
            "not a file name",
        ),
        (
            format!("root = \"{d}\"\nstrip_prefix = \"static\""),
            "strip_prefix",
            "starts with",
        ),
        (
            format!("root = \"{d}\"\nmax_age = \"soon\""),
            "max_age",
            "not a duration",
        ),
    ] {
        assert_check_refuses("directory", &body, key, says);
    }
}
