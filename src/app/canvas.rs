//! The canvas: before/after compare slider, zoom and pan, transparency as a
//! checkerboard, and the empty state.

use std::sync::Arc;

use egui::{Color32, ColorImage, Pos2, Rect, Sense, Stroke, TextureOptions, Vec2, pos2, vec2};
use image::RgbaImage;

use super::gpu_canvas::{CanvasCallback, LayerKey, sync_layer};
use super::workspace::{Item, Status, Textures};
use crate::composite::gpu::Fill;
use crate::composite::{Background, checkerboard};

/// The background picker: transparent, a colour, a blur or a picture.
pub fn background_picker(ui: &mut egui::Ui, background: &mut Background) -> BackgroundAction {
    let mut action = BackgroundAction::None;
    ui.horizontal_wrapped(|ui| {
        if ui
            .selectable_label(*background == Background::Transparent, "Transparent")
            .clicked()
        {
            *background = Background::Transparent;
        }
        let mut colour = match background {
            Background::Colour(c) => *c,
            _ => [255, 255, 255],
        };
        let picked = ui
            .selectable_label(matches!(background, Background::Colour(_)), "Colour")
            .clicked();
        if ui.color_edit_button_srgb(&mut colour).changed() || picked {
            *background = Background::Colour(colour);
        }
        if ui
            .selectable_label(*background == Background::Blur, "Blur")
            .on_hover_text("The photo itself, blurred")
            .clicked()
        {
            *background = Background::Blur;
        }
        if ui
            .selectable_label(matches!(background, Background::Picture { .. }), "Picture…")
            .on_hover_text("Choose a picture to put behind the subject")
            .clicked()
        {
            action = BackgroundAction::ChoosePicture;
        }
    });
    action
}

/// What the background picker asks of the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackgroundAction {
    None,
    ChoosePicture,
}

pub struct CanvasView {
    /// Where the divider sits, 0 (all result) to 1 (all original).
    pub split: f32,
    /// `None`: fit the window. Otherwise screen points per image pixel.
    pub zoom: Option<f32>,
    pub pan: Vec2,
    pub background: Background,
    pub brush: super::editor::BrushTool,
    /// Whether the current drag moves the divider (else it pans).
    dragging_divider: bool,
    /// The fit-to-window scale of the last picture drawn (keyboard zoom
    /// starts from it).
    last_fit: f32,
}

/// Beside the image name while the preview model's cut-out is shown.
pub const PREVIEW_MARK: &str = "preview · full result coming";

/// Zoom limits, in screen points per image pixel.
const MAX_ZOOM: f32 = 32.0;
const MIN_ZOOM: f32 = 0.05;
/// Wheel scroll (points) that zooms by a factor of e.
const SCROLL_PER_E_FOLD: f32 = 200.0;
/// How close (points) a press must be to the divider to move it.
const DIVIDER_GRAB: f32 = 12.0;
const DIVIDER_HANDLE_RADIUS: f32 = 10.0;
const DIVIDER_HANDLE_BLUE: Color32 = Color32::from_rgb(47, 111, 222);

impl CanvasView {
    /// The view with the background and brush kept from the last session.
    pub fn restored(background: Background, brush: super::editor::BrushTool) -> Self {
        Self {
            background,
            brush,
            ..Self::default()
        }
    }

    /// Back to fit-to-window, centred.
    pub fn fit(&mut self) {
        self.zoom = None;
        self.pan = Vec2::ZERO;
    }

    /// Zooms around the centre of the canvas (keyboard).
    pub fn zoom_by(&mut self, factor: f32) {
        let current = self.zoom.unwrap_or(self.last_fit);
        let zoomed = (current * factor).clamp(self.last_fit.min(MIN_ZOOM), MAX_ZOOM);
        self.pan *= zoomed / current;
        self.zoom = Some(zoomed);
    }

    /// Moves the before/after divider (keyboard), 0 = all result.
    pub fn move_divider(&mut self, by: f32) {
        self.split = (self.split + by).clamp(0.0, 1.0);
    }
}

/// What happened on the canvas that the app must act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CanvasEvent {
    None,
    /// A brush stroke was finished (it is in `item.active_stroke`).
    StrokeFinished,
}

impl Default for CanvasView {
    fn default() -> Self {
        Self {
            split: 0.5,
            zoom: None,
            pan: Vec2::ZERO,
            background: Background::Transparent,
            brush: Default::default(),
            dragging_divider: false,
            last_fit: 1.0,
        }
    }
}

