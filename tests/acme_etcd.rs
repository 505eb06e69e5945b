//! ACME storage shared through etcd (`[storage] kind = "etcd"`): two instances with separate
//! directories and one etcd (a real one, Debian's etcd-server) order once between them, both
//! serve the result, the key is in etcd, and each answers challenges the other stored.

mod common;

use common::acme::{acme_config, dnsmasq, Pebble, LONG};
use common::etcd::Etcd;
use common::tls::Client;
use common::*;

fn etcd_storage(etcd: u16, dir: &std::path::Path) -> String {
    format!(
        "kind = \"etcd\"\nendpoints = [\"127.0.0.1:{etcd}\"]\nprefix = \"/acme-shared/\"\ndir = \"{}\"",
        dir.display()
    )
}

#[test]
fn instances_sharing_etcd_order_once_and_answer_each_others_challenges() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = Etcd::start(dir.path(), free_port());
    let (_dns, dns_port) = dnsmasq(dir.path());
    let (http_a, https_a, http_b, https_b) = (free_port(), free_port(), free_port(), free_port());
    // Pebble validates against A only; B may well be the one that orders
    let pebble = Pebble::start(dir.path(), http_a, dns_port, 3600);
    let origin = Origin::named("o");
    let names = ["etcd.acme.test"];
    let (dir_a, dir_b) = (dir.path().join("a"), dir.path().join("b"));
    let a = Tidegate::start(
        &acme_config(
            http_a,
            https_a,
            origin.port(),
            &pebble,
            &etcd_storage(etcd.port, &dir_a),
            &names,
        ),
        &[http_a, https_a],
    );
    let b = Tidegate::start(
        &acme_config(
            http_b,
            https_b,
            origin.port(),
            &pebble,
            &etcd_storage(etcd.port, &dir_b),
            &names,
        ),
        &[http_b, https_b],
    );
    let c = Client::new();
    let served = wait_until(LONG, || {
        c.served_serial(https_a, Some("etcd.acme.test")).is_ok()
            && c.served_serial(https_b, Some("etcd.acme.test")).is_ok()
    });
    assert!(
        served,
        "A:\n{}\nB:\n{}\npebble:\n{}",
        a.stderr(),
        b.stderr(),
        pebble.log()
    );
    let sa = c.served_serial(https_a, Some("etcd.acme.test")).unwrap();
    let sb = c.served_serial(https_b, Some("etcd.acme.test")).unwrap();
    assert_eq!(sa, sb, "both serve the one certificate");
    let orders =
        a.stderr().matches("ACME: ordering").count() + b.stderr().matches("ACME: ordering").count();
    assert_eq!(orders, 1, "A:\n{}\nB:\n{}", a.stderr(), b.stderr());
    // the certificate and its key are in etcd, and in both local copies
    let keys = etcd
        .ctl(&["get", "--prefix", "--keys-only", "/acme-shared/"])
        .unwrap();
    for k in [
        "certificates/site/cert.pem",
        "certificates/site/key.pem",
        "accounts/",
    ] {
        assert!(keys.contains(&format!("/acme-shared/{k}")), "{keys}");
    }
    for d in [&dir_a, &dir_b] {
        assert!(d.join("certificates/site/key.pem").exists());
    }
    // a challenge stored in etcd by anyone is answered by every instance
    etcd.put("/acme-shared/challenges/tok-9", "tok-9.thumbprint");
    for port in [http_a, http_b] {
        let answered = wait_until(WAIT, || {
            get(
                port,
                "etcd.acme.test",
                "/.well-known/acme-challenge/tok-9",
                &[],
            )
            .text()
                == "tok-9.thumbprint"
        });
        assert!(answered, "port {port} does not answer the shared challenge");
    }
    // and withdrawn everywhere when it is deleted
    etcd.ctl(&["del", "/acme-shared/challenges/tok-9"]).unwrap();
    for port in [http_a, http_b] {
        let gone = wait_until(WAIT, || {
            get(
                port,
                "etcd.acme.test",
                "/.well-known/acme-challenge/tok-9",
                &[],
            )
            .text()
                == "o"
        });
        assert!(gone, "port {port} still answers a withdrawn challenge");
    }
}
