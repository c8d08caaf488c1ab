//! The editor's controls: the erase/restore brush, edge settings, crop,
//! canvas and shadow. The pixel work is the engine's (`engine::refine`,
//! `engine::finish`); this module holds widget state and the preview maths.

use image::{GrayImage, RgbaImage};

use crate::engine::encode::OutputFormat;
use crate::engine::finish::FinishSettings;
use crate::engine::layout::{Canvas, MIN_MAX_SIDE, MIN_SUBJECT_FILL, Margin, Shadow};
use crate::engine::refine::{self, BrushMode, EdgeSettings, Stroke};
use crate::limits::MAX_CANVAS_SIDE;
use crate::prefs::SavedBrush;

/// The brush as set in the inspector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BrushTool {
    /// `None`: dragging the canvas pans and moves the divider.
    pub mode: Option<BrushMode>,
    /// Radius in screen points (converted to image pixels per stroke).
    pub radius: f32,
    pub hardness: f32,
}

impl BrushTool {
    /// Off → Erase → Restore → Off (the B key).
    pub fn cycle_mode(&mut self) {
        self.mode = match self.mode {
            None => Some(BrushMode::Erase),
            Some(BrushMode::Erase) => Some(BrushMode::Restore),
            Some(BrushMode::Restore) => None,
        };
    }
}

impl Default for BrushTool {
    fn default() -> Self {
        Self::from(SavedBrush::default())
    }
}

impl From<SavedBrush> for BrushTool {
    fn from(saved: SavedBrush) -> Self {
        Self {
            mode: None,
            radius: saved.radius,
            hardness: saved.hardness,
        }
    }
}

impl BrushTool {
    /// As kept for the next start (size and hardness, not the mode).
    pub fn saved(&self) -> SavedBrush {
        SavedBrush {
            radius: self.radius,
            hardness: self.hardness,
        }
    }
}

/// What the editor asks of the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditAction {
    None,
    Undo,
    Redo,
    Reset,
    /// Edge, crop, canvas or shadow settings changed.
    SettingsChanged,
}

/// The export format, as a drop-down (inspector and Batch page).
pub fn format_choice(ui: &mut egui::Ui, label: &str, format: &mut OutputFormat) {
    egui::ComboBox::from_label(label)
        .selected_text(format.to_string())
        .show_ui(ui, |ui| {
            for choice in [
                OutputFormat::Png,
                OutputFormat::Webp,
                OutputFormat::Jpeg,
                OutputFormat::Mask,
            ] {
                ui.selectable_value(format, choice, choice.to_string());
            }
        });
}

/// The brush and edge controls; `can_undo`/`can_redo` enable the buttons.
pub fn editor_ui(
    ui: &mut egui::Ui,
    brush: &mut BrushTool,
    finish: &mut FinishSettings,
    can_undo: bool,
    can_redo: bool,
) -> EditAction {
    let mut action = EditAction::None;
    ui.label("Brush");
    ui.horizontal(|ui| {
        for (mode, label, hint) in [
            (None, "Off", "Drag to pan and compare"),
            (Some(BrushMode::Erase), "Erase", "Paint transparency"),
            (Some(BrushMode::Restore), "Restore", "Paint the photo back"),
        ] {
            if ui
                .selectable_label(brush.mode == mode, label)
                .on_hover_text(hint)
                .clicked()
            {
                brush.mode = mode;
            }
        }
    });
    ui.add(egui::Slider::new(&mut brush.radius, SavedBrush::RADIUS_RANGE).text("size"));
    ui.add(egui::Slider::new(&mut brush.hardness, SavedBrush::HARDNESS_RANGE).text("hardness"));
    ui.horizontal(|ui| {
        if ui
            .add_enabled(can_undo, egui::Button::new("Undo"))
            .on_hover_text("Ctrl/Cmd+Z")
            .clicked()
        {
            action = EditAction::Undo;
        }
        if ui
            .add_enabled(can_redo, egui::Button::new("Redo"))
            .on_hover_text("Shift+Ctrl/Cmd+Z")
            .clicked()
        {
            action = EditAction::Redo;
        }
        if ui
            .add_enabled(can_undo || can_redo, egui::Button::new("Reset"))
            .on_hover_text("Back to the model's mask")
            .clicked()
        {
            action = EditAction::Reset;
        }
    });

    ui.add_space(6.0);
    ui.label("Edges");
    let before = *finish;
    let edges = &mut finish.edges;
    ui.add(egui::Slider::new(&mut edges.shift, -20..=20).text("shift px"));
    ui.add(egui::Slider::new(&mut edges.feather, 0.0..=40.0).text("feather px"));
    ui.checkbox(&mut edges.despill, "Remove colour spill")
        .on_hover_text("Edge colours without the old background's tint (applied on export)");

    ui.add_space(6.0);
    ui.label("Layout (applied on export)");
    let layout = &mut finish.layout;
    let mut crop = layout.crop_margin.is_some();
    ui.horizontal(|ui| {
        ui.checkbox(&mut crop, "Crop to subject");
        if crop {
            let mut percent = match layout.crop_margin {
                Some(Margin::Percent(p)) => p,
                _ => 5.0,
            };
            ui.add(
                egui::DragValue::new(&mut percent)
                    .range(0.0..=100.0)
                    .suffix(" %"),
            );
            layout.crop_margin = Some(Margin::Percent(percent));
        } else {
            layout.crop_margin = None;
        }
    });
    egui::ComboBox::from_label("Canvas")
        .selected_text(layout.canvas.to_string())
        .show_ui(ui, |ui| {
            for (canvas, label) in [
                (Canvas::Original, "original"),
                (Canvas::Ratio(1, 1), "1:1 square"),
                (Canvas::Ratio(4, 5), "4:5"),
                (Canvas::Size(2000, 2000), "2000×2000"),
            ] {
                ui.selectable_value(&mut layout.canvas, canvas, label);
            }
        });
    // Subject fill and maximum size share a row, so the inspector stays
    // short enough that the canvas choice is in view at 800 px.
    ui.horizontal(|ui| {
        let mut fill = layout.subject_fill.is_some();
        ui.checkbox(&mut fill, "Fill")
            .on_hover_text("The subject's longer extent as a share of the canvas, centred (replaces the crop margin)");
        if fill {
            let mut percent = layout.subject_fill.unwrap_or(85.0);
            ui.add(
                egui::DragValue::new(&mut percent)
                    .range(MIN_SUBJECT_FILL..=100.0)
                    .suffix(" %"),
            );
            layout.subject_fill = Some(percent);
        } else {
            layout.subject_fill = None;
        }
        let mut capped = layout.max_side.is_some();
        ui.checkbox(&mut capped, "Max").on_hover_text(
            "Scale the export down so that its longest side is at most this many pixels",
        );
        if capped {
            let mut side = layout.max_side.unwrap_or(2000);
            ui.add(
                egui::DragValue::new(&mut side)
                    .range(MIN_MAX_SIDE..=MAX_CANVAS_SIDE)
                    .suffix(" px"),
            );
            layout.max_side = Some(side);
        } else {
            layout.max_side = None;
        }
    });
    let mut shadow = layout.shadow.is_some();
    ui.checkbox(&mut shadow, "Drop shadow");
    if shadow {
        let s = layout.shadow.get_or_insert_with(Shadow::default);
        ui.add(egui::Slider::new(&mut s.offset[1], -100..=100).text("offset px"));
        ui.add(egui::Slider::new(&mut s.blur, 0.0..=100.0).text("blur px"));
        ui.add(egui::Slider::new(&mut s.opacity, 0.0..=1.0).text("opacity"));
    } else {
        layout.shadow = None;
    }
    if *finish != before && action == EditAction::None {
        action = EditAction::SettingsChanged;
    }
    action
}

