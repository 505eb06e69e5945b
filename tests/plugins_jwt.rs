//! `jwt` through real sockets: HS256 with claims and their checks, RS256 from a cookie, ES256
//! keys from a JWKS URL (a real HTTP server) with `kid` rotation, and the attacks: `alg:
//! none`, an algorithm not allowed, and HS256 signed with the public key (algorithm confusion).

mod common;
use common::plugins::*;
use common::*;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;

const SECRET: &str = "a-test-secret-of-32-bytes-length!";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn hs(claims: serde_json::Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn b64url(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn echo() -> Origin {
    Origin::start(|r| {
        ok(&format!(
            "user={} tenant={} auth={}",
            r.header("x-user").unwrap_or("-"),
            r.header("x-tenant").unwrap_or("-"),
            r.header("authorization").unwrap_or("-")
        ))
    })
}

#[test]
fn hs256_tokens_with_claims_checks_and_headers() {
    let origin = echo();
    let port = free_port();
    let cfg = one_location(
        port,
        &origin,
        &["token"],
        &format!(
            r#"
[plugins.token]
category = "jwt"
algorithms = ["HS256"]
secret = "{SECRET}"
issuer = "https://id.test"
audience = ["api", "web"]
leeway = "5s"
claims_to_headers = ["sub:x-user", "tenant:x-tenant"]
"#
        ),
    );
    let t = Tidegate::start(&cfg, &[port]);
    let bearer = |tok: &str| format!("Bearer {tok}");
    let good = hs(
        json!({"sub": "alice", "tenant": 7, "iss": "https://id.test", "aud": "api", "exp": now() + 300}),
    );
    let r = get(port, "h", "/", &[("authorization", &bearer(&good))]);
    assert_eq!(r.status, 200, "{}", t.stderr());
    assert_eq!(r.text(), "user=alice tenant=7 auth=-");

    let r = get(port, "h", "/", &[]);
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"tidegate\"")
    );
    for (claims, why) in [
        (
            json!({"sub": "a", "iss": "https://id.test", "aud": "api", "exp": now() - 60}),
            "token expired",
        ),
        (
            json!({"sub": "a", "iss": "https://evil.test", "aud": "api", "exp": now() + 60}),
            "wrong issuer",
        ),
        (
            json!({"sub": "a", "iss": "https://id.test", "aud": "other", "exp": now() + 60}),
            "wrong audience",
        ),
        (
            json!({"sub": "a", "iss": "https://id.test", "aud": "api"}),
            "missing claim exp",
        ),
        (
            json!({"sub": "a", "iss": "https://id.test", "aud": "api", "exp": now() + 60, "nbf": now() + 120}),
            "token not valid yet",
        ),
    ] {
        let r = get(
            port,
            "h",
            "/",
            &[("authorization", &bearer(&hs(claims.clone())))],
        );
        assert_eq!(r.status, 401, "{claims}");
        let c = r.header("www-authenticate").unwrap_or_default();
        assert!(
            c.contains("error=\"invalid_token\"") && c.contains(why),
            "{claims}: {c}"
        );
    }
    // another secret's signature
    let forged = encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": "a", "iss": "https://id.test", "aud": "api", "exp": now() + 60}),
        &EncodingKey::from_secret(b"another-secret-of-enough-length!!"),
    )
    .unwrap();
    let r = get(port, "h", "/", &[("authorization", &bearer(&forged))]);
    assert!(r
        .header("www-authenticate")
        .unwrap_or_default()
        .contains("bad signature"));
    // alg none: the signature part empty
    let head = b64url(br#"{"alg":"none","typ":"JWT"}"#);
    let body = b64url(
        json!({"sub": "root", "iss": "https://id.test", "aud": "api", "exp": now() + 60})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(
        get(
            port,
            "h",
            "/",
            &[("authorization", &bearer(&format!("{head}.{body}.")))]
        )
        .status,
        401
    );
    // HS512 is not in `algorithms`
    let hs512 = encode(
        &Header::new(Algorithm::HS512),
        &json!({"sub": "a", "iss": "https://id.test", "aud": "api", "exp": now() + 60}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let r = get(port, "h", "/", &[("authorization", &bearer(&hs512))]);
    assert!(
        r.header("www-authenticate")
            .unwrap_or_default()
            .contains("not accepted"),
        "{:?}",
        r.headers
    );
    // a client's own x-user never reaches the upstream when the claim is absent
    let no_tenant =
        hs(json!({"sub": "bob", "iss": "https://id.test", "aud": "web", "exp": now() + 60}));
    let r = get(
        port,
        "h",
        "/",
        &[
            ("authorization", &bearer(&no_tenant)),
            ("x-tenant", "spoofed"),
        ],
    );
    assert_eq!(r.text(), "user=bob tenant=- auth=-");
    assert!(!t.stderr().contains(&good), "no token in the log");
}

#[test]
fn rs256_from_a_cookie_and_the_algorithm_confusion_attack() {
    let origin = echo();
    let port = free_port();
    let key = common::tls::rsa_key();
    let public = key.public_key_pem();
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("jwt.pem");
    std::fs::write(&pem, &public).unwrap();
    let cfg = one_location(
        port,
        &origin,
        &["token"],
        &format!(
            r#"
[plugins.token]
category = "jwt"
algorithms = ["RS256"]
public_key = "{}"
cookie = "session"
hide_credentials = false
"#,
            pem.display()
        ),
    );
    let t = Tidegate::start(&cfg, &[port]);
    let claims = json!({"sub": "carol", "exp": now() + 60});
    let rs = encode(
        &Header::new(Algorithm::RS256),
        &claims,
        &EncodingKey::from_rsa_pem(key.serialize_pem().as_bytes()).unwrap(),
    )
    .unwrap();
    let cookie = format!("theme=dark; session={rs}");
    let r = get(port, "h", "/", &[("cookie", &cookie)]);
    assert_eq!(r.status, 200, "{}", t.stderr());
    // HS256 "signed" with the public key's text: refused
    let confused = encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(public.as_bytes()),
    )
    .unwrap();
    assert_eq!(
        get(
            port,
            "h",
            "/",
            &[("cookie", &format!("session={confused}"))]
        )
        .status,
        401
    );
    assert_eq!(
        get(
            port,
            "h",
            "/",
            &[("authorization", &format!("Bearer {rs}"))]
        )
        .status,
        401,
        "only the cookie is read"
    );
}

#[test]
fn es256_keys_from_a_jwks_url_follow_rotation() {
    use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256};
    let k1 = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let k2 = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let jwk = |k: &KeyPair, kid: &str| {
        let raw = k.public_key_raw();
        json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
               "x": b64url(&raw[1..33]), "y": b64url(&raw[33..65])})
    };
    let doc = std::sync::Arc::new(std::sync::Mutex::new(
        json!({"keys": [jwk(&k1, "k1")]}).to_string(),
    ));
    let served = doc.clone();
    let idp = Origin::start(move |_| {
        Action::Respond(
            200,
            vec![("content-type".into(), "application/json".into())],
            served.lock().unwrap().clone().into_bytes(),
        )
    });
    let origin = echo();
    let port = free_port();
    let cfg = one_location(
        port,
        &origin,
        &["token"],
        &format!(
            r#"
[plugins.token]
category = "jwt"
algorithms = ["ES256"]
jwks = "http://{}/.well-known/jwks.json"
jwks_refresh = "1s"
"#,
            idp.addr
        ),
    );
    let t = Tidegate::start(&cfg, &[port]);
    let sign = |k: &KeyPair, kid: &str| {
        let mut h = Header::new(Algorithm::ES256);
        h.kid = Some(kid.into());
        let key = EncodingKey::from_ec_pem(k.serialize_pem().as_bytes()).unwrap();
        format!(
            "Bearer {}",
            encode(&h, &json!({"sub": kid, "exp": now() + 60}), &key).unwrap()
        )
    };
    let t1 = sign(&k1, "k1");
    assert_eq!(
        get(port, "h", "/", &[("authorization", &t1)]).status,
        200,
        "{}",
        t.stderr()
    );
    assert_eq!(get(port, "h", "/", &[("authorization", &t1)]).status, 200);
    assert_eq!(idp.count(), 1, "the keys are cached");
    assert_eq!(idp.requests()[0].path, "/.well-known/jwks.json");
    // a token of a key signed under the wrong kid is refused
    assert_eq!(
        get(port, "h", "/", &[("authorization", &sign(&k2, "k1"))]).status,
        401
    );
    // the provider rotates to k2: a k2 token gets in once the keys are fetched again
    *doc.lock().unwrap() = json!({"keys": [jwk(&k2, "k2")]}).to_string();
    let t2 = sign(&k2, "k2");
    assert!(
        wait_until(WAIT, || get(port, "h", "/", &[("authorization", &t2)])
            .status
            == 200),
        "{}",
        t.stderr()
    );
    // and k1 is gone after the next refresh
    assert!(wait_until(WAIT, || get(
        port,
        "h",
        "/",
        &[("authorization", &t1)]
    )
    .status
        == 401));
}