impl CanvasView {
    /// The canvas for `item`: its toolbar, then the picture; returns what
    /// the app must act on (a finished stroke).
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        item: &mut Item,
        render_state: Option<&egui_wgpu::RenderState>,
    ) -> CanvasEvent {
        toolbar(ui, self, item);
        // With a layout set and the brush off, the canvas shows the export
        // as it will look (GPU only; the CPU fallback keeps the photo frame).
        let finished = match (&self.brush.mode, render_state) {
            (None, Some(_)) => item.finished_preview.clone(),
            _ => None,
        };
        let Some(size) = finished
            .as_ref()
            .map(|(c, _)| c)
            .or(item.preview.as_ref())
            .map(|p| vec2(p.width() as f32, p.height() as f32))
        else {
            ui.centered_and_justified(|ui| {
                if let Status::Failed(reason) = &item.status {
                    ui.colored_label(ui.visuals().error_fg_color, reason);
                } else {
                    super::busy::busy_mark(ui, "decoding");
                }
            });
            return CanvasEvent::None;
        };

        let (response, painter) = ui.allocate_painter(ui.available_size(), Sense::click_and_drag());
        response.widget_info(|| {
            egui::WidgetInfo::labeled(egui::Role::Slider, true, "Compare before and after")
        });
        let area = response.rect;
        let fit = (area.width() / size.x).min(area.height() / size.y);
        self.last_fit = fit;
        self.wheel_zoom(ui, &response, fit);
        let image_rect =
            Rect::from_center_size(area.center() + self.pan, size * self.zoom.unwrap_or(fit));
        let split = if finished.is_some() { 0.0 } else { self.split };
        let divider_x = image_rect.left() + image_rect.width() * split;
        let painting = self.brush.mode.is_some() && item.mask.is_some();
        let event = if painting {
            self.paint(ui, &response, image_rect, size, item)
        } else {
            self.drag(ui, &response, image_rect, divider_x, finished.is_some());
            CanvasEvent::None
        };

        let painter = painter.with_clip_rect(area);
        let pixels_per_point = ui.ctx().pixels_per_point();
        let draw = |callback: CanvasCallback| {
            painter.add(egui_wgpu::Callback::new_paint_callback(
                image_rect, callback,
            ));
        };
        if let (Some(finished), Some(rs)) = (&finished, render_state) {
            if let Some(callback) = self.finished_layer(rs, item, finished, pixels_per_point) {
                draw(callback);
            }
            response
                .on_hover_text("The export as it will look; choose a brush to paint on the photo");
            return event;
        }
        let preview_background = self.preview_background(item);
        let on_gpu = render_state
            .and_then(|rs| self.photo_layer(rs, item, &preview_background, pixels_per_point))
            .map(draw)
            .is_some();
        if !on_gpu {
            self.paint_cpu(
                ui.ctx(),
                &painter,
                image_rect,
                divider_x,
                item,
                preview_background,
            );
        }
        draw_divider(&painter, image_rect, divider_x);
        if painting {
            if let Some(p) = response.hover_pos() {
                let r = self.brush.radius;
                painter.circle_stroke(p, r, Stroke::new(1.5, Color32::WHITE));
                painter.circle_stroke(p, r + 1.5, Stroke::new(1.0, Color32::BLACK));
            }
        } else {
            response.on_hover_text(
                "Drag the divider to compare; drag elsewhere to pan; scroll to zoom",
            );
        }
        event
    }

    /// The wheel zooms around the pointer.
    fn wheel_zoom(&mut self, ui: &egui::Ui, response: &egui::Response, fit: f32) {
        if !response.hovered() {
            return;
        }
        let scroll = ui.input(|i| i.smooth_scroll_delta.y);
        if scroll == 0.0 {
            return;
        }
        let scale = self.zoom.unwrap_or(fit);
        let new_scale =
            (scale * (scroll / SCROLL_PER_E_FOLD).exp()).clamp(fit.min(MIN_ZOOM), MAX_ZOOM);
        if let Some(pointer) = response.hover_pos() {
            let centre = response.rect.center() + self.pan;
            self.pan += (pointer - centre) * (1.0 - new_scale / scale);
        }
        self.zoom = Some(new_scale);
    }

    /// Dragging near the divider moves it; elsewhere it pans (the finished
    /// view has no divider).
    fn drag(
        &mut self,
        ui: &egui::Ui,
        response: &egui::Response,
        image_rect: Rect,
        divider_x: f32,
        finished: bool,
    ) {
        let near = |p: Pos2| (p.x - divider_x).abs() < DIVIDER_GRAB;
        if finished {
            if response.dragged() {
                self.pan += response.drag_delta();
            }
            return;
        }
        if response.drag_started() {
            // Judge by where the press began: by now the pointer has moved.
            let origin = ui.input(|i| i.pointer.press_origin());
            self.dragging_divider = origin.is_some_and(near);
        }
        if response.dragged() {
            if self.dragging_divider {
                if let Some(p) = response.interact_pointer_pos() {
                    self.split = ((p.x - image_rect.left()) / image_rect.width()).clamp(0.0, 1.0);
                }
            } else {
                self.pan += response.drag_delta();
            }
        }
        if response
            .interact_pointer_pos()
            .or(response.hover_pos())
            .is_some_and(near)
        {
            ui.ctx().set_cursor_icon(egui::CursorIcon::ResizeHorizontal);
        }
    }

    /// The finished export (crop, canvas, shadow) on its own GPU layer (the
    /// photo-framed one stays for painting); `None` if it is not on the GPU.
    fn finished_layer(
        &self,
        render_state: &egui_wgpu::RenderState,
        item: &Item,
        (colours, alpha): &(Arc<RgbaImage>, Arc<image::GrayImage>),
        pixels_per_point: f32,
    ) -> Option<CanvasCallback> {
        let id = LayerKey::finished(item.id);
        let synced = sync_layer(
            render_state,
            id,
            colours,
            Some(alpha),
            item.mask_version,
            None,
        );
        // The finished layer has no background texture of its own.
        let background = match Fill::from(&self.background) {
            Fill::Texture => Fill::Transparent,
            other => other,
        };
        synced.then_some(CanvasCallback {
            id,
            background,
            split: 0.0,
            has_mask: true,
            pixels_per_point,
        })
    }

    /// The photo-framed layer through the WGSL compositor; `None` when it
    /// could not be put on the GPU (the CPU path then draws it).
    fn photo_layer(
        &self,
        render_state: &egui_wgpu::RenderState,
        item: &Item,
        preview_background: &Option<(u64, Arc<RgbaImage>)>,
        pixels_per_point: f32,
    ) -> Option<CanvasCallback> {
        let preview = item.preview.as_deref()?;
        let background = preview_background
            .as_ref()
            .map(|(k, img)| (*k, img.as_ref()));
        let id = LayerKey::photo(item.id);
        let mask = item.display_mask().map(|m| m.as_ref());
        let synced = sync_layer(
            render_state,
            id,
            preview,
            mask,
            item.mask_version,
            background,
        );
        synced.then_some(CanvasCallback {
            id,
            background: Fill::from(&self.background),
            split: self.split,
            has_mask: item.preview_mask.is_some(),
            pixels_per_point,
        })
    }

    /// Brush painting: the stroke grows in image pixels on `item`, and each
    /// new segment is painted into the displayed mask at once (strokes are
    /// min/max stamps, so painting segment by segment equals painting the
    /// whole stroke).
    fn paint(
        &mut self,
        ui: &egui::Ui,
        response: &egui::Response,
        image_rect: Rect,
        preview_size: Vec2,
        item: &mut Item,
    ) -> CanvasEvent {
        let (Some(mode), Some(scale)) = (self.brush.mode, item.preview_scale()) else {
            return CanvasEvent::None;
        };
        if item.provisional {
            // Strokes go on the full model's mask, not on the preview.
            return CanvasEvent::None;
        }
        let to_image = |p: Pos2| {
            let preview = (p - image_rect.min) / image_rect.size() * preview_size;
            [preview.x / scale, preview.y / scale]
        };
        if response.drag_started() || response.clicked() {
            let radius_points = self.brush.radius;
            // Screen points → image pixels at the current zoom.
            let radius = radius_points / image_rect.width() * preview_size.x / scale;
            item.active_stroke = Some(crate::engine::refine::Stroke {
                mode,
                radius,
                hardness: self.brush.hardness,
                points: Vec::new(),
            });
        }
        if let (Some(stroke), Some(p)) =
            (item.active_stroke.as_mut(), response.interact_pointer_pos())
        {
            let point = to_image(p);
            if stroke.points.last() != Some(&point) {
                stroke.points.push(point);
                let n = stroke.points.len();
                let segment = crate::engine::refine::Stroke {
                    points: stroke.points[n.saturating_sub(2)..].to_vec(),
                    ..stroke.clone()
                };
                // Taken, not cloned: the edited mask is then copied only once.
                let base = item
                    .edited_preview_mask
                    .take()
                    .or_else(|| item.preview_mask.clone());
                if let Some(mut mask) = base {
                    super::editor::scaled_stroke(&segment, scale)
                        .apply(std::sync::Arc::make_mut(&mut mask));
                    item.edited_preview_mask = Some(mask);
                    item.mask_version += 1;
                    ui.ctx().request_repaint();
                }
            }
        }
        if response.drag_stopped() || response.clicked() {
            return CanvasEvent::StrokeFinished;
        }
        CanvasEvent::None
    }
}

