//! A replay's timeline: where the replay is in its recording, with the
//! recorded control actions and applied writes as marks. Dragging or
//! clicking it seeks (the replay is rewound for a seek back); hovering a
//! mark says what happened there.

use crate::model::RunModel;
use crate::net::Command;
use egui::{Color32, RichText, Stroke};
use idict::{MarkKind, SeekTo};
use std::time::{Duration, Instant};

/// Seeks sent at most this often while dragging (each one moves the
/// replay; the last one, on release, always goes).
const SEEK_EVERY: Duration = Duration::from_millis(120);

/// The colour of a mark of each kind, on the timeline and on the plots.
pub fn mark_color(kind: MarkKind) -> Color32 {
    match kind {
        MarkKind::Control => Color32::from_rgb(230, 120, 40),
        MarkKind::Write => Color32::from_rgb(170, 90, 220),
    }
}

#[derive(Default)]
pub struct TimelinePanel {
    /// Where the user put the handle, not yet sent (or still dragged).
    want: Option<u64>,
    /// The last seek sent, when, and the version shown then: the handle
    /// stays there until the replay moves (or a moment passes), instead of
    /// jumping back.
    sent: Option<(u64, Instant, u64)>,
    /// The slider's rail as last drawn (where the marks are).
    rail: Option<egui::Rect>,
    /// A mark pressed on: the slider's own move to the pixel under the
    /// pointer is ignored, and the release goes to the mark's version.
    pressed_mark: Option<u64>,
}

impl TimelinePanel {
    pub fn ui(&mut self, ui: &mut egui::Ui, m: &RunModel) -> Vec<Command> {
        let mut commands = Vec::new();
        let Some(t) = &m.replay else {
            return commands;
        };
        let (first, last) = (t.first_version, t.last_version.max(t.first_version));
        let arriving = self
            .sent
            .filter(|(v, when, from)| {
                *v != m.version && *from == m.version && when.elapsed() < Duration::from_secs(2)
            })
            .map(|(v, _, _)| v);
        let shown = self.want.or(arriving).unwrap_or(m.version);
        let seek = |panel: &mut Self, v: u64, commands: &mut Vec<Command>| {
            panel.sent = Some((v, Instant::now(), m.version));
            commands.push(Command::Seek(SeekTo::Version(v)));
        };
        ui.horizontal(|ui| {
            let mono = |s: String| RichText::new(s).monospace();
            ui.label(mono(format!("v{shown:<9}")))
                .on_hover_text("The recorded version shown");
            let enabled = m.can_control();
            if ui
                .add_enabled(enabled, egui::Button::new("Start"))
                .on_hover_text("Back to the start of the recording")
                .clicked()
            {
                self.want = None;
                seek(self, first, &mut commands);
            }
            // Room for the slider's label, End and the span after it.
            let right = 340.0;
            let mut at = shown.clamp(first, last);
            let width = (ui.available_width() - right).max(80.0);
            // A press on a mark (found on the rail as last drawn, before the
            // slider takes the press as a drag to the pixel's version).
            let pointer = ui.ctx().pointer_interact_pos();
            if enabled && ui.input(|i| i.pointer.primary_pressed()) {
                self.pressed_mark = self
                    .rail
                    .zip(pointer)
                    .and_then(|(rail, p)| mark_under(&rail, p, &t.marks, first, last));
            }
            let response = ui
                .scope(|ui| {
                    ui.spacing_mut().slider_width = width;
                    ui.add_enabled(
                        enabled,
                        egui::Slider::new(&mut at, first..=last)
                            .show_value(false)
                            .text("Replay position"),
                    )
                })
                .inner;
            // The rail alone: the slider's response also spans its label,
            // and marks spread over both sat right of their versions (a
            // write at v203 drawn where the handle reads v237).
            let rail = egui::Rect::from_min_size(
                response.rect.min,
                egui::vec2(width, response.rect.height()),
            );
            self.rail = Some(rail);
            self.draw_marks(ui, &rail, m, first, last);
            if let Some(v) = self.pressed_mark {
                // Exactly the mark's version, once, on release.
                self.want = None;
                if !ui.input(|i| i.pointer.primary_down()) {
                    self.pressed_mark = None;
                    seek(self, v, &mut commands);
                }
            } else if response.changed() {
                self.want = Some(at);
            }
            // Sent at most every SEEK_EVERY (a drag, a held arrow key);
            // where the user stops is always sent, unless already shown.
            if let Some(v) = self.want {
                let due = self
                    .sent
                    .is_none_or(|(_, when, _)| when.elapsed() >= SEEK_EVERY);
                if due {
                    let new_place = self.sent.is_none_or(|(s, _, _)| s != v);
                    if response.dragged() {
                        // Held still on a running replay: no seek back
                        // every moment, only where the handle moves.
                        if new_place {
                            seek(self, v, &mut commands);
                        }
                    } else {
                        if new_place || v != m.version {
                            seek(self, v, &mut commands);
                        }
                        self.want = None;
                    }
                } else {
                    ui.ctx().request_repaint_after(SEEK_EVERY);
                }
            }
            if ui
                .add_enabled(enabled, egui::Button::new("End"))
                .on_hover_text("To the end of the recording")
                .clicked()
            {
                self.want = None;
                seek(self, last, &mut commands);
            }
            let span = (t.last_time - t.first_time).max(0.0);
            ui.label(mono(format!(
                "of v{last} · {:.1} s",
                (m.time - t.first_time).clamp(0.0, span)
            )))
            .on_hover_text(format!(
                "The recording spans v{first} to v{last}, {} s{}{}",
                crate::views::fmt_num(span),
                if t.complete {
                    ""
                } else {
                    " (it stops before the run's end)"
                },
                if t.marks_left_off > 0 {
                    format!(
                        "; {} marks, {} of them shown",
                        t.marks.len() as u64 + t.marks_left_off,
                        t.marks.len()
                    )
                } else {
                    String::new()
                }
            ));
        });
        commands
    }

