//! ACME state shared through etcd (`[storage] kind = "etcd"`), for instances that share no
//! directory.
//!
//! ```toml
//! [storage]
//! kind = "etcd"
//! endpoints = ["10.0.0.5:2379"]
//! prefix = "/tidegate-storage/"   # default; keep it apart from a config prefix
//! dir = "storage"                 # the local copy certificates are loaded from
//! ```
//!
//! etcd holds the same tree as the storage directory (`accounts/`, `certificates/NAME/`,
//! `challenges/`) under the prefix. Each instance mirrors it into its `dir` (a full read, then
//! a watch, so a renewal or a challenge another instance stores arrives within milliseconds);
//! the certificates load from there as with `kind = "file"`. The order lock is a key created
//! only if absent, on a 10-minute lease, so a dead holder's lock expires by itself. Private
//! keys are stored in etcd as they are on disk: restrict who may read the prefix.

use super::store;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, PutOptions, Txn, TxnOp,
    WatchOptions,
};
use std::path::Path;
use std::time::Duration;

/// `[storage] kind = "etcd"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdStorage {
    pub endpoints: Vec<String>,
    /// ends with `/`
    pub prefix: String,
}

const LOCK_TTL_S: i64 = 600;

impl EtcdStorage {
    pub async fn client(&self) -> Result<Client, etcd_client::Error> {
        let opts = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_timeout(Duration::from_secs(5));
        Client::connect(&self.endpoints, Some(opts)).await
    }

    fn key(&self, rel: &str) -> String {
        format!("{}{rel}", self.prefix)
    }

    pub async fn put(&self, rel: &str, bytes: &[u8]) -> Result<(), etcd_client::Error> {
        self.client().await?.put(self.key(rel), bytes, None).await?;
        Ok(())
    }

    pub async fn delete(&self, rel: &str) -> Result<(), etcd_client::Error> {
        self.client().await?.delete(self.key(rel), None).await?;
        Ok(())
    }

    pub async fn get(&self, rel: &str) -> Result<Option<Vec<u8>>, etcd_client::Error> {
        let resp = self.client().await?.get(self.key(rel), None).await?;
        Ok(resp.kvs().first().map(|kv| kv.value().to_vec()))
    }

    /// Take the order lock of `name`: `Ok(None)` when another instance holds it.
    pub async fn lock(&self, name: &str) -> Result<Option<EtcdLock>, etcd_client::Error> {
        let mut c = self.client().await?;
        let lease = c.lease_grant(LOCK_TTL_S, None).await?.id();
        let key = self.key(&format!("certificates/{name}/order.lock"));
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key.clone(),
                std::process::id().to_string(),
                Some(PutOptions::new().with_lease(lease)),
            )]);
        if c.txn(txn).await?.succeeded() {
            Ok(Some(EtcdLock {
                storage: self.clone(),
                lease,
            }))
        } else {
            let _ = c.lease_revoke(lease).await;
            Ok(None)
        }
    }
}

/// A held order lock; [`EtcdLock::release`] frees it at once, and its lease frees it anyway.
#[derive(Debug)]
pub struct EtcdLock {
    storage: EtcdStorage,
    lease: i64,
}

impl EtcdLock {
    pub async fn release(self) {
        if let Ok(mut c) = self.storage.client().await {
            let _ = c.lease_revoke(self.lease).await;
        }
    }
}

/// A key under the prefix as a path under the storage directory, if it is one tidegate
/// writes (`accounts/X.json`, `certificates/NAME/{cert,key}.pem`, `challenges/TOKEN`);
/// anything else is ignored, so a key can never name a file outside the directory.
pub fn local_path(rel: &str) -> Option<(std::path::PathBuf, bool)> {
    let parts: Vec<&str> = rel.split('/').collect();
    let safe = |p: &str| {
        !p.is_empty()
            && p != "."
            && p != ".."
            && p.bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
    };
    if !parts.iter().all(|p| safe(p)) {
        return None;
    }
    match parts.as_slice() {
        ["accounts", f] if f.ends_with(".json") => Some((rel.into(), true)),
        ["certificates", _, "cert.pem"] => Some((rel.into(), false)),
        ["certificates", _, "key.pem"] => Some((rel.into(), true)),
        ["challenges", _] => Some((rel.into(), false)),
        _ => None,
    }
}

fn apply(dir: &Path, rel: &str, value: Option<&[u8]>) {
    let Some((path, private)) = local_path(rel) else {
        return;
    };
    let path = dir.join(path);
    let r = match value {
        Some(v) => store::write_atomic(&path, v, private),
        None => std::fs::remove_file(&path).or_else(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Ok(())
            } else {
                Err(e)
            }
        }),
    };
    if let Err(e) = r {
        tracing::warn!(
            "ACME storage: cannot mirror {rel} into {}: {e}",
            dir.display()
        );
    }
}

/// Mirror the prefix into `dir` until the task is dropped: a full read, then a watch;
/// reconnects with backoff when etcd goes away.
pub async fn mirror(storage: EtcdStorage, dir: std::path::PathBuf) {
    let mut wait = Duration::from_millis(500);
    loop {
        match mirror_once(&storage, &dir).await {
            Ok(()) => wait = Duration::from_millis(500),
            Err(e) => {
                tracing::warn!(
                    "ACME storage: etcd at {:?} failed ({e}); retrying in {wait:?}",
                    storage.endpoints
                );
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(10));
            }
        }
    }
}

async fn mirror_once(storage: &EtcdStorage, dir: &Path) -> Result<(), etcd_client::Error> {
    let mut c = storage.client().await?;
    let resp = c
        .get(
            storage.prefix.as_str(),
            Some(GetOptions::new().with_prefix()),
        )
        .await?;
    for kv in resp.kvs() {
        if let Some(rel) = kv
            .key_str()
            .ok()
            .and_then(|k| k.strip_prefix(&storage.prefix))
        {
            apply(dir, rel, Some(kv.value()));
        }
    }
    let from = resp.header().map(|h| h.revision() + 1).unwrap_or(0);
    let (_watcher, mut stream) = c
        .watch(
            storage.prefix.as_str(),
            Some(WatchOptions::new().with_prefix().with_start_revision(from)),
        )
        .await?;
    tracing::info!(prefix = %storage.prefix, "ACME storage: mirroring etcd");
    while let Some(msg) = stream.message().await? {
        for ev in msg.events() {
            let Some(kv) = ev.kv() else { continue };
            let Some(rel) = kv
                .key_str()
                .ok()
                .and_then(|k| k.strip_prefix(&storage.prefix))
            else {
                continue;
            };
            match ev.event_type() {
                EventType::Put => apply(dir, rel, Some(kv.value())),
                EventType::Delete => apply(dir, rel, None),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::local_path;

    #[test]
    fn only_tidegates_own_keys_map_to_files() {
        assert_eq!(
            local_path("certificates/site/key.pem").map(|p| p.1),
            Some(true)
        );
        assert_eq!(
            local_path("certificates/site/cert.pem").map(|p| p.1),
            Some(false)
        );
        assert!(local_path("challenges/abc-_1").is_some());
        assert!(local_path("accounts/0a1b.json").is_some());
        for bad in [
            "../etc/passwd",
            "certificates/../../x/cert.pem",
            "certificates/site/other.pem",
            "challenges/a/b",
            "/abs",
            "",
            "certificates//cert.pem",
        ] {
            assert!(local_path(bad).is_none(), "{bad}");
        }
    }
}
