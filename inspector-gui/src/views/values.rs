//! The values: steering editors for the writable keys (checked before they
//! are sent, pending until applied, the run's refusal shown), a filterable
//! tree of every key that highlights what just changed, and a viewer for the
//! selected array (a line plot for 1-D, a heat map with a colour scale for
//! 2-D). Arrays come from the network in any shape, so a heat map is
//! downsampled to the GPU's largest texture side before it is uploaded.

use super::{colormap, fmt_num};
use crate::model::RunModel;
use crate::net::Command;
use egui::{Color32, RichText};
use idict::value::ArrayStats;
use idict::{NdArray, Value, ValueKind, WritableInfo};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a changed value stays highlighted.
const HIGHLIGHT: Duration = Duration::from_millis(800);

#[derive(Default)]
pub struct ValuesPanel {
    pub filter: String,
    /// The array shown in the viewer.
    pub selected_array: Option<String>,
    editors: HashMap<String, String>,
    local_errors: HashMap<String, String>,
    /// What the viewer derived from the selected array.
    derived: Option<Derived>,
    heatmap: Option<HeatmapTexture>,
    /// How many times a 1-D array's plot points were built.
    line_builds: u64,
    /// The keys the list shows, in order.
    shown: Option<ShownKeys>,
    /// The key set a field to show was last looked for in.
    looked_for_field: Option<(u64, u64)>,
}

/// The keys the values list shows, kept until the run's keys or the filter
/// change (filtering 100,000 keys each frame took milliseconds).
#[derive(Default)]
struct ShownKeys {
    /// The model's (generation, key-set generation) they were listed at.
    made_from: (u64, u64),
    filter: String,
    /// `None` when no filter is typed: every key, read from the model as
    /// the rows on screen need them (no copy of every name).
    keys: Option<Vec<String>>,
    count: usize,
}

/// An MPI job's per-rank companions show on their key's row, not as rows
/// of their own.
fn is_row(key: &str) -> bool {
    !key.ends_with(RANKS_SUFFIX) && !key.ends_with(BLOCKS_SUFFIX)
}

impl ShownKeys {
    /// The keys `filter` shows; `before`, the list for an earlier filter:
    /// when the new one only adds to it (the user typing on), the earlier
    /// list is narrowed instead of every key searched again.
    fn of(m: &RunModel, filter: &str, before: Option<ShownKeys>) -> Self {
        let made_from = (m.generation, m.key_set_generation);
        let needle = filter.trim().to_lowercase();
        let keys = if needle.is_empty() {
            None
        } else {
            let narrowed = before.filter(|b| {
                b.made_from == made_from && needle.contains(&b.filter.trim().to_lowercase())
            });
            Some(match narrowed.and_then(|b| b.keys) {
                Some(mut keys) => {
                    keys.retain(|k| super::contains_folded(k, &needle));
                    keys
                }
                None => (m.values.keys())
                    .filter(|k| is_row(k) && super::contains_folded(k, &needle))
                    .cloned()
                    .collect(),
            })
        };
        let count = match &keys {
            Some(k) => k.len(),
            None => m.values.keys().filter(|k| is_row(k)).count(),
        };
        ShownKeys {
            made_from,
            filter: filter.to_string(),
            keys,
            count,
        }
    }

    /// The keys of rows `rows`.
    fn rows<'a>(&'a self, m: &'a RunModel, rows: std::ops::Range<usize>) -> Vec<&'a str> {
        match &self.keys {
            Some(keys) => keys[rows.start.min(keys.len())..rows.end.min(keys.len())]
                .iter()
                .map(String::as_str)
                .collect(),
            None => (m.values.keys())
                .filter(|k| is_row(k))
                .skip(rows.start)
                .take(rows.len())
                .map(String::as_str)
                .collect(),
        }
    }
}

/// The (generation, version) of a value: what a view derived from it is
/// keyed on, so it is rebuilt when the value changes and not every frame.
/// (A buffer's address would not do: a new array can reuse a freed one's.)
type MadeFrom = (u64, u64);

/// The viewer's title and, for a 1-D array, its plot points, kept until the
/// array changes: both walk every element.
struct Derived {
    key: String,
    made_from: MadeFrom,
    title: String,
    points: Vec<egui_plot::PlotPoint>,
}