/// `stroke` in preview pixels (`scale` = preview width / image width).
pub fn scaled_stroke(stroke: &Stroke, scale: f32) -> Stroke {
    Stroke {
        mode: stroke.mode,
        radius: stroke.radius * scale,
        hardness: stroke.hardness,
        points: stroke
            .points
            .iter()
            .map(|[x, y]| [x * scale, y * scale])
            .collect(),
    }
}

/// The preview mask with the strokes and edge settings, at preview size
/// (distances scaled). Decontamination and layout are export-only.
pub fn preview_mask(
    model_preview_mask: &GrayImage,
    strokes: &[Stroke],
    edges: &EdgeSettings,
    scale: f32,
) -> GrayImage {
    let strokes: Vec<Stroke> = strokes.iter().map(|s| scaled_stroke(s, scale)).collect();
    let edges = EdgeSettings {
        shift: (edges.shift as f32 * scale).round() as i32,
        feather: edges.feather * scale,
        despill: false,
    };
    refine::finish_mask(model_preview_mask, &strokes, &edges)
}

/// `settings` with distances in preview pixels.
pub fn scaled_settings(settings: &FinishSettings, scale: f32) -> FinishSettings {
    let mut out = *settings;
    out.edges.shift = (settings.edges.shift as f32 * scale).round() as i32;
    out.edges.feather = settings.edges.feather * scale;
    if let Some(Margin::Pixels(px)) = settings.layout.crop_margin {
        out.layout.crop_margin = Some(Margin::Pixels((px as f32 * scale).round() as u32));
    }
    if let Canvas::Size(w, h) = settings.layout.canvas {
        out.layout.canvas = Canvas::Size(
            ((w as f32 * scale).round() as u32).max(1),
            ((h as f32 * scale).round() as u32).max(1),
        );
    }
    if let Some(side) = settings.layout.max_side {
        out.layout.max_side = Some(((side as f32 * scale).round() as u32).max(1));
    }
    if let Some(shadow) = out.layout.shadow.as_mut() {
        shadow.offset = shadow.offset.map(|v| (v as f32 * scale).round() as i32);
        shadow.blur *= scale;
    }
    out
}

/// Whether the export is framed differently from the photo: then the
/// canvas shows the finished preview. Colour-spill removal alone (on by
/// default) keeps the live before/after view; it changes only the colours
/// of edge pixels and is applied on export.
pub fn needs_finished_preview(settings: &FinishSettings) -> bool {
    !settings.layout.is_identity()
}

/// The export as it will look, at preview scale (colours and alpha).
pub fn finished_preview(
    preview: &RgbaImage,
    model_preview_mask: &GrayImage,
    strokes: &[Stroke],
    settings: &FinishSettings,
    scale: f32,
) -> Result<(RgbaImage, GrayImage), crate::engine::layout::TooLarge> {
    let strokes: Vec<Stroke> = strokes.iter().map(|s| scaled_stroke(s, scale)).collect();
    crate::engine::finish::render(
        preview,
        model_preview_mask,
        &strokes,
        &scaled_settings(settings, scale),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Luma;

    #[test]
    fn a_preview_of_strokes_at_scale_one_is_the_export_mask() {
        let mask = GrayImage::from_pixel(40, 30, Luma([0]));
        let stroke = Stroke {
            mode: BrushMode::Restore,
            radius: 5.0,
            hardness: 0.5,
            points: vec![[10.0, 10.0], [30.0, 20.0]],
        };
        let edges = EdgeSettings::default();
        let preview_mask = preview_mask(&mask, std::slice::from_ref(&stroke), &edges, 1.0);
        let full = refine::finish_mask(&mask, &[stroke], &edges);
        assert_eq!(preview_mask, full);
    }
}
