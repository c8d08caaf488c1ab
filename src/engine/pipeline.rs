//! Many images through one model, with decoding and encoding overlapped with
//! inference. Three stages joined by bounded channels, so at most a handful
//! of images are in memory however many files there are:
//!
//! ```text
//! decode+preprocess ──(1)──▶ inference worker ──(1)──▶ postprocess+encode+write
//! ```
//!
//! The inference worker is the only owner of the ONNX session. A failure in
//! any stage is reported for that file and the rest go on.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::bounded;
use image::RgbaImage;

use crate::engine::decode::{DecodeLimits, decode_file};
use crate::engine::encode::{EncodeOptions, encode_result, write_output};
use crate::engine::finish::{self, FinishSettings};
use crate::engine::preprocess::ModelInput;
use crate::engine::quality::{self, Looks, Quality};
use crate::engine::refine::Stroke;
use crate::engine::review::{self, Review};
use crate::engine::{Engine, StageTimes};
use crate::error::Error;
use crate::models::catalog::PostProcess;

/// Pause and cancel, shared with whoever drives the run (a UI, Ctrl-C).
#[derive(Debug, Default)]
pub struct Control {
    cancel: AtomicBool,
    pause: AtomicBool,
}

impl Control {
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }
    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }
    pub fn set_paused(&self, paused: bool) {
        self.pause.store(paused, Ordering::SeqCst);
    }
    pub fn is_paused(&self) -> bool {
        self.pause.load(Ordering::SeqCst)
    }
    /// Blocks while paused; returns false if cancelled meanwhile.
    fn wait_while_paused(&self) -> bool {
        while self.is_paused() && !self.is_cancelled() {
            std::thread::sleep(Duration::from_millis(20));
        }
        !self.is_cancelled()
    }
}

/// One file to process.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Job {
    pub input: PathBuf,
    pub output: PathBuf,
    /// The user's brush strokes for this image (from the app's editor).
    pub strokes: Vec<Stroke>,
}

#[derive(Debug, Clone, Default)]
pub struct PipelineOptions {
    pub encode: EncodeOptions,
    pub limits: DecodeLimits,
    /// Edge work, crop, canvas and shadow, as in the app's export.
    pub finish: FinishSettings,
    /// Where named temporaries of outputs are recorded (the store's
    /// `partials/`), for the sweep to delete if the process dies.
    pub partials: Option<std::path::PathBuf>,
    /// One pass of the model, or the best-quality passes.
    pub quality: Quality,
}

/// What became of one job.
#[derive(Debug)]
pub enum Outcome {
    Done {
        index: usize,
        width: u32,
        height: u32,
        times: StageTimes,
        /// How sure the model was ("needs review" when low).
        review: Review,
    },
    Failed {
        index: usize,
        error: Error,
    },
}

impl Outcome {
    pub fn index(&self) -> usize {
        match self {
            Outcome::Done { index, .. } | Outcome::Failed { index, .. } => *index,
        }
    }
}

struct Prepared {
    index: usize,
    image: RgbaImage,
    icc_profile: Option<Arc<Vec<u8>>>,
    input: ModelInput,
    times: StageTimes,
}

struct Inferred {
    index: usize,
    image: RgbaImage,
    icc_profile: Option<Arc<Vec<u8>>>,
    output: Looks,
    times: StageTimes,
}

