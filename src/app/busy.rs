//! A "working" mark that moves a few times a second instead of every frame.
//! egui's spinner asks for the next frame at once, so while anything is
//! working the window repaints flat out; with a software renderer (no GPU)
//! those frames take the very cores the model is running on.

use std::time::Duration;

/// Time between two steps of the mark: four frames a second.
const STEP: Duration = Duration::from_millis(250);
const DOTS: usize = 8;

/// Draws the mark, announced to screen readers as `label`.
pub fn busy_mark(ui: &mut egui::Ui, label: &str) -> egui::Response {
    let side = ui.spacing().interact_size.y;
    let (rect, response) = ui.allocate_exact_size(egui::vec2(side, side), egui::Sense::hover());
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::ProgressIndicator, true, label));
    if ui.is_rect_visible(rect) {
        let now = ui.input(|i| i.time);
        let lit = (now / STEP.as_secs_f64()) as usize % DOTS;
        let color = ui.visuals().strong_text_color();
        let radius = rect.height() * 0.35;
        for dot in 0..DOTS {
            let angle = dot as f32 / DOTS as f32 * std::f32::consts::TAU;
            let center = rect.center() + radius * egui::vec2(angle.cos(), angle.sin());
            // The lit dot and a fading tail behind it.
            let behind = (lit + DOTS - dot) % DOTS;
            let alpha = 1.0 - behind as f32 / DOTS as f32;
            ui.painter()
                .circle_filled(center, rect.height() * 0.08, color.gamma_multiply(alpha));
        }
        ui.ctx().request_repaint_after(STEP);
    }
    response
}
