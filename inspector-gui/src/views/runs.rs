//! The side list: open runs with their status, the local runs to open with a
//! click, a form to connect to an address with a token, and recent runs.

use crate::model::{Connection, RunModel};
use crate::net::OpenSpec;
use egui::RichText;
use idict::runfile::FoundRun;

/// What the user asked for in the side list.
#[derive(Debug, Clone, PartialEq)]
pub enum RunsAction {
    Open(OpenSpec),
    Close(usize),
}

#[derive(Default)]
pub struct RunsPanel {
    address: String,
    token: String,
}

impl RunsPanel {
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        open: &[&RunModel],
        selected: &mut usize,
        local: &[FoundRun],
        recent: &[String],
    ) -> Option<RunsAction> {
        let mut action = None;
        ui.heading("Runs");
        if open.is_empty() {
            ui.label(RichText::new("No run open.").weak());
        }
        for (i, m) in open.iter().enumerate() {
            ui.horizontal(|ui| {
                // Close first, on the right: a long name is cut short
                // rather than widening the list with every run opened.
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    if ui
                        .small_button("x")
                        .on_hover_text("Close this run's view")
                        .clicked()
                    {
                        action = Some(RunsAction::Close(i));
                    }
                    ui.with_layout(egui::Layout::left_to_right(egui::Align::Center), |ui| {
                        let label = m.list_label();
                        let button = egui::Button::selectable(*selected == i, label);
                        // The description is made only when shown.
                        if ui
                            .add(button.truncate())
                            .on_hover_ui(|ui| {
                                ui.label(m.describe());
                            })
                            .clicked()
                        {
                            *selected = i;
                        }
                    });
                });
            });
            ui.horizontal(|ui| {
                ui.add_space(12.0);
                super::known_status(ui, m);
                match &m.connection {
                    Connection::Disconnected { .. } => {
                        ui.label(RichText::new("offline").color(egui::Color32::GRAY));
                    }
                    Connection::Connecting => {
                        ui.label(RichText::new("connecting").weak());
                    }
                    _ => {}
                }
            });
        }
        ui.separator();
        ui.label(RichText::new("On this machine").strong());
        let here = &idict::runfile::host_name();
        let mut any = false;
        for r in local {
            any = true;
            let is_open = open
                .iter()
                .any(|m| m.address == r.run.address || m.target == r.run.address);
            ui.horizontal(|ui| {
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    let button = ui.add_enabled(!is_open, egui::Button::new("Open"));
                    if button.clicked() {
                        action = Some(RunsAction::Open(OpenSpec {
                            target: r.path.display().to_string(),
                            token: None,
                        }));
                    }
                    ui.with_layout(egui::Layout::left_to_right(egui::Align::Center), |ui| {
                        let mut label = format!("{} ({})", r.run.name, r.run.pid);
                        if r.run.host != *here {
                            // A shared runs directory: say where it runs.
                            label.push_str(&format!(" on {}", r.run.host));
                        }
                        ui.add(egui::Label::new(label.clone()).truncate())
                            .on_hover_text(label);
                    });
                });
            });
        }
        if !any {
            ui.label(RichText::new("none found").weak());
        }
        ui.separator();
        ui.label(RichText::new("Connect to an address").strong())
            .on_hover_text(
                "Or open a recording: its path (FILE.idrec), or drop the file on the window",
            );
        let address_label = ui.label("Address");
        ui.add(
            egui::TextEdit::singleline(&mut self.address)
                .hint_text("host:port, ssh://host/RUN or FILE.idrec")
                .desired_width(f32::INFINITY),
        )
        .labelled_by(address_label.id);
        let token_label = ui.label("Token");
        ui.add(
            egui::TextEdit::singleline(&mut self.token)
                .hint_text("from the run file")
                .password(true)
                .desired_width(f32::INFINITY),
        )
        .labelled_by(token_label.id);
        let ready = !self.address.trim().is_empty();
        if ui
            .add_enabled(ready, egui::Button::new("Connect"))
            .clicked()
        {
            action = Some(RunsAction::Open(OpenSpec {
                target: self.address.trim().to_string(),
                token: Some(self.token.trim().to_string()).filter(|t| !t.is_empty()),
            }));
        }
        if !recent.is_empty() {
            ui.separator();
            ui.label(RichText::new("Recent").strong());
            for r in recent {
                if ui.link(r).on_hover_text("Open again").clicked() {
                    action = Some(RunsAction::Open(OpenSpec {
                        target: r.clone(),
                        token: None,
                    }));
                }
            }
        }
        action
    }
}
