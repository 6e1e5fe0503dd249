//! The plots: any number, each of any scalar keys, drawn from the whole
//! history and then live; x by step (version) or by time; "follow latest"
//! (a moving window) or free zoom and pan; log y; EMA smoothing; legend and
//! hover values; export to CSV. Each frame draws about two points per pixel
//! per series from the min/max pyramid, whatever the series' length.
//! A plot can lay the same keys of other open runs (live or replays) over
//! its own, dashed, a legend entry per run; a replay's recorded actions
//! and writes are vertical marks.

use super::fmt_num;
use crate::model::RunModel;
use crate::net::Command;
use crate::series::XAxis;
use egui::RichText;
use egui_plot::{Legend, Line, Plot, PlotPoint};
use std::collections::BTreeMap;

/// One plot's choices (remembered between launches).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PlotConfig {
    pub keys: Vec<String>,
    pub x: XAxis,
    pub follow: bool,
    /// The follow window, in x units.
    pub window: f64,
    pub log_y: bool,
    /// EMA smoothing factor in (0, 1); 0 is off.
    pub ema: f64,
    /// What the Keys menu's search box holds (not remembered).
    #[serde(skip)]
    pub key_search: String,
    /// Other open runs (by what was opened) whose same keys are laid over
    /// this plot's (not remembered: runs come and go).
    #[serde(skip)]
    pub compare: Vec<String>,
    /// An MPI job: the one rank whose curves are drawn over the spread of
    /// all the ranks' (none: the spread alone).
    #[serde(default)]
    pub rank: Option<usize>,
    /// The Alert menu's rule being written (not remembered).
    #[serde(skip)]
    pub alert: AlertDraft,
}

/// A trigger being written in a plot's Alert menu.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertDraft {
    pub name: String,
    pub condition: String,
    pub pause: bool,
}

impl PlotConfig {
    pub fn of(keys: Vec<String>) -> Self {
        PlotConfig {
            keys,
            x: XAxis::Version,
            follow: false,
            window: 2000.0,
            log_y: false,
            ema: 0.0,
            key_search: String::new(),
            compare: Vec::new(),
            rank: None,
            alert: AlertDraft::default(),
        }
    }
}

/// The most keys the Keys menu lists at once (the search narrows them).
pub const MAX_PICKER_KEYS: usize = 200;

/// Keys a new view plots first: the usual suspects, else the first scalars.
pub fn default_plots(m: &RunModel) -> Vec<PlotConfig> {
    let preferred = [
        "residual",
        "loss",
        "error",
        "energy",
        "pi",
        "x",
        "grad_norm",
    ];
    let mut chosen: Vec<String> = preferred
        .iter()
        .filter(|k| m.series.contains_key(**k))
        .take(2)
        .map(|k| k.to_string())
        .collect();
    if chosen.is_empty() {
        chosen = m
            .plottable()
            .filter(|k| !matches!(*k, "step" | "t" | "n"))
            .take(2)
            .map(|k| k.to_string())
            .collect();
    }
    chosen
        .into_iter()
        .map(|k| {
            let mut c = PlotConfig::of(vec![k.clone()]);
            c.log_y = matches!(k.as_str(), "residual" | "loss" | "grad_norm");
            c
        })
        .collect()
}

#[derive(Default)]
pub struct PlotsPanel {
    pub plots: Vec<PlotConfig>,
    /// The outcome of the last export.
    pub note: Option<String>,
    /// The tallest plot toolbar of the last frame (one row, or two in a
    /// narrow window): the plots share what is left of the panel.
    toolbar_height: f32,
}

/// The least height of a plot, axes included: its curve's frame keeps
/// 120 px or more.
pub const MIN_PLOT_HEIGHT: f32 = 160.0;

/// One drawn line: its key, and its points.
pub type PlotLine = (String, Vec<[f64; 2]>);

/// Lines of a plot as they are drawn: (key, points). On a log axis a key
/// may give several lines: values <= 0 have no place there, and the curve
/// is broken where they are rather than drawn straight across them.
pub fn plot_lines(
    m: &RunModel,
    cfg: &PlotConfig,
    x0: f64,
    x1: f64,
    pixels: usize,
) -> Vec<PlotLine> {
    lines_and_hidden(m, cfg, x0, x1, pixels).0
}

/// [`plot_lines`], and how many points a log axis could not show.
fn lines_and_hidden(
    m: &RunModel,
    cfg: &PlotConfig,
    x0: f64,
    x1: f64,
    pixels: usize,
) -> (Vec<PlotLine>, usize) {
    let mut lines = Vec::new();
    let mut hidden = 0;
    for k in &cfg.keys {
        let Some(s) = m.series.get(k) else { continue };
        let pts = s.points(cfg.x, x0, x1, pixels, cfg.ema);
        let (segments, gone) = segments(&pts, cfg.log_y);
        hidden += gone;
        lines.extend(segments.into_iter().map(|seg| (k.clone(), seg)));
    }
    (lines, hidden)
}

/// A curve as drawn: its runs of finite values (a NaN or an infinity has
/// no place on the axis: it is marked apart, and a line through it made
/// the window's tessellator panic), on a log axis only the positive ones
/// as log10; and how many points a log axis could not show.
fn segments(pts: &[[f64; 2]], log: bool) -> (Vec<Vec<[f64; 2]>>, usize) {
    let mut segments: Vec<Vec<[f64; 2]>> = Vec::new();
    let mut current = Vec::new();
    let mut hidden = 0;
    for p in pts {
        let y = p[1];
        let drawn = match log {
            _ if !y.is_finite() => None,
            false => Some(y),
            true if y > 0.0 => Some(y.log10()),
            true => {
                hidden += 1;
                None
            }
        };
        match drawn {
            Some(y) => current.push([p[0], y]),
            None if !current.is_empty() => segments.push(std::mem::take(&mut current)),
            None => {}
        }
    }
    if !current.is_empty() {
        segments.push(current);
    }
    (segments, hidden)
}

