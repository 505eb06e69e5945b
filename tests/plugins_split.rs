//! `traffic_split`: a weighted, sticky share and `match` rules send requests to another
//! upstream; the side taken is in the access log.

mod common;
use common::plugins::*;
use common::*;

#[test]
fn a_sticky_share_and_matching_requests_go_to_the_other_upstream() {
    let main = Origin::named("main");
    let canary = Origin::named("canary");
    let port = free_port();
    let cfg = format!(
        r#"
[servers.main]
addr = "127.0.0.1:{port}"
locations = ["all"]
access_log = "{{>x-user}} {{:traffic_split}} {{status}}"
access_log_path = "split.log"

[locations.all]
path = "/"
upstream = "main"
plugins = ["canary"]

[upstreams.main]
addrs = ["{}"]

[upstreams.canary]
addrs = ["{}"]

[plugins.canary]
category = "traffic_split"
upstream = "canary"
weight = 30
match = ["header:x-canary=1", "cookie:beta"]
sticky = "header:x-user"
"#,
        main.addr, canary.addr
    );
    let t = Tidegate::start(&cfg, &[port]);
    let side = |user: &str, extra: &[(&str, &str)]| {
        let mut h = vec![("x-user", user)];
        h.extend_from_slice(extra);
        get(port, "h", "/", &h).text()
    };
    let mut to_canary = 0;
    for u in 0..300 {
        let user = format!("user-{u}");
        let first = side(&user, &[]);
        assert_eq!(side(&user, &[]), first, "{user} stays on one side");
        if first == "canary" {
            to_canary += 1;
        }
    }
    assert!(
        (60..=120).contains(&to_canary),
        "about 30% of 300 users: {to_canary}"
    );
    // the rules send anyone
    let outsider = (0..300)
        .map(|u| format!("user-{u}"))
        .find(|u| side(u, &[]) == "main")
        .unwrap();
    assert_eq!(side(&outsider, &[("x-canary", "1")]), "canary");
    assert_eq!(
        side(&outsider, &[("x-canary", "0")]),
        "main",
        "another value does not match"
    );
    assert_eq!(
        side(&outsider, &[("cookie", "theme=dark; beta=")]),
        "canary",
        "present is enough"
    );
    // the log says which side
    let log = t.path("split.log");
    assert!(
        wait_until(WAIT, || std::fs::read_to_string(&log)
            .is_ok_and(|l| l.lines().count() >= 603)),
        "{}",
        t.stderr()
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.lines().any(|l| l == format!("{outsider} canary 200")),
        "{text}"
    );
    assert!(text.lines().any(|l| l == format!("{outsider} - 200")));
}

#[test]
fn check_names_the_key_of_a_bad_split() {
    let upstream = "[upstreams.canary]\naddrs = [\"127.0.0.1:1\"]\n";
    for (body, key, says) in [
        (
            "upstream = \"nope\"\nweight = 5",
            "upstream",
            "no upstream named `nope`",
        ),
        (
            "upstream = \"canary\"\nweight = 120",
            "weight",
            "not a percentage",
        ),
        ("upstream = \"canary\"", "weight", "nothing is split"),
        (
            "upstream = \"canary\"\nmatch = [\"path=/x\"]",
            "match",
            "header:NAME",
        ),
        (
            "upstream = \"canary\"\nweight = 5\nsticky = \"path\"",
            "sticky",
            "a user's key",
        ),
    ] {
        assert_check_refuses("traffic_split", &format!("{body}\n{upstream}"), key, says);
    }
}
