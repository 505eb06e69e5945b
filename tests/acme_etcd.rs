//! ACME storage shared through etcd (`[storage] kind = "etcd"`): two instances with separate
//! directories and one etcd (a real one, Debian's etcd-server) order once between them, both
//! serve the result, the key is in etcd, and each answers challenges the other stored.

mod common;

use common::acme::pair_ordering_once;
use common::etcd::Etcd;
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
    let (dir_a, dir_b) = (dir.path().join("a"), dir.path().join("b"));
    let p = pair_ordering_once(dir.path(), "etcd.acme.test", |i| {
        etcd_storage(etcd.port, if i == 0 { &dir_a } else { &dir_b })
    });
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
    for port in p.http {
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
    for port in p.http {
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
