//! `jwt`: a JSON Web Token (RFC 7519) from a header, cookie or query argument, verified with
//! a secret, a public key, or a JWKS URL.
//!
//! ```toml
//! [plugins.token]
//! category = "jwt"
//! algorithms = ["RS256"]         # allowed: HS256/384/512, RS256/384/512, PS256/384/512, ES256/384, EdDSA
//! # secret = "..."               # HS*: the shared secret (secret_base64 = true if it is base64)
//! public_key = "conf/jwt.pem"    # RS*/PS*/ES*/EdDSA: a PEM file or inline PEM
//! # jwks = "https://id.example.com/.well-known/jwks.json"   # or keys by `kid` from a URL
//! # jwks_refresh = "10m"         # default
//! # header = "authorization"     # default (the Bearer scheme); or cookie = "jwt"; or query = "token"
//! issuer = "https://id.example.com"      # optional: `iss` must be this (or one of a list)
//! audience = "api"                       # optional: `aud` must contain this (or one of a list)
//! leeway = "30s"                         # clock skew allowed on exp/nbf (default 30s)
//! require_exp = true                     # default: a token without `exp` is refused
//! user_claim = "sub"                     # default: the user ($remote_user, req.user)
//! claims_to_headers = ["sub:x-user", "tenant:x-tenant"]   # copied to the upstream request
//! hide_credentials = true                # default: the token is not sent upstream
//! realm = "tidegate"
//! ```
//!
//! A missing or invalid token gets 401 with `WWW-Authenticate: Bearer realm="...",
//! error="invalid_token"` (RFC 6750). `alg: none`, an algorithm not in `algorithms`, and a
//! token of one family checked with a key of another (algorithm confusion) are refused.

pub mod keys;

use super::{quoted, unauthorized, Admit, Authenticator, Verdict};
use crate::config::units::parse_duration;
use crate::plugins::request_parts;
use crate::plugins::{PluginConfError, PluginError};
use crate::proxy::ctx::Ctx;
use crate::proxy::exchange::Downstream;
use async_trait::async_trait;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use keys::{family, Family, Jwks, Key};
use serde::Deserialize;
use std::sync::Arc;

/// One name or a list of them.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn list(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConf {
    pub algorithms: Vec<String>,
    pub secret: Option<String>,
    #[serde(default)]
    pub secret_base64: bool,
    pub public_key: Option<String>,
    pub jwks: Option<String>,
    pub jwks_refresh: Option<String>,
    pub header: Option<String>,
    pub cookie: Option<String>,
    pub query: Option<String>,
    pub issuer: Option<OneOrMany>,
    pub audience: Option<OneOrMany>,
    pub leeway: Option<String>,
    #[serde(default = "crate::plugins::default_true")]
    pub require_exp: bool,
    pub user_claim: Option<String>,
    #[serde(default)]
    pub claims_to_headers: Vec<String>,
    #[serde(default = "crate::plugins::default_true")]
    pub hide_credentials: bool,
    pub realm: Option<String>,
}

#[derive(Debug)]
enum Source {
    /// `Authorization: Bearer TOKEN`
    Bearer,
    Header(http::HeaderName),
    Cookie(String),
    Query(String),
}

#[derive(Debug)]
enum KeySet {
    Fixed(Arc<Vec<Key>>),
    Remote(Arc<Jwks>),
}

#[derive(Debug)]
pub struct Jwt {
    algorithms: Vec<Algorithm>,
    keys: KeySet,
    source: Source,
    validation: Validation,
    user_claim: String,
    claims_to_headers: Vec<(String, http::HeaderName)>,
    hide: bool,
    realm: String,
}

fn err(key: &str, m: impl Into<String>) -> PluginConfError {
    PluginConfError::at(key, m)
}

/// A key from the config: the secret for HS*, else a PEM (a path or inline).
fn fixed_key(c: &JwtConf, fam: Family) -> Result<DecodingKey, PluginConfError> {
    if fam == Family::Hmac {
        let s = c
            .secret
            .as_deref()
            .ok_or_else(|| err("secret", "HS algorithms need `secret` (or `jwks`)"))?;
        if s.len() < 16 && !c.secret_base64 {
            return Err(err(
                "secret",
                "a secret shorter than 16 bytes is too easy to guess",
            ));
        }
        return if c.secret_base64 {
            DecodingKey::from_base64_secret(s)
                .map_err(|e| err("secret", format!("not base64: {e}")))
        } else {
            Ok(DecodingKey::from_secret(s.as_bytes()))
        };
    }
    let v = c.public_key.as_deref().ok_or_else(|| {
        err(
            "public_key",
            "RS/PS/ES/EdDSA algorithms need `public_key` (or `jwks`)",
        )
    })?;
    let pem = if v.contains("-----BEGIN") {
        v.as_bytes().to_vec()
    } else {
        std::fs::read(v).map_err(|e| err("public_key", format!("{v}: {e}")))?
    };
    let r = match fam {
        Family::Rsa => DecodingKey::from_rsa_pem(&pem),
        Family::Ec => DecodingKey::from_ec_pem(&pem),
        Family::Ed => DecodingKey::from_ed_pem(&pem),
        Family::Hmac => unreachable_family(),
    };
    r.map_err(|e| {
        err(
            "public_key",
            format!("not a {fam:?} public key in PEM: {e}"),
        )
    })
}

