//! "Best quality": more looks at the same photo for a better edge, at a
//! known cost in time.
//!
//! - **Mirror pass:** the network also sees the photo flipped left–right and
//!   the two answers are averaged, which evens out the direction-dependent
//!   mistakes of one pass.
//! - **Subject pass:** the model sees the whole photo squeezed to its input
//!   square (1024² for ISNet), so a subject that fills a fifth of a 12 MP
//!   frame is drawn with a few hundred pixels. A second pass on a crop
//!   around the subject sees it several times larger; its answer is
//!   averaged with the first near the subject's edge only, so it sharpens
//!   the outline without letting a new crop change what counts as the subject.
//!
//! - **Matte edge:** where the merged mask is unsure, a closed-form matte
//!   of the photo (alpha as a locally affine function of colour, solved
//!   from the mask's sure subject and sure background) takes over, where
//!   the nearby subject and background colours differ enough to say
//!   something. The model sees a squeezed 1024² copy; the matte follows the
//!   photo's own colours.
//!
//! - **Second opinion:** a network of another family (U²-Netp) looks at
//!   the whole photo too; where it and the main model disagree about a
//!   sizeable region and it is surer, its answer replaces the main
//!   model's there (`engine::second_opinion`), which mends most photos
//!   where the main model took the wrong subject.
//!
//! Which of these run, and how they merge, was chosen on the evaluation
//! set's dev split (`scripts/eval-quality --split dev`); README has the
//! test split's figures and the time per megapixel.

use std::fmt;
use std::str::FromStr;

use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{GrayImage, RgbaImage};
use serde::{Deserialize, Serialize};

use crate::engine::inference::to_alpha;
use crate::engine::inference::{InferenceSession, ModelOutput};
use crate::engine::matte::{MatteProblem, closed_form_matte};
use crate::engine::preprocess::{ModelInput, Preprocessor};
use crate::engine::refine::{Region, box_blur, dilate, tiles_holding};
use crate::engine::second_opinion::SecondOpinion;
use crate::error::Error;
use crate::models::catalog::PostProcess;

/// How hard the engine looks at each photo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Quality {
    /// One pass of the model: the speed `batch` is measured at.
    #[default]
    Standard,
    /// Mirror and subject passes (up to four runs of the model), the second
    /// opinion (two of U²-Netp) and the matte edge.
    Best,
}

impl Quality {
    pub const ALL: [Quality; 2] = [Quality::Standard, Quality::Best];

    pub fn label(self) -> &'static str {
        match self {
            Quality::Standard => "Standard",
            Quality::Best => "Best (slower)",
        }
    }
}

impl fmt::Display for Quality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Quality::Standard => "standard",
            Quality::Best => "best",
        })
    }
}

impl FromStr for Quality {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "standard" | "default" => Ok(Quality::Standard),
            "best" => Ok(Quality::Best),
            other => Err(format!(
                "unknown quality '{other}' (choose standard or best)"
            )),
        }
    }
}

/// A rectangle of the photo in pixels, `x1`/`y1` exclusive, inside the photo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelRect {
    pub x0: u32,
    pub y0: u32,
    pub x1: u32,
    pub y1: u32,
}

impl PixelRect {
    pub fn width(&self) -> u32 {
        self.x1 - self.x0
    }
    pub fn height(&self) -> u32 {
        self.y1 - self.y0
    }
}

/// The second look at the subject: where it was taken and what the model said.
#[derive(Debug, Clone)]
pub struct SubjectLook {
    pub rect: PixelRect,
    pub output: ModelOutput,
}

/// Everything the model said about one photo.
#[derive(Debug, Clone)]
pub struct Looks {
    pub whole: ModelOutput,
    pub subject: Option<SubjectLook>,
    /// Redraw the unsure band from the photo's colours (`matte_edge`).
    pub matte_edge: bool,
    /// Another network's alpha for the whole photo (0..1 at its own
    /// resolution), which decides the regions where it disagrees with the
    /// main model and is surer (`engine::second_opinion`).
    pub second_opinion: Option<ModelOutput>,
}

