//! The app: the open runs (each a model fed by its network task, plus its
//! panels), the side list, persistence of recent runs and plot choices, and
//! the window's layout. `InspectorApp::ui_root` draws everything; eframe
//! and the tests both call it. Each frame starts by taking what the network
//! tasks delivered into the tabs' own models (see `model`); drawing then
//! reads only those, with no lock held.

use crate::demo::Demo;
use crate::model::RunModel;
use crate::net::{self, Command, OpenSpec, RunHandle};
use crate::views::controls::ControlsPanel;
use crate::views::messages::MessagesPanel;
use crate::views::plots::{PlotConfig, PlotsPanel, default_plots};
use crate::views::runs::{RunsAction, RunsPanel};
use crate::views::timeline::TimelinePanel;
use crate::views::values::ValuesPanel;
use egui::RichText;
use idict::runfile::FoundRun;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What is remembered between launches.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Settings {
    /// Runs opened recently, newest first: run names (opened again by
    /// name, whatever their pid now), recordings' paths, ssh:// targets.
    pub recent: Vec<String>,
    /// Plot choices per run name.
    pub plots: BTreeMap<String, Vec<PlotConfig>>,
    /// The window's size (points) when last seen.
    #[serde(default)]
    pub window: Option<[f32; 2]>,
    /// The panels' sizes as the user chose them.
    #[serde(default)]
    pub panels: PanelSizes,
    /// Where File > Open recording last found one.
    #[serde(default)]
    pub last_folder: Option<PathBuf>,
}

/// The most runs the Recent list keeps.
const MAX_RECENT: usize = 10;

/// The panels' sizes as the user chose them, by dragging their edges (or
/// the Messages toggle), remembered between launches.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct PanelSizes {
    pub runs: ChosenSize,
    pub values: ChosenSize,
    pub messages: ChosenSize,
    /// Messages shown (`None`: shown when the window is at least
    /// [`MESSAGES_OPEN_FROM`] tall).
    pub messages_open: Option<bool>,
}

impl Default for PanelSizes {
    fn default() -> Self {
        PanelSizes {
            runs: ChosenSize::new(210.0),
            values: ChosenSize::new(400.0),
            messages: ChosenSize::new(100.0),
            messages_open: None,
        }
    }
}

/// A window shorter than this opens with the Messages panel folded.
pub const MESSAGES_OPEN_FROM: f32 = 700.0;

/// A panel's size as the user chose it, apart from what the window allows
/// now. egui keeps only the size shown: a window made small narrowed the
/// values panel for good (it stayed narrow at 1280x800 again).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ChosenSize {
    pub size: f32,
    /// The size shown in the last frame, and the most the window allowed
    /// then: a change while the pointer is down, with neither the window
    /// nor the cap changed (another panel dragged moves this one's cap),
    /// is the user's drag of this panel's edge.
    #[serde(skip)]
    shown: Option<(f32, f32)>,
}

impl ChosenSize {
    pub fn new(size: f32) -> Self {
        ChosenSize { size, shown: None }
    }

    /// The size shown in the last frame.
    pub fn shown(&self) -> Option<f32> {
        self.shown.map(|(size, _)| size)
    }

    /// The most the window allowed in the last frame.
    pub fn cap(&self) -> Option<f32> {
        self.shown.map(|(_, cap)| cap)
    }

    /// `panel` at the chosen size within `min..=cap`; `force` (the
    /// window's size changed, or the first frame) sets it, as egui would
    /// otherwise keep the size it last showed.
    fn apply(&self, panel: egui::Panel, min: f32, cap: f32, force: bool) -> egui::Panel {
        let cap = cap.max(min);
        // A size read from a damaged settings file is not kept.
        let chosen = if self.size.is_finite() {
            self.size
        } else {
            min
        };
        let size = chosen.clamp(min, cap);
        if force || self.shown.is_none() {
            panel.exact_size(size)
        } else {
            panel.default_size(size).size_range(min..=cap)
        }
    }