/// The newest x across a plot's series.
fn latest_x(m: &RunModel, cfg: &PlotConfig) -> Option<(f64, f64)> {
    cfg.keys
        .iter()
        .filter_map(|k| m.series.get(k)?.x_range(cfg.x))
        .reduce(|a, b| (a.0.min(b.0), a.1.max(b.1)))
}

impl PlotsPanel {
    /// `others`: the other open runs, to compare with.
    pub fn ui(&mut self, ui: &mut egui::Ui, m: &RunModel, others: &[&RunModel]) -> Vec<Command> {
        let mut commands = Vec::new();
        let count = self.plots.len();
        // "+ Add plot" keeps a row of its own under the plots, outside their
        // scrolling (it sat half under the Messages panel); the plots share
        // the rest, each at least MIN_PLOT_HEIGHT, scrolled when they do not
        // fit.
        let spacing = ui.spacing().item_spacing.y;
        let footer = ui.spacing().interact_size.y + 2.0 * spacing;
        let room = (ui.available_height() - footer).max(MIN_PLOT_HEIGHT);
        if self.toolbar_height <= 0.0 {
            self.toolbar_height = ui.spacing().interact_size.y;
        }
        let per_plot = room / count.max(1) as f32 - self.toolbar_height - 3.0 * spacing;
        let height = per_plot.max(MIN_PLOT_HEIGHT);
        let mut toolbar_height: f32 = 0.0;
        let mut remove = None;
        egui::ScrollArea::vertical()
            .id_salt("plots")
            .max_height(room)
            .auto_shrink([false, true])
            .show(ui, |ui| {
                for (i, cfg) in self.plots.iter_mut().enumerate() {
                    ui.push_id(i, |ui| {
                        let bar = ui.horizontal_wrapped(|ui| {
                            // Stays open while keys are ticked (closing after
                            // each took three openings for x, y and z).
                            let stay_open = egui::containers::menu::MenuConfig::new()
                                .close_behavior(egui::PopupCloseBehavior::CloseOnClickOutside);
                            egui::containers::menu::MenuButton::new(format!(
                                "Keys ({})",
                                cfg.keys.len()
                            ))
                            .config(stay_open.clone())
                            .ui(ui, |ui| {
                                if m.series.len() > 8 {
                                    ui.add(
                                        egui::TextEdit::singleline(&mut cfg.key_search)
                                            .hint_text("search keys"),
                                    );
                                }
                                let search = cfg.key_search.clone();
                                // The first matches only: a run of 100,000
                                // keys made a menu of 100,000 checkboxes.
                                let mut matches =
                                    m.plottable().filter(|k| super::filter_shows(&search, k));
                                egui::ScrollArea::vertical()
                                    .max_height(400.0)
                                    .show(ui, |ui| {
                                        for k in matches.by_ref().take(MAX_PICKER_KEYS) {
                                            let mut on = cfg.keys.iter().any(|x| x == k);
                                            if ui.checkbox(&mut on, k).changed() {
                                                if on {
                                                    cfg.keys.push(k.to_string());
                                                } else {
                                                    cfg.keys.retain(|x| x != k);
                                                }
                                            }
                                        }
                                    });
                                let more = matches.count();
                                if more > 0 {
                                    ui.label(
                                        RichText::new(format!(
                                            "and {more} more: narrow the search"
                                        ))
                                        .weak(),
                                    );
                                }
                            });
                            let x = ui.label("x");
                            egui::ComboBox::from_id_salt("x axis")
                                .selected_text(match cfg.x {
                                    XAxis::Version => "step",
                                    XAxis::Time => "time",
                                })
                                .width(56.0)
                                .show_ui(ui, |ui| {
                                    ui.selectable_value(
                                        &mut cfg.x,
                                        XAxis::Version,
                                        "x: step (version)",
                                    );
                                    ui.selectable_value(&mut cfg.x, XAxis::Time, "x: time (s)");
                                })
                                .response
                                .labelled_by(x.id);
                            if !others.is_empty() {
                                egui::containers::menu::MenuButton::new(format!(
                                    "Compare ({})",
                                    cfg.compare.len()
                                ))
                                .config(stay_open)
                                .ui(ui, |ui| {
                                    ui.label(
                                        RichText::new(
                                            "Lay these keys of another run over this plot",
                                        )
                                        .weak(),
                                    );
                                    for o in others {
                                        let mut on = cfg.compare.contains(&o.target);
                                        if ui.checkbox(&mut on, o.label()).changed() {
                                            if on {
                                                cfg.compare.push(o.target.clone());
                                            } else {
                                                cfg.compare.retain(|t| *t != o.target);
                                            }
                                        }
                                    }
                                });
                            }
                            let ranks = cfg
                                .keys
                                .iter()
                                .filter_map(|k| m.bands.get(k))
                                .map(|b| b.ranks.len())
                                .max();
                            if let Some(ranks) = ranks {
                                rank_picker(ui, cfg, ranks, m.rank_count());
                            }
                            ui.checkbox(&mut cfg.follow, "Follow latest").on_hover_text(
                                "Show the newest stretch of x (its width: … > Follow window)",
                            );
                            ui.checkbox(&mut cfg.log_y, "Log y");
                            egui::containers::menu::MenuButton::new(format!(
                                "Alerts ({})",
                                m.triggers.len()
                            ))
                            .config(
                                egui::containers::menu::MenuConfig::new()
                                    .close_behavior(egui::PopupCloseBehavior::CloseOnClickOutside),
                            )
                            .ui(ui, |ui| commands.extend(alerts_menu(ui, m, cfg)));
                            // The rest, seldom changed, in one menu: the bar
                            // wrapped to three rows in an 800 px window.
                            egui::containers::menu::MenuButton::new("…")
                                .config(
                                    egui::containers::menu::MenuConfig::new().close_behavior(
                                        egui::PopupCloseBehavior::CloseOnClickOutside,
                                    ),
                                )
                                .ui(ui, |ui| {
                                    ui.horizontal(|ui| {
                                        let w = ui.label("Follow window");
                                        ui.add_enabled(
                                            cfg.follow,
                                            egui::DragValue::new(&mut cfg.window)
                                                .range(1.0..=1e12)
                                                .speed(10.0),
                                        )
                                        .labelled_by(w.id)
                                        .on_hover_text(
                                            "How much of the x axis Follow latest shows",
                                        );
                                    });
                                    ui.horizontal(|ui| {
                                        let e = ui.label("EMA");
                                        ui.add(
                                            egui::Slider::new(&mut cfg.ema, 0.0..=0.99)
                                                .fixed_decimals(2),
                                        )
                                        .labelled_by(e.id)
                                        .on_hover_text("Exponential smoothing factor; 0 is off");
                                    });
                                    if ui
                                        .button("CSV")
                                        .on_hover_text("Export these series")
                                        .clicked()
                                    {
                                        self.note = Some(export_csv(m, cfg));
                                    }
                                    if ui
                                        .button("Remove")
                                        .on_hover_text("Remove this plot")
                                        .clicked()
                                    {
                                        remove = Some(i);
                                    }
                                })
                                .0
                                .on_hover_text("Follow window, smoothing, CSV export, remove");
                            ui.label(egui::RichText::new("(?)").weak())
                                .on_hover_text(NAVIGATION_HINT);
                        });
                        toolbar_height = toolbar_height.max(bar.response.rect.height());
                        let compared: Vec<&RunModel> = others
                            .iter()
                            .copied()
                            .filter(|o| cfg.compare.contains(&o.target))
                            .collect();
                        draw(ui, m, &compared, cfg, height, plot_id(&m.target, i));
                    });
                }
            });
        if toolbar_height > 0.0 && (toolbar_height - self.toolbar_height).abs() > 0.5 {
            // The heights above used the last frame's: one more frame lays
            // the plots out by this one's (it settles: the bar's height
            // does not depend on the plots').
            self.toolbar_height = toolbar_height;
            ui.ctx().request_repaint();
        }
        ui.horizontal(|ui| {
            if ui.button("+ Add plot").clicked() {
                self.plots.push(PlotConfig::of(Vec::new()));
            }
            if let Some(n) = &self.note {
                ui.label(RichText::new(n).weak());
            }
        });
        if let Some(i) = remove {
            self.plots.remove(i);
        }
        commands
    }
}

