//! Helpers for the Lua tests: a proxy with one script plugin, and an h2c client.

use super::*;
use std::path::{Path, PathBuf};

/// A server with one Lua plugin on `/lua` and a plain location on `/plain`.
pub fn setup(script: &str, lua_table: &str) -> (Tidegate, u16, Origin) {
    setup_with(
        script,
        lua_table,
        r#"{ header = "x-api-key", greeting = "hello" }"#,
        "",
    )
}

/// As [`setup`], with the plugin's `config` (inline TOML) and more keys for the server.
pub fn setup_with(
    script: &str,
    lua_table: &str,
    conf: &str,
    server_extra: &str,
) -> (Tidegate, u16, Origin) {
    let port = free_port();
    let origin = Origin::start(|r| {
        ok(&format!(
            "origin saw {}",
            r.header("x-from-lua").unwrap_or("-")
        ))
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("script.lua");
    std::fs::write(&path, script).unwrap();
    let cfg = format!(
        r#"
[basic]
threads = 1
{lua_table}
[servers.main]
addr = "127.0.0.1:{port}"
locations = ["lua", "plain"]
access_log = "{{path}} {{status}} user={{:user}}"
{server_extra}

[locations.lua]
path = "/lua"
upstream = "backend"
plugins = ["rid", "script"]

[locations.plain]
path = "/plain"
upstream = "backend"

[upstreams.backend]
addrs = ["{}"]

[plugins.rid]
category = "request_id"

[plugins.script]
category = "lua"
path = "{}"
config = {conf}
"#,
        origin.addr,
        path.display()
    );
    let t = Tidegate::start(&cfg, &[port]);
    // keep the script's directory alive as long as the proxy
    std::mem::forget(dir);
    (t, port, origin)
}

/// The script file a `setup` proxy runs.
pub fn script_path(t: &Tidegate) -> String {
    std::fs::read_to_string(&t.config)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("path = ") && l.ends_with(".lua\""))
        .map(|l| {
            l.trim_start_matches("path = ")
                .trim_matches('"')
                .to_string()
        })
        .expect("a script path in the config")
}

/// One request over h2c (prior knowledge); status, headers, body.
pub fn h2_request(
    port: u16,
    method: &str,
    path: &str,
    body: &[u8],
) -> (u16, http::HeaderMap, Vec<u8>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let (mut client, conn) = h2::client::handshake(s).await.unwrap();
        tokio::spawn(conn);
        let req = http::Request::builder()
            .method(method)
            .uri(format!("http://h{path}"))
            .body(())
            .unwrap();
        let (resp, mut send) = client.send_request(req, body.is_empty()).unwrap();
        if !body.is_empty() {
            send.send_data(bytes::Bytes::copy_from_slice(body), true)
                .unwrap();
        }
        let resp = tokio::time::timeout(WAIT, resp).await.unwrap().unwrap();
        let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
        let mut b = resp.into_body();
        let mut out = Vec::new();
        while let Some(chunk) = b.data().await {
            let chunk = chunk.unwrap();
            let _ = b.flow_control().release_capacity(chunk.len());
            out.extend_from_slice(&chunk);
        }
        (status, headers, out)
    })
}

/// A tidegate whose `/lua` runs `script.lua` from a temp dir, with `[lua] dir` modules.
pub struct DirSetup {
    pub t: Tidegate,
    pub port: u16,
    pub dir: tempfile::TempDir,
    _origin: Origin,
}

impl DirSetup {
    pub fn script(&self) -> PathBuf {
        self.dir.path().join("script.lua")
    }
    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        get(self.port, "h", path, headers)
    }
}

pub fn write(path: &Path, text: &str) {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).unwrap();
    }
    std::fs::write(path, text).unwrap();
}

/// `threads` workers, `/lua` runs script.lua; modules go in `<tmp>/mods`; `lua_extra` is
/// added to `[lua]`.
pub fn setup_dir(
    threads: usize,
    script: &str,
    modules: &[(&str, &str)],
    lua_extra: &str,
) -> DirSetup {
    setup_dir_in(threads, script, modules, None, lua_extra)
}

/// As `setup_dir`, with `[lua] dir` at `lua_dir` instead of `<tmp>/mods`.
pub fn setup_dir_in(
    threads: usize,
    script: &str,
    modules: &[(&str, &str)],
    lua_dir: Option<&Path>,
    lua_extra: &str,
) -> DirSetup {
    let origin = Origin::start(|_| ok("origin"));
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("script.lua"), script);
    for (name, text) in modules {
        write(&dir.path().join("mods").join(name), text);
    }
    let cfg = format!(
        r#"
[basic]
threads = {threads}

[lua]
dir = "{}"
{lua_extra}

[servers.main]
addr = "127.0.0.1:{port}"
locations = ["lua"]

[locations.lua]
path = "/lua"
upstream = "backend"
plugins = ["script"]

[upstreams.backend]
addrs = ["{}"]

[plugins.script]
category = "lua"
path = "{}"
"#,
        lua_dir
            .map(Path::to_path_buf)
            .unwrap_or_else(|| dir.path().join("mods"))
            .display(),
        origin.addr,
        dir.path().join("script.lua").display()
    );
    std::fs::create_dir_all(dir.path().join("mods")).unwrap();
    let t = Tidegate::start(&cfg, &[port]);
    DirSetup {
        t,
        port,
        dir,
        _origin: origin,
    }
}
