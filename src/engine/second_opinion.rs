//! Best quality's second opinion: a different network's answer decides the
//! regions where it and the main model disagree, and the more confident of
//! the two wins each one.
//!
//! One network picks the wrong subject now and then: the rowing boats in
//! front of the fire engine a photo is about, or a see-through ghost of a
//! second object. A network of another family (U²-Net, trained on other
//! data) makes *different* mistakes, and where the two disagree about a
//! sizeable region the surer one is usually right: on the evaluation's dev
//! split, of the 17 regions of at least 1 % of the frame where the 4.6 MB
//! U²-Netp was surer than ISNet, it was right in 14 (by the truth's mean
//! alpha there). Small or thin disagreements (an edge a few pixels off)
//! stay with the main model, whose edges are finer (1024² against 320²).

use image::RgbaImage;

use crate::engine::inference::{InferenceSession, ModelOutput, SessionOptions, Speed};
use crate::engine::preprocess::Preprocessor;
use crate::engine::quality::run_mirrored;
use crate::engine::refine::{dilate, erode};
use crate::engine::runtime;
use crate::error::Error;
use crate::models::catalog::{self, ModelCatalog, ModelEntry, PostProcess};
use crate::paths::AppDirs;

/// The second network: small (4.6 MB), from PyPI like the preview it also
/// serves, and of another family than the default ISNet.
pub const SECOND_OPINION_MODEL: &str = "u2netp";

/// The second network's session.
pub struct SecondOpinion {
    session: InferenceSession,
    preprocessor: Preprocessor,
    post: PostProcess,
}

impl SecondOpinion {
    /// Its alpha for `image` (0..1 at its own resolution), averaged with its
    /// answer for the mirror image as the main model's is.
    pub fn answer(&mut self, image: &RgbaImage) -> Result<ModelOutput, Error> {
        let input = self.preprocessor.prepare(image);
        run_mirrored(&mut self.session, &input, Some(self.post))
    }
}

/// The second opinion of an [`Engine`](crate::engine::Engine), loaded the
/// first time best quality asks for it (standard quality never pays for
/// it), and looked for again on each ask while it is not installed.
pub struct SecondOpinionSlot {
    dirs: AppDirs,
    entry: Option<ModelEntry>,
    options: SessionOptions,
    loaded: Option<SecondOpinion>,
    /// Loading failed for a reason other than a missing file: not retried.
    broken: bool,
}

impl SecondOpinionSlot {
    /// The slot for an engine running `main`. Empty when `main` is itself
    /// of the U²-Net family (whose outputs are min-max stretched): a
    /// second opinion from its own family adds nothing.
    pub fn new(
        dirs: &AppDirs,
        catalog: &ModelCatalog,
        main: &ModelEntry,
        options: &SessionOptions,
    ) -> Self {
        let entry = catalog
            .get(SECOND_OPINION_MODEL)
            .filter(|_| main.postprocess != PostProcess::MinMax)
            .cloned();
        Self {
            dirs: dirs.clone(),
            entry,
            // The float model always: it is small, and its int8 copy was never evaluated.
            options: SessionOptions {
                speed: Speed::Balanced,
                require_gpu: false,
                ..*options
            },
            loaded: None,
            broken: false,
        }
    }

    /// The second opinion's model when it would apply to the main model
    /// but is not installed: best quality then runs without it.
    pub fn missing_model(&self) -> Option<&ModelEntry> {
        self.entry
            .as_ref()
            .filter(|e| self.loaded.is_none() && catalog::find_installed(e, &self.dirs).is_none())
    }

    /// The second opinion's model id when best quality will ask it: it
    /// applies to the main model and is installed (or loaded).
    pub fn model_in_use(&self) -> Option<&str> {
        self.entry
            .as_ref()
            .filter(|e| {
                self.loaded.is_some()
                    || (!self.broken && catalog::find_installed(e, &self.dirs).is_some())
            })
            .map(|e| e.id.as_str())
    }

    /// The loaded second opinion; `None` when it does not apply, is not
    /// installed, or failed to load (logged once).
    pub fn get(&mut self) -> Option<&mut SecondOpinion> {
        if self.loaded.is_none() && !self.broken {
            let entry = self.entry.as_ref()?;
            let path = catalog::find_installed(entry, &self.dirs)?;
            let loaded = runtime::load(&self.dirs)
                .map_err(Error::from)
                .and_then(|rt| InferenceSession::load(rt, entry, &path, &self.options, None));
            match loaded {
                Ok(session) => {
                    self.loaded = Some(SecondOpinion {
                        session,
                        preprocessor: Preprocessor::new(entry),
                        post: entry.postprocess,
                    });
                }
                Err(e) => {
                    tracing::warn!("best quality goes on without its second opinion: {e}");
                    self.broken = true;
                }
            }
        }
        self.loaded.as_mut()
    }
}

/// Disagreements smaller than this share of the frame stay with the main
/// model (dev split: 0.2 %, 0.5 % and 1 % gave boundary MAE 0.1088, 0.1090
/// and 0.1087, 1 % with the fewest images made worse).
const MIN_REGION_SHARE: f32 = 0.01;
/// Opening (erosion then dilation, in model pixels) that removes the thin
/// slivers where the two masks merely place one edge differently.
const OPENING: usize = 2;
/// How far (model pixels) a region taken from the second opinion is grown,
/// so that its edge comes from the second opinion too and not a seam.
const GROW: usize = 2;

