//! The command line and `tidegate check`: every error with file, table, key and line.

mod common;
use common::*;

fn check(files: &[(&str, &str)]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let target = if files.len() == 1 {
        dir.path().join(files[0].0)
    } else {
        dir.path().to_path_buf()
    };
    run_cli(&["check", "-c", target.to_str().unwrap()], dir.path())
}

#[test]
fn check_accepts_a_valid_config() {
    let (code, out) = check(&[("a.toml", &simple_config(1, &["127.0.0.1:9".into()], "", ""))]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.trim(), "ok");
}

#[test]
fn check_reports_every_error_with_file_table_key_and_line() {
    let text = r#"[basic]
threads = 2

[servers.web]
addr = ["127.0.0.1:7001", "127.0.0.1:7001"]
locations = ["api", "ghost"]
adrr = "typo"

[locations.api]
path = "~^/v(?<ver>[0-9+)/"
upstream = "nowhere"
timeout = "ten seconds"

[upstreams.real]
addrs = ["127.0.0.1:9001"]
algo = "fastest"
"#;
    let (code, out) = check(&[("bad.toml", text)]);
    assert_eq!(code, 1, "{out}");
    // unknown key, with its line
    assert!(out.contains("bad.toml:7: [servers.web] adrr"), "{out}");
    // bad regex, line 10
    assert!(
        out.contains("bad.toml:10: [locations.api] path: bad path regex"),
        "{out}"
    );
    // unknown upstream reference
    assert!(
        out.contains("bad.toml:11: [locations.api] upstream: unknown upstream `nowhere`"),
        "{out}"
    );
    // bad duration
    assert!(
        out.contains("bad.toml:12: [locations.api] timeout"),
        "{out}"
    );
    // bad algo
    assert!(
        out.contains("bad.toml:16: [upstreams.real] algo: unknown algo `fastest`"),
        "{out}"
    );
}

#[test]
fn check_reports_semantic_errors_together() {
    let text = r#"
[servers.web]
addr = ["127.0.0.1:7001", "127.0.0.1:7001"]
locations = ["ghost"]

[servers.other]
addr = "127.0.0.1:7001"

[locations.l]
plugins = ["nope"]
upstream = "$missing"
"#;
    let (code, out) = check(&[("x.toml", text)]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("duplicate listener 127.0.0.1:7001"), "{out}");
    assert!(
        out.contains("[servers.web] locations: unknown location `ghost`"),
        "{out}"
    );
    assert!(
        out.contains("[locations.l] plugins: unknown plugin `nope`"),
        "{out}"
    );
    assert!(out.contains("unknown variable `$missing`"), "{out}");
    // all of them, not just the first
    assert!(
        out.lines().filter(|l| l.contains("x.toml:")).count() >= 4,
        "{out}"
    );
}

#[test]
fn check_names_line_of_toml_syntax_errors() {
    let (code, out) = check(&[(
        "broken.toml",
        "[basic]\nthreads = 2\n[servers.web\naddr = 1\n",
    )]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("broken.toml:3"), "{out}");
}

#[test]
fn check_rejects_unknown_plugin_keys_and_categories() {
    let text = r#"
[servers.web]
addr = "127.0.0.1:7001"

[plugins.a]
category = "mock"
stauts = 200

[plugins.b]
category = "teleport"
"#;
    let (code, out) = check(&[("p.toml", text)]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("p.toml:7: [plugins.a] stauts"), "{out}");
    assert!(
        out.contains("[plugins.b] category: unknown category `teleport`"),
        "{out}"
    );
}

#[test]
fn directory_of_files_is_merged_and_duplicates_are_named() {
    let a = "[servers.web]\naddr = \"127.0.0.1:7001\"\nlocations = [\"l\"]\n";
    let b = "[locations.l]\nupstream = \"u\"\n[upstreams.u]\naddrs = [\"127.0.0.1:9\"]\n";
    let (code, out) = check(&[("a.toml", a), ("b.toml", b)]);
    assert_eq!(code, 0, "{out}");
    let c = "[locations.l]\npath = \"/x\"\n";
    let (code, out) = check(&[("a.toml", a), ("b.toml", b), ("c.toml", c)]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("c.toml:1: [locations.l]: already defined in"),
        "{out}"
    );
}