    /// Ticks over the slider's rail for the marks; the ones under the
    /// pointer say what they were (a press on one goes to its version).
    fn draw_marks(&self, ui: &egui::Ui, rail: &egui::Rect, m: &RunModel, first: u64, last: u64) {
        let Some(t) = m.replay.as_ref() else { return };
        let painter = ui.painter();
        let pointer = ui.ctx().pointer_hover_pos();
        let mut hovered = Vec::new();
        for mark in &t.marks {
            let x = mark_x(rail, first, last, mark.version);
            let color = mark_color(mark.kind);
            painter.line_segment(
                [
                    egui::pos2(x, rail.top() - 2.0),
                    egui::pos2(x, rail.top() + rail.height() * 0.35),
                ],
                Stroke::new(2.0, color),
            );
            if pointer.is_some_and(|p| near_mark(rail, p, x)) {
                hovered.push(format!("v{}: {}", mark.version, mark.label));
            }
        }
        if !hovered.is_empty() {
            let id = ui.scope_id().with("timeline-mark");
            egui::Tooltip::always_open(ui.ctx().clone(), ui.layer_id(), id, *rail).show(|ui| {
                for h in &hovered {
                    ui.label(h);
                }
                ui.label(RichText::new("click: go to this version").weak());
            });
        }
    }
}

/// Whether `p` is on the mark drawn at `x` over `rail`.
fn near_mark(rail: &egui::Rect, p: egui::Pos2, x: f32) -> bool {
    (p.x - x).abs() <= 4.0 && (rail.top() - 6.0..=rail.bottom()).contains(&p.y)
}

/// The version of the mark under `p` (the nearest, if several are).
fn mark_under(
    rail: &egui::Rect,
    p: egui::Pos2,
    marks: &[idict::TimelineMark],
    first: u64,
    last: u64,
) -> Option<u64> {
    marks
        .iter()
        .map(|m| (m.version, mark_x(rail, first, last, m.version)))
        .filter(|(_, x)| near_mark(rail, p, *x))
        .min_by(|a, b| (a.1 - p.x).abs().total_cmp(&(b.1 - p.x).abs()))
        .map(|(v, _)| v)
}

/// Where version `v` sits on a slider `rail` over `first..=last`: where the
/// handle's centre is when the slider reads `v` (a circle that travels the
/// rail inset by its radius, the thickness / 2.5, as egui draws it).
pub fn mark_x(rail: &egui::Rect, first: u64, last: u64, v: u64) -> f32 {
    let span = (last.saturating_sub(first)).max(1) as f32;
    let inset = rail.height() / 2.5;
    let (x0, x1) = (rail.left() + inset, rail.right() - inset);
    x0 + (x1 - x0) * (v.clamp(first, last) - first) as f32 / span
}