/// Where the second opinion replaces the main model's answer, at the main
/// model's resolution (`width`×`height`, row-major): each 4-connected region
/// where the two disagree on which side of ½ a pixel lies (after an opening
/// of [`OPENING`] px), of at least [`MIN_REGION_SHARE`] of the frame, in
/// which the second opinion's mean certainty `|2a − 1|` is higher, grown by
/// [`GROW`] px. All false when the two agree.
pub fn regions_to_take(first: &[f32], second: &[f32], width: usize, height: usize) -> Vec<bool> {
    let n = width * height;
    if n == 0 || first.len() != n || second.len() != n {
        return vec![false; n];
    }
    let disagree: Vec<bool> = first
        .iter()
        .zip(second)
        .map(|(&a, &b)| (a >= 0.5) != (b >= 0.5))
        .collect();
    let mut opened = disagree;
    for _ in 0..OPENING {
        opened = erode(&opened, width, height);
    }
    for _ in 0..OPENING {
        opened = dilate(&opened, width, height);
    }
    let certainty = |a: f32| (2.0 * a - 1.0).abs();
    let min_pixels = (MIN_REGION_SHARE * n as f32).ceil() as usize;
    let mut take = vec![false; n];
    for region in regions(&opened, width, height) {
        if region.len() < min_pixels.max(1) {
            continue;
        }
        let (sure_first, sure_second) = region.iter().fold((0.0f64, 0.0f64), |(f, s), &i| {
            (
                f + f64::from(certainty(first[i])),
                s + f64::from(certainty(second[i])),
            )
        });
        if sure_second > sure_first {
            for &i in &region {
                take[i] = true;
            }
        }
    }
    for _ in 0..GROW {
        take = dilate(&take, width, height);
    }
    take
}

/// The 4-connected regions of set pixels, as lists of indices.
fn regions(set: &[bool], width: usize, height: usize) -> Vec<Vec<usize>> {
    let mut seen = vec![false; set.len()];
    let mut found = Vec::new();
    let mut stack = Vec::new();
    for start in 0..set.len() {
        if !set[start] || seen[start] {
            continue;
        }
        let mut region = Vec::new();
        seen[start] = true;
        stack.push(start);
        while let Some(i) = stack.pop() {
            region.push(i);
            let (x, y) = (i % width, i / width);
            let neighbours = [
                (x > 0).then(|| i - 1),
                (x + 1 < width).then(|| i + 1),
                (y > 0).then(|| i - width),
                (y + 1 < height).then(|| i + width),
            ];
            for j in neighbours.into_iter().flatten() {
                if set[j] && !seen[j] {
                    seen[j] = true;
                    stack.push(j);
                }
            }
        }
        found.push(region);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: usize = 100;
    const H: usize = 100;

    fn field(value: impl Fn(usize, usize) -> f32) -> Vec<f32> {
        (0..W * H).map(|i| value(i % W, i / W)).collect()
    }

    fn inside(x: usize, y: usize, x0: usize, y0: usize, x1: usize, y1: usize) -> bool {
        (x0..x1).contains(&x) && (y0..y1).contains(&y)
    }

    #[test]
    fn a_surer_second_opinion_takes_the_region_it_disagrees_on() {
        // The main model takes a wrong object (grey, 0.7) at 10..40; the
        // second says background there with certainty and sees the real
        // subject at 60..90, where the main model is unsure (0.35).
        let first = field(|x, y| {
            if inside(x, y, 10, 10, 40, 40) {
                0.7
            } else if inside(x, y, 60, 60, 90, 90) {
                0.35
            } else {
                0.0
            }
        });
        let second = field(|x, y| {
            if inside(x, y, 60, 60, 90, 90) {
                0.95
            } else {
                0.02
            }
        });
        let take = regions_to_take(&first, &second, W, H);
        assert!(take[25 * W + 25] && take[75 * W + 75]);
        // Grown by two pixels around each region, and nothing elsewhere.
        assert!(take[25 * W + 8] && !take[25 * W + 7]);
        assert!(!take[50 * W + 50] && !take[5 * W + 95]);
    }

    #[test]
    fn a_surer_main_model_keeps_its_answer() {
        let first = field(|x, y| {
            if inside(x, y, 10, 10, 40, 40) {
                0.98
            } else {
                0.0
            }
        });
        let second = field(|x, y| {
            if inside(x, y, 10, 10, 40, 40) {
                0.3
            } else {
                0.0
            }
        });
        assert!(!regions_to_take(&first, &second, W, H).contains(&true));
    }

    #[test]
    fn small_regions_and_edges_placed_differently_stay_with_the_main_model() {
        // A 9×9 disagreement (0.8 % of the frame) and an edge one pixel off.
        let first = field(|x, y| {
            if inside(x, y, 5, 5, 14, 14) || inside(x, y, 50, 20, 80, 80) {
                0.6
            } else {
                0.0
            }
        });
        let second = field(|x, y| {
            if inside(x, y, 51, 20, 80, 80) {
                1.0
            } else {
                0.0
            }
        });
        assert!(!regions_to_take(&first, &second, W, H).contains(&true));
    }

    #[test]
    fn mismatched_sizes_take_nothing() {
        let first = vec![1.0; W * H];
        assert_eq!(
            regions_to_take(&first, &[0.0; 10], W, H),
            vec![false; W * H]
        );
    }
}