impl CanvasView {
    /// The picture/blur background at preview size, cached on the item.
    fn preview_background(&self, item: &mut Item) -> Option<(u64, Arc<RgbaImage>)> {
        let key = self.background.texture_key()?;
        if item
            .preview_background
            .as_ref()
            .is_none_or(|(k, _)| *k != key)
        {
            let preview = item.preview.as_deref()?;
            let (key, pixels) = self.background.pixels_for(preview)?;
            item.preview_background = Some((key, Arc::new(pixels)));
        }
        item.preview_background.clone()
    }

    /// The canvas without a GPU compositor: CPU-composited textures.
    fn paint_cpu(
        &self,
        ctx: &egui::Context,
        painter: &egui::Painter,
        image_rect: Rect,
        divider_x: f32,
        item: &mut Item,
        preview_background: Option<(u64, Arc<RgbaImage>)>,
    ) {
        if textures_for(ctx, item).is_none() {
            return;
        }
        let Some(textures) = item.textures.as_mut() else {
            return;
        };
        let uv = Rect::from_min_max(Pos2::ZERO, pos2(1.0, 1.0));
        let left = Rect::from_min_max(image_rect.min, pos2(divider_x, image_rect.max.y));
        paint_checkerboard(painter, left);
        painter.image(
            textures.original.id(),
            left,
            Rect::from_min_max(uv.min, pos2(self.split, 1.0)),
            Color32::WHITE,
        );
        let right = Rect::from_min_max(pos2(divider_x, image_rect.min.y), image_rect.max);
        let right_uv = Rect::from_min_max(pos2(self.split, 0.0), uv.max);
        match (&self.background, preview_background) {
            (Background::Colour([r, g, b]), _) => {
                painter.rect_filled(right, 0.0, Color32::from_rgb(*r, *g, *b));
            }
            (_, Some((key, pixels))) => {
                if textures.background.as_ref().is_none_or(|(k, _)| *k != key) {
                    let size = [pixels.width() as usize, pixels.height() as usize];
                    let texture = ctx.load_texture(
                        format!("background-{}", item.id),
                        ColorImage::from_rgba_unmultiplied(size, pixels.as_raw()),
                        TextureOptions::LINEAR,
                    );
                    textures.background = Some((key, texture));
                }
                if let Some((_, texture)) = &textures.background {
                    painter.image(texture.id(), right, right_uv, Color32::WHITE);
                }
            }
            _ => paint_checkerboard(painter, right),
        }
        match &textures.cutout {
            Some(cutout) => painter.image(cutout.id(), right, right_uv, Color32::WHITE),
            // Still working: the original, faded.
            None => painter.image(
                textures.original.id(),
                right,
                right_uv,
                Color32::from_white_alpha(90),
            ),
        };
    }
}