struct HeatmapTexture {
    key: String,
    made_from: MadeFrom,
    texture: egui::TextureHandle,
    range: (f64, f64),
}

/// Checks an edited value against the key's rule before it is sent.
pub fn parse_for(spec: &WritableInfo, text: &str) -> Result<Value, String> {
    let text = text.trim();
    let value = match spec.kind {
        ValueKind::Float => Value::Float(
            text.parse::<f64>()
                .map_err(|_| format!("'{text}' is not a number"))?,
        ),
        ValueKind::Int => Value::Int(
            text.parse::<i64>()
                .map_err(|_| format!("'{text}' is not a whole number"))?,
        ),
        ValueKind::Bool => match text {
            "true" | "1" | "yes" | "on" => Value::Bool(true),
            "false" | "0" | "no" | "off" => Value::Bool(false),
            _ => return Err(format!("'{text}' is not true or false")),
        },
        ValueKind::Str => Value::Str(text.to_string()),
        other => {
            let json: serde_json::Value = serde_json::from_str(text)
                .map_err(|e| format!("not valid JSON for a {other}: {e}"))?;
            Value::from(json)
        }
    };
    if let Some(x) = value.as_f64() {
        if let Some(min) = spec.min.filter(|&m| x < m) {
            return Err(format!("below the minimum {}", fmt_num(min)));
        }
        if let Some(max) = spec.max.filter(|&m| x > m) {
            return Err(format!("above the maximum {}", fmt_num(max)));
        }
    }
    Ok(value)
}

/// A value in a line. An array's summary uses `stats` when the model has
/// them (computed once per change), else walks the array.
fn short(v: &Value, stats: Option<&ArrayStats>) -> String {
    match v {
        Value::Float(x) => fmt_num(*x),
        Value::Array(a) => {
            let shape: Vec<String> = a.shape().iter().map(|d| d.to_string()).collect();
            match stats.copied().or_else(|| a.stats()) {
                Some(s) => format!(
                    "{}[{}]  min {}  max {}  mean {}",
                    a.dtype(),
                    shape.join("×"),
                    fmt_num(s.min),
                    fmt_num(s.max),
                    fmt_num(s.mean)
                ),
                None => format!("{}[{}]", a.dtype(), shape.join("×")),
            }
        }
        Value::List(l) => format!("list of {}", l.len()),
        Value::Map(m) => format!("map of {}", m.len()),
        other => other.to_string(),
    }
}

