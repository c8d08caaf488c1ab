//! Background work for an interactive front end: one decode thread, one
//! inference thread (the only owner of the model's ONNX session) and one
//! preview thread (the only owner of the small preview model's), fed and answered
//! over bounded channels. The front end passes a `wake` callback (egui's
//! `request_repaint`) that is called after every event, so it never polls
//! and never blocks on decoding, inference or a lock the worker needs.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use image::{GrayImage, RgbaImage};

use crate::engine::Engine;
use crate::engine::batch::BatchJob;
use crate::engine::decode::{DecodeLimits, decode_file};
use crate::engine::inference::SessionOptions;
use crate::engine::quality::Quality;
use crate::engine::review::Review;
use crate::paths::AppDirs;
use crate::privacy::recent::{load_mask, load_original};
use crate::privacy::store::RetentionStore;

/// Identifies one image of the workspace.
pub type ImageId = u64;

/// Where an image comes from.
#[derive(Debug, Clone)]
pub enum ImageSource {
    File(PathBuf),
    /// Pixels already in memory (pasted from the clipboard).
    Pixels(Arc<RgbaImage>),
    /// Pixels kept in the retention store (a paste from an earlier session).
    Stored(Arc<RetentionStore>, u64),
}

/// A mask made in an earlier session, used instead of inference when it
/// still fits the image.
#[derive(Debug, Clone)]
pub struct KnownMask {
    pub store: Arc<RetentionStore>,
    pub item: u64,
}

#[derive(Debug)]
pub enum Command {
    Open {
        id: ImageId,
        source: ImageSource,
        known_mask: Option<KnownMask>,
    },
    /// Drops a queued image; a running one is abandoned when it finishes.
    Cancel(ImageId),
}

/// An embedded ICC colour profile, as the file held it.
pub type IccProfile = Arc<Vec<u8>>;

#[derive(Debug, Clone)]
pub enum Event {
    EngineReady {
        model: String,
        provider: String,
    },
    EngineFailed {
        message: String,
    },
    /// Full pixels for export, and a screen-sized copy for display.
    Decoded {
        id: ImageId,
        image: Arc<RgbaImage>,
        preview: Arc<RgbaImage>,
        /// The file's colour profile, for the export.
        icc_profile: Option<IccProfile>,
    },
    Started {
        id: ImageId,
    },
    /// A quick provisional mask from the preview model, screen-sized; the
    /// full model's `Finished` follows.
    Preview {
        id: ImageId,
        preview_mask: Arc<GrayImage>,
    },
    Finished {
        id: ImageId,
        mask: Arc<GrayImage>,
        preview_mask: Arc<GrayImage>,
        inference: Duration,
        /// How sure the model was: low ones are marked for review.
        review: Review,
    },
    /// The preview model is loaded and warmed: previews from now on come
    /// at their steady speed.
    PreviewModelReady,
    /// The earlier session's mask, instead of `Finished`.
    Restored {
        id: ImageId,
        mask: Arc<GrayImage>,
        preview_mask: Arc<GrayImage>,
    },
    Failed {
        id: ImageId,
        message: String,
    },
    /// Decoded, but the model is not installed yet: the image waits (the
    /// app reprocesses it once the model lands).
    WaitingForModel {
        id: ImageId,
    },
    Cancelled {
        id: ImageId,
    },
}

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub dirs: AppDirs,
    pub model: Option<String>,
    pub session: SessionOptions,
    pub limits: DecodeLimits,
    /// Run [`PREVIEW_MODEL`] before the full model, when it is installed.
    /// Shared: the front end turns it on and off while the worker runs.
    pub preview: Arc<AtomicBool>,
    /// Best-quality passes instead of one (shared like `preview`).
    pub best_quality: Arc<AtomicBool>,
}

/// The small fast model whose cut-out is shown while the full model runs.
pub const PREVIEW_MODEL: &str = "u2netp";