/// A plot's Alert menu: the run's triggers (each removable) and a new one
/// to add, its condition written over the plot's keys.
fn alerts_menu(ui: &mut egui::Ui, m: &RunModel, cfg: &mut PlotConfig) -> Vec<Command> {
    let mut commands = Vec::new();
    ui.label(
        RichText::new("Rules the run checks at each update; a firing is marked on the plots")
            .weak(),
    );
    for t in &m.triggers {
        ui.horizontal(|ui| {
            let fired = match t.fired {
                0 => "not fired".to_string(),
                n => format!("fired {n} times, last at v{}", t.last_fired_version),
            };
            ui.label(format!(
                "{}: {} -> {} ({fired})",
                t.name,
                t.condition,
                t.actions.describe()
            ));
            if ui.small_button("Remove").clicked() {
                commands.push(Command::RemoveTrigger(t.name.clone()));
            }
        });
    }
    ui.separator();
    let d = &mut cfg.alert;
    let example = cfg
        .keys
        .first()
        .map_or_else(|| "isnan(residual)".to_string(), |k| format!("isnan({k})"));
    ui.add(
        egui::TextEdit::singleline(&mut d.condition)
            .hint_text(&example)
            .desired_width(260.0),
    )
    .on_hover_text(
        "A condition over the run's keys: isnan(x), x > 1e3, abs(x) < 1e-9, \
         energy > 2 * start(energy), rises(residual) >= 10, && || !",
    );
    ui.horizontal(|ui| {
        ui.add(
            egui::TextEdit::singleline(&mut d.name)
                .hint_text("name")
                .desired_width(120.0),
        );
        ui.checkbox(&mut d.pause, "Pause the run");
        let condition = match d.condition.trim() {
            "" => example.clone(),
            c => c.to_string(),
        };
        let enabled = m.role == Some(idict::Role::Controller);
        let add = ui
            .add_enabled(enabled, egui::Button::new("Add"))
            .on_disabled_hover_text("Adding a rule needs the run's controller token");
        if add.clicked() {
            let name = match d.name.trim() {
                "" => format!("alert {}", m.triggers.len() + 1),
                n => n.to_string(),
            };
            let actions = idict::TriggerActions {
                pause: d.pause,
                ..idict::TriggerActions::default()
            };
            commands.push(Command::AddTrigger {
                name,
                condition,
                actions,
            });
            *d = AlertDraft::default();
        }
    });
    if let Some(e) = &m.error {
        ui.label(RichText::new(e).color(ui.visuals().error_fg_color));
    }
    commands
}

