//! The Batch page: pick (or drop) an input and an output folder, set the
//! options, start; then progress, pause/resume/cancel, the per-file list and
//! the failure report. The batch itself runs on its own thread
//! ([`BatchHandle`]); this module only shows its state and sends commands.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use egui::{Color32, RichText};

use crate::engine::batch::{
    BatchEvent, BatchHandle, BatchSettings, BatchUpdate, IfExists, Plan, Summary, failures_csv,
    review_csv,
};
use crate::engine::encode::OutputFormat;
use crate::engine::quality::Quality;
use crate::engine::review::{NEEDS_REVIEW_BELOW, Review};
use crate::engine::watch::WatchHandle;
use crate::presets::Preset;

use super::QUALITY_HINT;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileState {
    Waiting,
    Done,
    Failed(String),
    Cancelled,
}

/// One batch, started from the panel.
pub struct BatchRun {
    pub handle: BatchHandle,
    pub plan: Option<Plan>,
    pub files: Vec<FileState>,
    pub done: usize,
    pub failures: Vec<(PathBuf, String)>,
    /// `(job index, review)` of each image done in this run.
    pub reviews: Vec<(usize, Review)>,
    pub summary: Option<Summary>,
    pub error: Option<String>,
    pub paused: bool,
    started: Instant,
    /// Time spent paused, left out of the rate.
    paused_for: Duration,
    paused_at: Option<Instant>,
}

impl BatchRun {
    pub fn new(handle: BatchHandle) -> Self {
        Self {
            handle,
            plan: None,
            files: Vec::new(),
            done: 0,
            failures: Vec::new(),
            reviews: Vec::new(),
            summary: None,
            error: None,
            paused: false,
            started: Instant::now(),
            paused_for: Duration::ZERO,
            paused_at: None,
        }
    }

    pub fn is_finished(&self) -> bool {
        self.summary.is_some() || self.error.is_some()
    }

    pub fn total(&self) -> usize {
        self.plan.as_ref().map_or(0, |p| p.jobs.len())
    }

    /// Applies the batch thread's news.
    pub fn update(&mut self) {
        for update in self.handle.poll() {
            match update {
                BatchUpdate::Planned(plan) => {
                    self.files = vec![FileState::Waiting; plan.jobs.len()];
                    self.plan = Some(plan);
                    self.started = Instant::now();
                }
                BatchUpdate::Event(BatchEvent::Done { index, review, .. }) => {
                    self.done += 1;
                    self.reviews.push((index, review));
                    self.set(index, FileState::Done);
                }
                BatchUpdate::Event(BatchEvent::Failed { index, reason }) => {
                    if let Some(job) = self.plan.as_ref().and_then(|p| p.jobs.get(index)) {
                        self.failures.push((job.relative.clone(), reason.clone()));
                    }
                    self.set(index, FileState::Failed(reason));
                }
                BatchUpdate::Event(BatchEvent::Cancelled { index }) => {
                    self.set(index, FileState::Cancelled)
                }
                BatchUpdate::Finished(summary) => self.summary = Some(summary),
                BatchUpdate::Failed(message) => self.error = Some(message),
            }
        }
    }

    fn set(&mut self, index: usize, state: FileState) {
        if let Some(slot) = self.files.get_mut(index) {
            *slot = state;
        }
    }

    /// The images to look at, least sure first: `(input, relative, review)`,
    /// those of this run and those an earlier run (or an earlier round of a
    /// watched folder) did in `input_folder`.
    pub fn needs_review(&self, input_folder: &Path) -> Vec<(PathBuf, &Path, &Review)> {
        let Some(plan) = &self.plan else {
            return Vec::new();
        };
        let earlier = plan
            .reviewed_earlier
            .iter()
            .filter(|(_, r)| r.needs_review())
            .map(|(relative, r)| (input_folder.join(relative), relative.as_path(), r));
        let mut list: Vec<_> = self
            .reviews
            .iter()
            .filter(|(_, r)| r.needs_review())
            .filter_map(|(index, r)| {
                let job = plan.jobs.get(*index)?;
                Some((job.input.clone(), job.relative.as_path(), r))
            })
            .chain(earlier)
            .collect();
        list.sort_by(|a, b| a.2.score.cmp(&b.2.score).then_with(|| a.1.cmp(b.1)));
        list
    }