#[test]
fn version_and_help() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = run_cli(&["--version"], dir.path());
    assert_eq!(code, 0);
    assert!(out.contains(env!("CARGO_PKG_VERSION")), "{out}");
    let (code, out) = run_cli(&["--help"], dir.path());
    assert_eq!(code, 0);
    assert!(
        out.contains("check") && out.contains("--upgrade") && out.contains("--pid-file"),
        "{out}"
    );
}

#[test]
fn no_arguments_serves_the_embedded_demo() {
    // the demo listens on 127.0.0.1:6188 unless TIDEGATE_LISTEN says otherwise: a port of our
    // own, so the test always runs
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let child = KillOnDrop(
        std::process::Command::new(bin())
            .current_dir(dir.path())
            .env_remove("TIDEGATE_CONFIG")
            .env("TIDEGATE_LISTEN", format!("127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let up = wait_until(WAIT, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert!(up, "the demo did not listen on {port}");
    let r = get(port, "localhost", "/ping", &[]);
    let j = get(port, "localhost", "/json", &[]);
    drop(child);
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "pong\n");
    assert!(j.text().contains("\"service\":\"tidegate\""));
}

#[test]
fn a_taken_port_is_reported_clearly() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.toml");
    std::fs::write(&path, simple_config(port, &["127.0.0.1:9".into()], "", "")).unwrap();
    let (code, out) = run_cli(&["-c", path.to_str().unwrap()], dir.path());
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("127.0.0.1:{port}")) && out.contains("server `main`"),
        "{out}"
    );
}

#[test]
fn daemon_mode_writes_the_pid_file_and_serves() {
    let origin = Origin::named("d");
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("t.toml");
    std::fs::write(
        &cfg,
        simple_config(port, &[origin.addr.to_string()], "", ""),
    )
    .unwrap();
    let pid_file = dir.path().join("tg.pid");
    // the daemon keeps whatever stdio it inherits: give it files, not pipes
    let status = std::process::Command::new(bin())
        .args([
            "-d",
            "-c",
            cfg.to_str().unwrap(),
            "--pid-file",
            pid_file.to_str().unwrap(),
        ])
        .current_dir(dir.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(dir.path().join("out.log")).unwrap())
        .stderr(std::fs::File::create(dir.path().join("err.log")).unwrap())
        .status()
        .unwrap();
    assert!(
        status.success(),
        "{}",
        std::fs::read_to_string(dir.path().join("err.log")).unwrap_or_default()
    );
    let pid = || {
        std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
    };
    assert!(wait_until(WAIT, || pid().is_some()), "no pid file");
    let served = wait_until(WAIT, || {
        send(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").is_ok_and(|r| r.text() == "d")
    });
    let pid = pid().unwrap();
    unsafe { libc::kill(pid, libc::SIGTERM) };
    assert!(
        served,
        "the daemon did not serve:\n{}",
        std::fs::read_to_string(dir.path().join("err.log")).unwrap_or_default()
    );
    assert!(
        wait_until(WAIT, || unsafe { libc::kill(pid, 0) } != 0),
        "daemon did not stop on SIGTERM:\n{}",
        std::fs::read_to_string(dir.path().join("err.log")).unwrap_or_default()
    );
}

/// `--pid-file` is written in the foreground too, and `[basic] error_log` takes the log.
#[test]
fn pid_file_and_error_log_without_daemon() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = simple_config(port, &["127.0.0.1:9".into()], "", "")
        .replace("[basic]\n", "[basic]\nerror_log = \"logs/error.log\"\n");
    std::fs::write(dir.path().join("t.toml"), cfg).unwrap();
    let pid_file = dir.path().join("run/tidegate.pid");
    std::fs::create_dir_all(pid_file.parent().unwrap()).unwrap();
    let child = KillOnDrop(
        std::process::Command::new(bin())
            .args(["-c", "t.toml", "--pid-file"])
            .arg(&pid_file)
            .current_dir(dir.path())
            .env("TIDEGATE_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let log = dir.path().join("logs/error.log");
    assert!(
        wait_until(WAIT, || std::fs::read_to_string(&log).is_ok_and(|l| l
            .contains("listening")
            && l.contains(&port.to_string()))),
        "{:?}",
        std::fs::read_to_string(&log)
    );
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    assert_eq!(pid.trim(), child.0.id().to_string());
}
