//! `openresty`: a snippet written for OpenResty's `*_by_lua*` directives, run unchanged on
//! tidegate's hooks with an `ngx` table (`ngx.lua`).
//!
//! ```toml
//! [plugins.legacy-auth]
//! category = "openresty"
//! phase = "access"        # rewrite | access | header_filter | body_filter | log
//! source = '''
//! local key = ngx.req.get_headers()["x-api-key"]
//! if key ~= "s3cret" then
//!   ngx.status = 401
//!   ngx.say("unauthorized")
//!   return ngx.exit(401)
//! end
//! '''
//! # path = "lua/legacy/auth.lua"      # or the snippet from a file
//! config = { capture_base = "http://127.0.0.1:8080" }   # for ngx.location.capture
//! ```
//!
//! | phase | tidegate hook |
//! | --- | --- |
//! | `rewrite`, `access` | `on_request` (ngx.say/ngx.exit answer; ngx.header applies to the response) |
//! | `header_filter` | `on_response` |
//! | `body_filter` | `on_body` (`ngx.arg[1]`, `ngx.arg[2]`) |
//! | `log` | `on_log` (`ngx.var.NAME = v` becomes the log field `{:NAME}`) |
//!
//! The `ngx` table is Lua (`ngx.lua`, with `ngx_text.lua`, `ngx_re.lua` and `ngx_shared.lua`
//! put in where it says `-- @parts`). The snippet becomes a Lua plugin: the same VMs, sandbox, budget and memory limit. What it
//! uses that tidegate cannot run is refused when the config loads, with its line
//! (`scan.rs`); `require "cjson"` and `"cjson.safe"` are tidegate's JSON.

pub mod scan;

use super::PluginConfError;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenRestyConf {
    pub phase: String,
    pub source: Option<String>,
    pub path: Option<String>,
    pub config: Option<toml::Value>,
}

const PHASES: &[&str] = &["rewrite", "access", "header_filter", "body_filter", "log"];

/// The Lua module that runs `snippet` in `phase`: the snippet's lines keep their numbers (it
/// starts on line 1, after a one-line head), then the `ngx` library and the hooks.
pub fn module_source(snippet: &str, phase: &str) -> String {
    let part = |body: &str| format!(";(function(...)\n{body}\nend)(ngx)\n");
    let parts = [
        include_str!("ngx_text.lua"),
        include_str!("ngx_re.lua"),
        include_str!("ngx_shared.lua"),
    ]
    .map(part)
    .concat();
    let library = include_str!("ngx.lua").replacen("-- @parts\n", &parts, 1);
    format!(
        "local __snippet = function(ngx, require) {snippet}\nend\n\
         local __hooks = (function()\n{library}\nend)()\n\
         return __hooks(__snippet, \"{phase}\")\n"
    )
}

/// Build the plugin: check the phase and the snippet, then make it a Lua plugin.
pub fn build(
    c: OpenRestyConf,
    name: &str,
    settings: &crate::scripting::LuaSettings,
) -> Result<crate::scripting::LuaPlugin, PluginConfError> {
    if !PHASES.contains(&c.phase.as_str()) {
        return Err(PluginConfError::at(
            "phase",
            format!(
                "phase `{}`: use {} (content_by_lua is a location answering: use access with ngx.say)",
                c.phase,
                PHASES.join(", ")
            ),
        ));
    }
    let (key, chunk_name, snippet) = match (&c.path, &c.source) {
        (Some(p), None) => {
            let text = crate::scripting::vm::read_source(std::path::Path::new(p))
                .map_err(|m| PluginConfError::at("path", m))?;
            ("path", p.clone(), text)
        }
        (None, Some(s)) => ("source", format!("plugins.{name}"), s.clone()),
        _ => {
            return Err(PluginConfError::at(
                "source",
                "give exactly one of `source` or `path`",
            ))
        }
    };
    let problems = scan::problems(&snippet);
    if !problems.is_empty() {
        return Err(PluginConfError::at(key, problems.join("; ")));
    }
    crate::scripting::LuaPlugin::from_source(
        chunk_name,
        module_source(&snippet, &c.phase),
        c.path.map(std::path::PathBuf::from),
        c.config,
        name,
        settings,
        key,
    )
}