/// Runs every job through `engine`, calling `on_outcome` on this thread in
/// completion order (which is job order). Pausing holds the next image at
/// the inference stage (the running one finishes, within one image);
/// cancelling reports every image not yet inferred as cancelled.
pub fn run(
    engine: &mut Engine,
    jobs: &[Job],
    options: &PipelineOptions,
    control: &Control,
    mut on_outcome: impl FnMut(Outcome),
) {
    let (prepared_tx, prepared_rx) = bounded::<Result<Prepared, (usize, Error)>>(1);
    let (inferred_tx, inferred_rx) = bounded::<Result<Inferred, (usize, Error)>>(1);
    let post = engine.model.postprocess;
    let quality = options.quality;
    let Engine {
        preprocessor,
        crop_preprocessor,
        session,
        postprocessor,
        second_opinion,
        ..
    } = engine;

    std::thread::scope(|scope| {
        scope.spawn(move || {
            for (index, job) in jobs.iter().enumerate() {
                if !control.wait_while_paused() {
                    let _ = prepared_tx.send(Err((index, Error::Cancelled)));
                    continue;
                }
                let mut times = StageTimes::default();
                let t = Instant::now();
                let item = decode_file(&job.input, options.limits).map(|decoded| {
                    times.decode = t.elapsed();
                    let t = Instant::now();
                    let input = preprocessor.prepare(&decoded.rgba);
                    times.preprocess = t.elapsed();
                    Prepared {
                        index,
                        image: decoded.rgba,
                        icc_profile: decoded.icc_profile,
                        input,
                        times,
                    }
                });
                if prepared_tx.send(item.map_err(|e| (index, e))).is_err() {
                    return; // downstream gone
                }
            }
        });

        scope.spawn(move || {
            for item in prepared_rx {
                let item = match item {
                    Ok(p) if !control.wait_while_paused() => Err((p.index, Error::Cancelled)),
                    other => other,
                };
                let result = item.and_then(|p| {
                    tracing::debug!(index = p.index, "inference starts");
                    let t = Instant::now();
                    let mut times = p.times;
                    let second_opinion = match quality {
                        Quality::Best => second_opinion.get(),
                        Quality::Standard => None,
                    };
                    quality::look(
                        session,
                        crop_preprocessor,
                        second_opinion,
                        &p.image,
                        &p.input,
                        quality,
                        post,
                    )
                    .map(|output| {
                        times.run = t.elapsed();
                        tracing::debug!(index = p.index, "inference ends");
                        Inferred {
                            index: p.index,
                            image: p.image,
                            icc_profile: p.icc_profile,
                            output,
                            times,
                        }
                    })
                    .map_err(|e| (p.index, e))
                });
                if inferred_tx.send(result).is_err() {
                    return;
                }
            }
        });

        for item in inferred_rx {
            let outcome = match item {
                Ok(inferred) => finish(inferred, jobs, post, postprocessor, options),
                Err((index, error)) => Outcome::Failed { index, error },
            };
            tracing::debug!(index = outcome.index(), "written");
            on_outcome(outcome);
        }
    });
}

fn finish(
    item: Inferred,
    jobs: &[Job],
    post: PostProcess,
    postprocessor: &mut crate::engine::postprocess::Postprocessor,
    options: &PipelineOptions,
) -> Outcome {
    let Inferred {
        index,
        image,
        icc_profile,
        output,
        mut times,
    } = item;
    let job = &jobs[index];
    let t = Instant::now();
    let review = review::review(&output.whole, post);
    let mask = match postprocessor.alpha_mask_from_looks(&output, post, &image) {
        Ok(mask) => mask,
        Err(error) => return Outcome::Failed { index, error },
    };
    let settings = options.finish.for_format(options.encode.format);
    let (image, mask) = match finish::render(&image, &mask, &job.strokes, &settings) {
        Ok(finished) => finished,
        Err(too_large) => {
            let error = Error::OutputTooLarge {
                width: too_large.width,
                height: too_large.height,
                path: job.input.clone(),
            };
            return Outcome::Failed { index, error };
        }
    };
    times.postprocess = t.elapsed();
    let t = Instant::now();
    let written = encode_result(
        &image,
        &mask,
        &options.encode,
        icc_profile.as_deref().map(Vec::as_slice),
        &job.output,
    )
    .and_then(|bytes| write_output(&job.output, &bytes, options.partials.as_deref()));
    times.encode = t.elapsed();
    match written {
        Ok(()) => Outcome::Done {
            index,
            width: image.width(),
            height: image.height(),
            times,
            review,
        },
        Err(error) => Outcome::Failed { index, error },
    }
}
