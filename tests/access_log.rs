//! Access log: presets, templates and their variables, file and stdout destinations.

mod common;
use common::*;

#[test]
fn template_variables_to_a_file() {
    let origin = Origin::start(|_| {
        Action::Respond(201, vec![("x-up".into(), "yes".into())], b"made".to_vec())
    });
    let port = free_port();
    let cfg = format!(
        r#"
[servers.main]
addr = "127.0.0.1:{port}"
locations = ["all"]
access_log = "{{method}}|{{path}}|{{query}}|{{status}}|{{latency}}|{{remote}}|{{client_ip}}|{{host}}|{{upstream}}|{{upstream_addr}}|{{request_id}}|{{>x-in}}|{{<x-up}}|{{~sid}}|{{location}}|{{server}}|{{size}}|{{proto}}"
access_log_path = "logs/access.log"

[locations.all]
upstream = "backend"
plugins = ["rid"]

[upstreams.backend]
addrs = ["{}"]

[plugins.rid]
category = "request_id"
"#,
        origin.addr
    );
    let t = Tidegate::start(&cfg, &[port]);
    let r = get(
        port,
        "Logs.Example",
        "/items?page=2",
        &[("x-in", "hello"), ("cookie", "a=b; sid=s42")],
    );
    assert_eq!(r.status, 201);
    let id = r.header("x-request-id").unwrap().to_string();
    let file = t.path("logs/access.log");
    assert!(wait_until(WAIT, || std::fs::read_to_string(&file)
        .is_ok_and(|s| s.lines().count() >= 1)));
    let line = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    let f: Vec<&str> = line.split('|').collect();
    assert_eq!(f.len(), 18, "{line}");
    assert_eq!(&f[..4], ["GET", "/items", "page=2", "201"], "{line}");
    assert!(f[4].parse::<u64>().is_ok(), "latency in ms: {line}");
    assert!(f[5].starts_with("127.0.0.1:"), "{line}");
    assert_eq!(f[6], "127.0.0.1");
    assert_eq!(f[7], "logs.example");
    assert_eq!(f[8], "backend");
    assert_eq!(f[9], origin.addr.to_string());
    assert_eq!(f[10], id);
    assert_eq!(
        &f[11..17],
        ["hello", "yes", "s42", "all", "main", "4"],
        "{line}"
    );
    assert_eq!(f[17], "HTTP/1.1");
}

