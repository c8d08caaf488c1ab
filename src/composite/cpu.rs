//! The CPU reference composite: what every export is checked against, and
//! what exports use when no GPU is at hand.

use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{GrayImage, RgbImage, RgbaImage};

use super::Background;

/// The composite as RGBA: straight alpha over a transparent background,
/// opaque over a colour, a picture or a blur.
pub fn composite(image: &RgbaImage, mask: &GrayImage, background: &Background) -> RgbaImage {
    let picture = background.pixels_for(image).map(|(_, pixels)| pixels);
    composite_with(image, mask, background, picture.as_ref())
}

/// [`composite`] with the background's pixels already made
/// (`background.pixels_for(image)`), as the export shares them with the GPU.
pub fn composite_with(
    image: &RgbaImage,
    mask: &GrayImage,
    background: &Background,
    picture: Option<&RgbaImage>,
) -> RgbaImage {
    match (background, picture) {
        (Background::Colour(colour), _) => {
            let rgb = flatten_on(image, mask, *colour);
            RgbaImage::from_fn(image.width(), image.height(), |x, y| {
                let p = rgb.get_pixel(x, y).0;
                image::Rgba([p[0], p[1], p[2], 255])
            })
        }
        (Background::Picture { .. } | Background::Blur, Some(picture)) => {
            over_picture(image, mask, picture)
        }
        _ => cutout(image, mask),
    }
}

fn over_picture(image: &RgbaImage, mask: &GrayImage, picture: &RgbaImage) -> RgbaImage {
    assert_eq!(
        image.dimensions(),
        picture.dimensions(),
        "background size differs"
    );
    let mut out = RgbaImage::new(image.width(), image.height());
    for (((dst, src), m), bg) in out
        .pixels_mut()
        .zip(image.pixels())
        .zip(mask.pixels())
        .zip(picture.pixels())
    {
        let a = u16::from(mul_u8(src[3], m[0]));
        for c in 0..3 {
            dst[c] = ((u16::from(src[c]) * a + u16::from(bg[c]) * (255 - a) + 127) / 255) as u8;
        }
        dst[3] = 255;
    }
    out
}

/// `picture` scaled to cover `width`×`height` and centre-cropped, as a
/// background photo behind a cut-out.
pub fn cover(picture: &RgbaImage, width: u32, height: u32) -> RgbaImage {
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::CatmullRom))
        .fit_into_destination(None)
        .use_alpha(false);
    resize(picture, width, height, &options)
}

/// A soft blur of `image` (the "blurred original" background): shrink to
/// about 1/24 of the size, then enlarge smoothly. Cheap at 12 MP, and the
/// same pixels feed the GPU preview and the CPU export.
pub fn blurred(image: &RgbaImage) -> RgbaImage {
    let (w, h) = image.dimensions();
    let (sw, sh) = ((w / 24).max(1), (h / 24).max(1));
    let down = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::Box))
        .use_alpha(false);
    let small = resize(image, sw, sh, &down);
    let up = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::CatmullRom))
        .use_alpha(false);
    let mut out = resize(&small, w, h, &up);
    for p in out.pixels_mut() {
        p[3] = 255;
    }
    out
}

#[allow(clippy::expect_used, reason = "RGBA to RGBA of the sizes given")]
fn resize(src: &RgbaImage, width: u32, height: u32, options: &ResizeOptions) -> RgbaImage {
    let mut dst = Image::new(width, height, PixelType::U8x4);
    Resizer::new()
        .resize(src, &mut dst, options)
        .expect("RGBA to RGBA");
    RgbaImage::from_raw(width, height, dst.into_vec()).expect("sized by resize")
}

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
