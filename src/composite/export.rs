//! The export of one image: composited by the WGSL compositor offscreen when
//! a GPU is at hand (the same shader as the canvas), else by the CPU
//! reference; then encoded. A mask export is the mask alone.

use std::path::Path;
use std::sync::Arc;

use image::{GrayImage, RgbaImage};

use super::Background;
use super::cpu::composite_with;
use super::gpu::Compositor;
use crate::engine::encode::{EncodeOptions, OutputFormat, Rgb8, encode_composited, encode_result};

/// A device and the compositor made for it (the window's, when it renders
/// with wgpu).
#[derive(Clone)]
pub struct GpuTarget {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub compositor: Arc<Compositor>,
}

/// The encoded file for `image` cut out by `mask` over `background`, with
/// the photo's colour profile (if any) embedded; `path` names the file in
/// errors.
pub fn export(
    image: &RgbaImage,
    mask: &GrayImage,
    format: OutputFormat,
    background: &Background,
    gpu: Option<&GpuTarget>,
    icc_profile: Option<&[u8]>,
    path: &Path,
) -> Result<Vec<u8>, crate::Error> {
    if format == OutputFormat::Mask {
        let options = EncodeOptions {
            format,
            ..Default::default()
        };
        return encode_result(image, mask, &options, None, path);
    }
    // JPEG has no alpha: a transparent background becomes white.
    let background = match (background, format) {
        (Background::Transparent, OutputFormat::Jpeg) => Background::Colour(Rgb8::default().0),
        (other, _) => other.clone(),
    };
    let picture = background.pixels_for(image).map(|(_, pixels)| pixels);
    let on_gpu = gpu.and_then(|gpu| {
        let layer = gpu
            .compositor
            .upload(&gpu.device, &gpu.queue, image, mask, picture.as_ref())
            .ok()?;
        gpu.compositor
            .render_export(&gpu.device, &gpu.queue, &layer, &background)
            .ok()
    });
    let composited =
        on_gpu.unwrap_or_else(|| composite_with(image, mask, &background, picture.as_ref()));
    encode_composited(&composited, format, icc_profile, path)
}
