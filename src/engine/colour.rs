//! Colour management with embedded ICC profiles (qcms, Firefox's colour
//! engine): RGB photos shown converted to sRGB, CMYK JPEGs converted to RGB
//! through their own profile rather than by the naive formula.
//!
//! Exports keep an RGB photo's own values and profile (see `encode`); only
//! what is shown on screen, and CMYK (which no output format here holds),
//! is converted.

use image::RgbaImage;

/// The colour space an ICC profile describes (header bytes 16–19).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileSpace {
    Rgb,
    Cmyk,
    Gray,
    Other,
}

pub fn profile_space(icc: &[u8]) -> ProfileSpace {
    match icc.get(16..20) {
        Some(b"RGB ") => ProfileSpace::Rgb,
        Some(b"CMYK") => ProfileSpace::Cmyk,
        Some(b"GRAY") => ProfileSpace::Gray,
        _ => ProfileSpace::Other,
    }
}

/// Converts `rgba` from the RGB profile `icc` to sRGB in place (alpha
/// untouched), for display. False, with the pixels unchanged, when the
/// profile is not an RGB profile qcms can read, or is sRGB already.
pub fn rgb_to_srgb(rgba: &mut RgbaImage, icc: &[u8]) -> bool {
    if profile_space(icc) != ProfileSpace::Rgb {
        return false;
    }
    let Some(input) = qcms::Profile::new_from_slice(icc, false) else {
        return false;
    };
    if input.is_sRGB() {
        return false;
    }
    let mut output = qcms::Profile::new_sRGB();
    output.precache_output_transform();
    let Some(transform) = qcms::Transform::new(
        &input,
        &output,
        qcms::DataType::RGBA8,
        qcms::Intent::Perceptual,
    ) else {
        return false;
    };
    transform.apply(rgba);
    true
}

/// CMYK ink amounts (0 = no ink, 4 bytes a pixel) to opaque sRGB RGBA
/// through the CMYK profile `icc`; `None` when qcms cannot use the profile.
pub fn cmyk_to_srgb(cmyk: &[u8], width: u32, height: u32, icc: &[u8]) -> Option<RgbaImage> {
    if profile_space(icc) != ProfileSpace::Cmyk
        || cmyk.len() != width as usize * height as usize * 4
    {
        return None;
    }
    let input = qcms::Profile::new_from_slice(icc, false)?;
    let mut output = qcms::Profile::new_sRGB();
    output.precache_output_transform();
    let transform = qcms::Transform::new_to(
        &input,
        &output,
        qcms::DataType::CMYK,
        qcms::DataType::RGB8,
        qcms::Intent::RelativeColorimetric,
    )?;
    let mut rgb = vec![0u8; width as usize * height as usize * 3];
    transform.convert(cmyk, &mut rgb);
    let rgba: Vec<u8> = rgb
        .chunks_exact(3)
        .flat_map(|p| [p[0], p[1], p[2], 255])
        .collect();
    RgbaImage::from_raw(width, height, rgba)
}

/// A JPEG's CMYK samples as ink amounts, when the file is CMYK (or YCCK).
/// Photoshop and most tools write Adobe CMYK JPEGs with inverted samples
/// (marked by an APP14 "Adobe" segment): those are turned back into ink.
pub fn jpeg_cmyk_samples(bytes: &[u8]) -> Option<(Vec<u8>, u32, u32)> {
    use zune_jpeg::zune_core::bytestream::ZCursor;
    use zune_jpeg::zune_core::colorspace::ColorSpace;
    use zune_jpeg::zune_core::options::DecoderOptions;
    let options = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::CMYK);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    decoder.decode_headers().ok()?;
    if !matches!(
        decoder.input_colorspace()?,
        ColorSpace::CMYK | ColorSpace::YCCK
    ) {
        return None;
    }
    let (width, height) = decoder.dimensions()?;
    let mut samples = decoder.decode().ok()?;
    if has_adobe_marker(bytes) {
        samples.iter_mut().for_each(|s| *s = 255 - *s);
    }
    Some((samples, width as u32, height as u32))
}