impl ValuesPanel {
    /// How many times the plot points of a 1-D array were built (once per
    /// version of the array shown, not once per frame).
    pub fn line_builds(&self) -> u64 {
        self.line_builds
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, m: &RunModel) -> Option<Command> {
        let mut command = None;
        let can_write = super::controls::why_no_control(m);
        let writable: Vec<_> = m
            .keys
            .values()
            .filter_map(|k| k.writable.as_ref().map(|w| (k.name.clone(), w.clone())))
            .collect();
        if !writable.is_empty() {
            ui.label(RichText::new("Steering").strong());
            // One line per key (name, field, Set) and the note under it,
            // wrapped: a long note in a grid column pushed the Set buttons
            // out of a narrow panel.
            let name_width = writable
                .iter()
                .map(|(k, _)| k.len())
                .max()
                .unwrap_or(0)
                .clamp(4, 16) as f32
                * 8.0;
            {
                for (key, spec) in &writable {
                    let current = m
                        .values
                        .get(key)
                        .map(|v| short(v, m.array_stats.get(key)))
                        .unwrap_or_default();
                    ui.horizontal(|ui| {
                        let name = ui
                            .add_sized(
                                [name_width, 18.0],
                                egui::Label::new(key.as_str()).truncate(),
                            )
                            .on_hover_text(&spec.description);
                        let edit = self
                            .editors
                            .entry(key.clone())
                            .or_insert_with(|| current.clone());
                        let field = ui
                            .add_enabled(
                                can_write.is_none(),
                                egui::TextEdit::singleline(edit)
                                    .desired_width(90.0)
                                    .hint_text(&current),
                            )
                            .labelled_by(name.id)
                            .on_hover_text(&spec.description);
                        let send = ui
                            .add_enabled(
                                can_write.is_none(),
                                egui::Button::new(format!("Set {key}")),
                            )
                            .on_disabled_hover_text(can_write.unwrap_or_default());
                        let enter =
                            field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
                        if send.clicked() || enter {
                            match parse_for(spec, edit) {
                                Ok(v) => {
                                    self.local_errors.remove(key);
                                    command = Some(Command::Set(key.clone(), v));
                                }
                                Err(e) => {
                                    self.local_errors.insert(key.clone(), e);
                                }
                            }
                        }
                    });
                    // A refusal shows at once, above a write still pending
                    // (it hid behind one until the run resumed).
                    let pending = m.pending.values().any(|p| &p.key == key);
                    let refused = self.local_errors.get(key).or(m.write_errors.get(key));
                    let mut notes = Vec::new();
                    if let Some(e) = refused {
                        notes.push(RichText::new(e).color(Color32::from_rgb(220, 70, 70)));
                    }
                    if pending {
                        notes.push(
                            RichText::new("pending: applied at the run's next wait()")
                                .color(Color32::from_rgb(220, 170, 40)),
                        );
                    }
                    if notes.is_empty() {
                        notes.push(
                            RichText::new(format!("now {current}  ({})", spec.description)).weak(),
                        );
                    }
                    for note in notes {
                        ui.horizontal(|ui| {
                            ui.add_space(name_width + ui.spacing().item_spacing.x);
                            ui.add(egui::Label::new(note).wrap());
                        });
                    }
                }
            }
            ui.separator();
        }
        ui.horizontal(|ui| {
            let l = ui.label("Filter");
            ui.add(egui::TextEdit::singleline(&mut self.filter).hint_text("key prefix or part"))
                .labelled_by(l.id);
        });
        // A field to show when none is chosen: looked for when the keys
        // change, not every frame (a walk over every key).
        let keys_now = (m.generation, m.key_set_generation);
        if self.selected_array.is_none() && self.looked_for_field != Some(keys_now) {
            self.looked_for_field = Some(keys_now);
            self.selected_array = m
                .values
                .iter()
                .find(|(_, v)| v.as_array().is_some_and(|a| a.shape().len() == 2))
                .map(|(k, _)| k.clone());
        }
        let now = Instant::now();
        let mut fading = false;
        // The list takes the room the array view below does not need (it
        // stopped at half the panel, with empty space under it).
        let shows_array = self
            .selected_array
            .as_ref()
            .is_some_and(|k| m.values.get(k).and_then(Value::as_array).is_some());
        let room = ui.available_height();
        let list_height = if shows_array {
            (room - 200.0).max(room * 0.5)
        } else {
            room
        };
        let made_from = (m.generation, m.key_set_generation);
        let stale = self
            .shown
            .as_ref()
            .is_none_or(|s| s.made_from != made_from || s.filter != self.filter);
        if stale {
            self.shown = Some(ShownKeys::of(m, &self.filter, self.shown.take()));
        }
        let shown = self.shown.take().unwrap_or_default();
        // Only the rows on screen are laid out: a run of 100,000 keys took
        // a frame of its own per key otherwise.
        let row_height = ui.spacing().interact_size.y;
        egui::ScrollArea::vertical()
            .id_salt("values-tree")
            .max_height(list_height)
            .auto_shrink([false, true])
            .show_rows(ui, row_height, shown.count, |ui, rows| {
                egui::Grid::new("values")
                    .num_columns(2)
                    .striped(true)
                    .show(ui, |ui| {
                        for key in shown.rows(m, rows) {
                            let Some(value) = m.values.get(key) else {
                                continue;
                            };
                            let recent = m
                                .changed_at
                                .get(key)
                                .is_some_and(|t| now.duration_since(*t) < HIGHLIGHT);
                            fading |= recent;
                            let name = if recent {
                                RichText::new(key)
                                    .strong()
                                    .color(Color32::from_rgb(240, 200, 80))
                            } else {
                                RichText::new(key)
                            };
                            ui.label(name);
                            let spread = m
                                .values
                                .get(&format!("{key}{RANKS_SUFFIX}"))
                                .and_then(Value::as_array)
                                .map(|a| a.to_f64_vec());
                            match spread {
                                Some(ranks) => {
                                    ui.horizontal(|ui| {
                                        self.value_cell(ui, key, value, m.array_stats.get(key), 0);
                                        ui.label(RichText::new(spread_text(&ranks)).weak())
                                            .on_hover_text(ranks_text(&ranks));
                                    });
                                }
                                None => self.value_cell(ui, key, value, m.array_stats.get(key), 0),
                            }
                            ui.end_row();
                        }
                    });
            });
        self.shown = Some(shown);
        if fading {
            // The fade is an animation: paced like data frames when drawing
            // is costly (software GL), never faster than 10 a second.
            let next = crate::net::data_frame().max(Duration::from_millis(100));
            ui.ctx().request_repaint_after(next);
        }
        if let Some(key) = self.selected_array.clone()
            && let Some(a) = m.values.get(&key).and_then(Value::as_array)
        {
            ui.separator();
            let made_from = (m.generation, m.key_versions.get(&key).copied().unwrap_or(0));
            self.array_view(ui, &key, a, m.array_stats.get(&key).copied(), made_from);
        }
        command
    }

