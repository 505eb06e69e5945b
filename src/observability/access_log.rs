//! Access log: formats and the writer thread.
//!
//! ```toml
//! [servers.web]
//! access_log = "combined"        # common | combined | json | a template
//! access_log_path = "logs/access.log"   # default: standard output
//! ```
//!
//! A template is text with `{field}`s:
//!
//! | field | value |
//! | --- | --- |
//! | `{method}` `{path}` `{query}` `{uri}` `{proto}` `{scheme}` `{host}` | the request |
//! | `{status}` `{size}` `{bytes_sent}` | response status, body bytes sent, head and body bytes sent |
//! | `{request_length}` | request head and body bytes read |
//! | `{latency}` | milliseconds from request start to log (`{latency_us}`: microseconds) |
//! | `{remote}` `{remote_addr}` `{remote_port}` `{client_ip}` | peer address and port; client IP after `trusted_proxies` |
//! | `{upstream}` `{upstream_addr}` `{upstream_status}` | upstream name, peer that served, its status |
//! | `{upstream_connect_time}` `{upstream_response_time}` `{retries}` | seconds (ms resolution) to connect and to the response head; tries after the first |
//! | `{user}` (`{remote_user}`) | the user an auth plugin let in |
//! | `{request_id}` `{location}` `{server}` `{trace_id}` | ids and names (the trace id of a request sampled for OpenTelemetry) |
//! | `{connection}` `{connection_requests}` | the client connection's serial number and how many requests it has carried |
//! | `{time}` `{time_local}` `{ts}` `{msec}` | ISO 8601 (UTC), local time as nginx writes it, Unix milliseconds, Unix seconds with milliseconds |
//! | `{?NAME}` | a query argument |
//! | `{tls_version}` `{tls_cipher}` `{tls_sni}` `{tls_resumed}` `{tls_client}` | the TLS session: version, cipher suite, the name asked for, `r` if resumed else `.`, the client certificate's subject (`-` on plain HTTP) |
//! | `{>NAME}` `{<NAME}` `{~NAME}` | request header, response header, request cookie |
//! | `{:NAME}` | a field set by a plugin |
//!
//! Lines are formatted on the request's thread straight into that thread's buffer, which a
//! writer thread sweeps and writes out every 10 ms (`log_writer.rs`). If the disk stalls
//! and a thread's buffer reaches 8 MB, new lines are dropped and counted rather than slow
//! down requests.

/// One piece of a log template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Lit(String),
    Method,
    Path,
    Query,
    Uri,
    Proto,
    Scheme,
    Host,
    Status,
    Size,
    Latency,
    LatencyUs,
    Remote,
    ClientIp,
    User,
    Upstream,
    UpstreamAddr,
    RequestId,
    Location,
    Server,
    Time,
    Ts,
    TimeLocal,
    Msec,
    BytesSent,
    RequestLength,
    RemoteAddr,
    RemotePort,
    UpstreamStatus,
    UpstreamConnectTime,
    UpstreamResponseTime,
    Retries,
    TraceId,
    Connection,
    ConnectionRequests,
    /// the data path that served the request
    Engine,
    /// a query argument
    QueryArg(String),
    TlsVersion,
    TlsCipher,
    TlsSni,
    TlsResumed,
    TlsClient,
    /// a request header (its name parsed once, at load)
    ReqHeader(http::HeaderName),
    /// a response header
    RespHeader(http::HeaderName),
    Cookie(String),
    Custom(String),
}

impl Field {
    /// Whether a value of this field can hold a byte the text format escapes. Numbers,
    /// times, addresses, the method (a token) and fixed words cannot, and are not scanned.
    pub fn escapes(&self) -> bool {
        use Field as F;
        !matches!(
            self,
            F::Method
                | F::Proto
                | F::Scheme
                | F::Engine
                | F::Status
                | F::Size
                | F::Latency
                | F::LatencyUs
                | F::Remote
                | F::ClientIp
                | F::UpstreamAddr
                | F::Time
                | F::Ts
                | F::TimeLocal
                | F::Msec
                | F::BytesSent
                | F::RequestLength
                | F::RemoteAddr
                | F::RemotePort
                | F::UpstreamStatus
                | F::UpstreamConnectTime
                | F::UpstreamResponseTime
                | F::Retries
                | F::TraceId
                | F::Connection
                | F::ConnectionRequests
                | F::TlsVersion
                | F::TlsCipher
                | F::TlsResumed
        )
    }
}

/// A parsed access-log format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFormat {
    pub fields: Vec<Field>,
    /// JSON preset: `fields` alternate between key literals and values, rendered as an object.
    pub json: bool,
}

