//! What every table builder shares: the error list, each error with its file, table, key
//! and line, and the parsing of durations and sizes into it.

use super::locate::Locator;
use super::units::{parse_duration, parse_size};
use super::validate::SourceDoc;
use crate::error::ConfigError;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// A table as written, with the document it came from.
pub(super) struct Entry {
    pub doc: usize,
    pub value: toml::Value,
}

pub(super) struct Builder<'a> {
    pub docs: &'a [SourceDoc],
    pub locators: Vec<Locator>,
    pub errors: Vec<ConfigError>,
}

impl Builder<'_> {
    pub fn err(&mut self, doc: usize, table: &str, key: Option<&str>, message: impl Into<String>) {
        let mut path: Vec<&str> = table.splitn(2, '.').collect();
        if let Some(k) = key {
            path.extend(k.split('.'));
        }
        self.errors.push(ConfigError {
            file: self.docs[doc].name.clone(),
            line: self.locators[doc].line(&path),
            table: table.to_string(),
            key: key.map(str::to_string),
            message: message.into(),
        });
    }

    /// Deserialize one table into its raw struct, recording the failing key on error.
    pub fn typed<T: DeserializeOwned>(&mut self, e: &Entry, table: &str) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(e.value.clone()) {
            Ok(t) => Some(t),
            Err(err) => {
                let path = err.path().to_string();
                let msg = err.into_inner().to_string();
                let key = unknown_field(&msg).or_else(|| (path != ".").then_some(path));
                let key = key.map(|k| strip_index(&k));
                self.err(e.doc, table, key.as_deref(), msg);
                None
            }
        }
    }

    pub fn duration(
        &mut self,
        doc: usize,
        table: &str,
        key: &str,
        v: &Option<String>,
        default: Duration,
    ) -> Duration {
        match v {
            None => default,
            Some(s) => parse_duration(s).unwrap_or_else(|m| {
                self.err(doc, table, Some(key), m);
                default
            }),
        }
    }

    pub fn opt_duration(
        &mut self,
        doc: usize,
        table: &str,
        key: &str,
        v: &Option<String>,
    ) -> Option<Duration> {
        v.as_ref().and_then(|s| match parse_duration(s) {
            Ok(d) => Some(d),
            Err(m) => {
                self.err(doc, table, Some(key), m);
                None
            }
        })
    }

    pub fn size(
        &mut self,
        doc: usize,
        table: &str,
        key: &str,
        v: &Option<crate::config::raw::Size>,
    ) -> Option<u64> {
        use crate::config::raw::Size;
        v.as_ref().and_then(|s| match s {
            Size::Bytes(n) => Some(*n),
            Size::Text(s) => match parse_size(s) {
                Ok(n) => Some(n),
                Err(m) => {
                    self.err(doc, table, Some(key), m);
                    None
                }
            },
        })
    }
}

fn unknown_field(msg: &str) -> Option<String> {
    let rest = msg.split("unknown field `").nth(1)?;
    Some(rest.split('`').next()?.to_string())
}

fn strip_index(k: &str) -> String {
    k.split('[').next().unwrap_or(k).to_string()
}
