//! End-to-end benchmark of idict on loopback, with real servers and real
//! clients (watchers on a runtime of their own in this process), and raw
//! loopback TCP measured alongside as the physical yardstick.
//!
//! `cargo bench -p idict --bench e2e` prints every figure of DESIGN.md
//! "Performance" beside its target and writes them to
//! `target/idict-bench.json`; `-- --quick` runs a shorter version.
//! One *update* is 10 changed f64 scalars.

use futures::StreamExt;
use idict::client::{Client, ClientError, ConnectOptions, Target, Update, WatchOptions};
use idict::{IDict, ServeOptions, Server, Value};
use parking_lot::Mutex;
use serde_json::json;
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[path = "support/rss.rs"]
mod rss;
use rss::rss;

const KEYS: [&str; 10] = ["k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9"];
const MIB: f64 = 1024.0 * 1024.0;

struct Bench {
    rt: tokio::runtime::Runtime,
    quick: bool,
    rows: Vec<(String, String, String, Option<bool>)>,
    json: serde_json::Map<String, serde_json::Value>,
}

fn serve(idict: &IDict) -> Server {
    ServeOptions {
        // The 1,000-watcher section watches on one token.
        max_streams_per_token: 2000,
        max_connections: 2000,
        ..ServeOptions::default()
    }
    .write_run_file(false)
    .announce(false)
    .serve(idict)
    .expect("serve")
}

fn target(server: &Server) -> Target {
    Target::at(server.address(), Some(server.tokens().observer.clone()))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Microseconds from each version's send to its receipt (versions never
/// received are left out).
fn delays_us(sent: &[(u64, Instant)], received: &[(u64, Instant)]) -> Vec<f64> {
    let got: std::collections::HashMap<u64, Instant> = received.iter().copied().collect();
    sent.iter()
        .filter_map(|(v, at)| {
            got.get(v)
                .map(|r| r.duration_since(*at).as_secs_f64() * 1e6)
        })
        .collect()
}

fn publish_10(idict: &IDict, i: u64) {
    {
        let mut d = idict.lock();
        for (j, k) in KEYS.iter().enumerate() {
            d.insert(k, (i * 10 + j as u64) as f64);
        }
    }
    idict.notify_update().expect("notify");
}

/// `n` updates of 10 scalars; each `notify_update`'s time, in ns.
fn timed_notifies(idict: &IDict, n: usize) -> Vec<f64> {
    let mut ns = Vec::with_capacity(n);
    for i in 0..n as u64 {
        {
            let mut d = idict.lock();
            for (j, k) in KEYS.iter().enumerate() {
                d.insert(k, (i * 10 + j as u64) as f64);
            }
        }
        let t = Instant::now();
        idict.notify_update().expect("notify");
        ns.push(t.elapsed().as_nanos() as f64);
    }
    ns
}

/// A bare tonic service that sends messages built in advance and does
/// nothing else: the framework's floor, beside which idict is measured.
struct Floor {
    /// Each message waits for a notify (the latency section); without one,
    /// messages go as fast as the client takes them.
    notify: Option<Arc<tokio::sync::Notify>>,
    /// Sent in turn, over and over, each with the next version.
    messages: Vec<idict::proto::v1::WatchUpdate>,
}

type Unsupported<T> = Result<tonic::Response<T>, tonic::Status>;
type FloorStream<T> =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<T, tonic::Status>> + Send + 'static>>;

#[tonic::async_trait]
impl idict::proto::v1::inspector_server::Inspector for Floor {
    async fn get_info(
        &self,
        _: tonic::Request<idict::proto::v1::GetInfoRequest>,
    ) -> Unsupported<idict::proto::v1::RunInfo> {
        Err(tonic::Status::unimplemented(""))
    }
    async fn get_snapshot(
        &self,
        _: tonic::Request<idict::proto::v1::GetSnapshotRequest>,
    ) -> Unsupported<idict::proto::v1::Snapshot> {
        Err(tonic::Status::unimplemented(""))
    }
    type WatchStream = FloorStream<idict::proto::v1::WatchUpdate>;
    async fn watch(
        &self,
        _: tonic::Request<idict::proto::v1::WatchRequest>,
    ) -> Unsupported<Self::WatchStream> {
        let (notify, messages) = (self.notify.clone(), self.messages.clone());
        let s = futures::stream::unfold(
            (notify, messages, 0u64),
            |(notify, messages, i)| async move {
                if let Some(n) = &notify {
                    n.notified().await;
                }
                let mut m = messages[i as usize % messages.len()].clone();
                m.version = i + 1;
                Some((Ok(m), (notify, messages, i + 1)))
            },
        );
        Ok(tonic::Response::new(Box::pin(s)))
    }
    type GetHistoryStream = FloorStream<idict::proto::v1::HistoryChunk>;
    async fn get_history(
        &self,
        _: tonic::Request<idict::proto::v1::GetHistoryRequest>,
    ) -> Unsupported<Self::GetHistoryStream> {
        Err(tonic::Status::unimplemented(""))
    }
    async fn control(
        &self,
        _: tonic::Request<idict::proto::v1::ControlRequest>,
    ) -> Unsupported<idict::proto::v1::ControlReply> {
        Err(tonic::Status::unimplemented(""))
    }
    async fn set(
        &self,
        _: tonic::Request<idict::proto::v1::SetRequest>,
    ) -> Unsupported<idict::proto::v1::SetReply> {
        Err(tonic::Status::unimplemented(""))
    }
    async fn trigger(
        &self,
        _: tonic::Request<idict::proto::v1::TriggerRequest>,
    ) -> Unsupported<idict::proto::v1::TriggerReply> {
        Err(tonic::Status::unimplemented(""))
    }
}

/// Serves `floor` as idict serves a run: a current-thread runtime on a
/// thread of its own, the same HTTP/2 windows and frames. Send on the
/// sender to stop it.
fn serve_floor(
    floor: Floor,
) -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    std::thread::JoinHandle<()>,
) {
    use idict_core::tuning::{FRAME_BYTES, WINDOW_BYTES};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        #[cfg(target_os = "linux")]
        let _ = rustix::process::setpriority_process(
            Some(rustix::thread::gettid()),
            ServeOptions::default().nice,
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let incoming =
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
            let service = idict::proto::v1::inspector_server::InspectorServer::new(floor)
                .max_decoding_message_size(usize::MAX)
                .max_encoding_message_size(usize::MAX);
            let _ = tonic::transport::Server::builder()
                .initial_stream_window_size(Some(WINDOW_BYTES))
                .initial_connection_window_size(Some(WINDOW_BYTES))
                .max_frame_size(Some(FRAME_BYTES))
                .add_service(service)
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stop_rx.await;
                })
                .await;
        });
    });
    (addr, stop_tx, server)
}

