//! `backgrounderase watch`: a hot folder. Images that arrive in (or change
//! in) the input folder are processed once they have stopped changing, with
//! `batch`'s pipeline, manifest and naming; a restart does what arrived
//! while it was stopped.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};

use backgrounderase::engine::batch::{self, BatchEvent};
use backgrounderase::engine::pipeline::Control;
use backgrounderase::engine::watch::FolderWatch;
use backgrounderase::paths::AppDirs;

use super::WatchArgs;
use super::batch::{failure_line, settings, write_report};
use super::remove::load_engine;

pub fn run(dirs: &AppDirs, args: WatchArgs) -> Result<ExitCode> {
    let WatchArgs {
        batch: args,
        settle,
        rescan,
        quiet,
    } = args;
    let mut settings = settings(dirs, &args)?;
    let mut watch = FolderWatch::new(
        &args.input,
        Some(&args.output),
        Duration::from_secs_f64(settle),
        Duration::from_secs_f64(rescan),
    )?;
    if let Some(why) = watch.notifier_error() {
        eprintln!(
            "warning: no change notifications for this folder ({why}); it is rescanned every {rescan} s instead"
        );
    }
    let mut engine = load_engine(dirs, &args.engine)?;
    super::remove::note_missing_second_opinion(&engine, settings.quality, dirs);
    settings.model = engine.model.id.clone();
    settings.second_opinion = engine.second_opinion.model_in_use().map(str::to_owned);
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("cannot create the output folder: {}", args.output.display()))?;
    if quiet {
        eprintln!("watching (no names are printed); a file is read once unchanged for {settle} s");
    } else {
        eprintln!(
            "watching {} → {} (a file is read once unchanged for {settle} s; Ctrl-C stops)",
            args.input.display(),
            args.output.display()
        );
    }
    // Failures still unresolved, by input: a later success clears one.
    let mut failures: BTreeMap<PathBuf, String> = BTreeMap::new();
    let control = Control::default();
    loop {
        let plan = batch::plan(&args.input, &args.output, &settings, args.shard)?;
        let ready = watch.ready(plan);
        let plan = ready.plan;
        if !plan.jobs.is_empty() {
            let summary = batch::run(
                &mut engine,
                &plan,
                &args.output,
                &settings,
                &control,
                |event| match event {
                    BatchEvent::Done { index, review, .. } if !quiet => {
                        let job = &plan.jobs[index];
                        let flag = if review.needs_review() {
                            format!(" (needs review: confidence {})", review.score)
                        } else {
                            String::new()
                        };
                        eprintln!(
                            "done {} → {}{flag}",
                            job.relative.display(),
                            job.output.display()
                        );
                    }
                    BatchEvent::Failed { index, reason } if !quiet => {
                        eprintln!("{}", failure_line(&reason, &plan.jobs[index].input));
                    }
                    _ => {}
                },
            )?;
            for (relative, _) in &summary.reviews {
                failures.remove(relative);
            }
            failures.extend(summary.failures.iter().cloned());
            eprintln!(
                "{} done, {} failed in {:.1} s{}",
                summary.done,
                summary.failures.len(),
                summary.wall.as_secs_f64(),
                if ready.settling > 0 {
                    format!("; {} still arriving", ready.settling)
                } else {
                    String::new()
                }
            );
            if args.stats
                && let Some(peak) = super::batch::peak_rss_kib()
            {
                eprintln!("peak memory: {:.1} MB", peak as f64 / 1024.0);
            }
            if let Some(csv) = &args.failures_csv {
                let list: Vec<_> = failures
                    .iter()
                    .map(|(f, r)| (f.clone(), r.clone()))
                    .collect();
                write_report(csv, &batch::failures_csv(&list), "failure")?;
            }
            if let Some(csv) = &args.review_csv {
                let mut reviews = plan.reviewed_earlier.clone();
                reviews.extend(summary.reviews.iter().cloned());
                write_report(csv, &batch::review_csv(&reviews), "review")?;
            }
            // What arrived during the run is looked at at once.
            continue;
        }
        watch.wait(ready.settling > 0);
    }
}
