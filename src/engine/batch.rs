//! Batch export of a folder tree: planning (walk, skip, shard, name the
//! outputs, resume from the manifest) and the run itself, shared by the
//! app's batch panel and `backgrounderase batch`.
//!
//! Crash safety: every output is written to a temporary file and renamed;
//! only then is a line appended to the manifest in the output folder. A
//! re-run skips inputs whose manifest line matches (same size, mtime and
//! settings) and whose output still exists, so `kill -9` loses nothing that
//! had finished.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Engine;
use super::StageTimes;
use super::decode::IMAGE_EXTENSIONS;
use super::encode::{DEFAULT_JPEG_QUALITY, OutputFormat, Rgb8};
use super::pipeline::{self, Control, Job, Outcome, PipelineOptions};
use super::review::Review;

/// The manifest of finished work, inside the output folder (hidden, so a
/// later batch over that folder does not treat it as input).
pub const MANIFEST_FILE: &str = ".backgrounderase-batch.jsonl";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum IfExists {
    /// Leave the existing file, skip the input.
    #[default]
    Skip,
    Overwrite,
    /// Write `name (2).png` beside it.
    KeepBoth,
}

impl std::str::FromStr for IfExists {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "skip" => Ok(Self::Skip),
            "overwrite" => Ok(Self::Overwrite),
            "keep-both" => Ok(Self::KeepBoth),
            other => Err(format!(
                "unknown choice '{other}' (choose skip, overwrite or keep-both)"
            )),
        }
    }
}

/// `--shard I/N`: this process takes the files whose path hashes to `I`
/// modulo `N` (0 ≤ I < N). Hashing the relative path keeps the split stable
/// when files are added, and needs no coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("a shard is I/N, e.g. 0/4 (got {s})"))?;
        let index: u32 = i
            .trim()
            .parse()
            .map_err(|_| format!("bad shard index: {s}"))?;
        let count: u32 = n
            .trim()
            .parse()
            .map_err(|_| format!("bad shard count: {s}"))?;
        if count == 0 || index >= count {
            return Err(format!(
                "the shard index must be 0 … N-1 (got {s}; Kubernetes' JOB_COMPLETION_INDEX and a Slurm array 0-(N-1) fit)"
            ));
        }
        Ok(Self { index, count })
    }
}

impl Shard {
    pub fn takes(&self, relative: &Path) -> bool {
        let digest = Sha256::digest(relative.to_string_lossy().as_bytes());
        #[allow(clippy::expect_used, reason = "a sha256 digest is 32 bytes")]
        let n = u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"));
        n % u64::from(self.count) == u64::from(self.index)
    }
}

/// What a batch produces and how it names it.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchSettings {
    pub include_subfolders: bool,
    /// Recreate the input's folder tree in the output folder.
    pub mirror: bool,
    pub format: OutputFormat,
    pub background: Rgb8,
    /// 1–100, for JPEG outputs.
    pub jpeg_quality: u8,
    /// `{name}` is the input's file name without extension, `{ext}` the
    /// output format's extension: `{name}.{ext}`, `{name}-cutout.png`.
    pub pattern: String,
    pub if_exists: IfExists,
    /// Catalog id of the model (part of what a finished output depends on).
    pub model: String,
    /// Edge work, crop, canvas and shadow.
    pub finish: super::finish::FinishSettings,
    /// One pass of the model or the best-quality passes.
    pub quality: super::quality::Quality,
    /// Best quality's second opinion model, when it runs (part of what a
    /// best-quality output depends on).
    pub second_opinion: Option<String>,
    /// Brush strokes the user made in the app, by input file (canonical
    /// path): a batch over those files uses them.
    pub edits: BTreeMap<PathBuf, Vec<super::refine::Stroke>>,
    /// Where named temporaries of outputs are recorded (not part of what
    /// an output depends on).
    pub partials: Option<PathBuf>,
}

impl Default for BatchSettings {
    fn default() -> Self {
        Self {
            include_subfolders: true,
            mirror: true,
            format: OutputFormat::Png,
            background: Rgb8::default(),
            jpeg_quality: DEFAULT_JPEG_QUALITY,
            pattern: "{name}.{ext}".into(),
            if_exists: IfExists::Skip,
            finish: Default::default(),
            quality: Default::default(),
            second_opinion: None,
            edits: BTreeMap::new(),
            partials: None,
            model: String::new(),
        }
    }
}

