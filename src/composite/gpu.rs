//! The WGSL compositor (`shaders/composite.wgsl`) on plain wgpu: the photo and
//! its mask live in separate textures, and the background is a uniform (or a
//! third texture for an image or a blur), so changing it re-renders at once.
//! The same shader draws the on-screen canvas (through an egui paint callback,
//! see `app::gpu_canvas`) and renders exports offscreen.

use std::num::NonZeroU64;

use image::{GrayImage, RgbaImage};
use wgpu::util::DeviceExt;

use super::{Background, checkerboard};

const SHADER: &str = include_str!("../../shaders/composite.wgsl");

/// The shader's source: the checkerboard's grey levels come from
/// [`checkerboard`], so the CPU canvas and the shader cannot drift apart.
pub fn shader_source() -> String {
    let level = |grey: u8| f32::from(grey) / 255.0;
    format!(
        "const CHECKER_LIGHT: f32 = {:?};\nconst CHECKER_DARK: f32 = {:?};\n{SHADER}",
        level(checkerboard::LIGHT),
        level(checkerboard::DARK)
    )
}

/// How the shader fills what lies under the cut-out (its `mode`), derived
/// from a [`Background`]: a picture or blur is the layer's third texture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    Transparent,
    Colour([u8; 3]),
    Texture,
}

impl From<&Background> for Fill {
    fn from(background: &Background) -> Self {
        match background {
            Background::Transparent => Self::Transparent,
            Background::Colour(rgb) => Self::Colour(*rgb),
            Background::Picture { .. } | Background::Blur => Self::Texture,
        }
    }
}

/// The shader's uniform block (32 bytes, std140-compatible).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    pub colour: [f32; 4],
    pub mode: u32,
    pub export_exact: u32,
    pub split: f32,
    pub checker: f32,
}

impl Params {
    pub fn new(background: Fill, split: f32, checker: f32) -> Self {
        let (mode, colour) = match background {
            Fill::Transparent => (0, [0.0; 4]),
            Fill::Colour([r, g, b]) => (
                1,
                [
                    f32::from(r) / 255.0,
                    f32::from(g) / 255.0,
                    f32::from(b) / 255.0,
                    1.0,
                ],
            ),
            Fill::Texture => (2, [0.0; 4]),
        };
        Self {
            colour,
            mode,
            export_exact: 0,
            split,
            checker,
        }
    }

    fn bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, v) in self.colour.iter().enumerate() {
            out[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
        }
        out[16..20].copy_from_slice(&self.mode.to_le_bytes());
        out[20..24].copy_from_slice(&self.export_exact.to_le_bytes());
        out[24..28].copy_from_slice(&self.split.to_le_bytes());
        out[28..32].copy_from_slice(&self.checker.to_le_bytes());
        out
    }
}

/// Pipelines and layouts, made once per device.
pub struct Compositor {
    layout: wgpu::BindGroupLayout,
    sampler: wgpu::Sampler,
    export_pipeline: wgpu::RenderPipeline,
    screen_pipeline: Option<wgpu::RenderPipeline>,
}

/// One image's textures and uniforms on the GPU.
pub struct GpuLayer {
    pub size: (u32, u32),
    photo: wgpu::Texture,
    mask: wgpu::Texture,
    background: wgpu::Texture,
    params: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
}

#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error("no GPU adapter available ({0})")]
    NoAdapter(String),
    #[error("GPU device unavailable ({0})")]
    NoDevice(String),
    #[error("image is {0}×{1} pixels, over this GPU's texture limit of {2}")]
    TooLarge(u32, u32, u32),
    #[error("reading back the GPU result failed ({0})")]
    Readback(String),
}

/// A device of its own, for exports and tests without a window.
pub fn headless_device() -> Result<(wgpu::Device, wgpu::Queue), GpuError> {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter =
        pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))
            .map_err(|e| GpuError::NoAdapter(e.to_string()))?;
    let limits = adapter.limits();
    pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("backgrounderase export"),
        required_limits: wgpu::Limits {
            max_texture_dimension_2d: limits.max_texture_dimension_2d,
            ..wgpu::Limits::downlevel_defaults()
        },
        ..Default::default()
    }))
    .map_err(|e| GpuError::NoDevice(e.to_string()))
}

