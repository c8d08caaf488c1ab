//! The desktop app. This module only turns state into widgets and turns
//! clicks, drops and keys into commands; decoding, inference and encoding run
//! on the worker's threads and on export threads, which wake the UI with
//! `request_repaint` when they have news.

mod account;
mod batch_panel;
mod busy;
mod canvas;
mod dialogs;
mod editor;
mod frame_probe;
mod gpu_canvas;
mod models_page;
mod timeline;
pub mod worker;
mod workspace;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, bounded};
use egui::{Color32, Key, KeyboardShortcut, Modifiers, RichText};

use crate::app::worker::{
    Event, ImageId, ImageSource, KnownMask, PREVIEW_MODEL, Worker, WorkerConfig,
};
use crate::engine::composite::{CompositeBackground, composite};
use crate::engine::decode::{DecodeLimits, decode_file};
use crate::engine::encode::{
    EncodeOptions, OutputFormat, Rgb8, encode_composited, encode_result, write_output,
};
use crate::engine::finish::{self, FinishSettings};
use crate::engine::inference::SessionOptions;
use crate::gpu::Compositor;
use crate::instance::{FirstInstance, Handoff, InstanceGuard};
use crate::models::manager::{ManagerEvent, ModelManager};
use crate::paths::AppDirs;
use crate::prefs::{self, Appearance, Preferences};
use crate::privacy::Privacy;
use crate::privacy::recent::{self, Kept};
use crate::privacy::schedule::Cleanup;
use crate::privacy::store::SystemClock;
use crate::privacy::uploads::{Backoff, Uploader};
use crate::privacy::writer::{StoreJob, StoreReport, StoreWriter};
pub use account::{CONSENT_LABEL, CONSENT_OFF_WORDS, CONSENT_ON_WORDS, NOT_SAVED_RETRY};
pub use batch_panel::{BatchPanel, BatchRun, FileState};
pub use canvas::{Background, BackgroundAction, CanvasEvent, CanvasView, PREVIEW_MARK};
pub use dialogs::{Answerer, DialogKind, DialogPurpose, DialogRequest};
use dialogs::{DialogAnswer, Dialogs};
pub use editor::{BrushTool, EditAction};
pub use models_page::{FIRST_RUN_BUTTON, ModelsAction};
pub use workspace::{Item, Status, Workspace};

pub const OPEN: KeyboardShortcut = KeyboardShortcut::new(Modifiers::COMMAND, Key::O);
pub const PASTE: KeyboardShortcut = KeyboardShortcut::new(Modifiers::COMMAND, Key::V);
pub const COPY: KeyboardShortcut = KeyboardShortcut::new(Modifiers::COMMAND, Key::C);
pub const EXPORT: KeyboardShortcut = KeyboardShortcut::new(Modifiers::COMMAND, Key::S);
pub const UNDO: KeyboardShortcut = KeyboardShortcut::new(Modifiers::COMMAND, Key::Z);
pub const REDO: KeyboardShortcut =
    KeyboardShortcut::new(Modifiers::COMMAND.plus(Modifiers::SHIFT), Key::Z);
pub const NEXT_IMAGE: KeyboardShortcut = KeyboardShortcut::new(Modifiers::COMMAND, Key::ArrowDown);
pub const PREVIOUS_IMAGE: KeyboardShortcut =
    KeyboardShortcut::new(Modifiers::COMMAND, Key::ArrowUp);
pub const ZOOM_IN: KeyboardShortcut = KeyboardShortcut::new(Modifiers::COMMAND, Key::Equals);
pub const ZOOM_OUT: KeyboardShortcut = KeyboardShortcut::new(Modifiers::COMMAND, Key::Minus);
pub const ZOOM_FIT: KeyboardShortcut = KeyboardShortcut::new(Modifiers::COMMAND, Key::Num0);
pub const DIVIDER_LEFT: KeyboardShortcut =
    KeyboardShortcut::new(Modifiers::COMMAND, Key::ArrowLeft);
pub const DIVIDER_RIGHT: KeyboardShortcut =
    KeyboardShortcut::new(Modifiers::COMMAND, Key::ArrowRight);
/// Off → Erase → Restore → Off (only while no text field has the keyboard).
pub const BRUSH: Key = Key::B;
/// Alt+1…4: Workspace, Batch, Models, Account.
pub const PAGE_KEYS: [(Key, Page); 4] = [
    (Key::Num1, Page::Workspace),
    (Key::Num2, Page::Batch),
    (Key::Num3, Page::Models),
    (Key::Num4, Page::Account),
];

/// Image file extensions offered by the open dialog and accepted from folders.
pub use crate::engine::decode::IMAGE_EXTENSIONS;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineStatus {
    Loading,
    Ready { model: String, provider: String },
    Failed(String),
}

/// A message shown in the window until dismissed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub text: String,
    pub is_error: bool,
}

pub use crate::prefs::Page;

impl From<Appearance> for egui::ThemePreference {
    fn from(appearance: Appearance) -> Self {
        match appearance {
            Appearance::System => Self::System,
            Appearance::Light => Self::Light,
            Appearance::Dark => Self::Dark,
        }
    }
}

impl From<egui::ThemePreference> for Appearance {
    fn from(theme: egui::ThemePreference) -> Self {
        match theme {
            egui::ThemePreference::System => Self::System,
            egui::ThemePreference::Light => Self::Light,
            egui::ThemePreference::Dark => Self::Dark,
        }
    }
}

/// How often the retention sweep runs while the app is open. Cheap (a
/// sweep with nothing to delete reads the index and writes nothing), and
/// short, so that a clock that jumps while the app runs is acted on soon.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// The inspector's switch for the preview model's quick cut-out.
pub const PREVIEW_LABEL: &str = "Instant preview";

/// The inspector's switch for the best-quality passes.
pub const BEST_QUALITY_LABEL: &str = "Best quality (slower)";

/// What best quality does and costs, for the inspector and the Batch page.
pub const QUALITY_HINT: &str = "Best: the model also sees the photo mirrored and takes a closer \
     look at the subject's edge: up to four passes, so up to four times the time per image";

/// What the app starts with.
pub struct AppStart {
    pub dirs: AppDirs,
    /// The model to use (catalog id); the catalog's default when `None`.
    pub model: Option<String>,
    /// Images to open.
    pub paths: Vec<PathBuf>,
    /// How what is kept gets deleted while the app is not running
    /// (`privacy::schedule::ensure` for the real app).
    pub cleanup: Cleanup,
    /// This window's claim on the profile: later launches hand it files.
    pub instance: Option<FirstInstance>,
}

impl AppStart {
    pub fn new(dirs: AppDirs, cleanup: Cleanup) -> Self {
        Self {
            dirs,
            model: None,
            paths: Vec::new(),
            cleanup,
            instance: None,
        }
    }
}

