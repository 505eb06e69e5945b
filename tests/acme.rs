//! ACME against a real Pebble (Debian's `pebble`), whose HTTP-01 validation really connects to
//! tidegate's plain listener: Pebble's `httpPort` is that listener's port, and its DNS server
//! is a `dnsmasq` started here that answers `*.acme.test` with 127.0.0.1 (and nothing else:
//! it forwards no query). Pebble's own HTTPS certificate comes from a throw-away CA that
//! tidegate is told to trust (`acme.ca_file`). `acme_etcd.rs` shares the storage through etcd.

mod common;

use common::acme::{dir_storage, pair_ordering_once, single, LONG};
use common::tls::Client;
use common::*;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn issues_for_two_names_then_renews_without_dropping_a_connection() {
    // bound whole: the dnsmasq, Pebble and temp dir it holds live as long as the test
    let s = single(&["one.acme.test", "two.acme.test"], 24, "behind");
    let (t, pebble, https, storage, dir) = (&s.t, &s.pebble, s.https, &s.storage, &s.dir);

    // issued: both names are served the same certificate
    let c = Client::new();
    let issued = wait_until(LONG, || {
        c.served_serial(https, Some("one.acme.test")).is_ok()
    });
    assert!(
        issued,
        "no certificate\ntidegate:\n{}\npebble:\n{}",
        t.stderr(),
        pebble.log()
    );
    let first = c.last_serial();
    let (nb, na) = c.last_validity();
    assert_eq!(
        c.served_serial(https, Some("two.acme.test")).unwrap(),
        first
    );
    // Pebble really validated over HTTP against tidegate
    assert!(
        pebble.log().contains("one.acme.test") && pebble.log().contains("valid"),
        "{}",
        pebble.log()
    );
    // a real client verifies the chain against Pebble's root
    let root = pebble.root(dir.path());
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(&root)
        .arg("--resolve")
        .arg(format!("two.acme.test:{https}:127.0.0.1"))
        .arg(format!("https://two.acme.test:{https}/"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "behind");
    // stored: the key and the account private to the process's user
    use std::os::unix::fs::PermissionsExt;
    let key = storage.join("certificates/site/key.pem");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let accounts: Vec<_> = std::fs::read_dir(storage.join("accounts"))
        .unwrap()
        .collect();
    assert_eq!(accounts.len(), 1);
    let account = accounts[0].as_ref().unwrap().path();
    assert_eq!(
        std::fs::metadata(&account).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // renewal (at two thirds of 24 s): a keep-alive connection keeps being served across it,
    // and new connections get the new certificate
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let (c, stop) = (c.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut s = c.connect(https, Some("one.acme.test")).unwrap();
            let (mut ok, mut failed) = (0u32, 0u32);
            let until = Instant::now() + LONG;
            while !stop.load(Ordering::Relaxed) && ok < 200_000 && Instant::now() < until {
                match tls::request(&mut s, "one.acme.test", "/") {
                    Ok(r) if r.status == 200 => ok += 1,
                    _ => failed += 1,
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (ok, failed)
        })
    };
    let renewed = wait_until(LONG, || {
        c.served_serial(https, Some("one.acme.test"))
            .is_ok_and(|s| s != first)
    });
    assert!(renewed, "not renewed\ntidegate:\n{}", t.stderr());
    // renewed at two thirds of the life (less up to a twelfth of it), well before the end:
    // the new certificate's start, by Pebble's clock, says when it was ordered
    let (new_nb, _) = c.last_validity();
    let life = na - nb;
    assert!(
        new_nb >= nb + life * 7 / 12 - 1 && new_nb <= na - life / 6,
        "renewed at {}s of a {life}s life",
        new_nb - nb
    );
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = worker.join().unwrap();
    assert!(ok > 0);
    assert_eq!(
        failed, 0,
        "{failed} requests on the kept connection failed across the renewal"
    );
    let log = t.stderr();
    assert!(
        log.contains("ACME: ordering") && log.contains("ACME: certificate issued and stored"),
        "{log}"
    );
}

#[test]
fn a_refused_order_is_logged_with_the_reason_and_retried() {
    // dnsmasq knows nothing of this name: Pebble cannot validate it
    let s = single(&["lost.nowhere.test"], 3600, "o");
    let (t, pebble, http, https) = (&s.t, &s.pebble, s.http, s.https);
    let retried = wait_until(LONG, || {
        t.stderr()
            .lines()
            .filter(|l| l.contains("ACME: order failed") && l.contains("lost.nowhere.test"))
            .count()
            >= 2
    });
    assert!(
        retried,
        "tidegate:\n{}\npebble:\n{}",
        t.stderr(),
        pebble.log()
    );
    let log = t.stderr();
    assert!(
        log.contains("attempt=1") && log.contains("attempt=2"),
        "{log}"
    );
    assert!(
        log.contains("retrying in 5s") && log.contains("retrying in 10s"),
        "{log}"
    );
    // meanwhile nothing is served for the name, and plain HTTP works
    assert!(Client::new()
        .connect(https, Some("lost.nowhere.test"))
        .is_err());
    assert_eq!(get(http, "x", "/", &[]).status, 200);
}

#[test]
fn instances_sharing_storage_order_once_and_answer_each_others_challenges() {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("shared");
    let p = pair_ordering_once(dir.path(), "both.acme.test", |_| dir_storage(&storage));

    // whichever instance orders, the other answers its challenges from the shared storage;
    // only a key authorization for the very token in the URL
    std::fs::create_dir_all(storage.join("challenges")).unwrap();
    std::fs::write(storage.join("challenges/tok-1_A"), "tok-1_A.thumbprint").unwrap();
    std::fs::write(storage.join("challenges/tok-2"), "other.thumbprint").unwrap();
    for port in p.http {
        let r = get(
            port,
            "both.acme.test",
            "/.well-known/acme-challenge/tok-1_A",
            &[],
        );
        assert_eq!((r.status, r.text().as_str()), (200, "tok-1_A.thumbprint"));
        let r = get(
            port,
            "both.acme.test",
            "/.well-known/acme-challenge/tok-2",
            &[],
        );
        assert_eq!(
            r.text(),
            "o",
            "a mismatched file is not a challenge (the location serves)"
        );
        let r = get(
            port,
            "both.acme.test",
            "/.well-known/acme-challenge/..%2Fshared",
            &[],
        );
        assert_eq!(r.text(), "o");
    }
}

#[test]
fn a_failed_renewal_keeps_the_old_certificate_serving() {
    let mut s = single(&["keep.acme.test"], 30, "still");
    let https = s.https;
    let c = Client::new();
    assert!(
        wait_until(LONG, || c
            .served_serial(https, Some("keep.acme.test"))
            .is_ok()),
        "no certificate\n{}",
        s.t.stderr()
    );
    let first = c.last_serial();
    // the CA goes away before the renewal is due
    s.pebble.stop();
    // two failed attempts (5 s apart): whatever a failure might have changed has settled
    let failed = wait_until(LONG, || {
        s.t.stderr().contains("ACME: order failed") && s.t.stderr().contains("attempt=2")
    });
    assert!(failed, "{}", s.t.stderr());
    let mut s = c.connect(https, Some("keep.acme.test")).unwrap();
    assert_eq!(c.last_serial(), first, "the old certificate still serves");
    let r = tls::request(&mut s, "keep.acme.test", "/").unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "still"));
}
