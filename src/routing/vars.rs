//! Variables in header values, redirect targets and `upstream = "$var"`.
//!
//! A template is text with `$name` or `${name}` in it. The names:
//!
//! | variable | value |
//! | --- | --- |
//! | `$host` | request host, lower-cased, without port |
//! | `$scheme` | `http` or `https` |
//! | `$remote_addr` | client address (after `trusted_proxies`) |
//! | `$request_uri` | original path and query |
//! | `$uri` | path as the client sent it, or as a plugin set it; before `rewrite` |
//! | `$args` | query string |
//! | `$method` | request method |
//! | `$request_id` | id given by the `request_id` plugin |
//! | `$remote_user` | the user an auth plugin let in (`basic_auth`, `key_auth`'s consumer, `jwt`'s subject) |
//! | `$location` | name of the matched location |
//! | `$ssl_protocol` `$ssl_cipher` `$ssl_server_name` | TLS version, cipher suite, the SNI (empty on plain HTTP) |
//! | `$ssl_session_reused` `$ssl_client_s_dn` | `r` if the TLS session was resumed (else `.`); the client certificate's subject |
//! | `$http_NAME` | request header NAME (`_` stands for `-`) |
//! | `$NAME` | a named capture of the host or path regex |
//!
//! Templates are parsed once at config load; rendering is a single pass with no regex.

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Var {
    Host,
    Scheme,
    RemoteAddr,
    RequestUri,
    Uri,
    Args,
    Method,
    RequestId,
    RemoteUser,
    Location,
    /// a value of the TLS session
    Tls(crate::tls::conn::TlsVar),
    /// request header, stored lower-case with dashes
    Header(String),
    /// named capture from the matched location's regexes
    Capture(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Lit(String),
    Var(Var),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    segs: Vec<Seg>,
}

/// Where rendering reads variable values from.
pub trait VarSource {
    /// Append the value of `var` to `out` (nothing when unset).
    fn write_var(&self, var: &Var, out: &mut String);
}

impl Template {
    pub fn parse(s: &str) -> Result<Template, String> {
        let mut segs = Vec::new();
        let mut lit = String::new();
        let mut chars = s.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c != '$' {
                lit.push(c);
                continue;
            }
            let name: String = if chars.peek().map(|(_, c)| *c) == Some('{') {
                chars.next();
                let mut name = String::new();
                let mut closed = false;
                for (_, c) in chars.by_ref() {
                    if c == '}' {
                        closed = true;
                        break;
                    }
                    name.push(c);
                }
                if !closed {
                    return Err(format!("unclosed `${{` at byte {i} in `{s}`"));
                }
                name
            } else {
                let mut name = String::new();
                while let Some((_, c)) = chars.peek() {
                    if c.is_ascii_alphanumeric() || *c == '_' {
                        name.push(*c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                name
            };
            if name.is_empty() {
                lit.push('$');
                continue;
            }
            if !lit.is_empty() {
                segs.push(Seg::Lit(std::mem::take(&mut lit)));
            }
            segs.push(Seg::Var(Var::from_name(&name)));
        }
        if !lit.is_empty() {
            segs.push(Seg::Lit(lit));
        }
        Ok(Template { segs })
    }

    /// Names of the regex captures this template needs.
    pub fn captures(&self) -> impl Iterator<Item = &str> {
        self.segs.iter().filter_map(|s| match s {
            Seg::Var(Var::Capture(n)) => Some(n.as_str()),
            _ => None,
        })
    }

    /// The text, when the template has no variables.
    pub fn as_literal(&self) -> Option<&str> {
        match self.segs.as_slice() {
            [] => Some(""),
            [Seg::Lit(s)] => Some(s),
            _ => None,
        }
    }

    pub fn render(&self, src: &dyn VarSource) -> String {
        let mut out = String::new();
        for seg in &self.segs {
            match seg {
                Seg::Lit(s) => out.push_str(s),
                Seg::Var(v) => src.write_var(v, &mut out),
            }
        }
        out
    }
}

impl Var {
    fn from_name(name: &str) -> Var {
        if let Some(t) = crate::tls::conn::TlsVar::from_name(name) {
            return Var::Tls(t);
        }
        match name {
            "host" => Var::Host,
            "scheme" => Var::Scheme,
            "remote_addr" => Var::RemoteAddr,
            "request_uri" => Var::RequestUri,
            "uri" => Var::Uri,
            "args" | "query_string" => Var::Args,
            "method" | "request_method" => Var::Method,
            "request_id" => Var::RequestId,
            "remote_user" => Var::RemoteUser,
            "location" => Var::Location,
            _ => match name.strip_prefix("http_") {
                Some(h) => Var::Header(h.replace('_', "-").to_ascii_lowercase()),
                None => Var::Capture(name.to_string()),
            },
        }
    }
}

/// A header line `NAME: TEMPLATE`, as in `proxy_set_headers` and `response_headers`.
#[derive(Debug, Clone)]
pub struct HeaderTemplate {
    pub name: http::HeaderName,
    pub value: Template,
}

impl HeaderTemplate {
    pub fn parse(s: &str) -> Result<HeaderTemplate, String> {
        let Some((name, value)) = s.split_once(':') else {
            return Err(format!("header `{s}` must be `NAME: VALUE`"));
        };
        let name = http::HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| format!("`{}` is not a valid header name", name.trim()))?;
        Ok(HeaderTemplate {
            name,
            value: Template::parse(value.trim())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;
    impl VarSource for Fixed {
        fn write_var(&self, var: &Var, out: &mut String) {
            match var {
                Var::Host => out.push_str("example.com"),
                Var::Header(h) => out.push_str(h),
                Var::Capture(c) => out.push_str(&c.to_uppercase()),
                _ => {}
            }
        }
    }

    #[test]
    fn parses_and_renders() {
        let t = Template::parse("https://$host/${ver}/x$http_x_a $ end").unwrap();
        assert_eq!(t.render(&Fixed), "https://example.com/VER/xx-a $ end");
        assert_eq!(t.captures().collect::<Vec<_>>(), vec!["ver"]);
        assert!(Template::parse("${oops").is_err());
        assert_eq!(
            Template::parse("plain").unwrap().as_literal(),
            Some("plain")
        );
    }
}
