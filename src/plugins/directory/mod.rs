//! `directory`: static files under a root, streamed, with ranges, validators and
//! precompressed siblings.
//!
//! ```toml
//! [plugins.files]
//! category = "directory"
//! root = "public"                 # required; a directory
//! index = ["index.html"]          # default; tried in a directory
//! listing = false                 # default; true: an HTML listing when there is no index
//! max_age = "1h"                  # optional: Cache-Control: max-age
//! precompressed = true            # default false: serve `x.br` / `x.gz` to clients that take them
//! strip_prefix = "/static"        # optional: removed from the path before it is looked up
//! hidden = false                  # default: names starting with `.` are not served
//! follow_symlinks = false         # default: a symlink leading out of the root is not followed
//! ```
//!
//! GET and HEAD (else 405). A file gets `Content-Type` (by extension), `Content-Length`,
//! `Last-Modified`, a strong `ETag` (size and modification time), `Accept-Ranges: bytes`;
//! `If-None-Match` and `If-Modified-Since` give 304; `Range` one or several ranges (206,
//! `multipart/byteranges` for several, 416 when none is in the file; `If-Range` honoured).
//! Bodies are read 256 KiB at a time while they are sent (`body_source.rs`), never held
//! whole. File system calls are blocking calls on the worker, as nginx makes them.
//! A directory without its trailing `/` is redirected (301) to it. What is not found, or not
//! safe (`..`, encoded or not, NUL, backslashes, hidden names, symlinks leading out), is a
//! plain 404.

pub mod listing;
pub mod path;
pub mod range;

use super::body_source::{FileBody, Segment};
use super::compression::negotiate::{choose, Coding};
use super::{Answer, Flow, Plugin, PluginConfError, PluginError};
use crate::config::units::parse_duration;
use crate::proxy::ctx::Ctx;
use crate::proxy::exchange::Downstream;
use async_trait::async_trait;
use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Method};
use serde::Deserialize;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryConf {
    pub root: String,
    pub index: Option<Vec<String>>,
    #[serde(default)]
    pub listing: bool,
    pub max_age: Option<String>,
    #[serde(default)]
    pub precompressed: bool,
    pub strip_prefix: Option<String>,
    #[serde(default)]
    pub hidden: bool,
    #[serde(default)]
    pub follow_symlinks: bool,
}

#[derive(Debug)]
pub struct Directory {
    root: path::Root,
    index: Vec<String>,
    listing: bool,
    cache_control: Option<HeaderValue>,
    precompressed: bool,
    strip_prefix: Option<String>,
    hidden: bool,
}

type Headers = Vec<(HeaderName, HeaderValue)>;

/// The request headers the plugin reads.
const READS: [HeaderName; 5] = [
    header::ACCEPT_ENCODING,
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_RANGE,
    header::RANGE,
];

/// What the plugin needs of the request, owned (a listing waits on the file system, and the
/// request itself may not be held across a wait): the method, the path, the query and the
/// five headers it reads, not the whole header map.
struct Asked {
    method: Method,
    path: String,
    query: Option<String>,
    headers: [Option<String>; 5],
}

impl Asked {
    fn of(session: &dyn Downstream) -> Asked {
        let req = session.req();
        Asked {
            method: req.method.clone(),
            path: req.uri.path().to_string(),
            query: req.uri.query().map(str::to_string),
            headers: READS.clone().map(|h| {
                req.headers
                    .get(&h)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            }),
        }
    }

    fn get(&self, h: HeaderName) -> Option<&str> {
        let i = READS.iter().position(|r| *r == h)?;
        self.headers[i].as_deref()
    }
}