impl Compositor {
    /// `screen_format`: the egui target format (Bgra8 on Vulkan, Rgba8 on GL),
    /// or `None` for export only.
    pub fn new(device: &wgpu::Device, screen_format: Option<wgpu::TextureFormat>) -> Self {
        let shader = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("composite.wgsl"),
            source: wgpu::ShaderSource::Wgsl(shader_source().into()),
        });
        let texture_entry = |binding| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::FRAGMENT,
            ty: wgpu::BindingType::Texture {
                sample_type: wgpu::TextureSampleType::Float { filterable: true },
                view_dimension: wgpu::TextureViewDimension::D2,
                multisampled: false,
            },
            count: None,
        };
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("composite"),
            entries: &[
                wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: NonZeroU64::new(32),
                    },
                    count: None,
                },
                texture_entry(1),
                texture_entry(2),
                texture_entry(3),
                wgpu::BindGroupLayoutEntry {
                    binding: 4,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Sampler(wgpu::SamplerBindingType::Filtering),
                    count: None,
                },
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("composite"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = |format, entry: &str| {
            device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
                label: Some(entry),
                layout: Some(&pipeline_layout),
                vertex: wgpu::VertexState {
                    module: &shader,
                    entry_point: Some("vs_main"),
                    compilation_options: Default::default(),
                    buffers: &[],
                },
                primitive: wgpu::PrimitiveState::default(),
                depth_stencil: None,
                multisample: wgpu::MultisampleState::default(),
                fragment: Some(wgpu::FragmentState {
                    module: &shader,
                    entry_point: Some(entry),
                    compilation_options: Default::default(),
                    // Opaque on screen, straight alpha on export: no blending.
                    targets: &[Some(wgpu::ColorTargetState {
                        format,
                        blend: None,
                        write_mask: wgpu::ColorWrites::ALL,
                    })],
                }),
                multiview_mask: None,
                cache: None,
            })
        };
        let sampler = device.create_sampler(&wgpu::SamplerDescriptor {
            label: Some("composite"),
            mag_filter: wgpu::FilterMode::Linear,
            min_filter: wgpu::FilterMode::Linear,
            ..Default::default()
        });
        Self {
            export_pipeline: pipeline(wgpu::TextureFormat::Rgba8Unorm, "fs_export"),
            screen_pipeline: screen_format.map(|f| pipeline(f, "fs_screen")),
            layout,
            sampler,
        }
    }

    /// Uploads one image. `background` (same size as `photo`) fills the
    /// background texture; without it a 1×1 placeholder is bound.
    pub fn upload(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        photo: &RgbaImage,
        mask: &GrayImage,
        background: Option<&RgbaImage>,
    ) -> Result<GpuLayer, GpuError> {
        let (w, h) = photo.dimensions();
        let max = device.limits().max_texture_dimension_2d;
        if w > max || h > max {
            return Err(GpuError::TooLarge(w, h, max));
        }
        let photo_tex = texture(
            device,
            queue,
            "photo",
            w,
            h,
            wgpu::TextureFormat::Rgba8Unorm,
            photo.as_raw(),
        );
        let mask_tex = texture(
            device,
            queue,
            "mask",
            w,
            h,
            wgpu::TextureFormat::R8Unorm,
            mask.as_raw(),
        );
        let background_tex = match background {
            Some(bg) => texture(
                device,
                queue,
                "background",
                bg.width(),
                bg.height(),
                wgpu::TextureFormat::Rgba8Unorm,
                bg.as_raw(),
            ),
            None => texture(
                device,
                queue,
                "background",
                1,
                1,
                wgpu::TextureFormat::Rgba8Unorm,
                &[0, 0, 0, 255],
            ),
        };
        let params = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("composite params"),
            contents: &Params::new(Fill::Transparent, 0.0, checkerboard::CELL_POINTS).bytes(),
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        });
        let bind_group = self.bind_group(device, &params, &photo_tex, &mask_tex, &background_tex);
        Ok(GpuLayer {
            size: (w, h),
            photo: photo_tex,
            mask: mask_tex,
            background: background_tex,
            params,
            bind_group,
        })
    }

    /// Rewrites the mask texture in place (a brush stroke, an edge setting):
    /// same size, so the bind group stays.
    pub fn write_mask(&self, queue: &wgpu::Queue, layer: &GpuLayer, mask: &GrayImage) {
        let (w, h) = mask.dimensions();
        if (w, h) != layer.size {
            return;
        }
        queue.write_texture(
            wgpu::TexelCopyTextureInfo {
                texture: &layer.mask,
                mip_level: 0,
                origin: wgpu::Origin3d::ZERO,
                aspect: wgpu::TextureAspect::All,
            },
            mask.as_raw(),
            wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(w),
                rows_per_image: Some(h),
            },
            wgpu::Extent3d {
                width: w,
                height: h,
                depth_or_array_layers: 1,
            },
        );
    }

    /// Replaces the background texture (a new picture, or a blur).
    pub fn set_background_texture(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        layer: &mut GpuLayer,
        background: &RgbaImage,
    ) {
        layer.background = texture(
            device,
            queue,
            "background",
            background.width(),
            background.height(),
            wgpu::TextureFormat::Rgba8Unorm,
            background.as_raw(),
        );
        layer.bind_group = self.bind_group(
            device,
            &layer.params,
            &layer.photo,
            &layer.mask,
            &layer.background,
        );
    }

    fn bind_group(
        &self,
        device: &wgpu::Device,
        params: &wgpu::Buffer,
        photo: &wgpu::Texture,
        mask: &wgpu::Texture,
        background: &wgpu::Texture,
    ) -> wgpu::BindGroup {
        let view = |t: &wgpu::Texture| t.create_view(&wgpu::TextureViewDescriptor::default());
        device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("composite"),
            layout: &self.layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: params.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: wgpu::BindingResource::TextureView(&view(photo)),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: wgpu::BindingResource::TextureView(&view(mask)),
                },
                wgpu::BindGroupEntry {
                    binding: 3,
                    resource: wgpu::BindingResource::TextureView(&view(background)),
                },
                wgpu::BindGroupEntry {
                    binding: 4,
                    resource: wgpu::BindingResource::Sampler(&self.sampler),
                },
            ],
        })
    }

    /// Draws `layer` on screen into the current viewport (egui sets it to the
    /// callback's rectangle). Needs a compositor made with a screen format.
    pub fn draw_screen(&self, pass: &mut wgpu::RenderPass<'_>, layer: &GpuLayer) {
        if let Some(pipeline) = &self.screen_pipeline {
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, &layer.bind_group, &[]);
            pass.draw(0..6, 0..1);
        }
    }

    /// Renders `layer` at full size offscreen and reads it back: straight
    /// alpha for a transparent background, opaque otherwise.
    pub fn render_export(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        layer: &GpuLayer,
        background: &Background,
    ) -> Result<RgbaImage, GpuError> {
        let (w, h) = layer.size;
        let mut params = Params::new(Fill::from(background), 0.0, 0.0);
        params.export_exact = 1;
        layer.write_params(queue, &params);
        let target = device.create_texture(&wgpu::TextureDescriptor {
            label: Some("export target"),
            size: wgpu::Extent3d {
                width: w,
                height: h,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: wgpu::TextureFormat::Rgba8Unorm,
            usage: wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::COPY_SRC,
            view_formats: &[],
        });
        let view = target.create_view(&wgpu::TextureViewDescriptor::default());
        // Rows padded to 256 bytes for the copy.
        let row = w * 4;
        let padded_row =
            row.div_ceil(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT) * wgpu::COPY_BYTES_PER_ROW_ALIGNMENT;
        let readback = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("export readback"),
            size: u64::from(padded_row) * u64::from(h),
            usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::MAP_READ,
            mapped_at_creation: false,
        });
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("export"),
        });
        {
            let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
                label: Some("export"),
                color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                    view: &view,
                    depth_slice: None,
                    resolve_target: None,
                    ops: wgpu::Operations {
                        load: wgpu::LoadOp::Clear(wgpu::Color::TRANSPARENT),
                        store: wgpu::StoreOp::Store,
                    },
                })],
                depth_stencil_attachment: None,
                timestamp_writes: None,
                occlusion_query_set: None,
                multiview_mask: None,
            });
            pass.set_pipeline(&self.export_pipeline);
            pass.set_bind_group(0, &layer.bind_group, &[]);
            pass.draw(0..6, 0..1);
        }
        encoder.copy_texture_to_buffer(
            wgpu::TexelCopyTextureInfo {
                texture: &target,
                mip_level: 0,
                origin: wgpu::Origin3d::ZERO,
                aspect: wgpu::TextureAspect::All,
            },
            wgpu::TexelCopyBufferInfo {
                buffer: &readback,
                layout: wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(padded_row),
                    rows_per_image: Some(h),
                },
            },
            wgpu::Extent3d {
                width: w,
                height: h,
                depth_or_array_layers: 1,
            },
        );
        queue.submit([encoder.finish()]);
        let slice = readback.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| GpuError::Readback(e.to_string()))?;
        rx.recv()
            .map_err(|e| GpuError::Readback(e.to_string()))?
            .map_err(|e| GpuError::Readback(e.to_string()))?;
        let data = slice
            .get_mapped_range()
            .map_err(|e| GpuError::Readback(e.to_string()))?;
        let mut pixels = Vec::with_capacity((row * h) as usize);
        for y in 0..h as usize {
            pixels.extend_from_slice(&data[y * padded_row as usize..][..row as usize]);
        }
        drop(data);
        readback.unmap();
        #[allow(
            clippy::expect_used,
            reason = "the buffer was read back at the layer size"
        )]
        let image = RgbaImage::from_raw(w, h, pixels).expect("sized from the layer");
        Ok(image)
    }
}

impl GpuLayer {
    pub fn write_params(&self, queue: &wgpu::Queue, params: &Params) {
        queue.write_buffer(&self.params, 0, &params.bytes());
    }
}

fn texture(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    label: &str,
    width: u32,
    height: u32,
    format: wgpu::TextureFormat,
    data: &[u8],
) -> wgpu::Texture {
    device.create_texture_with_data(
        queue,
        &wgpu::TextureDescriptor {
            label: Some(label),
            size: wgpu::Extent3d {
                width,
                height,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format,
            usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
            view_formats: &[],
        },
        wgpu::util::TextureDataOrder::LayerMajor,
        data,
    )
}