#[test]
fn check_refuses_unsafe_jwt_configs() {
    let cases = [
        ("algorithms = [\"HS256\", \"RS256\"]\nsecret = \"0123456789abcdef0\"", "algorithms", "one family"),
        ("algorithms = [\"HS256\"]\npublic_key = \"x.pem\"", "public_key", "algorithm-confusion"),
        ("algorithms = [\"none\"]\nsecret = \"0123456789abcdef0\"", "algorithms", "not an algorithm"),
        ("algorithms = [\"HS256\"]\nsecret = \"short\"", "secret", "16 bytes"),
        ("algorithms = [\"RS256\"]\npublic_key = \"/nonexistent.pem\"", "public_key", "/nonexistent.pem"),
        ("algorithms = [\"RS256\"]\npublic_key = \"-----BEGIN PUBLIC KEY-----\\nAAAA\\n-----END PUBLIC KEY-----\"", "public_key", "PEM"),
        ("algorithms = [\"ES256\"]\njwks = \"ftp://x\"", "jwks", "http(s)"),
        ("algorithms = [\"HS256\"]\nsecret = \"0123456789abcdef0\"\ncookie = \"a\"\nquery = \"b\"", "header", "one of"),
    ];
    for (body, key, says) in cases {
        assert_check_refuses("jwt", body, key, says);
    }
}

