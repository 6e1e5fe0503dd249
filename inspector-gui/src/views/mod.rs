//! The views: each panel a struct with a `ui` method that draws from a
//! run's model (the UI thread's own copy, no lock held) and returns the
//! commands the user gave. Shared bits: the status badge and the colour map.

pub mod controls;
pub mod messages;
pub mod plots;
pub mod runs;
pub mod timeline;
pub mod values;

use egui::{Color32, RichText};
use idict::{RunState, Status};

/// The colour of a status word.
pub fn state_color(state: RunState) -> Color32 {
    match state {
        RunState::Running => Color32::from_rgb(60, 170, 90),
        RunState::Paused => Color32::from_rgb(220, 170, 40),
        RunState::Terminating => Color32::from_rgb(230, 120, 40),
        RunState::Finished => Color32::from_rgb(90, 140, 220),
        RunState::Failed => Color32::from_rgb(220, 60, 60),
    }
}

/// Whether a filter as typed shows `key`: any part of it, ignoring case
/// and the spaces around what was typed ("u " hid every row). The values
/// list and the Keys menu search both use it.
pub fn filter_shows(filter: &str, key: &str) -> bool {
    let filter = filter.trim();
    filter.is_empty() || contains_folded(key, &filter.to_lowercase())
}

/// Whether `key` contains `needle` (already lower case), ignoring case,
/// without allocating for a key that is all ASCII (most are).
pub fn contains_folded(key: &str, needle: &str) -> bool {
    if key.is_ascii() && needle.is_ascii() {
        let (k, n) = (key.as_bytes(), needle.as_bytes());
        return n.is_empty()
            || k.windows(n.len())
                .any(|w| w.iter().zip(n).all(|(a, b)| a.to_ascii_lowercase() == *b));
    }
    key.to_lowercase().contains(needle)
}

/// A run's status as far as it is known: while the run cannot be reached,
/// its state when last seen, greyed ("last seen RUNNING"), never a green
/// RUNNING beside a stale marker.
pub fn known_status(ui: &mut egui::Ui, m: &crate::model::RunModel) {
    if matches!(m.connection, crate::model::Connection::Disconnected { .. }) && !m.ended() {
        let last = m
            .status
            .as_ref()
            .map_or("unknown".into(), |s| s.state.name().to_uppercase());
        ui.label(RichText::new(format!("last seen {last}")).weak())
            .on_hover_text("The run is not reachable: this is its state when it was");
    } else {
        status_badge(ui, m.status.as_ref());
    }
}

/// A status badge: the word in its colour, with hold and failure details.
pub fn status_badge(ui: &mut egui::Ui, status: Option<&Status>) {
    match status {
        None => {
            ui.label(RichText::new("connecting").weak());
        }
        Some(s) => {
            let mut text = s.state.name().to_uppercase();
            if s.held {
                text.push_str(" · held");
            }
            if s.steps_pending > 0 {
                text.push_str(&format!(" · {} steps left", s.steps_pending));
            }
            ui.label(RichText::new(text).strong().color(state_color(s.state)));
            let mut scheduled = format!("step {}", s.step);
            if let Some(at) = s.pause_at {
                scheduled.push_str(&format!(" · pauses at {at}"));
            }
            if let Some(at) = s.terminate_at {
                scheduled.push_str(&format!(" · terminates at {at}"));
            }
            if s.ranks_behind > 0 {
                let listed: Vec<String> = s.ranks_behind_first.iter().map(u32::to_string).collect();
                let more = if (listed.len() as u32) < s.ranks_behind {
                    ", …"
                } else {
                    ""
                };
                scheduled.push_str(&format!(
                    " · waiting for {} of the ranks ({}{more})",
                    s.ranks_behind,
                    listed.join(", ")
                ));
            }
            ui.label(RichText::new(scheduled).weak())
                .on_hover_text("Steps done: the wait() calls that let the run go on");
            if !s.message.is_empty() {
                ui.label(RichText::new(&s.message).color(state_color(s.state)));
            }
        }
    }
}

/// A perceptual-ish colour map (dark blue → teal → yellow), `t` in [0, 1].
pub fn colormap(t: f64) -> Color32 {
    const STOPS: [(f64, [u8; 3]); 5] = [
        (0.0, [48, 18, 59]),
        (0.25, [50, 110, 200]),
        (0.5, [30, 190, 150]),
        (0.75, [190, 220, 60]),
        (1.0, [250, 240, 50]),
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    for w in STOPS.windows(2) {
        let ((t0, c0), (t1, c1)) = (w[0], w[1]);
        if t <= t1 {
            let f = (t - t0) / (t1 - t0);
            let mix = |a: u8, b: u8| (a as f64 + f * (b as f64 - a as f64)).round() as u8;
            return Color32::from_rgb(mix(c0[0], c1[0]), mix(c0[1], c1[1]), mix(c0[2], c1[2]));
        }
    }
    let c = STOPS[4].1;
    Color32::from_rgb(c[0], c[1], c[2])
}

/// Numbers as people read them.
pub use idict::value::format_number as fmt_num;
