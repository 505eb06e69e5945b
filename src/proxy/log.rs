//! Log phase: render the access-log line into this thread's buffer for the writer thread.

use super::ctx::Ctx;
use super::upstream::cookie;
use crate::observability::access_log::{Field, LogSource};
use crate::proxy::exchange::Downstream;
use std::fmt::Write;

/// The log phase, the same on every engine: the peer is released, each plugin's `on_log`
/// runs, then the access log, the metrics and the trace's end. `ctx.status` is the status
/// sent, when nothing set it before.
pub fn finish(session: &dyn Downstream, ctx: &mut Ctx) {
    ctx.inflight = None;
    if ctx.status == 0 {
        ctx.status = session.sent_head().map_or(0, |h| h.status.as_u16());
    }
    if let Some(chain) = ctx.chain() {
        for def in chain.plugins() {
            def.plugin.on_log(session, ctx);
        }
    }
    access_log(session, ctx);
    metrics(session, ctx);
    crate::observability::otel::spans::end(session, ctx);
}

/// Count the request in the metrics, if they are on: a few atomic operations.
pub fn metrics(session: &dyn Downstream, ctx: &mut Ctx) {
    let Some(m) = ctx.state.servers[ctx.server].metrics.as_ref() else {
        return;
    };
    m.location(ctx.route.as_ref().map(|r| r.location)).record(
        session.method(),
        ctx.status,
        ctx.start.elapsed().as_secs_f64(),
    );
    m.body_in.inc_by(ctx.body_seen);
    m.body_out.inc_by(session.sent_body_bytes() as u64);
    ctx.in_flight = None;
}

/// Write the access log line for this request, if the server has an access log.
pub fn access_log(session: &dyn Downstream, ctx: &Ctx) {
    let server = ctx.server();
    let (Some(format), Some(writer)) = (
        &server.access_log,
        &ctx.state.servers[ctx.server].access_log,
    ) else {
        return;
    };
    writer.line(|out| format.render_into(&Request { session, ctx }, out));
}

/// A request's values for the access log.
struct Request<'a> {
    session: &'a dyn Downstream,
    ctx: &'a Ctx,
}

impl LogSource for Request<'_> {
    fn write_field(&self, f: &Field, out: &mut String) {
        write_field(f, self.session, self.ctx, out)
    }
}

/// Fields that need the request's whole field map (a cookie, the head's length) ask for it;
/// the others read in place (`engine/h1/req_head.rs`).
fn write_field(f: &Field, session: &dyn Downstream, ctx: &Ctx, out: &mut String) {
    let uri = session.uri();
    let dash = |out: &mut String, v: Option<&str>| {
        out.push_str(v.filter(|s| !s.is_empty()).unwrap_or("-"))
    };
    match f {
        Field::Lit(s) => out.push_str(s),
        Field::Method => out.push_str(session.method().as_str()),
        Field::Path => out.push_str(uri.path()),
        Field::Query => dash(out, uri.query()),
        Field::Uri => out.push_str(uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")),
        Field::Proto => out.push_str(if session.http2() {
            "HTTP/2.0"
        } else {
            version(session.version())
        }),
        Field::Scheme => out.push_str(ctx.scheme()),
        Field::Engine => out.push_str(ctx.engine),
        Field::Host => dash(out, Some(&ctx.host)),
        Field::Status => number(out, ctx.status),
        Field::Size => number(out, session.sent_body_bytes()),
        Field::Latency => number(out, ctx.start.elapsed().as_millis()),
        Field::LatencyUs => number(out, ctx.start.elapsed().as_micros()),
        Field::Remote => match session.peer_addr() {
            Some(a) => {
                let _ = write!(out, "{a}");
            }
            None => out.push('-'),
        },
        Field::ClientIp => match ctx.client_ip {
            Some(ip) => ip_text(out, session, ip),
            None => out.push('-'),
        },
        Field::User => dash(out, ctx.plugin.user.as_deref()),
        Field::Upstream => dash(out, ctx.upstream.as_ref().map(|u| u.name.as_str())),
        Field::UpstreamAddr => match ctx.upstream_addr {
            Some(a) => {
                let _ = write!(out, "{a}");
            }
            None => out.push('-'),
        },
        Field::RequestId => dash(out, ctx.request_id.as_deref()),
        Field::Location => dash(out, ctx.location().map(|l| l.name.as_str())),
        Field::Server => out.push_str(&ctx.server().name),
        Field::Time => time_text(std::time::SystemTime::now(), out),
        Field::Ts => {
            let ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0);
            number(out, ms);
        }
        Field::TimeLocal => time_local(out),
        Field::Msec => {
            let ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0);
            let _ = write!(out, "{}.{:03}", ms / 1000, ms % 1000);
        }
        Field::BytesSent => number(
            out,
            session.sent_head().map_or(0, response_head_len) + session.sent_body_bytes(),
        ),
        Field::RequestLength => number(out, request_head_len(session.req()) as u64 + ctx.body_seen),
        Field::RemoteAddr => match session.peer_addr() {
            Some(a) => ip_text(out, session, a.ip()),
            None => out.push('-'),
        },
        Field::RemotePort => match session.peer_addr() {
            Some(a) => number(out, a.port()),
            None => out.push('-'),
        },
        Field::UpstreamStatus => match ctx.upstream_status {
            0 => out.push('-'),
            s => number(out, s),
        },
        Field::UpstreamConnectTime => seconds(out, ctx.upstream_connect),
        Field::UpstreamResponseTime => seconds(out, ctx.upstream_response),
        Field::Retries => number(out, ctx.tried.len().saturating_sub(1)),
        Field::TraceId => match &ctx.otel {
            Some(s) => out.push_str(&s.trace_id()),
            None => out.push('-'),
        },
        Field::Connection => match ctx.connection {
            Some((id, _)) => number(out, id),
            None => out.push('-'),
        },
        Field::ConnectionRequests => match ctx.connection {
            Some((_, n)) => number(out, n),
            None => out.push('-'),
        },
        Field::QueryArg(name) => dash(
            out,
            uri.query()
                .and_then(|q| crate::routing::rules::query_arg(q, name)),
        ),
        Field::TlsVersion => dash(out, ctx.tls.as_ref().map(|t| t.version)),
        Field::TlsCipher => dash(out, ctx.tls.as_ref().map(|t| t.cipher)),
        Field::TlsSni => dash(out, ctx.tls.as_ref().and_then(|t| t.sni.as_deref())),
        Field::TlsResumed => dash(
            out,
            ctx.tls.as_ref().map(|t| if t.resumed { "r" } else { "." }),
        ),
        Field::TlsClient => dash(
            out,
            ctx.tls.as_ref().and_then(|t| t.client_subject.as_deref()),
        ),
        Field::ReqHeader(h) => dash(
            out,
            session.header(h).and_then(crate::proxy::exchange::text),
        ),
        Field::RespHeader(h) => dash(
            out,
            session
                .sent_head()
                .and_then(|r| r.headers.get(h))
                .and_then(|v| v.to_str().ok()),
        ),
        Field::Cookie(c) => dash(out, cookie(session.req(), c)),
        Field::Custom(name) => dash(
            out,
            ctx.log_fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str()),
        ),
    }
}

