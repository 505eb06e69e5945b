//! OpenResty snippets run unchanged by `category = "openresty"` plugins, each compared with
//! what Debian's nginx + libnginx-mod-http-lua answers for the same snippet and request:
//! status, chosen headers and (where nginx's own pages are not involved) the body, byte for
//! byte. Both proxy to the same origin, which echoes what it received.

mod common;
use common::*;
use std::io::Write;
use std::process::{Command, Stdio};

struct Case {
    name: &'static str,
    /// (phase, snippet) in order; each becomes one plugin / one *_by_lua_block
    parts: &'static [(&'static str, &'static str)],
    method: &'static str,
    /// after the case's own prefix /sN
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: &'static str,
    /// response headers compared
    compare: &'static [&'static str],
    /// compare the body too (not where nginx answers with its own error page)
    body_too: bool,
    /// requests sent one after the other (shared-dict counters)
    times: usize,
}

const C: Case = Case {
    name: "",
    parts: &[],
    method: "GET",
    path: "/",
    headers: &[],
    body: "",
    compare: &[],
    body_too: true,
    times: 1,
};

const CASES: &[Case] = &[
    Case {
        name: "api key check answers 401 with cjson",
        parts: &[(
            "access",
            r#"
local cjson = require "cjson"
local key = ngx.req.get_headers()["X-Api-Key"]
if key ~= "s3cret" then
  ngx.status = ngx.HTTP_UNAUTHORIZED
  ngx.header["Content-Type"] = "application/json"
  ngx.say(cjson.encode({ error = "unauthorized" }))
  return ngx.exit(ngx.HTTP_UNAUTHORIZED)
end
"#,
        )],
        compare: &["content-type"],
        ..C
    },
    Case {
        name: "api key check lets the right key through",
        parts: &[(
            "access",
            r#"
if ngx.req.get_headers()["x-api-key"] ~= "s3cret" then
  return ngx.exit(401)
end
ngx.req.set_header("X-Consumer", "demo")
"#,
        )],
        headers: &[("x-api-key", "s3cret")],
        ..C
    },
    Case {
        name: "bearer token by ngx.re.match",
        parts: &[(
            "access",
            r#"
local auth = ngx.var.http_authorization or ""
local m, err = ngx.re.match(auth, [[^Bearer\s+([A-Za-z0-9._-]+)$]], "jo")
if not m then
  ngx.status = 403
  ngx.say("no token")
  return ngx.exit(403)
end
ngx.req.set_header("X-Token", m[1])
"#,
        )],
        headers: &[("authorization", "Bearer abc.def-1")],
        ..C
    },
    Case {
        name: "set and clear request headers in rewrite",
        parts: &[(
            "rewrite",
            r#"
ngx.req.set_header("X-From", "lua")
ngx.req.clear_header("X-Drop")
ngx.req.set_header("X-Count", 3)
"#,
        )],
        headers: &[("x-drop", "1"), ("x-keep", "2")],
        ..C
    },
    Case {
        name: "set_uri_args replaces the query",
        parts: &[(
            "rewrite",
            r#"
ngx.req.set_uri_args({ page = "2 of 3" })
"#,
        )],
        path: "/list?old=1",
        ..C
    },
    Case {
        name: "method check exits 405",
        parts: &[(
            "access",
            r#"
if ngx.req.get_method() ~= "GET" then
  return ngx.exit(ngx.HTTP_NOT_ALLOWED)
end
"#,
        )],
        method: "DELETE",
        body_too: false,
        ..C
    },
    Case {
        name: "redirect to a login page",
        parts: &[(
            "access",
            r#"
if not ngx.var.cookie_session then
  return ngx.redirect("/login?next=" .. ngx.escape_uri(ngx.var.request_uri))
end
"#,
        )],
        path: "/account?tab=a b",
        compare: &["location"],
        body_too: false,
        ..C
    },
    Case {
        name: "query args as JSON",
        parts: &[(
            "access",
            r#"
local cjson = require "cjson"
local args = ngx.req.get_uri_args()
ngx.header.content_type = "application/json"
ngx.say(cjson.encode({ q = args.q }))
"#,
        )],
        path: "/search?q=tide%20gate",
        compare: &["content-type"],
        ..C
    },
    Case {
        name: "rate counting in a shared dict",
        parts: &[(
            "access",
            r#"
local hits = ngx.shared.hits
local n, err = hits:incr("k-" .. ngx.var.remote_addr, 1, 0, 60)
if n > 2 then
  ngx.header["Retry-After"] = "60"
  ngx.status = 429
  ngx.say("slow down")
  return ngx.exit(429)
end
ngx.say("hit ", n)
"#,
        )],
        compare: &["retry-after"],
        times: 3,
        ..C
    },
    Case {
        name: "shared dict add, get and delete",
        parts: &[(
            "access",
            r#"
local d = ngx.shared.hits
local ok, err = d:add("once", "first")
local v = d:get("once")
ngx.say(tostring(ok), " ", tostring(err), " ", v)
if ngx.var.arg_reset then
  d:delete("once")
end
"#,
        )],
        path: "/x",
        times: 2,
        ..C
    },
    Case {
        name: "shared dict ttl and flush_all",
        parts: &[(
            "access",
            r#"
local d = ngx.shared.hits
d:set("t", 1, 100)
local ttl = d:ttl("t")
d:flush_all()
ngx.say(ttl > 90 and ttl <= 100, " ", tostring(d:get("t")))
"#,
        )],
        ..C
    },
    Case {
        name: "digests and base64",
        parts: &[(
            "access",
            r#"
ngx.say(ngx.md5("tidegate"))
ngx.say(ngx.encode_base64(ngx.sha1_bin("tidegate")))
ngx.say(ngx.encode_base64(ngx.hmac_sha1("key", "tidegate")))
ngx.say(ngx.decode_base64("aGVsbG8="))
"#,
        )],
        ..C
    },
    Case {
        name: "escape and args helpers",
        parts: &[(
            "access",
            r#"
ngx.say(ngx.escape_uri("a b/c?d=é"))
ngx.say(ngx.unescape_uri("a%20b+c"))
ngx.say(ngx.encode_args({ q = "x y" }))
local t = ngx.decode_args("a=1&b=two%20words&c")
ngx.say(t.a, "|", t.b, "|", tostring(t.c))
"#,
        )],
        ..C
    },
    Case {
        name: "ngx.re.gsub with $1",
        parts: &[(
            "access",
            r#"
local s, n = ngx.re.gsub("2024-01-31 and 2025-12-01", [[(\d{4})-(\d{2})-(\d{2})]], "$3.$2.$1", "jo")
ngx.say(s, " (", n, ")")
"#,
        )],
        ..C
    },
    Case {
        name: "ngx.re.find and sub",
        parts: &[(
            "access",
            r#"
local from, to = ngx.re.find("hello tidegate", "tide", "jo")
ngx.say(from, " ", to)
local s = ngx.re.sub("a-b-c", "-", "+")
ngx.say(s)
local t = ngx.re.sub("Hello", "l+", function(m) return "<" .. m[0] .. ">" end)
ngx.say(t)
"#,
        )],
        ..C
    },
    Case {
        name: "ngx.re.gmatch over words",
        parts: &[(
            "access",
            r#"
local words = {}
for m in ngx.re.gmatch("one two  three", [[\w+]], "jo") do
  table.insert(words, m[0])
end
ngx.say(table.concat(words, ","))
"#,
        )],
        ..C
    },
    Case {
        name: "named captures and case-insensitive matching",
        parts: &[(
            "access",
            r#"
local m = ngx.re.match("Date: 2026-12", [[(?<year>\d{4})-(?<month>\d{2})]], "jo")
ngx.say(m.year, "/", m.month)
ngx.say(ngx.re.match("HELLO", "hello", "i")[0])
ngx.say(tostring(ngx.re.match("HELLO", "hello")))
"#,
        )],
        ..C
    },
    Case {
        name: "security headers in header_filter",
        parts: &[(
            "header_filter",
            r#"
ngx.header["X-Powered-By"] = nil
ngx.header["X-Frame-Options"] = "DENY"
ngx.header.x_content_type_options = "nosniff"
"#,
        )],
        compare: &["x-powered-by", "x-frame-options", "x-content-type-options"],
        ..C
    },
    Case {
        name: "header_filter changes the status",
        parts: &[(
            "header_filter",
            r#"
if ngx.status == 200 then
  ngx.status = 202
end
"#,
        )],
        ..C
    },
    Case {
        name: "ngx.ctx from access to header_filter",
        parts: &[
            (
                "access",
                r#"
ngx.ctx.user = ngx.var.arg_user or "anonymous"
"#,
            ),
            (
                "header_filter",
                r#"
ngx.header["X-User"] = ngx.ctx.user
"#,
            ),
        ],
        path: "/p?user=ada",
        compare: &["x-user"],
        ..C
    },
    Case {
        name: "body_filter upper-cases the body",
        parts: &[(
            "body_filter",
            r#"
ngx.arg[1] = string.upper(ngx.arg[1])
"#,
        )],
        ..C
    },
    Case {
        name: "body_filter appends a footer",
        parts: &[
            (
                "header_filter",
                r#"
ngx.header.content_length = nil
"#,
            ),
            (
                "body_filter",
                r#"
if ngx.arg[2] then
  ngx.arg[1] = ngx.arg[1] .. "-- served by lua\n"
end
"#,
            ),
        ],
        ..C
    },
    Case {
        name: "request variables",
        parts: &[(
            "access",
            r#"
ngx.say(ngx.var.request_method, " ", ngx.var.uri, " ", ngx.var.args)
ngx.say(ngx.var.arg_x, " ", ngx.var.http_x_test, " ", ngx.var.cookie_sid)
ngx.say(ngx.var.request_uri, " ", ngx.var.is_args)
"#,
        )],
        path: "/vars?x=1&y=2",
        headers: &[("x-test", "yes"), ("cookie", "a=b; sid=42")],
        ..C
    },
    Case {
        name: "a POST body",
        parts: &[(
            "access",
            r#"
ngx.req.read_body()
local body = ngx.req.get_body_data()
ngx.say(#body, ":", body)
local args = ngx.req.get_post_args()
ngx.say(args.name)
"#,
        )],
        method: "POST",
        headers: &[("content-type", "application/x-www-form-urlencoded")],
        body: "name=tide+gate&x=1",
        ..C
    },
    Case {
        name: "cjson.safe on bad input",
        parts: &[(
            "access",
            r#"
local cjson = require "cjson.safe"
local v, err = cjson.decode("{not json")
ngx.say(v == nil, " ", err ~= nil)
local ok = cjson.decode('{"a":[1,2,3]}')
ngx.say(#ok.a, " ", ok.a[3])
"#,
        )],
        ..C
    },
    Case {
        name: "http_time and cookie_time",
        parts: &[(
            "access",
            r#"
ngx.say(ngx.http_time(1700000000))
ngx.say(ngx.cookie_time(1700000000))
"#,
        )],
        ..C
    },
    Case {
        name: "status then exit keeps the body",
        parts: &[(
            "access",
            r#"
ngx.status = 418
ngx.say("I'm a teapot")
return ngx.exit(418)
"#,
        )],
        ..C
    },
    Case {
        name: "ngx.log and on",
        parts: &[(
            "access",
            r#"
ngx.log(ngx.ERR, "openresty-snippet-log ", 42, " ", nil, " ", true)
"#,
        )],
        ..C
    },
    Case {
        name: "ngx.location.capture of another location",
        parts: &[(
            "access",
            r#"
local res = ngx.location.capture("/s27/inner", { args = { a = "1 2" } })
ngx.say(res.status)
ngx.print(res.body)
"#,
        )],
        headers: &[("x-parent", "p")],
        ..C
    },
    Case {
        name: "ngx.print without newline",
        parts: &[(
            "access",
            r#"
ngx.print("a", 1, { "b", "c" })
ngx.print("!")
"#,
        )],
        ..C
    },
];

/// The origin both proxies use: `METHOD URI`, then the x-* headers it got (not the
/// forwarding ones), sorted, then the body's length.
fn origin() -> Origin {
    Origin::start(|r| {
        let mut xs: Vec<String> = r
            .headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .filter(|(k, _)| {
                k.starts_with("x-")
                    && !k.starts_with("x-forwarded")
                    && k != "x-real-ip"
                    && k != "x-request-id"
            })
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        xs.sort();
        let body = format!(
            "{} {}\n{}\nbody {}\n",
            r.method,
            r.path,
            xs.join("\n"),
            r.body.len()
        );
        Action::Respond(
            200,
            vec![
                ("content-type".into(), "text/plain".into()),
                ("x-powered-by".into(), "Origin/1".into()),
            ],
            body.into_bytes(),
        )
    })
}

fn tidegate_config(port: u16, origin: u16) -> String {
    let mut locs = Vec::new();
    let mut out = String::new();
    for (i, case) in CASES.iter().enumerate() {
        locs.push(format!("\"s{i}\""));
        let plugins: Vec<String> = (0..case.parts.len())
            .map(|j| format!("\"p{i}_{j}\""))
            .collect();
        out.push_str(&format!(
            "[locations.s{i}]\npath = \"/s{i}/\"\nupstream = \"origin\"\nplugins = [{}]\n\n",
            plugins.join(", ")
        ));
        for (j, (phase, snippet)) in case.parts.iter().enumerate() {
            out.push_str(&format!(
                "[plugins.p{i}_{j}]\ncategory = \"openresty\"\nphase = \"{phase}\"\nsource = '''{snippet}'''\n\
                 config = {{ capture_base = \"http://127.0.0.1:{port}\" }}\n\n"
            ));
        }
    }
    format!(
        "[basic]\nthreads = 1\ngrace_period = \"1s\"\ngraceful_shutdown_timeout = \"1s\"\n\n\
         [lua]\nshared = {{ hits = 1000 }}\n\n\
         [servers.main]\naddr = \"127.0.0.1:{port}\"\nlocations = [{}]\nforwarded_headers = false\n\n\
         [upstreams.origin]\naddrs = [\"127.0.0.1:{origin}\"]\n\n{out}",
        locs.join(", ")
    )
}

fn nginx_config(dir: &std::path::Path, port: u16, origin: u16) -> String {
    let mut locs = String::new();
    for (i, case) in CASES.iter().enumerate() {
        locs.push_str(&format!("    location /s{i}/ {{\n"));
        for (phase, snippet) in case.parts {
            locs.push_str(&format!("      {phase}_by_lua_block {{{snippet}}}\n"));
        }
        locs.push_str(&format!(
            "      proxy_pass http://127.0.0.1:{origin};\n    }}\n"
        ));
    }
    let d = dir.display();
    format!(
        "load_module /usr/lib/nginx/modules/ndk_http_module.so;\n\
         load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;\n\
         worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  default_type text/plain;\n  lua_shared_dict hits 1m;\n\
         client_body_buffer_size 64k;\n  proxy_http_version 1.1;\n\
         client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
         server {{\n    listen 127.0.0.1:{port};\n{locs}  }}\n}}\n"
    )
}

