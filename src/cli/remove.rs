//! `backgrounderase remove`: a list of files through the pipeline, with a
//! progress bar and one line per failure.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Result, bail};
use indicatif::{ProgressBar, ProgressStyle};

use backgrounderase::engine::Engine;
use backgrounderase::engine::encode::{EncodeOptions, OutputFormat};
use backgrounderase::engine::inference::SessionOptions;
use backgrounderase::engine::pipeline::{self, Job, Outcome, PipelineOptions};
use backgrounderase::engine::quality::Quality;
use backgrounderase::paths::AppDirs;

use super::{EngineArgs, RemoveArgs};

pub fn run(dirs: &AppDirs, args: RemoveArgs) -> Result<ExitCode> {
    let spec = args.export.spec(dirs)?;
    let jobs = plan_jobs(&args.inputs, &args.output, spec.format)?;
    let mut engine = load_engine(dirs, &args.engine)?;
    note_missing_second_opinion(&engine, spec.quality, dirs);
    let options = PipelineOptions {
        encode: EncodeOptions {
            format: spec.format,
            background: spec.background,
            jpeg_quality: spec.jpeg_quality,
        },
        finish: spec.finish,
        quality: spec.quality,
        partials: super::partials_journal(dirs),
        ..Default::default()
    };

    let bar = ProgressBar::new(jobs.len() as u64);
    #[allow(
        clippy::expect_used,
        reason = "a fixed template, checked by the CLI tests"
    )]
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed_precise} eta {eta} {msg}")
            .expect("static template"),
    );
    bar.enable_steady_tick(Duration::from_millis(250));
    let mut failed = 0usize;
    let control = pipeline::Control::default();
    pipeline::run(&mut engine, &jobs, &options, &control, |outcome| {
        match &outcome {
            Outcome::Done { index, review, .. } => {
                let output = &jobs[*index].output;
                bar.set_message(output.display().to_string());
                if review.needs_review() {
                    bar.suspend(|| {
                        eprintln!(
                            "needs review (confidence {}: {}): {}",
                            review.score,
                            review.reasons_text(),
                            output.display()
                        )
                    });
                }
            }
            Outcome::Failed { error, .. } => {
                failed += 1;
                // suspend, not println: println prints nothing when stderr is no terminal.
                bar.suspend(|| eprintln!("error: {error}"));
            }
        }
        bar.inc(1);
    });
    bar.finish_and_clear();
    let done = jobs.len() - failed;
    eprintln!("{done} of {} images done, {failed} failed", jobs.len());
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub fn load_engine(dirs: &AppDirs, args: &EngineArgs) -> Result<Engine> {
    let catalog = backgrounderase::models::profile_catalog(dirs);
    let options = SessionOptions {
        provider: args.provider,
        require_gpu: args.require_gpu,
        threads: args.threads,
        speed: args.speed,
    };
    let engine = Engine::load(dirs, &catalog, args.model.as_deref(), &options)?;
    eprintln!("model {} on {}", engine.model.id, engine.provider());
    Ok(engine)
}

/// Best quality without its second opinion still works, a little less
/// well on photos where the model takes the wrong subject: say so, and how
/// to add it (nothing is downloaded unasked).
pub fn note_missing_second_opinion(engine: &Engine, quality: Quality, dirs: &AppDirs) {
    if quality != Quality::Best {
        return;
    }
    if let Some(entry) = engine.second_opinion.missing_model() {
        eprintln!(
            "note: best quality runs without its second opinion ({}, {}); to add it, {}",
            entry.id,
            entry.display_name,
            backgrounderase::models::catalog::how_to_get(entry, &dirs.models_dir())
        );
    }
}

/// One input and an output that is not a folder: write exactly that file.
/// Otherwise the output is a folder receiving `<stem>.<ext>`; clashing stems
/// get `-2`, `-3`… so that no result overwrites another.
fn plan_jobs(inputs: &[PathBuf], output: &Path, format: OutputFormat) -> Result<Vec<Job>> {
    let to_file = inputs.len() == 1 && !output.is_dir() && !ends_with_separator(output);
    if to_file {
        return Ok(vec![Job {
            input: inputs[0].clone(),
            output: output.to_path_buf(),
            ..Default::default()
        }]);
    }
    if output.is_file() {
        bail!(
            "several inputs need an output folder, but this is a file: {}",
            output.display()
        );
    }
    let mut taken = HashSet::new();
    Ok(inputs
        .iter()
        .map(|input| {
            let stem = input
                .file_stem()
                .map_or_else(|| OsString::from("image"), OsString::from);
            let mut n = 1;
            let path = loop {
                let mut name = stem.clone();
                if n > 1 {
                    name.push(format!("-{n}"));
                }
                name.push(".");
                name.push(format.extension());
                let path = output.join(name);
                if taken.insert(path.clone()) {
                    break path;
                }
                n += 1;
            };
            Job {
                input: input.clone(),
                output: path,
                ..Default::default()
            }
        })
        .collect())
}

fn ends_with_separator(path: &Path) -> bool {
    path.as_os_str()
        .to_string_lossy()
        .ends_with(std::path::is_separator)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_input_writes_the_named_file() {
        let jobs = plan_jobs(
            &["a/cat.jpg".into()],
            Path::new("out.png"),
            OutputFormat::Png,
        )
        .unwrap();
        assert_eq!(jobs[0].output, Path::new("out.png"));
    }

    #[test]
    fn several_inputs_fill_a_folder_without_clashes() {
        let jobs = plan_jobs(
            &["a/cat.jpg".into(), "b/cat.png".into(), "dog.webp".into()],
            Path::new("out"),
            OutputFormat::Webp,
        )
        .unwrap();
        let outs: Vec<_> = jobs.iter().map(|j| j.output.clone()).collect();
        assert_eq!(
            outs,
            vec![
                PathBuf::from("out/cat.webp"),
                PathBuf::from("out/cat-2.webp"),
                PathBuf::from("out/dog.webp")
            ]
        );
    }

    #[test]
    fn trailing_separator_means_folder() {
        let jobs = plan_jobs(&["cat.jpg".into()], Path::new("out/"), OutputFormat::Jpeg).unwrap();
        assert_eq!(jobs[0].output, Path::new("out/cat.jpg"));
    }
}