impl From<ModelOutput> for Looks {
    fn from(whole: ModelOutput) -> Self {
        Self {
            whole,
            subject: None,
            matte_edge: false,
            second_opinion: None,
        }
    }
}

/// The crop must be at least this much smaller than the photo along one
/// axis for a subject pass to see anything new (the model stretches each
/// axis to its square on its own, so one axis is enough). On the dev split
/// requiring 1.25 instead lost most of the gain.
const MIN_ZOOM: f32 = 1.05;

/// Runs the model on `image` (already prepared as `input`) as `quality`
/// asks. `crop_preprocessor` prepares the subject crop; it is separate from
/// the one that made `input` so that each pipeline stage owns its own.
/// `second_opinion` (best quality only) is asked about the whole photo; if
/// it fails, the photo goes on without it.
pub fn look(
    session: &mut InferenceSession,
    crop_preprocessor: &mut Preprocessor,
    second_opinion: Option<&mut SecondOpinion>,
    image: &RgbaImage,
    input: &ModelInput,
    quality: Quality,
    post: PostProcess,
) -> Result<Looks, Error> {
    if quality == Quality::Standard {
        return session.run(input).map(Looks::from);
    }
    let whole = run_mirrored(session, input, None)?;
    let subject = match subject_crop(&whole, post, image.width(), image.height()) {
        Some(rect) => {
            let crop =
                image::imageops::crop_imm(image, rect.x0, rect.y0, rect.width(), rect.height())
                    .to_image();
            let crop_input = crop_preprocessor.prepare(&crop);
            let output = run_mirrored(session, &crop_input, None)?;
            Some(SubjectLook { rect, output })
        }
        None => None,
    };
    let second_opinion = second_opinion.and_then(|second| {
        second
            .answer(image)
            .inspect_err(|e| tracing::warn!("no second opinion for this photo: {e}"))
            .ok()
    });
    Ok(Looks {
        whole,
        subject,
        matte_edge: true,
        second_opinion,
    })
}

/// The model's answer for `input` averaged with its answer for the mirror
/// image (mirrored back). With `each_to_alpha`, each pass is turned into
/// alpha before the average (U²-Net's min-max outputs are not on one scale).
pub fn run_mirrored(
    session: &mut InferenceSession,
    input: &ModelInput,
    each_to_alpha: Option<PostProcess>,
) -> Result<ModelOutput, Error> {
    let mut straight = session.run(input)?;
    let mut mirrored = mirror_output(&session.run(&mirror_input(input))?);
    if mirrored.width != straight.width || mirrored.height != straight.height {
        return Err(Error::ModelOutput {
            detail: format!(
                "the mirrored pass gave {}×{}, the first {}×{}",
                mirrored.width, mirrored.height, straight.width, straight.height
            ),
        });
    }
    if let Some(post) = each_to_alpha {
        straight.data = to_alpha(&straight.data, post);
        mirrored.data = to_alpha(&mirrored.data, post);
    }
    for (a, b) in straight.data.iter_mut().zip(&mirrored.data) {
        *a = (*a + b) / 2.0;
    }
    Ok(straight)
}

/// `input` flipped left–right (each row of each channel reversed).
pub fn mirror_input(input: &ModelInput) -> ModelInput {
    ModelInput {
        data: mirror_rows(&input.data, input.width),
        ..*input
    }
}

fn mirror_output(output: &ModelOutput) -> ModelOutput {
    ModelOutput {
        data: mirror_rows(&output.data, output.width),
        ..*output
    }
}

/// Planes of rows `width` long, each row reversed.
fn mirror_rows(data: &[f32], width: u32) -> Vec<f32> {
    let mut out = data.to_vec();
    for row in out.chunks_exact_mut((width as usize).max(1)) {
        row.reverse();
    }
    out
}