/// The smallest of 1, 2 and 5 times a power of ten that is at least `x`.
fn round_step(x: f64) -> f64 {
    let p = 10f64.powf(x.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|s| *s >= x * (1.0 - 1e-9))
        .unwrap_or(10.0 * p)
}

/// The grid of a linear axis: labelled lines at round steps (1, 2 or 5
/// times a power of ten) at least `px_per_label` apart, and thinner lines
/// between them while those are at least 8 px apart.
fn linear_axis_marks(input: egui_plot::GridInput, px_per_label: f64) -> Vec<egui_plot::GridMark> {
    let (lo, hi) = input.bounds;
    // egui_plot's base step is the data span of its 8 px minimum spacing.
    let per_px = input.base_step_size / 8.0;
    if !(lo.is_finite() && hi.is_finite() && hi > lo && per_px > 0.0 && per_px.is_finite()) {
        return Vec::new();
    }
    let label = round_step(per_px * px_per_label);
    if !(label.is_finite() && label > 0.0) {
        // A run that blew up: values near f64::MAX, a step past it. Such an
        // axis has no round marks (egui_plot's own NaN from an infinite
        // step took the window down).
        return Vec::new();
    }
    let minor = [label / 5.0, label / 2.0]
        .into_iter()
        .find(|s| s / per_px >= 8.0);
    let mut marks = Vec::new();
    for step in std::iter::once(label).chain(minor) {
        let first = (lo / step).ceil() as i64;
        let last = (hi / step).floor() as i64;
        if last - first > 10_000 {
            continue;
        }
        for j in first..=last {
            let value = j as f64 * step;
            // A labelled line is not drawn again as a thin one.
            if step != label && (value / label - (value / label).round()).abs() < 1e-6 {
                continue;
            }
            marks.push(egui_plot::GridMark {
                value,
                step_size: step,
            });
        }
    }
    marks
}

/// A linear axis's label: as many decimals as the step needs, and SI
/// prefixes (k, M, G) or an exponent for large and small numbers, chosen
/// by the axis's range so that one axis uses one of them.
fn linear_axis_label(value: f64, step: f64, range: &std::ops::RangeInclusive<f64>) -> String {
    if value.abs() < step * 1e-6 {
        return "0".into();
    }
    let magnitude = range.start().abs().max(range.end().abs()).max(step);
    if (1e4..1e12).contains(&magnitude) {
        let (scale, suffix) = if magnitude >= 1e9 {
            (1e9, "G")
        } else if magnitude >= 1e6 {
            (1e6, "M")
        } else {
            (1e3, "k")
        };
        let decimals = (-(step / scale).log10().floor()).max(0.0) as usize;
        return format!("{:.*}{suffix}", decimals, value / scale);
    }
    if !(1e-3..1e12).contains(&magnitude) {
        let exp = step.log10().floor();
        let digits = (value.abs().log10().floor() - exp).max(0.0) as usize;
        return format!("{value:.digits$e}");
    }
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    format!("{value:.decimals$}")
}

/// The grid of a log10 axis: every decade, and 2..9 times it while few
/// decades are in view (every few decades when many are). The default
/// spacer put marks at uniform steps of log10, labelled 0.794328, 0.630957.
fn log_axis_marks(input: egui_plot::GridInput) -> Vec<egui_plot::GridMark> {
    let (lo, hi) = input.bounds;
    if !(lo.is_finite() && hi.is_finite() && input.base_step_size.is_finite()) || hi <= lo {
        return Vec::new();
    }
    let decades = hi - lo;
    let every = if decades > 12.0 {
        (decades / 8.0).ceil()
    } else {
        1.0
    };
    let mut marks = Vec::new();
    // Only the decades drawn are visited, however far out the zoom goes.
    for j in (lo / every).ceil() as i64..=(hi / every).floor() as i64 {
        marks.push(egui_plot::GridMark {
            value: j as f64 * every,
            step_size: every,
        });
    }
    if decades > 6.0 {
        return marks;
    }
    for n in (lo.floor() as i64)..=(hi.ceil() as i64) {
        let n = n as f64;
        for k in 2..=9 {
            let value = n + (k as f64).log10();
            if (lo..=hi).contains(&value) {
                let step_size = if k == 2 || k == 5 { 0.3 } else { 0.1 };
                marks.push(egui_plot::GridMark { value, step_size });
            }
        }
    }
    // Zoomed within a decade: fewer than two labelled lines would leave the
    // axis unreadable; the plot's own spacer does better there.
    marks.sort_by(|a, b| a.value.total_cmp(&b.value));
    let labelled = marks.iter().filter(|m| !log_axis_label(m.value).is_empty());
    if labelled.count() < 2 {
        return egui_plot::log_grid_spacer(10)(input);
    }
    marks
}

/// A log10 axis's label at `value`: 1, 2 and 5 times a power of ten, as
/// plain numbers near 1 (0.002 .. 5000) and as 2e-7 beyond; no label on
/// the other lines.
fn log_axis_label(value: f64) -> String {
    let n = value.floor();
    let k = 10f64.powf(value - n);
    let Some(k) = [1.0, 2.0, 5.0]
        .into_iter()
        .find(|m| (k - m).abs() < 1e-6 * m)
    else {
        return String::new();
    };
    if (-3.0..=3.0).contains(&n) {
        let x = k * 10f64.powf(n);
        // Rounded to what the label means (10^-3 is not exactly 0.001).
        let decimals = (-n).max(0.0) as usize;
        format!("{x:.decimals$}")
    } else {
        format!("{k}e{n}")
    }
}

