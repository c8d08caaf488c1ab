//! The CPU reference composite: what every export is checked against.

use image::{GrayImage, RgbImage, RgbaImage};

/// The cut-out: the photo's colours with alpha = source alpha × mask,
/// straight (not premultiplied), as PNG and WebP store it.
pub fn cutout(image: &RgbaImage, mask: &GrayImage) -> RgbaImage {
    assert_eq!(
        image.dimensions(),
        mask.dimensions(),
        "mask and image sizes differ"
    );
    let mut out = image.clone();
    for (px, m) in out.pixels_mut().zip(mask.pixels()) {
        px[3] = mul_u8(px[3], m[0]);
    }
    out
}

/// The cut-out flattened onto a solid colour (for JPEG, which has no alpha).
pub fn flatten_on(image: &RgbaImage, mask: &GrayImage, background: [u8; 3]) -> RgbImage {
    assert_eq!(
        image.dimensions(),
        mask.dimensions(),
        "mask and image sizes differ"
    );
    let mut out = RgbImage::new(image.width(), image.height());
    for ((dst, src), m) in out.pixels_mut().zip(image.pixels()).zip(mask.pixels()) {
        let a = u16::from(mul_u8(src[3], m[0]));
        for c in 0..3 {
            let fg = u16::from(src[c]);
            let bg = u16::from(background[c]);
            dst[c] = ((fg * a + bg * (255 - a) + 127) / 255) as u8;
        }
    }
    out
}

/// `a × b / 255`, rounded.
fn mul_u8(a: u8, b: u8) -> u8 {
    ((u16::from(a) * u16::from(b) + 127) / 255) as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Luma, Rgba};

    #[test]
    fn cutout_multiplies_source_alpha_by_mask() {
        let image = RgbaImage::from_pixel(2, 1, Rgba([10, 20, 30, 128]));
        let mut mask = GrayImage::new(2, 1);
        mask.put_pixel(0, 0, Luma([255]));
        mask.put_pixel(1, 0, Luma([0]));
        let out = cutout(&image, &mask);
        assert_eq!(out.get_pixel(0, 0), &Rgba([10, 20, 30, 128]));
        assert_eq!(out.get_pixel(1, 0)[3], 0);
    }

    #[test]
    fn flatten_blends_towards_the_background() {
        let image = RgbaImage::from_pixel(1, 1, Rgba([255, 0, 0, 255]));
        let half = GrayImage::from_pixel(1, 1, Luma([128]));
        let out = flatten_on(&image, &half, [0, 0, 255]);
        assert_eq!(out.get_pixel(0, 0).0, [128, 0, 127]);
    }
}