struct Nginx(std::process::Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn send(port: u16, i: usize, c: &Case) -> Response {
    let path = format!("/s{i}{}", c.path);
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: snippets\r\n",
        c.method,
        path.replace(' ', "%20")
    );
    for (k, v) in c.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !c.body.is_empty() || c.method == "POST" {
        head.push_str(&format!("Content-Length: {}\r\n", c.body.len()));
    }
    head.push_str("Connection: close\r\n\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(c.body.as_bytes());
    common::send(port, &bytes).expect("a response")
}

#[test]
fn snippets_answer_as_they_do_on_openresty() {
    assert!(CASES.len() >= 25, "at least 25 snippets");
    let origin = origin();
    let port = free_port();
    let t = Tidegate::start(&tidegate_config(port, origin.port()), &[port]);
    let dir = tempfile::tempdir().unwrap();
    let nport = free_port();
    std::fs::write(
        dir.path().join("nginx.conf"),
        nginx_config(dir.path(), nport, origin.port()),
    )
    .unwrap();
    let child = Command::new("nginx")
        .args(["-p", &dir.path().display().to_string(), "-c", "nginx.conf"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nginx (apt install nginx libnginx-mod-http-lua lua-cjson)");
    let _nginx = Nginx(child);
    assert!(
        wait_until(WAIT, || std::net::TcpStream::connect(("127.0.0.1", nport))
            .is_ok()),
        "nginx started: {}",
        std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
    );
    let mut report = Vec::new();
    for (i, c) in CASES.iter().enumerate() {
        for n in 0..c.times {
            let ours = send(port, i, c);
            let theirs = send(nport, i, c);
            let mut diffs = Vec::new();
            if ours.status != theirs.status {
                diffs.push(format!("status {} vs nginx {}", ours.status, theirs.status));
            }
            for h in c.compare {
                if ours.header(h) != theirs.header(h) {
                    diffs.push(format!(
                        "{h}: {:?} vs nginx {:?}",
                        ours.header(h),
                        theirs.header(h)
                    ));
                }
            }
            if c.body_too && ours.body != theirs.body {
                diffs.push(format!(
                    "body {:?} vs nginx {:?}",
                    ours.text(),
                    theirs.text()
                ));
            }
            if !diffs.is_empty() {
                report.push(format!(
                    "[{i}] {} (request {}): {}",
                    c.name,
                    n + 1,
                    diffs.join("; ")
                ));
            }
        }
    }
    assert!(
        report.is_empty(),
        "{} differences:\n{}\n--- tidegate log:\n{}",
        report.len(),
        report.join("\n"),
        t.stderr()
    );
    assert!(
        t.stderr().contains("openresty-snippet-log 42 nil true"),
        "{}",
        t.stderr()
    );
    let _ = std::io::stderr().flush();
}

#[test]
fn snippets_tidegate_cannot_run_are_refused_at_load_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "access",
            "local x = 1\nngx.timer.at(0, function() end)\n",
            "line 2: ngx.timer is not supported",
        ),
        (
            "access",
            "local redis = require \"resty.redis\"\n",
            "require \"resty.redis\"",
        ),
        (
            "access",
            "local m = ngx.re.match(s, [[(a)\\1]])\n",
            "ngx.re.match pattern",
        ),
        ("content", "ngx.say(1)\n", "phase `content`"),
        (
            "access",
            "local s = ngx.socket.tcp()\n",
            "ngx.socket is not supported",
        ),
    ];
    for (phase, src, message) in cases {
        let cfg = format!(
            "[servers.main]\naddr = \"127.0.0.1:1\"\nlocations = [\"all\"]\n\n\
             [locations.all]\nplugins = [\"snippet\"]\n\n\
             [plugins.snippet]\ncategory = \"openresty\"\nphase = \"{phase}\"\nsource = '''{src}'''\n"
        );
        std::fs::write(dir.path().join("t.toml"), &cfg).unwrap();
        let (code, out) = run_cli(&["check", "-c", "t.toml"], dir.path());
        assert_ne!(code, 0, "{src}");
        assert!(out.contains(message), "wanted `{message}`: {out}");
        assert!(
            out.contains("t.toml:") && out.contains("plugins.snippet"),
            "{out}"
        );
    }
}