impl BatchSettings {
    /// What an output depends on: a change means finished work is redone.
    /// The strokes for `input`, if the user edited it in the app.
    pub fn strokes_for(&self, input: &Path) -> &[super::refine::Stroke] {
        if self.edits.is_empty() {
            return &[];
        }
        let key = input.canonicalize().unwrap_or_else(|_| input.to_path_buf());
        self.edits.get(&key).map_or(&[], Vec::as_slice)
    }

    /// What an output depends on: the settings, plus this file's strokes.
    fn job_fingerprint(&self, input: &Path) -> String {
        let base = self.fingerprint();
        let strokes = self.strokes_for(input);
        if strokes.is_empty() {
            return base;
        }
        let text = serde_json::to_string(strokes).unwrap_or_default();
        let digest = Sha256::digest(text.as_bytes());
        let edits: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        format!("{base}+{edits}")
    }

    fn fingerprint(&self) -> String {
        let key = format!(
            "{}|{}|{:?}|{}|{}{}{}{}",
            self.model,
            self.format.extension(),
            self.background.0,
            self.pattern,
            self.mirror,
            // Absent when nothing is set, so earlier manifests stay valid.
            if self.finish.is_identity() {
                String::new()
            } else {
                format!("|{:?}", self.finish)
            },
            match (self.quality, &self.second_opinion) {
                (super::quality::Quality::Standard, _) => String::new(),
                (other, None) => format!("|{other}"),
                (other, Some(second)) => format!("|{other}+{second}"),
            },
            // Absent at the default, so earlier manifests stay valid.
            if self.jpeg_quality == DEFAULT_JPEG_QUALITY || self.format != OutputFormat::Jpeg {
                String::new()
            } else {
                format!("|q{}", self.jpeg_quality)
            }
        );
        let digest = Sha256::digest(key.as_bytes());
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    fn validate(&self) -> Result<(), BatchError> {
        if !self.pattern.contains("{name}") {
            return Err(BatchError::Pattern(format!(
                "{} has no {{name}}: every output would have the same name",
                self.pattern
            )));
        }
        if self.pattern.contains('/') || self.pattern.contains('\\') {
            return Err(BatchError::Pattern(format!(
                "{} may not contain folders",
                self.pattern
            )));
        }
        Ok(())
    }

    fn file_name(&self, input: &Path) -> String {
        let stem = input
            .file_stem()
            .map_or_else(|| "image".into(), |s| s.to_string_lossy().into_owned());
        self.pattern
            .replace("{name}", &stem)
            .replace("{ext}", self.format.extension())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("bad file-name pattern: {0}")]
    Pattern(String),
    #[error("cannot read the input folder ({source}): {}", path.display())]
    ReadInput {
        source: std::io::Error,
        path: PathBuf,
    },
    #[error("cannot use the output folder ({source}): {}", path.display())]
    Output {
        source: std::io::Error,
        path: PathBuf,
    },
}

/// One input with where its result goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedJob {
    pub input: PathBuf,
    /// The input relative to the input folder.
    pub relative: PathBuf,
    pub output: PathBuf,
    pub size: u64,
    pub mtime_ns: i128,
}

/// Everything the batch will do, and what it leaves out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub jobs: Vec<PlannedJob>,
    /// Hidden and system files (`.DS_Store`, `Thumbs.db`, `._*`, dot files).
    pub skipped_hidden: usize,
    /// Files that are not images by their extension.
    pub skipped_not_images: usize,
    /// Finished by an earlier run (manifest).
    pub already_done: usize,
    /// The output exists and the policy is skip.
    pub skipped_existing: usize,
    /// Left to the other shards.
    pub other_shards: usize,
    /// The review of each input finished by an earlier run, so that a
    /// resumed batch still lists every image (`--review-csv`).
    pub reviewed_earlier: Vec<(PathBuf, Review)>,
}

