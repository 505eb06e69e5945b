//! Fuzz target `h1_chunked`: see `tidegate::fuzzing::h1::h1_chunked`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| tidegate::fuzzing::h1::h1_chunked(data));