/// How the wheel zooms a plot: Ctrl/⌘+wheel (or a pinch; egui turns both
/// into a zoom factor) zooms the x axis, time or steps, what a long run is
/// read along. The wheel alone is left to scroll the column of plots, as
/// egui_plot users expect (it zoomed, and a column of plots could only be
/// scrolled over their toolbars).
fn wheel_zoom(zoom: f32) -> Option<egui::Vec2> {
    (zoom != 1.0 && zoom.is_finite() && zoom > 0.0).then(|| egui::vec2(zoom, 1.0))
}

/// What the mouse does on a plot, said on the plot's hover.
pub const NAVIGATION_HINT: &str = "Wheel: scroll the plots · Ctrl/⌘+wheel: zoom time · drag or Shift+wheel: pan · \
     right-drag: zoom to a box (values too) · double-click: fit all";

/// The hover tooltip: the x axis by its own name (a step is a whole
/// number), the value by the series' name ("x = 6327.279036" on a step axis
/// read as a series called x).
fn hover_text(name: &str, x_axis: XAxis, log_y: bool, x: f64, y: f64) -> String {
    let at = match x_axis {
        XAxis::Version => format!("step {}", x.round() as i64),
        XAxis::Time => format!("t = {} s", fmt_num(x)),
    };
    let y = if log_y { 10f64.powf(y) } else { y };
    if name.is_empty() {
        format!("{at}\n{}", fmt_num(y))
    } else {
        format!("{at}\n{name} = {}", fmt_num(y))
    }
}

/// An MPI job's plot: which rank to draw over the spread of all of them.
fn rank_picker(ui: &mut egui::Ui, cfg: &mut PlotConfig, curves: usize, ranks: usize) {
    let shown = match cfg.rank {
        Some(r) => format!("rank {r}"),
        None => format!("{ranks} ranks: min–max"),
    };
    egui::ComboBox::from_label("ranks")
        .selected_text(shown)
        .show_ui(ui, |ui| {
            ui.selectable_value(&mut cfg.rank, None, "the spread (min–max)");
            for r in 0..curves {
                ui.selectable_value(&mut cfg.rank, Some(r), format!("rank {r}"));
            }
            if curves < ranks {
                ui.label(
                    RichText::new(format!("one rank's curve: jobs of at most {curves} ranks"))
                        .weak(),
                );
            }
        })
        .response
        .on_hover_text(
            "The band is the spread of the ranks' values at each step; pick a rank to see its own",
        );
}

/// The id of a run's `index`-th plot (where its zoom is remembered).
pub fn plot_id(target: &str, index: usize) -> egui::Id {
    egui::Id::unique(("plot", target, index))
}