impl Plan {
    /// What was left out, in words: `["3 already done", "1 not images"]`.
    pub fn skipped_summary(&self) -> Vec<String> {
        [
            (self.already_done, "already done"),
            (self.skipped_existing, "output exists"),
            (self.skipped_hidden, "hidden or system files"),
            (self.skipped_not_images, "not images"),
            (self.other_shards, "for other shards"),
        ]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect()
    }
}

/// One finished output. The input is kept as a hash of its relative path:
/// the manifest outlives the 24-hour rule (it sits with the export), so it
/// holds nothing the exported files do not show already.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ManifestLine {
    input_sha256: String,
    size: u64,
    mtime_ns: i128,
    settings: String,
    output: PathBuf,
    /// The mask's confidence (absent in manifests from before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    review: Option<Review>,
}

fn is_hidden_or_system(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    name.starts_with('.')
        || lower == "thumbs.db"
        || lower == "desktop.ini"
        || lower == "ehthumbs.db"
}

fn is_image_name(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Walks `input_dir` and decides every output. Deterministic: the same tree
/// and settings give the same plan on every machine.
pub fn plan(
    input_dir: &Path,
    output_dir: &Path,
    settings: &BatchSettings,
    shard: Option<Shard>,
) -> Result<Plan, BatchError> {
    settings.validate()?;
    let mut plan = Plan::default();
    let mut files = Vec::new();
    // The output folder may sit inside the input folder: never read it back.
    let output_canon = output_dir.canonicalize().ok();
    walk(
        input_dir,
        Path::new(""),
        settings.include_subfolders,
        output_canon.as_deref(),
        &mut files,
        &mut plan,
    )?;
    files.sort();

    let manifest = read_manifest(output_dir);
    let mut taken: HashSet<PathBuf> = HashSet::new();
    // Every shard names every file, in the same order, and keeps only its
    // own jobs: two shards flattening `a/x.jpg` and `b/x.jpg` into one
    // folder agree that one is `x.png` and the other `x (2).png`.
    for relative in files {
        let mine = shard.is_none_or(|shard| shard.takes(&relative));
        if !mine {
            plan.other_shards += 1;
        }
        let input = input_dir.join(&relative);
        let meta = match fs::metadata(&input) {
            Ok(meta) => meta,
            Err(_) if !mine => continue,
            Err(source) => {
                return Err(BatchError::ReadInput {
                    source,
                    path: input.clone(),
                });
            }
        };
        let size = meta.len();
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as i128);
        let previous = manifest.get(&input_key(&relative));
        if let Some(done) = previous
            && done.size == size
            && done.mtime_ns == mtime_ns
            && done.settings == settings.job_fingerprint(&input)
            && output_dir.join(&done.output).is_file()
        {
            if mine {
                plan.already_done += 1;
                if let Some(review) = &done.review {
                    plan.reviewed_earlier
                        .push((relative.clone(), review.clone()));
                }
            }
            taken.insert(output_dir.join(&done.output));
            continue;
        }
        let folder = if settings.mirror {
            output_dir.join(relative.parent().unwrap_or(Path::new("")))
        } else {
            output_dir.to_path_buf()
        };
        let name = settings.file_name(&relative);
        let mut output = folder.join(&name);
        // Two inputs of this batch with one name (flattened folders):
        // number the later ones rather than lose one.
        let exists = |p: &Path| p.exists() || taken.contains(p);
        // This input's own earlier result (the input or the settings have
        // changed since): replaced, whatever the policy for other files.
        let own_earlier = previous.is_some_and(|done| output_dir.join(&done.output) == output);
        if taken.contains(&output)
            || (settings.if_exists == IfExists::KeepBoth && exists(&output) && !own_earlier)
        {
            output = numbered(&folder, &name, exists);
        } else if output.exists() && settings.if_exists == IfExists::Skip && !own_earlier {
            if mine {
                plan.skipped_existing += 1;
            }
            continue;
        }
        taken.insert(output.clone());
        if mine {
            plan.jobs.push(PlannedJob {
                input,
                relative,
                output,
                size,
                mtime_ns,
            });
        }
    }
    Ok(plan)
}