pub struct DesktopApp {
    worker: Worker,
    pub page: Page,
    /// Consent and the local store; `None` if the store could not be opened
    /// (then nothing is kept at all, and the user is told).
    pub privacy: Option<Privacy>,
    /// Writes results, the workspace list and training samples into the
    /// store, and sweeps it, off the UI thread.
    store_writer: Option<StoreWriter>,
    /// Sends training samples; idle (no connection) without consent.
    pub uploader: Option<Uploader>,
    /// What is kept of each finished image for the next start.
    saved: std::collections::HashMap<ImageId, Kept>,
    /// Images whose stored entry is gone (a day old, or purged): nothing
    /// more of them is written, however long the app keeps them open.
    not_kept: std::collections::HashSet<ImageId>,
    /// Files handed over by later launches.
    handoff: Option<Handoff>,
    _instance: Option<InstanceGuard>,
    last_sweep: std::time::Instant,
    confirm_delete: bool,
    dirs: AppDirs,
    /// The catalog, what is installed, downloads and imports.
    pub model_manager: ModelManager,
    custom_form: models_page::CustomForm,
    /// The model in use (catalog id).
    pub model: String,
    pub workspace: Workspace,
    pub engine: EngineStatus,
    pub view: CanvasView,
    pub format: OutputFormat,
    /// Edge, crop, canvas and shadow settings for exports.
    pub finish: FinishSettings,
    pub notices: Vec<Notice>,
    pub last_inference: Option<Duration>,
    /// The preview model is loaded and warmed (its first preview is quick).
    pub preview_model_ready: bool,
    pub batch: BatchPanel,
    /// Set when the window renders with wgpu: the canvas and exports then
    /// go through the WGSL compositor.
    render_state: Option<egui_wgpu::RenderState>,
    compositor: Option<Arc<Compositor>>,
    tasks_tx: Sender<TaskResult>,
    tasks_rx: Receiver<TaskResult>,
    /// A copy is being rendered (one at a time).
    pub copying: bool,
    /// Show the preview model's quick cut-out while the full model runs
    /// (shared with the worker).
    preview: Arc<AtomicBool>,
    /// Best-quality passes for images processed from now on (shared with
    /// the worker).
    best_quality: Arc<AtomicBool>,
    next_picture_key: u64,
    /// The open file dialog, if any (its answer arrives on a later frame).
    dialogs: Dialogs,
    ctx: egui::Context,
    frame_probe: Option<frame_probe::FrameProbe>,
    timeline: Option<timeline::Timeline>,
    /// What the user chose, as last handed to `prefs_saver`.
    saved_prefs: Preferences,
    prefs_saver: Option<PrefsSaver>,
}

/// Writes the preferences off the UI thread (an atomic write flushes to
/// disk); only the newest of several quick changes is written.
struct PrefsSaver {
    tx: Sender<Preferences>,
}

impl PrefsSaver {
    fn spawn(config_dir: PathBuf) -> Option<Self> {
        let (tx, rx) = bounded::<Preferences>(4);
        let spawned = std::thread::Builder::new()
            .name("preferences".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let newest = rx.try_iter().last().unwrap_or(first);
                    if let Err(e) = prefs::save(&config_dir, &newest) {
                        tracing::warn!("{e}");
                    }
                }
            });
        match spawned {
            Ok(_) => Some(Self { tx }),
            Err(e) => {
                tracing::warn!("window settings will not be kept ({e})");
                None
            }
        }
    }
}

/// What a short background task (export, loading a picture) reports.
enum TaskResult {
    Notice(Notice),
    /// A result was exported or copied: the user's final version.
    Delivered(ImageId),
    Picture(Result<image::RgbaImage, String>),
    /// The finished cut-out to put on the clipboard.
    CopyReady {
        id: ImageId,
        result: Result<image::RgbaImage, String>,
    },
    /// A recomputed preview mask (strokes and edge settings) for an item,
    /// valid if the item's mask has not changed since `version`.
    PreviewMask {
        id: ImageId,
        version: u64,
        mask: image::GrayImage,
        finished: Option<(image::RgbaImage, image::GrayImage)>,
    },
}

impl DesktopApp {
    /// Starts the worker (the model loads in the background) and opens the
    /// start's paths.
    pub fn new(cc: &eframe::CreationContext<'_>, start: AppStart) -> Self {
        let AppStart {
            dirs,
            model,
            paths,
            cleanup,
            instance,
        } = start;
        let ctx = &cc.egui_ctx;
        let render_state = cc.wgpu_render_state.clone();
        let compositor = render_state.as_ref().map(gpu_canvas::GpuCanvas::install);
        let (tasks_tx, tasks_rx) = bounded(16);
        let mut notices = Vec::new();
        let privacy = match Privacy::open(&dirs, Arc::new(SystemClock)) {
            Ok(mut privacy) => {
                if let Some(notice) = &privacy.notice {
                    notices.push(Notice {
                        text: notice.message(),
                        is_error: true,
                    });
                }
                // Before anything else: with no scheduler to delete it on
                // time, what an earlier session left (a crash) goes now.
                match privacy.start_app_session(cleanup) {
                    Ok(0) => {}
                    Ok(n) => notices.push(Notice {
                        text: format!(
                            "Deleted {n} item{} an earlier session left: no automatic clean-up is confirmed on this computer, so nothing is kept after the app closes (see Account).",
                            if n == 1 { "" } else { "s" }
                        ),
                        is_error: false,
                    }),
                    Err(e) => notices.push(Notice {
                        text: format!("Local data could not be deleted ({e})"),
                        is_error: true,
                    }),
                }
                Some(privacy)
            }
            Err(e) => {
                notices.push(Notice {
                    text: format!("Local data cannot be managed ({e}); nothing will be kept."),
                    is_error: true,
                });
                None
            }
        };
        let (store_writer, uploader) = match &privacy {
            Some(privacy) => {
                let wake_ctx = ctx.clone();
                let wake: Arc<dyn Fn() + Send + Sync> =
                    Arc::new(move || wake_ctx.request_repaint());
                let services = Uploader::spawn(
                    privacy.store.clone(),
                    privacy.gate(),
                    privacy.consent_on_disk(),
                    privacy.upload_endpoint.clone(),
                    Backoff::default(),
                    wake.clone(),
                )
                .and_then(|uploader| {
                    let kick = uploader.kicker();
                    let writer = StoreWriter::spawn(
                        privacy.store.clone(),
                        privacy.gate(),
                        privacy.consent_on_disk(),
                        Box::new(privacy.sweeper()),
                        Box::new(kick),
                        wake,
                    )?;
                    Ok((writer, uploader))
                });
                match services {
                    Ok((writer, uploader)) => (Some(writer), Some(uploader)),
                    // Without a writer nothing is stored: fail closed.
                    Err(e) => {
                        notices.push(Notice {
                            text: format!(
                                "Local data cannot be managed ({e}); nothing will be kept."
                            ),
                            is_error: true,
                        });
                        (None, None)
                    }
                }
            }
            None => (None, None),
        };
        let wake_ctx = ctx.clone();
        let model_manager = ModelManager::new(
            dirs.clone(),
            privacy
                .as_ref()
                .and_then(|p| p.settings.npm_registry.clone()),
            Arc::new(move || wake_ctx.request_repaint()),
        );
        let model = model.unwrap_or_else(|| model_manager.catalog().default_model.clone());
        let (prefs, prefs_error) = prefs::load(&dirs.config);
        if let Some(e) = prefs_error {
            notices.push(Notice {
                text: format!("Your window settings were not read, the defaults are used: {e}"),
                is_error: true,
            });
        }
        // BACKGROUNDERASE_PREVIEW=1/0 sets it for a run (the benchmark's
        // two modes); the inspector's switch changes it while running.
        let preview_on = match std::env::var("BACKGROUNDERASE_PREVIEW").as_deref() {
            Ok("1") => true,
            Ok("0") => false,
            _ => prefs.instant_preview,
        };
        let preview = Arc::new(AtomicBool::new(preview_on));
        let best_quality = Arc::new(AtomicBool::new(prefs.best_quality));
        ctx.set_theme(egui::ThemePreference::from(prefs.appearance));
        let worker = spawn_worker(ctx, &dirs, &model, (&preview, &best_quality), &mut notices);
        let (handoff, instance) = match instance {
            Some(first) => {
                let wake_ctx = ctx.clone();
                let (handoff, guard) = first.serve(Arc::new(move || wake_ctx.request_repaint()));
                (Some(handoff), Some(guard))
            }
            None => (None, None),
        };
        let prefs_saver = PrefsSaver::spawn(dirs.config.clone());
        let mut app = Self {
            worker,
            page: prefs.page,
            privacy,
            store_writer,
            uploader,
            saved: Default::default(),
            not_kept: Default::default(),
            handoff,
            _instance: instance,
            last_sweep: std::time::Instant::now(),
            confirm_delete: false,
            dirs,
            model_manager,
            custom_form: Default::default(),
            model,
            workspace: Workspace::default(),
            engine: EngineStatus::Loading,
            view: CanvasView::default(),
            format: prefs.format,
            finish: prefs.finish,
            notices,
            last_inference: None,
            preview_model_ready: false,
            batch: BatchPanel::default(),
            render_state,
            compositor,
            tasks_tx,
            tasks_rx,
            copying: false,
            preview,
            best_quality,
            next_picture_key: 1,
            dialogs: Dialogs::new({
                let wake_ctx = ctx.clone();
                Arc::new(move || wake_ctx.request_repaint())
            }),
            ctx: ctx.clone(),
            frame_probe: frame_probe::FrameProbe::from_env(),
            timeline: timeline::Timeline::from_env(),
            saved_prefs: prefs,
            prefs_saver,
        };
        app.view.background = app.saved_prefs.background.into();
        app.restore_recent_work();
        app.open_paths(paths);
        app
    }