/// Draws one plot.
pub fn draw(
    ui: &mut egui::Ui,
    m: &RunModel,
    compared: &[&RunModel],
    cfg: &mut PlotConfig,
    height: f32,
    id: egui::Id,
) {
    let log_y = cfg.log_y;
    let x_label = match cfg.x {
        XAxis::Version => "step (version)",
        XAxis::Time => "time (s)",
    };
    let x_axis = cfg.x;
    let mut plot = Plot::new("plot")
        .id(id)
        .legend(Legend::default())
        .height(height)
        .x_axis_label(x_label)
        .label_formatter(move |hover| {
            // Off a curve, nothing: the pointer's place read as a value
            // ("step 7 / 3.4687e-4" where energy is ~0).
            match hover {
                egui_plot::HoverPosition::NearDataPoint {
                    plot_name,
                    position,
                    ..
                } => Some(hover_text(plot_name, x_axis, log_y, position.x, position.y)),
                egui_plot::HoverPosition::Elsewhere { .. } => None,
            }
        });
    // Round numbers, close enough to read: a label every 80 px or so
    // across, 30 px up. The default spacer stepped by powers of ten, which
    // often left one or two labels on an axis.
    plot = plot
        .x_grid_spacer(|input| linear_axis_marks(input, 80.0))
        .x_axis_formatter(|mark, range| linear_axis_label(mark.value, mark.step_size, range));
    if log_y {
        plot = plot
            .y_grid_spacer(log_axis_marks)
            .y_axis_formatter(|mark, _| log_axis_label(mark.value));
    } else {
        plot = plot
            .y_grid_spacer(|input| linear_axis_marks(input, 30.0))
            .y_axis_formatter(|mark, range| linear_axis_label(mark.value, mark.step_size, range));
    }
    // Ctrl+wheel is ours (see `wheel_zoom`); the plot keeps dragging to
    // pan, right-drag to zoom a box, double-click to reset, and horizontal
    // scrolling (Shift+wheel) to pan x. The wheel scrolls the plots.
    let plot = plot.allow_zoom(false).allow_scroll([true, false]);
    let range = latest_x(m, cfg);
    let mut wheeled = false;
    let mut hidden_on_log = 0;
    let response = plot.show(ui, |pui| {
        if pui.response().contains_pointer() {
            let zoom = pui.ctx().input(|i| i.zoom_delta());
            if let Some(factor) = wheel_zoom(zoom) {
                pui.zoom_bounds_around_hovered(factor);
                wheeled = true;
                // Zooming in time keeps the values fitted.
                pui.set_auto_bounds([false, true]);
            }
        }
        let pixels = pui.transform().frame().width().max(1.0) as usize;
        let (x0, x1) = match (cfg.follow, range) {
            (true, Some((_, last))) => {
                let b = (last - cfg.window, last);
                pui.set_plot_bounds_x(b.0..=b.1);
                pui.set_auto_bounds([false, true]);
                b
            }
            _ => {
                let b = pui.plot_bounds();
                let (lo, hi) = (b.min()[0], b.max()[0]);
                if lo.is_finite() && hi.is_finite() && hi > lo && !pui.auto_bounds().x {
                    (lo, hi)
                } else {
                    range.unwrap_or((0.0, 1.0))
                }
            }
        };
        let (lines, hidden) = lines_and_hidden(m, cfg, x0, x1, pixels);
        // Where NaN and infinite samples are marked: the lowest and highest
        // value drawn (not the plot's edges, which the markers would push
        // out frame after frame).
        let (bottom, top) = lines
            .iter()
            .flat_map(|(_, pts)| pts.iter().map(|p| p[1]))
            .filter(|y| y.is_finite())
            .fold(None, |span: Option<(f64, f64)>, y| match span {
                None => Some((y, y)),
                Some((lo, hi)) => Some((lo.min(y), hi.max(y))),
            })
            .unwrap_or((0.0, 0.0));
        let named = |key: String, run: &RunModel| match compared.is_empty() {
            true => key,
            false => format!("{key} · {}", compared_label(run)),
        };
        for (key, pts) in lines {
            // A key's colour by its place in the plot, as egui_plot picks
            // them: the pieces of a curve broken on a log axis share it.
            let color = key_color(cfg, &key, 0);
            pui.line(Line::new(named(key, m), pts).color(color));
        }
        // An MPI job's keys: the spread of the ranks' values around the
        // reduced curve, and the rank picked, drawn over it.
        for key in &cfg.keys {
            let Some(band) = m.bands.get(key) else {
                continue;
            };
            let color = egui::Color32::from(key_color(cfg, key, 0));
            let scale = |pts: Vec<[f64; 2]>| -> Vec<[f64; 2]> {
                match cfg.log_y {
                    false => pts,
                    true => pts
                        .into_iter()
                        .filter(|p| p[1] > 0.0)
                        .map(|p| [p[0], p[1].log10()])
                        .collect(),
                }
            };
            let hi = scale(band.max.points(cfg.x, x0, x1, pixels, 0.0));
            let lo = scale(band.min.points(cfg.x, x0, x1, pixels, 0.0));
            if !hi.is_empty() && !lo.is_empty() {
                let outline: Vec<[f64; 2]> = hi.iter().chain(lo.iter().rev()).copied().collect();
                pui.polygon(
                    egui_plot::Polygon::new(format!("{key} · ranks min–max"), outline)
                        .fill_color(color.gamma_multiply(0.18))
                        .stroke(egui::Stroke::new(0.5, color.gamma_multiply(0.5))),
                );
            }
            if let Some(curve) = cfg.rank.and_then(|r| band.ranks.get(r)) {
                let pts = scale(curve.points(cfg.x, x0, x1, pixels, cfg.ema));
                let name = format!("{key} · rank {}", cfg.rank.unwrap_or_default());
                pui.line(
                    Line::new(name, pts)
                        .color(color)
                        .style(egui_plot::LineStyle::dotted_dense())
                        .width(2.0),
                );
            }
        }
        // Other runs' same keys: dashed, a shade apart, named by run. A
        // replay shown only to where it was scrubbed says so, in the legend
        // and with a line where it stops (it was cut there silently).
        for (n, other) in compared.iter().enumerate() {
            let (lines, _) = lines_and_hidden(other, cfg, x0, x1, pixels);
            for (key, pts) in lines {
                let color = key_color(cfg, &key, n + 1);
                pui.line(
                    Line::new(named(key, other), pts)
                        .color(color)
                        .style(egui_plot::LineStyle::dashed_loose()),
                );
            }
            if cut_short(other).is_some() {
                let x = match cfg.x {
                    XAxis::Version => other.version as f64,
                    XAxis::Time => other.time,
                };
                if x.is_finite() && (x0..=x1).contains(&x) {
                    // Unnamed: the legend names it with its curve.
                    pui.vline(
                        egui_plot::VLine::new("", x)
                            .color(egui::Color32::from(key_color(cfg, "", n + 1)))
                            .style(egui_plot::LineStyle::dashed_dense()),
                    );
                }
            }
        }
        // Values no curve can show, marked at their step: a NaN and -inf
        // at the bottom, +inf at the top.
        {
            for key in &cfg.keys {
                let Some(series) = m.series.get(key) else {
                    continue;
                };
                let (mut nan, mut up, mut down) = (Vec::new(), Vec::new(), Vec::new());
                for (x, y) in series.nonfinite(cfg.x, x0, x1) {
                    match y {
                        y if y.is_nan() => nan.push([x, bottom]),
                        y if y > 0.0 => up.push([x, top]),
                        _ => down.push([x, bottom]),
                    }
                }
                for (what, pts, shape) in [
                    ("NaN", nan, egui_plot::MarkerShape::Cross),
                    ("+inf", up, egui_plot::MarkerShape::Up),
                    ("-inf", down, egui_plot::MarkerShape::Down),
                ] {
                    if !pts.is_empty() {
                        pui.points(
                            egui_plot::Points::new(format!("{key} {what}"), pts)
                                .shape(shape)
                                .radius(6.0)
                                .color(NONFINITE_COLOR),
                        );
                    }
                }
            }
        }
        // Triggers' firings, where they fall in view, named at the top.
        for f in &m.firings {
            let x = match cfg.x {
                XAxis::Version => f.version,
                XAxis::Time => f.time,
            };
            if x.is_finite() && (x0..=x1).contains(&x) {
                pui.vline(
                    egui_plot::VLine::new("triggers", x)
                        .color(FIRING_COLOR)
                        .width(1.5),
                );
                if top.is_finite() {
                    pui.text(
                        egui_plot::Text::new(
                            "triggers",
                            PlotPoint::new(x, top),
                            egui::RichText::new(format!("⚠ {}", f.name)).color(FIRING_COLOR),
                        )
                        // Inside the plot: a mark in its right half is
                        // named to the left of its line.
                        .anchor(if x > (x0 + x1) / 2.0 {
                            egui::Align2::RIGHT_TOP
                        } else {
                            egui::Align2::LEFT_TOP
                        }),
                    );
                }
            }
        }
        // A replay's recorded actions and writes, where they fall in view.
        if let Some(t) = &m.replay {
            for mark in &t.marks {
                let x = match cfg.x {
                    XAxis::Version => mark.version as f64,
                    XAxis::Time => mark.time,
                };
                if x.is_finite() && (x0..=x1).contains(&x) {
                    let name = match mark.kind {
                        idict::MarkKind::Control => "actions",
                        idict::MarkKind::Write => "writes",
                    };
                    pui.vline(
                        egui_plot::VLine::new(name, x)
                            .color(super::timeline::mark_color(mark.kind))
                            .style(egui_plot::LineStyle::dotted_dense()),
                    );
                }
            }
        }
        hidden_on_log = hidden;
        pui.pointer_coordinate()
    });
    if hidden_on_log > 0 {
        ui.label(
            egui::RichText::new(format!(
                "{hidden_on_log} points <= 0 in view are not drawn on the log axis \
                 (the curve is broken there)"
            ))
            .weak(),
        );
    }
    // Zooming or panning by hand leaves follow mode.
    if response.response.dragged()
        || wheeled
        || (response.response.hovered() && ui.input(|i| i.smooth_scroll_delta.x != 0.0))
    {
        cfg.follow = false;
    }
    let _: Option<PlotPoint> = response.inner;
}