/// Fit and 100 %, the image's name and where it stands.
fn toolbar(ui: &mut egui::Ui, view: &mut CanvasView, item: &Item) {
    ui.horizontal(|ui| {
        if ui
            .selectable_label(view.zoom.is_none(), "Fit")
            .on_hover_text("Fit to window")
            .clicked()
        {
            view.fit();
        }
        if ui
            .selectable_label(view.zoom == Some(1.0), "100 %")
            .on_hover_text("One image pixel per screen pixel")
            .clicked()
        {
            view.zoom = Some(1.0 / ui.ctx().pixels_per_point());
        }
        ui.separator();
        ui.label(&item.name);
        match &item.status {
            Status::Queued => {
                ui.weak("waiting…");
            }
            Status::Removing => {
                super::busy::busy_mark(ui, "removing background");
                if item.provisional {
                    ui.label(egui::RichText::new(PREVIEW_MARK).strong())
                        .on_hover_text(
                            "A quick cut-out from U²-Net portable; the full model's result \
                             replaces it in a moment",
                        );
                } else {
                    ui.weak("removing background…");
                }
            }
            Status::Failed(reason) => {
                // Truncated: a long reason must not widen the toolbar and
                // push the picture off the canvas (the list shows it whole).
                let text = egui::RichText::new(reason).color(ui.visuals().error_fg_color);
                ui.add(egui::Label::new(text).truncate())
                    .on_hover_text(reason);
            }
            Status::WaitingForModel => {
                ui.weak("waiting for the model");
            }
            Status::Done | Status::Cancelled => {}
        }
        if item.preview_pending {
            super::busy::busy_mark(ui, "updating preview");
            ui.weak("updating preview…");
        }
    });
}