/// What the preview thread is asked to do.
enum PreviewJob {
    /// Load and warm the model now (the switch was just turned on).
    WarmUp,
    Image(ImageId, Arc<RgbaImage>),
}

pub struct Worker {
    commands: Sender<Command>,
    previews: Sender<PreviewJob>,
    batches: Sender<BatchJob>,
    events: Receiver<Event>,
    cancelled: Arc<Mutex<HashSet<ImageId>>>,
    shutdown: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

/// The preview model's session, loaded when first needed (and again once the
/// model has been installed, if it was missing).
#[derive(Default)]
struct Previewer {
    engine: Option<Engine>,
    /// A load failed for a reason other than a missing file: not retried.
    broken: bool,
}

impl Previewer {
    /// Loads the preview model once; `None` while it is not installed.
    fn load(
        &mut self,
        config: &WorkerConfig,
        catalog: &crate::models::catalog::ModelCatalog,
    ) -> Option<&mut Engine> {
        if self.engine.is_none() && !self.broken {
            match Engine::load(&config.dirs, catalog, Some(PREVIEW_MODEL), &config.session) {
                Ok(engine) => self.engine = Some(engine),
                Err(crate::error::Error::ModelNotInstalled { .. }) => return None,
                Err(e) => {
                    tracing::warn!("no previews: {e}");
                    self.broken = true;
                    return None;
                }
            }
        }
        self.engine.as_mut()
    }

    /// Loads and warms the preview model before the first photo, so that
    /// the first preview is as quick as the next ones. `true` once it is.
    fn warm_up(
        &mut self,
        config: &WorkerConfig,
        catalog: &crate::models::catalog::ModelCatalog,
    ) -> bool {
        let Some(engine) = self.load(config, catalog) else {
            return false;
        };
        match engine.warm_up() {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!("preview warm-up failed: {e}");
                false
            }
        }
    }

    fn mask(
        &mut self,
        config: &WorkerConfig,
        catalog: &crate::models::catalog::ModelCatalog,
        image: &RgbaImage,
    ) -> Option<GrayImage> {
        match self.load(config, catalog)?.mask(image) {
            Ok(mask) => Some(mask),
            Err(e) => {
                tracing::warn!("preview failed: {e}");
                None
            }
        }
    }
}

/// Queue depths: enough to keep the inference thread busy, small enough that
/// a dropped folder of large photos does not sit decoded in memory.
const COMMAND_QUEUE: usize = 256;
const DECODED_QUEUE: usize = 2;
const EVENT_QUEUE: usize = 64;
/// Longest side of the copies shown on screen: sharp on a 4K display at
/// fit-to-window, and quick to upload on the UI thread.
pub const PREVIEW_SIDE: u32 = 2048;

