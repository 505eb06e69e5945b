//! Configuration in etcd: `-c etcd://HOST:PORT/PREFIX`.
//!
//! Every key under the prefix holds one TOML document; they are merged like the files of a
//! directory (in key order), so moving a config directory into etcd is one put per file:
//!
//! ```sh
//! for f in conf.d/*.toml; do etcdctl put "/tidegate/$(basename $f)" "$(cat $f)"; done
//! tidegate -c etcd://127.0.0.1:2379/tidegate/
//! ```
//!
//! A watch on the prefix applies changes as they come. When etcd goes away the last good
//! config keeps serving; the watch reconnects with backoff and, once back, loads the prefix
//! again so changes made meanwhile are not missed.

use super::SourceDoc;
use crate::reload::Reloader;
use etcd_client::{Client, ConnectOptions, GetOptions, WatchOptions};
use std::sync::Arc;
use std::time::Duration;

/// `etcd://HOST:PORT/PREFIX`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdSource {
    pub endpoint: String,
    pub prefix: String,
}

impl EtcdSource {
    pub fn parse(url: &str) -> Result<EtcdSource, String> {
        let rest = url
            .strip_prefix("etcd://")
            .ok_or_else(|| format!("`{url}` is not etcd://HOST:PORT/PREFIX"))?;
        let (endpoint, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if endpoint.is_empty() || !endpoint.contains(':') {
            return Err(format!(
                "`{url}`: write etcd://HOST:PORT/PREFIX, e.g. etcd://127.0.0.1:2379/tidegate/"
            ));
        }
        Ok(EtcdSource {
            endpoint: endpoint.to_string(),
            prefix: prefix.to_string(),
        })
    }

    pub fn describe(&self) -> String {
        format!("etcd://{}{}", self.endpoint, self.prefix)
    }

    async fn client(&self) -> Result<Client, String> {
        let opts = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_timeout(Duration::from_secs(5));
        Client::connect([self.endpoint.as_str()], Some(opts))
            .await
            .map_err(|e| format!("etcd at {} is unreachable: {e}", self.endpoint))
    }

    /// Every document under the prefix, in key order.
    pub async fn fetch(&self) -> Result<Vec<SourceDoc>, String> {
        let mut client = self.client().await?;
        self.fetch_with(&mut client).await
    }

    async fn fetch_with(&self, client: &mut Client) -> Result<Vec<SourceDoc>, String> {
        let resp = client
            .get(self.prefix.as_str(), Some(GetOptions::new().with_prefix()))
            .await
            .map_err(|e| {
                format!(
                    "etcd at {} is unreachable or failing: reading {} failed: {e}",
                    self.endpoint, self.prefix
                )
            })?;
        let mut docs = Vec::new();
        for kv in resp.kvs() {
            let key = kv
                .key_str()
                .map_err(|e| format!("a key under {} is not UTF-8: {e}", self.prefix))?;
            let text = kv
                .value_str()
                .map_err(|e| format!("etcd key {key} is not UTF-8 text: {e}"))?;
            docs.push(SourceDoc {
                name: format!("etcd://{}{key}", self.endpoint),
                text: text.to_string(),
            });
        }
        docs.sort_by(|a, b| a.name.cmp(&b.name));
        if docs.is_empty() {
            return Err(format!("no keys under {}", self.describe()));
        }
        Ok(docs)
    }

    /// Write one document: `name` as [`fetch`](Self::fetch) names it (`etcd://HOST:PORT/KEY`)
    /// or a bare key.
    pub async fn put(&self, name: &str, text: &str) -> Result<(), String> {
        let key = name
            .strip_prefix(&format!("etcd://{}", self.endpoint))
            .unwrap_or(name);
        if !key.starts_with(&self.prefix) {
            return Err(format!("{key} is not under {}", self.prefix));
        }
        let mut client = self.client().await?;
        client
            .put(key, text, None)
            .await
            .map(|_| ())
            .map_err(|e| format!("writing {key} to etcd at {}: {e}", self.endpoint))
    }

    /// Fetch from a synchronous caller (start-up, SIGHUP): a small runtime of its own.
    pub fn fetch_blocking(&self) -> Result<Vec<SourceDoc>, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start a runtime for etcd: {e}"))?;
        rt.block_on(self.fetch())
    }

    /// Watch the prefix forever, applying each change; reconnects after an outage.
    pub async fn watch(self, reloader: Arc<Reloader>) {
        let mut backoff = Duration::from_millis(250);
        let mut connected_once = false;
        loop {
            match self.watch_once(&reloader, connected_once).await {
                Ok(()) => {}
                Err(e) => tracing::warn!(
                    "{e}; the last good config keeps serving, retrying in {backoff:?}"
                ),
            }
            connected_once = true;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    async fn watch_once(&self, reloader: &Arc<Reloader>, resync: bool) -> Result<(), String> {
        let mut client = self.client().await?;
        let (_watcher, mut stream) = client
            .watch(
                self.prefix.as_str(),
                Some(WatchOptions::new().with_prefix()),
            )
            .await
            .map_err(|e| format!("watching {} failed: {e}", self.describe()))?;
        tracing::info!(source = %self.describe(), "watching etcd for changes");
        if resync {
            // changes made while we were away
            self.apply(&mut client, reloader, "etcd reconnect").await;
        }
        loop {
            match stream.message().await {
                Ok(Some(_)) => {
                    // a burst of puts (one per file) arrives together: gather it
                    while let Ok(Ok(Some(_))) =
                        tokio::time::timeout(Duration::from_millis(50), stream.message()).await
                    {
                    }
                    self.apply(&mut client, reloader, "etcd change").await;
                }
                Ok(None) => return Err(format!("the etcd watch on {} ended", self.describe())),
                Err(e) => return Err(format!("lost etcd at {}: {e}", self.endpoint)),
            }
        }
    }

    async fn apply(&self, client: &mut Client, reloader: &Arc<Reloader>, reason: &'static str) {
        match self.fetch_with(client).await {
            Ok(docs) => {
                let r = reloader.clone();
                let _ = tokio::task::spawn_blocking(move || r.apply(reason, Some(docs))).await;
            }
            Err(e) => tracing::error!("{e}; the previous config keeps serving"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let s = EtcdSource::parse("etcd://127.0.0.1:2379/tidegate/").unwrap();
        assert_eq!(s.endpoint, "127.0.0.1:2379");
        assert_eq!(s.prefix, "/tidegate/");
        assert_eq!(EtcdSource::parse("etcd://h:1").unwrap().prefix, "/");
        assert!(EtcdSource::parse("etcd:///x").is_err());
        assert!(EtcdSource::parse("http://h:1/x").is_err());
    }
}
