//! The canvas drawn by the WGSL compositor through an egui paint callback.
//! Textures live in egui-wgpu's callback resources; a frame only writes the
//! 32-byte uniform block, so a new background or divider position costs no
//! CPU pixel work.

use std::collections::HashMap;
use std::sync::Arc;

use egui_wgpu::{CallbackResources, CallbackTrait, RenderState, ScreenDescriptor};
use image::{GrayImage, RgbaImage};

use crate::app::worker::ImageId;
use crate::composite::checkerboard;
use crate::composite::gpu::{Compositor, Fill, GpuLayer, Params};

/// Per-device state shared by every frame.
pub struct GpuCanvas {
    pub compositor: Arc<Compositor>,
    layers: HashMap<LayerKey, LayerState>,
}

/// Which GPU layer of an image: the photo-framed one (compare and paint),
/// or the finished export's own frame (crop, canvas, shadow).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LayerKey {
    image: ImageId,
    finished: bool,
}

impl LayerKey {
    pub fn photo(image: ImageId) -> Self {
        Self {
            image,
            finished: false,
        }
    }

    pub fn finished(image: ImageId) -> Self {
        Self {
            image,
            finished: true,
        }
    }
}

struct LayerState {
    layer: GpuLayer,
    has_mask: bool,
    /// Which edit of the mask the texture holds.
    mask_version: u64,
    /// Which picture the background texture holds now.
    background_key: Option<u64>,
}

impl GpuCanvas {
    /// Registers the compositor for `render_state`'s device and target format.
    pub fn install(render_state: &RenderState) -> Arc<Compositor> {
        let compositor = Arc::new(Compositor::new(
            &render_state.device,
            Some(render_state.target_format),
        ));
        render_state
            .renderer
            .write()
            .callback_resources
            .insert(GpuCanvas {
                compositor: compositor.clone(),
                layers: HashMap::new(),
            });
        compositor
    }
}

/// Makes sure the item's textures are on the GPU (and current); returns
/// whether the layer can be drawn.
pub fn sync_layer(
    render_state: &RenderState,
    id: LayerKey,
    preview: &RgbaImage,
    preview_mask: Option<&GrayImage>,
    mask_version: u64,
    background: Option<(u64, &RgbaImage)>,
) -> bool {
    let mut renderer = render_state.renderer.write();
    let Some(canvas) = renderer.callback_resources.get_mut::<GpuCanvas>() else {
        return false;
    };
    let (device, queue) = (&render_state.device, &render_state.queue);
    let stale = canvas.layers.get(&id).is_none_or(|l| {
        l.has_mask != preview_mask.is_some() || l.layer.size != preview.dimensions()
    });
    if stale {
        // Until the mask arrives the layer shows the original alone (split 1).
        let full;
        let mask = match preview_mask {
            Some(m) => m,
            None => {
                full = GrayImage::from_pixel(preview.width(), preview.height(), image::Luma([255]));
                &full
            }
        };
        match canvas.compositor.upload(device, queue, preview, mask, None) {
            Ok(layer) => {
                canvas.layers.insert(
                    id,
                    LayerState {
                        layer,
                        has_mask: preview_mask.is_some(),
                        mask_version,
                        background_key: None,
                    },
                );
            }
            Err(_) => return false,
        }
    }
    let compositor = canvas.compositor.clone();
    #[allow(clippy::expect_used, reason = "inserted just above")]
    let state = canvas.layers.get_mut(&id).expect("inserted above");
    if let Some(mask) = preview_mask
        && state.mask_version != mask_version
    {
        compositor.write_mask(queue, &state.layer, mask);
        state.mask_version = mask_version;
    }
    if let Some((key, picture)) = background
        && state.background_key != Some(key)
    {
        compositor.set_background_texture(device, queue, &mut state.layer, picture);
        state.background_key = Some(key);
    }
    true
}

/// One frame's draw of one layer.
pub struct CanvasCallback {
    pub id: LayerKey,
    pub background: Fill,
    pub split: f32,
    pub has_mask: bool,
    pub pixels_per_point: f32,
}

impl CallbackTrait for CanvasCallback {
    fn prepare(
        &self,
        _device: &wgpu::Device,
        queue: &wgpu::Queue,
        _screen: &ScreenDescriptor,
        _encoder: &mut wgpu::CommandEncoder,
        resources: &mut CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        if let Some(state) = resources
            .get::<GpuCanvas>()
            .and_then(|c| c.layers.get(&self.id))
        {
            let split = if self.has_mask { self.split } else { 1.0 };
            let params = Params::new(
                self.background,
                split,
                checkerboard::CELL_POINTS * self.pixels_per_point,
            );
            state.layer.write_params(queue, &params);
        }
        Vec::new()
    }

    fn paint(
        &self,
        _info: egui::PaintCallbackInfo,
        pass: &mut wgpu::RenderPass<'static>,
        resources: &CallbackResources,
    ) {
        if let Some(canvas) = resources.get::<GpuCanvas>()
            && let Some(state) = canvas.layers.get(&self.id)
        {
            canvas.compositor.draw_screen(pass, &state.layer);
        }
    }
}