/// Seconds with millisecond resolution (`0.012`), or `-`.
fn seconds(out: &mut String, d: Option<std::time::Duration>) {
    match d {
        Some(d) => {
            let ms = d.as_millis();
            let _ = write!(out, "{}.{:03}", ms / 1000, ms % 1000);
        }
        None => out.push('-'),
    }
}

/// The bytes of a response head as HTTP/1.1 writes it.
fn response_head_len(h: &pingora::http::ResponseHeader) -> usize {
    let reason = h.status.canonical_reason().unwrap_or("").len();
    let fields: usize = h
        .headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    "HTTP/1.1 200 \r\n".len() + reason + fields + 2
}

/// The bytes of a request head as HTTP/1.1 writes it.
fn request_head_len(r: &pingora::http::RequestHeader) -> usize {
    let target = r.uri.path_and_query().map_or(1, |p| p.as_str().len());
    let fields: usize = r
        .headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    r.method.as_str().len() + 1 + target + " HTTP/1.1\r\n".len() + fields + 2
}

/// The local time as nginx's `$time_local` writes it (`01/Dec/2026:05:45:04 +0000`),
/// formatted once per second per thread.
fn time_local(out: &mut String) {
    thread_local! {
        static LAST: std::cell::RefCell<(i64, String)> = const {
            std::cell::RefCell::new((i64::MIN, String::new()))
        };
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if last.0 != now {
            last.1.clear();
            local_text(now, &mut last.1);
            last.0 = now;
        }
        out.push_str(&last.1);
    })
}

fn local_text(secs: i64, out: &mut String) {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = secs as libc::time_t;
    // SAFETY: localtime_r writes into the zeroed struct we own; both pointers are valid
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        out.push('-');
        return;
    }
    let off = tm.tm_gmtoff / 60;
    let sign = if off < 0 { '-' } else { '+' };
    let _ = write!(
        out,
        "{:02}/{}/{}:{:02}:{:02}:{:02} {sign}{:02}{:02}",
        tm.tm_mday,
        MONTHS.get(tm.tm_mon as usize).unwrap_or(&"-"),
        tm.tm_year + 1900,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        off.abs() / 60,
        off.abs() % 60
    );
}

/// A number in decimal, without `fmt`.
fn number(out: &mut String, n: impl itoa::Integer) {
    out.push_str(itoa::Buffer::new().format(n));
}

/// `now` as RFC 3339 text (seconds), formatted once per second per thread.
fn time_text(now: std::time::SystemTime, out: &mut String) {
    thread_local! {
        static LAST: std::cell::RefCell<(u64, String)> = const {
            // no second matches u64::MAX: the first call formats
            std::cell::RefCell::new((u64::MAX, String::new()))
        };
    }
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if last.0 != secs {
            last.1.clear();
            let _ = write!(last.1, "{}", humantime::format_rfc3339_seconds(now));
            last.0 = secs;
        }
        out.push_str(&last.1);
    })
}

fn version(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_09 => "HTTP/0.9",
        _ => "HTTP/1.1",
    }
}

/// An IP address as text: the peer's from the engine's text of it, when kept per connection
/// (formatting one with `Display` was a quarter of a log line's cost), any other formatted.
fn ip_text(out: &mut String, session: &dyn Downstream, ip: std::net::IpAddr) {
    if session.peer_addr().is_some_and(|a| a.ip() == ip) {
        if let Some(text) = session.kept_peer_ip().and_then(|t| t.to_str().ok()) {
            out.push_str(text);
            return;
        }
    }
    let _ = write!(out, "{ip}");
}

#[cfg(test)]
mod tests {
    use super::time_text;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn the_time_text_follows_the_second() {
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let text = |t| {
            let mut out = String::new();
            time_text(t, &mut out);
            out
        };
        assert_eq!(text(t), "2023-11-14T22:13:20Z");
        // same second: the kept text; the next second: formatted anew
        assert_eq!(text(t + Duration::from_millis(900)), "2023-11-14T22:13:20Z");
        assert_eq!(text(t + Duration::from_secs(1)), "2023-11-14T22:13:21Z");
        assert_eq!(text(t), "2023-11-14T22:13:20Z");
    }
}
