//! What commands do to the workspace, the engine, the models and the batch:
//! opening images, edits, switching models or quality, file dialogs' answers.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Notice;
use super::batch_panel::{self, BatchAction, BatchRun};
use super::dialogs::{Answerer, DialogAnswer, DialogKind, DialogPurpose, DialogRequest};
use super::editor::EditAction;
use super::models_page::ModelsAction;
use super::tasks::TaskResult;
use super::worker::{ImageId, ImageSource};
use super::{DesktopApp, EngineStatus, Page, Status, display_name, expand_folders, spawn_worker};

impl DesktopApp {
    /// What the Batch page asked for.
    pub(super) fn batch_action(&mut self, action: BatchAction) {
        match action {
            BatchAction::None => {}
            BatchAction::ChooseInput => self.ask(DialogRequest::new(
                DialogPurpose::BatchInput,
                DialogKind::PickFolder,
            )),
            BatchAction::ChooseOutput => self.ask(DialogRequest::new(
                DialogPurpose::BatchOutput,
                DialogKind::PickFolder,
            )),
            BatchAction::Start => self.start_batch(),
            BatchAction::CopyReport(csv) => {
                match arboard::Clipboard::new().and_then(|mut c| c.set_text(csv)) {
                    Ok(()) => self.notify("failure report copied", false),
                    Err(e) => self.notify(format!("could not copy ({e})"), true),
                }
            }
            BatchAction::SaveReport(csv) => self.ask(
                DialogRequest::new(
                    DialogPurpose::SaveReport(csv),
                    DialogKind::Save {
                        file_name: "failures.csv".into(),
                    },
                )
                .filter("CSV", &["csv"]),
            ),
            BatchAction::SaveReviewReport(csv) => self.ask(
                DialogRequest::new(
                    DialogPurpose::SaveReport(csv),
                    DialogKind::Save {
                        file_name: "review.csv".into(),
                    },
                )
                .filter("CSV", &["csv"]),
            ),
            BatchAction::OpenForReview(input) => self.open_for_review(input),
            BatchAction::ApplyPreset(index) => self.apply_preset(index),
            BatchAction::SetSpeed(speed) => self.set_speed(speed),
            BatchAction::StopWatching => {
                self.batch.watch = None;
                self.batch.arrived.clear();
            }
            BatchAction::OpenOutput(folder) => {
                if let Err(e) = batch_panel::open_folder(&folder) {
                    self.notify(
                        format!("cannot open the folder ({e}): {}", folder.display()),
                        true,
                    );
                }
            }
        }
    }

    /// Takes a preset's export settings: format, background, edges and
    /// layout for the inspector, and format, background, JPEG quality,
    /// pattern and quality pass for the Batch page.
    pub(super) fn apply_preset(&mut self, index: usize) {
        let Some(preset) = self.presets.get(index).cloned() else {
            return;
        };
        self.format = preset.format;
        self.view.background = match preset.background {
            Some(colour) => crate::composite::Background::Colour(colour.0),
            None => crate::composite::Background::Transparent,
        };
        self.finish = preset.finish;
        let batch = &mut self.batch.settings;
        batch.format = preset.format;
        batch.background = preset.background_colour();
        batch.jpeg_quality = preset.jpeg_quality;
        batch.pattern = preset.pattern.clone();
        batch.quality = preset.quality;
        let best = preset.quality == crate::engine::quality::Quality::Best;
        if best != self.best_quality() {
            self.set_best_quality(best);
        }
        self.edit(EditAction::SettingsChanged);
        self.notify(format!("preset: {}", preset.name), false);
    }

    /// Saves the current export settings as a preset (off the UI thread),
    /// then reads every preset again.
    pub(super) fn save_preset(&mut self, name: String) {
        let background = match &self.view.background {
            crate::composite::Background::Colour(rgb) => Some(crate::engine::encode::Rgb8(*rgb)),
            _ => None,
        };
        let quality = if self.best_quality() {
            crate::engine::quality::Quality::Best
        } else {
            crate::engine::quality::Quality::Standard
        };
        let preset = crate::presets::Preset {
            name: name.trim().to_string(),
            format: self.format,
            jpeg_quality: self.batch.settings.jpeg_quality,
            background,
            finish: self.finish,
            quality,
            pattern: self.batch.settings.pattern.clone(),
        };
        let config = self.dirs.config.clone();
        self.spawn_task(move || {
            let name = preset.name.clone();
            match crate::presets::save_as(&config, preset) {
                Ok(()) => {
                    let mut results = vec![TaskResult::Notice(Notice {
                        text: format!("saved preset {name}"),
                        is_error: false,
                    })];
                    if let Ok(all) = crate::presets::all(&config) {
                        results.push(TaskResult::Presets(all));
                    }
                    results
                }
                Err(e) => vec![TaskResult::Notice(Notice {
                    text: e.to_string(),
                    is_error: true,
                })],
            }
        });
    }

