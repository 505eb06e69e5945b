//! Config in etcd, against a real etcd (Debian's etcd-server, installed by scripts/setup.sh):
//! start, change, outage and recovery, and etcd unreachable at start.

mod common;
use common::etcd::Etcd;
use common::*;
use std::process::{Command, Stdio};

fn server_doc(port: u16) -> String {
    format!("[servers.main]\naddr = \"127.0.0.1:{port}\"\nlocations = [\"all\"]\n[locations.all]\nupstream = \"backend\"\nplugins = [\"ver\"]\n")
}

fn upstream_doc(origin: &Origin, version: &str) -> String {
    format!(
        "[upstreams.backend]\naddrs = [\"{}\"]\n[plugins.ver]\ncategory = \"response_headers\"\nset = [\"x-version: {version}\"]\n",
        origin.addr
    )
}

fn version(port: u16) -> Option<String> {
    send(
        port,
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    )
    .ok()?
    .header("x-version")
    .map(str::to_string)
}

#[test]
fn etcd_start_change_outage_and_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let etcd_port = free_port();
    let mut etcd = Etcd::start(dir.path(), etcd_port);
    let origin = Origin::named("o");
    let port = free_port();
    // one key per file, as a config directory moved into etcd
    etcd.put("/tg/10-server.toml", &server_doc(port));
    etcd.put("/tg/20-upstream.toml", &upstream_doc(&origin, "1"));
    etcd.put("/other/ignored.toml", "not toml at all [[[");

    let url = format!("etcd://127.0.0.1:{etcd_port}/tg/");
    let (code, out) = run_cli(&["check", "-c", &url], dir.path());
    assert_eq!((code, out.trim()), (0, "ok"));

    let t = Tidegate::start_url(&url, &[port]);
    assert_eq!(version(port).as_deref(), Some("1"));

    // a change is applied
    etcd.put("/tg/20-upstream.toml", &upstream_doc(&origin, "2"));
    assert!(
        wait_until(WAIT, || version(port).as_deref() == Some("2")),
        "{}",
        t.stderr()
    );

    // a bad change is rejected, naming the etcd key
    etcd.put("/tg/30-bad.toml", "[locations.x]\nupstream = \"ghost\"\n");
    assert!(
        wait_until(WAIT, || t.stderr().contains("unknown upstream `ghost`")),
        "{}",
        t.stderr()
    );
    assert!(t
        .stderr()
        .contains(&format!("etcd://127.0.0.1:{etcd_port}/tg/30-bad.toml")));
    assert_eq!(version(port).as_deref(), Some("2"));
    etcd.ctl(&["del", "/tg/30-bad.toml"]).unwrap();

    // outage: the last good config keeps serving
    etcd.stop();
    assert!(
        wait_until(WAIT, || t
            .stderr()
            .contains("the last good config keeps serving")),
        "{}",
        t.stderr()
    );
    for _ in 0..5 {
        assert_eq!(version(port).as_deref(), Some("2"));
    }
    // recovery: etcd comes back, a change made then is applied
    etcd.restart();
    etcd.put("/tg/20-upstream.toml", &upstream_doc(&origin, "3"));
    assert!(
        wait_until(WAIT, || version(port).as_deref() == Some("3")),
        "{}",
        t.stderr()
    );
}

#[test]
fn etcd_unreachable_at_start_is_reported_and_retried() {
    let dir = tempfile::tempdir().unwrap();
    let etcd_port = free_port();
    let origin = Origin::named("o");
    let port = free_port();
    let url = format!("etcd://127.0.0.1:{etcd_port}/tg/");

    // check fails at once, with the reason
    let (code, out) = run_cli(&["check", "-c", &url], dir.path());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("unreachable"), "{out}");

    // run waits and says so
    let err = dir.path().join("tg.err");
    let _tg = KillOnDrop(
        Command::new(bin())
            .args(["-c", &url, "--pid-file"])
            .arg(dir.path().join("pid"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap(),
    );
    let log = || std::fs::read_to_string(&err).unwrap_or_default();
    assert!(
        wait_until(WAIT, || log().contains("unreachable")
            && log().contains("retrying")),
        "{}",
        log()
    );

    let etcd = Etcd::start(dir.path(), etcd_port);
    // half of the config first: not valid yet, so tidegate waits for the rest
    etcd.put("/tg/a.toml", &server_doc(port));
    assert!(
        wait_until(WAIT, || log()
            .contains("the config in etcd is not valid yet")
            && log().contains("unknown upstream `backend`")),
        "{}",
        log()
    );
    etcd.put("/tg/b.toml", &upstream_doc(&origin, "late"));
    let up = wait_until(std::time::Duration::from_secs(40), || {
        version(port).as_deref() == Some("late")
    });
    assert!(up, "never served once etcd came up:\n{}", log());
}
