//! The desktop app, in rooms:
//!
//! - `mod.rs`: [`DesktopApp`] (what the user chose, which persists, and the
//!   running parts), its start and its frame;
//! - `shell`: the frame's layout; widgets read state and push a
//!   [`command::Command`];
//! - `command`: the commands, applied once per frame in one place;
//! - `handlers`: what they do to the workspace, engine, models and batch;
//! - `tasks`: exports, copies, preview recomputes and pictures on threads of
//!   their own, and their results;
//! - `events`: what the worker, downloads, the store writer and dialogs
//!   reported;
//! - `services`: the privacy services and the preferences file;
//! - the pages and widgets: `account`, `batch_panel`, `models_page`,
//!   `editor`, `canvas`/`gpu_canvas`, `workspace`, `dialogs`.
//!
//! Decoding, inference and encoding run on the worker's threads and on task
//! threads, which wake the UI with `request_repaint` when they have news.

mod account;
mod batch_panel;
mod busy;
mod canvas;
pub mod command;
mod dialogs;
mod editor;
mod events;
mod frame_probe;
mod gpu_canvas;
mod handlers;
mod models_page;
mod services;
mod shell;
mod tasks;
mod timeline;
pub mod worker;
mod workspace;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, bounded};
use egui::{Key, KeyboardShortcut, Modifiers};

use crate::app::worker::{ImageId, Worker, WorkerConfig};
pub use crate::composite::Background;
use crate::composite::gpu::Compositor;
use crate::engine::decode::DecodeLimits;
use crate::engine::encode::OutputFormat;
use crate::engine::finish::FinishSettings;
use crate::engine::inference::SessionOptions;
use crate::instance::{FirstInstance, Handoff, InstanceGuard};
use crate::models::manager::ModelManager;
use crate::paths::AppDirs;
use crate::prefs::{self, Appearance, Preferences};
use crate::privacy::PrivacyServices;
use crate::privacy::recent::Kept;
use crate::privacy::schedule::Cleanup;
pub use account::{CONSENT_LABEL, CONSENT_OFF_WORDS, CONSENT_ON_WORDS, NOT_SAVED_RETRY};
pub use batch_panel::{BatchPanel, BatchRun, FileState};
pub use canvas::{BackgroundAction, CanvasEvent, CanvasView, PREVIEW_MARK};
use dialogs::Dialogs;
pub use dialogs::{Answerer, DialogKind, DialogPurpose, DialogRequest};
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

/// The inspector's switch for the preview model's quick cut-out.
pub const PREVIEW_LABEL: &str = "Instant preview";

/// The inspector's switch for the best-quality passes.
pub const BEST_QUALITY_LABEL: &str = "Best quality (slower)";

pub const SPEED_LABEL: &str = "Speed";

/// Balanced or fast (int8), for the inspector and the Batch page: one
/// setting, since both run on the same worker. Greyed out, with the reason,
/// on a CPU without int8 dot products. `Some` when the user picked another.
pub fn speed_choice(
    ui: &mut egui::Ui,
    current: crate::engine::inference::Speed,
) -> Option<crate::engine::inference::Speed> {
    use crate::engine::inference::Speed;
    let available = crate::engine::quantize::cpu_has_int8_dot_product();
    let mut chosen = current;
    ui.add_enabled_ui(available, |ui| {
        // Compact: "Balanced" / "Fast (int8)" say what it is; the
        // accessible name is "Speed".
        let response = egui::ComboBox::from_id_salt(SPEED_LABEL)
            .width(84.0)
            .selected_text(current.label())
            .show_ui(ui, |ui| {
                for speed in Speed::ALL {
                    ui.selectable_value(&mut chosen, speed, speed.label());
                }
            })
            .response;
        response.widget_info(|| {
            egui::WidgetInfo::labeled(egui::Role::ComboBox, available, SPEED_LABEL)
        });
        response
            .on_hover_text(
                "Speed. Fast runs an int8 version of the model, made once on this computer: about \
                 twice as quick on the CPU, with masks that differ by a fraction of a percent",
            )
            .on_disabled_hover_text(
                "This CPU has no int8 dot-product instructions (AVX-512 VNNI, AVX-VNNI, ARM \
                 dot product): the int8 model would be slower here",
            );
    });
    (chosen != current).then_some(chosen)
}

/// What best quality does and costs, for the inspector and the Batch page.
pub const QUALITY_HINT: &str = "Best: the model also sees the photo mirrored and takes a closer \
     look at the subject's edge, U²-Net portable gives a second opinion where the model may \
     have taken the wrong subject, then the unsure edge is redrawn from the photo's own \
     colours: about four times the time per image";

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