    /// Shows `input` in the editor: selects it when it is open already,
    /// else opens it (the model redoes its mask, ready for touch-ups).
    fn open_for_review(&mut self, input: PathBuf) {
        let open = self
            .workspace
            .items
            .iter()
            .position(|i| i.path.as_deref() == Some(input.as_path()));
        match open {
            Some(index) => self.workspace.selected = Some(index),
            None => {
                self.open_paths(vec![input]);
                if !self.workspace.items.is_empty() {
                    self.workspace.selected = Some(self.workspace.items.len() - 1);
                }
            }
        }
        self.page = Page::Workspace;
    }

    /// Starts the batch panel's batch on its own thread, or with "Keep
    /// watching" on, the watch that starts one whenever images arrive.
    pub fn start_batch(&mut self) {
        if self.batch.keep_watching {
            self.start_watch();
        } else {
            self.start_batch_of(None);
        }
    }

    /// The Batch page's settings with the inspector's edges and layout and
    /// the brush edits of any of the folder's images open in the workspace.
    fn batch_settings(&self) -> crate::engine::batch::BatchSettings {
        let mut settings = self.batch.settings.clone();
        settings.model = self.model.clone();
        settings.finish = self.finish;
        settings.partials = self.partials_journal();
        settings.edits = self
            .workspace
            .items
            .iter()
            .filter(|i| !i.strokes.is_empty())
            .filter_map(|i| {
                let path = i.path.as_ref()?;
                let key = path.canonicalize().unwrap_or_else(|_| path.clone());
                Some((key, i.strokes.clone()))
            })
            .collect();
        settings
    }

    /// A batch over the input folder, or over `only` of its files.
    pub(super) fn start_batch_of(&mut self, only: Option<std::collections::BTreeSet<PathBuf>>) {
        let (Some(input), Some(output)) = (self.batch.input.clone(), self.batch.output.clone())
        else {
            return;
        };
        let settings = self.batch_settings();
        let wake_ctx = self.ctx.clone();
        let (handle, job) = crate::engine::batch::BatchHandle::new(
            crate::engine::batch::BatchRequest {
                input,
                output,
                settings,
                only,
            },
            Arc::new(move || wake_ctx.request_repaint()),
        );
        // The workspace's worker runs it: one ONNX session for both.
        if self.worker.start_batch(job) {
            self.batch.run = Some(BatchRun::new(handle));
        } else {
            self.notify("a batch is already starting", true);
        }
    }

    /// Watches the input folder: what is there and what arrives is run as
    /// a batch once it has stopped changing (see `drain_events`).
    fn start_watch(&mut self) {
        let (Some(input), Some(output)) = (self.batch.input.clone(), self.batch.output.clone())
        else {
            return;
        };
        let wake_ctx = self.ctx.clone();
        match crate::engine::watch::WatchHandle::spawn(
            &input,
            &output,
            self.batch_settings(),
            crate::engine::watch::DEFAULT_SETTLE,
            crate::engine::watch::DEFAULT_RESCAN,
            Arc::new(move || wake_ctx.request_repaint()),
        ) {
            Ok(watch) => {
                self.batch.watch = Some(watch);
                self.batch.watched_done = 0;
            }
            Err(e) => self.notify(e.to_string(), true),
        }
    }

    /// Runs what the watch found, once the batch before it has finished.
    pub(super) fn run_watched_arrivals(&mut self) {
        let Some(watch) = &self.batch.watch else {
            return;
        };
        self.batch.arrived.extend(watch.poll());
        let running = self.batch.run.as_ref().is_some_and(|r| !r.is_finished());
        if running || self.batch.arrived.is_empty() {
            return;
        }
        if let Some(run) = &self.batch.run {
            self.batch.watched_done += run.done;
        }
        let only = std::mem::take(&mut self.batch.arrived);
        self.start_batch_of(Some(only));
    }

    /// Switches to another installed model: a new worker loads it, and every
    /// open image is processed again from its decoded pixels.
    pub fn switch_model(&mut self, id: &str) {
        if id == self.model {
            return;
        }
        self.model = id.to_string();
        self.reload_engine();
    }

    /// A new worker for the current model (after a switch, or once the
    /// missing model was installed); open images are processed again.
    pub(super) fn reload_engine(&mut self) {
        let worker = spawn_worker(
            &self.ctx,
            &self.dirs,
            (&self.model, self.speed),
            (&self.preview, &self.best_quality),
            &mut self.notices,
        );
        let old = std::mem::replace(&mut self.worker, worker);
        // Dropping waits for a running inference: not on the UI thread.
        std::thread::spawn(move || drop(old));
        self.engine = EngineStatus::Loading;
        // The new worker warms its own preview model when the switch is on.
        self.preview_model_ready = false;
        let ids: Vec<_> = self.workspace.items.iter().map(|i| i.id).collect();
        for id in ids {
            self.reprocess(id);
        }
    }

