//! `GET /config` and `PUT /config` of the admin API: the config as text, with its version as
//! the ETag; a whole new config checked like `tidegate check`, then written over the file
//! (atomically) and applied.
//!
//! A config that is one file takes the new text; a directory or etcd takes
//! `{"documents": [{"name", "text"}]}` (each document replaced or added, the others kept).
//! A `PUT` with `If-Match` naming an older version gets 412 (another change came first);
//! `?dry_run=1` checks without writing.

use super::AdminApp;
use http::StatusCode;
use serde_json::{json, Value};

/// The largest config accepted in a PUT.
const MAX_CONFIG: usize = 1 << 20;

/// The version as an ETag.
pub fn etag(version: u64) -> String {
    format!("\"v{version}\"")
}

impl AdminApp {
    pub(super) fn config_text(&self) -> (StatusCode, Value, u64) {
        let version = self.live.load().version;
        let docs: Vec<Value> = self
            .reloader
            .applied_docs()
            .into_iter()
            .map(|(name, text)| json!({"name": name, "text": text}))
            .collect();
        (
            StatusCode::OK,
            json!({"config_version": version, "documents": docs}),
            version,
        )
    }

    /// A new config for the file source: checked, then written and applied.
    pub(super) async fn put_config(
        &self,
        body: &[u8],
        if_match: Option<&str>,
        dry_run: bool,
        who: &str,
    ) -> (StatusCode, Value) {
        let current = self.live.load().version;
        if let Some(tag) = if_match {
            if tag.trim() != etag(current) && tag.trim() != "*" {
                return (
                    StatusCode::PRECONDITION_FAILED,
                    json!({"error": format!("the config changed: it is at {} now, the request is for {tag}", etag(current))}),
                );
            }
        }
        let path = match self.reloader.source() {
            crate::config::source::Source::Path(p) if !std::path::Path::new(p).is_dir() => p,
            crate::config::source::Source::Embedded => {
                return (
                    StatusCode::NOT_IMPLEMENTED,
                    json!({"error": "the embedded demo config cannot be written; start with -c FILE"}),
                )
            }
            // a directory or etcd: the documents to write, by name
            _ => return self.put_documents(body, dry_run, who).await,
        };
        if body.len() > MAX_CONFIG {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({"error": "a config is at most 1 MiB"}),
            );
        }
        let Ok(text) = String::from_utf8(body.to_vec()) else {
            return (
                StatusCode::BAD_REQUEST,
                json!({"error": "the config is not UTF-8"}),
            );
        };
        let docs = [crate::config::SourceDoc {
            name: path.clone(),
            text: text.clone(),
        }];
        if let Err(e) = crate::config::validate::build(&docs) {
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"valid": false, "error": e.to_string()}),
            );
        }
        let old = std::fs::read_to_string(path).unwrap_or_default();
        let (added, removed) = line_changes(&old, &text);
        let change = super::entries::diff(path, &old, &text);
        if dry_run {
            return (
                StatusCode::OK,
                json!({"valid": true, "written": false, "lines_added": added, "lines_removed": removed, "diff": change}),
            );
        }
        let tmp = format!("{path}.admin-tmp");
        if let Err(e) = std::fs::write(&tmp, &text).and_then(|_| std::fs::rename(&tmp, path)) {
            let _ = std::fs::remove_file(&tmp);
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": format!("writing {path}: {e}")}),
            );
        }
        tracing::info!(file = %path, by = %who, lines_added = added, lines_removed = removed, "config written through the admin API:\n{change}");
        let (status, mut v) = self.reload().await;
        v["written"] = json!(true);
        (status, v)
    }
}