/// The app: what the user chose (kept in the preferences file), the open
/// images, and the running parts (worker, services, task channel).
pub struct DesktopApp {
    // What the user chose; `preferences()` is what persists of it.
    pub page: Page,
    /// The model in use (catalog id).
    pub model: String,
    pub view: CanvasView,
    pub format: OutputFormat,
    /// Edge, crop, canvas and shadow settings for exports.
    pub finish: FinishSettings,
    /// Show the preview model's quick cut-out while the full model runs
    /// (shared with the worker).
    preview: Arc<AtomicBool>,
    /// Best-quality passes for images processed from now on (shared with
    /// the worker).
    best_quality: Arc<AtomicBool>,
    /// The model's int8 variant (fast) or the float model; a change starts
    /// a new worker, as a model switch does.
    pub speed: crate::engine::inference::Speed,

    // The open images and what is shown about them.
    pub workspace: Workspace,
    pub engine: EngineStatus,
    pub notices: Vec<Notice>,
    pub last_inference: Option<Duration>,
    /// The preview model is loaded and warmed (its first preview is quick).
    pub preview_model_ready: bool,
    pub batch: BatchPanel,
    /// A copy is being rendered (one at a time).
    pub copying: bool,
    /// The built-in export presets, then the user's (`presets.ron`).
    pub presets: Vec<crate::presets::Preset>,
    /// The name typed for "Save as preset", and whether its field shows.
    pub preset_name: String,
    naming_preset: bool,
    confirm_delete: bool,
    custom_form: models_page::CustomForm,
    next_picture_key: u64,
    /// Samples waiting to be sent and sent so far, as last read (the status
    /// bar does not read the store every frame).
    queued_uploads: usize,
    uploads_sent: usize,

    // Running parts.
    worker: Worker,
    /// The catalog, what is installed, downloads and imports.
    pub model_manager: ModelManager,
    /// Consent, the store, its writer and the uploader; `None` if local data
    /// cannot be managed (then nothing is kept at all, and the user is told).
    services: Option<PrivacyServices>,
    /// What is kept of each finished image for the next start.
    saved: std::collections::HashMap<ImageId, Kept>,
    /// Images whose stored entry is gone (a day old, or purged): nothing
    /// more of them is written, however long the app keeps them open.
    not_kept: std::collections::HashSet<ImageId>,
    /// This frame's commands, applied after layout.
    commands: Vec<command::Command>,
    tasks_tx: Sender<tasks::TaskResult>,
    tasks_rx: Receiver<tasks::TaskResult>,
    /// The open file dialog, if any (its answer arrives on a later frame).
    dialogs: Dialogs,
    /// Files handed over by later launches.
    handoff: Option<Handoff>,
    _instance: Option<InstanceGuard>,
    last_sweep: std::time::Instant,
    dirs: AppDirs,
    /// Set when the window renders with wgpu: the canvas and exports then
    /// go through the WGSL compositor.
    render_state: Option<egui_wgpu::RenderState>,
    compositor: Option<Arc<Compositor>>,
    ctx: egui::Context,
    frame_probe: Option<frame_probe::FrameProbe>,
    timeline: Option<timeline::Timeline>,
    /// What the user chose, as last handed to `prefs_saver`.
    saved_prefs: Preferences,
    prefs_saver: Option<services::PrefsSaver>,
}

