//! Replays every fuzz target's corpus (tests/fuzz/corpus/TARGET/*) through the same entry
//! points the fuzzers call (`tidegate::fuzzing`), on stable Rust and without sanitizers, so
//! a regression on any input a fuzzer once found is caught by `scripts/test.sh`. The
//! fuzzing itself is `cargo +nightly fuzz run --fuzz-dir tests/fuzz TARGET` (docs/testing.md).

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no corpus for {target} in {}",
        dir.display()
    );
    let mut gone = 0;
    for f in &files {
        // a fuzzer running meanwhile (cargo fuzz run) may merge a file away: that input is
        // not lost, it is covered by the one it was merged into
        let data = match std::fs::read(f) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                gone += 1;
                continue;
            }
            Err(e) => panic!("{}: {e}", f.display()),
        };
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "{target}: {} failed", f.display());
    }
    assert!(gone < files.len(), "{target}: every corpus file vanished");
    eprintln!(
        "{target}: {} inputs replayed ({gone} removed by a running fuzzer)",
        files.len() - gone
    );
}

#[test]
fn config() {
    replay("config", tidegate::fuzzing::config);
}

#[test]
fn route() {
    replay("route", tidegate::fuzzing::route);
}

#[test]
fn guard() {
    replay("guard", tidegate::fuzzing::guard);
}

#[test]
fn log_format() {
    replay("log_format", tidegate::fuzzing::log_format);
}

#[test]
fn rewrite() {
    replay("rewrite", tidegate::fuzzing::rewrite);
}

#[test]
fn lua_value() {
    replay("lua_value", tidegate::fuzzing::lua_value);
}

#[test]
fn h1_head() {
    replay("h1_head", tidegate::fuzzing::h1::h1_head);
}

#[test]
fn h1_chunked() {
    replay("h1_chunked", tidegate::fuzzing::h1::h1_chunked);
}
