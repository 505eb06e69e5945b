//! The cache's phases: look up (or purge) in the request phase, decide whether to store in
//! the response phase, copy the body as it passes, answer stale when the upstream fails, and
//! store when the response has ended.

use super::*;

#[async_trait]
impl Plugin for Cache {
    /// PURGE, a hit, a stale answer while another request refreshes, or on to the upstream
    /// (holding the key's lock when this request is the one that fetches it).
    async fn on_request(
        &self,
        session: &mut dyn Downstream,
        ctx: &mut Ctx,
    ) -> Result<Flow, PluginError> {
        let method = session.method().clone();
        if method.as_str() == "PURGE" {
            if !self.may_purge(session, ctx) {
                return Ok(Flow::Respond(Answer {
                    status: 403,
                    headers: Vec::new(),
                    body: Bytes::from_static(b"purge not allowed\n"),
                }));
            }
            let key = self.key.render_as_get(session, ctx);
            let found = self.store.purge(&key);
            return Ok(Flow::Respond(Answer {
                status: if found { 200 } else { 404 },
                headers: vec![(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json"),
                )],
                body: Bytes::from(format!("{{\"purged\":{found}}}\n")),
            }));
        }
        let key = self.key.render(session, ctx);
        let mut p = Pending {
            key,
            status: "BYPASS",
            ..Default::default()
        };
        if method != http::Method::GET && method != http::Method::HEAD {
            ctx.plugin.cache = Some(Box::new(p));
            return Ok(Flow::Continue);
        }
        let rq = Directives::of(&session.req().headers);
        if rq.no_store {
            ctx.plugin.cache = Some(Box::new(p));
            return Ok(Flow::Continue);
        }
        let refresh = rq.no_cache || rq.max_age == Some(0);
        let now = SystemTime::now();
        let found = (!refresh)
            .then(|| self.store.lookup(&p.key, |n| Self::vary_value(session, n)))
            .flatten();
        p.status = if refresh { "BYPASS" } else { "MISS" };
        if let Some(e) = found {
            match policy::standing(&e.meta.life(), e.meta.age(now), &rq) {
                Standing::Fresh => {
                    if let Some(a) = self.serve(&e, "HIT").await {
                        p.status = "HIT";
                        return Self::answered(ctx, p, a);
                    }
                }
                Standing::Revalidating => match self.locks.acquire(&p.key) {
                    // another request refreshes it: this one gets the stale entry
                    Acquired::Wait(_) => {
                        if let Some(a) = self.serve(&e, "STALE").await {
                            p.status = "STALE";
                            return Self::answered(ctx, p, a);
                        }
                    }
                    Acquired::Fill(g) => {
                        p.guard = Some(g);
                        p.status = "EXPIRED";
                        p.stale = Some(e);
                    }
                },
                Standing::ErrorOnly => {
                    p.status = "EXPIRED";
                    p.stale = Some(e);
                }
                Standing::Dead => p.status = "EXPIRED",
            }
        } else if rq.only_if_cached {
            return Ok(Flow::Respond(Answer {
                status: 504,
                headers: Vec::new(),
                body: Bytes::new(),
            }));
        }
        if p.guard.is_none() && !refresh {
            match self.locks.acquire(&p.key) {
                Acquired::Fill(g) => p.guard = Some(g),
                Acquired::Wait(n) => {
                    self.locks.wait(&p.key, n, self.lock_timeout).await;
                    let again = self.store.lookup(&p.key, |n| Self::vary_value(session, n));
                    if let Some(e) = again {
                        let life = e.meta.life();
                        if policy::standing(&life, e.meta.age(SystemTime::now()), &rq)
                            == Standing::Fresh
                        {
                            if let Some(a) = self.serve(&e, "HIT").await {
                                p.status = "HIT";
                                return Self::answered(ctx, p, a);
                            }
                        }
                    }
                }
            }
        }
        ctx.plugin.cache = Some(Box::new(p));
        Ok(Flow::Continue)
    }

