//! The admin web UI in a real browser: Debian's Chromium, headless, driven by Selenium
//! (`tests/ui/admin_ui.py`) against a tidegate with an origin behind it and a load running.
//! Screenshots of each page go to `target/ui-screenshots/`.

mod common;
use common::*;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn log_in_watch_the_dashboard_and_add_a_location() {
    let origin = Origin::start(|r| ok(&format!("origin saw {}", r.path)));
    let (port, admin) = (free_port(), free_port());
    let scripts = tempfile::tempdir().unwrap();
    let gate = scripts.path().join("gate.lua");
    std::fs::write(
        &gate,
        "local M = {}\nfunction M.on_request(req)\nend\nreturn M\n",
    )
    .unwrap();
    let password = "correct horse battery";
    let hash = bcrypt::hash(password, 4).unwrap();
    let cfg = format!(
        "[admin]\naddr = \"127.0.0.1:{admin}\"\ntoken = \"an-admin-token-of-some-length\"\n\
         user = \"ada\"\npassword_hash = '{hash}'\n\n\
         # the site\n[servers.main]\naddr = \"127.0.0.1:{port}\"\nlocations = [\"all\"]\n\n\
         [locations.all]\npath = \"/\"\nupstream = \"backend\"\nplugins = [\"gate\", \"home\"]\n\n\
         [plugins.gate]\ncategory = \"lua\"\npath = \"{}\"\n\n\
         [plugins.home]\ncategory = \"mock\"\nbody = \"home\"\n\n\
         [upstreams.backend]\naddrs = [\"{}\"]\n",
        gate.display(),
        origin.addr
    );
    let t = Tidegate::start(&cfg, &[port, admin]);
    assert_eq!(get(port, "h", "/shop/x", &[]).text(), "home");

    // a load for the dashboard to show, bounded in time and count
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let load = std::thread::spawn(move || {
        let start = Instant::now();
        let mut n = 0;
        while !s.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(90) && n < 200_000
        {
            get(port, "h", "/", &[]);
            n += 1;
        }
    });
    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots");
    let out = Command::new("python3")
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui/admin_ui.py"))
        .args([&admin.to_string(), &port.to_string(), password])
        .arg(&shots)
        .output()
        .expect("python3 with selenium (scripts/test.sh installs it)");
    stop.store(true, Ordering::SeqCst);
    load.join().unwrap();
    assert!(
        out.status.success(),
        "the browser test failed:\n{}\n{}\n--- tidegate:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        t.stderr()
    );
    let file = std::fs::read_to_string(&t.config).unwrap();
    assert!(
        file.contains("[locations.shop]") && file.contains("# the site"),
        "{file}"
    );
    assert!(
        t.stderr().contains("by=user ada from 127.0.0.1"),
        "{}",
        t.stderr()
    );
    assert_eq!(get(port, "h", "/shop/x", &[]).text(), "origin saw /shop/x");
    let r = get(port, "h", "/", &[]);
    assert_eq!(
        r.header("x-edited"),
        Some("yes"),
        "the script edited in the browser runs"
    );
    assert!(std::fs::read_to_string(&t.config)
        .unwrap()
        .contains("least_conn"));
    // the UI's explain shows what the command prints, word for word
    let ui = std::fs::read_to_string(shots.join("explain.txt")).unwrap();
    let url = format!("http://127.0.0.1:{port}/shop/item");
    let config = t.config.to_str().unwrap().to_string();
    let (code, cli) = run_cli(&["explain", "-c", &config, "GET", &url], t.dir.path());
    assert_eq!(code, 0, "{cli}");
    assert_eq!(ui.trim(), cli.trim());
    for page in [
        "admin-login",
        "admin-dashboard",
        "admin-location-error",
        "admin-locations",
    ] {
        assert!(shots.join(format!("{page}.png")).exists(), "{page}.png");
    }
}