    /// Learns from the size shown under `cap`: moved by a drag of its
    /// edge, it is the new choice.
    fn learn(&mut self, ui: &egui::Ui, shown: f32, cap: f32, resized: bool) {
        let dragging = ui.input(|i| i.pointer.primary_down());
        if let Some((before, cap_before)) = self.shown
            && dragging
            && !resized
            && (cap - cap_before).abs() < 0.5
            && (shown - before).abs() > 0.5
        {
            self.size = shown;
        }
        self.shown = Some((shown, cap));
    }
}

/// One open run: its network task, what the UI knows of it, and its panels.
pub struct RunTab {
    pub handle: RunHandle,
    /// The UI's own copy of the run's state; only the UI thread touches it.
    pub model: RunModel,
    pub controls: ControlsPanel,
    pub values: ValuesPanel,
    pub plots: PlotsPanel,
    pub timeline: TimelinePanel,
    plots_ready: bool,
    /// Put in the Recent list (once its name or file is known).
    in_recent: bool,
    /// A run that started under this one's name since (offered, not taken).
    pub successor: Option<FoundRun>,
}

/// What the user asked for in a run's view.
#[derive(Default)]
struct TabAction {
    save_png: bool,
    follow: Option<FoundRun>,
}

impl RunTab {
    fn new(handle: RunHandle) -> Self {
        RunTab {
            model: RunModel::new(&handle.spec.target),
            handle,
            controls: ControlsPanel::default(),
            values: ValuesPanel::default(),
            plots: PlotsPanel::default(),
            timeline: TimelinePanel::default(),
            plots_ready: false,
            in_recent: false,
            successor: None,
        }
    }

    /// How the Recent list opens this run again, once that is known: a
    /// replay by its recording, a run over ssh by its target, any other by
    /// its name (its pid, address and run file change with each start).
    /// Runs opened with a token (the demo, Connect) are not kept: the token
    /// is not saved.
    fn recent_entry(&self) -> Option<String> {
        let m = &self.model;
        if let Some(file) = &m.replay_of {
            return Some(file.clone());
        }
        let target = &self.handle.spec.target;
        if target.starts_with("ssh://") {
            return Some(target.clone());
        }
        (self.handle.spec.token.is_none() && m.pid != 0 && !m.name.is_empty())
            .then(|| m.name.clone())
    }

    /// Takes what the network task delivered since the last frame into the
    /// model. The lock is held for a swap and never waited for: if the task
    /// holds it this very moment, this frame shows the last frame's state
    /// and another frame follows at once.
    pub fn refresh(&mut self, ctx: &egui::Context) {
        let Some(delivered) = self.handle.inbox.try_lock().map(|mut i| i.take()) else {
            ctx.request_repaint();
            return;
        };
        self.model.take_in(delivered, Instant::now());
    }

    /// Sends a command to the run (what the buttons do).
    pub fn send(&mut self, c: Command) {
        if self.handle.send(c).is_err() {
            self.model.error = Some("the connection task has stopped".into());
        }
    }

