//! Small allocations from Rust into a VM without mlua's protected call.
//!
//! With a memory limit set, mlua makes every string and table it creates for us inside a
//! protected call (a C closure pushed, then `lua_pcall`), because the allocation may fail
//! at the limit and Luau raises an error. That costs about 1,500 instructions per value, more
//! than the rest of a small hook. When the VM is far enough below its limit that an
//! allocation of `need` bytes cannot reach it, the limit is lifted for that one allocation
//! (mlua then pushes directly, as it does for a VM without a limit) and set again right
//! after. Near the limit the protected path is taken, so the limit still holds; at most one
//! growth of Luau's string table can pass it, and the next allocation fails.

use mlua::Lua;

/// Room kept free besides `need` (Luau may grow an internal table while it allocates).
const SLACK: usize = 64 << 10;

/// Run `make` (which allocates at most about `need` bytes in `lua`) without the memory
/// limit when the VM is far from it; with the limit otherwise.
pub fn within<R>(
    lua: &Lua,
    need: usize,
    make: impl FnOnce() -> mlua::Result<R>,
) -> mlua::Result<R> {
    let limit = lua.set_memory_limit(0)?;
    if limit == 0 {
        return make();
    }
    if lua.used_memory().saturating_add(need).saturating_add(SLACK) > limit {
        lua.set_memory_limit(limit)?;
        return make();
    }
    let r = make();
    lua.set_memory_limit(limit)?;
    r
}

#[cfg(test)]
mod tests {
    use super::within;

    #[test]
    fn the_limit_holds_near_it_and_is_restored() {
        let lua = mlua::Lua::new();
        lua.set_memory_limit(lua.used_memory() + (256 << 10))
            .unwrap();
        let limit = lua.set_memory_limit(0).unwrap();
        lua.set_memory_limit(limit).unwrap();
        // far from the limit: made, and the limit is back afterwards
        let s = within(&lua, 16, || lua.create_string("ok")).unwrap();
        assert_eq!(s.to_str().unwrap(), "ok");
        assert_eq!(lua.set_memory_limit(limit).unwrap(), limit);
        // an allocation that would pass the limit takes the protected path and fails
        let big = vec![b'x'; 512 << 10];
        let err = within(&lua, big.len(), || lua.create_string(&big));
        assert!(matches!(err, Err(mlua::Error::MemoryError(_))), "{err:?}");
        assert_eq!(lua.set_memory_limit(limit).unwrap(), limit);
    }
}