impl Worker {
    /// Starts the decode, preview and inference threads; the model loads in the background. Fails only
    /// when the system cannot start a thread (out of memory or processes).
    pub fn spawn(config: WorkerConfig, wake: Arc<dyn Fn() + Send + Sync>) -> std::io::Result<Self> {
        let (commands, command_rx) = bounded::<Command>(COMMAND_QUEUE);
        let (decoded_tx, decoded_rx) = bounded::<(ImageId, Arc<RgbaImage>)>(DECODED_QUEUE);
        let (event_tx, events) = bounded::<Event>(EVENT_QUEUE);
        let (batches, batch_rx) = bounded::<BatchJob>(1);
        // One image at most waits for a preview; a newer one is not
        // previewed rather than queued (its full result is on the way).
        let (previews, preview_rx) = bounded::<PreviewJob>(1);
        let cancelled = Arc::new(Mutex::new(HashSet::new()));
        let shutdown = Arc::new(AtomicBool::new(false));
        let link = Link {
            events: event_tx,
            wake,
            cancelled: cancelled.clone(),
            shutdown: shutdown.clone(),
        };
        let spawn = |name: &str, run: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new().name(name.into()).spawn(run)
        };
        let decode = DecodeLoop {
            commands: command_rx,
            decoded: decoded_tx,
            previews: previews.clone(),
            link: link.clone(),
            limits: config.limits,
            preview_on: config.preview.clone(),
            full_model_is_preview: config.model.as_deref() == Some(PREVIEW_MODEL),
        };
        let decode = spawn("decode", Box::new(move || decode.run()))?;
        let preview = PreviewLoop {
            jobs: preview_rx,
            link: link.clone(),
            config: config.clone(),
        };
        let preview = spawn("preview", Box::new(move || preview.run()))?;
        let inference = InferenceLoop {
            decoded: decoded_rx,
            batches: batch_rx,
            link,
            config,
        };
        let inference = spawn("inference", Box::new(move || inference.run()))?;
        Ok(Self {
            commands,
            previews,
            batches,
            events,
            cancelled,
            shutdown,
            threads: vec![decode, preview, inference],
        })
    }

    /// A worker with no threads, for when none could be started: every
    /// image is refused at once (the caller says why) instead of waiting.
    pub fn unavailable() -> Self {
        let (commands, _) = bounded(1);
        let (previews, _) = bounded(1);
        let (batches, _) = bounded(1);
        let (_, events) = bounded(1);
        Self {
            commands,
            previews,
            batches,
            events,
            cancelled: Arc::default(),
            shutdown: Arc::new(AtomicBool::new(true)),
            threads: Vec::new(),
        }
    }

    /// Queues `source`; never blocks the caller. Returns `false` if the queue
    /// is full (hundreds of images waiting), so the caller can say so.
    pub fn open(&self, id: ImageId, source: ImageSource) -> bool {
        self.open_with(id, source, None)
    }

    /// Queues `source` with the mask of an earlier session, if it fits.
    pub fn open_with(
        &self,
        id: ImageId,
        source: ImageSource,
        known_mask: Option<KnownMask>,
    ) -> bool {
        match self.commands.try_send(Command::Open {
            id,
            source,
            known_mask,
        }) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => false,
        }
    }

    /// Hands a batch to the inference thread; `false` if one is already
    /// waiting there.
    pub fn start_batch(&self, job: BatchJob) -> bool {
        self.batches.try_send(job).is_ok()
    }

    /// Loads and warms the preview model now, before the next photo needs
    /// it; [`Event::PreviewModelReady`] says when it is done.
    pub fn warm_preview(&self) {
        let _ = self.previews.try_send(PreviewJob::WarmUp);
    }

    pub fn cancel(&self, id: ImageId) {
        // Marked at once, so that both threads see it whatever they are doing.
        self.cancelled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id);
        let _ = self.commands.try_send(Command::Cancel(id));
    }

    /// Every event that has arrived, without waiting.
    pub fn poll(&self) -> Vec<Event> {
        self.events.try_iter().collect()
    }

    /// Waits up to `timeout` for the next event (tests and headless use).
    pub fn wait(&self, timeout: Duration) -> Option<Event> {
        self.events.recv_timeout(timeout).ok()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Stop the loops, close the command channel, and drain events so
        // neither thread blocks on a send while winding down. An inference
        // already running finishes first (ONNX Runtime cannot be interrupted
        // mid-graph without tearing the session down).
        self.shutdown.store(true, Ordering::Relaxed);
        let (dead_tx, _) = bounded(1);
        drop(std::mem::replace(&mut self.commands, dead_tx));
        let (dead_tx, _) = bounded(1);
        drop(std::mem::replace(&mut self.batches, dead_tx));
        let (dead_tx, _) = bounded(1);
        drop(std::mem::replace(&mut self.previews, dead_tx));
        for thread in self.threads.drain(..) {
            while !thread.is_finished() {
                let _ = self.events.recv_timeout(Duration::from_millis(20));
            }
            let _ = thread.join();
        }
    }
}

