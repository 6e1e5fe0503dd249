//! The opt-in Prometheus endpoint (`ServeOptions::metrics`, `IDICT_METRICS`):
//! `GET /metrics` on an address of its own answers the run's numeric
//! scalars as gauges, with its state, version, update rate and watchers, in
//! Prometheus's text format, labelled with run, host and pid. It reads the
//! server's mirror, refreshed once per frame, so a scrape never touches the
//! computation's state. It carries no token: it shows numbers only, on the
//! address the user chose.

use super::shared::Shared;
use idict_core::Inner;
use idict_core::model::RunState;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The longest request head read.
const MAX_HEAD_BYTES: usize = 8 << 10;
/// How long a scraper has to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Scrapes answered at once; more wait to be accepted.
const MAX_SCRAPES: usize = 16;

/// Answers scrapes until the task is dropped.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    inner: Arc<Inner>,
    shared: Arc<Shared>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_SCRAPES));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of descriptors, say: never a busy loop.
                tracing::debug!("metrics accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (inner, shared) = (inner.clone(), shared.clone());
        tokio::spawn(async move {
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, answer(stream, &inner, &shared)).await;
            drop(permit);
        });
    }
}

async fn answer(
    mut stream: tokio::net::TcpStream,
    inner: &Inner,
    shared: &Shared,
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 || head.len() + n > MAX_HEAD_BYTES {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut words = line.split(|&b| b == b' ');
    let (method, path) = (
        words.next().unwrap_or_default(),
        words.next().unwrap_or_default(),
    );
    let path = path.split(|&b| b == b'?').next().unwrap_or_default();
    let (status, body) = match (method, path) {
        (b"GET", b"/metrics") => ("200 OK", render(inner, shared)),
        (b"GET", _) => ("404 Not Found", "only /metrics is here\n".to_string()),
        _ => ("405 Method Not Allowed", "GET /metrics\n".to_string()),
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(reply.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

/// A label value as the text format wants it.
fn escape(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

fn number(x: f64) -> String {
    if x.is_nan() {
        "NaN".into()
    } else if x.is_infinite() {
        if x > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{x}")
    }
}

/// The metrics page.
pub(crate) fn render(inner: &Inner, shared: &Shared) -> String {
    let labels = format!(
        "run=\"{}\",host=\"{}\",pid=\"{}\"",
        escape(&inner.name),
        escape(&idict_core::runfile::host_name()),
        std::process::id()
    );
    let status = inner.status();
    // Under the mirror's lock only long enough to take the numbers: the
    // dispatcher and the watchers share it.
    let (version, rate, mut scalars) = {
        let p = shared.mirror.read();
        let scalars: Vec<(Arc<str>, f64)> = p
            .entries
            .iter()
            .flatten()
            .filter_map(|slot| Some((slot.key.clone(), slot.entry.value.as_scalar()?)))
            .collect();
        (
            p.version,
            super::shared::updates_per_second(&p, inner.elapsed()),
            scalars,
        )
    };
    scalars.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = String::with_capacity(4096 + 64 * scalars.len());
    let _ = writeln!(
        out,
        "# HELP idict_state 1 for the run's state, 0 for the others."
    );
    let _ = writeln!(out, "# TYPE idict_state gauge");
    for state in [
        RunState::Running,
        RunState::Paused,
        RunState::Terminating,
        RunState::Finished,
        RunState::Failed,
    ] {
        let on = u8::from(status.state == state);
        let _ = writeln!(
            out,
            "idict_state{{{labels},state=\"{}\"}} {on}",
            state.name()
        );
    }
    let gauges = [
        (
            "idict_version",
            "The newest published version.",
            version as f64,
        ),
        (
            "idict_updates_per_second",
            "Versions published per second over the last 5 s.",
            rate,
        ),
        (
            "idict_watchers",
            "Watch streams open.",
            shared.watchers.load(Ordering::Acquire) as f64,
        ),
        (
            "idict_uptime_seconds",
            "Seconds since the run started.",
            inner.elapsed(),
        ),
    ];
    for (name, help, value) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        let _ = writeln!(out, "{name}{{{labels}}} {}", number(value));
    }
    let _ = writeln!(
        out,
        "# HELP idict_value The run's numeric scalars (int, float, bool), by key."
    );
    let _ = writeln!(out, "# TYPE idict_value gauge");
    for (key, x) in scalars {
        let _ = writeln!(
            out,
            "idict_value{{{labels},key=\"{}\"}} {}",
            escape(&key),
            number(x)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_and_numbers_are_written_as_the_format_wants() {
        assert_eq!(escape("a\"b\\c\nd"), r#"a\"b\\c\nd"#);
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(number(f64::NEG_INFINITY), "-Inf");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(3.0), "3");
    }
}
