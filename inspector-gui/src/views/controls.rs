//! The run's header: identity, status badge, version, rate, watchers and the
//! connection (stale since when), and the controls: Pause/Resume (space),
//! Step N, Pause at step N, Terminate with a confirmation.

use crate::model::{Connection, RunModel};
use crate::net::Command;
use egui::RichText;
use idict::{Role, RunState};

pub struct ControlsPanel {
    pub step_n: u64,
    /// The step "Pause at" holds at; 0 until the run's step is known.
    pub pause_at: u64,
    confirm_terminate: bool,
}

impl Default for ControlsPanel {
    fn default() -> Self {
        ControlsPanel {
            step_n: 1,
            pause_at: 0,
            confirm_terminate: false,
        }
    }
}

/// Why the controls are greyed out, if they are.
pub fn why_no_control(m: &RunModel) -> Option<&'static str> {
    if m.ended() {
        Some("The run has ended")
    } else if m.connection != Connection::Connected {
        Some("Not connected to the run")
    } else if m.role == Some(Role::Observer) {
        Some("Needs the controller token: this token is observer-only")
    } else if m.role.is_none() {
        Some("Waiting for the run's details")
    } else {
        None
    }
}

impl ControlsPanel {
    /// Draws the header; `extra` adds to the end of its second line.
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        m: &RunModel,
        extra: impl FnOnce(&mut egui::Ui),
    ) -> Option<Command> {
        let mut command = None;
        // The numbers sit in fixed-width monospace fields, so nothing moves
        // as they grow (the line used to wrap when "t = ... s" did).
        let field = |ui: &mut egui::Ui, text: String| {
            ui.add(egui::Label::new(RichText::new(text).monospace()).extend());
        };
        ui.horizontal_wrapped(|ui| {
            ui.add(egui::Label::new(RichText::new(&m.name).heading()).truncate())
                .on_hover_text(&m.name);
            let ended = m.ended();
            super::known_status(ui, m);
            ui.separator();
            field(ui, format!("version {:<8}", m.version));
            field(ui, format!("t = {:<11}", format!("{:.3} s", m.time)));
            // The rate only while it is known to be current and the run
            // runs: a paused run's (or one stepped while paused) read as if
            // it were still going (issue 30: "40.0 updates/s" while PAUSED).
            let running = m
                .status
                .as_ref()
                .is_some_and(|s| s.state == RunState::Running);
            if m.connection == Connection::Connected && !ended && running {
                field(ui, format!("{:>7.1} updates/s", m.updates_per_second));
            }
        });
        ui.horizontal_wrapped(|ui| {
            match &m.connection {
                Connection::Connected => {
                    ui.label(
                        RichText::new("connected").color(egui::Color32::from_rgb(60, 170, 90)),
                    );
                }
                Connection::Connecting => {
                    ui.label(RichText::new("connecting...").weak());
                }
                Connection::Ended => {
                    ui.label(RichText::new("ended").weak());
                }
                Connection::Disconnected {
                    since,
                    error,
                    retry_at,
                    attempts,
                } => {
                    ui.label(
                        RichText::new(format!(
                            "STALE: disconnected {:.0} s ago",
                            since.elapsed().as_secs_f64()
                        ))
                        .color(egui::Color32::from_rgb(230, 120, 40)),
                    )
                    .on_hover_text(error);
                    // What reconnecting is doing, and why it has not worked.
                    let next = retry_at.saturating_duration_since(std::time::Instant::now());
                    let doing = if next.is_zero() {
                        "reconnecting...".to_string()
                    } else {
                        format!("retrying in {:.0} s", next.as_secs_f64().ceil())
                    };
                    let why = error.lines().next().unwrap_or_default();
                    ui.add(
                        egui::Label::new(
                            RichText::new(format!("{doing} (attempt {attempts}): {why}")).weak(),
                        )
                        .truncate(),
                    )
                    .on_hover_text(error);
                    // Tick the "ago" while disconnected.
                    ui.ctx()
                        .request_repaint_after(std::time::Duration::from_secs(1));
                }
            }
            if !m.address.is_empty() {
                ui.label(
                    RichText::new(format!("{} · pid {} on {}", m.address, m.pid, m.host)).weak(),
                );
            }
            if m.ranks > 1 {
                ui.label(RichText::new(format!("· {} ranks", m.ranks)).strong())
                    .on_hover_text("An MPI job: rank 0 serves it; every rank pauses, steps and takes writes at the same step");
            }
            if let Some(file) = &m.replay_of {
                ui.add(
                    egui::Label::new(
                        RichText::new(format!("· replay of {file}"))
                            .color(egui::Color32::from_rgb(90, 140, 220)),
                    )
                    .truncate(),
                )
                .on_hover_text("A recording, replayed: Resume or Step move through it");
            }
            if let Some(was) = m.followed_from {
                ui.label(
                    RichText::new(format!("· started again (was pid {was})"))
                        .color(egui::Color32::from_rgb(220, 170, 40)),
                )
                .on_hover_text("The run this view showed was gone; this one took its name");
            }
            if m.connection == Connection::Connected && !m.ended() {
                let s = if m.watchers == 1 { "" } else { "s" };
                ui.label(RichText::new(format!("· {} watcher{s}", m.watchers)).weak());
            }
            ui.separator();
            extra(ui);
        });
        let why = why_no_control(m);
        let enabled = why.is_none();
        let paused = m
            .status
            .as_ref()
            .is_some_and(|s| s.state == RunState::Paused);
        ui.horizontal(|ui| {
            let (label, cmd) = if paused {
                ("Resume", Command::Resume)
            } else {
                ("Pause", Command::Pause)
            };
            let toggle = ui
                .add_enabled(enabled, egui::Button::new(label))
                .on_hover_text("Space")
                .on_disabled_hover_text(why.unwrap_or_default());
            if toggle.clicked() {
                command = Some(cmd.clone());
            }
            let space =
                !ui.ctx().text_edit_focused() && ui.input(|i| i.key_pressed(egui::Key::Space));
            if space && enabled {
                command = Some(cmd);
            }
            ui.separator();
            let step = ui
                .add_enabled(enabled, egui::Button::new("Step"))
                .on_hover_text("Let N iterations pass, then hold")
                .on_disabled_hover_text(why.unwrap_or_default());
            if step.clicked() {
                command = Some(Command::Step(self.step_n.max(1)));
            }
            let n_label = ui.label("N");
            ui.add_enabled(
                enabled,
                egui::DragValue::new(&mut self.step_n).range(1..=1_000_000),
            )
            .labelled_by(n_label.id);
            ui.separator();
            let now = m.status.as_ref().map_or(0, |s| s.step);
            if self.pause_at <= now {
                // A step still ahead: the run's, rounded up past the next hundred.
                self.pause_at = (now / 100 + 2) * 100;
            }
            let pause_at = ui
                .add_enabled(enabled, egui::Button::new("Pause at"))
                .on_hover_text("Hold when the run has done this many steps")
                .on_disabled_hover_text(why.unwrap_or_default());
            if pause_at.clicked() {
                command = Some(Command::PauseAt(self.pause_at));
            }
            let at_label = ui.label("step");
            ui.add_enabled(
                enabled,
                egui::DragValue::new(&mut self.pause_at).range(now..=u64::MAX),
            )
            .labelled_by(at_label.id);
            ui.separator();
            let terminate = ui
                .add_enabled(
                    enabled,
                    egui::Button::new(
                        RichText::new("Terminate").color(egui::Color32::from_rgb(220, 70, 70)),
                    ),
                )
                .on_disabled_hover_text(why.unwrap_or_default());
            if terminate.clicked() {
                self.confirm_terminate = true;
            }
            // A finished run has nothing to reconnect to; a lost one may
            // come back.
            let ended = m.ended();
            if matches!(m.connection, Connection::Disconnected { .. })
                && !ended
                && ui.button("Reconnect").clicked()
            {
                command = Some(Command::Reconnect);
            }
            if let Some(e) = &m.error {
                ui.label(RichText::new(e).color(egui::Color32::from_rgb(220, 70, 70)));
            }
        });
        if self.confirm_terminate {
            let modal = egui::Modal::new(ui.scope_id().with(("confirm-terminate", &m.target)))
                .show(ui.ctx(), |ui| {
                    ui.heading(format!("Terminate {}?", m.name));
                    ui.label(
                        "The computation will finish at its next wait(). This cannot be undone.",
                    );
                    ui.horizontal(|ui| {
                        if ui.button("Terminate run").clicked() {
                            command = Some(Command::Terminate);
                            self.confirm_terminate = false;
                        }
                        if ui.button("Cancel").clicked() {
                            self.confirm_terminate = false;
                        }
                    });
                });
            if modal.should_close() {
                self.confirm_terminate = false;
            }
        }
        command
    }
}
