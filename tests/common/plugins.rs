//! Helpers of the plugin tests: `tidegate check` on a config text, a config with one
//! location whose plugins are given, and a gate that holds origin requests until opened.

use super::*;
use std::sync::{Arc, Condvar, Mutex};

/// Run `tidegate check` on `text`; (exit code, output).
pub fn check_text(text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tidegate.toml");
    std::fs::write(&path, text).expect("write config");
    run_cli(&["check", "-c", path.to_str().expect("utf-8")], dir.path())
}

/// `check` refuses a plugin table `[plugins.p]` made of `category` and `body`, and its
/// message names the file and line, the table, `key` and says `says`.
pub fn assert_check_refuses(category: &str, body: &str, key: &str, says: &str) {
    let cfg = format!(
        "[servers.s]\naddr = \"127.0.0.1:1\"\nlocations = [\"l\"]\n[locations.l]\npath = \"/\"\nplugins = [\"p\"]\n[plugins.p]\ncategory = \"{category}\"\n{body}\n"
    );
    let (code, out) = check_text(&cfg);
    assert_ne!(code, 0, "{category} {body}: accepted");
    assert!(
        out.contains("tidegate.toml:")
            && out.contains("[plugins.p]")
            && out.contains(&format!(" {key}:"))
            && out.contains(says),
        "{category} {body}: {out}"
    );
}

/// A server on `port` with one location `/` through `plugins` to `origin`, then `tables`.
pub fn one_location(port: u16, origin: &Origin, plugins: &[&str], tables: &str) -> String {
    let list = plugins
        .iter()
        .map(|p| format!("\"{p}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"
[servers.main]
addr = "127.0.0.1:{port}"
locations = ["all"]

[locations.all]
path = "/"
upstream = "backend"
plugins = [{list}]

[upstreams.backend]
addrs = ["{}"]

{tables}
"#,
        origin.addr
    )
}

/// A gate origin requests wait at until it is opened.
#[derive(Clone, Default)]
pub struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    /// Wait (at most 20 s) for the gate to open.
    pub fn pass(&self) {
        let (m, c) = &*self.0;
        let g = m.lock().unwrap_or_else(|p| p.into_inner());
        let _ = c.wait_timeout_while(g, WAIT, |open| !*open);
    }
    pub fn open(&self) {
        let (m, c) = &*self.0;
        *m.lock().unwrap_or_else(|p| p.into_inner()) = true;
        c.notify_all();
    }
}