/// `name (2).png`, `name (3).png`… the first one free.
fn numbered(folder: &Path, name: &str, exists: impl Fn(&Path) -> bool) -> PathBuf {
    let path = Path::new(name);
    let stem = path
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    (2..=u64::MAX)
        .map(|n| folder.join(format!("{stem} ({n}){ext}")))
        .find(|p| !exists(p))
        .unwrap_or_else(|| folder.join(format!("{stem} ({}){ext}", std::process::id())))
}

fn walk(
    root: &Path,
    relative: &Path,
    recurse: bool,
    skip_dir: Option<&Path>,
    files: &mut Vec<PathBuf>,
    plan: &mut Plan,
) -> Result<(), BatchError> {
    let dir = root.join(relative);
    let entries = fs::read_dir(&dir).map_err(|source| BatchError::ReadInput {
        source,
        path: dir.clone(),
    })?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = relative.join(entry.file_name());
        // Symlinks are not followed into folders (no loops, no escapes).
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            if !recurse || name.starts_with('.') {
                continue;
            }
            let path = entry.path();
            if skip_dir.is_some_and(|s| path.canonicalize().ok().as_deref() == Some(s)) {
                continue;
            }
            walk(root, &rel, recurse, skip_dir, files, plan)?;
        } else if is_hidden_or_system(&name) {
            plan.skipped_hidden += 1;
        } else if !is_image_name(&rel) {
            plan.skipped_not_images += 1;
        } else if kind.is_file() || entry.path().is_file() {
            files.push(rel);
        }
    }
    Ok(())
}

/// The latest line per input; a torn last line (killed mid-write) is ignored.
fn read_manifest(output_dir: &Path) -> BTreeMap<String, ManifestLine> {
    let text = fs::read_to_string(output_dir.join(MANIFEST_FILE)).unwrap_or_default();
    text.lines()
        .filter_map(|line| serde_json::from_str::<ManifestLine>(line).ok())
        .map(|line| (line.input_sha256.clone(), line))
        .collect()
}

fn input_key(relative: &Path) -> String {
    let digest = Sha256::digest(relative.to_string_lossy().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Appends one finished output to the manifest, flushed to disk.
fn record_done(
    output_dir: &Path,
    job: &PlannedJob,
    settings: &str,
    review: &Review,
) -> std::io::Result<()> {
    let line = ManifestLine {
        input_sha256: input_key(&job.relative),
        size: job.size,
        mtime_ns: job.mtime_ns,
        settings: settings.to_string(),
        output: job
            .output
            .strip_prefix(output_dir)
            .unwrap_or(&job.output)
            .to_path_buf(),
        review: Some(review.clone()),
    };
    let mut text = serde_json::to_string(&line).map_err(std::io::Error::other)?;
    text.push('\n');
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(output_dir.join(MANIFEST_FILE))?;
    file.write_all(text.as_bytes())?;
    file.sync_data()
}

/// Temporary files of outputs in the making that a killed run left behind.
/// Only old ones: another shard may be writing into the same folder now.
fn remove_stale_partials(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            remove_stale_partials(&path);
        } else if name.starts_with(".backgrounderase-") && name.ends_with(".part") {
            let age = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok());
            if age.is_some_and(|a| a > STALE_PARTIAL) {
                let _ = fs::remove_file(&path);
            }
        }
    }
}

const STALE_PARTIAL: Duration = Duration::from_secs(10 * 60);

/// Progress of a running batch, for a progress bar or the batch panel.
#[derive(Debug, Clone)]
pub enum BatchEvent {
    Done {
        index: usize,
        times: StageTimes,
        review: Review,
    },
    Failed {
        index: usize,
        reason: String,
    },
    Cancelled {
        index: usize,
    },
}

/// What the run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub done: usize,
    /// `(input relative to the input folder, reason)`.
    pub failures: Vec<(PathBuf, String)>,
    pub cancelled: usize,
    pub wall: Duration,
    /// `(input relative to the input folder, review)` of every image done.
    pub reviews: Vec<(PathBuf, Review)>,
}

