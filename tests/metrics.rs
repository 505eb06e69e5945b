//! Prometheus metrics through real sockets: the exposition (checked by `promtool check
//! metrics`), what requests, upstream failures, retries, Lua hooks and reloads add to it; a
//! real Prometheus (Debian's) scraping it and answering a query with the count the test made;
//! a real Pushgateway receiving pushes.

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The value of the series whose line starts with `series` (name and labels as exposed).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn config(port: u16, live: u16, dead: u16, metrics: &str) -> String {
    format!(
        r#"
[basic]
threads = 1

[servers.main]
addr = "127.0.0.1:{port}"
locations = ["api", "lua"]
metrics = "{metrics}"

[locations.api]
path = "/api"
upstream = "pair"

[locations.lua]
path = "/lua"
plugins = ["check"]

[upstreams.pair]
addrs = ["127.0.0.1:{dead}", "127.0.0.1:{live}"]
retries = 1
algo = "round_robin"

[plugins.check]
category = "lua"
source = '''
return {{ on_request = function(req)
  if req:header("x-fail") then error("asked to fail") end
  return req:respond(200, "lua")
end }}
'''
"#
    )
}

#[test]
fn requests_upstreams_lua_and_reloads_are_counted_and_promtool_accepts_the_exposition() {
    let origin = Origin::named("o");
    let dead = free_port(); // nothing listens: connections are refused
    let port = free_port();
    let t = Tidegate::start(&config(port, origin.port(), dead, "/metrics"), &[port]);
    for _ in 0..4 {
        assert_eq!(get(port, "h", "/api/x", &[]).status, 200);
    }
    let r = send(
        port,
        b"POST /api/x HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(get(port, "h", "/nowhere", &[]).status, 404);
    assert_eq!(get(port, "h", "/lua", &[]).status, 200);
    assert_eq!(get(port, "h", "/lua", &[("x-fail", "1")]).status, 500);

    let m = get(port, "h", "/metrics", &[]);
    assert_eq!(m.status, 200);
    assert!(m
        .header("content-type")
        .unwrap_or("")
        .starts_with("text/plain"));
    let text = m.text();
    let req = |loc: &str, method: &str, code: &str| {
        value(
            &text,
            &format!("tidegate_requests_total{{code=\"{code}\",location=\"{loc}\",method=\"{method}\",server=\"main\"}}"),
        )
    };
    assert_eq!(req("api", "GET", "200"), Some(4.0), "{text}");
    assert_eq!(req("api", "POST", "200"), Some(1.0), "{text}");
    assert_eq!(req("-", "GET", "404"), Some(1.0), "{text}");
    assert_eq!(req("lua", "GET", "500"), Some(1.0), "{text}");
    assert_eq!(
        value(
            &text,
            "tidegate_request_duration_seconds_count{location=\"api\",server=\"main\"}"
        ),
        Some(5.0)
    );
    // round robin over a dead and a live peer: the dead one refused, and each of those
    // requests was retried on the live one
    let refused = value(
        &text,
        "tidegate_upstream_failures_total{kind=\"refused\",upstream=\"pair\"}",
    )
    .unwrap();
    let retries = value(&text, "tidegate_upstream_retries_total{upstream=\"pair\"}").unwrap();
    assert!(
        refused >= 1.0 && retries == refused,
        "refused {refused}, retries {retries}\n{text}"
    );
    assert!(
        value(
            &text,
            "tidegate_upstream_response_duration_seconds_count{upstream=\"pair\"}"
        )
        .unwrap()
            >= 5.0
    );
    assert_eq!(
        value(
            &text,
            &format!(
                "tidegate_upstream_peer_up{{peer=\"127.0.0.1:{}\",upstream=\"pair\"}}",
                origin.port()
            )
        ),
        Some(1.0)
    );
    // Lua: two calls of on_request, one a runtime error
    assert_eq!(
        value(
            &text,
            "tidegate_lua_hook_calls_total{hook=\"on_request\",plugin=\"check\"}"
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "tidegate_lua_hook_errors_total{hook=\"on_request\",kind=\"runtime\",plugin=\"check\"}"
        ),
        Some(1.0)
    );
    // this very request is in flight, on one open connection
    assert_eq!(
        value(&text, "tidegate_requests_in_flight{server=\"main\"}"),
        Some(1.0)
    );
    assert!(value(&text, "tidegate_connections_open{server=\"main\"}").unwrap() >= 1.0);
    assert_eq!(value(&text, "tidegate_config_version"), Some(1.0));
    assert!(value(&text, "process_resident_memory_bytes").unwrap() > 0.0);
    assert!(text.contains("tidegate_build_info{git=\""), "{text}");

    // a reload is counted, applied or rejected
    std::fs::write(
        &t.config,
        config(port, origin.port(), dead, "/metrics") + "\n# touched\n",
    )
    .unwrap();
    assert!(wait_until(WAIT, || {
        value(
            &get(port, "h", "/metrics", &[]).text(),
            "tidegate_config_version",
        ) == Some(2.0)
    }));
    std::fs::write(&t.config, "[servers.main]\nnot valid = [").unwrap();
    assert!(wait_until(WAIT, || {
        value(
            &get(port, "h", "/metrics", &[]).text(),
            "tidegate_config_reloads_total{result=\"rejected\"}",
        ) == Some(1.0)
    }));
    let text = get(port, "h", "/metrics", &[]).text();
    assert_eq!(
        value(&text, "tidegate_config_reloads_total{result=\"applied\"}"),
        Some(1.0)
    );
    assert!(
        value(
            &text,
            "tidegate_config_last_reload_success_timestamp_seconds"
        )
        .unwrap()
            > 1.7e9
    );

    // promtool accepts the exposition as it is
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("m.txt"), &text).unwrap();
    let out = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(dir.path().join("m.txt")).unwrap())
        .output()
        .expect("promtool (apt install prometheus)");
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// GET `path` on 127.0.0.1:`port` as JSON (`Null` while nothing answers yet).
fn json(port: u16, path: &str) -> serde_json::Value {
    let raw = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    send(port, raw.as_bytes())
        .ok()
        .and_then(|r| serde_json::from_slice(&r.body).ok())
        .unwrap_or(serde_json::Value::Null)
}