#[test]
fn every_asymmetric_family_verifies_with_its_pem_key() {
    use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_ED25519};
    let origin = echo();
    let rsa = common::tls::rsa_key();
    let keys = [
        ("RS384", Algorithm::RS384, rsa),
        ("PS256", Algorithm::PS256, common::tls::rsa_key()),
        (
            "ES256",
            Algorithm::ES256,
            KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap(),
        ),
        (
            "ES384",
            Algorithm::ES384,
            KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap(),
        ),
        (
            "EdDSA",
            Algorithm::EdDSA,
            KeyPair::generate_for(&PKCS_ED25519).unwrap(),
        ),
    ];
    for (name, alg, key) in keys {
        let port = free_port();
        let cfg = one_location(
            port,
            &origin,
            &["token"],
            &format!(
                "[plugins.token]\ncategory = \"jwt\"\nalgorithms = [\"{name}\"]\npublic_key = '''\n{}'''\n",
                key.public_key_pem()
            ),
        );
        let t = Tidegate::start(&cfg, &[port]);
        let pem = key.serialize_pem();
        let enc = match alg {
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(pem.as_bytes()),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(pem.as_bytes()),
            _ => EncodingKey::from_rsa_pem(pem.as_bytes()),
        }
        .unwrap();
        let token = encode(
            &Header::new(alg),
            &json!({"sub": name, "exp": now() + 60}),
            &enc,
        )
        .unwrap();
        let r = get(
            port,
            "h",
            "/",
            &[("authorization", &format!("Bearer {token}"))],
        );
        assert_eq!(r.status, 200, "{name}: {}", t.stderr());
        assert_eq!(r.text(), format!("user=- tenant=- auth=-"), "{name}");
        // one byte of the signature changed
        let mut bad = token.clone().into_bytes();
        let last = bad.len() - 2;
        bad[last] = if bad[last] == b'A' { b'B' } else { b'A' };
        let bad = String::from_utf8(bad).unwrap();
        assert_eq!(
            get(
                port,
                "h",
                "/",
                &[("authorization", &format!("Bearer {bad}"))]
            )
            .status,
            401,
            "{name}"
        );
    }
}
