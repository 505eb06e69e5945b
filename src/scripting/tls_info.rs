//! `req.tls`: the TLS session of the request's connection, as a Lua table (`nil` on plain
//! HTTP).
//!
//! ```lua
//! local t = req.tls
//! if t and t.client_subject then tidegate.log.info("client " .. t.client_subject) end
//! -- t.version ("TLSv1_3"), t.cipher, t.sni, t.resumed (boolean), t.alpn ("h2", "http/1.1")
//! ```

use crate::tls::TlsInfo;

/// A new table with the session's fields (unset ones are absent).
pub fn table(lua: &mlua::Lua, t: &TlsInfo) -> mlua::Result<mlua::Table> {
    let out = lua.create_table_with_capacity(0, 6)?;
    out.set("version", t.version)?;
    out.set("cipher", t.cipher)?;
    out.set("sni", t.sni.as_deref())?;
    out.set("resumed", t.resumed)?;
    out.set("client_subject", t.client_subject.as_deref())?;
    out.set("alpn", t.alpn)?;
    Ok(out)
}