    /// Every review of the run (and of the images an earlier run did) as CSV.
    pub fn review_report(&self) -> String {
        let mut all: Vec<(PathBuf, Review)> = Vec::new();
        if let Some(plan) = &self.plan {
            all.extend(plan.reviewed_earlier.iter().cloned());
            all.extend(self.reviews.iter().filter_map(|(index, r)| {
                Some((plan.jobs.get(*index)?.relative.clone(), r.clone()))
            }));
        }
        review_csv(&all)
    }

    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
        self.handle.control.set_paused(paused);
        match (paused, self.paused_at.take()) {
            (true, _) => self.paused_at = Some(Instant::now()),
            (false, Some(at)) => self.paused_for += at.elapsed(),
            (false, None) => {}
        }
    }

    pub fn cancel(&mut self) {
        self.handle.control.cancel();
    }

    /// Images per minute so far, not counting pauses.
    pub fn per_minute(&self) -> f64 {
        let paused = self.paused_for + self.paused_at.map_or(Duration::ZERO, |at| at.elapsed());
        let working = self.started.elapsed().saturating_sub(paused).as_secs_f64();
        let handled = self.done + self.failures.len();
        if working < 1.0 || handled == 0 {
            return 0.0;
        }
        handled as f64 * 60.0 / working
    }

    pub fn eta(&self) -> Option<Duration> {
        let rate = self.per_minute();
        let left = self.total().saturating_sub(self.done + self.failures.len());
        (rate > 0.0).then(|| Duration::from_secs_f64(left as f64 * 60.0 / rate))
    }
}

/// The panel's choices and the current run.
#[derive(Default)]
pub struct BatchPanel {
    pub input: Option<PathBuf>,
    pub output: Option<PathBuf>,
    pub settings: BatchSettings,
    pub run: Option<BatchRun>,
    /// "Keep watching": Start watches the input folder instead of running once.
    pub keep_watching: bool,
    /// The watch on the input folder, while it runs.
    pub watch: Option<WatchHandle>,
    /// Files the watch found that wait for the run in progress to finish.
    pub arrived: BTreeSet<PathBuf>,
    /// Images done by the finished runs of this watch.
    pub watched_done: usize,
}

/// What the panel asks of the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchAction {
    None,
    ChooseInput,
    ChooseOutput,
    Start,
    CopyReport(String),
    SaveReport(String),
    /// Save the review list (`file,score,reasons`).
    SaveReviewReport(String),
    OpenOutput(PathBuf),
    /// Open this input in the editor, to touch up its mask.
    OpenForReview(PathBuf),
    /// Take the export settings of the app's `presets[index]`.
    ApplyPreset(usize),
    /// End "Keep watching" (a run in progress finishes).
    StopWatching,
    /// Fast (int8) or balanced, for the batch and the workspace alike.
    SetSpeed(crate::engine::inference::Speed),
}

fn folder_label(folder: &Option<PathBuf>) -> String {
    folder
        .as_ref()
        .map_or_else(|| "not chosen".to_string(), |p| p.display().to_string())
}

fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{} h {:02} min", s / 3600, (s % 3600) / 60)
    } else {
        format!("{} min {:02} s", s / 60, s % 60)
    }
}