    fn value_cell(
        &mut self,
        ui: &mut egui::Ui,
        key: &str,
        value: &Value,
        stats: Option<&ArrayStats>,
        depth: usize,
    ) {
        match value {
            Value::Array(_) => {
                let selected = self.selected_array.as_deref() == Some(key);
                if ui
                    .selectable_label(selected, short(value, stats))
                    .on_hover_text("Show this array")
                    .clicked()
                {
                    self.selected_array = Some(key.to_string());
                }
            }
            Value::Map(map) if depth < 8 => {
                egui::CollapsingHeader::new(short(value, None))
                    .id_salt((key, depth))
                    .show(ui, |ui| {
                        egui::Grid::new((key, depth, "map"))
                            .num_columns(2)
                            .show(ui, |ui| {
                                for (k, v) in map {
                                    ui.label(k);
                                    self.value_cell(ui, &format!("{key}.{k}"), v, None, depth + 1);
                                    ui.end_row();
                                }
                            });
                    });
            }
            Value::List(items) if depth < 8 => {
                egui::CollapsingHeader::new(short(value, None))
                    .id_salt((key, depth))
                    .show(ui, |ui| {
                        egui::Grid::new((key, depth, "list"))
                            .num_columns(2)
                            .show(ui, |ui| {
                                for (i, v) in items.iter().enumerate().take(1000) {
                                    ui.label(format!("[{i}]"));
                                    self.value_cell(ui, &format!("{key}[{i}]"), v, None, depth + 1);
                                    ui.end_row();
                                }
                            });
                    });
            }
            other => {
                ui.label(RichText::new(short(other, None)).monospace());
            }
        }
    }

    fn array_view(
        &mut self,
        ui: &mut egui::Ui,
        key: &str,
        a: &NdArray,
        stats: Option<ArrayStats>,
        made_from: MadeFrom,
    ) {
        let fresh = self
            .derived
            .as_ref()
            .is_some_and(|d| d.key == key && d.made_from == made_from);
        if !fresh {
            let points = match a.shape() {
                [n] => {
                    self.line_builds += 1;
                    (0..*n)
                        .filter_map(|i| {
                            a.get_f64(i).map(|y| egui_plot::PlotPoint::new(i as f64, y))
                        })
                        .collect()
                }
                _ => Vec::new(),
            };
            self.derived = Some(Derived {
                key: key.to_string(),
                made_from,
                title: format!("{key}: {}", short(&Value::Array(a.clone()), stats.as_ref())),
                points,
            });
        }
        let Some(derived) = &self.derived else { return };
        ui.label(RichText::new(&derived.title).strong());
        match a.shape() {
            [_] => {
                let points = egui_plot::PlotPoints::Borrowed(&derived.points);
                egui_plot::Plot::new(("array-1d", key))
                    .height(ui.available_height().clamp(120.0, 260.0))
                    .show(ui, |p| p.line(egui_plot::Line::new(key, points)));
            }
            [rows, cols] if *rows > 0 && *cols > 0 => {
                self.heatmap(ui, key, a, (*rows, *cols), stats, made_from);
            }
            _ => {
                ui.label(
                    RichText::new("(shown as a summary: only 1-D and 2-D arrays are drawn)").weak(),
                );
            }
        }
    }

