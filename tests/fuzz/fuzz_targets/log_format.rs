//! Fuzz target `log_format`: see `tidegate::fuzzing::log_format`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| tidegate::fuzzing::log_format(data));
