//! The open images and what has become of each.

use std::path::PathBuf;
use std::sync::Arc;

use egui::{TextureHandle, Vec2};
use image::{GrayImage, RgbaImage};

use crate::app::worker::{IccProfile, ImageId};
use crate::engine::refine::Stroke;
use crate::engine::review::Review;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Queued,
    Removing,
    Done,
    Failed(String),
    /// Decoded; processed as soon as the model is installed.
    WaitingForModel,
    Cancelled,
}

impl Status {
    pub fn label(&self) -> &str {
        match self {
            Status::Queued => "queued",
            Status::Removing => "removing…",
            Status::Done => "done",
            Status::Failed(_) => "failed",
            Status::WaitingForModel => "waiting for the model",
            Status::Cancelled => "cancelled",
        }
    }
}

/// Display textures of one item.
pub struct Textures {
    pub original: TextureHandle,
    pub cutout: Option<TextureHandle>,
    /// The picture or blur background at preview size (CPU fallback only).
    pub background: Option<(u64, TextureHandle)>,
    pub size: Vec2,
    /// The `Item::mask_version` the cut-out texture shows.
    pub mask_version: u64,
}

pub struct Item {
    pub id: ImageId,
    pub name: String,
    pub path: Option<PathBuf>,
    pub status: Status,
    pub original: Option<Arc<RgbaImage>>,
    pub mask: Option<Arc<GrayImage>>,
    pub preview: Option<Arc<RgbaImage>>,
    pub preview_mask: Option<Arc<GrayImage>>,
    /// `preview_mask` is the preview model's quick cut-out, shown until the
    /// full model's result replaces it (not editable, not exportable).
    pub provisional: bool,
    /// How sure the model was of `mask` (none for a mask kept from an
    /// earlier session); low ones are marked in the list.
    pub review: Option<Review>,
    /// The photo's embedded colour profile, written into its exports.
    pub icc_profile: Option<IccProfile>,
    /// The picture/blur background at preview size, with its key.
    pub preview_background: Option<(u64, Arc<RgbaImage>)>,
    /// Display textures, made on first draw from the pixels above.
    pub textures: Option<Textures>,
    /// Brush strokes on the mask, oldest first (image pixels); undone
    /// strokes wait in `redo` until a new stroke clears them.
    pub strokes: Vec<Stroke>,
    pub redo: Vec<Stroke>,
    /// The stroke being painted now.
    pub active_stroke: Option<Stroke>,
    /// The preview mask with strokes and edge settings, when any are set.
    pub edited_preview_mask: Option<Arc<GrayImage>>,
    /// Counts changes of the displayed mask, so textures follow them.
    pub mask_version: u64,
    /// The export as it will look (decontaminated colours, crop, canvas,
    /// shadow) at preview scale: colours and alpha. Shown when set and the
    /// brush is off.
    pub finished_preview: Option<(Arc<RgbaImage>, Arc<GrayImage>)>,
    /// A preview recompute is running (shown as working).
    pub preview_pending: bool,
    /// Strokes or settings changed while it ran: recompute when it returns.
    pub preview_dirty: bool,
}

impl Item {
    /// The mask shown on the canvas.
    pub fn display_mask(&self) -> Option<&Arc<GrayImage>> {
        self.edited_preview_mask
            .as_ref()
            .or(self.preview_mask.as_ref())
    }

    /// Preview pixels per image pixel.
    pub fn preview_scale(&self) -> Option<f32> {
        let (o, p) = (self.original.as_ref()?, self.preview.as_ref()?);
        Some(p.width() as f32 / o.width() as f32)
    }
}

#[derive(Default)]
pub struct Workspace {
    pub items: Vec<Item>,
    pub selected: Option<usize>,
    next_id: ImageId,
}

impl Workspace {
    pub fn add(&mut self, name: String, path: Option<PathBuf>) -> ImageId {
        self.next_id += 1;
        let id = self.next_id;
        self.items.push(Item {
            id,
            name,
            path,
            status: Status::Queued,
            original: None,
            mask: None,
            preview: None,
            preview_mask: None,
            provisional: false,
            review: None,
            icc_profile: None,
            preview_background: None,
            textures: None,
            strokes: Vec::new(),
            redo: Vec::new(),
            active_stroke: None,
            edited_preview_mask: None,
            mask_version: 0,
            finished_preview: None,
            preview_pending: false,
            preview_dirty: false,
        });
        if self.selected.is_none() {
            self.selected = Some(self.items.len() - 1);
        }
        id
    }