/// Runs the plan through `engine`: decoding, inference and encoding
/// overlapped (see [`pipeline`]), outputs renamed into place, each finished
/// output recorded in the manifest.
pub fn run(
    engine: &mut Engine,
    plan: &Plan,
    output_dir: &Path,
    settings: &BatchSettings,
    control: &Control,
    mut on_event: impl FnMut(BatchEvent),
) -> Result<Summary, BatchError> {
    let started = Instant::now();
    let output_error = |source| BatchError::Output {
        source,
        path: output_dir.to_path_buf(),
    };
    fs::create_dir_all(output_dir).map_err(output_error)?;
    let mut folders: Vec<&Path> = plan.jobs.iter().filter_map(|j| j.output.parent()).collect();
    folders.dedup();
    for folder in folders {
        fs::create_dir_all(folder).map_err(|source| BatchError::Output {
            source,
            path: folder.to_path_buf(),
        })?;
    }
    remove_stale_partials(output_dir);
    let jobs: Vec<Job> = plan
        .jobs
        .iter()
        .map(|j| Job {
            input: j.input.clone(),
            output: j.output.clone(),
            strokes: settings.strokes_for(&j.input).to_vec(),
        })
        .collect();
    let options = PipelineOptions {
        encode: super::encode::EncodeOptions {
            format: settings.format,
            background: settings.background,
            jpeg_quality: settings.jpeg_quality.clamp(1, 100),
        },
        finish: settings.finish,
        partials: settings.partials.clone(),
        quality: settings.quality,
        ..Default::default()
    };
    let mut summary = Summary::default();
    pipeline::run(engine, &jobs, &options, control, |outcome| {
        let event = match outcome {
            Outcome::Done {
                index,
                times,
                review,
                ..
            } => {
                let job = &plan.jobs[index];
                let fingerprint = settings.job_fingerprint(&job.input);
                match record_done(output_dir, job, &fingerprint, &review) {
                    Ok(()) => {
                        summary.done += 1;
                        summary.reviews.push((job.relative.clone(), review.clone()));
                        BatchEvent::Done {
                            index,
                            times,
                            review,
                        }
                    }
                    Err(e) => {
                        let reason =
                            format!("finished, but the manifest could not be written ({e})");
                        summary
                            .failures
                            .push((plan.jobs[index].relative.clone(), reason.clone()));
                        BatchEvent::Failed { index, reason }
                    }
                }
            }
            Outcome::Failed {
                index,
                error: crate::Error::Cancelled,
            } => {
                summary.cancelled += 1;
                BatchEvent::Cancelled { index }
            }
            Outcome::Failed { index, error } => {
                let reason = error.to_string();
                summary
                    .failures
                    .push((plan.jobs[index].relative.clone(), reason.clone()));
                BatchEvent::Failed { index, reason }
            }
        };
        on_event(event);
    });
    summary.wall = started.elapsed();
    Ok(summary)
}

/// What a batch running on its own thread reports to whoever shows it.
#[derive(Debug, Clone)]
pub enum BatchUpdate {
    /// The model is loaded and the folder planned.
    Planned(Plan),
    Event(BatchEvent),
    Finished(Summary),
    /// It could not start (no model, unreadable folder, bad pattern).
    Failed(String),
}

/// The app's view of a batch that runs on the inference worker (the one
/// owner of the ONNX session): control it with [`BatchHandle::control`],
/// read its news with [`BatchHandle::poll`].
pub struct BatchHandle {
    pub control: std::sync::Arc<Control>,
    updates: crossbeam_channel::Receiver<BatchUpdate>,
}

/// What the batch is asked to do.
#[derive(Debug, Clone)]
pub struct BatchRequest {
    pub input: PathBuf,
    pub output: PathBuf,
    pub settings: BatchSettings,
    /// Only these inputs (relative to `input`), when a watched folder says
    /// which have arrived; `None`: the whole folder.
    pub only: Option<std::collections::BTreeSet<PathBuf>>,
}

/// The worker's half: run it with the worker's engine.
pub struct BatchJob {
    request: BatchRequest,
    control: std::sync::Arc<Control>,
    updates: crossbeam_channel::Sender<BatchUpdate>,
    wake: std::sync::Arc<dyn Fn() + Send + Sync>,
}