    /// Runs the model again on one open image (after a model or quality
    /// change); its strokes stay, being in image pixels.
    pub(super) fn reprocess(&mut self, id: ImageId) {
        if let Some(item) = self.workspace.items.iter_mut().find(|i| i.id == id) {
            let Some(original) = item.original.clone() else {
                // Still being read by the old worker: read it again.
                if matches!(item.status, Status::Queued | Status::Removing)
                    && let Some(path) = item.path.clone()
                    && !self.worker.open(item.id, ImageSource::File(path))
                {
                    item.status = Status::Failed("too many images waiting".into());
                }
                return;
            };
            item.mask = None;
            item.preview_mask = None;
            item.provisional = false;
            item.textures = None;
            item.edited_preview_mask = None;
            item.finished_preview = None;
            item.status = Status::Queued;
            if !self.worker.open(item.id, ImageSource::Pixels(original)) {
                item.status = Status::Failed("too many images waiting".into());
            }
        }
    }

    /// Installs a model file the user chose (checked on a thread).
    pub fn import_model(&mut self, path: PathBuf) {
        self.model_manager.import(path);
    }

    pub(super) fn models_action(&mut self, action: ModelsAction) {
        match action {
            ModelsAction::None => {}
            ModelsAction::Use(id) => self.switch_model(&id),
            ModelsAction::Download(id) => self.model_manager.start_download(&id),
            ModelsAction::Cancel(id) => self.model_manager.cancel_download(&id),
            ModelsAction::Remove(id) => match self.model_manager.remove(&id) {
                Ok(_) => self.notify(
                    format!("model removed from your models folder: {id}"),
                    false,
                ),
                Err(text) => self.notify(text, true),
            },
            ModelsAction::Import => self.ask(
                DialogRequest::new(DialogPurpose::ImportModel, DialogKind::PickFile)
                    .filter("ONNX models", &["onnx"]),
            ),
            ModelsAction::ConfirmCustom => {
                let form = self.custom_form.clone();
                self.model_manager.confirm_custom(&form.name, form.preset);
            }
            ModelsAction::DismissCustom => self.model_manager.dismiss_custom(),
            ModelsAction::ShowModels => self.page = Page::Models,
        }
    }

    /// Opens files, and the images directly inside folders.
    pub fn open_paths(&mut self, paths: Vec<PathBuf>) {
        // Launched without photos: nothing opened (the timeline's counts
        // pair each "opened" with a result).
        if let Some(t) = self.timeline.as_ref().filter(|_| !paths.is_empty()) {
            t.mark("opened");
        }
        for path in expand_folders(paths) {
            let id = self.workspace.add(display_name(&path), Some(path.clone()));
            if !self.worker.open(id, ImageSource::File(path)) {
                self.workspace.fail(
                    id,
                    "too many images waiting; try again when some are done".into(),
                );
            }
        }
    }

    /// Opens pixels that are already in memory (a paste).
    pub fn open_pixels(&mut self, name: String, image: image::RgbaImage) {
        if !crate::limits::image_size_ok(image.width(), image.height()) {
            self.notify(
                format!(
                    "{name} is {}×{} pixels, over the {} MP limit",
                    image.width(),
                    image.height(),
                    crate::limits::MAX_IMAGE_PIXELS / 1_000_000
                ),
                true,
            );
            return;
        }
        let id = self.workspace.add(name, None);
        if !self.worker.open(id, ImageSource::Pixels(Arc::new(image))) {
            self.workspace.fail(id, "too many images waiting".into());
        }
    }

    pub fn cancel(&mut self, id: u64) {
        self.worker.cancel(id);
        self.workspace.set_status(id, Status::Cancelled);
    }

    /// Shows a file dialog; its answer comes back to `apply_dialog_answer`.
    pub(super) fn ask(&mut self, request: DialogRequest) {
        if !self.dialogs.request(request) {
            let text = "A file dialog is already open.";
            if !self.notices.iter().any(|n| n.text == text) {
                self.notify(text, false);
            }
        }
    }

    /// File dialogs are answered by `answerer` instead of being shown (tests).
    pub fn answer_dialogs_with(&mut self, answerer: Answerer) {
        self.dialogs.answer_with(answerer);
    }