    /// Say what the cache did, and start copying a response that may be stored.
    fn on_response(
        &self,
        session: &dyn Downstream,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<(), PluginError> {
        let Some(p) = ctx.plugin.cache.as_mut() else {
            return Ok(());
        };
        if p.served {
            return Ok(());
        }
        if self.status_header {
            let _ = resp.insert_header("x-cache-status", p.status);
        }
        if session.method() != http::Method::GET {
            return Ok(());
        }
        let now = SystemTime::now();
        let status = resp.status.as_u16();
        let Some(life) = policy::storable(
            &session.req().headers,
            status,
            &resp.headers,
            self.defaults,
            now,
        ) else {
            return Ok(());
        };
        let length = resp
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if length.is_some_and(|n| n > self.max_object) {
            return Ok(());
        }
        let vary: Vec<(String, Option<String>)> = resp
            .headers
            .get_all(http::header::VARY)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|n| n.trim().to_ascii_lowercase())
            .filter(|n| !n.is_empty())
            .map(|n| {
                let v = Self::vary_value(session, &n);
                (n, v)
            })
            .collect();
        let headers = resp
            .headers
            .iter()
            .filter(|(k, _)| {
                !crate::proxy::names::hop_by_hop(k)
                    && *k != http::header::CONTENT_LENGTH
                    && *k != http::header::AGE
                    && k.as_str() != "x-cache-status"
            })
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        let stored = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        p.fill = Some(Fill {
            meta: Meta {
                key: p.key.clone(),
                status,
                headers,
                stored,
                fresh: life.fresh.as_secs_f64(),
                swr: life.swr.as_secs_f64(),
                sie: life.sie.as_secs_f64(),
                initial_age: life.initial_age.as_secs_f64(),
                vary,
                size: 0,
            },
            body: BytesMut::with_capacity(length.unwrap_or(0).min(self.max_object) as usize),
            ended: matches!(status, 204 | 304),
            too_big: false,
        });
        ctx.body_watched = true;
        Ok(())
    }

    fn on_body_seen(&self, _session: &dyn Downstream, chunk: &[u8], eof: bool, ctx: &mut Ctx) {
        let Some(fill) = ctx.plugin.cache.as_mut().and_then(|p| p.fill.as_mut()) else {
            return;
        };
        if fill.too_big {
            return;
        }
        if fill.body.len() + chunk.len() > self.max_object as usize {
            fill.too_big = true;
            fill.body = BytesMut::new();
            return;
        }
        fill.body.extend_from_slice(chunk);
        if eof {
            fill.ended = true;
        }
    }

    /// The upstream failed: a stale entry within its `stale-if-error` answers instead.
    fn on_error(&self, _session: &dyn Downstream, ctx: &mut Ctx, _code: u16) -> Option<Answer> {
        let p = ctx.plugin.cache.as_mut()?;
        let e = p.stale.clone()?;
        let life = e.meta.life();
        if e.meta.age(SystemTime::now()) >= life.fresh + life.sie.max(life.swr) {
            return None;
        }
        let a = self.answer_with(&e, e.body_now(), "STALE")?;
        p.status = "STALE";
        p.served = true;
        Some(a)
    }

    /// Store a response that ended whole; then the waiting requests may read it.
    fn on_log(&self, _session: &dyn Downstream, ctx: &mut Ctx) {
        let Some(mut p) = ctx.plugin.cache.take() else {
            return;
        };
        ctx.log_fields.push(("cache".into(), p.status.to_string()));
        if let Some(fill) = p.fill.take() {
            if fill.ended && !fill.too_big && !p.served {
                let mut meta = fill.meta;
                let body = fill.body.freeze();
                meta.size = body.len() as u64
                    + meta
                        .headers
                        .iter()
                        .map(|(k, v)| (k.len() + v.len()) as u64)
                        .sum::<u64>()
                    + 256;
                let entry = self.store.insert(meta, Body::Mem(body));
                self.store.persist(entry);
            }
        }
        // the guard goes last: its waiters look the key up again
        drop(p.guard.take());
    }
}