impl BatchHandle {
    /// A handle and the job to hand to the worker; `wake` is called after
    /// every update.
    pub fn new(
        request: BatchRequest,
        wake: std::sync::Arc<dyn Fn() + Send + Sync>,
    ) -> (Self, BatchJob) {
        let control = std::sync::Arc::new(Control::default());
        // Bounded: a stalled reader slows the batch instead of growing memory.
        let (tx, updates) = crossbeam_channel::bounded(64);
        let job = BatchJob {
            request,
            control: control.clone(),
            updates: tx,
            wake,
        };
        (Self { control, updates }, job)
    }

    pub fn poll(&self) -> Vec<BatchUpdate> {
        self.updates.try_iter().collect()
    }
}

impl BatchJob {
    fn send(&self, update: BatchUpdate) {
        let _ = self.updates.send(update);
        (self.wake)();
    }

    /// The whole batch with `engine` (its model is the batch's model).
    pub fn run(mut self, engine: &mut Engine) {
        self.request.settings.model = engine.model.id.clone();
        self.request.settings.second_opinion =
            engine.second_opinion.model_in_use().map(str::to_owned);
        let request = &self.request;
        let plan = match plan(&request.input, &request.output, &request.settings, None) {
            Ok(mut plan) => {
                if let Some(only) = &request.only {
                    plan.jobs.retain(|job| only.contains(&job.relative));
                }
                plan
            }
            Err(e) => return self.send(BatchUpdate::Failed(e.to_string())),
        };
        self.send(BatchUpdate::Planned(plan.clone()));
        let result = run(
            engine,
            &plan,
            &request.output,
            &request.settings,
            &self.control,
            |event| self.send(BatchUpdate::Event(event)),
        );
        self.send(match result {
            Ok(summary) => BatchUpdate::Finished(summary),
            Err(e) => BatchUpdate::Failed(e.to_string()),
        });
    }

    /// When there is no engine to run it with.
    pub fn fail(self, reason: String) {
        self.send(BatchUpdate::Failed(reason));
    }
}

impl Drop for BatchHandle {
    /// Closing the window stops the batch after the image in hand; what
    /// finished is in the manifest, so it can be resumed.
    fn drop(&mut self) {
        self.control.cancel();
    }
}

/// The failure report as CSV (`file,reason`), quoted as RFC 4180 asks.
pub fn failures_csv(failures: &[(PathBuf, String)]) -> String {
    let quote = |s: &str| format!("\"{}\"", csv_text(s).replace('"', "\"\""));
    let mut out = String::from("file,reason\n");
    for (file, reason) in failures {
        out.push_str(&format!(
            "{},{}\n",
            quote(&file.to_string_lossy()),
            quote(reason)
        ));
    }
    out
}

/// The review report as CSV (`file,score,reasons`), least sure first, so
/// the masks to look at are at the top.
pub fn review_csv(reviews: &[(PathBuf, Review)]) -> String {
    let quote = |s: &str| format!("\"{}\"", csv_text(s).replace('"', "\"\""));
    let mut sorted: Vec<&(PathBuf, Review)> = reviews.iter().collect();
    sorted.sort_by(|a, b| a.1.score.cmp(&b.1.score).then_with(|| a.0.cmp(&b.0)));
    let mut out = String::from("file,score,reasons\n");
    for (file, review) in sorted {
        out.push_str(&format!(
            "{},{},{}\n",
            quote(&file.to_string_lossy()),
            review.score,
            quote(&review.reasons_text())
        ));
    }
    out
}

