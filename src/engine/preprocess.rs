//! Turning a photo into the network's input: resize to the model's size
//! (SIMD convolution, antialiased when shrinking), then normalise into an
//! NCHW float tensor.
//!
//! Why Lanczos-3: on the evaluation set's dev split (`scripts/eval-quality
//! --split dev`, 45 composites) it beat IMG.LY's point-sampled
//! `tensorResizeBilinear` (which aliases on photos several times the model's
//! size) on boundary and re-composite error on 37 of 45 images, and
//! antialiased bilinear on 33 and 34 of 45, with the same weights. It is what
//! Pillow's `resize(..., LANCZOS)` computes (a test pins that).

use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbaImage;

use crate::models::catalog::{ModelEntry, Normalization};

/// A 1×3×H×W tensor ready for the network.
#[derive(Debug, Clone)]
pub struct ModelInput {
    pub width: u32,
    pub height: u32,
    pub data: Vec<f32>,
}

impl ModelInput {
    pub fn shape(&self) -> [usize; 4] {
        [1, 3, self.height as usize, self.width as usize]
    }
}

/// Reusable preprocessing state (the resizer keeps its buffers between images).
pub struct Preprocessor {
    size: (u32, u32),
    normalization: Normalization,
    resizer: Resizer,
    resized: Image<'static>,
}

impl Preprocessor {
    pub fn new(model: &ModelEntry) -> Self {
        let (w, h) = model.input_size;
        Self {
            size: (w, h),
            normalization: model.normalization,
            resizer: Resizer::new(),
            resized: Image::new(w, h, PixelType::U8x4),
        }
    }

    pub fn prepare(&mut self, image: &RgbaImage) -> ModelInput {
        let (w, h) = self.size;
        // The network sees colour only: transparent pixels keep their RGB
        // (no premultiplication), as IMG.LY and rembg feed them.
        let options = ResizeOptions::new()
            .resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3))
            .use_alpha(false);
        #[allow(clippy::expect_used, reason = "both images are U8x4, at least 1×1")]
        self.resizer
            .resize(image, &mut self.resized, &options)
            .expect("source and destination are both U8x4");
        ModelInput {
            width: w,
            height: h,
            data: to_nchw(
                self.resized.buffer(),
                w as usize * h as usize,
                self.normalization,
            ),
        }
    }
}

/// Interleaved RGBA bytes to planar normalised floats.
pub fn to_nchw(rgba: &[u8], pixels: usize, n: Normalization) -> Vec<f32> {
    let mut data = vec![0f32; 3 * pixels];
    let (r, rest) = data.split_at_mut(pixels);
    let (g, b) = rest.split_at_mut(pixels);
    let scale = [1.0 / n.std.0, 1.0 / n.std.1, 1.0 / n.std.2];
    let mean = [n.mean.0, n.mean.1, n.mean.2];
    for (i, px) in rgba.chunks_exact(4).take(pixels).enumerate() {
        r[i] = (f32::from(px[0]) - mean[0]) * scale[0];
        g[i] = (f32::from(px[1]) - mean[1]) * scale[1];
        b[i] = (f32::from(px[2]) - mean[2]) * scale[2];
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::catalog::ModelCatalog;

    #[test]
    fn imgly_normalisation_maps_0_128_255() {
        let n = Normalization {
            mean: (128.0, 128.0, 128.0),
            std: (256.0, 256.0, 256.0),
        };
        let data = to_nchw(&[0, 128, 255, 9], 1, n);
        assert_eq!(data, vec![-0.5, 0.0, 127.0 / 256.0]);
    }

    #[test]
    fn shrinking_matches_pillows_lanczos() {
        // The reference loop of the evaluation (and of tests/fixtures/make_fixtures.py)
        // resizes with Pillow; the engine must see the same pixels.
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let photo = image::open(fixtures.join("photos/chelsea.jpg"))
            .unwrap()
            .to_rgba8();
        let pillow = image::open(fixtures.join("chelsea-pillow-lanczos-150x100.png"))
            .unwrap()
            .to_rgb8();
        let mut model = ModelCatalog::builtin().default_entry().clone();
        model.input_size = (150, 100);
        model.normalization = Normalization {
            mean: (0.0, 0.0, 0.0),
            std: (1.0, 1.0, 1.0),
        };
        let input = Preprocessor::new(&model).prepare(&photo);
        let plane = 150 * 100;
        let (mut worst, mut total) = (0f32, 0f32);
        for (i, p) in pillow.pixels().enumerate() {
            for c in 0..3 {
                let difference = (input.data[c * plane + i] - f32::from(p[c])).abs();
                worst = worst.max(difference);
                total += difference;
            }
        }
        let mean = total / (3 * plane) as f32;
        // Two JPEG decoders (zune-jpeg here, libjpeg in Pillow) and fixed-point against
        // float arithmetic differ by a level or so (measured: mean 0.26, largest 3); Pillow's
        // bilinear instead of Lanczos differs by a mean of 1.47 and up to 18 levels.
        assert!(
            worst <= 4.0 && mean <= 0.5,
            "largest difference {worst} levels, mean {mean:.3}"
        );
    }

    #[test]
    fn output_is_planar_rgb_in_model_size() {
        let catalog = ModelCatalog::builtin();
        let model = catalog.get("u2netp").unwrap();
        let mut pre = Preprocessor::new(model);
        let image = RgbaImage::from_pixel(640, 480, image::Rgba([255, 0, 0, 0]));
        let input = pre.prepare(&image);
        assert_eq!(input.shape(), [1, 3, 320, 320]);
        let plane = 320 * 320;
        // Red stays red even where the pixel is fully transparent.
        let n = model.normalization;
        assert!((input.data[0] - (255.0 - n.mean.0) / n.std.0).abs() < 1e-5);
        assert!((input.data[plane] - (0.0 - n.mean.1) / n.std.1).abs() < 1e-5);
        assert!((input.data[2 * plane] - (0.0 - n.mean.2) / n.std.2).abs() < 1e-5);
    }
}