/// A replay held short of its end (paused there, not playing on): the
/// version it is at and its last. (One playing would be renamed in the
/// legend at every version, which forgets the legend's choices.)
fn cut_short(run: &RunModel) -> Option<(u64, u64)> {
    let t = run.replay.as_ref()?;
    let held = run
        .status
        .as_ref()
        .is_some_and(|s| s.state == idict::RunState::Paused);
    (held && run.version < t.last_version).then_some((run.version, t.last_version))
}

/// How a compared run is named in the legend: by its label, and a replay
/// shown only in part by how far.
fn compared_label(run: &RunModel) -> String {
    match cut_short(run) {
        Some((at, last)) => format!("{} · shown to v{at} of v{last}", run.label()),
        None => run.label(),
    }
}

/// NaN and infinite samples' markers, and triggers' firings.
const NONFINITE_COLOR: egui::Color32 = egui::Color32::from_rgb(230, 40, 40);
const FIRING_COLOR: egui::Color32 = egui::Color32::from_rgb(240, 140, 20);

/// A key's colour in a plot: its hue by its place among the plot's keys;
/// run `n` of those compared a lighter shade of it (0: the plot's own).
fn key_color(cfg: &PlotConfig, key: &str, n: usize) -> egui::ecolor::Hsva {
    let i = cfg.keys.iter().position(|k| k == key).unwrap_or(0);
    let hue = i as f32 * 0.618_034 + n as f32 * 0.11; // the golden ratio's fraction
    let value = if n == 0 { 0.5 } else { 0.75 };
    egui::ecolor::Hsva::new(hue.fract(), 0.85, value, 1.0)
}