    /// What the user chose now, as kept for the next start.
    fn preferences(&self) -> Preferences {
        Preferences {
            schema_version: self.saved_prefs.schema_version,
            format: self.format,
            finish: self.finish,
            background: self.view.background.saved(),
            page: self.page,
            appearance: self.ctx.options(|o| o.theme_preference).into(),
            best_quality: self.best_quality.load(Ordering::Relaxed),
            instant_preview: self.preview.load(Ordering::Relaxed),
        }
    }

    /// Hands changed preferences to the saver (a comparison per frame).
    fn keep_preferences(&mut self) {
        let now = self.preferences();
        if now == self.saved_prefs {
            return;
        }
        let sent = match &self.prefs_saver {
            Some(saver) => saver.tx.try_send(now.clone()).is_ok(),
            None => true,
        };
        // A full queue: tried again next frame.
        if sent {
            self.saved_prefs = now;
        }
    }

    /// Starts the batch panel's batch on its own thread.
    pub fn start_batch(&mut self) {
        let (Some(input), Some(output)) = (self.batch.input.clone(), self.batch.output.clone())
        else {
            return;
        };
        let mut settings = self.batch.settings.clone();
        // The inspector's edge and layout settings, and the brush edits of
        // any of the folder's images open in the workspace.
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
        let wake_ctx = self.ctx.clone();
        let (handle, job) = crate::engine::batch::BatchHandle::new(
            crate::engine::batch::BatchRequest {
                input,
                output,
                settings,
            },
            Arc::new(move || wake_ctx.request_repaint()),
        );
        // The workspace's worker runs it: one ONNX session for both.
        if self.worker.start_batch(job) {
            self.batch.run = Some(BatchRun::new(handle));
        } else {
            self.notices.push(Notice {
                text: "a batch is already starting".into(),
                is_error: true,
            });
        }
    }

    fn batch_page(&mut self, ui: &mut egui::Ui) {
        match self.batch.ui(ui) {
            batch_panel::BatchAction::None => {}
            batch_panel::BatchAction::ChooseInput => self.ask(DialogRequest::new(
                DialogPurpose::BatchInput,
                DialogKind::PickFolder,
            )),
            batch_panel::BatchAction::ChooseOutput => self.ask(DialogRequest::new(
                DialogPurpose::BatchOutput,
                DialogKind::PickFolder,
            )),
            batch_panel::BatchAction::Start => self.start_batch(),
            batch_panel::BatchAction::CopyReport(csv) => {
                let result = arboard::Clipboard::new().and_then(|mut c| c.set_text(csv));
                self.notices.push(match result {
                    Ok(()) => Notice {
                        text: "failure report copied".into(),
                        is_error: false,
                    },
                    Err(e) => Notice {
                        text: format!("could not copy ({e})"),
                        is_error: true,
                    },
                });
            }
            batch_panel::BatchAction::SaveReport(csv) => self.ask(
                DialogRequest::new(
                    DialogPurpose::SaveReport(csv),
                    DialogKind::Save {
                        file_name: "failures.csv".into(),
                    },
                )
                .filter("CSV", &["csv"]),
            ),
            batch_panel::BatchAction::OpenOutput(folder) => {
                if let Err(e) = batch_panel::open_folder(&folder) {
                    self.notices.push(Notice {
                        text: format!("cannot open the folder ({e}): {}", folder.display()),
                        is_error: true,
                    });
                }
            }
        }
        // Keep the rate and ETA ticking while it runs.
        if self.batch.run.as_ref().is_some_and(|r| !r.is_finished()) {
            ui.ctx().request_repaint_after(Duration::from_millis(500));
        }
    }

    /// Reopens the images of the last session still in the store, with
    /// their masks (no inference unless the file changed).
    fn restore_recent_work(&mut self) {
        let Some(store) = self.privacy.as_ref().map(|p| p.store.clone()) else {
            return;
        };
        for kept in recent::load_workspace(&store) {
            let saved = &kept.result;
            let source = match (&saved.path, saved.original_item) {
                (Some(path), _) if path.is_file() => ImageSource::File(path.clone()),
                (_, Some(item)) => ImageSource::Stored(store.clone(), item),
                (Some(path), None) => {
                    let id = self.workspace.add(saved.name.clone(), Some(path.clone()));
                    self.workspace.fail(
                        id,
                        format!("the file is no longer there: {}", path.display()),
                    );
                    continue;
                }
                (None, None) => continue,
            };
            let id = self.workspace.add(saved.name.clone(), saved.path.clone());
            if let Some(item) = self.workspace.get_mut(id) {
                item.strokes = saved.strokes.clone();
            }
            let known = KnownMask {
                store: store.clone(),
                item: saved.mask_item,
            };
            self.saved.insert(id, kept);
            if !self.worker.open_with(id, source, Some(known)) {
                self.workspace.fail(id, "too many images waiting".into());
            }
        }
    }

    /// Where unfinished exports are recorded for the sweep (the store's).
    fn partials_journal(&self) -> Option<PathBuf> {
        self.privacy.as_ref().map(|p| p.store.partials_dir())
    }

    /// Writes an image's strokes into its stored entry (which keeps its
    /// date, so they leave the disk with the image).
    fn save_strokes(&mut self, id: ImageId) {
        let (Some(kept), Some(item)) = (
            self.saved.get(&id).cloned(),
            self.workspace.items.iter().find(|i| i.id == id),
        ) else {
            return;
        };
        let job = StoreJob::SaveStrokes {
            image_id: id,
            kept,
            strokes: item.strokes.clone(),
        };
        self.submit_store_job(job);
    }

    /// Keeps a finished result for the next start, when anything may be
    /// kept: see [`Privacy::keeps_recent_work`].
    fn keep_result(&mut self, id: ImageId, mask: Arc<image::GrayImage>) {
        if self.not_kept.contains(&id)
            || !self
                .privacy
                .as_ref()
                .is_some_and(Privacy::keeps_recent_work)
        {
            return;
        }
        let Some(item) = self.workspace.items.iter().find(|i| i.id == id) else {
            return;
        };
        let Some(original) = item.original.clone() else {
            return;
        };
        let job = StoreJob::SaveResult {
            image_id: id,
            name: item.name.clone(),
            path: item.path.clone(),
            original,
            mask,
            model: self.model.clone(),
            strokes: item.strokes.clone(),
            kept: self.saved.get(&id).cloned(),
        };
        self.submit_store_job(job);
    }