/// `image` scaled to fit `max_side` (unchanged if it already fits).
#[allow(clippy::expect_used, reason = "RGBA to RGBA, both at least 1×1")]
pub fn preview_rgba(image: &RgbaImage, max_side: u32) -> RgbaImage {
    let (w, h) = fit(image.width(), image.height(), max_side);
    if (w, h) == image.dimensions() {
        return image.clone();
    }
    let mut dst = fast_image_resize::images::Image::new(w, h, fast_image_resize::PixelType::U8x4);
    fast_image_resize::Resizer::new()
        .resize(image, &mut dst, &preview_options())
        .expect("RGBA to RGBA");
    RgbaImage::from_raw(w, h, dst.into_vec()).expect("sized by resize")
}

/// The mask at the same preview size as [`preview_rgba`].
#[allow(clippy::expect_used, reason = "L8 to L8, both at least 1×1")]
pub fn preview_mask(mask: &GrayImage, max_side: u32) -> GrayImage {
    let (w, h) = fit(mask.width(), mask.height(), max_side);
    if (w, h) == mask.dimensions() {
        return mask.clone();
    }
    let mut dst = fast_image_resize::images::Image::new(w, h, fast_image_resize::PixelType::U8);
    fast_image_resize::Resizer::new()
        .resize(mask, &mut dst, &preview_options())
        .expect("L8 to L8");
    GrayImage::from_raw(w, h, dst.into_vec()).expect("sized by resize")
}

fn preview_options() -> fast_image_resize::ResizeOptions {
    fast_image_resize::ResizeOptions::new().resize_alg(fast_image_resize::ResizeAlg::Convolution(
        fast_image_resize::FilterType::Bilinear,
    ))
}

fn fit(w: u32, h: u32, max_side: u32) -> (u32, u32) {
    let longest = w.max(h);
    if longest <= max_side {
        return (w, h);
    }
    let scale = f64::from(max_side) / f64::from(longest);
    (
        ((f64::from(w) * scale).round() as u32).max(1),
        ((f64::from(h) * scale).round() as u32).max(1),
    )
}

fn is_cancelled(cancelled: &Mutex<HashSet<ImageId>>, id: ImageId) -> bool {
    cancelled
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(&id)
}

/// What every worker thread shares with the window: the event channel and
/// its wake-up, the cancelled images and the shutdown flag.
#[derive(Clone)]
struct Link {
    events: Sender<Event>,
    wake: Arc<dyn Fn() + Send + Sync>,
    cancelled: Arc<Mutex<HashSet<ImageId>>>,
    shutdown: Arc<AtomicBool>,
}

impl Link {
    /// Sends the window an event and wakes it; `false` once the window is
    /// gone (the loops then end).
    fn emit(&self, event: Event) -> bool {
        let ok = self.events.send(event).is_ok();
        (self.wake)();
        ok
    }

    fn is_cancelled(&self, id: ImageId) -> bool {
        is_cancelled(&self.cancelled, id)
    }

    fn shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::Relaxed)
    }
}

/// The decode thread: reads each image (file, pixels or the store), sends
/// its preview-size copy to the window, a stored mask back as it was, and
/// the image on to inference (and to the preview model when it is on).
struct DecodeLoop {
    commands: Receiver<Command>,
    decoded: Sender<(ImageId, Arc<RgbaImage>)>,
    previews: Sender<PreviewJob>,
    link: Link,
    limits: DecodeLimits,
    preview_on: Arc<AtomicBool>,
    full_model_is_preview: bool,
}