    /// Draws the run: header and controls, messages, values and plots.
    /// `others`: the other open runs, which plots can compare with.
    fn ui(
        &mut self,
        ui: &mut egui::Ui,
        screenshot_note: Option<&str>,
        others: &[&RunModel],
        panels: &mut PanelSizes,
        resized: bool,
    ) -> TabAction {
        let m = &self.model;
        let mut commands = Vec::new();
        let mut action = TabAction::default();
        let successor = &self.successor;
        egui::Panel::top("header").show(ui, |ui| {
            ui.add_space(4.0);
            commands.extend(self.controls.ui(ui, m, |ui| {
                if ui.small_button("Save window as PNG").clicked() {
                    action.save_png = true;
                }
                if let Some(note) = screenshot_note {
                    ui.label(RichText::new(note).weak());
                }
                if let Some(s) = successor {
                    let text = format!("Follow {} (pid {}), started since", s.run.name, s.run.pid);
                    if ui
                        .button(text)
                        .on_hover_text("Show the run that took this one's name in this view")
                        .clicked()
                    {
                        action.follow = Some(s.clone());
                    }
                }
            }));
            ui.add_space(2.0);
        });
        if m.replay.is_some() {
            egui::Panel::top("timeline").show(ui, |ui| {
                commands.extend(self.timeline.ui(ui, m));
            });
        }
        // Side and bottom panels are capped at a share of the window, so a
        // window made smaller (down to 800x500) keeps room for the plots:
        // a panel keeps the size it had, and used to crush them. Made
        // larger again, each gets the size the user chose back.
        let (width, height) = (ui.available_width(), ui.available_height());
        let window_height = ui.ctx().content_rect().height();
        // Open by the window's height until the user says otherwise.
        let mut open = panels
            .messages_open
            .unwrap_or(window_height >= MESSAGES_OPEN_FROM);
        let was_open = open;
        let messages_cap = (0.25 * height).max(70.0);
        let messages = egui::Panel::bottom("messages");
        let messages = if open {
            panels
                .messages
                .apply(messages.resizable(true), 60.0, messages_cap, resized)
        } else {
            // Folded: its one line (the newest message), no resizing; the
            // chosen height comes back when it opens.
            panels.messages.shown = None;
            messages
                .resizable(false)
                .exact_size(ui.spacing().interact_size.y + 6.0)
        };
        let shown = messages.show(ui, |ui| MessagesPanel.ui(ui, m, &mut open));
        if open != was_open {
            panels.messages_open = Some(open);
        } else if open {
            let height = shown.response.rect.height();
            panels.messages.learn(ui, height, messages_cap, resized);
        }
        let values_cap = 0.4 * width;
        let values = panels.values.apply(
            egui::Panel::left("values").resizable(true),
            200.0,
            values_cap,
            resized,
        );
        let shown = values.show(ui, |ui| commands.extend(self.values.ui(ui, m)));
        panels
            .values
            .learn(ui, shown.response.rect.width(), values_cap, resized);
        egui::CentralPanel::default().show(ui, |ui| commands.extend(self.plots.ui(ui, m, others)));
        for c in commands {
            self.send(c);
        }
        action
    }

    /// Shows `found` in this view instead of its lost run: a new
    /// connection and model; the plots and panels stay as they were.
    fn follow(&mut self, rt: &tokio::runtime::Handle, ctx: &egui::Context, found: &FoundRun) {
        let spec = OpenSpec {
            target: found.path.display().to_string(),
            token: None,
        };
        // The old handle goes: its network task stops.
        self.handle = net::open(rt, spec, ctx.clone());
        let was = self.model.pid;
        self.model = RunModel::new(&self.handle.spec.target);
        self.model.followed_from = Some(was);
        self.successor = None;
    }
}

/// A planned screenshot of the window (`--screenshot`).
struct ScreenshotPlan {
    path: PathBuf,
    at: Instant,
    requested: bool,
    exit_after: bool,
    done: Arc<Mutex<Option<String>>>,
}