    /// Everything stored was deleted: nothing of the open images is
    /// written again (a result still on its way to the store included).
    fn forget_stored_images(&mut self) {
        self.saved.clear();
        self.not_kept
            .extend(self.workspace.items.iter().map(|i| i.id));
    }

    fn submit_store_job(&mut self, job: StoreJob) {
        if let Some(writer) = &self.store_writer
            && !writer.submit(job)
        {
            self.notices.push(Notice {
                text: "the local store is busy; this result will not be kept".into(),
                is_error: true,
            });
        }
    }

    /// A result the user exported or copied is their final version: with
    /// consent it becomes a training sample.
    fn delivered(&mut self, id: ImageId) {
        if !self.privacy.as_ref().is_some_and(Privacy::opted_in) {
            return;
        }
        let Some(item) = self.workspace.items.iter().find(|i| i.id == id) else {
            return;
        };
        let (Some(original), Some(mask)) = (item.original.clone(), item.mask.clone()) else {
            return;
        };
        let model = self
            .saved
            .get(&id)
            .map_or_else(|| self.model.clone(), |s| s.result.model.clone());
        // The store writer makes the user's final mask (strokes and edge
        // settings) off the UI thread.
        let job = StoreJob::QueueUpload {
            label: item.name.clone(),
            original,
            mask,
            strokes: item.strokes.clone(),
            edges: self.finish.edges,
            model,
        };
        self.submit_store_job(job);
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
    fn reload_engine(&mut self) {
        let worker = spawn_worker(
            &self.ctx,
            &self.dirs,
            &self.model,
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
    fn reprocess(&mut self, id: ImageId) {
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

    /// Applies what model downloads and imports reported.
    fn drain_model_events(&mut self) {
        for event in self.model_manager.poll() {
            match event {
                ManagerEvent::Installed { id, .. } => {
                    let name = self
                        .model_manager
                        .row(&id)
                        .map_or(id.clone(), |r| r.name.clone());
                    self.notices.push(Notice {
                        text: format!("model installed: {name}"),
                        is_error: false,
                    });
                    if id == PREVIEW_MODEL && self.preview.load(Ordering::Relaxed) {
                        self.worker.warm_preview();
                    }
                    // The model that was missing, or the first one there is: use it.
                    let engine_down = matches!(self.engine, EngineStatus::Failed(_));
                    if id == self.model && engine_down {
                        self.reload_engine();
                    } else if engine_down && !self.model_manager.is_installed(&self.model) {
                        self.switch_model(&id);
                    }
                }
                ManagerEvent::DownloadFailed { message, .. }
                | ManagerEvent::ImportFailed { message } => self.notices.push(Notice {
                    text: message,
                    is_error: true,
                }),
                ManagerEvent::DownloadCancelled { message, .. } => self.notices.push(Notice {
                    text: message,
                    is_error: false,
                }),
                ManagerEvent::NeedsConfirmation(unknown) => {
                    self.custom_form = models_page::CustomForm {
                        name: unknown
                            .path
                            .file_stem()
                            .map(|s| s.to_string_lossy().into_owned())
                            .unwrap_or_default(),
                        ..Default::default()
                    };
                    self.page = Page::Models;
                }
            }
        }
    }

    /// Installs a model file the user chose (checked on a thread).
    pub fn import_model(&mut self, path: PathBuf) {
        self.model_manager.import(path);
    }

    fn models_action(&mut self, action: ModelsAction) {
        match action {
            ModelsAction::None => {}
            ModelsAction::Use(id) => self.switch_model(&id),
            ModelsAction::Download(id) => self.model_manager.start_download(&id),
            ModelsAction::Cancel(id) => self.model_manager.cancel_download(&id),
            ModelsAction::Remove(id) => match self.model_manager.remove(&id) {
                Ok(_) => self.notices.push(Notice {
                    text: format!("model removed from your models folder: {id}"),
                    is_error: false,
                }),
                Err(text) => self.notices.push(Notice {
                    text,
                    is_error: true,
                }),
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
            self.notices.push(Notice {
                text: format!(
                    "{name} is {}×{} pixels, over the {} MP limit",
                    image.width(),
                    image.height(),
                    crate::limits::MAX_IMAGE_PIXELS / 1_000_000
                ),
                is_error: true,
            });
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

    /// Applies what the worker and export threads reported since last frame.
    pub fn drain_events(&mut self) {
        let handed: Vec<PathBuf> = self
            .handoff
            .as_ref()
            .map(|h| h.try_iter().flatten().collect())
            .unwrap_or_default();
        if !handed.is_empty() {
            self.page = Page::Workspace;
            self.open_paths(handed);
            self.ctx.send_viewport_cmd(egui::ViewportCommand::Focus);
        }
        self.drain_model_events();
        // Whatever page is shown: the batch waits on a bounded channel.
        if let Some(run) = &mut self.batch.run {
            run.update();
        }
        for event in self.worker.poll() {
            match event {
                Event::EngineReady { model, provider } => {
                    if let Some(t) = &self.timeline {
                        t.mark("ready");
                    }
                    self.engine = EngineStatus::Ready { model, provider }
                }
                Event::EngineFailed { message } => {
                    // A missing model is explained by the first-run card and
                    // the Models page, not by an error line.
                    if self.model_manager.is_installed(&self.model) {
                        self.notices.push(Notice {
                            text: message.clone(),
                            is_error: true,
                        });
                    }
                    self.engine = EngineStatus::Failed(message);
                }
                Event::Decoded { id, image, preview } => {
                    if let Some(t) = &self.timeline {
                        t.mark("decoded");
                    }
                    self.workspace.decoded(id, image, preview)
                }
                Event::Started { id } => {
                    if let Some(t) = &self.timeline {
                        t.mark("started");
                    }
                    self.workspace.set_status(id, Status::Removing)
                }
                Event::PreviewModelReady => self.preview_model_ready = true,
                Event::Preview { id, preview_mask } => {
                    if let Some(t) = &self.timeline {
                        t.mark("preview");
                    }
                    self.workspace.provisional(id, preview_mask);
                }
                Event::Finished {
                    id,
                    mask,
                    preview_mask,
                    inference,
                } => {
                    self.last_inference = Some(inference);
                    if let Some(t) = &self.timeline {
                        t.mark("result");
                    }
                    self.workspace.finished(id, mask.clone(), preview_mask);
                    self.refresh_preview(id);
                    self.keep_result(id, mask);
                }
                Event::Restored {
                    id,
                    mask,
                    preview_mask,
                } => {
                    self.workspace.finished(id, mask, preview_mask);
                    self.refresh_preview(id);
                }
                Event::Failed { id, message } => self.workspace.fail(id, message),
                Event::WaitingForModel { id } => {
                    self.workspace.set_status(id, Status::WaitingForModel)
                }
                Event::Cancelled { id } => self.workspace.set_status(id, Status::Cancelled),
            }
        }
        let reports = self
            .store_writer
            .as_ref()
            .map(StoreWriter::poll)
            .unwrap_or_default();
        for report in reports {
            match report {
                StoreReport::Saved { image_id, kept } => {
                    if self.not_kept.contains(&image_id) {
                        // Purged while this was being written.
                        if let Some(privacy) = &self.privacy {
                            let _ = recent::forget(&privacy.store, &kept);
                        }
                    } else {
                        self.saved.insert(image_id, kept);
                    }
                }
                StoreReport::Gone { image_id } => {
                    self.saved.remove(&image_id);
                    self.not_kept.insert(image_id);
                }
                StoreReport::Swept(report) => {
                    // Images a day old are gone from the disk: forget them.
                    if report.removed > 0
                        && let Some(privacy) = &self.privacy
                    {
                        let store = privacy.store.clone();
                        let gone: Vec<ImageId> = self
                            .saved
                            .iter()
                            .filter(|(_, k)| !store.contains(k.entry_item))
                            .map(|(id, _)| *id)
                            .collect();
                        for id in gone {
                            self.saved.remove(&id);
                            self.not_kept.insert(id);
                        }
                    }
                }
                StoreReport::Purged(n) => {
                    self.forget_stored_images();
                    self.notices.push(Notice {
                        text: format!("deleted {n} stored item{}", if n == 1 { "" } else { "s" }),
                        is_error: false,
                    });
                }
                StoreReport::Queued { .. } => {}
                StoreReport::Failed(text) => self.notices.push(Notice {
                    text,
                    is_error: true,
                }),
            }
        }
        if let Some(answer) = self.dialogs.poll() {
            self.apply_dialog_answer(answer);
        }
        for result in self.tasks_rx.try_iter().collect::<Vec<_>>() {
            match result {
                TaskResult::Notice(n) => self.notices.push(n),
                TaskResult::Delivered(id) => self.delivered(id),
                TaskResult::CopyReady { id, result } => self.finish_copy(id, result),
                TaskResult::PreviewMask {
                    id,
                    version,
                    mask,
                    finished,
                } => {
                    let Some(item) = self.workspace.get_mut(id) else {
                        continue;
                    };
                    item.preview_pending = false;
                    if item.mask_version == version {
                        item.edited_preview_mask = Some(Arc::new(mask));
                        item.finished_preview = finished.map(|(c, a)| (Arc::new(c), Arc::new(a)));
                        item.mask_version += 1;
                    }
                    // Changes made while it ran: one more recompute for all of them.
                    if std::mem::take(&mut item.preview_dirty) {
                        self.refresh_preview(id);
                    }
                }
                TaskResult::Picture(Ok(image)) => {
                    self.next_picture_key += 1;
                    self.view.background = Background::Picture {
                        key: self.next_picture_key,
                        image: Arc::new(image),
                    };
                }
                TaskResult::Picture(Err(e)) => self.notices.push(Notice {
                    text: e,
                    is_error: true,
                }),
            }
        }
    }

    /// Decodes `path` off the UI thread and makes it the background.
    pub fn set_background_picture(&self, path: PathBuf) {
        let tx = self.tasks_tx.clone();
        let ctx = self.ctx.clone();
        std::thread::spawn(move || {
            let result = decode_file(&path, DecodeLimits::default())
                .map(|d| d.rgba)
                .map_err(|e| e.to_string());
            let _ = tx.send(TaskResult::Picture(result));
            ctx.request_repaint();
        });
    }

    /// Exports the selected result to `path` on a background thread.
    pub fn export_selected_to(&mut self, path: PathBuf) {
        let Some(item) = self.workspace.selected() else {
            return;
        };
        let (Some(image), Some(mask)) = (item.original.clone(), item.mask.clone()) else {
            self.notices.push(Notice {
                text: "nothing to export yet: the result is still being made".into(),
                is_error: true,
            });
            return;
        };
        let image_id = item.id;
        let strokes = item.strokes.clone();
        let partials = self.partials_journal();
        let format = self.format;
        let finish = self.finish.for_format(format);
        let background = self.view.background.clone();
        let gpu = self
            .render_state
            .as_ref()
            .zip(self.compositor.clone())
            .map(|(rs, c)| (rs.device.clone(), rs.queue.clone(), c));
        let tx = self.tasks_tx.clone();
        let ctx = self.ctx.clone();
        std::thread::spawn(move || {
            let result = finish::render(&image, &mask, &strokes, &finish)
                .map_err(|too_large| crate::Error::OutputTooLarge {
                    width: too_large.width,
                    height: too_large.height,
                    path: path.clone(),
                })
                .and_then(|(image, mask)| {
                    export(&image, &mask, format, &background, gpu, &path)
                        .and_then(|bytes| write_output(&path, &bytes, partials.as_deref()))
                });
            let notice = match result {
                Ok(()) => {
                    let _ = tx.send(TaskResult::Delivered(image_id));
                    Notice {
                        text: format!("exported {}", path.display()),
                        is_error: false,
                    }
                }
                Err(e) => Notice {
                    text: e.to_string(),
                    is_error: true,
                },
            };
            let _ = tx.send(TaskResult::Notice(notice));
            ctx.request_repaint();
        });
    }

    fn export_dialog(&mut self) {
        let Some(item) = self.workspace.selected() else {
            return;
        };
        let stem = Path::new(&item.name)
            .file_stem()
            .map_or("cutout".into(), |s| s.to_string_lossy().into_owned());
        let file_name = format!("{stem}.{}", self.format.extension());
        self.ask(
            DialogRequest::new(DialogPurpose::Export, DialogKind::Save { file_name })
                .filter(self.format.to_string(), &[self.format.extension()]),
        );
    }

    fn open_dialog(&mut self) {
        self.ask(
            DialogRequest::new(DialogPurpose::OpenImages, DialogKind::PickFiles)
                .filter("Images", IMAGE_EXTENSIONS),
        );
    }

    /// Shows a file dialog; its answer comes back to `apply_dialog_answer`.
    fn ask(&mut self, request: DialogRequest) {
        if !self.dialogs.request(request) {
            let text = "A file dialog is already open.";
            if !self.notices.iter().any(|n| n.text == text) {
                self.notices.push(Notice {
                    text: text.into(),
                    is_error: false,
                });
            }
        }
    }

    /// File dialogs are answered by `answerer` instead of being shown (tests).
    pub fn answer_dialogs_with(&mut self, answerer: Answerer) {
        self.dialogs.answer_with(answerer);
    }

    fn apply_dialog_answer(&mut self, answer: DialogAnswer) {
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
                    self.notices.push(Notice {
                        text: format!("cannot save the report ({e}): {}", first.display()),
                        is_error: true,
                    });
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
            self.notices.push(Notice {
                text: text.into(),
                is_error: false,
            });
        }
    }

    fn paste(&mut self) {
        match arboard::Clipboard::new().and_then(|mut c| c.get_image()) {
            Ok(img) => {
                // Checked before the cast: a clipboard may claim any size.
                let (Ok(width), Ok(height)) = (u32::try_from(img.width), u32::try_from(img.height))
                else {
                    self.notices.push(Notice {
                        text: "the clipboard image is over the size limit".into(),
                        is_error: true,
                    });
                    return;
                };
                match image::RgbaImage::from_raw(width, height, img.bytes.into_owned()) {
                    Some(rgba) => self.open_pixels("Pasted image".into(), rgba),
                    None => self.notices.push(Notice {
                        text: "the clipboard image has an unexpected layout".into(),
                        is_error: true,
                    }),
                }
            }
            Err(e) => self.notices.push(Notice {
                text: format!("no image on the clipboard ({e})"),
                is_error: true,
            }),
        }
    }

    /// Files the stroke just painted on the selected image.
    fn commit_stroke(&mut self) {
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

    /// Recomputes the displayed mask of `id` from the model's preview mask,
    /// the strokes and the edge settings, on a short-lived thread. At most
    /// one runs per image: a slider dragged over many frames asks many times,
    /// and the requests made meanwhile are served by one run when it returns.
    fn refresh_preview(&mut self, id: ImageId) {
        let settings = self.finish;
        let edges = settings.edges;
        let Some(item) = self.workspace.get_mut(id) else {
            return;
        };
        item.mask_version += 1;
        // The canvas shows the model's mask as it is (colour-spill removal,
        // on by default, changes only exported colours): nothing to compute.
        if item.strokes.is_empty()
            && !edges.changes_mask()
            && !editor::needs_finished_preview(&settings)
        {
            item.preview_dirty = false;
            item.edited_preview_mask = None;
            item.finished_preview = None;
            return;
        }
        if item.preview_pending {
            item.preview_dirty = true;
            return;
        }
        let (Some(preview), Some(mask), Some(scale)) = (
            item.preview.clone(),
            item.preview_mask.clone(),
            item.preview_scale(),
        ) else {
            return;
        };
        let strokes = item.strokes.clone();
        let version = item.mask_version;
        item.preview_pending = true;
        let tx = self.tasks_tx.clone();
        let ctx = self.ctx.clone();
        std::thread::spawn(move || {
            // Over the limit, the canvas keeps the photo's frame; the export says why.
            let finished = editor::needs_finished_preview(&settings)
                .then(|| editor::finished_preview(&preview, &mask, &strokes, &settings, scale))
                .and_then(Result::ok);
            let mask = editor::preview_mask(&mask, &strokes, &edges, scale);
            let _ = tx.send(TaskResult::PreviewMask {
                id,
                version,
                mask,
                finished,
            });
            ctx.request_repaint();
        });
    }

    /// Renders the finished cut-out off the UI thread (≈ 1.7 s at 12 MP with
    /// every edge and layout tool on); the clipboard is set when it is back.
    fn copy_result(&mut self) {
        let Some(item) = self.workspace.selected() else {
            return;
        };
        let (Some(image), Some(mask)) = (item.original.clone(), item.mask.clone()) else {
            return;
        };
        if self.copying {
            return;
        }
        self.copying = true;
        let (id, strokes, settings) = (item.id, item.strokes.clone(), self.finish);
        let (tx, ctx) = (self.tasks_tx.clone(), self.ctx.clone());
        std::thread::spawn(move || {
            let result = match finish::render(&image, &mask, &strokes, &settings) {
                Ok((image, mask)) => Ok(crate::engine::composite::cutout(&image, &mask)),
                Err(too_large) => Err(format!(
                    "the cut-out would be {}×{} pixels, over the {} MP limit; lower the crop margin or the canvas",
                    too_large.width,
                    too_large.height,
                    crate::limits::MAX_OUTPUT_PIXELS / 1_000_000
                )),
            };
            let _ = tx.send(TaskResult::CopyReady { id, result });
            ctx.request_repaint();
        });
    }

    /// Puts a rendered cut-out on the clipboard.
    fn finish_copy(&mut self, image_id: ImageId, cut: Result<image::RgbaImage, String>) {
        self.copying = false;
        let cut = match cut {
            Ok(cut) => cut,
            Err(why) => {
                self.notices.push(Notice {
                    text: format!("could not copy: {why}"),
                    is_error: true,
                });
                return;
            }
        };
        let data = arboard::ImageData {
            width: cut.width() as usize,
            height: cut.height() as usize,
            bytes: cut.into_raw().into(),
        };
        let result = arboard::Clipboard::new().and_then(|mut c| c.set_image(data));
        if result.is_ok() {
            self.delivered(image_id);
        }
        self.notices.push(match result {
            Ok(()) => Notice {
                text: "result copied".into(),
                is_error: false,
            },
            Err(e) => Notice {
                text: format!("could not copy ({e})"),
                is_error: true,
            },
        });
    }

    fn handle_input(&mut self, ui: &mut egui::Ui) {
        let dropped: Vec<PathBuf> = ui.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .collect()
        });
        if !dropped.is_empty() {
            if self.page == Page::Batch {
                // A folder dropped on the Batch page is its input.
                if let Some(folder) = dropped.into_iter().find(|p| p.is_dir()) {
                    self.batch.input = Some(folder);
                }
            } else {
                self.open_paths(dropped);
            }
        }
        if ui.input_mut(|i| i.consume_shortcut(&OPEN)) {
            self.open_dialog();
        }
        for (key, page) in PAGE_KEYS {
            if ui.input_mut(|i| i.consume_key(Modifiers::ALT, key)) {
                self.page = page;
            }
        }
        if ui.input_mut(|i| i.consume_shortcut(&NEXT_IMAGE)) {
            self.workspace.select_step(1);
        }
        if ui.input_mut(|i| i.consume_shortcut(&PREVIOUS_IMAGE)) {
            self.workspace.select_step(-1);
        }
        if ui.input_mut(|i| i.consume_shortcut(&ZOOM_FIT)) {
            self.view.fit();
        }
        if ui.input_mut(|i| i.consume_shortcut(&ZOOM_IN)) {
            self.view.zoom_by(1.25);
        }
        if ui.input_mut(|i| i.consume_shortcut(&ZOOM_OUT)) {
            self.view.zoom_by(0.8);
        }
        if ui.input_mut(|i| i.consume_shortcut(&DIVIDER_LEFT)) {
            self.view.move_divider(-0.1);
        }
        if ui.input_mut(|i| i.consume_shortcut(&DIVIDER_RIGHT)) {
            self.view.move_divider(0.1);
        }
        let typing = ui.ctx().egui_wants_keyboard_input();
        if !typing && ui.input_mut(|i| i.consume_key(Modifiers::NONE, BRUSH)) {
            use crate::engine::refine::BrushMode;
            self.view.brush.mode = match self.view.brush.mode {
                None => Some(BrushMode::Erase),
                Some(BrushMode::Erase) => Some(BrushMode::Restore),
                Some(BrushMode::Restore) => None,
            };
        }
        if ui.input_mut(|i| i.consume_shortcut(&EXPORT)) {
            self.export_dialog();
        }
        // Redo first: Cmd+Z alone would also match Shift+Cmd+Z.
        if ui.input_mut(|i| i.consume_shortcut(&REDO)) {
            self.edit(EditAction::Redo);
        } else if ui.input_mut(|i| i.consume_shortcut(&UNDO)) {
            self.edit(EditAction::Undo);
        }
        // Paste and copy arrive as events when a text field has no focus.
        let (paste, copy) = ui.input(|i| {
            (
                i.events.iter().any(|e| match e {
                    egui::Event::Paste(_) => true,
                    egui::Event::Key {
                        key,
                        pressed,
                        modifiers,
                        ..
                    } => *key == PASTE.logical_key && *pressed && modifiers.command,
                    _ => false,
                }),
                i.events.iter().any(|e| matches!(e, egui::Event::Copy)),
            )
        });
        if paste {
            self.paste();
        }
        if copy {
            self.copy_result();
        }
    }

    fn status_bar(&self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            match &self.engine {
                EngineStatus::Loading => {
                    busy::busy_mark(ui, "loading the model");
                    ui.label("Loading model…");
                }
                EngineStatus::Ready { model, provider } => {
                    ui.label(format!("{model} · {provider} · ready"));
                }
                EngineStatus::Failed(_) if !self.model_manager.is_installed(&self.model) => {
                    ui.label("No model installed yet");
                }
                EngineStatus::Failed(_) => {
                    ui.colored_label(ui.visuals().error_fg_color, "Model not loaded");
                }
            }
            if let Some(t) = self.last_inference {
                ui.separator();
                ui.label(format!("last: {:.2} s", t.as_secs_f32()));
            }
            let opted_in = self.privacy.as_ref().is_some_and(Privacy::opted_in);
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                if opted_in {
                    let queued = self.privacy.as_ref().map_or(0, Privacy::queued_uploads);
                    ui.label(format!(
                        "Opted in · exported images may be sent to improve models · {queued} waiting"
                    ));
                } else {
                    ui.label(
                        RichText::new("Local only · nothing leaves this computer")
                            .color(Color32::from_rgb(60, 150, 90)),
                    );
                }
            });
        });
    }

    fn inspector(&mut self, ui: &mut egui::Ui) {
        ui.heading("Model");
        let mut chosen = None;
        for m in self.model_manager.rows() {
            let response = ui
                .add_enabled(
                    m.installed.is_some(),
                    egui::Button::selectable(m.id == self.model, &m.name),
                )
                .on_hover_text(format!("Licence: {}", m.licence));
            if m.installed.is_none() {
                response.on_disabled_hover_text("Not installed: get it on the Models page");
            } else if response.clicked() {
                chosen = Some(m.id.clone());
            }
        }
        if let Some(id) = chosen {
            self.switch_model(&id);
        }
        if ui.button("Manage models…").clicked() {
            self.page = Page::Models;
        }
        self.preview_choice(ui);
        self.quality_choice(ui);
        ui.add_space(12.0);
        ui.heading("Result");
        ui.add_space(4.0);
        ui.label("Background");
        if self.view.background.ui(ui) == BackgroundAction::ChoosePicture {
            self.ask(
                DialogRequest::new(DialogPurpose::BackgroundPicture, DialogKind::PickFile)
                    .filter("Images", IMAGE_EXTENSIONS),
            );
        }
        ui.add_space(8.0);
        let (can_undo, can_redo) = self.workspace.selected().map_or((false, false), |i| {
            (!i.strokes.is_empty(), !i.redo.is_empty())
        });
        let action = editor::editor_ui(
            ui,
            &mut self.view.brush,
            &mut self.finish,
            can_undo,
            can_redo,
        );
        self.edit(action);
        ui.add_space(8.0);
        egui::ComboBox::from_label("Export format")
            .selected_text(self.format.to_string())
            .show_ui(ui, |ui| {
                for f in [
                    OutputFormat::Png,
                    OutputFormat::Webp,
                    OutputFormat::Jpeg,
                    OutputFormat::Mask,
                ] {
                    ui.selectable_value(&mut self.format, f, f.to_string());
                }
            });
        ui.add_space(8.0);
        let ready = self.workspace.selected().is_some_and(|i| i.mask.is_some());
        ui.horizontal(|ui| {
            let export = ui
                .add_enabled(ready, egui::Button::new("Export…"))
                .on_hover_text(format!(
                    "Save the result ({})",
                    ui.ctx().format_shortcut(&EXPORT)
                ));
            if export.clicked() {
                self.export_dialog();
            }
            let copy = ui
                .add_enabled(
                    ready && !self.copying,
                    egui::Button::new(if self.copying { "Copying…" } else { "Copy" }),
                )
                .on_hover_text(format!(
                    "Copy the result ({})",
                    ui.ctx().format_shortcut(&COPY)
                ));
            if copy.clicked() {
                self.copy_result();
            }
        });
    }

    /// Best quality on or off; turning it on or off redoes the image on
    /// screen (others follow as they are processed or reopened).
    fn quality_choice(&mut self, ui: &mut egui::Ui) {
        let mut on = self.best_quality.load(Ordering::Relaxed);
        let response = ui
            .checkbox(&mut on, BEST_QUALITY_LABEL)
            .on_hover_text(QUALITY_HINT);
        if response.changed() {
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
    }

    /// The instant preview: on or off, or one click to get its model.
    fn preview_choice(&mut self, ui: &mut egui::Ui) {
        if self.model == PREVIEW_MODEL {
            return;
        }
        let installed = self.model_manager.is_installed(PREVIEW_MODEL);
        // Shown off while its model is missing, whatever the setting.
        let mut on = installed && self.preview.load(Ordering::Relaxed);
        let response = ui
            .add_enabled(installed, egui::Checkbox::new(&mut on, PREVIEW_LABEL))
            .on_hover_text(
                "Shows a quick cut-out from U²-Net portable while the full model runs; \
                 the full result then takes a little longer",
            );
        if response.changed() {
            self.preview.store(on, Ordering::Relaxed);
            if on {
                self.worker.warm_preview();
            }
        }
        if on && installed && !self.preview_model_ready {
            ui.weak("loading the preview model…");
        }
        let row = self
            .model_manager
            .rows()
            .iter()
            .find(|r| r.id == PREVIEW_MODEL);
        if let Some(row) = row.filter(|_| !installed) {
            use crate::models::manager::{RowDownload, human_bytes};
            let downloading = matches!(row.download, RowDownload::Running { .. });
            let size = match &row.download {
                RowDownload::Available {
                    bytes: Some(bytes), ..
                } => format!(" ({})", human_bytes(*bytes)),
                _ => String::new(),
            };
            let get = ui.add_enabled(
                !downloading,
                egui::Button::new(format!("Get the preview model{size}")).small(),
            );
            if get.clicked() {
                self.models_action(ModelsAction::Download(PREVIEW_MODEL.into()));
            }
        }
    }

    fn notices_ui(&mut self, ui: &mut egui::Ui) {
        let mut dismiss = None;
        for (i, notice) in self.notices.iter().enumerate() {
            ui.horizontal(|ui| {
                let colour = if notice.is_error {
                    ui.visuals().error_fg_color
                } else {
                    ui.visuals().text_color()
                };
                ui.colored_label(colour, &notice.text);
                if ui.small_button("×").on_hover_text("Dismiss").clicked() {
                    dismiss = Some(i);
                }
            });
        }
        if let Some(i) = dismiss {
            self.notices.remove(i);
        }
    }
}

impl DesktopApp {
    fn account_page(&mut self, ui: &mut egui::Ui) {
        egui::ScrollArea::vertical().show(ui, |ui| {
            self.privacy_section(ui);
            ui.add_space(16.0);
            account::appearance_ui(ui);
        });
    }

    fn privacy_section(&mut self, ui: &mut egui::Ui) {
        let Some(privacy) = self.privacy.as_mut() else {
            ui.label("Local data cannot be managed on this computer; nothing is kept.");
            return;
        };
        let uploader = self.uploader.as_ref().map(Uploader::state);
        match account::account_ui(ui, privacy, &mut self.confirm_delete, uploader) {
            account::AccountAction::None => {}
            account::AccountAction::ConsentChanged => {
                if let Some(uploader) = &self.uploader {
                    uploader.kick();
                }
            }
            account::AccountAction::Failed(text) => self.notices.push(Notice {
                text,
                is_error: true,
            }),
            account::AccountAction::Deleted(n) => {
                self.forget_stored_images();
                self.notices.push(Notice {
                    text: format!("deleted {n} stored item{}", if n == 1 { "" } else { "s" }),
                    is_error: false,
                })
            }
        }
    }

    /// The retention sweep, at least every ten minutes while running.
    fn sweep_if_due(&mut self) {
        if self.last_sweep.elapsed() < SWEEP_EVERY {
            // Come back when it is due even if nothing else wakes the window.
            self.ctx
                .request_repaint_after(SWEEP_EVERY - self.last_sweep.elapsed());
            return;
        }
        self.last_sweep = std::time::Instant::now();
        self.submit_store_job(StoreJob::Sweep);
    }
}

impl eframe::App for DesktopApp {
    fn on_exit(&mut self) {
        // After whatever the writer still has to do: the exit sweep, or
        // deleting everything when nothing may outlive the session.
        if let Some(writer) = &mut self.store_writer {
            writer.finish();
        }
        if let Some(privacy) = &self.privacy
            && let Err(e) = privacy.end_app_session()
        {
            tracing::warn!("local data could not be cleaned up at exit ({e})");
        }
    }

    fn ui(&mut self, ui: &mut egui::Ui, frame: &mut eframe::Frame) {
        if let Some(probe) = &mut self.frame_probe {
            // With an image: from its opening until its result is shown.
            // Without: the empty window once the model has loaded (baseline).
            let (start, done) = match self.workspace.items.first() {
                Some(item) => (true, item.status == Status::Done),
                None => {
                    let ready = matches!(self.engine, EngineStatus::Ready { .. });
                    (ready, ready)
                }
            };
            if probe.frame(start, done, frame.info().cpu_usage) {
                ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close);
            }
            ui.ctx().request_repaint();
        }
        if let Some(t) = &mut self.timeline {
            t.frame();
        }
        self.drain_events();
        self.handle_input(ui);
        self.sweep_if_due();
        self.keep_preferences();

        egui::Panel::top("pages").show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.selectable_value(&mut self.page, Page::Workspace, "Workspace");
                ui.selectable_value(&mut self.page, Page::Batch, "Batch");
                ui.selectable_value(&mut self.page, Page::Models, "Models");
                ui.selectable_value(&mut self.page, Page::Account, "Account");
            });
        });
        egui::Panel::bottom("status").show(ui, |ui| self.status_bar(ui));
        if self.page == Page::Account {
            if !self.notices.is_empty() {
                egui::Panel::top("notices").show(ui, |ui| self.notices_ui(ui));
            }
            egui::CentralPanel::default().show(ui, |ui| self.account_page(ui));
            return;
        }
        if self.page == Page::Models {
            if !self.notices.is_empty() {
                egui::Panel::top("notices").show(ui, |ui| self.notices_ui(ui));
            }
            egui::CentralPanel::default().show(ui, |ui| {
                let action = egui::ScrollArea::vertical()
                    .show(ui, |ui| {
                        models_page::models_ui(
                            ui,
                            &self.model_manager,
                            &self.model,
                            &mut self.custom_form,
                        )
                    })
                    .inner;
                self.models_action(action);
            });
            return;
        }
        if self.page == Page::Batch {
            if !self.notices.is_empty() {
                egui::Panel::top("notices").show(ui, |ui| self.notices_ui(ui));
            }
            egui::CentralPanel::default().show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| self.batch_page(ui))
            });
            return;
        }
        egui::Panel::left("images")
            .default_size(220.0)
            .show(ui, |ui| {
                ui.horizontal(|ui| {
                    ui.heading("Images");
                    if ui
                        .button("Open…")
                        .on_hover_text(format!("Open images ({})", ui.ctx().format_shortcut(&OPEN)))
                        .clicked()
                    {
                        self.open_dialog();
                    }
                });
                ui.separator();
                if let Some(cancel) = self.workspace.list_ui(ui) {
                    self.cancel(cancel);
                }
            });
        egui::Panel::right("inspector")
            .default_size(220.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| self.inspector(ui));
            });
        if !self.notices.is_empty() {
            egui::Panel::top("notices").show(ui, |ui| self.notices_ui(ui));
        }
        egui::CentralPanel::default().show(ui, |ui| {
            let hovering = ui.input(|i| !i.raw.hovered_files.is_empty());
            let model_missing = !self.model_manager.is_installed(&self.model);
            let waiting = self
                .workspace
                .selected()
                .is_some_and(|item| item.status == Status::WaitingForModel);
            if waiting && model_missing {
                // The image waits beside the one-click download, never an error.
                let action = models_page::model_card_ui(ui, &self.model_manager, &self.model);
                self.models_action(action);
                ui.separator();
            }
            match self.workspace.selected_mut() {
                Some(item) => {
                    if self.view.ui(ui, item, self.render_state.as_ref())
                        == CanvasEvent::StrokeFinished
                    {
                        self.commit_stroke();
                    }
                }
                None if !self.model_manager.is_installed(&self.model) => {
                    let action = models_page::first_run_ui(ui, &self.model_manager, &self.model);
                    self.models_action(action);
                }
                None => canvas::empty_state(ui, hovering),
            }
        });
    }
}