impl DecodeLoop {
    fn run(self) {
        for command in &self.commands {
            if self.link.shutting_down() {
                return;
            }
            let (id, source, known_mask) = match command {
                Command::Open {
                    id,
                    source,
                    known_mask,
                } => (id, source, known_mask),
                Command::Cancel(id) => {
                    self.link
                        .cancelled
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(id);
                    continue;
                }
            };
            if self.link.is_cancelled(id) {
                self.link.emit(Event::Cancelled { id });
                continue;
            }
            let carry_on = match self.read(source) {
                Ok((image, icc_profile)) => self.decoded(id, image, icc_profile, known_mask),
                Err(message) => {
                    self.link.emit(Event::Failed { id, message });
                    true
                }
            };
            if !carry_on {
                return;
            }
        }
    }

    /// The pixels, and the file's colour profile when it has one (pasted
    /// and stored pixels are sRGB as far as the app knows).
    fn read(&self, source: ImageSource) -> Result<(Arc<RgbaImage>, Option<IccProfile>), String> {
        match source {
            ImageSource::Pixels(pixels) => Ok((pixels, None)),
            ImageSource::File(path) => decode_file(&path, self.limits)
                .map(|d| (Arc::new(d.rgba), d.icc_profile))
                .map_err(|e| e.to_string()),
            ImageSource::Stored(store, item) => {
                load_original(&store, item).map(|image| (Arc::new(image), None))
            }
        }
    }

    /// Hands a decoded image on; `false` when the window or inference is gone.
    fn decoded(
        &self,
        id: ImageId,
        image: Arc<RgbaImage>,
        icc_profile: Option<IccProfile>,
        known: Option<KnownMask>,
    ) -> bool {
        let mut preview = preview_rgba(&image, PREVIEW_SIDE);
        // Shown colour-managed: a wide-gamut photo looks on screen as it
        // will in the designer's tools (the export keeps its own values
        // and profile).
        if let Some(icc) = &icc_profile {
            crate::engine::colour::rgb_to_srgb(&mut preview, icc);
        }
        let preview = Arc::new(preview);
        let decoded = Event::Decoded {
            id,
            image: image.clone(),
            preview,
            icc_profile,
        };
        if !self.link.emit(decoded) {
            return false;
        }
        let known = known
            .and_then(|k| load_mask(&k.store, k.item).ok())
            .filter(|m| m.dimensions() == image.dimensions());
        if let Some(mask) = known {
            return self.link.emit(Event::Restored {
                id,
                preview_mask: Arc::new(preview_mask(&mask, PREVIEW_SIDE)),
                mask: Arc::new(mask),
            });
        }
        if self.preview_on.load(Ordering::Relaxed) && !self.full_model_is_preview {
            // Dropped when the preview thread is busy: a preview is a
            // courtesy, never a reason to wait.
            let _ = self.previews.try_send(PreviewJob::Image(id, image.clone()));
        }
        self.decoded.send((id, image)).is_ok()
    }
}

/// The preview thread. The preview model runs beside the full one rather
/// than before it: the full result is not delayed by the preview's run (the
/// window gives the full model one core; the other mostly idles while it
/// runs).
struct PreviewLoop {
    jobs: Receiver<PreviewJob>,
    link: Link,
    config: WorkerConfig,
}

impl PreviewLoop {
    fn run(self) {
        let catalog = crate::models::profile_catalog(&self.config.dirs);
        let mut previewer = Previewer::default();
        let mut warm = false;
        let mut warm_up = |previewer: &mut Previewer| {
            if !warm && previewer.warm_up(&self.config, &catalog) {
                warm = true;
                return self.link.emit(Event::PreviewModelReady);
            }
            true
        };
        if self.config.preview.load(Ordering::Relaxed) && !warm_up(&mut previewer) {
            return;
        }
        for job in &self.jobs {
            if self.link.shutting_down() {
                return;
            }
            let (id, image) = match job {
                PreviewJob::WarmUp => {
                    if !warm_up(&mut previewer) {
                        return;
                    }
                    continue;
                }
                PreviewJob::Image(id, image) => (id, image),
            };
            if self.link.is_cancelled(id) {
                continue;
            }
            if let Some(mask) = previewer.mask(&self.config, &catalog, &image) {
                let preview_mask = Arc::new(preview_mask(&mask, PREVIEW_SIDE));
                if !self.link.emit(Event::Preview { id, preview_mask }) {
                    return;
                }
            }
        }
    }
}

