//! The local `limit` store: one take for a key that exists, with 1 and 100,000 keys tracked,
//! and from two threads at once (contention on the shards).
//!
//! Run: `cargo bench --bench limit`

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use tidegate::plugins::limit::gcra::Gcra;
use tidegate::plugins::limit::local::{now_ns, LocalRate};

fn takes(c: &mut Criterion) {
    let mut g = c.benchmark_group("limit_take");
    let one = LocalRate::new(Gcra::new(1_000_000_000, 1_000_000_000, 1_000_000_000));
    g.bench_function("one key", |b| {
        b.iter(|| one.take(black_box("127.0.0.1"), now_ns()))
    });
    let many = LocalRate::new(Gcra::new(1_000_000_000, 1_000_000_000, 1_000_000_000));
    let keys: Vec<String> = (0..100_000)
        .map(|i| format!("10.0.{}.{}", i / 256, i % 256))
        .collect();
    for k in &keys {
        many.take(k, now_ns());
    }
    let mut i = 0;
    g.bench_function("100k keys", |b| {
        b.iter(|| {
            i = (i + 7919) % keys.len();
            many.take(black_box(&keys[i]), now_ns())
        })
    });
    let shared = std::sync::Arc::new(LocalRate::new(Gcra::new(
        1_000_000_000,
        1_000_000_000,
        1_000_000_000,
    )));
    g.bench_function("two threads, one key", |b| {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (s2, st2) = (shared.clone(), stop.clone());
        let other = std::thread::spawn(move || {
            let mut n = 0u64;
            while !st2.load(std::sync::atomic::Ordering::Relaxed) && n < 200_000_000 {
                s2.take("127.0.0.1", now_ns());
                n += 1;
            }
        });
        b.iter(|| shared.take(black_box("127.0.0.1"), now_ns()));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = other.join();
    });
    g.finish();
}

criterion_group!(benches, takes);
criterion_main!(benches);
