//! Argument parsing and the headless subcommands.

mod batch;
mod remove;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use backgrounderase::engine::encode::{OutputFormat, Rgb8};
use backgrounderase::engine::inference::ProviderChoice;
use backgrounderase::models::catalog::{self, ModelCatalog};
use backgrounderase::paths::AppDirs;
use backgrounderase::setup::{DEFAULT_RUNTIME_PACKAGE, Installed, Setup};

#[derive(Debug, Parser)]
#[command(
    name = "backgrounderase",
    version,
    about = "Remove image backgrounds on your own machine. Nothing leaves this computer."
)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Images to open in the desktop app (no subcommand).
    pub images: Vec<PathBuf>,
    /// Model for the desktop app.
    #[arg(long)]
    pub model: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Remove the background of one or more images.
    Remove(RemoveArgs),
    /// Remove the backgrounds of a whole folder tree (resumable, shardable).
    Batch(BatchArgs),
    /// Keep a folder watched: images that arrive are processed once fully
    /// written, like `batch` (same options, manifest and names).
    Watch(WatchArgs),
    /// The model catalog: list, download, import, remove.
    Models {
        #[command(subcommand)]
        action: Option<ModelsAction>,
    },
    /// Install the ONNX Runtime and models (uses pip and npm; downloads are cached).
    Setup(SetupArgs),
    /// Consent and local data, for managed machines: status, opt-in, opt-out, purge.
    Privacy {
        #[command(subcommand)]
        action: PrivacyAction,
    },
    /// Export presets: the built-in specs and your own.
    Presets {
        #[command(subcommand)]
        action: Option<PresetsAction>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PresetsAction {
    /// Every preset with a one-line summary.
    List,
    /// One preset in full (RON, as saved).
    Show { name: String },
}

/// The options a preset sets, which cannot be given with `--preset`
/// (`batch`'s `--pattern` names the conflict itself, as `remove` has none).
const PRESET_SETS: [&str; 11] = [
    "format",
    "bg",
    "shift",
    "feather",
    "no_despill",
    "crop_margin",
    "canvas",
    "subject_fill",
    "max_size",
    "shadow",
    "quality",
];

#[derive(Debug, Subcommand)]
pub enum ModelsAction {
    /// List the catalog and where each model is installed (the default).
    List,
    /// Download a catalog model into your models folder (resumable, checked).
    Download {
        /// Model id from `backgrounderase models`.
        id: String,
    },
    /// Install a model file you already have: matched to the catalog by
    /// checksum, or added as a custom model with --custom.
    Import {
        file: PathBuf,
        /// Add a file that matches no catalog model, fed like this family:
        /// isnet, u2net or birefnet.
        #[arg(long, value_name = "FAMILY")]
        custom: Option<String>,
        /// Name shown for a custom model.
        #[arg(long)]
        name: Option<String>,
    },
    /// Delete a model from your models folder (a bundled copy stays).
    Remove { id: String },
}

#[derive(Debug, Subcommand)]
pub enum PrivacyAction {
    /// Print the consent state and what is stored locally.
    Status,
    /// Allow images to be used to improve models (keeps data past 24 hours).
    OptIn,
    /// Withdraw consent; deletes everything older than 24 hours at once.
    OptOut,
    /// Delete everything stored locally now.
    Purge,
    /// Delete what has reached its time (what the hourly clean-up runs);
    /// prints counts, never names.
    Sweep,
}

#[derive(Debug, Args)]
pub struct EngineArgs {
    /// Model id from `backgrounderase models` (default: the catalog's default).
    #[arg(long)]
    pub model: Option<String>,
    /// Execution provider: auto, cpu, cuda, directml or coreml.
    #[arg(long, default_value = "auto")]
    pub provider: ProviderChoice,
    /// Fail instead of falling back to the CPU.
    #[arg(long)]
    pub require_gpu: bool,
    /// Inference threads (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// balanced (the model as it is) or fast: its int8 variant on the CPU,
    /// about twice as quick, made once per model on this computer (needs
    /// AVX-512 VNNI, AVX-VNNI or ARM dot product).
    #[arg(long, default_value = "balanced")]
    pub speed: backgrounderase::engine::inference::Speed,
}

#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// Images to process.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Output file (one input) or folder (receives `<stem>.<ext>`).
    #[arg(short, long)]
    pub output: PathBuf,
    #[command(flatten)]
    pub export: ExportArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// What the outputs look like: format, background and finish, or a preset
/// (the same for `remove`, `batch` and `watch`).
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// png (alpha), webp (alpha, lossless), jpeg (on --bg), or mask.
    #[arg(long, default_value = "png")]
    pub format: OutputFormat,
    /// Background colour for JPEG output.
    #[arg(long, default_value = "#ffffff")]
    pub bg: Rgb8,
    /// Use a named export preset (`backgrounderase presets list`): its
    /// format, background, edges, layout and quality. A unique start of the
    /// name is enough.
    #[arg(
        long,
        value_name = "NAME",
        conflicts_with_all = PRESET_SETS
    )]
    pub preset: Option<String>,
    #[command(flatten)]
    pub finish: FinishArgs,
}