/// A bare tonic client's Watch on a floor, with idict's client's windows.
async fn floor_watch(
    addr: std::net::SocketAddr,
) -> tonic::Streaming<idict::proto::v1::WatchUpdate> {
    use idict_core::tuning::{FRAME_BYTES, WINDOW_BYTES};
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .tcp_nodelay(true)
        .initial_stream_window_size(Some(WINDOW_BYTES))
        .initial_connection_window_size(Some(WINDOW_BYTES))
        .max_frame_size(Some(FRAME_BYTES))
        .connect()
        .await
        .expect("connect");
    idict::proto::v1::inspector_client::InspectorClient::new(channel)
        .max_decoding_message_size(usize::MAX)
        .watch(idict::proto::v1::WatchRequest::default())
        .await
        .expect("watch")
        .into_inner()
}

impl Bench {
    fn figure(&mut self, name: &str, value: f64, unit: &str, target: &str, pass: Option<bool>) {
        let shown = if value.abs() >= 100.0 || value == 0.0 {
            format!("{value:.0} {unit}")
        } else {
            format!("{value:.3} {unit}")
        };
        self.rows
            .push((name.to_string(), shown, target.to_string(), pass));
        self.json.insert(
            name.to_string(),
            json!({"value": value, "unit": unit, "target": target, "pass": pass}),
        );
    }

    /// A watch on `server` that has already received its first (full) state;
    /// the client is returned too, to keep its connection.
    fn attached(
        &self,
        server: &Server,
    ) -> (
        Client,
        impl futures::Stream<Item = Result<Update, ClientError>> + Send + Unpin + 'static + use<>,
    ) {
        let t = target(server);
        self.rt.block_on(async move {
            let c = Client::connect_target(t, ConnectOptions::default())
                .await
                .expect("connect");
            let mut w = c.watch(WatchOptions::default()).await.expect("watch");
            let _ = w.next().await;
            (c, w)
        })
    }