impl BatchPanel {
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        presets: &[Preset],
        speed: crate::engine::inference::Speed,
    ) -> BatchAction {
        let mut action = BatchAction::None;
        let watching = self.watch.is_some();
        // Folders and options stay as they are while a run or a watch uses them.
        let running = self.run.as_ref().is_some_and(|r| !r.is_finished()) || watching;
        ui.heading("Batch export");
        ui.label("Remove the backgrounds of a whole folder. Drop a folder here or choose one.");
        ui.add_space(8.0);
        egui::Grid::new("batch folders")
            .num_columns(2)
            .spacing([12.0, 6.0])
            .show(ui, |ui| {
                if ui
                    .add_enabled(!running, egui::Button::new("Input folder…"))
                    .clicked()
                {
                    action = BatchAction::ChooseInput;
                }
                ui.label(folder_label(&self.input));
                ui.end_row();
                if ui
                    .add_enabled(!running, egui::Button::new("Output folder…"))
                    .clicked()
                {
                    action = BatchAction::ChooseOutput;
                }
                ui.label(folder_label(&self.output));
                ui.end_row();
            });
        ui.add_space(8.0);
        ui.add_enabled_ui(!running, |ui| {
            if let Some(index) = preset_choice(ui, presets) {
                action = BatchAction::ApplyPreset(index);
            }
            self.options_ui(ui);
            ui.horizontal(|ui| {
                ui.label("Speed:");
                if let Some(speed) = super::speed_choice(ui, speed) {
                    action = BatchAction::SetSpeed(speed);
                }
            });
        });
        ui.add_space(8.0);

        let ready = self.input.is_some() && self.output.is_some();
        ui.horizontal(|ui| {
            if watching {
                if ui.button("Stop watching").clicked() {
                    action = BatchAction::StopWatching;
                }
            } else if ui
                .add_enabled(ready && !running, egui::Button::new("Start"))
                .on_disabled_hover_text("Choose an input and an output folder first")
                .clicked()
            {
                action = BatchAction::Start;
            }
            ui.add_enabled(
                !running,
                egui::Checkbox::new(&mut self.keep_watching, "Keep watching"),
            )
            .on_hover_text(
                "Go on after the folder is done: images that arrive in it later (or change) are \
                 processed too, each once it is fully copied",
            );
            if let Some(run) = self.run.as_mut().filter(|r| !r.is_finished()) {
                let label = if run.paused { "Resume" } else { "Pause" };
                if ui.button(label).clicked() {
                    let paused = !run.paused;
                    run.set_paused(paused);
                }
                if ui.button("Cancel").clicked() {
                    run.cancel();
                    if watching {
                        action = BatchAction::StopWatching;
                    }
                }
            }
        });
        if watching && let Some(input) = &self.input {
            ui.add_space(6.0);
            ui.horizontal(|ui| {
                super::busy::busy_mark(ui, "watching");
                let done = self.watched_done + self.run.as_ref().map_or(0, |r| r.done);
                ui.label(format!(
                    "Watching {}: {done} done so far; new images are processed once fully copied",
                    input.display()
                ));
            });
        }
        if let Some(run) = &self.run {
            ui.add_space(8.0);
            if let Some(a) = self.progress_ui(ui, run) {
                action = a;
            }
        }
        action
    }

    fn options_ui(&mut self, ui: &mut egui::Ui) {
        let s = &mut self.settings;
        ui.checkbox(&mut s.include_subfolders, "Include subfolders");
        ui.checkbox(&mut s.mirror, "Recreate the folder tree in the output");
        ui.horizontal(|ui| {
            super::editor::format_choice(ui, "Format", &mut s.format);
            if s.format == OutputFormat::Jpeg {
                ui.label("on");
                ui.color_edit_button_srgb(&mut s.background.0);
            }
        });
        ui.horizontal(|ui| {
            ui.label("File name");
            ui.add(egui::TextEdit::singleline(&mut s.pattern).desired_width(160.0))
                .on_hover_text(
                    "{name}: the input's name without extension; {ext}: the format's extension",
                );
        });
        ui.horizontal(|ui| {
            egui::ComboBox::from_label("Quality")
                .selected_text(s.quality.label())
                .show_ui(ui, |ui| {
                    for q in Quality::ALL {
                        ui.selectable_value(&mut s.quality, q, q.label());
                    }
                })
                .response
                .on_hover_text(QUALITY_HINT);
        });
        ui.horizontal(|ui| {
            ui.label("If the file exists:");
            ui.radio_value(&mut s.if_exists, IfExists::Skip, "skip");
            ui.radio_value(&mut s.if_exists, IfExists::Overwrite, "overwrite");
            ui.radio_value(&mut s.if_exists, IfExists::KeepBoth, "keep both");
        });
    }

    fn progress_ui(&self, ui: &mut egui::Ui, run: &BatchRun) -> Option<BatchAction> {
        let mut action = None;
        if let Some(error) = &run.error {
            ui.colored_label(ui.visuals().error_fg_color, error);
            return None;
        }
        let Some(plan) = &run.plan else {
            ui.horizontal(|ui| {
                super::busy::busy_mark(ui, "loading");
                ui.label("Loading the model and reading the folder…");
            });
            return None;
        };
        let total = plan.jobs.len();
        let handled = run.done + run.failures.len();
        let fraction = if total == 0 {
            1.0
        } else {
            handled as f32 / total as f32
        };
        let mut text = format!("{} / {total} done", run.done);
        if !run.failures.is_empty() {
            text.push_str(&format!(", {} failed", run.failures.len()));
        }
        ui.add(egui::ProgressBar::new(fraction).text(text));
        let mut line = format!("{:.1} images/min", run.per_minute());
        if run.paused {
            line.push_str(" · paused");
        } else if let Some(eta) = run.eta().filter(|_| !run.is_finished()) {
            line.push_str(&format!(" · about {} left", format_duration(eta)));
        }
        ui.label(line);
        let skipped = plan.skipped_summary();
        if !skipped.is_empty() {
            ui.label(format!("Skipped: {}", skipped.join(", ")));
        }
        if let Some(summary) = &run.summary {
            let mut text = format!(
                "Finished: {} done, {} failed",
                summary.done,
                summary.failures.len()
            );
            if summary.cancelled > 0 {
                text.push_str(&format!(", {} cancelled", summary.cancelled));
            }
            ui.label(RichText::new(text).strong());
            if let Some(out) = &self.output
                && ui.button("Open output folder").clicked()
            {
                action = Some(BatchAction::OpenOutput(out.clone()));
            }
        }
        if !run.failures.is_empty() {
            ui.add_space(6.0);
            ui.horizontal(|ui| {
                ui.label(RichText::new("Failures").strong());
                let csv = failures_csv(&run.failures);
                if ui.button("Copy report").clicked() {
                    action = Some(BatchAction::CopyReport(csv.clone()));
                }
                if ui.button("Save report…").clicked() {
                    action = Some(BatchAction::SaveReport(csv));
                }
            });
            for (file, reason) in &run.failures {
                ui.colored_label(
                    ui.visuals().error_fg_color,
                    format!("{} — {reason}", file.display()),
                );
            }
        }
        if run.summary.is_some()
            && let Some(input) = &self.input
            && let Some(a) = review_ui(ui, run, input)
        {
            action = Some(a);
        }
        ui.add_space(6.0);
        egui::ScrollArea::vertical()
            .max_height(260.0)
            .auto_shrink([false, true])
            .show(ui, |ui| {
                for (job, state) in plan.jobs.iter().zip(&run.files) {
                    let (label, colour) = match state {
                        FileState::Waiting => ("waiting", ui.visuals().weak_text_color()),
                        FileState::Done => ("done", Color32::from_rgb(60, 150, 90)),
                        FileState::Failed(_) => ("failed", ui.visuals().error_fg_color),
                        FileState::Cancelled => ("cancelled", ui.visuals().weak_text_color()),
                    };
                    ui.horizontal(|ui| {
                        ui.colored_label(colour, label);
                        ui.label(job.relative.display().to_string());
                    });
                }
            });
        action
    }
}