pub struct InspectorApp {
    rt: tokio::runtime::Handle,
    ctx: egui::Context,
    pub tabs: Vec<RunTab>,
    pub selected: usize,
    runs_panel: RunsPanel,
    local: Arc<Mutex<Option<Vec<FoundRun>>>>,
    /// The last list of local runs taken from `local`.
    local_seen: Vec<FoundRun>,
    pub settings: Settings,
    demo: Option<Demo>,
    /// Recordings replayed in this process, alive while the app is.
    replays: Vec<crate::demo::Replay>,
    /// Recordings being opened (read through on the blocking pool, as a
    /// large one takes a while), for a frame to show.
    opening: Arc<Mutex<Vec<Result<crate::demo::Replay, String>>>>,
    /// What went wrong opening a recording, until the next one opens.
    pub notice: Option<String>,
    /// `--compare`: the first run's plots lay the other runs over theirs.
    compare_on_open: bool,
    /// File > Open recording: the file dialog, while it is up.
    open_dialog: Option<egui_file::FileDialog>,
    /// Where File > Open starts (default: `IDICT_RECORD`'s directory, or
    /// `runs/` here, when there is one).
    pub recordings_dir: Option<PathBuf>,
    screenshot: Option<ScreenshotPlan>,
    /// The window's size in the last frame (a change resizes the panels).
    last_window: Option<egui::Vec2>,
    /// Keeps the runtime alive when the app owns it.
    _runtime: Option<tokio::runtime::Runtime>,
}

impl InspectorApp {
    pub fn new(ctx: egui::Context, rt: tokio::runtime::Handle, settings: Settings) -> Self {
        let local = net::watch_local_runs(&rt, ctx.clone());
        InspectorApp {
            rt,
            ctx,
            tabs: Vec::new(),
            selected: 0,
            runs_panel: RunsPanel::default(),
            local,
            local_seen: Vec::new(),
            settings,
            demo: None,
            replays: Vec::new(),
            opening: Arc::new(Mutex::new(Vec::new())),
            notice: None,
            compare_on_open: false,
            open_dialog: None,
            recordings_dir: None,
            screenshot: None,
            last_window: None,
            _runtime: None,
        }
    }

    /// Hands the app the runtime its network tasks run on, to keep alive.
    pub fn own_runtime(&mut self, rt: tokio::runtime::Runtime) {
        self._runtime = Some(rt);
    }

    /// Opens a run (or selects it if it is open already).
    pub fn open(&mut self, spec: OpenSpec) {
        // Open already (as asked, or by the name the Recent list keeps: a
        // live run of that name, not a replay of one or one that ended).
        let open = self.tabs.iter().position(|t| {
            t.handle.spec == spec
                || (spec.token.is_none()
                    && t.model.name == spec.target
                    && t.model.replay.is_none()
                    && !t.model.ended())
        });
        if let Some(i) = open {
            self.selected = i;
            return;
        }
        let handle = net::open(&self.rt, spec, self.ctx.clone());
        self.tabs.push(RunTab::new(handle));
        self.selected = self.tabs.len() - 1;
    }

    /// Puts runs in the Recent list once their names (or files) are known.
    /// It used to keep only what was typed or given on the command line:
    /// runs opened from the list (by run file) and recordings (opened with
    /// a token) never got in.
    fn remember_recent(&mut self) {
        for tab in self.tabs.iter_mut().filter(|t| !t.in_recent) {
            // Until the run's info comes, its name is what was asked for.
            if tab.model.pid == 0 {
                continue;
            }
            tab.in_recent = true;
            if let Some(entry) = tab.recent_entry() {
                let recent = &mut self.settings.recent;
                recent.retain(|r| *r != entry);
                recent.insert(0, entry);
                recent.truncate(MAX_RECENT);
            }
        }
    }

    /// Opens a recording as a replay in this process (File > Open, a
    /// dropped file, a path in the Connect field); it shows once read.
    pub fn open_recording(&mut self, path: PathBuf) {
        let path = std::path::absolute(&path).unwrap_or(path);
        let shown = path.display().to_string();
        if let Some(i) = self
            .tabs
            .iter()
            .position(|t| t.model.replay_of.as_deref() == Some(shown.as_str()))
        {
            self.selected = i;
            return;
        }
        // The next File > Open starts here.
        self.settings.last_folder = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map(PathBuf::from);
        let (slot, ctx) = (self.opening.clone(), self.ctx.clone());
        self.rt.spawn_blocking(move || {
            let opened = crate::demo::Replay::start(&path)
                .map_err(|e| format!("cannot open {}: {e}", path.display()));
            slot.lock().push(opened);
            ctx.request_repaint();
        });
    }

