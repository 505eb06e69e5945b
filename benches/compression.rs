//! The `compression` plugin's encoders: MB/s of one core per coding and level, on 1 MiB of
//! HTML in 16 KiB chunks (as the body phase feeds them).
//!
//! Run: `cargo bench --bench compression`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pingora::protocols::http::compression::{Algorithm, Encode};
use tidegate::plugins::compression::brotli::Brotli;

fn body() -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0u64;
    while out.len() < 1 << 20 {
        out.extend_from_slice(
            format!(
                "<tr><td>{i}</td><td>item {}</td><td class=\"n\">{}</td></tr>\n",
                i * 7 % 1000,
                i * 31 % 977
            )
            .as_bytes(),
        );
        i += 1;
    }
    out.truncate(1 << 20);
    out
}

fn encoder(name: &str, level: u32) -> Box<dyn Encode + Send + Sync> {
    match name {
        "br" => Box::new(Brotli::new(level)),
        "gzip" => Algorithm::Gzip.compressor(level).expect("gzip"),
        _ => Algorithm::Zstd.compressor(level).expect("zstd"),
    }
}

fn encoders(c: &mut Criterion) {
    let data = body();
    let mut g = c.benchmark_group("compress_1MiB");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(10);
    for (name, levels) in [
        ("gzip", &[1u32, 6, 9][..]),
        ("br", &[1, 4, 5, 9][..]),
        ("zstd", &[1, 3, 9][..]),
    ] {
        for &level in levels {
            let mut ratio = 0.0;
            g.bench_with_input(BenchmarkId::new(name, level), &level, |b, &level| {
                b.iter(|| {
                    let mut e = encoder(name, level);
                    let mut out = 0usize;
                    let chunks = data.chunks(16 << 10).collect::<Vec<_>>();
                    for (i, chunk) in chunks.iter().enumerate() {
                        out += e
                            .encode(chunk, i + 1 == chunks.len())
                            .map(|b| b.len())
                            .unwrap_or(0);
                    }
                    ratio = data.len() as f64 / out.max(1) as f64;
                    out
                })
            });
            println!("{name} level {level}: ratio {ratio:.1}");
        }
    }
    g.finish();
}

criterion_group!(benches, encoders);
criterion_main!(benches);