/// The part of the photo worth a second look: the box around the model's
/// subject (alpha ≥ ½ at model resolution), widened by a tenth of its
/// longer side plus 16 px so the whole edge and some background are in
/// view. `None` when there is no subject or the crop would not be
/// meaningfully larger in the model's eyes than the whole photo.
pub fn subject_crop(
    whole: &ModelOutput,
    post: PostProcess,
    width: u32,
    height: u32,
) -> Option<PixelRect> {
    let (mw, mh) = (whole.width as usize, whole.height as usize);
    let alpha = to_alpha(&whole.data, post);
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
    for (y, row) in alpha.chunks_exact(mw.max(1)).enumerate().take(mh) {
        let Some(first) = row.iter().position(|&a| a >= 0.5) else {
            continue;
        };
        let last = row.iter().rposition(|&a| a >= 0.5).unwrap_or(first);
        x0 = x0.min(first);
        x1 = x1.max(last + 1);
        y0 = y0.min(y);
        y1 = y + 1;
    }
    if x0 == usize::MAX {
        return None;
    }
    // Model pixels to photo pixels (the model saw the photo stretched).
    let sx = width as f32 / mw as f32;
    let sy = height as f32 / mh as f32;
    let (fx0, fx1) = (x0 as f32 * sx, x1 as f32 * sx);
    let (fy0, fy1) = (y0 as f32 * sy, y1 as f32 * sy);
    let margin = 0.1 * (fx1 - fx0).max(fy1 - fy0) + 16.0;
    let rect = PixelRect {
        x0: (fx0 - margin).floor().max(0.0) as u32,
        y0: (fy0 - margin).floor().max(0.0) as u32,
        x1: ((fx1 + margin).ceil() as u32).min(width),
        y1: ((fy1 + margin).ceil() as u32).min(height),
    };
    // The model stretches both the photo and the crop to its square, so
    // what matters is how much each axis grows.
    let zoom = (width as f32 / rect.width().max(1) as f32)
        .max(height as f32 / rect.height().max(1) as f32);
    (zoom >= MIN_ZOOM && rect.width() >= 8 && rect.height() >= 8).then_some(rect)
}

/// Pixels of the mask below this (of 255) count as sure background, above
/// `255 − SURE` as sure subject: the matte's trimap and the colour samples.
const SURE: u8 = 13;
/// Only pixels strictly between these are redrawn.
const UNSURE: std::ops::RangeInclusive<u8> = 6..=249;
/// How far apart (squared RGB distance, 0–3 scale) the local subject and
/// background colours must be for the matte to count fully.
const COLOUR_CONTRAST: f32 = 0.05;
/// Side of the tiles `matte_edge` skips when they hold no unsure pixel.
const MATTE_TILE: usize = 128;
/// Long side of the photo as the matte is solved: the model's own input
/// side, so the trimap is as fine as the mask it comes from.
const MATTE_SIDE: u32 = 1024;
/// Conjugate-gradient steps from the model's alpha (50 matched pymatting's
/// full solve on the dev split).
const MATTE_ITERATIONS: usize = 50;

/// Redraws where `mask` is unsure from the photo itself: a closed-form matte
/// (`engine::matte`) of the photo at the model's resolution, its trimap
/// from the mask (sure subject, sure background, the rest grown by a pixel
/// unknown), taken in where the nearby sure subject and sure background
/// colours (means within `radius`) differ: where they look alike the
/// photo cannot say where the edge is, and the model's value stands.
/// Chosen on the evaluation's dev split (`scripts/eval/looks-study`):
/// boundary MAE 0.1192 with the earlier colour-line estimate, 0.1161 with
/// the matte, lower on 30 of 45 images.
pub fn matte_edge(
    resizer: &mut Resizer,
    image: &RgbaImage,
    mask: &mut GrayImage,
    radius: usize,
) -> Result<(), Error> {
    if image.dimensions() != mask.dimensions() {
        return Ok(());
    }
    let Some(matte) = photo_matte(resizer, image, mask)? else {
        return Ok(());
    };
    // Tiles read their neighbours' pixels as the model left them.
    let source = mask.clone();
    for tile in tiles_holding(&source, MATTE_TILE, |v| UNSURE.contains(&v)) {
        matte_edge_tile(image, &source, mask, tile, radius, matte.buffer());
    }
    Ok(())
}