    /// File > Open recording: a file dialog showing recordings (from
    /// `IDICT_RECORD`'s directory, or `runs/` here, when there is one).
    /// The dialog lists a directory on the UI thread when it opens one (a
    /// `read_dir`, not per frame): the one file I/O the UI thread does, at
    /// the user's asking.
    pub fn show_open_dialog(&mut self) {
        // Each candidate on its own, made absolute (a relative one left
        // the dialog's Up button at an empty path).
        let env = std::env::var_os("IDICT_RECORD").map(PathBuf::from);
        let start = [
            self.recordings_dir.clone(),
            self.settings.last_folder.clone(),
            env,
            Some(PathBuf::from("runs")),
        ]
        .into_iter()
        .flatten()
        .find(|d| d.is_dir())
        .or_else(|| std::env::current_dir().ok())
        .and_then(|d| std::path::absolute(d).ok());
        let filter: egui_file::Filter<PathBuf> = Box::new(|p: &std::path::Path| {
            idict::recording::is_recording_path(&p.to_string_lossy())
        });
        let mut dialog = egui_file::FileDialog::open_file()
            .title("Open a recording")
            .show_rename(false)
            .show_new_folder(false)
            .show_files_filter(filter);
        if let Some(dir) = start {
            dialog = dialog.initial_path(dir);
        }
        dialog.open();
        self.open_dialog = Some(dialog);
        self.ctx.request_repaint();
    }

    /// The file dialog, while it is up; opens what it picked.
    fn file_dialog(&mut self, ctx: &egui::Context) {
        let Some(dialog) = self.open_dialog.as_mut() else {
            return;
        };
        dialog.show(ctx);
        match dialog.state() {
            egui_file::State::Open => {}
            egui_file::State::Selected => {
                let picked = dialog.path().map(|p| p.to_path_buf());
                self.open_dialog = None;
                if let Some(path) = picked {
                    self.open_recording(path);
                }
            }
            _ => self.open_dialog = None,
        }
    }

