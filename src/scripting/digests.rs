//! The digests OpenResty scripts expect, for `ngx.md5` and friends (and plain scripts):
//!
//! ```lua
//! tidegate.md5("abc")              -- lower-case hex
//! tidegate.md5_bin("abc")          -- 16 raw bytes
//! tidegate.sha1_bin("abc")         -- 20 raw bytes
//! tidegate.hmac_sha1("key", "msg") -- 20 raw bytes
//! tidegate.crc32("abc")            -- a number
//! ```
//!
//! MD5 and SHA-1 are here for compatibility with what existing scripts compute (cache keys,
//! legacy signatures), not for new security decisions.

use md5::Digest;
use mlua::Lua;

pub fn register(lua: &Lua, t: &mlua::Table) -> mlua::Result<()> {
    t.set(
        "md5",
        lua.create_function(|_, s: mlua::String| {
            Ok(hex::encode(md5::Md5::digest(&*s.as_bytes())))
        })?,
    )?;
    t.set(
        "md5_bin",
        lua.create_function(|lua, s: mlua::String| {
            lua.create_string(md5::Md5::digest(&*s.as_bytes()))
        })?,
    )?;
    t.set(
        "sha1_bin",
        lua.create_function(|lua, s: mlua::String| {
            let d = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &s.as_bytes());
            lua.create_string(d.as_ref())
        })?,
    )?;
    t.set(
        "hmac_sha1",
        lua.create_function(|lua, (key, msg): (mlua::String, mlua::String)| {
            let k =
                ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &key.as_bytes());
            lua.create_string(ring::hmac::sign(&k, &msg.as_bytes()).as_ref())
        })?,
    )?;
    t.set(
        "crc32",
        lua.create_function(|_, s: mlua::String| Ok(crc32fast::hash(&s.as_bytes())))?,
    )?;
    Ok(())
}