/// The worker, or one that refuses every image when the system cannot start
/// its threads (the notice says why).
fn spawn_worker(
    ctx: &egui::Context,
    dirs: &AppDirs,
    model: &str,
    (preview, best_quality): (&Arc<AtomicBool>, &Arc<AtomicBool>),
    notices: &mut Vec<Notice>,
) -> Worker {
    let wake_ctx = ctx.clone();
    let spawned = Worker::spawn(
        WorkerConfig {
            dirs: dirs.clone(),
            model: Some(model.to_string()),
            // One core stays free for the window: a designer drags the
            // divider while a photo is processed, and on a software renderer
            // drawing competes with inference for the same cores.
            session: SessionOptions {
                threads: Some(
                    crate::engine::inference::default_threads()
                        .saturating_sub(1)
                        .max(1),
                ),
                ..SessionOptions::default()
            },
            limits: DecodeLimits::default(),
            preview: preview.clone(),
            best_quality: best_quality.clone(),
        },
        Arc::new(move || wake_ctx.request_repaint()),
    );
    spawned.unwrap_or_else(|e| {
        notices.push(Notice {
            text: format!("cannot start image processing ({e}); close other programs and restart"),
            is_error: true,
        });
        Worker::unavailable()
    })
}

fn display_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Files stay as they are; a folder contributes the images directly inside it.
fn expand_folders(paths: Vec<PathBuf>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut inside: Vec<PathBuf> = std::fs::read_dir(&path)
                .map(|rd| rd.flatten().map(|e| e.path()).collect())
                .unwrap_or_default();
            inside.retain(|p| {
                p.is_file()
                    && p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                        IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str())
                    })
            });
            inside.sort();
            out.extend(inside);
        } else {
            out.push(path);
        }
    }
    out
}