    pub(super) fn apply_dialog_answer(&mut self, answer: DialogAnswer) {
        let Some(mut paths) = answer.paths.filter(|p| !p.is_empty()) else {
            self.dialog_unavailable_hint();
            return;
        };
        let first = paths.swap_remove(0);
        match answer.purpose {
            DialogPurpose::OpenImages => {
                paths.insert(0, first);
                self.open_paths(paths);
            }
            DialogPurpose::Export => self.export_selected_to(first),
            DialogPurpose::BackgroundPicture => self.set_background_picture(first),
            DialogPurpose::BatchInput => self.batch.input = Some(first),
            DialogPurpose::BatchOutput => self.batch.output = Some(first),
            DialogPurpose::SaveReport(csv) => {
                if let Err(e) = crate::fsutil::write_atomically(
                    &first,
                    csv.as_bytes(),
                    crate::fsutil::Access::Shared,
                ) {
                    self.notify(
                        format!("cannot save the report ({e}): {}", first.display()),
                        true,
                    );
                }
            }
            DialogPurpose::ImportModel => self.import_model(first),
        }
    }

    /// rfd returns "cancelled" both when the user cancels and when no dialog
    /// could be shown at all (no portal, no zenity): say so, gently.
    fn dialog_unavailable_hint(&mut self) {
        let text = "No file chosen. If no dialog appeared, this system has no file-dialog service \
                    (xdg-desktop-portal or zenity): drag files onto the window instead.";
        if !self.notices.iter().any(|n| n.text == text) {
            self.notify(text, false);
        }
    }

    pub(super) fn paste(&mut self) {
        match arboard::Clipboard::new().and_then(|mut c| c.get_image()) {
            Ok(img) => {
                // Checked before the cast: a clipboard may claim any size.
                let (Ok(width), Ok(height)) = (u32::try_from(img.width), u32::try_from(img.height))
                else {
                    self.notify("the clipboard image is over the size limit", true);
                    return;
                };
                match image::RgbaImage::from_raw(width, height, img.bytes.into_owned()) {
                    Some(rgba) => self.open_pixels("Pasted image".into(), rgba),
                    None => self.notify("the clipboard image has an unexpected layout", true),
                }
            }
            Err(e) => self.notify(format!("no image on the clipboard ({e})"), true),
        }
    }

    /// Files the stroke just painted on the selected image.
    pub(super) fn commit_stroke(&mut self) {
        let Some(item) = self.workspace.selected_mut() else {
            return;
        };
        let Some(stroke) = item.active_stroke.take() else {
            return;
        };
        if stroke.points.is_empty() {
            return;
        }
        item.strokes.push(stroke);
        item.redo.clear();
        let id = item.id;
        self.refresh_preview(id);
        self.save_strokes(id);
    }

    /// Undo, redo, reset, or new settings, on the selected image.
    pub fn edit(&mut self, action: EditAction) {
        let Some(item) = self.workspace.selected_mut() else {
            return;
        };
        match action {
            EditAction::None => return,
            EditAction::Undo => match item.strokes.pop() {
                Some(stroke) => item.redo.push(stroke),
                None => return,
            },
            EditAction::Redo => match item.redo.pop() {
                Some(stroke) => item.strokes.push(stroke),
                None => return,
            },
            EditAction::Reset => {
                item.strokes.clear();
                item.redo.clear();
            }
            EditAction::SettingsChanged => {
                let ids: Vec<ImageId> = self.workspace.items.iter().map(|i| i.id).collect();
                for id in ids {
                    self.refresh_preview(id);
                }
                return;
            }
        }
        let id = item.id;
        self.refresh_preview(id);
        self.save_strokes(id);
    }

    /// Best-quality passes for images processed from now on.
    pub fn best_quality(&self) -> bool {
        self.best_quality.load(Ordering::Relaxed)
    }

    /// The preview model's quick cut-out while the full model runs.
    pub fn instant_preview(&self) -> bool {
        self.preview.load(Ordering::Relaxed)
    }

    /// Turning best quality on or off redoes the image on screen (others
    /// follow as they are processed or reopened).
    pub(super) fn set_best_quality(&mut self, on: bool) {
        self.best_quality.store(on, Ordering::Relaxed);
        let shown = self
            .workspace
            .selected()
            .filter(|item| item.mask.is_some())
            .map(|item| item.id);
        if let Some(id) = shown {
            self.reprocess(id);
        }
    }

    /// Fast (int8) or balanced: a new worker with the other session.
    pub(super) fn set_speed(&mut self, speed: crate::engine::inference::Speed) {
        if speed == self.speed {
            return;
        }
        self.speed = speed;
        self.reload_engine();
    }

    pub(super) fn set_instant_preview(&mut self, on: bool) {
        self.preview.store(on, Ordering::Relaxed);
        if on {
            self.worker.warm_preview();
        }
    }
}
