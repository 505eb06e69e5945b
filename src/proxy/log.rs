//! Log phase: render the access-log line and hand it to the writer thread.

use super::ctx::Ctx;
use super::upstream::cookie;
use crate::observability::access_log::{Field, LogSource};
use crate::proxy::exchange::Downstream;
use std::fmt::Write;

/// Count the request in the metrics, if they are on: a few atomic operations.
pub fn metrics(session: &dyn Downstream, ctx: &mut Ctx) {
    let Some(m) = ctx.state.servers[ctx.server].metrics.as_ref() else {
        return;
    };
    let req = session.req();
    m.location(ctx.route.as_ref().map(|r| r.location)).record(
        &req.method,
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
    writer.send(format.render(&Request { session, ctx }));
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

fn write_field(f: &Field, session: &dyn Downstream, ctx: &Ctx, out: &mut String) {
    let req = session.req();
    let dash = |out: &mut String, v: Option<&str>| {
        out.push_str(v.filter(|s| !s.is_empty()).unwrap_or("-"))
    };
    match f {
        Field::Lit(s) => out.push_str(s),
        Field::Method => out.push_str(req.method.as_str()),
        Field::Path => out.push_str(req.uri.path()),
        Field::Query => dash(out, req.uri.query()),
        Field::Uri => out.push_str(req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")),
        Field::Proto => out.push_str(if session.http2() {
            "HTTP/2.0"
        } else {
            version(req.version)
        }),
        Field::Scheme => out.push_str(ctx.scheme()),
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
            Some(ip) => {
                let _ = write!(out, "{ip}");
            }
            None => out.push('-'),
        },
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
        Field::ReqHeader(h) => dash(out, req.headers.get(h).and_then(|v| v.to_str().ok())),
        Field::RespHeader(h) => dash(
            out,
            session
                .sent_head()
                .and_then(|r| r.headers.get(h))
                .and_then(|v| v.to_str().ok()),
        ),
        Field::Cookie(c) => dash(out, cookie(req, c)),
        Field::Custom(name) => dash(
            out,
            ctx.log_fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str()),
        ),
    }
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
