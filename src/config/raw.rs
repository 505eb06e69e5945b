//! The serde mirror of the TOML, table by table. Every struct refuses unknown keys.
//!
//! These structs hold what the user wrote, nearly untyped (strings for durations, sizes,
//! addresses). `validate.rs` turns them into the typed model in `model.rs`; nothing on the
//! request path ever looks at these.

use serde::Deserialize;

/// A value that may be written as one string or as a list of strings.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(untagged)]
pub enum OneOrMany {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::None => Vec::new(),
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// `[basic]`: process-wide settings.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawBasic {
    pub threads: Option<usize>,
    pub log_level: Option<String>,
    pub grace_period: Option<String>,
    pub graceful_shutdown_timeout: Option<String>,
    pub pid_file: Option<String>,
    pub upgrade_sock: Option<String>,
    pub error_log: Option<String>,
    pub work_stealing: Option<bool>,
    pub upstream_keepalive_pool_size: Option<usize>,
    pub watch: Option<bool>,
    pub error_template: Option<String>,
    pub metrics_buckets: Option<Vec<f64>>,
    pub trace_token: Option<String>,
    pub otlp: Option<RawOtlp>,
    pub resolver: Option<String>,
    pub docker_host: Option<String>,
}

/// `[basic] otlp = { ... }`: where traces go.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawOtlp {
    pub endpoint: String,
    pub protocol: Option<String>,
    pub sample: Option<f64>,
    pub service_name: Option<String>,
}

/// `[lua]`: settings of the Lua engine.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawLua {
    pub time_budget: Option<String>,
    pub memory_limit: Option<Size>,
    pub dir: Option<String>,
    pub shared: Option<std::collections::BTreeMap<String, toml::Value>>,
    pub http_deny: Option<Vec<String>>,
    pub http_allow: Option<Vec<String>>,
}

/// `[servers.NAME]`: a set of listeners and the locations they route to.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    #[serde(default)]
    pub addr: OneOrMany,
    #[serde(default)]
    pub locations: Vec<String>,
    #[serde(default)]
    pub http2: bool,
    pub engine: Option<String>,
    #[serde(default)]
    pub tls: bool,
    pub access_log: Option<String>,
    pub access_log_path: Option<String>,
    pub metrics: Option<String>,
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    pub forwarded_headers: Option<bool>,
    pub max_header_size: Option<Size>,
    pub max_uri_size: Option<Size>,
    pub header_timeout: Option<String>,
    pub body_timeout: Option<String>,
    pub keepalive_timeout: Option<String>,
    pub tls_min_version: Option<String>,
    pub tls_ciphers: Option<Vec<String>>,
    pub client_ca: Option<String>,
    pub https_redirect: Option<bool>,
    pub https_port: Option<u16>,
    pub https_redirect_status: Option<u16>,
}

/// `[locations.NAME]`: what requests to match and where to send them.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawLocation {
    #[serde(default)]
    pub host: OneOrMany,
    pub path: Option<String>,
    #[serde(default)]
    pub match_headers: Vec<String>,
    #[serde(default)]
    pub match_query: Vec<String>,
    pub rewrite: Option<String>,
    pub upstream: Option<String>,
    #[serde(default)]
    pub proxy_set_headers: Vec<String>,
    #[serde(default)]
    pub proxy_add_headers: Vec<String>,
    #[serde(default)]
    pub plugins: Vec<String>,
    pub client_max_body_size: Option<Size>,
    pub timeout: Option<String>,
    pub priority: Option<i64>,
    pub https_redirect: Option<bool>,
    pub grpc_web: Option<bool>,
}

/// `[admin]`: the admin API's listener and its token.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub addr: Option<String>,
    pub token: Option<String>,
    pub user: Option<String>,
    pub password_hash: Option<String>,
    pub tls: Option<bool>,
}

/// `[certificates.NAME]`: a certificate chain and its key, served by SNI.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawCertificate {
    #[serde(default)]
    pub domains: Vec<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
    #[serde(default)]
    pub default: bool,
    pub acme: Option<RawAcme>,
}

/// `acme = { ... }` in a certificate: tidegate orders and renews it.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawAcme {
    pub directory: String,
    pub email: Option<String>,
    /// the CA that signs the directory's HTTPS certificate, when not a public one (a test CA)
    pub ca_file: Option<String>,
}

/// `[storage]`: where state tidegate makes (ACME accounts and certificates) is kept.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawStorage {
    pub kind: Option<String>,
    pub dir: Option<String>,
    pub endpoints: Option<Vec<String>>,
    pub prefix: Option<String>,
}

/// `[upstreams.NAME]`: a pool of peers and how to reach them.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    #[serde(default)]
    pub addrs: Vec<String>,
    pub algo: Option<String>,
    pub discovery: Option<String>,
    pub dns_min_ttl: Option<String>,
    pub dns_max_ttl: Option<String>,
    pub docker_network: Option<String>,
    pub health_check: Option<String>,
    pub alpn: Option<String>,
    #[serde(default)]
    pub tls: bool,
    pub sni: Option<String>,
    pub verify_cert: Option<bool>,
    pub ca_file: Option<String>,
    pub connect_timeout: Option<String>,
    pub read_timeout: Option<String>,
    pub write_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub retries: Option<u32>,
    pub max_fails: Option<u32>,
    pub fail_timeout: Option<String>,
}

/// A size as the config gives it: a number of bytes (`1024`) or a string with a unit
/// (`"64KB"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Size {
    Bytes(u64),
    Text(String),
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Size, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a size: a number of bytes or a string such as \"64KB\"")
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Size, E> {
                Ok(Size::Bytes(n))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Size, E> {
                u64::try_from(n)
                    .map(Size::Bytes)
                    .map_err(|_| E::custom(format!("a size cannot be negative ({n})")))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Size, E> {
                Ok(Size::Text(s.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}