const COMMON: &str = "{client_ip} - {user} [{time}] \"{method} {uri} {proto}\" {status} {size}";
const COMBINED: &str =
    "{client_ip} - {user} [{time}] \"{method} {uri} {proto}\" {status} {size} \"{>referer}\" \"{>user-agent}\"";
const JSON_KEYS: &[(&str, &str)] = &[
    ("time", "{time}"),
    ("client_ip", "{client_ip}"),
    ("method", "{method}"),
    ("uri", "{uri}"),
    ("proto", "{proto}"),
    ("host", "{host}"),
    ("status", "{status}"),
    ("size", "{size}"),
    ("latency_ms", "{latency}"),
    ("upstream_addr", "{upstream_addr}"),
    ("request_id", "{request_id}"),
    ("user_agent", "{>user-agent}"),
];

impl LogFormat {
    pub fn parse(s: &str) -> Result<LogFormat, String> {
        match s {
            "common" => Self::template(COMMON),
            "combined" => Self::template(COMBINED),
            "json" => {
                let mut fields = Vec::new();
                for (k, v) in JSON_KEYS {
                    fields.push(Field::Lit((*k).to_string()));
                    fields.extend(Self::template(v)?.fields);
                }
                Ok(LogFormat { fields, json: true })
            }
            t => Self::template(t),
        }
    }

    fn template(s: &str) -> Result<LogFormat, String> {
        let mut fields = Vec::new();
        let mut rest = s;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                fields.push(Field::Lit(rest[..open].to_string()));
            }
            let Some(close) = rest[open..].find('}') else {
                return Err(format!("unclosed `{{` in access log template `{s}`"));
            };
            let name = &rest[open + 1..open + close];
            fields.push(Self::field(name).ok_or_else(|| {
                format!("unknown access log field `{{{name}}}` (see docs/configuration.md)")
            })?);
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            fields.push(Field::Lit(rest.to_string()));
        }
        Ok(LogFormat {
            fields,
            json: false,
        })
    }

    fn field(name: &str) -> Option<Field> {
        let named = |p: &str| http::HeaderName::from_bytes(p.to_ascii_lowercase().as_bytes()).ok();
        Some(match name {
            "method" => Field::Method,
            "path" => Field::Path,
            "query" => Field::Query,
            "uri" => Field::Uri,
            "proto" => Field::Proto,
            "scheme" => Field::Scheme,
            "engine" => Field::Engine,
            "host" => Field::Host,
            "status" => Field::Status,
            "size" => Field::Size,
            "latency" => Field::Latency,
            "latency_us" => Field::LatencyUs,
            "remote" => Field::Remote,
            "client_ip" => Field::ClientIp,
            "user" | "remote_user" => Field::User,
            "upstream" => Field::Upstream,
            "upstream_addr" => Field::UpstreamAddr,
            "request_id" => Field::RequestId,
            "location" => Field::Location,
            "server" => Field::Server,
            "time" => Field::Time,
            "ts" => Field::Ts,
            "time_local" => Field::TimeLocal,
            "msec" => Field::Msec,
            "bytes_sent" => Field::BytesSent,
            "request_length" => Field::RequestLength,
            "remote_addr" => Field::RemoteAddr,
            "remote_port" => Field::RemotePort,
            "upstream_status" => Field::UpstreamStatus,
            "upstream_connect_time" => Field::UpstreamConnectTime,
            "upstream_response_time" => Field::UpstreamResponseTime,
            "retries" => Field::Retries,
            "trace_id" => Field::TraceId,
            "connection" => Field::Connection,
            "connection_requests" => Field::ConnectionRequests,
            "tls_version" => Field::TlsVersion,
            "tls_cipher" => Field::TlsCipher,
            "tls_sni" => Field::TlsSni,
            "tls_resumed" => Field::TlsResumed,
            "tls_client" => Field::TlsClient,
            _ => {
                let (sigil, rest) = name.split_at(name.chars().next()?.len_utf8());
                match sigil {
                    ">" => Field::ReqHeader(named(rest)?),
                    "<" => Field::RespHeader(named(rest)?),
                    "~" => Field::Cookie((!rest.is_empty()).then(|| rest.to_string())?),
                    ":" => Field::Custom((!rest.is_empty()).then(|| rest.to_string())?),
                    "?" => Field::QueryArg((!rest.is_empty()).then(|| rest.to_string())?),
                    _ => return None,
                }
            }
        })
    }
}