/// Whether the JPEG has an APP14 "Adobe" segment before its image data.
fn has_adobe_marker(bytes: &[u8]) -> bool {
    let mut at = 2;
    while at + 4 <= bytes.len() && bytes[at] == 0xFF {
        let marker = bytes[at + 1];
        // Start of scan: no more header segments.
        if marker == 0xDA {
            return false;
        }
        let length = u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]) as usize;
        if marker == 0xEE && bytes.get(at + 4..at + 9) == Some(b"Adobe") {
            return true;
        }
        at += 2 + length;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADOBE_RGB: &str = "/usr/share/color/icc/colord/AdobeRGB1998.icc";
    const CMYK: &str = "/usr/share/color/icc/ghostscript/default_cmyk.icc";

    /// Reference values from Little CMS 2.19 (Pillow's ImageCms) on the
    /// same Debian profiles: an independent engine. RGB within 2 levels;
    /// CMYK (relative colorimetric, through the profile's 3-D table) within
    /// 3, as the two engines interpolate the table differently.
    fn close(got: [u8; 3], want: [u8; 3]) -> bool {
        got.iter().zip(want).all(|(g, w)| g.abs_diff(w) <= 2)
    }

    #[test]
    fn adobe_rgb_colours_become_their_srgb_values_and_alpha_stays() {
        let icc = std::fs::read(ADOBE_RGB).expect("Debian's colord-data");
        assert_eq!(profile_space(&icc), ProfileSpace::Rgb);
        let cases = [
            ([100, 150, 100], REF_ADOBE[0]),
            ([200, 80, 60], REF_ADOBE[1]),
            ([60, 90, 200], REF_ADOBE[2]),
            ([255, 255, 255], [255, 255, 255]),
        ];
        let mut image = RgbaImage::new(cases.len() as u32, 1);
        for (x, (rgb, _)) in cases.iter().enumerate() {
            image.put_pixel(x as u32, 0, image::Rgba([rgb[0], rgb[1], rgb[2], 77]));
        }
        assert!(rgb_to_srgb(&mut image, &icc));
        for (x, (rgb, want)) in cases.iter().enumerate() {
            let p = image.get_pixel(x as u32, 0).0;
            assert!(
                close([p[0], p[1], p[2]], *want),
                "{rgb:?} → {p:?}, want {want:?}"
            );
            assert_eq!(p[3], 77);
        }
    }

    #[test]
    fn srgb_and_non_rgb_profiles_leave_the_pixels_alone() {
        let srgb = std::fs::read("/usr/share/color/icc/colord/sRGB.icc").unwrap();
        let mut image = RgbaImage::from_pixel(2, 2, image::Rgba([10, 20, 30, 255]));
        let before = image.clone();
        rgb_to_srgb(&mut image, &srgb);
        assert!(close(
            [
                image.get_pixel(0, 0)[0],
                image.get_pixel(0, 0)[1],
                image.get_pixel(0, 0)[2]
            ],
            [10, 20, 30]
        ));
        let cmyk = std::fs::read(CMYK).unwrap();
        let mut image = before.clone();
        assert!(!rgb_to_srgb(&mut image, &cmyk));
        assert_eq!(image, before);
        assert!(!rgb_to_srgb(&mut image, b"not a profile"));
    }

    #[test]
    fn cmyk_inks_become_their_srgb_values() {
        let icc = std::fs::read(CMYK).expect("Debian's libgs-common");
        assert_eq!(profile_space(&icc), ProfileSpace::Cmyk);
        let inks: Vec<u8> = REF_CMYK.iter().flat_map(|(ink, _)| *ink).collect();
        let image = cmyk_to_srgb(&inks, REF_CMYK.len() as u32, 1, &icc).unwrap();
        for (x, (ink, want)) in REF_CMYK.iter().enumerate() {
            let p = image.get_pixel(x as u32, 0).0;
            let near = p.iter().zip(want).all(|(g, w)| g.abs_diff(*w) <= 3);
            assert!(near, "{ink:?} → {p:?}, want {want:?}");
        }
    }

    #[test]
    fn the_adobe_marker_is_found_in_the_header_only() {
        let mut jpeg = vec![0xFF, 0xD8];
        jpeg.extend([0xFF, 0xE0, 0, 4, 0, 0]);
        assert!(!has_adobe_marker(&jpeg));
        jpeg.extend([0xFF, 0xEE, 0, 14]);
        jpeg.extend(b"Adobe\0\x64\0\0\0\0\x02");
        assert!(has_adobe_marker(&jpeg));
    }

    const REF_ADOBE: [[u8; 3]; 3] = [[66, 151, 97], [230, 79, 56], [36, 90, 204]];
    const REF_CMYK: [([u8; 4], [u8; 3]); 6] = [
        ([0, 0, 0, 0], [255, 255, 255]),
        ([0, 255, 255, 0], [238, 51, 56]),
        ([255, 0, 0, 0], [0, 176, 240]),
        ([0, 0, 0, 255], [55, 53, 53]),
        ([128, 51, 0, 26], [118, 163, 204]),
        ([20, 60, 90, 10], [224, 190, 161]),
    ];
}
