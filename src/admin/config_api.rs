//! `GET /config` and `PUT /config` of the admin API: the config as text, with its version as
//! the ETag; a whole new config checked like `tidegate check`, then written over the file
//! (atomically) and applied.
//!
//! Writing is for a config that is one file; a directory or etcd source answers 501 for now.
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
        let crate::config::source::Source::Path(path) = self.reloader.source() else {
            return (
                StatusCode::NOT_IMPLEMENTED,
                json!({"error": "this config's source cannot be written through the API yet (a single file can)"}),
            );
        };
        if std::path::Path::new(path).is_dir() {
            return (
                StatusCode::NOT_IMPLEMENTED,
                json!({"error": "a directory of config files cannot be written through the API yet (a single file can)"}),
            );
        }
        let current = self.live.load().version;
        if let Some(tag) = if_match {
            if tag.trim() != etag(current) && tag.trim() != "*" {
                return (
                    StatusCode::PRECONDITION_FAILED,
                    json!({"error": format!("the config changed: it is at {} now, the request is for {tag}", etag(current))}),
                );
            }
        }
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
