//! `[plugins.NAME]`: the category and the plugin's own keys, built by `plugins::build`.

use super::super::builder::{Builder, Entry};
use super::super::model::*;

pub(in crate::config) fn build_plugin(
    b: &mut Builder<'_>,
    e: &Entry,
    t: &str,
    name: &str,
    lua: &crate::scripting::LuaSettings,
    built: Vec<(String, std::sync::Arc<dyn crate::plugins::Plugin>)>,
    upstreams: &[String],
) -> Option<PluginDef> {
    let toml::Value::Table(mut table) = e.value.clone() else {
        b.err(e.doc, t, None, "a plugin must be a table");
        return None;
    };
    let category = match table.remove("category") {
        Some(toml::Value::String(c)) => c,
        Some(_) => {
            b.err(e.doc, t, Some("category"), "category must be a string");
            return None;
        }
        None => {
            b.err(
                e.doc,
                t,
                Some("category"),
                format!(
                    "missing `category`; one of {}",
                    crate::plugins::CATEGORIES.join(", ")
                ),
            );
            return None;
        }
    };
    let env = crate::plugins::BuildEnv {
        name: name.to_string(),
        lua: lua.clone(),
        built,
        upstreams: upstreams.to_vec(),
    };
    match crate::plugins::build(&category, toml::Value::Table(table), &env) {
        Ok(plugin) => Some(PluginDef {
            name: name.to_string(),
            category,
            plugin,
        }),
        Err(pe) => {
            b.err(e.doc, t, pe.key.as_deref(), pe.message);
            None
        }
    }
}
