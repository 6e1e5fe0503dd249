//! Never a silent lost sample: when a run outpaces a watcher past the
//! memory it keeps for lagging watchers, the samples thinned before they
//! were sent are reported, and what a client receives plus what it is told
//! was thinned accounts for every published sample exactly once. A real
//! server on 127.0.0.1 and the real client.

mod common;

use common::serve;
use futures::StreamExt;
use idict::client::WatchOptions;
use idict::{IDict, SAMPLE_BYTES, Thinned};
use std::collections::BTreeMap;

const KEYS: [&str; 3] = ["a", "b", "c"];

/// A run whose histories keep 64 samples a key, and 256 more all together
/// for watchers that lag: a burst thins what a watcher has not read.
fn tight_run(name: &str) -> IDict {
    IDict::builder(name)
        .history_budget_bytes(64 * SAMPLE_BYTES)
        .pinned_history_bytes(256 * SAMPLE_BYTES)
        .build()
}

fn publish(idict: &IDict, from: u64, to: u64) {
    for i in from..to {
        {
            let mut d = idict.lock();
            for (j, k) in KEYS.iter().enumerate() {
                d.insert(*k, (i * 3 + j as u64) as f64);
            }
        }
        idict.notify_update().unwrap();
    }
}

/// Per key, the versions received, and the reports.
#[derive(Default)]
struct Seen {
    versions: BTreeMap<String, Vec<u64>>,
    thinned: Vec<Thinned>,
}

impl Seen {
    /// Takes in what one update brought.
    fn take(&mut self, u: &idict::client::Update) {
        for (k, s) in &u.samples {
            self.versions
                .entry(k.clone())
                .or_default()
                .extend(&s.versions);
        }
        self.thinned.extend(u.thinned.iter().cloned());
    }

    /// Every version after `from` up to `last` of each key is either
    /// received or inside a range reported thinned, and the counts match
    /// exactly.
    fn accounts_for(&self, from: u64, last: u64) {
        for k in KEYS {
            let mut got = self.versions.get(k).cloned().unwrap_or_default();
            got.retain(|&v| v > from);
            assert!(
                got.windows(2).all(|w| w[0] < w[1]),
                "{k}: out of order or repeated"
            );
            let reports: Vec<&Thinned> = self.thinned.iter().filter(|t| t.key == k).collect();
            let dropped: u64 = reports.iter().map(|t| t.dropped).sum();
            // Each missing version lies inside a report's range.
            let mut have = got.iter().peekable();
            for v in from + 1..=last {
                if have.peek() == Some(&&v) {
                    have.next();
                    continue;
                }
                assert!(
                    reports
                        .iter()
                        .any(|t| t.after_version < v && v < t.until_version),
                    "{k}: v{v} is missing and no report covers it"
                );
            }
            assert_eq!(
                got.len() as u64 + dropped,
                last - from,
                "{k}: {} received + {dropped} reported thinned, {} published",
                got.len(),
                last - from
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_outpaced_by_a_burst_is_told_exactly_what_was_thinned() {
    let idict = tight_run("burst");
    publish(&idict, 0, 1);
    let run = serve(&idict);
    let client = run.controller().await;
    let mut w = client.watch(WatchOptions::default()).await.unwrap();
    let first = w.next().await.unwrap().unwrap();
    assert!(first.reset);
    // The burst: far more than the watcher's windows and the run's pool,
    // published while nobody reads.
    let n = 200_000;
    let publisher = {
        let idict = idict.clone();
        std::thread::spawn(move || {
            publish(&idict, 1, n);
            idict.notify_update_final().unwrap();
        })
    };
    let mut seen = Seen::default();
    // The first state's samples are those up to its version.
    seen.take(&first);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    while let Some(u) = w.next().await {
        let u = u.unwrap();
        seen.take(&u);
        if u.last {
            break;
        }
    }
    publisher.join().unwrap();
    assert!(
        !seen.thinned.is_empty(),
        "the burst thinned nothing: the test does not test"
    );
    // Owed: the samples after the first state (whose values it has).
    seen.accounts_for(first.version, n);
    // A report reads as a person would want it.
    let t = &seen.thinned[0];
    assert!(
        t.describe().contains("samples not sent"),
        "{}",
        t.describe()
    );

    // GetHistory says the same of what it returns.
    let h = client.history_thinned(&[], 0).await.unwrap();
    let mut from_history = Seen::default();
    for (k, s) in h.series {
        from_history.versions.insert(k, s.versions);
    }
    from_history.thinned = h.thinned;
    from_history.accounts_for(0, n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_watcher_with_history_is_told_where_the_history_was_thinned() {
    let idict = tight_run("late");
    let n = 5_000;
    publish(&idict, 0, n);
    let run = serve(&idict);
    let client = run.controller().await;
    let opts = WatchOptions {
        with_history: true,
        ..WatchOptions::default()
    };
    let mut w = client.watch(opts).await.unwrap();
    let first = w.next().await.unwrap().unwrap();
    let mut seen = Seen::default();
    seen.take(&first);
    assert!(!seen.thinned.is_empty());
    seen.accounts_for(0, n);
}