/// Edge work and layout, the same as the app's export settings.
#[derive(Debug, Args, Clone)]
pub struct FinishArgs {
    /// Removed (it made edges worse on unseen images); accepted so that
    /// scripts keep working, with a warning. `--quality best` sharpens edges.
    #[arg(long, hide = true)]
    pub refine: bool,
    /// Grow (positive) or shrink (negative) the edge by PX pixels.
    #[arg(
        long,
        value_name = "PX",
        allow_hyphen_values = true,
        default_value_t = 0
    )]
    pub shift: i32,
    /// Soft edge radius in pixels.
    #[arg(long, value_name = "PX", default_value_t = 0.0)]
    pub feather: f32,
    /// Keep the photo's edge colours as they are (by default they are rebuilt
    /// without the old background's tint).
    #[arg(long)]
    pub no_despill: bool,
    /// The default now; accepted so that scripts keep working.
    #[arg(long, hide = true, conflicts_with = "no_despill")]
    pub despill: bool,
    /// Crop to the subject with this margin: 5% (of its longer side) or 40px.
    #[arg(long, value_name = "MARGIN")]
    pub crop_margin: Option<backgrounderase::engine::layout::Margin>,
    /// original, a ratio such as 1:1 or 4:5 (subject centred), or WxH such as 1200x1500.
    #[arg(long, default_value = "original")]
    pub canvas: backgrounderase::engine::layout::Canvas,
    /// The subject's extent as PCT % of the canvas (its limiting side),
    /// centred: e.g. --canvas 2000x2000 --subject-fill 85. Replaces --crop-margin.
    #[arg(long, value_name = "PCT", value_parser = parse_subject_fill)]
    pub subject_fill: Option<f32>,
    /// Scale the output down so that its longest side is at most PX pixels.
    #[arg(long, value_name = "PX", value_parser = parse_max_size)]
    pub max_size: Option<u32>,
    /// A soft drop shadow under the subject.
    #[arg(long)]
    pub shadow: bool,
    /// standard (one pass) or best: the model also sees the photo mirrored
    /// and takes a closer look at the subject's edge (up to 4 passes), then
    /// the unsure edge is redrawn from the photo's colours (a matte).
    #[arg(long, default_value = "standard")]
    pub quality: backgrounderase::engine::quality::Quality,
}

fn parse_subject_fill(text: &str) -> Result<f32, String> {
    use backgrounderase::engine::layout::MIN_SUBJECT_FILL;
    let value: f32 = text
        .trim()
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("'{text}' is not a percentage"))?;
    if (MIN_SUBJECT_FILL..=100.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!("'{text}': write {MIN_SUBJECT_FILL} to 100 (%)"))
    }
}

fn parse_max_size(text: &str) -> Result<u32, String> {
    use backgrounderase::engine::layout::MIN_MAX_SIDE;
    use backgrounderase::limits::MAX_CANVAS_SIDE;
    match text.trim().trim_end_matches("px").parse::<u32>() {
        Ok(v) if (MIN_MAX_SIDE..=MAX_CANVAS_SIDE).contains(&v) => Ok(v),
        _ => Err(format!(
            "'{text}': write {MIN_MAX_SIDE} to {MAX_CANVAS_SIDE} (pixels)"
        )),
    }
}