/// The closed-form matte of `image` with the trimap `mask` gives, at full
/// resolution (F32 pixels); `None` when the mask has no unsure pixel or lacks sure
/// subject or sure background.
fn photo_matte(
    resizer: &mut Resizer,
    image: &RgbaImage,
    mask: &GrayImage,
) -> Result<Option<Image<'static>>, Error> {
    let (width, height) = image.dimensions();
    let scale = (MATTE_SIDE as f32 / width.max(height) as f32).min(1.0);
    let w = ((width as f32 * scale).round() as u32).max(1);
    let h = ((height as f32 * scale).round() as u32).max(1);
    let bad = |what: &str, e: String| Error::ModelOutput {
        detail: format!("cannot {what} for the matte ({e})"),
    };
    let mut small_photo = Image::new(w, h, PixelType::U8x4);
    let lanczos = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3))
        .use_alpha(false);
    resizer
        .resize(image, &mut small_photo, &lanczos)
        .map_err(|e| bad("scale the photo", e.to_string()))?;
    let mut small_mask = Image::new(w, h, PixelType::U8);
    let bilinear = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    resizer
        .resize(mask, &mut small_mask, &bilinear)
        .map_err(|e| bad("scale the mask", e.to_string()))?;

    let (wu, hu) = (w as usize, h as usize);
    let levels = small_mask.buffer();
    let sure_fg = levels.iter().any(|&v| v > 255 - SURE);
    let sure_bg = levels.iter().any(|&v| v < SURE);
    let unsure: Vec<bool> = levels
        .iter()
        .map(|&v| (SURE..=255 - SURE).contains(&v))
        .collect();
    if !sure_fg || !sure_bg || !unsure.contains(&true) {
        return Ok(None);
    }
    // The unknown band grown by one pixel (4-neighbours): the model's sure
    // pixels right at the band's edge are often a pixel off.
    let unknown = dilate(&unsure, wu, hu);
    let alpha: Vec<f32> = levels
        .iter()
        .zip(&unknown)
        .map(|(&v, &u)| match v {
            _ if u => f32::from(v) / 255.0,
            v if v > 255 - SURE => 1.0,
            _ => 0.0,
        })
        .collect();
    let colour: Vec<f32> = small_photo
        .buffer()
        .chunks_exact(4)
        .flat_map(|p| [p[0], p[1], p[2]].map(|c| f32::from(c) / 255.0))
        .collect();
    let problem = MatteProblem {
        width: wu,
        height: hu,
        colour: &colour,
        alpha: &alpha,
        unknown: &unknown,
    };
    let Some(matte) = closed_form_matte(&problem, MATTE_ITERATIONS) else {
        return Ok(None);
    };
    let bytes: Vec<u8> = matte.iter().flat_map(|v| v.to_ne_bytes()).collect();
    let small = Image::from_vec_u8(w, h, bytes, PixelType::F32)
        .map_err(|e| bad("hold the matte", e.to_string()))?;
    if (w, h) == (width, height) {
        return Ok(Some(small));
    }
    let mut full = Image::new(width, height, PixelType::F32);
    let catmull_rom =
        ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::CatmullRom));
    resizer
        .resize(&small, &mut full, &catmull_rom)
        .map_err(|e| bad("upsample the matte", e.to_string()))?;
    Ok(Some(full))
}

/// Pixel `i` of an F32 image's bytes, clamped to 0..1.
fn matte_at(matte: &[u8], i: usize) -> f32 {
    let b = &matte[4 * i..4 * i + 4];
    f32::from_ne_bytes([b[0], b[1], b[2], b[3]]).clamp(0.0, 1.0)
}