fn unreachable_family() -> jsonwebtoken::errors::Result<DecodingKey> {
    Err(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat.into())
}

impl Jwt {
    pub fn new(c: JwtConf) -> Result<Jwt, PluginConfError> {
        if c.algorithms.is_empty() {
            return Err(err("algorithms", "list at least one, e.g. [\"RS256\"]"));
        }
        let mut algorithms = Vec::new();
        for a in &c.algorithms {
            let alg: Algorithm = a.parse().map_err(|_| {
                err(
                    "algorithms",
                    format!(
                        "`{a}` is not an algorithm tidegate verifies; HS256, HS384, HS512, \
                         RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 or EdDSA"
                    ),
                )
            })?;
            algorithms.push(alg);
        }
        let sources = [c.jwks.is_some(), c.secret.is_some(), c.public_key.is_some()];
        let keys = if let Some(url) = &c.jwks {
            if sources.iter().filter(|s| **s).count() > 1 {
                return Err(err(
                    "jwks",
                    "use `jwks` alone, without `secret` or `public_key`",
                ));
            }
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(err("jwks", format!("`{url}` must be an http(s) URL")));
            }
            let refresh = match c.jwks_refresh.as_deref() {
                Some(t) => parse_duration(t).map_err(|m| err("jwks_refresh", m))?,
                None => std::time::Duration::from_secs(600),
            };
            KeySet::Remote(Jwks::new(url.clone(), refresh))
        } else {
            let fams: Vec<Family> = algorithms.iter().map(|a| family(*a)).collect();
            let fam = fams[0];
            if fams.iter().any(|f| *f != fam) {
                return Err(err(
                    "algorithms",
                    "one key verifies one family of algorithms (HS, RS/PS, ES or EdDSA); \
                     to mix them, use `jwks`",
                ));
            }
            if fam == Family::Hmac && c.public_key.is_some() {
                return Err(err(
                    "public_key",
                    "HS algorithms use `secret`; a public key as an HMAC secret is the \
                     algorithm-confusion attack",
                ));
            }
            if fam != Family::Hmac && c.secret.is_some() {
                return Err(err(
                    "secret",
                    "RS/PS/ES/EdDSA algorithms use `public_key`, not `secret`",
                ));
            }
            KeySet::Fixed(Arc::new(vec![Key {
                kid: None,
                family: fam,
                alg: None,
                key: fixed_key(&c, fam)?,
            }]))
        };
        let source = match (&c.header, &c.cookie, &c.query) {
            (None, None, None) => Source::Bearer,
            (Some(h), None, None) if h.eq_ignore_ascii_case("authorization") => Source::Bearer,
            (Some(h), None, None) => Source::Header(
                http::HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes())
                    .map_err(|_| err("header", format!("`{h}` is not a header name")))?,
            ),
            (None, Some(k), None) => Source::Cookie(k.clone()),
            (None, None, Some(q)) => Source::Query(q.clone()),
            _ => {
                return Err(err(
                    "header",
                    "take the token from one of `header`, `cookie`, `query`",
                ))
            }
        };
        let mut validation = Validation::new(algorithms[0]);
        validation.algorithms = algorithms.clone();
        validation.leeway = match c.leeway.as_deref() {
            Some(l) => parse_duration(l).map_err(|m| err("leeway", m))?.as_secs(),
            None => 30,
        };
        validation.validate_nbf = true;
        validation.required_spec_claims.clear();
        if c.require_exp {
            validation.required_spec_claims.insert("exp".into());
        }
        if let Some(iss) = c.issuer {
            validation.set_issuer(&iss.list());
            validation.required_spec_claims.insert("iss".into());
        }
        match c.audience {
            Some(aud) => {
                validation.set_audience(&aud.list());
                validation.required_spec_claims.insert("aud".into());
            }
            None => validation.validate_aud = false,
        }
        let mut claims_to_headers = Vec::new();
        for m in &c.claims_to_headers {
            let (claim, h) = m
                .split_once(':')
                .ok_or_else(|| err("claims_to_headers", format!("`{m}` must be `CLAIM:HEADER`")))?;
            let h = http::HeaderName::from_bytes(h.trim().to_ascii_lowercase().as_bytes())
                .map_err(|_| {
                    err(
                        "claims_to_headers",
                        format!("`{}` is not a header name", h.trim()),
                    )
                })?;
            claims_to_headers.push((claim.trim().to_string(), h));
        }
        Ok(Jwt {
            algorithms,
            keys,
            source,
            validation,
            user_claim: c.user_claim.unwrap_or_else(|| "sub".into()),
            claims_to_headers,
            hide: c.hide_credentials,
            realm: c.realm.unwrap_or_else(|| "tidegate".into()),
        })
    }

    fn token<'a>(&self, session: &'a dyn Downstream) -> Option<std::borrow::Cow<'a, str>> {
        use std::borrow::Cow;
        let req = session.req();
        match &self.source {
            Source::Bearer => {
                let v = req
                    .headers
                    .get(http::header::AUTHORIZATION)?
                    .to_str()
                    .ok()?;
                let (scheme, t) = v.trim().split_once(' ')?;
                scheme
                    .eq_ignore_ascii_case("bearer")
                    .then(|| Cow::Borrowed(t.trim()))
            }
            Source::Header(h) => {
                let v = req.headers.get(h)?.to_str().ok()?.trim();
                Some(Cow::Borrowed(v.strip_prefix("Bearer ").unwrap_or(v)))
            }
            Source::Cookie(c) => request_parts::cookie(req, c).map(Cow::Borrowed),
            Source::Query(q) => request_parts::query(req, q),
        }
    }

    fn refuse(&self, why: Option<&str>) -> Verdict {
        let challenge = match why {
            None => format!("Bearer realm={}", quoted(&self.realm)),
            Some(w) => format!(
                "Bearer realm={}, error=\"invalid_token\", error_description={}",
                quoted(&self.realm),
                quoted(w)
            ),
        };
        Err(unauthorized(&challenge, "Unauthorized\n"))
    }

    /// Verify `token`; the claims or why not (a short text for the challenge).
    async fn verify(
        &self,
        token: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>, String> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| "malformed token".to_string())?;
        if !self.algorithms.contains(&header.alg) {
            return Err(format!("algorithm {:?} is not accepted", header.alg));
        }
        let fam = family(header.alg);
        let keys = match &self.keys {
            KeySet::Fixed(k) => k.clone(),
            KeySet::Remote(j) => j.keys(header.kid.as_deref()).await.map_err(|e| {
                tracing::error!(url = %j.url, "no JWKS keys to verify with: {e}");
                "signing keys unavailable".to_string()
            })?,
        };
        let mut validation = self.validation.clone();
        validation.algorithms = vec![header.alg];
        let mut last = "no key for this token".to_string();
        for k in keys.iter().filter(|k| {
            k.family == fam
                && k.alg.is_none_or(|a| a == header.alg)
                && (header.kid.is_none() || k.kid.is_none() || k.kid == header.kid)
        }) {
            match jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
                token,
                &k.key,
                &validation,
            ) {
                Ok(d) => return Ok(d.claims),
                Err(e) => last = describe(&e),
            }
        }
        Err(last)
    }
}