    fn heatmap(
        &mut self,
        ui: &mut egui::Ui,
        key: &str,
        a: &NdArray,
        (rows, cols): (usize, usize),
        stats: Option<ArrayStats>,
        made_from: MadeFrom,
    ) {
        let stale = self
            .heatmap
            .as_ref()
            .is_none_or(|h| h.key != key || h.made_from != made_from);
        if stale {
            let (lo, hi) = stats.map_or((0.0, 1.0), |s| (s.min, s.max));
            // The renderer asserts that no texture side exceeds this.
            let max_side = ui.ctx().input(|i| i.max_texture_side);
            let image = heatmap_image(a, rows, cols, max_side, (lo, hi));
            match &mut self.heatmap {
                Some(h) if h.key == key => {
                    h.texture.set(image, egui::TextureOptions::NEAREST);
                    h.made_from = made_from;
                    h.range = (lo, hi);
                }
                _ => {
                    let texture = ui.ctx().load_texture(
                        format!("heatmap-{key}"),
                        image,
                        egui::TextureOptions::NEAREST,
                    );
                    self.heatmap = Some(HeatmapTexture {
                        key: key.to_string(),
                        made_from,
                        texture,
                        range: (lo, hi),
                    });
                }
            }
        }
        let Some(h) = &self.heatmap else { return };
        // Leave room beside the map for the colour scale and its labels.
        let side = (ui.available_width() - 80.0)
            .min(ui.available_height() - 30.0)
            .clamp(40.0, 420.0);
        let size = heatmap_display_size(rows, cols, side);
        ui.horizontal(|ui| {
            ui.add(
                egui::Image::new(&h.texture)
                    // The size above, not the texture's aspect: a thin
                    // array is drawn as a strip, and a downsampled texture
                    // has its own aspect.
                    .maintain_aspect_ratio(false)
                    .fit_to_exact_size(size)
                    .alt_text(format!("Heat map of {key}")),
            );
            // The colour scale: max at the top, min at the bottom.
            ui.vertical(|ui| {
                // Never wrapped: a narrow panel made a column of digits.
                ui.add(egui::Label::new(fmt_num(h.range.1)).extend());
                let (rect, _) = ui.allocate_exact_size(
                    egui::vec2(14.0, (size.y - 40.0).max(16.0)),
                    egui::Sense::hover(),
                );
                let steps = 32;
                for i in 0..steps {
                    let t = 1.0 - i as f64 / (steps - 1) as f64;
                    let y0 = rect.top() + rect.height() * i as f32 / steps as f32;
                    let y1 = rect.top() + rect.height() * (i + 1) as f32 / steps as f32;
                    ui.painter().rect_filled(
                        egui::Rect::from_x_y_ranges(rect.x_range(), y0..=y1),
                        0.0,
                        colormap(t),
                    );
                }
                ui.add(egui::Label::new(fmt_num(h.range.0)).extend());
            });
        });
    }
}

/// A heat map of a `rows` × `cols` array as an image at most `max_side`
/// pixels a side: each pixel is the mean of the finite elements of its block
/// of the array (NaN, the colour of the minimum, if none), coloured over
/// `range`. Row 0 at the bottom, as on a plot.
pub fn heatmap_image(
    a: &NdArray,
    rows: usize,
    cols: usize,
    max_side: usize,
    (lo, hi): (f64, f64),
) -> egui::ColorImage {
    let max_side = max_side.max(1);
    let (h, w) = (rows.min(max_side), cols.min(max_side));
    // The block a source index falls in, in u64 so that index × side cannot
    // overflow where usize is 32 bits.
    let bin = |i: usize, n: usize, out: usize| (i as u64 * out as u64 / n as u64) as usize;
    let col_bins: Vec<usize> = (0..cols).map(|c| bin(c, cols, w)).collect();
    let mut sums = vec![0.0f64; w * h];
    let mut counts = vec![0u32; w * h];
    for r in 0..rows {
        let row = (h - 1 - bin(r, rows, h)) * w;
        for (c, &col) in col_bins.iter().enumerate() {
            if let Some(v) = a.get_f64(r * cols + c).filter(|v| v.is_finite()) {
                sums[row + col] += v;
                counts[row + col] += 1;
            }
        }
    }
    let span = if hi > lo { hi - lo } else { 1.0 };
    let pixels = sums
        .iter()
        .zip(&counts)
        .map(|(&sum, &n)| {
            let mean = if n > 0 { sum / n as f64 } else { f64::NAN };
            colormap((mean - lo) / span)
        })
        .collect();
    egui::ColorImage::new([w, h], pixels)
}

