//! Turning a photo into the network's input: resize to the model's size
//! (SIMD convolution, antialiased when shrinking), then normalise into an
//! NCHW float tensor.

use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbaImage;

use crate::catalog::{InputResize, ModelEntry, Normalization};

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
    method: InputResize,
    resizer: Resizer,
    resized: Image<'static>,
}

impl Preprocessor {
    pub fn new(model: &ModelEntry) -> Self {
        let (w, h) = model.input_size;
        Self {
            size: (w, h),
            normalization: model.normalization,
            method: model.resize,
            resizer: Resizer::new(),
            resized: Image::new(w, h, PixelType::U8x4),
        }
    }

    pub fn prepare(&mut self, image: &RgbaImage) -> ModelInput {
        let (w, h) = self.size;
        if self.method == InputResize::ImglyBilinear {
            let rgba = imgly_resize_bilinear(image, w, h);
            return ModelInput {
                width: w,
                height: h,
                data: to_nchw(&rgba, w as usize * h as usize, self.normalization),
            };
        }
        // The network sees colour only: transparent pixels keep their RGB
        // (no premultiplication), as IMG.LY and rembg feed them.
        let options = ResizeOptions::new()
            .resize_alg(ResizeAlg::Convolution(FilterType::Bilinear))
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

/// IMG.LY's `tensorResizeBilinear` (background-removal-node 1.4.5,
/// src/utils.ts): destination pixel `x` samples the source at `x × scale`,
/// blends the four neighbours, and rounds half up to 8 bits.
pub fn imgly_resize_bilinear(src: &RgbaImage, width: u32, height: u32) -> Vec<u8> {
    let (sw, sh) = (src.width() as usize, src.height() as usize);
    let scale_x = sw as f64 / f64::from(width);
    let scale_y = sh as f64 / f64::from(height);
    // Per-column neighbours and weights, shared by every row.
    let columns: Vec<(usize, usize, f32)> = (0..width as usize)
        .map(|x| {
            let sx = x as f64 * scale_x;
            let x1 = sx.floor() as usize;
            let x2 = (sx.ceil() as usize).min(sw - 1);
            (x1 * 4, x2 * 4, (sx - x1 as f64) as f32)
        })
        .collect();
    let raw = src.as_raw();
    let stride = sw * 4;
    let mut out = vec![0u8; width as usize * height as usize * 4];
    for (y, row_out) in out.chunks_exact_mut(width as usize * 4).enumerate() {
        let sy = y as f64 * scale_y;
        let y1 = sy.floor() as usize;
        let y2 = (sy.ceil() as usize).min(sh - 1);
        let dy = (sy - y1 as f64) as f32;
        let (top, bottom) = (&raw[y1 * stride..][..stride], &raw[y2 * stride..][..stride]);
        for (px, &(x1, x2, dx)) in row_out.chunks_exact_mut(4).zip(&columns) {
            for c in 0..4 {
                let p1 = f32::from(top[x1 + c]);
                let p2 = f32::from(top[x2 + c]);
                let p3 = f32::from(bottom[x1 + c]);
                let p4 = f32::from(bottom[x2 + c]);
                let v = (1.0 - dx) * (1.0 - dy) * p1
                    + dx * (1.0 - dy) * p2
                    + (1.0 - dx) * dy * p3
                    + dx * dy * p4;
                px[c] = (v + 0.5).floor() as u8;
            }
        }
    }
    out
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
    use crate::catalog::ModelCatalog;

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
    fn imgly_resize_samples_from_the_top_left() {
        // 2×1 → 4×1: samples at 0, 0.5, 1, 1.5 (clamped), as IMG.LY does.
        let src = RgbaImage::from_raw(2, 1, vec![0, 0, 0, 0, 100, 100, 100, 100]).unwrap();
        let out = imgly_resize_bilinear(&src, 4, 1);
        let reds: Vec<u8> = out.chunks(4).map(|p| p[0]).collect();
        assert_eq!(reds, vec![0, 50, 100, 100]);
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