/// A cell a spreadsheet shows as text: one starting with `=`, `+`, `-`,
/// `@`, a tab or a carriage return would be run as a formula (a file named
/// `=HYPERLINK(…)`), so it gets a leading apostrophe, as OWASP advises.
pub fn csv_text(cell: &str) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_quality_is_part_of_what_an_output_depends_on() {
        let standard = BatchSettings::default();
        let best = BatchSettings {
            quality: super::super::quality::Quality::Best,
            ..BatchSettings::default()
        };
        assert_ne!(standard.fingerprint(), best.fingerprint());
        // Whether best quality had its second opinion changes the output too,
        // so installing it redoes earlier best-quality outputs; standard
        // quality never asks it.
        let seconded = |settings: &BatchSettings| BatchSettings {
            second_opinion: Some("u2netp".into()),
            ..settings.clone()
        };
        assert_ne!(best.fingerprint(), seconded(&best).fingerprint());
        assert_eq!(standard.fingerprint(), seconded(&standard).fingerprint());
        // Standard quality adds nothing to the key: outputs made before
        // there was a choice stay valid.
        let key = format!(
            "{}|{}|{:?}|{}|{}|{:?}",
            standard.model,
            standard.format.extension(),
            standard.background.0,
            standard.pattern,
            standard.mirror,
            standard.finish
        );
        let digest = Sha256::digest(key.as_bytes());
        let old: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(standard.fingerprint(), old);
    }

    #[test]
    fn a_file_name_never_becomes_a_spreadsheet_formula() {
        let csv = failures_csv(&[
            (
                PathBuf::from("=HYPERLINK(\"http://x\",\"y\").jpg"),
                "bad".into(),
            ),
            (PathBuf::from("+1.jpg"), "-2".into()),
            (PathBuf::from("plain.jpg"), "@SUM(A1)".into()),
        ]);
        assert_eq!(
            csv,
            "file,reason\n\
             \"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\").jpg\",\"bad\"\n\
             \"'+1.jpg\",\"'-2\"\n\
             \"plain.jpg\",\"'@SUM(A1)\"\n"
        );
    }

    #[test]
    fn the_review_report_lists_the_least_sure_first_with_reasons() {
        use crate::engine::review::ReviewReason;
        let review = |score, reasons: Vec<ReviewReason>| Review { score, reasons };
        let csv = review_csv(&[
            ("sure.jpg".into(), review(90, vec![])),
            (
                "=bad.jpg".into(),
                review(
                    7,
                    vec![ReviewReason::UncertainEdge, ReviewReason::Fragments],
                ),
            ),
            (
                "half.jpg".into(),
                review(40, vec![ReviewReason::CutByFrame]),
            ),
        ]);
        assert_eq!(
            csv,
            "file,score,reasons\n\
             \"'=bad.jpg\",7,\"uncertain edge; in pieces\"\n\
             \"half.jpg\",40,\"cut by the frame\"\n\
             \"sure.jpg\",90,\"\"\n"
        );
    }

    fn touch(root: &Path, rel: &str) {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, b"x").unwrap();
    }

    fn settings() -> BatchSettings {
        BatchSettings {
            model: "m".into(),
            ..Default::default()
        }
    }

    #[test]
    fn plan_mirrors_skips_hidden_and_non_images_and_keeps_same_names_apart() {
        let input = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        for rel in [
            "a/cat.jpg",
            "b/cat.jpg",
            "top.PNG",
            "ünï cödé/with space.webp",
            ".DS_Store",
            "a/._cat.jpg",
            "Thumbs.db",
            "notes.txt",
            ".hidden/x.jpg",
        ] {
            touch(input.path(), rel);
        }
        let plan = plan(input.path(), out.path(), &settings(), None).unwrap();
        let outs: Vec<PathBuf> = plan
            .jobs
            .iter()
            .map(|j| j.output.strip_prefix(out.path()).unwrap().to_path_buf())
            .collect();
        assert_eq!(
            outs,
            [
                "a/cat.png",
                "b/cat.png",
                "top.png",
                "ünï cödé/with space.png"
            ]
            .map(PathBuf::from)
        );
        assert_eq!(plan.skipped_hidden, 3);
        assert_eq!(plan.skipped_not_images, 1);

        // Flattened: the second cat is numbered, not lost.
        let flat = BatchSettings {
            mirror: false,
            ..settings()
        };
        let plan = super::plan(input.path(), out.path(), &flat, None).unwrap();
        let names: Vec<String> = plan
            .jobs
            .iter()
            .map(|j| j.output.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["cat.png", "cat (2).png", "top.png", "with space.png"]
        );
    }

    #[test]
    fn existing_outputs_follow_the_policy_and_patterns_apply() {
        let input = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        touch(input.path(), "dog.jpg");
        touch(out.path(), "dog-cutout.webp");
        let mut s = BatchSettings {
            pattern: "{name}-cutout.{ext}".into(),
            format: OutputFormat::Webp,
            ..settings()
        };
        assert_eq!(
            plan(input.path(), out.path(), &s, None)
                .unwrap()
                .skipped_existing,
            1
        );
        s.if_exists = IfExists::Overwrite;
        assert_eq!(
            plan(input.path(), out.path(), &s, None).unwrap().jobs[0].output,
            out.path().join("dog-cutout.webp")
        );
        s.if_exists = IfExists::KeepBoth;
        assert_eq!(
            plan(input.path(), out.path(), &s, None).unwrap().jobs[0].output,
            out.path().join("dog-cutout (2).webp")
        );
        s.pattern = "cutout.png".into();
        assert!(plan(input.path(), out.path(), &s, None).is_err());
    }

    #[test]
    fn a_changed_input_replaces_its_own_earlier_output_under_every_policy() {
        let input = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        touch(input.path(), "shoe.jpg");
        touch(out.path(), "shoe.png");
        let s = settings();
        let first = plan(input.path(), out.path(), &s, None).unwrap();
        assert_eq!(
            first.skipped_existing, 1,
            "someone else's file is left alone"
        );
        // Say an earlier run made it, then the photo is replaced.
        let job = PlannedJob {
            input: input.path().join("shoe.jpg"),
            relative: "shoe.jpg".into(),
            output: out.path().join("shoe.png"),
            size: 0,
            mtime_ns: 0,
        };
        record_done(
            out.path(),
            &job,
            &s.fingerprint(),
            &Review {
                score: 90,
                reasons: Vec::new(),
            },
        )
        .unwrap();
        for policy in [IfExists::Skip, IfExists::KeepBoth, IfExists::Overwrite] {
            let s = BatchSettings {
                if_exists: policy,
                ..settings()
            };
            let again = plan(input.path(), out.path(), &s, None).unwrap();
            assert_eq!(again.jobs.len(), 1, "{policy:?}");
            assert_eq!(
                again.jobs[0].output,
                out.path().join("shoe.png"),
                "{policy:?}"
            );
        }
    }

    #[test]
    fn shards_split_the_files_exactly_once() {
        let input = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        for i in 0..50 {
            touch(input.path(), &format!("d{}/img{i}.jpg", i % 3));
        }
        let mut seen = Vec::new();
        for i in 0..4 {
            let shard: Shard = format!("{i}/4").parse().unwrap();
            let plan = plan(input.path(), out.path(), &settings(), Some(shard)).unwrap();
            assert_eq!(plan.jobs.len() + plan.other_shards, 50);
            seen.extend(plan.jobs.into_iter().map(|j| j.relative));
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 50, "every file in exactly one shard");
        assert!("4/4".parse::<Shard>().is_err());
        assert!("1-4".parse::<Shard>().is_err());
    }

    #[test]
    fn shards_flattening_one_name_into_one_folder_never_share_an_output() {
        let input = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        for i in 0..40 {
            touch(input.path(), &format!("d{i}/photo.jpg"));
        }
        let flat = BatchSettings {
            mirror: false,
            ..settings()
        };
        let mut outputs = Vec::new();
        for i in 0..4 {
            let shard: Shard = format!("{i}/4").parse().unwrap();
            let plan = plan(input.path(), out.path(), &flat, Some(shard)).unwrap();
            outputs.extend(plan.jobs.into_iter().map(|j| j.output));
        }
        assert_eq!(outputs.len(), 40);
        outputs.sort();
        outputs.dedup();
        assert_eq!(outputs.len(), 40, "two shards planned one output");
    }

    #[test]
    fn the_output_folder_inside_the_input_is_not_read_back() {
        let input = tempfile::tempdir().unwrap();
        touch(input.path(), "a.jpg");
        touch(input.path(), "out/b.png");
        let plan = plan(input.path(), &input.path().join("out"), &settings(), None).unwrap();
        assert_eq!(plan.jobs.len(), 1);
    }

    #[test]
    fn csv_quotes_commas_and_quotes() {
        let csv = failures_csv(&[("a, b.jpg".into(), "bad \"header\"".into())]);
        assert_eq!(csv, "file,reason\n\"a, b.jpg\",\"bad \"\"header\"\"\"\n");
    }
}
