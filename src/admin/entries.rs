//! One config entry at a time through the admin API:
//!
//! | endpoint | answer |
//! | --- | --- |
//! | `GET /config/TABLE` | the entries of `servers`, `locations`, `upstreams`, `plugins` or `certificates` (name, document, keys) |
//! | `GET /config/TABLE/NAME` | one entry's keys as JSON; the config version as the ETag |
//! | `PUT /config/TABLE/NAME` | the entry's keys (JSON): checked like `tidegate check`, written, applied |
//! | `DELETE /config/TABLE/NAME` | the entry removed, checked, written, applied |
//! | `GET` / `PUT /config/lua`, `/config/basic`, `/config/storage` | the single tables |
//!
//! A write goes to the document that holds the entry (a new one: the document holding its
//! table, else the first; in a directory or etcd, a new `TABLE-NAME.toml` file or key), edited
//! with `toml_edit` so comments and formatting elsewhere stay as they were. `If-Match` with an
//! older version gets 412; `?dry_run=1` returns the check and the diff without writing; a
//! write is logged with who made it and its diff.

use super::config_api::etag;
use super::AdminApp;
use crate::config::source::Source;
use crate::config::SourceDoc;
use http::{Method, StatusCode};
use serde_json::{json, Value};

const NAMED: &[&str] = &[
    "servers",
    "locations",
    "upstreams",
    "plugins",
    "certificates",
];
const SINGLE: &[&str] = &["basic", "lua", "storage"];

/// What a request names: a table, maybe an entry of it.
struct Target<'a> {
    table: &'a str,
    name: Option<&'a str>,
}

fn target(rest: &str) -> Result<Target<'_>, String> {
    let mut parts = rest.trim_matches('/').splitn(2, '/');
    let table = parts.next().unwrap_or("");
    let name = parts.next().filter(|n| !n.is_empty());
    if NAMED.contains(&table) {
        if let Some(n) = name {
            if n.contains('/') || n.contains('.') {
                return Err(format!("`{n}` is not an entry name"));
            }
        }
        Ok(Target { table, name })
    } else if SINGLE.contains(&table) && name.is_none() {
        Ok(Target { table, name: None })
    } else {
        Err(format!(
            "no table `{rest}`: use /config/TABLE/NAME for {} or /config/TABLE for {}",
            NAMED.join(", "),
            SINGLE.join(", ")
        ))
    }
}

/// The entry in one document, as parsed TOML.
fn entry_of(text: &str, t: &Target<'_>) -> Option<toml::Value> {
    let doc: toml::Table = toml::from_str(text).ok()?;
    let table = doc.get(t.table)?;
    match t.name {
        Some(n) => table.get(n).cloned(),
        None => Some(table.clone()),
    }
}

/// The JSON body as the TOML table of an entry.
fn as_table(body: &[u8]) -> Result<toml_edit::Table, String> {
    let json: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    if !json.is_object() {
        return Err("the body must be a JSON object of the entry's keys".into());
    }
    let value = toml::Value::try_from(json).map_err(|e| format!("not TOML values: {e}"))?;
    let text = toml::to_string(&value).map_err(|e| e.to_string())?;
    let doc: toml_edit::DocumentMut = text.parse().map_err(|e| format!("{e}"))?;
    Ok(doc.as_table().clone())
}

/// `docs` with `t` set to `new` (or removed): the index of the document changed, its new
/// text, and whether it is a new document.
fn edited(
    docs: &[SourceDoc],
    t: &Target<'_>,
    new: Option<toml_edit::Table>,
    fresh_name: String,
) -> Result<(usize, String, bool), (StatusCode, String)> {
    let holder = docs.iter().position(|d| entry_of(&d.text, t).is_some());
    if holder.is_none() && new.is_none() {
        return Err((StatusCode::NOT_FOUND, "no such entry".into()));
    }
    let (index, text, is_new) = match holder {
        Some(i) => (i, docs[i].text.clone(), false),
        None => match docs.iter().position(|d| {
            toml::from_str::<toml::Table>(&d.text).is_ok_and(|doc| doc.contains_key(t.table))
        }) {
            Some(i) => (i, docs[i].text.clone(), false),
            None if docs.len() > 1 || fresh_name != docs[0].name => {
                (docs.len(), String::new(), true)
            }
            None => (0, docs[0].text.clone(), false),
        },
    };
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e| {
        (
            StatusCode::CONFLICT,
            format!("the document is not TOML: {e}"),
        )
    })?;
    match (t.name, new) {
        (Some(name), Some(mut table)) => {
            table.set_implicit(false);
            let section = doc
                .entry(t.table)
                .or_insert(toml_edit::Item::Table(toml_edit::Table::new()));
            let Some(section) = section.as_table_mut() else {
                return Err((
                    StatusCode::CONFLICT,
                    format!("`{}` is not a table", t.table),
                ));
            };
            section.set_implicit(true);
            // a replaced entry keeps its place and the comments above it
            if let Some(old) = section.get(name).and_then(|i| i.as_table()) {
                table.set_position(old.position());
                *table.decor_mut() = old.decor().clone();
            }
            section.insert(name, toml_edit::Item::Table(table));
        }
        (Some(name), None) => {
            if let Some(section) = doc.get_mut(t.table).and_then(|s| s.as_table_mut()) {
                section.remove(name);
                if section.is_empty() {
                    doc.remove(t.table);
                }
            }
        }
        (None, Some(table)) => {
            doc.insert(t.table, toml_edit::Item::Table(table));
        }
        (None, None) => {
            doc.remove(t.table);
        }
    }
    Ok((index, doc.to_string(), is_new))
}