/// Where rendering reads a request's values from (the proxy implements it over the Pingora
/// session and the request context; the benchmark over fixed data).
pub trait LogSource {
    /// Append the value of `field` (never a [`Field::Lit`]) to `out`; `-` when unset.
    fn write_field(&self, field: &Field, out: &mut String);
}

impl LogFormat {
    /// Whether a field needs the upstream connect and response times measured.
    pub fn wants_upstream_times(&self) -> bool {
        self.fields
            .iter()
            .any(|f| matches!(f, Field::UpstreamConnectTime | Field::UpstreamResponseTime))
    }

    /// Render one line, without the newline.
    pub fn render(&self, src: &dyn LogSource) -> String {
        let mut out = String::with_capacity(256);
        self.render_into(src, &mut out);
        out
    }

    /// Render one line at the end of `out`, without the newline.
    pub fn render_into(&self, src: &dyn LogSource, out: &mut String) {
        if !self.json {
            for f in &self.fields {
                match f {
                    Field::Lit(s) => out.push_str(s),
                    f => {
                        let start = out.len();
                        src.write_field(f, out);
                        if f.escapes() {
                            text_escape_from(out, start);
                        }
                    }
                }
            }
            return;
        }
        // json: each key literal is followed by the fields of its value
        out.push('{');
        let mut value = String::new();
        let mut fields = self.fields.iter().peekable();
        let mut first = true;
        while let Some(f) = fields.next() {
            let Field::Lit(key) = f else { continue };
            value.clear();
            while let Some(v) = fields.next_if(|f| !matches!(f, Field::Lit(_))) {
                src.write_field(v, &mut value);
            }
            if !first {
                out.push(',');
            }
            first = false;
            out.push('"');
            out.push_str(key);
            out.push_str("\":\"");
            json_escape(&value, out);
            out.push('"');
        }
        out.push('}');
    }
}

/// Escape what `out` holds from `start` on for a text log line, as nginx does: control bytes,
/// `"` and `\\` become `\\xHH`, so no value (a script's field, say) can end the line early,
/// forge a second line or break out of a quoted field. Copies nothing when nothing needs it.
pub fn text_escape_from(out: &mut String, start: usize) {
    let needs = |b: u8| NEEDS_ESCAPE[usize::from(b)];
    if !out.as_bytes()[start..].iter().any(|b| needs(*b)) {
        return;
    }
    let tail = out.split_off(start);
    for c in tail.chars() {
        if c.is_ascii() && needs(c as u8) {
            out.push_str(&format!("\\x{:02X}", c as u8));
        } else {
            out.push(c);
        }
    }
}

/// The bytes a text-format value escapes: controls, DEL, `"` and `\\` (a table: the check
/// runs on every byte of every line).
const NEEDS_ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = i < 0x20 || i == 0x7f || i == b'"' as usize || i == b'\\' as usize;
        i += 1;
    }
    t
};

/// Escape a value for a JSON string (without the quotes). Runs that need no escaping are
/// copied whole.
pub fn json_escape(s: &str, out: &mut String) {
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            out.push_str(&format!("\\u{b:04x}"));
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
}

pub use super::log_writer::Writer;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_presets_and_templates() {
        assert!(LogFormat::parse("common").is_ok());
        assert!(LogFormat::parse("json").unwrap().json);
        let f = LogFormat::parse("{method} {>x-a} {<server} {~sid} {:user}!").unwrap();
        assert_eq!(
            f.fields[2],
            Field::ReqHeader(http::HeaderName::from_static("x-a"))
        );
        assert_eq!(f.fields[6], Field::Cookie("sid".into()));
        assert_eq!(f.fields[9], Field::Lit("!".into()));
        assert!(LogFormat::parse("{nope}").is_err());
        assert!(LogFormat::parse("{method").is_err());
    }
}

#[cfg(test)]
mod escape_tests {
    use super::{json_escape, text_escape_from};

    #[test]
    fn escapes_text() {
        let mut out = String::from("keep\n");
        text_escape_from(&mut out, 5);
        assert_eq!(out, "keep\n");
        let mut out = String::from("a=b\nFORGED \"x\" \\ é\u{7f}");
        text_escape_from(&mut out, 2);
        assert_eq!(out, "a=b\\x0AFORGED \\x22x\\x22 \\x5C é\\x7F");
    }

    #[test]
    fn escapes_json() {
        let mut out = String::new();
        json_escape("a\"b\\c\nd\te\u{1}é", &mut out);
        assert_eq!(out, "a\\\"b\\\\c\\nd\\te\\u0001é");
    }
}
