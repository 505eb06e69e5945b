//! The Lua scripts of the config, read and written through the admin API (the web UI's
//! editor):
//!
//! | endpoint | answer |
//! | --- | --- |
//! | `GET /lua/scripts` | the script and module files the config uses |
//! | `GET /lua/script?path=P` | one of them: its text |
//! | `PUT /lua/script?path=P` | new text: compiled first (422 with the error and its line, nothing saved), then written atomically and applied |
//!
//! Only files the config already uses can be read or written: the API never reaches any
//! other path on the machine.

use super::AdminApp;
use http::StatusCode;
use serde_json::{json, Value};

impl AdminApp {
    fn scripts(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .reloader
            .watched_files()
            .into_iter()
            .filter(|p| p.extension().is_some_and(|x| x == "lua"))
            .map(|p| p.display().to_string())
            .collect();
        all.sort();
        all.dedup();
        all
    }

    pub(super) fn list_scripts(&self) -> (StatusCode, Value) {
        (StatusCode::OK, json!({ "scripts": self.scripts() }))
    }

    /// Refused unless `path` names one of the config's scripts.
    fn known(&self, path: &str) -> Result<(), (StatusCode, Value)> {
        if path.is_empty() {
            return Err((
                StatusCode::BAD_REQUEST,
                json!({"error": "name the script: ?path=... (GET /lua/scripts lists them)"}),
            ));
        }
        if !self.scripts().iter().any(|s| s == path) {
            return Err((
                StatusCode::NOT_FOUND,
                json!({"error": format!("{path} is not a script of this config (GET /lua/scripts)")}),
            ));
        }
        Ok(())
    }

    pub(super) fn read_script(&self, path: &str) -> (StatusCode, Value) {
        if let Err(refused) = self.known(path) {
            return refused;
        }
        match std::fs::read_to_string(path) {
            Ok(text) => (StatusCode::OK, json!({"path": path, "text": text})),
            Err(e) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": format!("reading {path}: {e}")}),
            ),
        }
    }

    pub(super) async fn write_script(
        &self,
        path: &str,
        body: &[u8],
        who: &str,
    ) -> (StatusCode, Value) {
        if let Err(refused) = self.known(path) {
            return refused;
        }
        let (status, checked) = super::lua_check(path, body);
        if status != StatusCode::OK {
            return (status, checked);
        }
        let Ok(text) = std::str::from_utf8(body) else {
            return (
                StatusCode::BAD_REQUEST,
                json!({"error": "the script is not UTF-8"}),
            );
        };
        let old = std::fs::read_to_string(path).unwrap_or_default();
        let change = super::entries::diff(path, &old, text);
        let tmp = format!("{path}.admin-tmp");
        if let Err(e) = std::fs::write(&tmp, text).and_then(|_| std::fs::rename(&tmp, path)) {
            let _ = std::fs::remove_file(&tmp);
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": format!("writing {path}: {e}")}),
            );
        }
        tracing::info!(by = %who, script = %path, "Lua script written through the admin API:\n{change}");
        let (status, mut v) = self.reload().await;
        v["written"] = json!(true);
        v["diff"] = json!(change);
        (status, v)
    }
}
