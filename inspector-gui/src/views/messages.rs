//! The run's message log, newest at the bottom, and where its curves were
//! thinned before they reached us.

use crate::model::RunModel;
use egui::RichText;
use idict::Level;

pub struct MessagesPanel;

impl MessagesPanel {
    pub fn ui(&mut self, ui: &mut egui::Ui, m: &RunModel) {
        ui.label(RichText::new(format!("Messages ({})", m.messages.len())).strong());
        egui::ScrollArea::vertical()
            .stick_to_bottom(true)
            .auto_shrink([false, false])
            .show(ui, |ui| {
                for msg in &m.messages {
                    let color = match msg.level {
                        Level::Error => egui::Color32::from_rgb(220, 70, 70),
                        Level::Warn => egui::Color32::from_rgb(220, 170, 40),
                        Level::Info => ui.visuals().text_color(),
                        Level::Debug => egui::Color32::GRAY,
                    };
                    ui.label(
                        RichText::new(format!(
                            "[{:>8.2}s v{}] {}  {}",
                            msg.time, msg.version, msg.level, msg.text
                        ))
                        .monospace()
                        .color(color),
                    );
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