impl FinishArgs {
    pub fn settings(&self) -> anyhow::Result<backgrounderase::engine::finish::FinishSettings> {
        use backgrounderase::engine::{finish, layout, refine};
        anyhow::ensure!(
            self.feather.is_finite() && (0.0..=500.0).contains(&self.feather),
            "--feather takes 0 to 500 pixels, not {}",
            self.feather
        );
        anyhow::ensure!(
            self.shift.abs() <= 500,
            "--shift takes -500 to 500 pixels, not {}",
            self.shift
        );
        if self.refine {
            eprintln!(
                "warning: --refine was removed (on unseen images it made edges worse) and is \
                 ignored; --quality best sharpens edges instead"
            );
        }
        Ok(finish::FinishSettings {
            edges: refine::EdgeSettings {
                shift: self.shift,
                feather: self.feather,
                despill: !self.no_despill,
            },
            layout: layout::LayoutSettings {
                crop_margin: self.crop_margin,
                canvas: self.canvas,
                subject_fill: self.subject_fill,
                max_side: self.max_size,
                shadow: self.shadow.then(layout::Shadow::default),
            },
        })
    }
}

#[derive(Debug, Args)]
pub struct BatchArgs {
    /// Folder of images (subfolders included unless --no-subfolders).
    pub input: PathBuf,
    /// Output folder (created if needed).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Only the images directly inside the input folder.
    #[arg(long)]
    pub no_subfolders: bool,
    /// Put every output directly in the output folder instead of mirroring the tree.
    #[arg(long)]
    pub flatten: bool,
    /// Output file name: {name} is the input's name without extension, {ext} the format's.
    #[arg(long, default_value = "{name}.{ext}", conflicts_with = "preset")]
    pub pattern: String,
    /// When an output file already exists: skip, overwrite or keep-both.
    #[arg(long, default_value = "skip")]
    pub if_exists: backgrounderase::engine::batch::IfExists,
    /// Process only shard I of N (0 ≤ I < N), by a hash of each file's path:
    /// run N of these (Kubernetes Indexed Job, Slurm array, GNU parallel).
    #[arg(long, value_name = "I/N")]
    pub shard: Option<backgrounderase::engine::batch::Shard>,
    /// Also write the failure report (file,reason) to this CSV file.
    #[arg(long, value_name = "FILE")]
    pub failures_csv: Option<PathBuf>,
    /// Also write each image's mask confidence (file,score,reasons; least
    /// sure first) to this CSV file: the ones to look at are on top.
    #[arg(long, value_name = "FILE")]
    pub review_csv: Option<PathBuf>,
    /// Print per-stage totals and peak memory at the end.
    #[arg(long)]
    pub stats: bool,
    #[command(flatten)]
    pub export: ExportArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub batch: BatchArgs,
    /// Seconds a file must stay unchanged before it is read, so that a copy
    /// in progress is never read half-way.
    #[arg(long, value_name = "SECS", default_value_t = 2.0, value_parser = parse_seconds)]
    pub settle: f64,
    /// Seconds between full looks at the folder; change notifications wake
    /// it sooner (this catches what they miss, e.g. on network shares).
    #[arg(long, value_name = "SECS", default_value_t = 60.0, value_parser = parse_seconds)]
    pub rescan: f64,
    /// Print counts only, never file names (for a service whose log is kept
    /// longer than 24 hours, such as the systemd journal).
    #[arg(long)]
    pub quiet: bool,
}

fn parse_seconds(text: &str) -> Result<f64, String> {
    match text.trim().trim_end_matches('s').parse::<f64>() {
        Ok(v) if (0.1..=86_400.0).contains(&v) => Ok(v),
        _ => Err(format!("'{text}': write 0.1 to 86400 (seconds)")),
    }
}

#[derive(Debug, Args)]
pub struct SetupArgs {
    /// Models to install (default: the catalog's default model and the
    /// 4.6 MB u2netp behind the app's instant preview and best quality's
    /// second opinion).
    #[arg(long = "model")]
    pub models: Vec<String>,
    /// PyPI package carrying the runtime: onnxruntime, onnxruntime-gpu, onnxruntime-directml.
    #[arg(long, default_value = DEFAULT_RUNTIME_PACKAGE)]
    pub runtime_package: String,
    /// Install models only.
    #[arg(long)]
    pub skip_runtime: bool,
    /// Install into DIR/runtime and DIR/models instead of your data folder
    /// (for packagers; downloads still come from the shared cache).
    #[arg(long, value_name = "DIR")]
    pub into: Option<PathBuf>,
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    let dirs = AppDirs::discover()?;
    match cli.command {
        None => run_app(dirs, cli.model, cli.images),
        Some(Command::Remove(args)) => remove::run(&dirs, args),
        Some(Command::Batch(args)) => batch::run(&dirs, args),
        Some(Command::Watch(args)) => watch::run(&dirs, args),
        Some(Command::Models { action }) => match action.unwrap_or(ModelsAction::List) {
            ModelsAction::List => models(&dirs),
            action => models_action(&dirs, action),
        },
        Some(Command::Setup(args)) => setup(&dirs, args),
        Some(Command::Privacy { action }) => privacy(&dirs, action),
        Some(Command::Presets { action }) => presets(&dirs, action.unwrap_or(PresetsAction::List)),
    }
}