fn describe(e: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::ExpiredSignature => "token expired".into(),
        K::ImmatureSignature => "token not valid yet".into(),
        K::InvalidIssuer => "wrong issuer".into(),
        K::InvalidAudience => "wrong audience".into(),
        K::InvalidSignature => "bad signature".into(),
        K::MissingRequiredClaim(c) => format!("missing claim {c}"),
        K::InvalidAlgorithm => "algorithm not accepted".into(),
        _ => "invalid token".into(),
    }
}

/// A claim as header text: strings as they are, other values as JSON.
fn claim_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[async_trait]
impl Authenticator for Jwt {
    async fn authenticate(
        &self,
        session: &mut dyn Downstream,
        _ctx: &mut Ctx,
    ) -> Result<Verdict, PluginError> {
        let Some(token) = self.token(&*session).map(|t| t.into_owned()) else {
            return Ok(self.refuse(None));
        };
        let claims = match self.verify(&token).await {
            Ok(c) => c,
            Err(why) => return Ok(self.refuse(Some(&why))),
        };
        let mut headers = Vec::new();
        for (claim, h) in &self.claims_to_headers {
            if let Some(v) = claims.get(claim) {
                if let Ok(v) = http::HeaderValue::from_str(&claim_text(v)) {
                    headers.push((h.clone(), v));
                }
            }
        }
        Ok(Ok(Admit {
            user: claims.get(&self.user_claim).map(claim_text),
            headers,
            remove: self
                .claims_to_headers
                .iter()
                .map(|(_, h)| h.clone())
                .collect(),
        }))
    }

    fn hide(&self, session: &mut dyn Downstream) {
        if !self.hide {
            return;
        }
        let req = session.req_mut();
        match &self.source {
            Source::Bearer => {
                req.remove_header(&http::header::AUTHORIZATION);
            }
            Source::Header(h) => {
                req.remove_header(h);
            }
            Source::Cookie(c) => request_parts::remove_cookie(req, c),
            Source::Query(q) => request_parts::remove_query_arg(req, q),
        }
    }
}

super::auth_plugin!(Jwt);