/// The compare divider and its handle.
fn draw_divider(painter: &egui::Painter, image_rect: Rect, divider_x: f32) {
    painter.line_segment(
        [
            pos2(divider_x, image_rect.top()),
            pos2(divider_x, image_rect.bottom()),
        ],
        Stroke::new(2.0, Color32::WHITE),
    );
    let handle = pos2(divider_x, image_rect.center().y);
    painter.circle(
        handle,
        DIVIDER_HANDLE_RADIUS,
        DIVIDER_HANDLE_BLUE,
        Stroke::new(2.0, Color32::WHITE),
    );
}

/// Builds (once) the display textures from the worker's preview pixels.
fn textures_for<'a>(ctx: &egui::Context, item: &'a mut Item) -> Option<&'a Textures> {
    let needs_cutout = item.display_mask().is_some()
        && item
            .textures
            .as_ref()
            .is_some_and(|t| t.cutout.is_none() || t.mask_version != item.mask_version);
    if item.textures.is_none() || needs_cutout {
        let preview = item.preview.as_ref()?;
        let size = [preview.width() as usize, preview.height() as usize];
        let original = ColorImage::from_rgba_unmultiplied(size, preview.as_raw());
        let cutout = item.display_mask().map(|mask| {
            let rgba = crate::composite::cpu::cutout(preview, mask);
            ctx.load_texture(
                format!("cutout-{}", item.id),
                ColorImage::from_rgba_unmultiplied(size, rgba.as_raw()),
                TextureOptions::LINEAR,
            )
        });
        item.textures = Some(Textures {
            original: ctx.load_texture(
                format!("original-{}", item.id),
                original,
                TextureOptions::LINEAR,
            ),
            cutout,
            background: None,
            size: vec2(size[0] as f32, size[1] as f32),
            mask_version: item.mask_version,
        });
    }
    item.textures.as_ref()
}

fn paint_checkerboard(painter: &egui::Painter, rect: Rect) {
    const CELL: f32 = checkerboard::CELL_POINTS;
    painter.rect_filled(rect, 0.0, Color32::from_gray(checkerboard::LIGHT));
    let clip = rect.intersect(painter.clip_rect());
    if clip.width() <= 0.0 || clip.height() <= 0.0 {
        return;
    }
    let first_x = ((clip.left() - rect.left()) / CELL).floor() as i32;
    let first_y = ((clip.top() - rect.top()) / CELL).floor() as i32;
    let cols = (clip.width() / CELL).ceil() as i32 + 1;
    let rows = (clip.height() / CELL).ceil() as i32 + 1;
    for j in first_y..first_y + rows {
        for i in first_x..first_x + cols {
            if (i + j) % 2 == 0 {
                continue;
            }
            let min = rect.min + vec2(i as f32 * CELL, j as f32 * CELL);
            let cell = Rect::from_min_size(min, Vec2::splat(CELL)).intersect(clip);
            if cell.width() > 0.0 && cell.height() > 0.0 {
                painter.rect_filled(cell, 0.0, Color32::from_gray(checkerboard::DARK));
            }
        }
    }
}

/// What a designer sees before opening anything.
pub fn empty_state(ui: &mut egui::Ui, hovering_files: bool) {
    ui.centered_and_justified(|ui| {
        let text = if hovering_files {
            "Drop to remove the background"
        } else {
            "Drop images here, paste (Ctrl+V), or open… (Ctrl+O)"
        };
        ui.label(egui::RichText::new(text).size(20.0).weak());
    });
}
