//! Compositing in one place: what lies under the cut-out ([`Background`]),
//! the CPU reference ([`cpu`]), the WGSL compositor that draws the canvas and
//! renders exports ([`gpu`]), and the export of one image ([`export`]).

pub mod cpu;
pub mod export;
pub mod gpu;

use std::sync::Arc;

use image::RgbaImage;

use crate::prefs::SavedBackground;

/// What lies under the cut-out, on the canvas and in an export.
#[derive(Debug, Clone, PartialEq)]
pub enum Background {
    Transparent,
    Colour([u8; 3]),
    /// A picture of the user's, scaled to cover the photo. `key` tells
    /// pictures apart cheaply.
    Picture {
        key: u64,
        image: Arc<RgbaImage>,
    },
    /// The photo itself, blurred.
    Blur,
}

/// Texture key of the blurred-original background (pictures count from 2).
const BLUR_KEY: u64 = 1;

/// The checkerboard that stands for transparency on the canvas: one
/// definition for the CPU canvas and the shader (see [`gpu::shader_source`]).
pub mod checkerboard {
    /// Cell size in screen points.
    pub const CELL_POINTS: f32 = 10.0;
    /// Grey levels of the light and dark cells.
    pub const LIGHT: u8 = 235;
    pub const DARK: u8 = 200;
}

impl Background {
    /// The background's pixels for `photo` (its size), when it is a picture
    /// or a blur, with the key that tells them apart.
    pub fn pixels_for(&self, photo: &RgbaImage) -> Option<(u64, RgbaImage)> {
        match self {
            Self::Picture { key, image } => {
                Some((*key, cpu::cover(image, photo.width(), photo.height())))
            }
            Self::Blur => Some((BLUR_KEY, cpu::blurred(photo))),
            Self::Transparent | Self::Colour(_) => None,
        }
    }

    /// The key of a picture or blur background (see [`Self::pixels_for`]).
    pub fn texture_key(&self) -> Option<u64> {
        match self {
            Self::Picture { key, .. } => Some(*key),
            Self::Blur => Some(BLUR_KEY),
            Self::Transparent | Self::Colour(_) => None,
        }
    }

    /// As kept for the next start. A picture is the user's own file: it is
    /// never kept, so it comes back as transparent.
    pub fn saved(&self) -> SavedBackground {
        match self {
            Self::Colour(rgb) => SavedBackground::Colour(*rgb),
            Self::Blur => SavedBackground::Blur,
            Self::Transparent | Self::Picture { .. } => SavedBackground::Transparent,
        }
    }
}

impl From<SavedBackground> for Background {
    fn from(saved: SavedBackground) -> Self {
        match saved {
            SavedBackground::Transparent => Self::Transparent,
            SavedBackground::Colour(rgb) => Self::Colour(rgb),
            SavedBackground::Blur => Self::Blur,
        }
    }
}