/// The store's record of unfinished exports (see `partials`); without it an
/// export still never leaves a half file under its name.
fn partials_journal(dirs: &AppDirs) -> Option<PathBuf> {
    backgrounderase::privacy::partials_journal(dirs)
        .inspect_err(|e| {
            eprintln!(
                "warning: unfinished exports cannot be recorded for clean-up ({e}): {}",
                dirs.data.display()
            )
        })
        .ok()
}

fn run_app(dirs: AppDirs, model: Option<String>, images: Vec<PathBuf>) -> Result<ExitCode> {
    use backgrounderase::instance::{self, Claim};
    use backgrounderase::privacy::schedule;
    // One window per profile: a later launch hands its files to it.
    let first = match instance::claim(&dirs)? {
        Claim::First(first) => first,
        Claim::Running => {
            instance::hand_over(&dirs, &images)?;
            eprintln!(
                "BackgroundErase is already open: {} file{} handed to its window",
                images.len(),
                if images.len() == 1 { "" } else { "s" }
            );
            return Ok(ExitCode::SUCCESS);
        }
    };
    // The clean-up that runs when the app does not: installed or confirmed
    // before anything of the user's is written.
    let cleanup = schedule::ensure(&dirs);
    let icon = eframe::icon_data::from_png_bytes(include_bytes!("../../assets/icon-256.png")).ok();
    let mut viewport = egui::ViewportBuilder::default()
        .with_title("BackgroundErase")
        .with_app_id("app.backgrounderase.BackgroundErase")
        .with_inner_size([1280.0, 800.0])
        .with_min_inner_size([640.0, 400.0])
        .with_drag_and_drop(true);
    if let Some(icon) = icon {
        viewport = viewport.with_icon(icon);
    }
    let options = eframe::NativeOptions {
        viewport,
        ..Default::default()
    };
    let mut start = backgrounderase::app::AppStart::new(dirs, cleanup);
    start.model = model;
    start.paths = images;
    start.instance = Some(first);
    eframe::run_native(
        "BackgroundErase",
        options,
        Box::new(move |cc| Ok(Box::new(backgrounderase::app::DesktopApp::new(cc, start)))),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the window ({e}); the command-line subcommands work without one (see --help)"))?;
    Ok(ExitCode::SUCCESS)
}

fn presets(dirs: &AppDirs, action: PresetsAction) -> Result<ExitCode> {
    use backgrounderase::presets;
    match action {
        PresetsAction::List => {
            let built_in = presets::built_in().len();
            for (i, preset) in presets::all(&dirs.config)?.iter().enumerate() {
                let kind = if i < built_in { "built-in" } else { "yours" };
                println!("{}\n    {} ({kind})", preset.name, preset.summary());
            }
        }
        PresetsAction::Show { name } => {
            let preset = presets::find(&dirs.config, &name)?;
            let text = ron::ser::to_string_pretty(&preset, ron::ser::PrettyConfig::default())?;
            println!("{text}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What an export looks like: from `--preset`, or from the options given.
pub struct ExportSpec {
    pub format: OutputFormat,
    pub background: Rgb8,
    pub jpeg_quality: u8,
    pub finish: backgrounderase::engine::finish::FinishSettings,
    pub quality: backgrounderase::engine::quality::Quality,
    /// The preset's file-name pattern, if a preset was named.
    pub pattern: Option<String>,
}

impl ExportArgs {
    /// The export spec: the named preset's, or the options given.
    fn spec(&self, dirs: &AppDirs) -> Result<ExportSpec> {
        if let Some(name) = &self.preset {
            let preset = backgrounderase::presets::find(&dirs.config, name)?;
            return Ok(ExportSpec {
                format: preset.format,
                background: preset.background_colour(),
                jpeg_quality: preset.jpeg_quality.clamp(1, 100),
                finish: preset.finish,
                quality: preset.quality,
                pattern: Some(preset.pattern),
            });
        }
        Ok(ExportSpec {
            format: self.format,
            background: self.bg,
            jpeg_quality: backgrounderase::engine::encode::EncodeOptions::default().jpeg_quality,
            finish: self.finish.settings()?,
            quality: self.finish.quality,
            pattern: None,
        })
    }
}

fn privacy(dirs: &AppDirs, action: PrivacyAction) -> Result<ExitCode> {
    use backgrounderase::privacy::store::SystemClock;
    use backgrounderase::privacy::{Privacy, schedule, sweep_line};
    // Opening runs the sweep: a status read 25 hours later shows what is
    // really left.
    let mut privacy = Privacy::open(dirs, std::sync::Arc::new(SystemClock))?;
    if let Some(notice) = &privacy.notice {
        eprintln!("notice: {}", notice.message());
    }
    let mut code = ExitCode::SUCCESS;
    match action {
        PrivacyAction::Status => {}
        PrivacyAction::OptIn => privacy.set_opted_in(true)?,
        PrivacyAction::OptOut => {
            if let Err(e) = privacy.set_opted_in(false) {
                eprintln!("error: {e}");
                code = ExitCode::FAILURE;
            }
        }
        PrivacyAction::Purge => {
            let removed = privacy.store.purge_all()?;
            println!(
                "deleted {removed} stored item{}",
                if removed == 1 { "" } else { "s" }
            );
        }
        PrivacyAction::Sweep => {
            // The opening sweep did the work; a second finds what it left.
            let mut report = privacy.opening_sweep.clone();
            let again = privacy.sweep()?;
            report.removed += again.removed;
            report.strays += again.strays;
            report.partials += again.partials;
            report.kept = again.kept;
            for (kind, n) in again.removed_kinds {
                *report.removed_kinds.entry(kind).or_default() += n;
            }
            println!("{}", sweep_line(&report));
            return Ok(code);
        }
    }
    println!("{}", privacy.consent_line());
    let cleanup = schedule::query(dirs);
    match cleanup.next_run(privacy.now()) {
        Some(next) => println!(
            "automatic clean-up: {}, next by {}",
            cleanup.describe(),
            next.format("%Y-%m-%d %H:%M UTC")
        ),
        None => println!(
            "automatic clean-up: {} ({}); the app deletes its data when it closes",
            cleanup.describe(),
            match &cleanup {
                schedule::Cleanup::SessionOnly { why } => why.as_str(),
                schedule::Cleanup::Scheduled { .. } => "",
            }
        ),
    }
    println!("{}", privacy.stored_line());
    for line in privacy.kind_lines() {
        println!("{line}");
    }
    println!("queued uploads: {}", privacy.queued_uploads());
    Ok(code)
}

fn models_action(dirs: &AppDirs, action: ModelsAction) -> Result<ExitCode> {
    use backgrounderase::models::{self, CustomPreset, ImportOutcome};
    use backgrounderase::privacy::settings;
    let catalog = models::profile_catalog(dirs);
    match action {
        ModelsAction::List => unreachable!("listed by `models`"),
        ModelsAction::Download { id } => {
            let entry = catalog.require(&id)?;
            let (settings, _) = settings::load(&dirs.config, chrono::Utc::now());
            let registry = settings
                .npm_registry
                .unwrap_or_else(|| catalog::DEFAULT_NPM_REGISTRY.to_string());
            let url = entry
                .source
                .download_url(&registry)
                .with_context(|| format!("model '{id}' has no download address"))?;
            eprintln!("downloading {url}");
            #[allow(
                clippy::expect_used,
                reason = "a fixed template, checked by the CLI tests"
            )]
            let bar = indicatif::ProgressBar::new(0).with_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .expect("valid template"),
            );
            let path = models::download_model(
                entry,
                dirs,
                &registry,
                &mut |p| {
                    if let Some(total) = p.total {
                        bar.set_length(total);
                    }
                    bar.set_position(p.done);
                },
                &std::sync::atomic::AtomicBool::new(false),
            )?;
            bar.finish_and_clear();
            println!("model {id}: installed at {}", path.display());
        }
        ModelsAction::Import { file, custom, name } => {
            match models::import_file(&file, &catalog, dirs)? {
                ImportOutcome::Matched { id, path } => {
                    println!("model {id}: installed at {}", path.display())
                }
                ImportOutcome::Unrecognised(model) => {
                    let Some(family) = custom else {
                        anyhow::bail!(
                            "the file matches no catalog model (sha256 {}); add it with --custom isnet|u2net|birefnet if you trust it: {}",
                            model.sha256,
                            file.display()
                        );
                    };
                    let preset = match family.as_str() {
                        "isnet" => CustomPreset::Isnet,
                        "u2net" => CustomPreset::U2net,
                        "birefnet" => CustomPreset::Birefnet,
                        other => anyhow::bail!(
                            "unknown model family '{other}' (isnet, u2net or birefnet)"
                        ),
                    };
                    let entry = models::add_custom_model(
                        &model,
                        name.as_deref().unwrap_or_default(),
                        preset,
                        dirs,
                    )?;
                    println!(
                        "model {}: added as a custom model ({}×{} input); use it with --model {}",
                        entry.id, entry.input_size.0, entry.input_size.1, entry.id
                    );
                }
            }
        }
        ModelsAction::Remove { id } => {
            let entry = catalog.require(&id)?;
            if models::remove_model(entry, dirs)? {
                println!("model {id}: deleted from {}", dirs.models_dir().display());
            } else {
                println!("model {id}: not in {}", dirs.models_dir().display());
            }
            if let Some(still) = catalog::find_installed(entry, dirs) {
                println!("model {id}: a copy remains at {}", still.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn models(dirs: &AppDirs) -> Result<ExitCode> {
    let catalog = backgrounderase::models::profile_catalog(dirs);
    println!(
        "{:<24} {:<9} {:<10} {:<30} INSTALLED",
        "ID", "SIZE", "LICENCE", "NAME"
    );
    for m in &catalog.models {
        let size = m
            .size_bytes
            .map_or("?".to_string(), |b| format!("{:.0} MB", b as f64 / 1e6));
        let licence = if m.license.commercial_use {
            m.license.name.clone()
        } else {
            format!("{} (non-commercial)", m.license.name)
        };
        let installed = match catalog::find_installed(m, dirs) {
            Some(path) => path.display().to_string(),
            None => "no".to_string(),
        };
        let marker = if m.id == catalog.default_model {
            "*"
        } else {
            " "
        };
        println!(
            "{:<24} {:<9} {:<10} {:<30} {installed}",
            format!("{}{marker}", m.id),
            size,
            licence,
            m.display_name
        );
    }
    println!(
        "\n* default model. Install with `backgrounderase models download ID` (or `setup --model ID`, which uses npm)."
    );
    Ok(ExitCode::SUCCESS)
}

fn setup(dirs: &AppDirs, args: SetupArgs) -> Result<ExitCode> {
    let staged;
    let dirs = match &args.into {
        Some(into) => {
            staged = AppDirs {
                data: std::path::absolute(into)?,
                ..dirs.clone()
            };
            &staged
        }
        None => dirs,
    };
    let catalog = ModelCatalog::builtin();
    let ids = if args.models.is_empty() {
        vec![
            catalog.default_model.clone(),
            backgrounderase::engine::second_opinion::SECOND_OPINION_MODEL.to_owned(),
        ]
    } else {
        args.models
    };
    let mut log = |line: &str| eprintln!("{line}");
    let mut setup = Setup {
        dirs,
        runtime_package: args.runtime_package,
        log: &mut log,
    };
    let report = |what: &str, installed: &Installed| match installed {
        Installed::AlreadyThere(p) => println!("{what}: already installed at {}", p.display()),
        Installed::Installed(p) => println!("{what}: installed at {}", p.display()),
    };
    if !args.skip_runtime {
        let runtime = setup
            .ensure_runtime()
            .context("installing the ONNX Runtime")?;
        report("ONNX Runtime", &runtime);
    }
    for id in ids {
        let entry = catalog.require(&id)?;
        let installed = setup
            .ensure_model(entry)
            .with_context(|| format!("installing model '{id}'"))?;
        report(&format!("model {id}"), &installed);
        if args.into.is_some() {
            continue;
        }
        // Made now so the first run does not wait for it (≈ 2 s).
        match backgrounderase::engine::upcast::cpu_model(
            installed.path(),
            &dirs.derived_models_dir(),
        ) {
            Ok(Some(copy)) => println!("model {id}: fp32 copy for the CPU at {}", copy.display()),
            Ok(None) => {}
            Err(e) => eprintln!("warning: model {id}: no fp32 copy for the CPU ({e})"),
        }
    }
    Ok(ExitCode::SUCCESS)
}
