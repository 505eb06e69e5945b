//! Against the real Docker engine: tidegate's own image (scripts/docker-build.sh) runs and
//! proxies; Docker discovery follows labelled containers as they start, stop and turn
//! unhealthy, with nothing lost.

mod common;
use common::docker::{docker, images, responder_dir, Net, HEALTH_IMAGE, IMAGE};
use common::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A container removed when dropped.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .args(["rm", "-f", &self.0])
            .output();
    }
}

#[test]
fn the_image_runs_and_proxies() {
    images();
    let origin = Origin::named("from the origin");
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = simple_config(port, &[origin.addr.to_string()], "", "");
    std::fs::write(dir.path().join("tidegate.toml"), cfg).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        dir.path().join("tidegate.toml"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    // host networking: the container listens on 127.0.0.1 and reaches the origin there
    let name = format!("tidegate-image-{}", std::process::id());
    let mount = format!("{}:/cfg:ro", dir.path().display());
    let _c = Container(name.clone());
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "host",
        "-v",
        &mount,
        IMAGE,
        "-c",
        "/cfg/tidegate.toml",
    ]);
    assert!(
        wait_until(WAIT, || std::net::TcpStream::connect(("127.0.0.1", port))
            .is_ok()),
        "the container listens: {}",
        docker(&["logs", &name])
    );
    let r = get(port, "h", "/x", &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "from the origin"));
    assert_eq!(origin.requests()[0].path, "/x");
    // it runs as nobody, from a small image with no shell
    let user = docker(&["image", "inspect", IMAGE, "--format", "{{.Config.User}}"]);
    assert_eq!(user, "65534:65534");
    let size: u64 = docker(&["image", "inspect", IMAGE, "--format", "{{.Size}}"])
        .parse()
        .unwrap();
    let binary = std::fs::metadata(bin()).unwrap().len();
    assert!(
        size < binary + 30_000_000,
        "the image is the binary and its libraries: {size} bytes"
    );
}

fn host_config(port: u16, network: &str) -> String {
    format!(
        r#"
{BASIC}
[servers.main]
addr = "127.0.0.1:{port}"
locations = ["all"]

[locations.all]
upstream = "web"

[upstreams.web]
discovery = "docker"
docker_network = "{network}"
connect_timeout = "1s"
"#
    )
}

/// Who answered `n` requests.
fn answers(port: u16, n: usize) -> std::collections::HashMap<String, usize> {
    tally((0..n).map(|_| get(port, "web", "/", &[]).text()))
}

#[test]
fn docker_discovery_follows_labelled_containers() {
    images();
    let net = Net::create("disc");
    let dir = tempfile::tempdir().unwrap();
    let label = "tidegate.upstream=web";
    let port_label = "tidegate.port=8080";
    let args = ["-c", "/cfg/tidegate.toml"];
    let a_dir = responder_dir(dir.path(), "a");
    let b_dir = responder_dir(dir.path(), "b");
    net.run("a", HEALTH_IMAGE, &a_dir, &[label, port_label], &args);
    net.run("b", HEALTH_IMAGE, &b_dir, &[label, port_label], &args);
    // same network, no label: never a peer
    let stray = responder_dir(dir.path(), "stray");
    net.run("stray", IMAGE, &stray, &[port_label], &args);

    let port = free_port();
    let t = Tidegate::start(&host_config(port, &net.name), &[port]);
    assert!(
        wait_until(WAIT, || {
            let seen = answers(port, 4);
            seen.get("a") == Some(&2) && seen.get("b") == Some(&2)
        }),
        "both containers serve once healthy: {}",
        t.stderr()
    );

    // under load: a stops, c starts; every request is answered
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let load = std::thread::spawn(move || {
        let start = Instant::now();
        let mut seen = Vec::new();
        while !s.load(Ordering::SeqCst)
            && start.elapsed() < Duration::from_secs(60)
            && seen.len() < 50_000
        {
            let r = get(port, "web", "/", &[]);
            seen.push((r.status, r.text()));
        }
        seen
    });
    docker(&["stop", "-t", "5", &format!("{}-a", net.name)]);
    assert!(
        wait_until(WAIT, || answers(port, 6).get("b") == Some(&6)),
        "a left: {}",
        t.stderr()
    );
    let c_dir = responder_dir(dir.path(), "c");
    net.run("c", HEALTH_IMAGE, &c_dir, &[label, port_label], &args);
    assert!(
        wait_until(WAIT, || answers(port, 4).get("c") == Some(&2)),
        "c joined: {}",
        t.stderr()
    );
    stop.store(true, Ordering::SeqCst);
    let seen = load.join().unwrap();
    let failed: Vec<_> = seen.iter().filter(|(s, _)| *s != 200).collect();
    assert!(seen.len() > 10, "the load ran");
    assert!(
        failed.is_empty(),
        "lost while containers came and went: {failed:?}\n{}",
        t.stderr()
    );
    assert!(!seen.iter().any(|(_, b)| b == "stray"));

    // b turns unhealthy (its health check now fails): it leaves; healthy again, it is back
    std::fs::write(b_dir.join("health.toml"), "not = [toml").unwrap();
    assert!(
        wait_until(WAIT, || answers(port, 4).get("c") == Some(&4)),
        "unhealthy b left: {}",
        t.stderr()
    );
    let good = std::fs::read_to_string(b_dir.join("tidegate.toml")).unwrap();
    std::fs::write(b_dir.join("health.toml"), good).unwrap();
    assert!(
        wait_until(WAIT, || answers(port, 4).get("b") == Some(&2)),
        "healthy b is back: {}",
        t.stderr()
    );
    assert!(t.stderr().contains("discovery: peers changed"));
}