impl AdminApp {
    /// `PUT /config` on a directory or etcd: `{"documents": [{"name", "text"}]}`, each an
    /// existing document replaced or a new one (a file in the directory, a key under the
    /// prefix); the others stay. Checked together, then written and applied.
    async fn put_documents(&self, body: &[u8], dry_run: bool, who: &str) -> (StatusCode, Value) {
        #[derive(serde::Deserialize)]
        struct Doc {
            name: String,
            text: String,
        }
        #[derive(serde::Deserialize)]
        struct Docs {
            documents: Vec<Doc>,
        }
        let Ok(new) = serde_json::from_slice::<Docs>(body) else {
            return (
                StatusCode::BAD_REQUEST,
                json!({"error": "this config is several documents: send {\"documents\": [{\"name\": ..., \"text\": ...}]}"}),
            );
        };
        let mut docs: Vec<crate::config::SourceDoc> = self
            .reloader
            .applied_docs()
            .into_iter()
            .map(|(name, text)| crate::config::SourceDoc { name, text })
            .collect();
        let mut diffs = String::new();
        for d in &new.documents {
            if !self.may_hold(&d.name) {
                return (
                    StatusCode::BAD_REQUEST,
                    json!({"error": format!("{} is not a document of this config's source", d.name)}),
                );
            }
            let old = docs
                .iter()
                .find(|x| x.name == d.name)
                .map(|x| x.text.clone())
                .unwrap_or_default();
            diffs.push_str(&super::entries::diff(&d.name, &old, &d.text));
            match docs.iter_mut().find(|x| x.name == d.name) {
                Some(x) => x.text = d.text.clone(),
                None => docs.push(crate::config::SourceDoc {
                    name: d.name.clone(),
                    text: d.text.clone(),
                }),
            }
        }
        if let Err(e) = crate::config::validate::build(&docs) {
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"valid": false, "error": e.to_string(), "diff": diffs}),
            );
        }
        if dry_run {
            return (
                StatusCode::OK,
                json!({"valid": true, "written": false, "diff": diffs}),
            );
        }
        for d in &new.documents {
            if let Err(e) = self.write_doc(&d.name, &d.text).await {
                return (StatusCode::INTERNAL_SERVER_ERROR, json!({ "error": e }));
            }
        }
        tracing::info!(by = %who, "config documents written through the admin API:\n{diffs}");
        let (status, mut v) = self.reload().await;
        v["written"] = json!(true);
        v["diff"] = json!(diffs);
        (status, v)
    }

    /// Whether a document of this name belongs to the source: a `.toml` file directly in
    /// the directory, or a key under the etcd prefix.
    fn may_hold(&self, name: &str) -> bool {
        match self.reloader.source() {
            crate::config::source::Source::Path(dir) => {
                let p = std::path::Path::new(name);
                p.parent() == Some(std::path::Path::new(dir))
                    && p.extension().is_some_and(|x| x == "toml")
                    && !name.contains("/../")
            }
            crate::config::source::Source::Etcd(e) => {
                let key = name
                    .strip_prefix(&format!("etcd://{}", e.endpoint))
                    .unwrap_or(name);
                key.starts_with(&e.prefix) && !key.contains("..")
            }
            crate::config::source::Source::Embedded => false,
        }
    }
}

/// Lines of `new` not in `old`, and of `old` not in `new` (as multisets): the size of a change
/// for the log.
fn line_changes(old: &str, new: &str) -> (usize, usize) {
    let mut count: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
    for l in old.lines() {
        *count.entry(l).or_default() += 1;
    }
    for l in new.lines() {
        *count.entry(l).or_default() -= 1;
    }
    let removed = count
        .values()
        .filter(|c| **c > 0)
        .map(|c| *c as usize)
        .sum();
    let added = count
        .values()
        .filter(|c| **c < 0)
        .map(|c| (-*c) as usize)
        .sum();
    (added, removed)
}

#[cfg(test)]
mod tests {
    #[test]
    fn line_changes() {
        assert_eq!(super::line_changes("a\nb\nc\n", "a\nx\nc\ny\n"), (2, 1));
        assert_eq!(super::line_changes("a\n", "a\n"), (0, 0));
    }
}
