//! Where configuration documents come from: one file, a directory of `*.toml`, or the
//! embedded default.

use super::validate::SourceDoc;
use crate::error::StartError;
use std::path::Path;

/// The demo configuration compiled into the binary: a server on 127.0.0.1:6188 that answers
/// without any upstream.
pub const EMBEDDED: &str = include_str!("../../conf/embedded.toml");

/// The demo's listen address; `TIDEGATE_LISTEN` replaces it (a port already taken, a
/// container that must listen on 0.0.0.0).
pub const EMBEDDED_ADDR: &str = "127.0.0.1:6188";

pub fn embedded() -> Vec<SourceDoc> {
    let text = match std::env::var("TIDEGATE_LISTEN") {
        Ok(addr) if !addr.trim().is_empty() => EMBEDDED.replace(
            &format!("\"{EMBEDDED_ADDR}\""),
            &format!("{:?}", addr.trim()),
        ),
        _ => EMBEDDED.to_string(),
    };
    vec![SourceDoc {
        name: "<embedded>".into(),
        text,
    }]
}

/// Where the configuration comes from, as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The demo compiled into the binary.
    Embedded,
    /// A TOML file or a directory of them.
    Path(String),
    /// `etcd://HOST:PORT/PREFIX`: one TOML document per key.
    Etcd(super::etcd::EtcdSource),
}

impl Source {
    /// `-c ARG` (or none).
    pub fn from_arg(arg: Option<&str>) -> Result<Source, StartError> {
        Ok(match arg {
            None => Source::Embedded,
            Some(u) if u.starts_with("etcd://") => {
                Source::Etcd(super::etcd::EtcdSource::parse(u).map_err(StartError::Other)?)
            }
            Some(p) => Source::Path(p.to_string()),
        })
    }

    pub fn load(&self) -> Result<Vec<SourceDoc>, StartError> {
        match self {
            Source::Embedded => Ok(embedded()),
            Source::Path(p) => read(p),
            Source::Etcd(e) => e.fetch_blocking().map_err(StartError::Etcd),
        }
    }

    /// What to call it in logs.
    pub fn describe(&self) -> String {
        match self {
            Source::Embedded => "<embedded>".into(),
            Source::Path(p) => p.clone(),
            Source::Etcd(e) => e.describe(),
        }
    }
}

/// Read `path`: a TOML file, or every `*.toml` in a directory (sorted by name, merged).
pub fn read(path: &str) -> Result<Vec<SourceDoc>, StartError> {
    let io = |source| StartError::Io {
        path: path.to_string(),
        source,
    };
    let p = Path::new(path);
    let meta = std::fs::metadata(p).map_err(io)?;
    if !meta.is_dir() {
        let text = std::fs::read_to_string(p).map_err(io)?;
        return Ok(vec![SourceDoc {
            name: path.to_string(),
            text,
        }]);
    }
    let mut files = std::fs::read_dir(p)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|f| f.extension().is_some_and(|x| x == "toml") && f.is_file())
        .collect::<Vec<_>>();
    files.sort();
    if files.is_empty() {
        return Err(StartError::Other(format!(
            "{path}: no *.toml files in this directory"
        )));
    }
    files
        .into_iter()
        .map(|f| {
            let name = f.display().to_string();
            std::fs::read_to_string(&f)
                .map(|text| SourceDoc {
                    name: name.clone(),
                    text,
                })
                .map_err(|source| StartError::Io { path: name, source })
        })
        .collect()
}
