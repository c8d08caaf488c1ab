//! The finishing step between the model's mask and the encoder: edge work,
//! brush strokes, decontamination, crop, canvas and shadow. One function
//! for the app's export, batch and the CLI, so all three give the same
//! pixels.

use std::sync::Arc;

use image::{GrayImage, Luma, RgbaImage};
use serde::{Deserialize, Serialize};

use super::layout::{self, LayoutSettings};
use super::refine::{self, EdgeSettings, Stroke};
use crate::composite::cpu::cutout;

/// Everything the user set beyond the model's mask (strokes are per image
/// and passed apart).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct FinishSettings {
    pub edges: EdgeSettings,
    pub layout: LayoutSettings,
}

impl FinishSettings {
    pub fn is_identity(&self) -> bool {
        self.edges.is_identity() && self.layout.is_identity()
    }

    /// The settings as they apply to `format`: a mask file has no colours,
    /// so decontaminating them would be wasted work.
    pub fn for_format(mut self, format: super::encode::OutputFormat) -> Self {
        if format == super::encode::OutputFormat::Mask {
            self.edges.despill = false;
        }
        self
    }
}

/// The picture to encode, as the encoder takes it: colours (alpha 255
/// unless nothing was changed) and the alpha mask, both at output size.
/// With nothing set, this is the photo and the model's mask untouched. A
/// crop or canvas over the export limit is refused before it is allocated.
pub fn render(
    image: &RgbaImage,
    model_mask: &GrayImage,
    strokes: &[Stroke],
    settings: &FinishSettings,
) -> Result<(RgbaImage, GrayImage), layout::TooLarge> {
    if settings.is_identity() && strokes.is_empty() {
        return Ok((image.clone(), model_mask.clone()));
    }
    let mask = refine::finish_mask(model_mask, strokes, &settings.edges);
    render_final(image, &mask, settings)
}

/// The user's final mask at the photo's size: the model's mask with the
/// strokes and edge settings applied (shared, not copied, when there are
/// none). The app renders its exports from it and a training sample holds
/// it, so it is made once per export.
pub fn final_mask(
    model_mask: &Arc<GrayImage>,
    strokes: &[Stroke],
    edges: &EdgeSettings,
) -> Arc<GrayImage> {
    if strokes.is_empty() && !edges.changes_mask() {
        model_mask.clone()
    } else {
        Arc::new(refine::finish_mask(model_mask, strokes, edges))
    }
}

/// [`render`] from a mask [`final_mask`] already made: colour-spill
/// removal, crop, canvas and shadow.
pub fn render_final(
    image: &RgbaImage,
    final_mask: &GrayImage,
    settings: &FinishSettings,
) -> Result<(RgbaImage, GrayImage), layout::TooLarge> {
    if settings.is_identity() {
        return Ok((image.clone(), final_mask.clone()));
    }
    let colours = if settings.edges.despill {
        refine::decontaminate(image, final_mask)
    } else {
        image.clone()
    };
    let layer = cutout(&colours, final_mask);
    let framed = if settings.layout.is_identity() {
        layer
    } else {
        let alpha = alpha_of(&layer);
        let placement = layout::place(&alpha, &settings.layout)?;
        layout::render(&layer, &placement, settings.layout.shadow.as_ref())
    };
    Ok(split(framed))
}

fn alpha_of(img: &RgbaImage) -> GrayImage {
    GrayImage::from_fn(img.width(), img.height(), |x, y| {
        Luma([img.get_pixel(x, y)[3]])
    })
}

/// Straight RGBA → (colours at full alpha, alpha), the encoder's inputs.
fn split(mut rgba: RgbaImage) -> (RgbaImage, GrayImage) {
    let alpha = alpha_of(&rgba);
    for px in rgba.pixels_mut() {
        px[3] = 255;
    }
    (rgba, alpha)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::layout::{Canvas, Margin};
    use crate::engine::refine::BrushMode;
    use image::Rgba;

    #[test]
    fn nothing_set_is_the_photo_and_the_mask_untouched() {
        let image = RgbaImage::from_pixel(4, 3, Rgba([1, 2, 3, 100]));
        let mask = GrayImage::from_pixel(4, 3, Luma([77]));
        let mut nothing = FinishSettings::default();
        nothing.edges.despill = false;
        assert!(nothing.is_identity());
        let (i, m) = render(&image, &mask, &[], &nothing).unwrap();
        assert_eq!((i, m), (image, mask));
    }

    #[test]
    fn source_alpha_and_strokes_end_up_in_the_mask() {
        let image = RgbaImage::from_pixel(20, 10, Rgba([9, 9, 9, 128]));
        let mask = GrayImage::new(20, 10);
        let stroke = Stroke {
            mode: BrushMode::Restore,
            radius: 3.0,
            hardness: 1.0,
            points: vec![[5.0, 5.0]],
        };
        let (i, m) = render(&image, &mask, &[stroke], &FinishSettings::default()).unwrap();
        assert_eq!(m.get_pixel(5, 5)[0], 128, "restored × source alpha");
        assert_eq!(m.get_pixel(15, 5)[0], 0);
        assert_eq!(i.get_pixel(5, 5), &Rgba([9, 9, 9, 255]));
    }

    #[test]
    fn a_square_canvas_changes_the_output_size() {
        let image = RgbaImage::from_pixel(60, 40, Rgba([50, 60, 70, 255]));
        let mask = GrayImage::from_fn(60, 40, |x, y| {
            Luma([if (10..30).contains(&x) && (5..35).contains(&y) {
                255
            } else {
                0
            }])
        });
        let settings = FinishSettings {
            layout: LayoutSettings {
                crop_margin: Some(Margin::Pixels(2)),
                canvas: Canvas::Ratio(1, 1),
                subject_fill: None,
                max_side: None,
                shadow: None,
            },
            ..Default::default()
        };
        let (i, m) = render(&image, &mask, &[], &settings).unwrap();
        assert_eq!(i.dimensions(), (34, 34));
        assert_eq!(m.dimensions(), (34, 34));
    }
}