impl DesktopApp {
    /// Starts the worker (the model loads in the background) and the
    /// privacy services, and opens the start's paths.
    pub fn new(cc: &eframe::CreationContext<'_>, start: AppStart) -> Self {
        let AppStart {
            dirs,
            model,
            paths,
            cleanup,
            instance,
        } = start;
        let ctx = cc.egui_ctx.clone();
        let render_state = cc.wgpu_render_state.clone();
        let compositor = render_state.as_ref().map(gpu_canvas::GpuCanvas::install);
        let (tasks_tx, tasks_rx) = bounded(16);
        let mut notices = Vec::new();
        let services = services::start_privacy(&dirs, cleanup, waker(&ctx), &mut notices);
        let model_manager = ModelManager::new(
            dirs.clone(),
            services
                .as_ref()
                .and_then(|s| s.privacy.settings.npm_registry.clone()),
            waker(&ctx),
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
        // Fast is not offered where it would be slower.
        let speed = if crate::engine::quantize::cpu_has_int8_dot_product() {
            prefs.speed
        } else {
            crate::engine::inference::Speed::Balanced
        };
        let worker = spawn_worker(
            &ctx,
            &dirs,
            (&model, speed),
            (&preview, &best_quality),
            &mut notices,
        );
        let (handoff, instance) = match instance {
            Some(first) => {
                let (handoff, guard) = first.serve(waker(&ctx));
                (Some(handoff), Some(guard))
            }
            None => (None, None),
        };
        let presets = crate::presets::all(&dirs.config).unwrap_or_else(|e| {
            notices.push(Notice {
                text: format!("{e}; only the built-in presets are offered"),
                is_error: true,
            });
            crate::presets::built_in()
        });
        let mut app = Self {
            page: prefs.page,
            model,
            view: CanvasView::restored(prefs.background.into(), prefs.brush.into()),
            format: prefs.format,
            finish: prefs.finish,
            preview,
            best_quality,
            speed,
            workspace: Workspace::default(),
            engine: EngineStatus::Loading,
            notices,
            last_inference: None,
            preview_model_ready: false,
            batch: BatchPanel {
                settings: prefs.batch.settings(),
                keep_watching: prefs.batch.keep_watching,
                ..BatchPanel::default()
            },
            copying: false,
            presets,
            preset_name: String::new(),
            naming_preset: false,
            confirm_delete: false,
            custom_form: Default::default(),
            next_picture_key: 1,
            queued_uploads: 0,
            uploads_sent: 0,
            worker,
            model_manager,
            services,
            saved: Default::default(),
            not_kept: Default::default(),
            commands: Vec::new(),
            tasks_tx,
            tasks_rx,
            dialogs: Dialogs::new(waker(&ctx)),
            handoff,
            _instance: instance,
            last_sweep: std::time::Instant::now(),
            prefs_saver: services::PrefsSaver::spawn(dirs.config.clone()),
            dirs,
            render_state,
            compositor,
            ctx,
            frame_probe: frame_probe::FrameProbe::from_env(),
            timeline: timeline::Timeline::from_env(),
            saved_prefs: prefs,
        };
        app.refresh_upload_count();
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
            brush: self.view.brush.saved(),
            page: self.page,
            appearance: self.ctx.options(|o| o.theme_preference).into(),
            best_quality: self.best_quality(),
            instant_preview: self.instant_preview(),
            speed: self.speed,
            batch: crate::prefs::SavedBatch::from_settings(
                &self.batch.settings,
                self.batch.keep_watching,
            ),
        }
    }

    /// Hands changed preferences to the saver (a comparison per frame).
    fn keep_preferences(&mut self) {
        let now = self.preferences();
        if now == self.saved_prefs {
            return;
        }
        // A full queue: tried again next frame.
        if self
            .prefs_saver
            .as_ref()
            .is_none_or(|s| s.offer(now.clone()))
        {
            self.saved_prefs = now;
        }
    }

    /// The frame probe (BACKGROUNDERASE_FRAME_STATS): with an image, from
    /// its opening until its result is shown; without, the empty window once
    /// the model has loaded (the baseline).
    fn probe_frame(&mut self, cpu_usage: Option<f32>) {
        let Some(probe) = &mut self.frame_probe else {
            return;
        };
        let (start, done) = match self.workspace.items.first() {
            Some(item) => (true, item.status == Status::Done),
            None => {
                let ready = matches!(self.engine, EngineStatus::Ready { .. });
                (ready, ready)
            }
        };
        if probe.frame(start, done, cpu_usage) {
            self.ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        }
        self.ctx.request_repaint();
    }
}

impl eframe::App for DesktopApp {
    fn on_exit(&mut self) {
        self.stop_privacy();
    }

    fn ui(&mut self, ui: &mut egui::Ui, frame: &mut eframe::Frame) {
        self.probe_frame(frame.info().cpu_usage);
        if let Some(t) = &mut self.timeline {
            t.frame();
        }
        self.drain_events();
        self.sweep_if_due();
        self.frame(ui);
        self.apply_commands();
        self.keep_preferences();
    }
}

/// Wakes the window from another thread.
fn waker(ctx: &egui::Context) -> Arc<dyn Fn() + Send + Sync> {
    let ctx = ctx.clone();
    Arc::new(move || ctx.request_repaint())
}

/// The worker, or one that refuses every image when the system cannot start
/// its threads (the notice says why).
fn spawn_worker(
    ctx: &egui::Context,
    dirs: &AppDirs,
    (model, speed): (&str, crate::engine::inference::Speed),
    (preview, best_quality): (&Arc<AtomicBool>, &Arc<AtomicBool>),
    notices: &mut Vec<Notice>,
) -> Worker {
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
                speed,
                ..SessionOptions::default()
            },
            limits: DecodeLimits::default(),
            preview: preview.clone(),
            best_quality: best_quality.clone(),
        },
        waker(ctx),
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