#[test]
fn an_unknown_ngx_field_is_an_error_not_nil() {
    let origin = Origin::named("origin");
    let port = free_port();
    let cfg = format!(
        "[servers.main]\naddr = \"127.0.0.1:{port}\"\nlocations = [\"all\"]\n\n\
         [locations.all]\nupstream = \"o\"\nplugins = [\"snippet\"]\n\n\
         [upstreams.o]\naddrs = [\"{}\"]\n\n\
         [plugins.snippet]\ncategory = \"openresty\"\nphase = \"access\"\n\
         source = '''local v = ngx.no_such_thing'''\n",
        origin.addr
    );
    let t = Tidegate::start(&cfg, &[port]);
    assert_eq!(get(port, "h", "/", &[]).status, 500);
    assert!(
        wait_until(WAIT, || t
            .stderr()
            .contains("ngx.no_such_thing is not supported by tidegate")),
        "{}",
        t.stderr()
    );
}

#[test]
fn a_log_phase_snippet_fills_log_fields() {
    let origin = Origin::named("origin");
    let port = free_port();
    let cfg = format!(
        "[servers.main]\naddr = \"127.0.0.1:{port}\"\nlocations = [\"all\"]\n\
         access_log = \"{{status}} class={{:client_class}}\"\naccess_log_path = \"access.log\"\n\n\
         [locations.all]\nupstream = \"o\"\nplugins = [\"snippet\"]\n\n\
         [upstreams.o]\naddrs = [\"{}\"]\n\n\
         [plugins.snippet]\ncategory = \"openresty\"\nphase = \"log\"\n\
         source = '''\nlocal ua = ngx.var.http_user_agent or \"\"\n\
         ngx.var.client_class = ngx.re.find(ua, \"bot\", \"i\") and \"bot\" or \"human\"\n'''\n",
        origin.addr
    );
    let t = Tidegate::start(&cfg, &[port]);
    assert_eq!(
        get(port, "h", "/", &[("user-agent", "GoogleBot/2")]).status,
        200
    );
    let log = t.path("access.log");
    assert!(
        wait_until(WAIT, || std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("200 class=bot")),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}
