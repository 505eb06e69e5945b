//! HTTP/2 floods against an h2c listener: rapid reset (CVE-2023-44487), a CONTINUATION
//! flood, a SETTINGS flood and a WINDOW_UPDATE flood, crafted with Python's h2 libraries
//! (tests/h2_floods.py; `scripts/test.sh` installs them). While each runs, other clients are
//! served, and tidegate's memory stays bounded.

mod common;
use common::lua::h2_request;
use common::*;
use std::process::Command;

/// Resident memory of `pid` in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn h2_floods_leave_others_served_and_memory_bounded() {
    let origin = Origin::start(|r| ok(&r.path));
    let port = free_port();
    let cfg = format!(
        "[basic]\nthreads = 2\n[servers.main]\naddr = \"127.0.0.1:{port}\"\nlocations = [\"all\"]\n\
         http2 = true\n[locations.all]\nupstream = \"backend\"\n[upstreams.backend]\naddrs = [\"{}\"]\n",
        origin.addr
    );
    let t = Tidegate::start(&cfg, &[port]);
    let pid = t.child.id();
    assert_eq!(h2_request(port, "GET", "/warm", b"").0, 200);
    let base = rss_kib(pid);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/h2_floods.py");
    for attack in ["rapid_reset", "continuation", "settings", "window_update"] {
        let flood = Command::new("python3")
            .args([script, &port.to_string(), attack])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("python3 with the h2 package (scripts/test.sh installs it)");
        // others are answered while the flood runs (over HTTP/2 and HTTP/1)
        for i in 0..5 {
            assert_eq!(
                h2_request(port, "GET", &format!("/during/{i}"), b"").0,
                200,
                "{attack}"
            );
            assert_eq!(get(port, "h", "/during-h1", &[]).status, 200, "{attack}");
        }
        let out = flood.wait_with_output().unwrap();
        let report = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success() && report.starts_with(attack),
            "{attack}: {report}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("{}  rss={} KiB", report.trim(), rss_kib(pid));
        assert!(matches!(t.child.id(), p if p == pid));
        assert_eq!(h2_request(port, "GET", "/after", b"").0, 200, "{attack}");
        let grown = rss_kib(pid).saturating_sub(base);
        assert!(grown < 256 * 1024, "{attack}: memory grew by {grown} KiB");
    }
    // no flood's streams reached the origin unbounded
    let flooded = origin
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/flood/"))
        .count();
    assert!(flooded < 20_000, "{flooded} flood streams proxied");
    assert!(!t.stderr().contains("panicked"), "{}", t.stderr());
}