    /// Starts `n` watchers that read every update until the run ends, and
    /// waits until each has its first state. Each returns its last update's
    /// version and whether it was the final one.
    fn watchers(&self, server: &Server, n: usize) -> Vec<tokio::task::JoinHandle<(u64, bool)>> {
        let ready = Arc::new(AtomicU64::new(0));
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let (t, ready) = (target(server), ready.clone());
                self.rt.spawn(async move {
                    let c = Client::connect_target(t, ConnectOptions::default())
                        .await
                        .expect("connect");
                    let mut w = c.watch(WatchOptions::default()).await.expect("watch");
                    let _ = w.next().await;
                    ready.fetch_add(1, Ordering::AcqRel);
                    let mut last = (0, false);
                    while let Some(Ok(u)) = w.next().await {
                        last = (u.version, u.last);
                    }
                    last
                })
            })
            .collect();
        while ready.load(Ordering::Acquire) < n as u64 {
            std::thread::sleep(Duration::from_millis(5));
        }
        handles
    }

    /// `notify_update` cost on the computation's thread.
    fn notify_cost(&mut self) {
        let iterations = if self.quick { 20_000 } else { 200_000 };
        let mut p50s = Vec::new();
        for watchers in [0usize, 1, 16] {
            let idict = IDict::new("bench-notify");
            let server = serve(&idict);
            let handles = self.watchers(&server, watchers);
            let mut ns = timed_notifies(&idict, iterations);
            idict.notify_update_final().expect("final");
            for h in handles {
                let _ = self.rt.block_on(h);
            }
            server.wait_then_close(Duration::from_secs(5));
            ns.sort_by(f64::total_cmp);
            let (p50, p99) = (percentile(&ns, 0.5), percentile(&ns, 0.99));
            p50s.push(p50);
            self.figure(
                &format!("notify_ns_p50_w{watchers}"),
                p50,
                "ns",
                "<= 1000",
                Some(p50 <= 1000.0),
            );
            self.figure(&format!("notify_ns_p99_w{watchers}"), p99, "ns", "", None);
        }
        let ratio = p50s[2] / p50s[0];
        self.figure(
            "notify_w16_over_w0",
            ratio,
            "x",
            "<= 1.1 (no worse with 16 watchers)",
            Some(ratio <= 1.1),
        );
    }

    /// `notify_update` cost on one run, serving metrics, without and then
    /// with a scraper polling `/metrics` every 100 ms: a scrape reads the
    /// server's mirror, so the computation should not feel it.
    fn metrics(&mut self) {
        let iterations = if self.quick { 100_000 } else { 1_000_000 };
        let idict = IDict::new("bench-metrics");
        let server = ServeOptions {
            metrics: Some("127.0.0.1:0".parse().expect("an address")),
            ..ServeOptions::default()
        }
        .write_run_file(false)
        .announce(false)
        .serve(&idict)
        .expect("serve");
        let at = server.metrics_address().expect("metrics served");
        let mut p50 = Vec::new();
        let mut scrapes = 0;
        for scraping in [false, true] {
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let scraper = scraping.then(|| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        if let Ok(mut s) = std::net::TcpStream::connect(at) {
                            let _ = s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n");
                            let mut page = Vec::new();
                            if s.read_to_end(&mut page).is_ok() && page.starts_with(b"HTTP/1.1 200")
                            {
                                n += 1;
                            }
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    n
                })
            });
            let mut ns = timed_notifies(&idict, iterations);
            stop.store(true, Ordering::Relaxed);
            if let Some(s) = scraper {
                scrapes = s.join().unwrap_or(0);
            }
            ns.sort_by(f64::total_cmp);
            p50.push(percentile(&ns, 0.5));
        }
        idict.notify_update_final().expect("final");
        server.wait_then_close(Duration::from_secs(5));
        self.figure("notify_ns_p50_metrics_unscraped", p50[0], "ns", "", None);
        self.figure(
            "notify_ns_p50_metrics_scraped",
            p50[1],
            "ns",
            &format!("({scrapes} scrapes, every 100 ms)"),
            None,
        );
        let ratio = p50[1] / p50[0];
        self.figure(
            "notify_scraped_over_unscraped",
            ratio,
            "x",
            "<= 1.1 (a scrape costs the computation nothing)",
            Some(ratio <= 1.1),
        );
    }

    /// `notify_update` cost with the run recorded and without, same loop:
    /// the recorder is one more watcher, so the computation should not
    /// feel it.
    fn recording(&mut self) {
        let iterations = if self.quick { 100_000 } else { 1_000_000 };
        let dir = tempfile::tempdir().expect("tempdir");
        let mut p50 = Vec::new();
        let (mut bytes, mut kept, mut thinned) = (0, 0u64, 0u64);
        let (mut recorded_in, mut published) = (0.0, 0.0);
        let mut file = None;
        for recorded in [false, true] {
            let idict = IDict::new("bench-recording");
            let server = ServeOptions {
                record: recorded.then(|| dir.path().to_path_buf()),
                ..ServeOptions::default()
            }
            .write_run_file(false)
            .announce(false)
            .serve(&idict)
            .expect("serve");
            let started = Instant::now();
            let mut ns = timed_notifies(&idict, iterations);
            let published_in = started.elapsed().as_secs_f64();
            idict.notify_update_final().expect("final");
            let written = Instant::now();
            let path = server.recording().map(|p| p.to_path_buf());
            // Closing waits for the recorder's last write.
            server.wait_then_close(Duration::from_secs(30));
            let closed_in = written.elapsed().as_secs_f64();
            if let Some(path) = path {
                bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
                file = Some(path.clone());
                if let Ok(r) = idict::recording::open(&path) {
                    for e in r.filter_map(Result::ok) {
                        if let Some(idict::proto::v1::record_entry::Kind::Update(u)) = e.kind {
                            kept += u
                                .samples
                                .iter()
                                .map(|s| s.packed_values.len() as u64 / 8)
                                .sum::<u64>();
                            thinned += u.thinned.iter().map(|t| t.dropped).sum::<u64>();
                        }
                    }
                }
                recorded_in = closed_in;
            }
            published = published_in;
            ns.sort_by(f64::total_cmp);
            p50.push(percentile(&ns, 0.5));
        }
        let samples = iterations as u64 * KEYS.len() as u64;
        self.figure(
            "recorded_samples_per_s",
            samples as f64 / (published + recorded_in),
            "samples/s",
            ">= 1000000 (to disk, from the first notify to the final record)",
            Some(samples as f64 / (published + recorded_in) >= 1e6),
        );
        self.figure(
            "recorded_samples_lost",
            samples.saturating_sub(kept) as f64,
            "samples",
            &format!("0 ({thinned} reported thinned)"),
            Some(kept >= samples),
        );
        self.figure("notify_ns_p50_unrecorded", p50[0], "ns", "", None);
        self.figure(
            "notify_ns_p50_recorded",
            p50[1],
            "ns",
            &format!(
                "({iterations} updates of 10 scalars: {:.1} MiB recorded)",
                bytes as f64 / 1048576.0
            ),
            None,
        );
        let ratio = p50[1] / p50[0];
        self.figure(
            "notify_recorded_over_unrecorded",
            ratio,
            "x",
            "<= 1.1 (recording costs what a watcher does)",
            Some(ratio <= 1.1),
        );
        let per_sample = bytes as f64 / samples.max(1) as f64;
        self.figure(
            "recording_bytes_per_sample",
            per_sample,
            "B",
            "<= 12",
            Some(per_sample <= 12.0),
        );
        // The recording replayed as fast as it goes, with one watcher.
        let Some(path) = file else { return };
        let replayed = IDict::new("bench-replay");
        let server = serve(&replayed);
        let (_client, mut w) = self.attached(&server);
        let watcher = self.rt.spawn(async move {
            let mut got = 0u64;
            while let Some(Ok(u)) = w.next().await {
                got += u.samples.iter().map(|(_, s)| s.len() as u64).sum::<u64>();
                if u.last {
                    break;
                }
            }
            (got, Instant::now())
        });
        let start = Instant::now();
        let replayer = idict::replay::Replayer::open(&path).expect("the recording");
        let summary = replayer
            .replay(&replayed, &Default::default())
            .expect("replay");
        let (got, end) = self.rt.block_on(watcher).expect("watcher");
        server.wait_then_close(Duration::from_secs(5));
        let rate = summary.samples as f64 / end.duration_since(start).as_secs_f64();
        let live = samples as f64 / published.max(1e-9);
        self.figure(
            "replay_samples_per_s",
            rate,
            "samples/s",
            &format!(
                ">= the live rate ({live:.0}/s); a watcher got {got} of {}",
                summary.samples
            ),
            Some(rate >= live),
        );
    }

    /// One burst of `n` updates to one watcher reading as fast as it can:
    /// its delivery rate, the samples it lost, those it was told were
    /// thinned, its messages, the computation's own rate, and the peak
    /// growth of this process's memory meanwhile.
    fn burst(&mut self, n: u64) -> (f64, u64, u64, u64, f64, u64) {
        let idict = IDict::new("bench-throughput");
        let server = serve(&idict);
        let (_client, mut w) = self.attached(&server);
        let watcher = self.rt.spawn(async move {
            let (mut samples, mut messages, mut told) = (0u64, 0u64, 0u64);
            while let Some(Ok(u)) = w.next().await {
                messages += 1;
                samples += u.samples.iter().map(|(_, s)| s.len() as u64).sum::<u64>();
                told += u.thinned.iter().map(|t| t.dropped).sum::<u64>();
                if u.last {
                    break;
                }
            }
            (samples, messages, told, Instant::now())
        });
        let before = rss();
        let peak = Arc::new(AtomicU64::new(before));
        let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let sampler = {
            let (peak, sampling) = (peak.clone(), sampling.clone());
            std::thread::spawn(move || {
                while sampling.load(Ordering::Relaxed) {
                    peak.fetch_max(rss(), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        let start = Instant::now();
        for i in 0..n {
            publish_10(&idict, i);
        }
        let produced = start.elapsed();
        idict.notify_update_final().expect("final");
        let (samples, messages, told, end) = self.rt.block_on(watcher).expect("watcher");
        sampling.store(false, Ordering::Relaxed);
        let _ = sampler.join();
        let secs = end.duration_since(start).as_secs_f64();
        server.wait_then_close(Duration::from_secs(5));
        (
            n as f64 / secs,
            (n * 10).saturating_sub(samples),
            told,
            messages,
            n as f64 / produced.as_secs_f64(),
            peak.load(Ordering::Relaxed).saturating_sub(before),
        )
    }

    /// The burst three times; the worst of each figure is what counts.
    fn throughput(&mut self) {
        let n: u64 = if self.quick { 100_000 } else { 1_000_000 };
        let runs: Vec<_> = (0..3).map(|_| self.burst(n)).collect();
        let worst_rate = runs.iter().map(|r| r.0).fold(f64::INFINITY, f64::min);
        let worst_lost = runs.iter().map(|r| r.1).max().unwrap_or(0);
        let unreported = runs.iter().map(|r| r.1.abs_diff(r.2)).max().unwrap_or(0);
        let messages = runs.iter().map(|r| r.3).max().unwrap_or(0);
        let computation = runs.iter().map(|r| r.4).fold(f64::INFINITY, f64::min);
        let peak = runs.iter().map(|r| r.5).max().unwrap_or(0);
        self.figure(
            "delivered_updates_per_s",
            worst_rate,
            "updates/s",
            ">= 200000 (worst of 3 bursts)",
            Some(worst_rate >= 200_000.0),
        );
        self.figure(
            "samples_lost",
            worst_lost as f64,
            "samples",
            "0 (worst of 3 bursts)",
            Some(worst_lost == 0),
        );
        self.figure(
            "samples_lost_unreported",
            unreported as f64,
            "samples",
            "0 (lost and not told)",
            Some(unreported == 0),
        );
        self.figure("throughput_messages", messages as f64, "messages", "", None);
        self.figure(
            "computation_updates_per_s",
            computation,
            "updates/s",
            "",
            None,
        );
        self.figure(
            "burst_peak_rss_mb",
            peak as f64 / MIB,
            "MiB",
            "(growth of this process, server and watcher)",
            None,
        );
    }

    /// A watcher reading one message every 10 ms through a burst: what it
    /// missed must be exactly what it was told was thinned.
    fn slow_reader(&mut self) {
        let n: u64 = if self.quick { 100_000 } else { 300_000 };
        let idict = IDict::builder("bench-slow-reader")
            .history_budget_bytes(64 << 10)
            .pinned_history_bytes(1 << 20)
            .build();
        publish_10(&idict, 0);
        let server = serve(&idict);
        let t = target(&server);
        // Attached, with its first state's version: it is owed the samples
        // after it.
        let (_client, mut w, first) = self.rt.block_on(async move {
            let c = Client::connect_target(t, ConnectOptions::default())
                .await
                .expect("connect");
            let mut w = c.watch(WatchOptions::default()).await.expect("watch");
            let first = match w.next().await {
                Some(Ok(u)) => u.version,
                _ => 0,
            };
            (c, w, first)
        });
        let watcher = self.rt.spawn(async move {
            let (mut samples, mut told) = (0u64, 0u64);
            while let Some(Ok(u)) = w.next().await {
                let after_first = |v: &&u64| **v > first;
                samples += u
                    .samples
                    .iter()
                    .map(|(_, s)| s.versions.iter().filter(after_first).count() as u64)
                    .sum::<u64>();
                told += u.thinned.iter().map(|t| t.dropped).sum::<u64>();
                if u.last {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (samples, told)
        });
        for i in 1..n {
            publish_10(&idict, i);
        }
        idict.notify_update_final().expect("final");
        let (samples, told) = self.rt.block_on(watcher).expect("watcher");
        // Owed: the samples after its first state's version.
        let owed = (n - first) * 10;
        let missed = owed.saturating_sub(samples);
        self.figure("slow_reader_missed", missed as f64, "samples", "", None);
        self.figure(
            "slow_reader_told_thinned",
            told as f64,
            "samples",
            "= slow_reader_missed, exactly",
            Some(told == missed),
        );
        server.wait_then_close(Duration::from_secs(5));
    }

    /// notify → watcher latency with updates 1 ms apart, beside its
    /// yardstick (raw TCP) and the framework's floor (a bare tonic stream).
    /// The three are measured in interleaved rounds: this machine's wake-up
    /// costs drift by 2x within a minute, and measured one after the other
    /// the ratio of two figures said more about the drift than about them.
    fn latency(&mut self) {
        let (rounds, per) = if self.quick { (2, 150) } else { (8, 250) };
        let idict = IDict::new("bench-latency");
        let server = serve(&idict);
        let received = Arc::new(Mutex::new(Vec::with_capacity(rounds * per + 1)));
        let rec = received.clone();
        let (_client, mut w) = self.attached(&server);
        let watcher = self.rt.spawn(async move {
            while let Some(Ok(u)) = w.next().await {
                rec.lock().push((u.version, Instant::now()));
                if u.last {
                    break;
                }
            }
        });
        let mut sent = Vec::with_capacity(rounds * per);
        let (mut raw, mut floor, mut wake) = (Vec::new(), Vec::new(), Vec::new());
        let mut notify_ns = Vec::with_capacity(rounds * per);
        let mut i = 0u64;
        for _ in 0..rounds {
            let mut next = Instant::now();
            for _ in 0..per {
                next += Duration::from_millis(1);
                while Instant::now() < next {
                    std::thread::sleep(
                        next.saturating_duration_since(Instant::now())
                            .min(Duration::from_micros(900)),
                    );
                }
                {
                    let mut d = idict.lock();
                    for (j, k) in KEYS.iter().enumerate() {
                        d.insert(k, (i * 10 + j as u64) as f64);
                    }
                }
                let at = Instant::now();
                let v = idict.notify_update().expect("notify");
                notify_ns.push(at.elapsed().as_nanos() as f64);
                sent.push((v, at));
                i += 1;
            }
            raw.extend(Self::tcp_one_way_idle(per));
            floor.extend(self.tonic_floor(per));
            wake.extend(Self::wake_idle_runtime(per));
        }
        idict.notify_update_final().expect("final");
        let _ = self.rt.block_on(watcher);
        let mut us = delays_us(&sent, &received.lock());
        for v in [&mut us, &mut raw, &mut floor, &mut wake, &mut notify_ns] {
            v.sort_by(f64::total_cmp);
        }
        let (p50, p99) = (percentile(&us, 0.5), percentile(&us, 0.99));
        let (raw50, raw99) = (percentile(&raw, 0.5), percentile(&raw, 0.99));
        let (wake50, floor50) = (percentile(&wake, 0.5), percentile(&floor, 0.5));
        self.figure(
            "tcp_one_way_idle_us_p50",
            raw50,
            "us",
            "(yardstick: raw TCP, receiver idle, 1 ms apart)",
            None,
        );
        self.figure("tcp_one_way_idle_us_p99", raw99, "us", "", None);
        self.figure(
            "tonic_floor_us_p50",
            floor50,
            "us",
            "(a bare tonic stream, same runtimes and message: the framework's floor)",
            None,
        );
        self.figure(
            "tonic_floor_over_yardstick",
            floor50 / raw50,
            "x",
            "(the floor against the target's 2x)",
            None,
        );
        self.figure(
            "wake_idle_server_thread_us_p50",
            wake50,
            "us",
            "(hop 1: a notify waking an idle 1-thread runtime, as the server's)",
            None,
        );
        self.figure(
            "notify_ns_p50_paced",
            percentile(&notify_ns, 0.5),
            "ns",
            "(the same notifies, 1 ms apart: each wakes the idle server thread)",
            None,
        );
        self.figure(
            "latency_us_p50",
            p50,
            "us",
            "<= 2x tcp_one_way_idle_us_p50",
            Some(p50 <= 2.0 * raw50),
        );
        self.figure("latency_us_p99", p99, "us", "<= 500", Some(p99 <= 500.0));
        self.figure(
            "latency_rest_us_p50",
            p50 - wake50 - raw50,
            "us",
            "(the rest: building, encoding, HTTP/2 and decoding, both sides)",
            None,
        );
        self.figure(
            "latency_over_tonic_floor_us_p50",
            p50 - floor50,
            "us",
            "(what idict adds to a bare tonic stream)",
            None,
        );
        server.wait_then_close(Duration::from_secs(5));
    }

    /// The framework's floor: the same runtimes, socket options and message
    /// (10 values and 10 one-sample series) as the latency section, sent by
    /// a bare tonic service that does nothing but send a message built in
    /// advance when the notifying thread wakes it. What idict adds is the
    /// difference. 1 ms apart.
    fn tonic_floor(&self, n: usize) -> Vec<f64> {
        use idict::proto::v1 as pb;
        let message = pb::WatchUpdate {
            changed: KEYS
                .iter()
                .map(|k| pb::Entry {
                    key: k.to_string(),
                    value: Some(idict::wire::value_to_proto(&Value::from(1.5))),
                })
                .collect(),
            samples: KEYS
                .iter()
                .map(|k| pb::SampleSeries {
                    key: k.to_string(),
                    first_version: 1,
                    packed_times: 0.25f64.to_le_bytes().to_vec().into(),
                    packed_values: 1.5f64.to_le_bytes().to_vec().into(),
                    ..Default::default()
                })
                .collect(),
            status: Some(pb::Status {
                state: pb::RunState::Running as i32,
                ..Default::default()
            }),
            time: 0.25,
            ..Default::default()
        };
        let notify = Arc::new(tokio::sync::Notify::new());
        let (addr, stop_tx, server) = serve_floor(Floor {
            notify: Some(notify.clone()),
            messages: vec![message],
        });
        let received = Arc::new(Mutex::new(Vec::with_capacity(n)));
        let rec = received.clone();
        let mut stream = self.rt.block_on(floor_watch(addr));
        let ready = self.rt.spawn(async move {
            while let Ok(Some(m)) = stream.message().await {
                rec.lock().push((m.version, Instant::now()));
            }
        });
        // The stream is open once the server waits on the notify.
        std::thread::sleep(Duration::from_millis(50));
        let mut sent = Vec::with_capacity(n);
        for v in 1..=n as u64 {
            std::thread::sleep(Duration::from_millis(1));
            sent.push((v, Instant::now()));
            notify.notify_one();
        }
        std::thread::sleep(Duration::from_millis(50));
        let _ = stop_tx.send(());
        ready.abort();
        let _ = server.join();
        delays_us(&sent, &received.lock())
    }

    /// How long a `tokio::sync::Notify` from this thread takes to run a
    /// task on an idle single-thread runtime (parked in epoll): the first
    /// hop of every notify → watcher delivery. 1 ms apart.
    fn wake_idle_runtime(n: usize) -> Vec<f64> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let notify = Arc::new(tokio::sync::Notify::new());
        let woke = Arc::new(Mutex::new(Vec::with_capacity(n)));
        let (task_notify, task_woke) = (notify.clone(), woke.clone());
        let task = rt.spawn(async move {
            for _ in 0..n {
                task_notify.notified().await;
                task_woke.lock().push(Instant::now());
            }
        });
        let mut sent = Vec::with_capacity(n);
        for _ in 0..n {
            std::thread::sleep(Duration::from_millis(1));
            sent.push(Instant::now());
            notify.notify_one();
        }
        let _ = rt.block_on(task);
        let woke = woke.lock();
        sent.iter()
            .zip(woke.iter())
            .map(|(s, w)| w.duration_since(*s).as_secs_f64() * 1e6)
            .collect()
    }

    /// Raw loopback TCP: 16-byte messages 1 ms apart to a blocked reader,
    /// the floor of any notify → watcher latency on this machine.
    fn tcp_one_way_idle(n: usize) -> Vec<f64> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let base = Instant::now();
        let reader = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accept");
            let mut buf = [0u8; 16];
            let mut us = Vec::new();
            while s.read_exact(&mut buf).is_ok() {
                let sent = u128::from_le_bytes(buf) as f64 / 1e3;
                us.push(base.elapsed().as_nanos() as f64 / 1e3 - sent);
            }
            us
        });
        let mut c = std::net::TcpStream::connect(addr).expect("connect");
        c.set_nodelay(true).ok();
        for _ in 0..n {
            std::thread::sleep(Duration::from_millis(1));
            c.write_all(&base.elapsed().as_nanos().to_le_bytes())
                .expect("write");
        }
        drop(c);
        reader.join().unwrap_or_default()
    }

    /// Raw loopback TCP moving `count` buffers of `size` bytes.
    fn tcp_raw(count: usize, size: usize) -> f64 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let writer = std::thread::spawn(move || {
            let mut s = std::net::TcpStream::connect(addr).expect("connect");
            s.set_nodelay(true).ok();
            let buf = vec![7u8; size];
            for _ in 0..count {
                s.write_all(&buf).expect("write");
            }
        });
        let (mut r, _) = listener.accept().expect("accept");
        let mut buf = vec![0u8; size];
        let start = Instant::now();
        for _ in 0..count {
            r.read_exact(&mut buf).expect("read");
        }
        let secs = start.elapsed().as_secs_f64();
        let _ = writer.join();
        (count * size) as f64 / MIB / secs
    }

    /// An 8 MiB f64 array per update, delivered, against raw TCP: rounds
    /// of each in turn (so drift on a shared machine hits both alike), the
    /// median round's ratio.
    fn arrays(&mut self) {
        let (rounds, count) = if self.quick { (3, 16) } else { (7, 32) };
        let len = 1 << 20; // 1 Mi f64 = 8 MiB
        let idict = IDict::new("bench-arrays");
        let server = serve(&idict);
        // Two arrays built once: publishing a clone shares the buffer.
        let arrays: Vec<Value> = (0..2)
            .map(|a| Value::from(vec![a as f64 + 0.5; len]))
            .collect();
        let (_client, w) = self.attached(&server);
        let w = Arc::new(tokio::sync::Mutex::new(w));
        // The framework's floor for the same arrays: a bare tonic stream of
        // the same parts (slices of one shared buffer, as idict's server
        // sends them), joined by the client with the one copy idict's
        // client makes.
        let floor_messages = {
            use idict::proto::v1 as pb;
            let data = bytes::Bytes::from(vec![7u8; len * 8]);
            let part = idict_core::tuning::PART_BYTES;
            (0..data.len().div_ceil(part))
                .map(|p| {
                    let (a, b) = (p * part, ((p + 1) * part).min(data.len()));
                    pb::WatchUpdate {
                        part: Some(pb::ValuePart {
                            key: "u".into(),
                            offset: a as u64,
                            total: data.len() as u64,
                            data: data.slice(a..b),
                        }),
                        more: b < data.len(),
                        status: Some(pb::Status {
                            state: pb::RunState::Running as i32,
                            ..Default::default()
                        }),
                        ..Default::default()
                    }
                })
                .collect()
        };
        let (floor_addr, floor_stop, floor_server) = serve_floor(Floor {
            notify: None,
            messages: floor_messages,
        });
        let floor_stream = Arc::new(tokio::sync::Mutex::new(
            self.rt.block_on(floor_watch(floor_addr)),
        ));
        let mut i = 0;
        let (mut ours, mut raws, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        let (mut floors, mut floor_ratios, mut over_floor) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            let w = w.clone();
            let want = count as u64;
            let watcher = self.rt.spawn(async move {
                let mut w = w.lock().await;
                let (mut got, mut bytes) = (0u64, 0u64);
                let start = Instant::now();
                while let Some(Ok(u)) = w.next().await {
                    for (_, v) in &u.changed {
                        if let Some(a) = v.as_array() {
                            got += 1;
                            bytes += a.bytes().len() as u64;
                        }
                    }
                    if got >= want || u.last {
                        break;
                    }
                }
                (bytes, start.elapsed())
            });
            // Publish as fast as the watcher takes them, without ever
            // blocking: whatever it has not taken yet is coalesced.
            while !watcher.is_finished() {
                idict.lock().insert("u", arrays[i % 2].clone());
                idict.notify_update().expect("notify");
                i += 1;
                std::thread::sleep(Duration::from_micros(200));
            }
            let (bytes, elapsed) = self.rt.block_on(watcher).expect("watcher");
            let mine = bytes as f64 / MIB / elapsed.as_secs_f64();
            let raw = Self::tcp_raw(count, len * 8);
            let stream = floor_stream.clone();
            let floor = self.rt.block_on(async move {
                let mut s = stream.lock().await;
                let (mut got, mut bytes) = (0u64, 0u64);
                let mut joined: Vec<u8> = Vec::new();
                let start = Instant::now();
                while got < want {
                    let Ok(Some(m)) = s.message().await else {
                        break;
                    };
                    let Some(p) = m.part else { continue };
                    if p.offset == 0 {
                        joined = Vec::with_capacity(p.total as usize);
                    }
                    joined.extend_from_slice(&p.data);
                    if joined.len() as u64 == p.total {
                        got += 1;
                        bytes += std::hint::black_box(&joined).len() as u64;
                    }
                }
                bytes as f64 / MIB / start.elapsed().as_secs_f64()
            });
            ours.push(mine);
            raws.push(raw);
            ratios.push(mine / raw);
            floors.push(floor);
            floor_ratios.push(floor / raw);
            over_floor.push(mine / floor);
        }
        let _ = floor_stop.send(());
        drop(floor_stream);
        let _ = floor_server.join();
        for v in [
            &mut ours,
            &mut raws,
            &mut ratios,
            &mut floors,
            &mut floor_ratios,
            &mut over_floor,
        ] {
            v.sort_by(f64::total_cmp);
        }
        let ratio = percentile(&ratios, 0.5);
        self.figure("array_mb_per_s", percentile(&ours, 0.5), "MiB/s", "", None);
        self.figure(
            "tcp_raw_mb_per_s",
            percentile(&raws, 0.5),
            "MiB/s",
            "",
            None,
        );
        self.figure(
            "array_over_tcp_ratio",
            ratio,
            "",
            ">= 0.85",
            Some(ratio >= 0.85),
        );
        self.figure(
            "array_tonic_floor_mb_per_s",
            percentile(&floors, 0.5),
            "MiB/s",
            "(a bare tonic stream of the same 1 MiB parts, joined: the framework's floor)",
            None,
        );
        self.figure(
            "array_floor_over_tcp_ratio",
            percentile(&floor_ratios, 0.5),
            "",
            "(the floor against the target's 0.85)",
            None,
        );
        self.figure(
            "array_over_tonic_floor_ratio",
            percentile(&over_floor, 0.5),
            "",
            "(what idict keeps of the framework's floor)",
            None,
        );
        idict.notify_update_final().expect("final");
        server.wait_then_close(Duration::from_secs(1));
    }

    /// A watcher that never reads: the run is not slowed and the server's
    /// memory stays bounded.
    fn slow_watcher(&mut self) {
        let n: u64 = if self.quick { 30_000 } else { 100_000 };
        let time_run = |idict: &IDict| {
            let start = Instant::now();
            for i in 0..n {
                publish_10(idict, i);
            }
            start.elapsed().as_secs_f64()
        };
        let lone = IDict::new("bench-alone");
        let lone_server = serve(&lone);
        let idict = IDict::new("bench-slow");
        let server = serve(&idict);
        let t = target(&server);
        // Open a watch and never read it. Until its flow-control windows
        // fill, its connection still drains the socket (it costs what a
        // reading watcher does); from then on it is stalled.
        let stalled = self.rt.block_on(async move {
            let c = Client::connect_target(t, ConnectOptions::default())
                .await
                .expect("connect");
            let w = c.watch(WatchOptions::default()).await.expect("watch");
            (c, w)
        });
        let filling = time_run(&idict);
        time_run(&lone);
        // Alternate the two runs, so drift on a shared machine hits both alike.
        let (mut alone, mut with) = (Vec::new(), Vec::new());
        for _ in 0..9 {
            alone.push(time_run(&lone));
            with.push(time_run(&idict));
        }
        alone.sort_by(f64::total_cmp);
        with.sort_by(f64::total_cmp);
        let (alone, with) = (alone[4], with[4]);
        lone_server.close();
        self.figure("slow_watcher_filling_s", filling, "s", "", None);
        // Memory: 1 MiB arrays that a naive queue would keep, one per update.
        let before = rss();
        let mut peak = before;
        for i in 0..300 {
            idict.lock().insert("u", vec![i as f64; 1 << 17]);
            idict.notify_update().expect("notify");
            peak = peak.max(rss());
        }
        let grown = peak.saturating_sub(before);
        let slowdown = with / alone - 1.0;
        self.figure(
            "slow_watcher_run_slowdown",
            slowdown * 100.0,
            "%",
            "~0 (run not slowed)",
            Some(slowdown < 0.10),
        );
        self.figure(
            "slow_watcher_server_bytes",
            grown as f64,
            "bytes",
            "bounded (~ one snapshot + flow-control windows), not 300 MiB",
            Some(grown < 64 << 20),
        );
        drop(stalled);
        server.close();
    }

    /// 1,000 watchers: all get the final update; memory per idle watcher.
    fn thousand(&mut self) {
        let n = if self.quick { 200 } else { 1000 };
        let idict = IDict::new("bench-1000");
        publish_10(&idict, 0);
        let server = serve(&idict);
        let before = rss();
        let handles = self.watchers(&server, n);
        std::thread::sleep(Duration::from_millis(200));
        let per = rss().saturating_sub(before) as f64 / n as f64;
        for i in 1..=100 {
            publish_10(&idict, i);
        }
        let last = idict.notify_update_final().expect("final");
        let ok = handles
            .into_iter()
            .map(|h| self.rt.block_on(h).unwrap_or((0, false)))
            .filter(|&(v, last_flag)| v == last && last_flag)
            .count();
        self.figure(
            &format!("watchers_{n}_final_ok"),
            ok as f64,
            "watchers",
            &format!("{n}"),
            Some(ok == n),
        );
        self.figure(
            "bytes_per_idle_watcher",
            per,
            "bytes",
            "<= 65536 (client and server side together)",
            Some(per <= 65536.0),
        );
        server.wait_then_close(Duration::from_secs(10));
    }
}

/// One part of the benchmark.
type Section = fn(&mut Bench);

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let mut b = Bench {
        rt,
        quick,
        rows: Vec::new(),
        json: serde_json::Map::new(),
    };
    // Any other argument picks sections by name (e.g. `-- latency`).
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let run = |name: &str| only.is_empty() || only.iter().any(|o| name.contains(o.as_str()));
    let start = Instant::now();
    let sections: [(&str, Section); 9] = [
        ("notify", Bench::notify_cost),
        ("metrics", Bench::metrics),
        ("recording", Bench::recording),
        ("throughput", Bench::throughput),
        ("slow_reader", Bench::slow_reader),
        ("latency", Bench::latency),
        ("arrays", Bench::arrays),
        ("slow_watcher", Bench::slow_watcher),
        ("thousand", Bench::thousand),
    ];
    for (name, section) in sections {
        if run(name) {
            section(&mut b);
        }
    }
    println!(
        "\nidict e2e benchmark{} ({:.0} s)",
        if quick { " --quick" } else { "" },
        start.elapsed().as_secs_f64()
    );
    println!("{:<28} {:>22}   {:<6} target", "figure", "value", "");
    for (name, value, target, pass) in &b.rows {
        let verdict = match pass {
            Some(true) => "pass",
            Some(false) => "MISS",
            None => "",
        };
        println!("{name:<28} {value:>22}   {verdict:<6} {target}");
    }
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/idict-bench.json");
    match serde_json::to_string_pretty(&b.json) {
        Ok(j) => match std::fs::write(&out, j) {
            Ok(()) => println!("\nwritten to {}", out.display()),
            Err(e) => eprintln!("cannot write {}: {e}", out.display()),
        },
        Err(e) => eprintln!("cannot encode the figures: {e}"),
    }
}
