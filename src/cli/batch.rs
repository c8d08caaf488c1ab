//! `backgrounderase batch`: a folder tree through the pipelined engine, with
//! a progress bar (images per minute, ETA), a failure report and a manifest
//! that lets a re-run resume.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use backgrounderase::engine::StageTimes;
use backgrounderase::engine::batch::{self, BatchEvent, BatchSettings};
use backgrounderase::engine::pipeline::Control;
use backgrounderase::paths::AppDirs;

use super::BatchArgs;
use super::remove::load_engine;

/// The batch settings `args` ask for; the caller sets `model` and
/// `second_opinion` once the engine has loaded (a bad preset is reported before the model loads).
pub(super) fn settings(dirs: &AppDirs, args: &BatchArgs) -> Result<BatchSettings> {
    let spec = args.export.spec(dirs)?;
    Ok(BatchSettings {
        include_subfolders: !args.no_subfolders,
        mirror: !args.flatten,
        format: spec.format,
        background: spec.background,
        jpeg_quality: spec.jpeg_quality,
        pattern: spec.pattern.clone().unwrap_or_else(|| args.pattern.clone()),
        if_exists: args.if_exists,
        model: String::new(),
        finish: spec.finish,
        quality: spec.quality,
        second_opinion: None,
        // Brush strokes live in the app's editor; the CLI has none.
        edits: Default::default(),
        partials: super::partials_journal(dirs),
    })
}

pub fn run(dirs: &AppDirs, args: BatchArgs) -> Result<ExitCode> {
    let mut settings = settings(dirs, &args)?;
    let mut engine = load_engine(dirs, &args.engine)?;
    super::remove::note_missing_second_opinion(&engine, settings.quality, dirs);
    settings.model = engine.model.id.clone();
    settings.second_opinion = engine.second_opinion.model_in_use().map(str::to_owned);
    let plan = batch::plan(&args.input, &args.output, &settings, args.shard)?;
    let skipped = plan.skipped_summary();
    eprintln!(
        "{} images to do{}",
        plan.jobs.len(),
        if skipped.is_empty() {
            String::new()
        } else {
            format!(" (skipped: {})", skipped.join(", "))
        }
    );

    let bar = ProgressBar::new(plan.jobs.len() as u64);
    #[allow(
        clippy::expect_used,
        reason = "a fixed template, checked by the CLI tests"
    )]
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} · {per_min} · {elapsed_precise} · eta {eta} {msg}",
        )
        .expect("static template")
        .with_key(
            "per_min",
            |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.1} images/min", state.per_sec() * 60.0);
            },
        ),
    );
    bar.enable_steady_tick(Duration::from_millis(250));
    let control = Control::default();
    let mut totals = StageTimes::default();
    let summary = batch::run(
        &mut engine,
        &plan,
        &args.output,
        &settings,
        &control,
        |event| {
            match event {
                BatchEvent::Done { index, times, .. } => {
                    totals.decode += times.decode;
                    totals.preprocess += times.preprocess;
                    totals.run += times.run;
                    totals.postprocess += times.postprocess;
                    totals.encode += times.encode;
                    bar.set_message(plan.jobs[index].relative.display().to_string());
                }
                BatchEvent::Failed { index, reason } => {
                    let line = failure_line(&reason, &plan.jobs[index].input);
                    bar.suspend(|| eprintln!("{line}"));
                }
                BatchEvent::Cancelled { .. } => {}
            }
            bar.inc(1);
        },
    )?;
    bar.finish_and_clear();
    eprintln!(
        "{} done, {} failed in {:.1} s → {}",
        summary.done,
        summary.failures.len(),
        summary.wall.as_secs_f64(),
        args.output.display()
    );
    if let Some(csv) = &args.failures_csv {
        write_report(csv, &batch::failures_csv(&summary.failures), "failure")?;
    }
    let mut reviews = plan.reviewed_earlier.clone();
    reviews.extend(summary.reviews.iter().cloned());
    let to_review = reviews.iter().filter(|(_, r)| r.needs_review()).count();
    if to_review > 0 {
        eprintln!(
            "{to_review} need review (confidence below {}){}",
            backgrounderase::engine::review::NEEDS_REVIEW_BELOW,
            if args.review_csv.is_some() {
                ""
            } else {
                ": --review-csv FILE lists them"
            }
        );
    }
    if let Some(csv) = &args.review_csv {
        write_report(csv, &batch::review_csv(&reviews), "review")?;
    }
    if args.stats {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        eprintln!(
            "stages (sums): decode {:.0} ms, preprocess {:.0} ms, run {:.0} ms, postprocess {:.0} ms, encode {:.0} ms",
            ms(totals.decode),
            ms(totals.preprocess),
            ms(totals.run),
            ms(totals.postprocess),
            ms(totals.encode)
        );
        if let Some(peak) = peak_rss_kib() {
            eprintln!("peak memory: {:.1} MB", peak as f64 / 1024.0);
        }
    }
    // The OS reclaims the session's ≈1.4 GB at exit in one go; releasing it
    // piecemeal first took ≈0.1 s per run.
    std::mem::forget(engine);
    Ok(if summary.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `error: reason: path`, or just the reason when it names the file already
/// (decoding errors do).
pub(super) fn failure_line(reason: &str, input: &Path) -> String {
    let file = input.display().to_string();
    if reason.contains(&file) {
        format!("error: {reason}")
    } else {
        format!("error: {reason}: {file}")
    }
}

pub(super) fn write_report(path: &Path, csv: &str, what: &str) -> Result<()> {
    backgrounderase::fsutil::write_atomically(
        path,
        csv.as_bytes(),
        backgrounderase::fsutil::Access::Shared,
    )
    .with_context(|| format!("cannot write the {what} report: {}", path.display()))
}

/// Peak resident memory of this process (Linux: VmHWM), in KiB.
pub(super) fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
