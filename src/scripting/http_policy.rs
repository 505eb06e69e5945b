//! Where `tidegate.http.request` may connect: `[lua] http_deny` and `http_allow`.
//!
//! ```toml
//! [lua]
//! http_deny = ["169.254.0.0/16", "fe80::/10"]   # the default: link-local (cloud metadata)
//! http_allow = ["10.0.0.0/8", "127.0.0.1/32"]  # optional: only these
//! ```
//!
//! The address checked is the one the call connects to, after the host name is resolved, so
//! a name that resolves to a denied address is denied too. A denied call returns
//! `nil, "... is denied by [lua] http_deny"` without connecting. Setting `http_deny` replaces
//! the default list (`http_deny = []` allows link-local again).

use ipnet::IpNet;
use std::net::IpAddr;

/// The outbound policy of one config version.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpPolicy {
    pub deny: Vec<IpNet>,
    /// `None`: every address not denied
    pub allow: Option<Vec<IpNet>>,
}

impl Default for HttpPolicy {
    fn default() -> Self {
        HttpPolicy {
            deny: default_deny(),
            allow: None,
        }
    }
}

/// Link-local, where cloud providers serve instance metadata (credentials included).
pub fn default_deny() -> Vec<IpNet> {
    ["169.254.0.0/16", "fe80::/10"]
        .iter()
        .filter_map(|n| n.parse().ok())
        .collect()
}

impl HttpPolicy {
    /// `Err` with the sentence the script gets when `ip` may not be reached.
    pub fn check(&self, ip: IpAddr) -> Result<(), String> {
        // an IPv4-mapped IPv6 address is checked as the IPv4 address it is
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        if self.deny.iter().any(|n| n.contains(&ip)) {
            return Err(format!("{ip} is denied by [lua] http_deny"));
        }
        if let Some(allow) = &self.allow {
            if !allow.iter().any(|n| n.contains(&ip)) {
                return Err(format!("{ip} is not in [lua] http_allow"));
            }
        }
        Ok(())
    }
}

/// A list of CIDRs (or bare addresses) from the config; the first bad entry is the error.
pub fn parse_nets(list: &[String]) -> Result<Vec<IpNet>, String> {
    list.iter()
        .map(|p| {
            p.parse::<IpNet>()
                .or_else(|_| p.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("`{p}` is not an address or CIDR"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_denies_link_local_only() {
        let p = HttpPolicy::default();
        for denied in ["169.254.169.254", "fe80::1", "::ffff:169.254.169.254"] {
            assert!(p.check(denied.parse().unwrap()).is_err(), "{denied}");
        }
        for allowed in ["127.0.0.1", "10.1.2.3", "::1"] {
            assert!(p.check(allowed.parse().unwrap()).is_ok(), "{allowed}");
        }
    }

    #[test]
    fn allow_narrows_and_deny_wins() {
        let p = HttpPolicy {
            deny: parse_nets(&["10.0.0.5".into()]).unwrap(),
            allow: Some(parse_nets(&["10.0.0.0/8".into()]).unwrap()),
        };
        assert!(p.check("10.0.0.4".parse().unwrap()).is_ok());
        assert!(p.check("10.0.0.5".parse().unwrap()).is_err());
        assert!(p.check("192.168.0.1".parse().unwrap()).is_err());
        assert!(parse_nets(&["nope".into()]).is_err());
    }
}
