//! The run's message log, newest at the bottom, and where its curves were
//! thinned before they reached us.

use crate::model::RunModel;
use egui::RichText;
use idict::Level;

pub struct MessagesPanel;

impl MessagesPanel {
    /// The log; folded (`open` false), its header and newest line only.
    pub fn ui(&mut self, ui: &mut egui::Ui, m: &RunModel, open: &mut bool) {
        // One clock for every line, said: a replay's lines are on the
        // recorded run's clock, as its timeline and header are.
        let clock = match m.replay {
            Some(_) => "t = the recorded run's seconds since it started, v = its version",
            None => "t = the run's seconds since it started, v = its version",
        };
        ui.horizontal(|ui| {
            ui.toggle_value(open, format!("Messages ({})", m.messages.len()))
                .on_hover_text(if *open {
                    "Fold the messages to their newest line"
                } else {
                    "Show the messages"
                });
            if *open {
                ui.label(RichText::new(clock).weak());
            } else if let Some(msg) = m.messages.back() {
                ui.add(egui::Label::new(line(ui, msg)).truncate());
            }
        });
        if !*open {
            return;
        }
        egui::ScrollArea::vertical()
            .stick_to_bottom(true)
            .auto_shrink([false, false])
            .show(ui, |ui| {
                for msg in &m.messages {
                    ui.label(line(ui, msg));
                }
                for t in &m.thinned {
                    ui.label(
                        RichText::new(format!("[thinned] {}", t.describe()))
                            .monospace()
                            .color(egui::Color32::from_rgb(220, 170, 40)),
                    );
                }
            });
    }
}

/// One message as a line: its time and version, level and text, coloured
/// by level.
fn line(ui: &egui::Ui, msg: &idict::LogMessage) -> RichText {
    let color = match msg.level {
        Level::Error => egui::Color32::from_rgb(220, 70, 70),
        Level::Warn => egui::Color32::from_rgb(220, 170, 40),
        Level::Info => ui.visuals().text_color(),
        Level::Debug => egui::Color32::GRAY,
    };
    RichText::new(format!(
        "[t={:.2}s v{}] {}  {}",
        msg.time, msg.version, msg.level, msg.text
    ))
    .monospace()
    .color(color)
}
