//! Reload applies are serialized: many triggers at once (as a SIGHUP, a file event and an
//! etcd event can be) build one at a time, every applied build gets its own, increasing
//! version, and the last documents applied are the ones serving.

use std::sync::Arc;
use tidegate::config::SourceDoc;

fn doc(marker: usize) -> Vec<SourceDoc> {
    vec![SourceDoc {
        name: "t.toml".into(),
        text: format!(
            "[servers.s]\naddr = \"127.0.0.1:1\"\nlocations = [\"l\"]\n[locations.l]\n\
             upstream = \"u\"\n[upstreams.u]\naddrs = [\"127.0.0.1:{}\"]\n",
            1000 + marker
        ),
    }]
}

#[test]
fn concurrent_applies_get_distinct_increasing_versions() {
    let config = tidegate::config::build(&doc(0)).unwrap();
    let live: tidegate::state::Live = Arc::new(arc_swap::ArcSwap::from_pointee(
        tidegate::state::State::build(config).unwrap(),
    ));
    let reloader = Arc::new(tidegate::reload::Reloader::new(
        live.clone(),
        tidegate::config::source::Source::Embedded,
        1,
        Vec::new(),
    ));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let r = reloader.clone();
            let live = live.clone();
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                for i in 0..25 {
                    assert!(r.apply("test", Some(doc(1 + t * 100 + i))).unwrap());
                    seen.push(live.load().version);
                }
                seen
            })
        })
        .collect();
    for t in threads {
        let seen = t.join().unwrap();
        // what one thread sees after each of its applies only grows
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    }
    // 200 applies, each its own version (two built at once would both be "previous + 1")
    assert_eq!(live.load().version, 201, "applies overlapped");
}