    /// Takes the recordings opened since the last frame, and files dropped
    /// on the window.
    fn take_recordings(&mut self, ctx: &egui::Context) {
        let dropped: Vec<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        });
        for path in dropped {
            if idict::recording::is_recording_path(&path.to_string_lossy()) {
                self.open_recording(path);
            } else {
                self.notice = Some(format!(
                    "{} is not a recording (FILE.idrec, from --record)",
                    path.display()
                ));
            }
        }
        let opened: Vec<_> = self
            .opening
            .try_lock()
            .map(|mut o| std::mem::take(&mut *o))
            .unwrap_or_default();
        for r in opened {
            match r {
                Ok(replay) => {
                    self.notice = None;
                    self.attach_replay(replay);
                }
                Err(e) => self.notice = Some(e),
            }
        }
    }

    /// The first run's plots compare with every other run open
    /// (`idict-inspector A.idrec B.idrec --compare`), once they are made.
    pub fn compare_with_others_on_open(&mut self) {
        self.compare_on_open = true;
        self.selected = 0;
    }

    /// Shows a recording replayed in this process (paused at its start).
    pub fn attach_replay(&mut self, replay: crate::demo::Replay) {
        self.open(OpenSpec {
            target: replay.address.clone(),
            token: Some(replay.controller_token.clone()),
        });
        self.replays.push(replay);
    }

    /// Starts showing the built-in demo computation.
    pub fn attach_demo(&mut self, demo: Demo) {
        self.open(OpenSpec {
            target: demo.address.clone(),
            token: Some(demo.controller_token.clone()),
        });
        self.demo = Some(demo);
    }

    /// Saves a PNG of the window to `path` after `delay`, then (optionally) exits.
    pub fn screenshot_after(&mut self, path: PathBuf, delay: Duration, exit_after: bool) {
        self.screenshot = Some(ScreenshotPlan {
            path,
            at: Instant::now() + delay,
            requested: false,
            exit_after,
            done: Arc::new(Mutex::new(None)),
        });
    }

    /// The settings as they should be saved now.
    pub fn settings_to_save(&self) -> Settings {
        let mut s = self.settings.clone();
        for tab in &self.tabs {
            if tab.plots_ready {
                s.plots
                    .insert(tab.model.name.clone(), tab.plots.plots.clone());
            }
        }
        s
    }

    /// Draws the whole window.
    pub fn ui_root(&mut self, ui: &mut egui::Ui) {
        self.take_screenshot_when_due(ui.ctx());
        for tab in &mut self.tabs {
            tab.refresh(ui.ctx());
        }
        // Same rule as the inboxes: a swap's worth of lock, never a wait.
        if let Some(found) = self.local.try_lock().and_then(|mut news| news.take()) {
            self.local_seen = found;
        }
        self.follow_restarted_runs();
        self.remember_recent();
        self.file_dialog(ui.ctx());
        self.take_recordings(ui.ctx());
        let window = ui.ctx().content_rect().size();
        let resized = self.last_window != Some(window);
        self.last_window = Some(window);
        self.settings.window = Some([window.x, window.y]);
        let models: Vec<&RunModel> = self.tabs.iter().map(|t| &t.model).collect();
        let (local, recent) = (&self.local_seen, &self.settings.recent);
        let mut action = None;
        let mut wants_dialog = false;
        let width = ui.available_width();
        let runs_cap = 0.2 * width;
        let runs = self.settings.panels.runs.apply(
            egui::Panel::left("runs").resizable(true),
            120.0,
            runs_cap,
            resized,
        );
        let shown = runs.show(ui, |ui| {
            let mut open = false;
            egui::containers::menu::MenuBar::new().ui(ui, |ui| {
                ui.menu_button("File", |ui| {
                    open = ui
                        .button("Open recording…")
                        .on_hover_text("A recording (FILE.idrec, from --record), replayed here")
                        .clicked();
                });
            });
            if open {
                wants_dialog = true;
            }
            egui::ScrollArea::vertical()
                .id_salt("runs-list")
                .show(ui, |ui| {
                    action = self
                        .runs_panel
                        .ui(ui, &models, &mut self.selected, local, recent);
                    if let Some(n) = &self.notice {
                        ui.label(RichText::new(n).color(ui.visuals().error_fg_color));
                    }
                });
        });
        self.settings
            .panels
            .runs
            .learn(ui, shown.response.rect.width(), runs_cap, resized);
        if wants_dialog {
            self.show_open_dialog();
        }
        match action {
            Some(RunsAction::Open(spec)) if idict::recording::is_recording_path(&spec.target) => {
                self.open_recording(PathBuf::from(spec.target));
            }
            Some(RunsAction::Open(spec)) => self.open(spec),
            Some(RunsAction::Close(i)) if i < self.tabs.len() => {
                self.tabs.remove(i);
                self.selected = self.selected.min(self.tabs.len().saturating_sub(1));
            }
            _ => {}
        }
        let at = self.selected.min(self.tabs.len());
        let (before, rest) = self.tabs.split_at_mut(at);
        let Some((tab, after)) = rest.split_first_mut() else {
            egui::CentralPanel::default().show(ui, |ui| {
                ui.heading("idict inspector");
                ui.label("Open a run from the list on the left, or connect to an address.");
                ui.label("To start one: cargo run --release -p idict-examples --bin heat");
            });
            return;
        };
        if !tab.plots_ready && !tab.model.series.is_empty() {
            tab.plots.plots = self
                .settings
                .plots
                .get(&tab.model.name)
                .cloned()
                .unwrap_or_else(|| default_plots(&tab.model));
            tab.plots_ready = true;
            if self.compare_on_open && at == 0 {
                let others: Vec<String> = after.iter().map(|t| t.model.target.clone()).collect();
                for cfg in &mut tab.plots.plots {
                    cfg.compare = others.clone();
                }
            }
        }
        let note = self
            .screenshot
            .as_ref()
            .and_then(|plan| plan.done.lock().clone());
        let others: Vec<&RunModel> = before
            .iter()
            .chain(after.iter())
            .map(|t| &t.model)
            .collect();
        let action = tab.ui(
            ui,
            note.as_deref(),
            &others,
            &mut self.settings.panels,
            resized,
        );
        if let Some(found) = action.follow {
            tab.follow(&self.rt, &self.ctx, &found);
        }
        if action.save_png {
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            self.screenshot_after(
                PathBuf::from(format!("idict-inspector-{stamp}.png")),
                Duration::ZERO,
                false,
            );
        }
    }

    /// A view whose run was killed and started again under the same name
    /// follows the new run (or offers to, when it cannot be sure).
    fn follow_restarted_runs(&mut self) {
        let models: Vec<&RunModel> = self.tabs.iter().map(|t| &t.model).collect();
        let found: Vec<crate::follow::Successor> = models
            .iter()
            .map(|m| crate::follow::successor(m, &self.local_seen, &models))
            .collect();
        let decisions: Vec<(bool, Option<FoundRun>)> = found
            .into_iter()
            .map(|s| match s {
                crate::follow::Successor::None => (false, None),
                crate::follow::Successor::Offer(r) => (false, Some(r.clone())),
                crate::follow::Successor::Follow(r) => (true, Some(r.clone())),
            })
            .collect();
        for (tab, (now, run)) in self.tabs.iter_mut().zip(decisions) {
            match (now, run) {
                (true, Some(r)) => tab.follow(&self.rt, &self.ctx, &r),
                (_, r) => tab.successor = r,
            }
        }
    }

    fn take_screenshot_when_due(&mut self, ctx: &egui::Context) {
        let Some(plan) = &mut self.screenshot else {
            return;
        };
        if let Some(note) = plan.done.lock().as_ref() {
            if plan.exit_after {
                eprintln!("{note}");
                ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            }
            return;
        }
        if plan.requested {
            return;
        }
        if Instant::now() < plan.at {
            ctx.request_repaint_after(plan.at - Instant::now());
            return;
        }
        plan.requested = true;
        let (path, done, ctx2) = (plan.path.clone(), plan.done.clone(), ctx.clone());
        ctx.request_screenshot(move |image| {
            let note = match save_png(&path, &image) {
                Ok(()) => format!("saved {}", path.display()),
                Err(e) => format!("could not save {}: {e}", path.display()),
            };
            *done.lock() = Some(note);
            ctx2.request_repaint();
        });
        ctx.request_repaint();
    }
}

/// Encodes an egui image as PNG.
pub fn save_png(path: &std::path::Path, image: &egui::ColorImage) -> Result<(), String> {
    let file = std::fs::File::create(path).map_err(|e| e.to_string())?;
    let [w, h] = image.size;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w as u32, h as u32);
    enc.set_color(png::ColorType::Rgba);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().map_err(|e| e.to_string())?;
    let rgba: Vec<u8> = image
        .pixels
        .iter()
        .flat_map(|c| c.to_srgba_unmultiplied())
        .collect();
    writer.write_image_data(&rgba).map_err(|e| e.to_string())
}

impl eframe::App for InspectorApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        crate::net::frame_started();
        self.ui_root(ui);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, "settings", &self.settings_to_save());
    }

    /// Saved every few seconds, not only at a clean exit: a window closed
    /// by a killed session (or a crash) kept what it had at launch.
    fn auto_save_interval(&self) -> Duration {
        Duration::from_secs(5)
    }
}
