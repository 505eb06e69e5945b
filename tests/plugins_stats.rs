//! `stats`: the JSON page counts requests by status class (without `/metrics` exposed),
//! and shows servers, upstream peers, uptime and the config version.

mod common;
use common::*;

#[test]
fn the_stats_page_counts_what_went_through() {
    let origin = Origin::start(|r| {
        if r.path.starts_with("/missing") {
            Action::Respond(404, vec![], b"no".to_vec())
        } else {
            ok("fine")
        }
    });
    let port = free_port();
    let cfg = format!(
        r#"
[servers.main]
addr = "127.0.0.1:{port}"
locations = ["stats", "all"]

[locations.stats]
path = "/stats"
plugins = ["stats"]

[locations.all]
path = "/"
upstream = "backend"

[upstreams.backend]
addrs = ["{}"]

[plugins.stats]
category = "stats"
"#,
        origin.addr
    );
    let t = Tidegate::start(&cfg, &[port]);
    for _ in 0..3 {
        assert_eq!(get(port, "h", "/a", &[]).status, 200);
    }
    for _ in 0..2 {
        assert_eq!(get(port, "h", "/missing", &[]).status, 404);
    }
    // a request is counted when it is logged, just after its answer: wait for all five
    let doc = || -> serde_json::Value {
        serde_json::from_slice(&get(port, "h", "/stats", &[]).body).expect("JSON")
    };
    assert!(
        wait_until(WAIT, || doc()["requests"]["4xx"] == 2
            && doc()["requests"]["2xx"].as_u64() >= Some(3)),
        "{}\n{}",
        doc(),
        t.stderr()
    );
    let d = doc();
    let total = d["requests"]["total"].as_u64().unwrap();
    let by_class: u64 = ["1xx", "2xx", "3xx", "4xx", "5xx"]
        .iter()
        .map(|c| d["requests"][c].as_u64().unwrap())
        .sum();
    assert_eq!(total, by_class);
    assert_eq!(d["requests"]["5xx"], 0);
    assert_eq!(d["config_version"], 1);
    assert!(d["uptime_seconds"].as_u64().is_some());
    assert!(d["servers"]["main"]["connections_open"].as_i64().is_some());
    // latency by location, from the duration histogram
    let all = &d["locations"]["main/all"];
    assert!(all["requests"].as_u64() >= Some(5), "{d}");
    let (p50, p99) = (
        all["p50_ms"].as_f64().unwrap(),
        all["p99_ms"].as_f64().unwrap(),
    );
    assert!(p50 > 0.0 && p50 <= p99, "{all}");
    let peers = d["upstreams"]["backend"].as_array().unwrap();
    assert_eq!(peers[0]["peer"], origin.addr.to_string());
    assert_eq!(peers[0]["up"], true);
    // counting for stats does not expose /metrics: that path still goes to the origin
    assert_eq!(get(port, "h", "/metrics", &[]).text(), "fine");
}