    pub fn get_mut(&mut self, id: ImageId) -> Option<&mut Item> {
        self.items.iter_mut().find(|i| i.id == id)
    }

    /// Selects the next (`step` > 0) or previous image, stopping at the ends.
    pub fn select_step(&mut self, step: isize) {
        if self.items.is_empty() {
            return;
        }
        let last = self.items.len() as isize - 1;
        let at = self.selected.map_or(0, |i| i as isize + step);
        self.selected = Some(at.clamp(0, last) as usize);
    }

    pub fn selected(&self) -> Option<&Item> {
        self.selected.and_then(|i| self.items.get(i))
    }

    pub fn selected_mut(&mut self) -> Option<&mut Item> {
        self.selected.and_then(|i| self.items.get_mut(i))
    }

    pub fn set_status(&mut self, id: ImageId, status: Status) {
        if let Some(item) = self.get_mut(id) {
            // A finished or failed image keeps its outcome.
            if matches!(
                item.status,
                Status::Queued | Status::Removing | Status::WaitingForModel
            ) {
                item.status = status;
            }
        }
    }

    pub fn decoded(
        &mut self,
        id: ImageId,
        image: Arc<RgbaImage>,
        preview: Arc<RgbaImage>,
        icc_profile: Option<IccProfile>,
    ) {
        if let Some(item) = self.get_mut(id) {
            item.original = Some(image);
            item.icc_profile = icc_profile;
            item.preview = Some(preview);
            item.preview_background = None;
            item.textures = None;
        }
    }

    /// The preview model's cut-out, while the full model still runs.
    pub fn provisional(&mut self, id: ImageId, preview_mask: Arc<GrayImage>) {
        if let Some(item) = self.get_mut(id)
            && matches!(item.status, Status::Queued | Status::Removing)
        {
            item.preview_mask = Some(preview_mask);
            item.provisional = true;
            item.mask_version += 1;
        }
    }

    pub fn finished(
        &mut self,
        id: ImageId,
        mask: Arc<GrayImage>,
        preview_mask: Arc<GrayImage>,
        review: Option<Review>,
    ) {
        if let Some(item) = self.get_mut(id) {
            item.mask = Some(mask);
            item.review = review;
            item.preview_mask = Some(preview_mask);
            item.provisional = false;
            item.edited_preview_mask = None;
            item.finished_preview = None;
            item.mask_version += 1;
            item.status = Status::Done;
            item.textures = None;
        }
    }

    pub fn fail(&mut self, id: ImageId, reason: String) {
        if let Some(item) = self.get_mut(id) {
            item.status = Status::Failed(reason);
        }
    }

    /// How many images are marked for review.
    pub fn to_review(&self) -> usize {
        self.items
            .iter()
            .filter(|i| i.review.as_ref().is_some_and(Review::needs_review))
            .count()
    }

    /// The list of images; returns the id whose Cancel was clicked.
    pub fn list_ui(&mut self, ui: &mut egui::Ui) -> Option<ImageId> {
        let mut cancel = None;
        egui::ScrollArea::vertical().show(ui, |ui| {
            for (index, item) in self.items.iter().enumerate() {
                ui.horizontal(|ui| {
                    let selected = self.selected == Some(index);
                    if ui.selectable_label(selected, &item.name).clicked() {
                        self.selected = Some(index);
                    }
                    let status = ui.weak(item.status.label());
                    if let Some(review) = item.review.as_ref().filter(|r| r.needs_review()) {
                        ui.colored_label(ui.visuals().warn_fg_color, "needs review")
                            .on_hover_text(review_hover(review));
                    }
                    if let Status::Failed(reason) = &item.status {
                        status.on_hover_text(reason);
                    }
                    if matches!(item.status, Status::Queued | Status::Removing)
                        && ui.small_button("Cancel").clicked()
                    {
                        cancel = Some(item.id);
                    }
                });
                if let Status::Failed(reason) = &item.status {
                    ui.colored_label(ui.visuals().error_fg_color, reason);
                }
            }
        });
        cancel
    }
}

/// "Confidence 12 of 100: uncertain edge; in pieces. Worth a look before export."
pub fn review_hover(review: &Review) -> String {
    let reasons = review.reasons_text();
    format!(
        "Confidence {} of 100{}. Worth a look before export.",
        review.score,
        if reasons.is_empty() {
            String::new()
        } else {
            format!(": {reasons}")
        }
    )
}
