//! The background-removal engine: decode → preprocess → inference →
//! postprocess → composite/encode. Plain Rust, no UI.

pub mod batch;
pub mod colour;
pub mod decode;
pub mod encode;
pub mod finish;
pub mod inference;
pub mod layout;
pub mod matte;
pub mod pipeline;
pub mod postprocess;
pub mod preprocess;
pub mod quality;
pub mod quantize;
pub mod refine;
pub mod review;
pub mod runtime;
pub mod second_opinion;
pub mod upcast;
pub mod watch;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use image::{GrayImage, RgbaImage};

use crate::error::Error;
use crate::models::catalog::{self, ModelCatalog, ModelEntry};
use crate::paths::AppDirs;
use inference::{InferenceSession, ModelOutput, ProviderReport, SessionOptions};
use postprocess::Postprocessor;
use preprocess::Preprocessor;
use quality::Quality;
use second_opinion::SecondOpinionSlot;

/// Time spent in each stage for one image.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageTimes {
    pub decode: Duration,
    pub preprocess: Duration,
    pub run: Duration,
    pub postprocess: Duration,
    pub encode: Duration,
}

/// A loaded model with everything needed to turn a photo into a mask.
/// Sequential: the pipeline splits it over threads instead.
pub struct Engine {
    pub model: ModelEntry,
    pub model_path: PathBuf,
    pub session: InferenceSession,
    pub preprocessor: Preprocessor,
    /// Prepares the best-quality subject crop.
    pub crop_preprocessor: Preprocessor,
    pub postprocessor: Postprocessor,
    /// Best quality's second network, loaded when first asked for.
    pub second_opinion: SecondOpinionSlot,
}

impl Engine {
    /// Loads the runtime (once per process) and the model (`None`: the default).
    pub fn load(
        dirs: &AppDirs,
        catalog: &ModelCatalog,
        model_id: Option<&str>,
        options: &SessionOptions,
    ) -> Result<Self, Error> {
        let model = match model_id {
            Some(id) => catalog.require(id)?,
            None => catalog.default_entry(),
        }
        .clone();
        let model_path = catalog::require_installed(&model, dirs)?;
        tracing::info!(model = %model.id, path = %model_path.display(), "model file found");
        let runtime = runtime::load(dirs)?;
        // BACKGROUNDERASE_KEEP_FP16=1 runs an fp16 model as it is (for comparisons).
        let copy_dir = dirs.derived_models_dir();
        let cpu_copy_dir = std::env::var_os("BACKGROUNDERASE_KEEP_FP16")
            .is_none()
            .then_some(copy_dir.as_path());
        let session = InferenceSession::load(runtime, &model, &model_path, options, cpu_copy_dir)?;
        Ok(Self {
            second_opinion: SecondOpinionSlot::new(dirs, catalog, &model, options),
            preprocessor: Preprocessor::new(&model),
            crop_preprocessor: Preprocessor::new(&model),
            postprocessor: Postprocessor::new(),
            model,
            model_path,
            session,
        })
    }

    pub fn provider(&self) -> &ProviderReport {
        self.session.provider()
    }

    /// One throw-away run on a grey image of the model's input size. ONNX
    /// Runtime's first runs of a session grow its memory arena and settle its
    /// kernels, about 1.4× a steady run here: doing that before saying
    /// "ready" keeps it off the user's first photo.
    pub fn warm_up(&mut self) -> Result<(), Error> {
        let (width, height) = self.model.input_size;
        let grey = RgbaImage::from_pixel(width, height, image::Rgba([128, 128, 128, 255]));
        self.infer(&grey).map(drop)
    }

    /// The network's raw output for `image`, at model resolution.
    pub fn infer(&mut self, image: &RgbaImage) -> Result<ModelOutput, Error> {
        let input = self.preprocessor.prepare(image);
        self.session.run(&input)
    }

    /// The full-resolution alpha mask for `image`.
    pub fn mask(&mut self, image: &RgbaImage) -> Result<GrayImage, Error> {
        self.mask_timed(image).map(|(mask, _)| mask)
    }

    /// The mask, with the preprocess / run / postprocess split filled in.
    pub fn mask_timed(&mut self, image: &RgbaImage) -> Result<(GrayImage, StageTimes), Error> {
        self.mask_at(image, Quality::Standard)
    }

    /// The mask at the given quality, with the stage times filled in (the
    /// subject crop's preparation counts as run time).
    pub fn mask_at(
        &mut self,
        image: &RgbaImage,
        quality: Quality,
    ) -> Result<(GrayImage, StageTimes), Error> {
        self.mask_reviewed(image, quality)
            .map(|(mask, _, times)| (mask, times))
    }

    /// The mask at the given quality, how sure the model was of it
    /// ([`review`]), and the stage times.
    pub fn mask_reviewed(
        &mut self,
        image: &RgbaImage,
        quality: Quality,
    ) -> Result<(GrayImage, review::Review, StageTimes), Error> {
        let mut times = StageTimes::default();
        let t = Instant::now();
        let input = self.preprocessor.prepare(image);
        times.preprocess = t.elapsed();
        let t = Instant::now();
        let second_opinion = match quality {
            Quality::Best => self.second_opinion.get(),
            Quality::Standard => None,
        };
        let looks = quality::look(
            &mut self.session,
            &mut self.crop_preprocessor,
            second_opinion,
            image,
            &input,
            quality,
            self.model.postprocess,
        )?;
        times.run = t.elapsed();
        let t = Instant::now();
        let mask =
            self.postprocessor
                .alpha_mask_from_looks(&looks, self.model.postprocess, image)?;
        let review = review::review(&looks.whole, self.model.postprocess);
        times.postprocess = t.elapsed();
        Ok((mask, review, times))
    }
}
