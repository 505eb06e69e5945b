//! Fuzz target `lua_value`: see `tidegate::fuzzing::lua_value`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| tidegate::fuzzing::lua_value(data));
