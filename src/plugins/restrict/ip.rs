//! `ip_restriction`: allow or deny lists of CIDRs, on the client IP after `trusted_proxies`.
//!
//! ```toml
//! [plugins.office]
//! category = "ip_restriction"
//! allow = ["10.0.0.0/8", "192.168.1.7"]   # only these (bare addresses are /32 or /128)
//! deny = ["10.9.0.0/16"]                  # never these; deny wins over allow
//! status = 403                            # default
//! body = "Forbidden\n"                    # default
//! ```

use super::Refusal;
use crate::plugins::{Flow, Plugin, PluginConfError, PluginError};
use crate::proxy::ctx::Ctx;
use crate::proxy::exchange::Downstream;
use async_trait::async_trait;
use ipnet::IpNet;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpConf {
    pub allow: Option<Vec<String>>,
    pub deny: Option<Vec<String>>,
    pub status: Option<u16>,
    pub body: Option<String>,
}

#[derive(Debug)]
pub struct IpRestriction {
    allow: Option<Vec<IpNet>>,
    deny: Option<Vec<IpNet>>,
    refusal: Refusal,
}

fn nets(key: &str, list: &Option<Vec<String>>) -> Result<Option<Vec<IpNet>>, PluginConfError> {
    let Some(list) = list else { return Ok(None) };
    list.iter()
        .enumerate()
        .map(|(i, s)| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    PluginConfError::at(
                        key,
                        format!("{key}[{i}] `{s}` is not an IP address or CIDR"),
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

impl IpRestriction {
    pub fn new(c: IpConf) -> Result<IpRestriction, PluginConfError> {
        let allow = nets("allow", &c.allow)?;
        let deny = nets("deny", &c.deny)?;
        if allow.is_none() && deny.is_none() {
            return Err(PluginConfError::at("allow", "set `allow`, `deny` or both"));
        }
        Ok(IpRestriction {
            allow,
            deny,
            refusal: Refusal::new(c.status, c.body)?,
        })
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map(std::net::IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

#[async_trait]
impl Plugin for IpRestriction {
    async fn on_request(
        &self,
        _session: &mut dyn Downstream,
        ctx: &mut Ctx,
    ) -> Result<Flow, PluginError> {
        let ip = ctx.client_ip.map(canonical);
        let in_list = |l: &Vec<IpNet>| ip.is_some_and(|ip| l.iter().any(|n| n.contains(&ip)));
        let ok = super::admits(
            self.allow.as_ref().map(in_list),
            self.deny.as_ref().map(in_list),
        );
        Ok(self.refusal.flow(ok))
    }
}