#[test]
fn a_real_prometheus_scrapes_and_counts_what_the_test_sent() {
    let origin = Origin::named("o");
    let port = free_port();
    let _t = Tidegate::start(
        &config(port, origin.port(), origin.port(), "/metrics"),
        &[port],
    );
    for _ in 0..7 {
        assert_eq!(get(port, "h", "/api/x", &[]).status, 200);
    }
    let dir = tempfile::tempdir().unwrap();
    let prom = free_port();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: tidegate\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        ),
    )
    .unwrap();
    let child = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.path().join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prom}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
        .spawn()
        .expect("prometheus (apt install prometheus)");
    let _prom = KillOnDrop(child);
    let log = || std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();
    // the target is scraped and healthy
    let up = wait_until(Duration::from_secs(60), || {
        json(prom, "/api/v1/targets")["data"]["activeTargets"]
            .as_array()
            .is_some_and(|a| a.iter().any(|t| t["health"] == "up"))
    });
    assert!(up, "target not up:\n{}", log());
    // and a query returns the requests this test made (the scrape requests themselves are
    // counted on /metrics, location "-")
    let counted = wait_until(Duration::from_secs(60), || {
        let v = json(
            prom,
            "/api/v1/query?query=sum(tidegate_requests_total%7Blocation%3D%22api%22%7D)",
        );
        v["data"]["result"][0]["value"][1].as_str() == Some("7")
    });
    assert!(counted, "query did not give 7:\n{}", log());
}

#[test]
fn metrics_are_pushed_to_a_real_pushgateway_with_the_instance_as_grouping_label() {
    let dir = tempfile::tempdir().unwrap();
    let gw = free_port();
    let child = Command::new("prometheus-pushgateway")
        .arg(format!("--web.listen-address=127.0.0.1:{gw}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("pushgateway.log")).unwrap())
        .spawn()
        .expect("prometheus-pushgateway (apt install prometheus-pushgateway)");
    let _gw = KillOnDrop(child);
    assert!(wait_until(WAIT, || std::net::TcpStream::connect((
        "127.0.0.1",
        gw
    ))
    .is_ok()));
    let origin = Origin::named("o");
    let port = free_port();
    let push = format!("http://127.0.0.1:{gw}/metrics/job/tidegate?interval=200ms&instance=t1");
    let t = Tidegate::start(&config(port, origin.port(), origin.port(), &push), &[port]);
    for _ in 0..3 {
        assert_eq!(get(port, "h", "/api/x", &[]).status, 200);
    }
    // no pull path on this server: /metrics is an ordinary (unrouted) request
    assert_eq!(get(port, "h", "/metrics", &[]).status, 404);
    let series = "tidegate_requests_total{code=\"200\",instance=\"t1\",job=\"tidegate\",location=\"api\",method=\"GET\",server=\"main\"}";
    let pushed = wait_until(WAIT, || {
        value(&get(gw, "127.0.0.1", "/metrics", &[]).text(), series) == Some(3.0)
    });
    assert!(pushed, "not pushed:\n{}", t.stderr());
    assert!(t.stderr().contains("pushing metrics"), "{}", t.stderr());
}

#[test]
fn the_grafana_dashboards_queries_are_valid_promql() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/conf/grafana-dashboard.json"
    ))
    .unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    let mut n = 0;
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            // Grafana's variables, as Grafana would fill them in
            let expr = t["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", "1m")
                .replace("$server", ".*")
                .replace("$job", ".*");
            n += 1;
            rules.push_str(&format!(
                "      - record: dashboard:q{n}\n        expr: '{}'\n",
                expr.replace('\'', "''")
            ));
        }
    }
    assert!(n >= 12, "{n} queries");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yml"), &rules).unwrap();
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(dir.path().join("rules.yml"))
        .output()
        .expect("promtool");
    assert!(
        out.status.success(),
        "{}{}\n{rules}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