/// A unified diff of one document's change.
pub(super) fn diff(name: &str, old: &str, new: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(2)
        .header(name, name)
        .to_string()
}

impl AdminApp {
    pub(super) async fn entry(
        &self,
        method: &Method,
        rest: &str,
        body: &[u8],
        if_match: Option<&str>,
        dry_run: bool,
        who: &str,
    ) -> (StatusCode, Value) {
        let t = match target(rest) {
            Ok(t) => t,
            Err(e) => return (StatusCode::NOT_FOUND, json!({ "error": e })),
        };
        let docs: Vec<SourceDoc> = self
            .reloader
            .applied_docs()
            .into_iter()
            .map(|(name, text)| SourceDoc { name, text })
            .collect();
        let version = self.live.load().version;
        if *method == Method::GET {
            return read(&docs, &t, version);
        }
        if !matches!(*method, Method::PUT | Method::DELETE)
            || (t.name.is_none() && *method == Method::DELETE)
        {
            return (
                StatusCode::METHOD_NOT_ALLOWED,
                json!({"error": format!("{method} is not allowed on /config/{rest}")}),
            );
        }
        if let Some(tag) = if_match {
            if tag.trim() != etag(version) && tag.trim() != "*" {
                return (
                    StatusCode::PRECONDITION_FAILED,
                    json!({"error": format!("the config changed: it is at {} now, the request is for {tag}", etag(version))}),
                );
            }
        }
        let new = if *method == Method::PUT {
            match as_table(body) {
                Ok(table) => Some(table),
                Err(e) => return (StatusCode::BAD_REQUEST, json!({ "error": e })),
            }
        } else {
            None
        };
        let fresh_name = match self.reloader.source() {
            Source::Path(p) if std::path::Path::new(p).is_dir() => {
                let file = format!("{}-{}.toml", t.table, t.name.unwrap_or("table"));
                std::path::Path::new(p).join(file).display().to_string()
            }
            Source::Path(p) => p.clone(),
            Source::Etcd(e) => format!(
                "etcd://{}{}{}-{}.toml",
                e.endpoint,
                e.prefix,
                t.table,
                t.name.unwrap_or("table")
            ),
            Source::Embedded => {
                return (
                    StatusCode::NOT_IMPLEMENTED,
                    json!({"error": "the embedded demo config cannot be written; start with -c FILE"}),
                )
            }
        };
        let (index, text, is_new) = match edited(&docs, &t, new, fresh_name.clone()) {
            Ok(x) => x,
            Err((s, e)) => return (s, json!({ "error": e })),
        };
        let mut candidate = docs.clone();
        let name = if is_new {
            fresh_name
        } else {
            docs[index].name.clone()
        };
        let old = if is_new {
            String::new()
        } else {
            docs[index].text.clone()
        };
        if is_new {
            candidate.push(SourceDoc {
                name: name.clone(),
                text: text.clone(),
            });
        } else {
            candidate[index].text = text.clone();
        }
        let change = diff(&name, &old, &text);
        if let Err(e) = crate::config::validate::build(&candidate) {
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"valid": false, "error": e.to_string(), "diff": change}),
            );
        }
        if dry_run {
            return (
                StatusCode::OK,
                json!({"valid": true, "written": false, "document": name, "diff": change}),
            );
        }
        if let Err(e) = self.write_doc(&name, &text).await {
            return (StatusCode::INTERNAL_SERVER_ERROR, json!({ "error": e }));
        }
        tracing::info!(by = %who, document = %name, "config entry {} /config/{rest} written through the admin API:\n{change}", method);
        let (status, mut v) = self.reload().await;
        v["written"] = json!(true);
        v["document"] = json!(name);
        v["diff"] = json!(change);
        (status, v)
    }

    /// Write one document where the source keeps it: a file (atomically) or an etcd key.
    pub(super) async fn write_doc(&self, name: &str, text: &str) -> Result<(), String> {
        match self.reloader.source() {
            Source::Etcd(e) => e.put(name, text).await,
            _ => {
                let tmp = format!("{name}.admin-tmp");
                std::fs::write(&tmp, text)
                    .and_then(|_| std::fs::rename(&tmp, name))
                    .map_err(|e| {
                        let _ = std::fs::remove_file(&tmp);
                        format!("writing {name}: {e}")
                    })
            }
        }
    }
}

/// `GET /config/TABLE[/NAME]`.
fn read(docs: &[SourceDoc], t: &Target<'_>, version: u64) -> (StatusCode, Value) {
    if t.name.is_none() && NAMED.contains(&t.table) {
        let mut entries = Vec::new();
        for d in docs {
            let Ok(doc) = toml::from_str::<toml::Table>(&d.text) else {
                continue;
            };
            if let Some(toml::Value::Table(section)) = doc.get(t.table) {
                for (name, v) in section {
                    entries.push(json!({"name": name, "document": d.name, "keys": v}));
                }
            }
        }
        return (
            StatusCode::OK,
            json!({"table": t.table, "config_version": version, "entries": entries}),
        );
    }
    for d in docs {
        if let Some(v) = entry_of(&d.text, t) {
            return (
                StatusCode::OK,
                json!({"table": t.table, "name": t.name, "document": d.name, "config_version": version, "keys": v}),
            );
        }
    }
    (StatusCode::NOT_FOUND, json!({"error": "no such entry"}))
}
