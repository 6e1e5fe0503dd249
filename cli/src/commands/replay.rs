//! `idict replay`: a recording served as a run, at its recorded pace or another.

use crate::note;
use anyhow::{Result, bail};
use idict::SeekTo;
use idict::value::escape_controls;
use std::process::ExitCode;
use std::time::Duration;

pub(crate) async fn replay(
    file: std::path::PathBuf,
    speed: Option<f64>,
    paused: bool,
    exit_at_end: bool,
    at: Option<SeekTo>,
) -> Result<ExitCode> {
    if let Some(s) = speed
        && !(s.is_finite() && s > 0.0)
    {
        bail!("--speed takes a number > 0, got {s}");
    }
    let replayer = idict::replay::Replayer::open(&file)?;
    let h = replayer.header.clone();
    let t = replayer.timeline();
    let idict = idict::IDict::builder(&h.name)
        .replay_of(file.display().to_string())
        .start_paused(paused)
        .build();
    idict.terminate_on_signals()?;
    let server = idict::serve(&idict)?;
    note(format!(
        "idict: replaying {} (run '{}', pid {} on {}: v{} to v{}, {:.1} s, {} marks){}",
        file.display(),
        escape_controls(&h.name),
        h.pid,
        escape_controls(&h.host),
        t.first_version,
        t.last_version,
        (t.last_time - t.first_time).max(0.0),
        t.marks.len() as u64 + t.marks_left_off,
        speed.map_or(String::new(), |s| format!(" at {s}x"))
    ));
    let cut_at = replayer.cut_at;
    let run = idict.clone();
    let opts = idict::replay::ReplayOptions {
        speed,
        at,
        hold_at_end: !exit_at_end,
    };
    if !exit_at_end {
        note(
            "idict: at its end the replay holds, paused, for seeking (idict seek); Ctrl-C or terminate to quit",
        );
    }
    let summary = tokio::task::spawn_blocking(move || replayer.replay(&run, &opts)).await?;
    let summary = summary.unwrap_or_else(|e| {
        note(format!("idict: the replay stopped: {e}"));
        idict::replay::ReplaySummary::default()
    });
    note(format!(
        "idict: replayed to v{} ({} samples){}{}",
        summary.last_version,
        summary.samples,
        if summary.terminated {
            ", stopped by terminate"
        } else {
            ""
        },
        match (&summary.damaged, cut_at) {
            (Some(d), _) =>
                format!("; the recording is damaged ({d}): what came before was replayed"),
            (None, Some(at)) =>
                format!("; the recording ends inside a record at byte {at} (the run was killed)"),
            (None, None) if !summary.complete && !summary.terminated => {
                "; the recording stops before the run's end".to_string()
            }
            (None, None) => String::new(),
        }
    ));
    if !idict.status().state.is_terminal() {
        let _ = idict.notify_update_final();
    }
    server.wait_then_close(Duration::from_secs(2));
    Ok(ExitCode::SUCCESS)
}