/// The export presets, one click to take one (format, background, pattern,
/// quality here; edges and layout in the inspector, which the batch uses).
fn preset_choice(ui: &mut egui::Ui, presets: &[Preset]) -> Option<usize> {
    let mut chosen = None;
    egui::ComboBox::from_label("Preset")
        .selected_text("Choose…")
        .show_ui(ui, |ui| {
            for (index, preset) in presets.iter().enumerate() {
                if ui
                    .selectable_label(false, &preset.name)
                    .on_hover_text(preset.summary())
                    .clicked()
                {
                    chosen = Some(index);
                }
            }
        });
    chosen
}

/// "Needs review (N)": the least sure masks first, each one click from the
/// editor.
fn review_ui(ui: &mut egui::Ui, run: &BatchRun, input: &Path) -> Option<BatchAction> {
    let mut action = None;
    let list = run.needs_review(input);
    ui.add_space(6.0);
    ui.horizontal(|ui| {
        ui.label(RichText::new(format!("Needs review ({})", list.len())).strong())
            .on_hover_text(format!(
                "Masks the model was unsure of (confidence below {NEEDS_REVIEW_BELOW} of 100), \
                 least sure first"
            ));
        if !run.reviews.is_empty() && ui.button("Save review list…").clicked() {
            action = Some(BatchAction::SaveReviewReport(run.review_report()));
        }
    });
    if list.is_empty() {
        ui.weak("None: the model was sure of every mask.");
        return action;
    }
    egui::ScrollArea::vertical()
        .id_salt("needs review")
        .max_height(200.0)
        .auto_shrink([false, true])
        .show(ui, |ui| {
            for (input, relative, review) in list {
                ui.horizontal(|ui| {
                    ui.colored_label(ui.visuals().warn_fg_color, format!("{:>3}", review.score));
                    if ui
                        .link(relative.display().to_string())
                        .on_hover_text(super::workspace::review_hover(review))
                        .clicked()
                    {
                        action = Some(BatchAction::OpenForReview(input.clone()));
                    }
                    ui.weak(review.reasons_text());
                });
            }
        });
    action
}

/// Opens a folder in the system's file manager.
pub fn open_folder(path: &Path) -> std::io::Result<()> {
    let program = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(windows) {
        "explorer"
    } else {
        "xdg-open"
    };
    std::process::Command::new(program)
        .arg(path)
        .spawn()
        .map(|_| ())
}