/// Writes a plot's series to a CSV file in the working directory; returns
/// what happened, for the user.
fn export_csv(m: &RunModel, cfg: &PlotConfig) -> String {
    let mut rows: BTreeMap<u64, (f64, Vec<Option<f64>>)> = BTreeMap::new();
    for (i, k) in cfg.keys.iter().enumerate() {
        if let Some(s) = m.series.get(k) {
            for (v, t, y) in s.samples() {
                let row = rows
                    .entry(v as u64)
                    .or_insert((t, vec![None; cfg.keys.len()]));
                row.1[i] = Some(y);
            }
        }
    }
    let mut csv = format!("version,t,{}\n", cfg.keys.join(","));
    for (v, (t, ys)) in rows {
        let cells: Vec<String> = ys
            .iter()
            .map(|y| y.map_or_else(String::new, |y| y.to_string()))
            .collect();
        csv.push_str(&format!("{v},{t},{}\n", cells.join(",")));
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let name = format!("{}-{}-{stamp}.csv", m.name, cfg.keys.join("+"));
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || "-_+.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    match std::fs::write(&name, csv) {
        Ok(()) => format!("saved {name}"),
        Err(e) => format!("could not save {name}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 15: log y dropped values <= 0 silently and drew straight
    /// lines across the gap.
    #[test]
    fn a_log_axis_breaks_the_curve_where_values_are_not_positive() {
        let pts = [
            [0.0, 1.0],
            [1.0, 10.0],
            [2.0, -1.0],
            [3.0, 0.0],
            [4.0, 100.0],
            [5.0, 1000.0],
        ];
        let (segments, hidden) = super::segments(&pts, true);
        assert_eq!(hidden, 2);
        assert_eq!(
            segments,
            vec![vec![[0.0, 0.0], [1.0, 1.0]], vec![[4.0, 2.0], [5.0, 3.0]]]
        );
        assert_eq!(super::segments(&[[0.0, -1.0]], true), (vec![], 1));
    }

    #[test]
    fn a_curve_breaks_at_a_nan_or_an_infinity_on_either_axis() {
        let pts = [
            [0.0, 1.0],
            [1.0, f64::NAN],
            [2.0, 2.0],
            [3.0, f64::INFINITY],
            [4.0, f64::NEG_INFINITY],
            [5.0, 3.0],
        ];
        let (linear, hidden) = super::segments(&pts, false);
        assert_eq!(hidden, 0, "marked apart, not counted as hidden");
        assert_eq!(
            linear,
            vec![vec![[0.0, 1.0]], vec![[2.0, 2.0]], vec![[5.0, 3.0]]]
        );
        let (log, _) = super::segments(&pts, true);
        assert!(log.iter().flatten().all(|p| p[1].is_finite()));
    }

    /// Issue 15: log-y labels read 1e0, 0.794328, 0.630957.
    #[test]
    fn a_linear_axis_has_several_round_labels() {
        // Heat's x axis, 0..1000 steps across 600 px: it showed 0 and 1000.
        let input = |lo: f64, hi: f64, px: f64| egui_plot::GridInput {
            bounds: (lo, hi),
            base_step_size: (hi - lo) / px * 8.0,
        };
        let labels = |lo, hi, px, every| {
            let marks = linear_axis_marks(input(lo, hi, px), every);
            let top = marks.iter().map(|m| m.step_size).fold(0.0, f64::max);
            marks
                .iter()
                .filter(|m| m.step_size == top)
                .map(|m| linear_axis_label(m.value, m.step_size, &(lo..=hi)))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            labels(0.0, 1000.0, 600.0, 80.0),
            ["0", "200", "400", "600", "800", "1000"]
        );
        // montecarlo_pi's error up the y axis (it showed only "0.0").
        assert_eq!(
            labels(-0.0004, 0.0123, 150.0, 30.0),
            ["0", "0.005", "0.010"]
        );
        assert_eq!(
            labels(0.0, 3.2e6, 700.0, 80.0),
            ["0", "0.5M", "1.0M", "1.5M", "2.0M", "2.5M", "3.0M"]
        );
        assert_eq!(
            labels(-2e-5, 2e-5, 200.0, 30.0),
            ["-2e-5", "-1e-5", "0", "1e-5", "2e-5"]
        );
        // Thin lines between labels, never on them.
        let marks = linear_axis_marks(input(0.0, 1000.0, 600.0), 80.0);
        assert!(marks.iter().any(|m| m.step_size < 200.0));
        let mut values: Vec<i64> = marks.iter().map(|m| m.value as i64).collect();
        values.sort();
        values.dedup();
        assert_eq!(values.len(), marks.len());
        assert!(linear_axis_marks(input(1.0, 1.0, 600.0), 80.0).is_empty());
        // A blown-up run's values, near f64::MAX: no mark of an infinite
        // step (its NaN made egui_plot panic).
        let huge = linear_axis_marks(input(-6e307, 6e307, 40.0), 80.0);
        assert!(
            huge.iter()
                .all(|m| m.value.is_finite() && m.step_size.is_finite())
        );
    }

    #[test]
    fn a_log_axis_is_labelled_at_1_2_and_5_times_powers_of_ten() {
        let input = |lo: f64, hi: f64| egui_plot::GridInput {
            bounds: (lo, hi),
            base_step_size: 0.01,
        };
        let labels: Vec<String> = log_axis_marks(input(-1.0, 1.0))
            .iter()
            .map(|m| log_axis_label(m.value))
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(labels, ["0.1", "0.2", "0.5", "1", "2", "5", "10"]);
        assert_eq!(log_axis_label(-7.0 + 2f64.log10()), "2e-7");
        assert_eq!(log_axis_label(0.1), "");
        // Many decades: a few decade marks, no 2..9 lines.
        let wide = log_axis_marks(input(-30.0, 30.0));
        assert!(wide.len() <= 10, "{}", wide.len());
        assert!(wide.iter().all(|m| m.value.fract() == 0.0));
        // Zoomed far out, the marks stay few (the loop visited every decade).
        assert!(log_axis_marks(input(-1e12, 1e12)).len() <= 10);
        // Within a decade: the plot's own marks, not a bare axis.
        assert!(log_axis_marks(input(0.4, 0.6)).len() >= 2);
    }

    #[test]
    fn ctrl_wheel_zooms_time_and_the_wheel_alone_zooms_nothing() {
        assert_eq!(wheel_zoom(1.2), Some(egui::vec2(1.2, 1.0)));
        assert_eq!(wheel_zoom(0.8), Some(egui::vec2(0.8, 1.0)));
        assert_eq!(wheel_zoom(1.0), None);
        assert_eq!(wheel_zoom(f32::NAN), None);
    }

    #[test]
    fn the_tooltip_names_the_axis_and_the_series() {
        let t = hover_text("x", XAxis::Version, false, 6327.279036, 1.5);
        assert!(t.starts_with("step 6327\n"), "{t}");
        assert!(t.contains("x = 1.5"), "{t}");
        let t = hover_text("residual", XAxis::Time, true, 2.5, -2.0);
        assert!(t.starts_with("t = 2.5 s\n"), "{t}");
        assert!(t.contains("residual = 0.01"), "{t}");
    }
}
