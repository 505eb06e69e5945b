//! The keys a `jwt` verifies with: one from the config (a secret or a PEM public key), or a
//! JWKS document fetched from a URL, refreshed in the background, looked up by `kid`.
//!
//! Each key carries its algorithm family, and a token is only checked against keys of the
//! family its `alg` belongs to and only with algorithms the config allows: so an HS256 token
//! "signed" with an RSA public key's bytes (algorithm confusion) and `alg: none` never verify.

use jsonwebtoken::{Algorithm, DecodingKey};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Algorithm families: a key of one family never checks a token of another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Hmac,
    Rsa,
    Ec,
    Ed,
}

pub fn family(a: Algorithm) -> Family {
    use Algorithm::*;
    match a {
        HS256 | HS384 | HS512 => Family::Hmac,
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => Family::Rsa,
        ES256 | ES384 => Family::Ec,
        EdDSA => Family::Ed,
    }
}

/// One verification key.
#[derive(Clone)]
pub struct Key {
    pub kid: Option<String>,
    pub family: Family,
    /// the JWK's own `alg`, when it names one: only that algorithm then
    pub alg: Option<Algorithm>,
    pub key: DecodingKey,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({:?}, {:?})", self.kid, self.family)
    }
}

/// Parse a JWKS document; keys this library cannot use are skipped (and counted).
pub fn parse_jwks(body: &[u8]) -> Result<(Vec<Key>, usize), String> {
    let set: jsonwebtoken::jwk::JwkSet =
        serde_json::from_slice(body).map_err(|e| format!("not a JWKS document: {e}"))?;
    let mut keys = Vec::new();
    let mut skipped = 0;
    for jwk in &set.keys {
        use jsonwebtoken::jwk::AlgorithmParameters as P;
        let family = match &jwk.algorithm {
            P::RSA(_) => Family::Rsa,
            P::EllipticCurve(_) => Family::Ec,
            P::OctetKeyPair(_) => Family::Ed,
            P::OctetKey(_) => Family::Hmac,
        };
        let alg = jwk
            .common
            .key_algorithm
            .and_then(|k| k.to_string().parse::<Algorithm>().ok());
        match DecodingKey::from_jwk(jwk) {
            Ok(key) => keys.push(Key {
                kid: jwk.common.key_id.clone(),
                family,
                alg,
                key,
            }),
            Err(_) => skipped += 1,
        }
    }
    Ok((keys, skipped))
}

/// A JWKS URL's keys as last fetched.
#[derive(Debug)]
pub struct Jwks {
    pub url: String,
    pub refresh: Duration,
    state: arc_swap::ArcSwapOption<Loaded>,
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Debug)]
struct Loaded {
    keys: Arc<Vec<Key>>,
    at: Instant,
}

/// An unknown `kid` fetches again at most this often (or every `jwks_refresh` if shorter).
const REFETCH_GAP: Duration = Duration::from_secs(30);

impl Jwks {
    pub fn new(url: String, refresh: Duration) -> Arc<Jwks> {
        Arc::new(Jwks {
            url,
            refresh,
            state: arc_swap::ArcSwapOption::empty(),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    async fn fetch(&self) -> Result<Arc<Vec<Key>>, String> {
        let out = crate::scripting::http_client::Outbound::new(
            http::Method::GET,
            &self.url,
            vec![(
                http::header::ACCEPT,
                http::HeaderValue::from_static("application/json"),
            )],
            bytes::Bytes::new(),
            Duration::from_secs(5),
        )?;
        // the policy tidegate's own calls use (metrics pushes, OTLP): link-local denied
        let policy = crate::scripting::http_policy::HttpPolicy::default();
        let r = crate::scripting::http_client::send(out, &policy).await?;
        if r.status != 200 {
            return Err(format!("status {}", r.status));
        }
        let (keys, skipped) = parse_jwks(&r.body)?;
        tracing::info!(url = %self.url, keys = keys.len(), skipped, "JWKS fetched");
        let keys = Arc::new(keys);
        self.state.store(Some(Arc::new(Loaded {
            keys: keys.clone(),
            at: Instant::now(),
        })));
        Ok(keys)
    }

    /// Fetch now unless another task just did (callers wait for one fetch at a time).
    async fn fetch_once(
        self: &Arc<Self>,
        newer_than: Option<Instant>,
    ) -> Result<Arc<Vec<Key>>, String> {
        let _one = self.fetching.lock().await;
        if let Some(l) = self.state.load_full() {
            if newer_than.is_none_or(|t| l.at > t) {
                return Ok(l.keys.clone());
            }
        }
        self.fetch().await.inspect_err(|e| {
            tracing::warn!(url = %self.url, "JWKS fetch failed: {e}");
        })
    }

    /// The keys for a token with `kid`: fetched on first use, refreshed in the background
    /// when older than `refresh`, fetched again for an unknown `kid` (at most every 30 s).
    pub async fn keys(self: &Arc<Self>, kid: Option<&str>) -> Result<Arc<Vec<Key>>, String> {
        let Some(l) = self.state.load_full() else {
            return self.fetch_once(None).await;
        };
        if l.at.elapsed() >= self.refresh && self.fetching.try_lock().is_ok() {
            let (me, at) = (self.clone(), l.at);
            tokio::spawn(async move {
                let _ = me.fetch_once(Some(at)).await;
            });
        }
        let known = kid.is_none_or(|k| l.keys.iter().any(|key| key.kid.as_deref() == Some(k)));
        if !known && l.at.elapsed() >= REFETCH_GAP.min(self.refresh) {
            return self.fetch_once(Some(l.at)).await;
        }
        Ok(l.keys.clone())
    }
}