#[test]
fn presets_common_combined_and_json_to_stdout() {
    let origin = Origin::named("o");
    let (p1, p2, p3) = (free_port(), free_port(), free_port());
    let cfg = format!(
        r#"
[servers.common]
addr = "127.0.0.1:{p1}"
locations = ["all"]
access_log = "common"
[servers.combined]
addr = "127.0.0.1:{p2}"
locations = ["all"]
access_log = "combined"
[servers.json]
addr = "127.0.0.1:{p3}"
locations = ["all"]
access_log = "json"
[locations.all]
upstream = "backend"
[upstreams.backend]
addrs = ["{}"]
"#,
        origin.addr
    );
    let t = Tidegate::start(&cfg, &[p1, p2, p3]);
    get(p1, "h", "/c1", &[]);
    get(
        p2,
        "h",
        "/c2?q=1",
        &[("referer", "http://ref/"), ("user-agent", "agent/7")],
    );
    get(p3, "h", "/c3", &[("user-agent", "say \"hi\"")]);
    // a quote in a text line's value cannot close its quoted field
    get(p2, "h", "/c4", &[("user-agent", "say \"hi\"\\")]);
    assert!(
        wait_until(WAIT, || t.stdout().lines().count() >= 4),
        "{}",
        t.stdout()
    );
    let out = t.stdout();
    let line = |needle: &str| {
        out.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle} in {out}"))
            .to_string()
    };
    let c1 = line("/c1");
    assert!(c1.starts_with("127.0.0.1 - - ["), "{c1}");
    assert!(c1.ends_with("\"GET /c1 HTTP/1.1\" 200 1"), "{c1}");
    let c2 = line("/c2");
    assert!(
        c2.ends_with("\"GET /c2?q=1 HTTP/1.1\" 200 1 \"http://ref/\" \"agent/7\""),
        "{c2}"
    );
    assert!(
        line("/c4").ends_with(r#" "-" "say \x22hi\x22\x5C""#),
        "{}",
        line("/c4")
    );
    let c3 = line("/c3");
    assert!(c3.starts_with('{') && c3.ends_with('}'), "{c3}");
    assert!(
        c3.contains("\"uri\":\"/c3\"") && c3.contains("\"status\":\"200\""),
        "{c3}"
    );
    assert!(
        c3.contains(r#""user_agent":"say \"hi\"""#),
        "quotes escaped: {c3}"
    );
}

#[test]
fn errors_and_404s_are_logged_with_their_status() {
    let port = free_port();
    let dead = free_port();
    let cfg = format!(
        r#"
[servers.main]
addr = "127.0.0.1:{port}"
locations = ["dead"]
access_log = "{{path}} {{status}}"
[locations.dead]
path = "/dead"
upstream = "dead"
[upstreams.dead]
addrs = ["127.0.0.1:{dead}"]
"#
    );
    let t = Tidegate::start(&cfg, &[port]);
    assert_eq!(get(port, "h", "/dead", &[]).status, 502);
    assert_eq!(get(port, "h", "/nowhere", &[]).status, 404);
    assert!(wait_until(WAIT, || t.stdout().lines().count() >= 2));
    let out = t.stdout();
    assert!(
        out.contains("/dead 502") && out.contains("/nowhere 404"),
        "{out}"
    );
}

/// Lines are batched by the writer thread; the ones still queued when the process stops are
/// written before it exits.
#[test]
fn every_line_is_written_by_the_time_the_process_exits() {
    let origin = Origin::named("o");
    let port = free_port();
    let cfg = simple_config(port, &[origin.addr.to_string()], "", "").replace(
        "[servers.main]",
        "[servers.main]\naccess_log = \"{path}\"\naccess_log_path = \"logs/a.log\"",
    );
    let mut t = Tidegate::start(&cfg, &[port]);
    let s = connect(port);
    let mut r = std::io::BufReader::new(s.try_clone().unwrap());
    for i in 0..300 {
        use std::io::Write;
        (&s).write_all(format!("GET /r{i} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes())
            .unwrap();
        assert_eq!(read_response(&mut r, false).unwrap().status, 200);
    }
    // at once, while the last lines may still be queued
    assert_eq!(unsafe { libc::kill(t.child.id() as i32, libc::SIGTERM) }, 0);
    let status = t.child.wait().unwrap();
    assert!(status.success(), "{status}: {}", t.stderr());
    let log = std::fs::read_to_string(t.path("logs/a.log")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 300, "{}", t.stderr());
    assert_eq!(lines[299], "/r299");
}

/// logrotate's way: the file is moved, SIGUSR1 reopens it; under load, every request's line
/// is in one of the two files, exactly once.
#[test]
fn sigusr1_reopens_the_log_after_a_rotation_and_loses_no_line() {
    let origin = Origin::named("o");
    let port = free_port();
    let cfg = simple_config(port, &[origin.addr.to_string()], "", "").replace(
        "[servers.main]",
        "[servers.main]\naccess_log = \"{path}\"\naccess_log_path = \"logs/a.log\"",
    );
    let t = Tidegate::start(&cfg, &[port]);
    let (log, rotated) = (t.path("logs/a.log"), t.path("logs/a.log.1"));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let clients: Vec<_> = (0..2)
        .map(|c| {
            let (stop, sent) = (stop.clone(), sent.clone());
            std::thread::spawn(move || {
                let s = connect(port);
                let mut r = std::io::BufReader::new(s.try_clone().unwrap());
                let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed)
                    && i < 20_000
                    && std::time::Instant::now() < until
                {
                    use std::io::Write;
                    (&s).write_all(format!("GET /c{c}-{i} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes())
                        .unwrap();
                    assert_eq!(read_response(&mut r, false).unwrap().status, 200);
                    sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    i += 1;
                }
            })
        })
        .collect();
    let count = |p: &std::path::Path| {
        std::fs::read_to_string(p)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    assert!(wait_until(WAIT, || count(&log) >= 200), "{}", t.stderr());
    std::fs::rename(&log, &rotated).unwrap();
    assert_eq!(unsafe { libc::kill(t.child.id() as i32, libc::SIGUSR1) }, 0);
    // the new file appears and fills while the load goes on
    assert!(wait_until(WAIT, || count(&log) >= 200), "{}", t.stderr());
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let total = sent.load(std::sync::atomic::Ordering::Relaxed);
    let all_written = wait_until(WAIT, || count(&rotated) + count(&log) == total);
    assert!(
        all_written,
        "{} + {} lines for {total} requests",
        count(&rotated),
        count(&log)
    );
    // every line is one request's, none twice
    let mut seen = std::collections::HashSet::new();
    for p in [&rotated, &log] {
        for l in std::fs::read_to_string(p).unwrap().lines() {
            assert!(seen.insert(l.to_string()), "{l} logged twice");
        }
    }
    assert!(
        t.stderr().contains("access logs reopened"),
        "{}",
        t.stderr()
    );
}

/// The variables added for operators: client address and port, upstream status and times,
/// retries, the connection's number and request count, query arguments, byte counts, times.
#[test]
fn connection_upstream_and_byte_variables() {
    let origin = Origin::start(|_| Action::Respond(201, vec![], b"made".to_vec()));
    let dead = free_port();
    let port = free_port();
    let cfg = format!(
        r#"
[servers.main]
addr = "127.0.0.1:{port}"
locations = ["all", "mock"]
access_log = "{{remote_addr}}|{{remote_port}}|{{upstream_status}}|{{upstream_connect_time}}|{{upstream_response_time}}|{{retries}}|{{connection}}|{{connection_requests}}|{{?page}}|{{bytes_sent}}|{{request_length}}|{{time_local}}|{{msec}}"
access_log_path = "logs/v.log"

[locations.all]
upstream = "pair"

[locations.mock]
path = "/mock"
plugins = ["m"]

[plugins.m]
category = "mock"
body = "from the plugin"

[upstreams.pair]
addrs = ["127.0.0.1:{dead}", "{}"]
retries = 1
"#,
        origin.addr
    );
    let t = Tidegate::start(&cfg, &[port]);
    // two requests on one connection: the first goes to the dead peer first (round robin)
    let s = connect(port);
    let mut r = std::io::BufReader::new(s.try_clone().unwrap());
    let first = b"GET /x?page=2&b=1 HTTP/1.1\r\nHost: h\r\n\r\n";
    use std::io::Write;
    (&s).write_all(first).unwrap();
    let a = read_response(&mut r, false).unwrap();
    assert_eq!(a.status, 201);
    (&s).write_all(b"GET /mock HTTP/1.1\r\nHost: h\r\n\r\n")
        .unwrap();
    let b = read_response(&mut r, false).unwrap();
    assert_eq!(b.status, 200);
    let local_port = s.local_addr().unwrap().port().to_string();
    let path = t.path("logs/v.log");
    assert!(wait_until(WAIT, || std::fs::read_to_string(&path)
        .map(|l| l.lines().count() == 2)
        .unwrap_or(false)));
    let log = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<Vec<&str>> = log.lines().map(|l| l.split('|').collect()).collect();
    let (x, y) = (&lines[0], &lines[1]);
    assert_eq!(x[0], "127.0.0.1");
    assert_eq!(x[1], local_port);
    assert_eq!(x[2], "201");
    assert!(x[3].contains('.') && x[4].contains('.'), "{log}");
    assert_eq!(x[5], "1", "a retry after the dead peer: {log}");
    assert_eq!(y[6], x[6], "one connection");
    assert_eq!((x[7], y[7]), ("1", "2"));
    assert_eq!((x[8], y[8]), ("2", "-"));
    // what went over the wire, as the client read it
    let wire = |resp: &Response| {
        let reason = match resp.status {
            200 => "OK",
            201 => "Created",
            _ => "",
        };
        let head: usize = resp
            .headers
            .iter()
            .map(|(k, v)| k.len() + v.len() + 4)
            .sum();
        format!("HTTP/1.1 {} {reason}\r\n", resp.status).len() + head + 2 + resp.body.len()
    };
    assert_eq!(x[9], wire(&a).to_string(), "{log}");
    assert_eq!(y[9], wire(&b).to_string(), "{log}");
    assert_eq!(x[10], first.len().to_string());
    // the plugin answered: no upstream
    assert_eq!((y[2], y[3], y[4], y[5]), ("-", "-", "-", "0"));
    let tl = x[11];
    assert!(
        tl.len() == 26 && tl.as_bytes()[2] == b'/' && tl.as_bytes()[6] == b'/' && tl.contains(':'),
        "{tl}"
    );
    let (secs, ms) = x[12].split_once('.').unwrap();
    assert!(secs.parse::<u64>().unwrap() > 1_700_000_000 && ms.len() == 3);
}