fn text(status: u16, body: &'static str) -> Answer {
    Answer {
        status,
        headers: vec![(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        body: Bytes::from_static(body.as_bytes()),
    }
}

fn value(s: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(s).ok()
}

/// A file's validators: the strong ETag and the Last-Modified text.
fn validators(meta: &std::fs::Metadata) -> (String, String) {
    let modified = meta.modified().unwrap_or(UNIX_EPOCH);
    let nanos = modified
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    (
        format!("\"{:x}-{:x}\"", meta.len(), nanos),
        httpdate::fmt_http_date(modified),
    )
}

/// Whether `If-None-Match` lists `etag` (weak comparison) or `*`.
fn none_match(list: &str, etag: &str) -> bool {
    list.split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/") == etag.trim_start_matches("W/"))
}

impl Directory {
    pub fn new(c: DirectoryConf) -> Result<Directory, PluginConfError> {
        let root = std::fs::canonicalize(&c.root)
            .map_err(|e| PluginConfError::at("root", format!("{}: {e}", c.root)))?;
        if !root.is_dir() {
            return Err(PluginConfError::at(
                "root",
                format!("{} is not a directory", c.root),
            ));
        }
        let index = c.index.unwrap_or_else(|| vec!["index.html".into()]);
        for i in &index {
            if i.is_empty() || i.contains('/') || i == ".." {
                return Err(PluginConfError::at(
                    "index",
                    format!("`{i}` is not a file name"),
                ));
            }
        }
        let cache_control = match c.max_age.as_deref() {
            Some(t) => {
                let d = parse_duration(t).map_err(|m| PluginConfError::at("max_age", m))?;
                value(&format!("max-age={}", d.as_secs()))
            }
            None => None,
        };
        if let Some(p) = &c.strip_prefix {
            if !p.starts_with('/') {
                return Err(PluginConfError::at(
                    "strip_prefix",
                    "a path prefix starts with `/`",
                ));
            }
        }
        let root = path::Root::new(root, c.follow_symlinks)
            .map_err(|e| PluginConfError::at("root", format!("{}: {e}", c.root)))?;
        Ok(Directory {
            root,
            index,
            listing: c.listing,
            cache_control,
            precompressed: c.precompressed,
            strip_prefix: c.strip_prefix.map(|p| p.trim_end_matches('/').to_string()),
            hidden: c.hidden,
        })
    }

    /// The answer for this request, and the body to stream with it.
    async fn serve(&self, req: &Asked) -> (Answer, Option<FileBody>) {
        if req.method != Method::GET && req.method != Method::HEAD {
            let mut a = text(405, "Method Not Allowed\n");
            a.headers
                .push((header::ALLOW, HeaderValue::from_static("GET, HEAD")));
            return (a, None);
        }
        let full = req.path.as_str();
        let rel = match &self.strip_prefix {
            Some(p) => match full.strip_prefix(p.as_str()) {
                Some(r) if r.is_empty() || r.starts_with('/') => r,
                _ => return (text(404, "Not Found\n"), None),
            },
            None => full,
        };
        let Ok(segs) = path::segments(rel, self.hidden) else {
            return (text(404, "Not Found\n"), None);
        };
        let Ok((file, meta, found)) = self.root.open(&segs) else {
            return (text(404, "Not Found\n"), None);
        };
        if meta.is_dir() {
            if !full.ends_with('/') {
                let mut to = format!("{full}/");
                if let Some(q) = &req.query {
                    to.push('?');
                    to.push_str(q);
                }
                let mut a = text(301, "Moved Permanently\n");
                if let Some(v) = value(&to) {
                    a.headers.push((header::LOCATION, v));
                }
                return (a, None);
            }
            for i in &self.index {
                let mut with = segs.clone();
                with.push(i.clone());
                if let Ok((f, m, p)) = self.root.open(&with) {
                    if m.is_file() {
                        return self.file(req, &with, (f, m, p));
                    }
                }
            }
            if self.listing {
                if let Ok(page) = listing::page(&found, full, self.hidden).await {
                    let mut a = text(200, "");
                    a.headers = vec![(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/html; charset=utf-8"),
                    )];
                    a.body = Bytes::from(page);
                    return (a, None);
                }
            }
            return (text(403, "Forbidden\n"), None);
        }
        if !meta.is_file() {
            return (text(404, "Not Found\n"), None);
        }
        self.file(req, &segs, (file, meta, found))
    }

    /// A precompressed sibling the client takes (`x.br`, `x.gz` beside `x`), and its coding.
    fn sibling(&self, req: &Asked, segs: &[String]) -> Option<(path::Opened, Coding)> {
        let accept = req.get(header::ACCEPT_ENCODING)?;
        let (last, dir) = segs.split_last()?;
        let mut offered = vec![Coding::Brotli, Coding::Gzip];
        while let Some(c) = choose(accept, &offered) {
            let ext = if c == Coding::Brotli { "br" } else { "gz" };
            let mut with = dir.to_vec();
            with.push(format!("{last}.{ext}"));
            if let Ok(o) = self.root.open(&with) {
                if o.1.is_file() {
                    return Some((o, c));
                }
            }
            offered.retain(|o| *o != c);
        }
        None
    }

    fn file(
        &self,
        req: &Asked,
        segs: &[String],
        opened: path::Opened,
    ) -> (Answer, Option<FileBody>) {
        let (file, meta, path) = opened;
        let mime = mime_guess::from_path(&path).first_or_octet_stream();
        let mut content_type = mime.essence_str().to_string();
        if mime.type_() == mime_guess::mime::TEXT || content_type == "application/javascript" {
            content_type.push_str("; charset=utf-8");
        }
        let mut headers: Headers = Vec::new();
        if let Some(v) = value(&content_type) {
            headers.push((header::CONTENT_TYPE, v));
        }
        let (mut file, mut meta, mut coding) = (file, meta, None);
        if self.precompressed {
            headers.push((header::VARY, HeaderValue::from_static("Accept-Encoding")));
            if let Some(((f, m, _), c)) = self.sibling(req, segs) {
                (file, meta, coding) = (f, m, Some(c));
            }
        }
        let (etag, modified) = validators(&meta);
        for (k, v) in [(header::ETAG, &etag), (header::LAST_MODIFIED, &modified)] {
            if let Some(v) = value(v) {
                headers.push((k, v));
            }
        }
        if let Some(cc) = &self.cache_control {
            headers.push((header::CACHE_CONTROL, cc.clone()));
        }
        let get = |h: HeaderName| req.get(h);
        let not_modified = match get(header::IF_NONE_MATCH) {
            Some(list) => none_match(list, &etag),
            None => get(header::IF_MODIFIED_SINCE)
                .and_then(|s| httpdate::parse_http_date(s).ok())
                .is_some_and(|since| {
                    let m = meta.modified().unwrap_or(SystemTime::now());
                    let secs = |t: SystemTime| {
                        t.duration_since(UNIX_EPOCH)
                            .map(|d| d.as_secs())
                            .unwrap_or(0)
                    };
                    secs(m) <= secs(since)
                }),
        };
        if not_modified {
            headers.retain(|(k, _)| *k != header::CONTENT_TYPE);
            return (
                Answer {
                    status: 304,
                    headers,
                    body: Bytes::new(),
                },
                None,
            );
        }
        if let Some(c) = coding {
            headers.push((header::CONTENT_ENCODING, HeaderValue::from_static(c.name())));
        } else {
            headers.push((header::ACCEPT_RANGES, HeaderValue::from_static("bytes")));
        }
        let size = meta.len();
        let ranges = if coding.is_some()
            || !range::if_range_holds(get(header::IF_RANGE), &etag, &modified)
        {
            range::Ranges::Whole
        } else {
            range::parse(get(header::RANGE), size)
        };
        let (status, segments, length) = match ranges {
            range::Ranges::Whole => (
                200,
                vec![Segment::Range {
                    start: 0,
                    len: size,
                }],
                size,
            ),
            range::Ranges::Unsatisfiable => {
                let mut a = text(416, "Range Not Satisfiable\n");
                if let Some(v) = value(&format!("bytes */{size}")) {
                    a.headers.push((header::CONTENT_RANGE, v));
                }
                return (a, None);
            }
            range::Ranges::Parts(parts) if parts.len() == 1 => {
                let (start, len) = parts[0];
                if let Some(v) = value(&format!("bytes {start}-{}/{size}", start + len - 1)) {
                    headers.push((header::CONTENT_RANGE, v));
                }
                (206, vec![Segment::Range { start, len }], len)
            }
            range::Ranges::Parts(parts) => {
                let boundary = format!("{:016x}", rand::random::<u64>());
                let mut segments = Vec::new();
                let mut length = 0u64;
                for (start, len) in parts {
                    let head = format!(
                        "\r\n--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: bytes {start}-{}/{size}\r\n\r\n",
                        start + len - 1
                    );
                    length += head.len() as u64 + len;
                    segments.push(Segment::Bytes(Bytes::from(head)));
                    segments.push(Segment::Range { start, len });
                }
                let tail = format!("\r\n--{boundary}--\r\n");
                length += tail.len() as u64;
                segments.push(Segment::Bytes(Bytes::from(tail)));
                headers.retain(|(k, _)| *k != header::CONTENT_TYPE);
                if let Some(v) = value(&format!("multipart/byteranges; boundary={boundary}")) {
                    headers.push((header::CONTENT_TYPE, v));
                }
                (206, segments, length)
            }
        };
        headers.push((header::CONTENT_LENGTH, HeaderValue::from(length)));
        let answer = Answer {
            status,
            headers,
            body: Bytes::new(),
        };
        if req.method == Method::HEAD || length == 0 {
            return (answer, None);
        }
        (answer, Some(FileBody::new(file, segments)))
    }
}

#[async_trait]
impl Plugin for Directory {
    async fn on_request(
        &self,
        session: &mut dyn Downstream,
        ctx: &mut Ctx,
    ) -> Result<Flow, PluginError> {
        let asked = Asked::of(&*session);
        let (answer, body) = self.serve(&asked).await;
        ctx.plugin.answer_stream =
            body.map(|b| Box::new(b) as Box<dyn super::body_source::BodySource>);
        Ok(Flow::Respond(answer))
    }
}