fn matte_edge_tile(
    image: &RgbaImage,
    source: &GrayImage,
    mask: &mut GrayImage,
    tile: Region,
    r: usize,
    matte: &[u8],
) {
    let stride = source.width() as usize;
    let Region { x0, y0, x1, y1 } = tile.grown(r, source);
    let (rw, rh) = (x1 - x0, y1 - y0);
    let index = |k: usize| (y0 + k / rw) * stride + x0 + k % rw;
    let alpha: Vec<u8> = (0..rw * rh).map(|k| source.as_raw()[index(k)]).collect();
    let sure_fg: Vec<f32> = alpha
        .iter()
        .map(|&a| f32::from(u8::from(a > 255 - SURE)))
        .collect();
    let sure_bg: Vec<f32> = alpha
        .iter()
        .map(|&a| f32::from(u8::from(a < SURE)))
        .collect();
    let share_fg = box_blur(&sure_fg, rw, rh, r);
    let share_bg = box_blur(&sure_bg, rw, rh, r);
    let raw = image.as_raw();
    let colour = |c: usize| -> Vec<f32> {
        (0..rw * rh)
            .map(|k| f32::from(raw[index(k) * 4 + c]) / 255.0)
            .collect()
    };
    let channels = [colour(0), colour(1), colour(2)];
    let mean_of = |weights: &[f32], share: &[f32], c: usize| -> Vec<f32> {
        let weighted: Vec<f32> = channels[c]
            .iter()
            .zip(weights)
            .map(|(v, w)| v * w)
            .collect();
        box_blur(&weighted, rw, rh, r)
            .iter()
            .zip(share)
            .map(|(sum, n)| sum / n.max(1e-6))
            .collect()
    };
    let fg: Vec<Vec<f32>> = (0..3).map(|c| mean_of(&sure_fg, &share_fg, c)).collect();
    let bg: Vec<Vec<f32>> = (0..3).map(|c| mean_of(&sure_bg, &share_bg, c)).collect();
    for y in tile.y0 - y0..tile.y1 - y0 {
        for x in tile.x0 - x0..tile.x1 - x0 {
            let k = y * rw + x;
            let a = alpha[k];
            // Both kinds of sure pixel must be near for F and B to mean anything.
            if !UNSURE.contains(&a) || share_fg[k] <= 0.02 || share_bg[k] <= 0.02 {
                continue;
            }
            let contrast: f32 = (0..3).map(|c| (fg[c][k] - bg[c][k]).powi(2)).sum();
            let weight = (contrast / COLOUR_CONTRAST).min(1.0);
            let model = f32::from(a) / 255.0;
            let refined = model + weight * (matte_at(matte, index(k)) - model);
            mask.as_mut()[index(k)] = (refined * 255.0).round().clamp(0.0, 255.0) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(width: u32, height: u32, on: impl Fn(u32, u32) -> bool) -> ModelOutput {
        let mut data = Vec::new();
        for y in 0..height {
            for x in 0..width {
                data.push(if on(x, y) { 1.0 } else { 0.0 });
            }
        }
        ModelOutput {
            width,
            height,
            data,
        }
    }

    #[test]
    fn quality_names_round_trip_and_unknown_ones_are_refused() {
        for q in Quality::ALL {
            assert_eq!(q.to_string().parse::<Quality>(), Ok(q));
        }
        let err = "ultra".parse::<Quality>().unwrap_err();
        assert!(err.contains("ultra") && err.contains("best"), "{err}");
    }

    #[test]
    fn mirroring_twice_gives_the_input_back() {
        let input = ModelInput {
            width: 3,
            height: 2,
            data: (0..18).map(|v| v as f32).collect(),
        };
        let once = mirror_input(&input);
        assert_eq!(&once.data[..3], &[2.0, 1.0, 0.0]);
        assert_eq!(mirror_input(&once).data, input.data);
    }

    #[test]
    fn a_small_subject_gets_a_crop_around_it_with_a_margin() {
        // A subject at model pixels 40..60 × 30..50 of 100², photo 4000×3000.
        let whole = output(100, 100, |x, y| {
            (40..60).contains(&x) && (30..50).contains(&y)
        });
        let rect = subject_crop(&whole, PostProcess::None, 4000, 3000).unwrap();
        // Subject in photo pixels: x 1600..2400, y 900..1500; margin 0.1·800+16 = 96.
        assert_eq!(
            rect,
            PixelRect {
                x0: 1504,
                y0: 804,
                x1: 2496,
                y1: 1596
            }
        );
    }

    #[test]
    fn no_crop_without_a_subject_or_when_it_fills_the_frame() {
        let empty = output(100, 100, |_, _| false);
        assert_eq!(subject_crop(&empty, PostProcess::None, 4000, 3000), None);
        let full = output(100, 100, |x, y| {
            (2..98).contains(&x) && (1..99).contains(&y)
        });
        assert_eq!(subject_crop(&full, PostProcess::None, 4000, 3000), None);
        // Narrow but full height: one axis gains, so the crop is worth it.
        let tall = output(100, 100, |x, _| (40..60).contains(&x));
        let rect = subject_crop(&tall, PostProcess::None, 4000, 3000).unwrap();
        assert_eq!((rect.y0, rect.y1), (0, 3000));
    }

    /// A photo composited from `truth` (α per column) over a blue background
    /// with a subject of `subject` colour, and a model mask that has the
    /// edge in the right place but three times too soft.
    fn edge_case(subject: [u8; 3]) -> (RgbaImage, image::GrayImage, Vec<f32>) {
        let (w, h) = (96u32, 48u32);
        // True edge: a 4-px ramp centred at x = 48.
        let truth: Vec<f32> = (0..w)
            .map(|x| ((x as f32 + 0.5 - 48.0) / 4.0 + 0.5).clamp(0.0, 1.0))
            .collect();
        let model: Vec<f32> = (0..w)
            .map(|x| ((x as f32 + 0.5 - 48.0) / 12.0 + 0.5).clamp(0.0, 1.0))
            .collect();
        let background = [30.0, 60.0, 200.0];
        let photo = RgbaImage::from_fn(w, h, |x, _| {
            let a = truth[x as usize];
            let mix =
                |c: usize| (a * f32::from(subject[c]) + (1.0 - a) * background[c]).round() as u8;
            image::Rgba([mix(0), mix(1), mix(2), 255])
        });
        let mask = image::GrayImage::from_fn(w, h, |x, _| {
            image::Luma([(model[x as usize] * 255.0).round() as u8])
        });
        (photo, mask, truth)
    }

    fn error_against(mask: &image::GrayImage, truth: &[f32]) -> f32 {
        let row = &mask.as_raw()[..truth.len()];
        row.iter()
            .zip(truth)
            .map(|(&m, t)| (f32::from(m) / 255.0 - t).abs())
            .sum::<f32>()
            / truth.len() as f32
    }

    #[test]
    fn the_matte_edge_moves_a_too_soft_mask_towards_the_photos_own_edge() {
        let (photo, mut mask, truth) = edge_case([230, 120, 40]);
        let before = mask.clone();
        let error_before = error_against(&mask, &truth);
        matte_edge(&mut Resizer::new(), &photo, &mut mask, 8).expect("same-size images");
        let error_after = error_against(&mask, &truth);
        // The matte is taken where both sure colours are within the
        // radius; the pixels farther out keep the model's value.
        assert!(
            error_after < 0.5 * error_before,
            "error {error_before:.4} → {error_after:.4}"
        );
        // Sure pixels stay as the model said.
        for (x, (&b, &a)) in before.as_raw().iter().zip(mask.as_raw()).enumerate() {
            if !UNSURE.contains(&b) {
                assert_eq!(a, b, "a sure pixel changed at x = {}", x % 96);
            }
        }
    }

    #[test]
    fn the_matte_edge_leaves_the_mask_alone_where_subject_and_background_look_alike() {
        let (photo, mut mask, _) = edge_case([32, 62, 198]);
        let before = mask.clone();
        matte_edge(&mut Resizer::new(), &photo, &mut mask, 8).expect("same-size images");
        let moved = before
            .as_raw()
            .iter()
            .zip(mask.as_raw())
            .map(|(&b, &a)| b.abs_diff(a))
            .max()
            .unwrap_or(0);
        assert!(moved <= 1, "moved by {moved} levels");
    }
}