/// The inference thread, the ONNX session's one owner: images from the
/// decode thread and batches from the Batch page, one at a time.
struct InferenceLoop {
    decoded: Receiver<(ImageId, Arc<RgbaImage>)>,
    batches: Receiver<BatchJob>,
    link: Link,
    config: WorkerConfig,
}

impl InferenceLoop {
    fn run(self) {
        let catalog = crate::models::profile_catalog(&self.config.dirs);
        let loaded = Engine::load(
            &self.config.dirs,
            &catalog,
            self.config.model.as_deref(),
            &self.config.session,
        );
        let mut engine = match loaded {
            Ok(mut engine) => {
                // "Ready" means the first photo runs at the steady speed
                // (scripts/bench-first-minute measures it).
                if let Err(e) = engine.warm_up() {
                    tracing::warn!("warm-up run failed: {e}");
                }
                self.link.emit(Event::EngineReady {
                    model: engine.model.display_name.clone(),
                    provider: if engine.provider().int8 {
                        format!("{} · fast (int8)", engine.provider().active)
                    } else {
                        engine.provider().active.to_string()
                    },
                });
                engine
            }
            Err(e) => return self.answer_without_engine(&e),
        };
        loop {
            // A batch runs here, on the session's one owner; images dropped
            // on the workspace meanwhile wait for it.
            let (id, image) = crossbeam_channel::select! {
                recv(self.decoded) -> item => match item {
                    Ok(item) => item,
                    Err(_) => return,
                },
                recv(self.batches) -> job => match job {
                    Ok(job) => {
                        job.run(&mut engine);
                        continue;
                    }
                    Err(_) => return,
                },
            };
            if self.link.shutting_down() || !self.remove_background(&mut engine, id, &image) {
                return;
            }
        }
    }

    /// One image; `false` once the window is gone.
    fn remove_background(&self, engine: &mut Engine, id: ImageId, image: &RgbaImage) -> bool {
        if self.link.is_cancelled(id) {
            return self.link.emit(Event::Cancelled { id });
        }
        self.link.emit(Event::Started { id });
        let started = Instant::now();
        let quality = if self.config.best_quality.load(Ordering::Relaxed) {
            Quality::Best
        } else {
            Quality::Standard
        };
        let result = engine
            .mask_reviewed(image, quality)
            .map(|(mask, review, _)| (mask, review));
        let event = if self.link.is_cancelled(id) {
            Event::Cancelled { id }
        } else {
            match result {
                Ok((mask, review)) => Event::Finished {
                    id,
                    preview_mask: Arc::new(preview_mask(&mask, PREVIEW_SIDE)),
                    mask: Arc::new(mask),
                    inference: started.elapsed(),
                    review,
                },
                Err(e) => Event::Failed {
                    id,
                    message: e.to_string(),
                },
            }
        };
        self.link.emit(event)
    }

    /// The model could not be loaded: keep answering, so that queued images
    /// and batches say why they wait.
    fn answer_without_engine(&self, error: &crate::error::Error) {
        let missing_model = matches!(error, crate::error::Error::ModelNotInstalled { .. });
        self.link.emit(Event::EngineFailed {
            message: error.to_string(),
        });
        loop {
            crossbeam_channel::select! {
                recv(self.decoded) -> item => match item {
                    Ok((id, _)) if missing_model => {
                        self.link.emit(Event::WaitingForModel { id });
                    }
                    Ok((id, _)) => {
                        self.link.emit(Event::Failed { id, message: error.to_string() });
                    }
                    Err(_) => return,
                },
                recv(self.batches) -> job => match job {
                    Ok(job) => job.fail(error.to_string()),
                    Err(_) => return,
                },
            }
        }
    }
}