/// The export of one image: composited by the WGSL compositor offscreen when
/// a GPU is at hand (the same shader as the canvas), else by the CPU
/// reference; then encoded. A mask export is the mask alone.
fn export(
    image: &image::RgbaImage,
    mask: &image::GrayImage,
    format: OutputFormat,
    background: &Background,
    gpu: Option<(wgpu::Device, wgpu::Queue, Arc<Compositor>)>,
    path: &Path,
) -> Result<Vec<u8>, crate::Error> {
    if format == OutputFormat::Mask {
        return encode_result(
            image,
            mask,
            &EncodeOptions {
                format,
                ..Default::default()
            },
            path,
        );
    }
    // JPEG has no alpha: a transparent background becomes white.
    let background = match (background, format) {
        (Background::Transparent, OutputFormat::Jpeg) => Background::Colour(Rgb8::default().0),
        (bg, _) => bg.clone(),
    };
    let picture = background.pixels_for(image).map(|(_, p)| p);
    let gpu_result = gpu.and_then(|(device, queue, compositor)| {
        let layer = compositor
            .upload(&device, &queue, image, mask, picture.as_ref())
            .ok()?;
        compositor
            .render_export(&device, &queue, &layer, background.layer_background())
            .ok()
    });
    let composited = match gpu_result {
        Some(pixels) => pixels,
        None => {
            let cpu_bg = match (&background, &picture) {
                (Background::Colour(c), _) => CompositeBackground::Colour(*c),
                (_, Some(p)) => CompositeBackground::Image(p),
                _ => CompositeBackground::Transparent,
            };
            composite(image, mask, cpu_bg)
        }
    };
    encode_composited(&composited, format, path)
}