/// The size to draw a `rows` × `cols` heat map at: the array's aspect within
/// a `side` × `side` box, but never thinner than a strip one can see (a
/// [1, 20000] array would otherwise be a fiftieth of a point tall).
fn heatmap_display_size(rows: usize, cols: usize, side: f32) -> egui::Vec2 {
    const THINNEST: f32 = 16.0;
    let aspect = rows as f32 / cols as f32;
    if aspect <= 1.0 {
        egui::vec2(side, (side * aspect).max(THINNEST))
    } else {
        egui::vec2((side / aspect).max(THINNEST), side)
    }
}

/// Where an MPI job's key to look for each rank's value, and where a
/// stitched field's blocks sit.
const RANKS_SUFFIX: &str = crate::model::RANKS_SUFFIX;
const BLOCKS_SUFFIX: &str = "@blocks";

/// "ranks 0.0320 … 0.1615": the spread of a key over an MPI job's ranks.
fn spread_text(ranks: &[f64]) -> String {
    if ranks.iter().any(|v| v.is_nan()) {
        return format!("{} ranks, a NaN among them", ranks.len());
    }
    let lo = ranks.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = ranks.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if lo == hi {
        format!("same on all {} ranks", ranks.len())
    } else {
        format!("ranks {} … {}", fmt_num(lo), fmt_num(hi))
    }
}

/// Each rank's value, a line each (the first 64).
fn ranks_text(ranks: &[f64]) -> String {
    let mut lines: Vec<String> = ranks
        .iter()
        .take(64)
        .enumerate()
        .map(|(r, v)| format!("rank {r}: {}", fmt_num(*v)))
        .collect();
    if ranks.len() > 64 {
        lines.push(format!("… and {} more", ranks.len() - 64));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_ignores_case_and_surrounding_spaces() {
        use super::super::filter_shows;
        assert!(filter_shows("u ", "u"));
        assert!(filter_shows("  ", "anything"));
        assert!(filter_shows("Res", "residual"));
        assert!(!filter_shows("x", "residual"));
    }

    #[test]
    fn a_downsampled_heat_map_shows_each_blocks_mean() {
        let a = NdArray::from_f64_vec(
            vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0, f64::NAN, f64::NAN],
            vec![2, 4],
        )
        .unwrap();
        let image = heatmap_image(&a, 2, 4, 2, (0.0, 10.0));
        assert_eq!(image.size, [2, 2]);
        // Row 0 of the array is the bottom row of the image.
        assert_eq!(
            image.pixels,
            vec![
                colormap(0.9),
                colormap(f64::NAN),
                colormap(0.1),
                colormap(0.5)
            ]
        );
        // Within the limit nothing is resampled.
        assert_eq!(heatmap_image(&a, 2, 4, 4096, (0.0, 10.0)).size, [4, 2]);
    }

    #[test]
    fn edits_are_checked_before_sending() {
        let spec = WritableInfo {
            kind: ValueKind::Float,
            min: Some(0.0),
            max: Some(0.25),
            description: String::new(),
        };
        assert_eq!(parse_for(&spec, " 0.1 "), Ok(Value::Float(0.1)));
        assert!(
            parse_for(&spec, "0.5")
                .unwrap_err()
                .contains("above the maximum 0.25")
        );
        assert!(
            parse_for(&spec, "fast")
                .unwrap_err()
                .contains("not a number")
        );
        let int = WritableInfo {
            kind: ValueKind::Int,
            min: Some(1.0),
            max: None,
            description: String::new(),
        };
        assert_eq!(parse_for(&int, "7"), Ok(Value::Int(7)));
        assert!(parse_for(&int, "0").is_err());
        assert!(parse_for(&int, "1.5").is_err());
    }
}
