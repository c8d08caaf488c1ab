//! Reading image files: format sniffed from content (never trusted from the
//! extension), EXIF orientation applied, a pixel-count limit checked before
//! any pixel memory is allocated.

use std::fs;
use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits, RgbaImage};

use crate::error::Error;

/// Extensions of the image files the app and batches pick up from folders.
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"];

/// Largest image accepted by default, in pixels (a 12000×8333 photo).
pub const DEFAULT_MAX_PIXELS: u64 = 100_000_000;

#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    pub max_pixels: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_pixels: DEFAULT_MAX_PIXELS,
        }
    }
}

/// A decoded photo, upright, as straight-alpha RGBA.
#[derive(Debug, Clone)]
pub struct DecodedImage {
    pub rgba: RgbaImage,
    /// Whether the file itself carried transparency (kept in the cut-out).
    pub has_alpha: bool,
}

impl DecodedImage {
    pub fn width(&self) -> u32 {
        self.rgba.width()
    }
    pub fn height(&self) -> u32 {
        self.rgba.height()
    }
}

/// Reads and decodes an image file.
pub fn decode_file(path: &Path, limits: DecodeLimits) -> Result<DecodedImage, Error> {
    let bytes = fs::read(path).map_err(Error::io("read file", path))?;
    decode_bytes(&bytes, path, limits)
}

/// Decodes an image held in memory; `path` only names it in errors.
pub fn decode_bytes(
    bytes: &[u8],
    path: &Path,
    limits: DecodeLimits,
) -> Result<DecodedImage, Error> {
    if bytes.is_empty() {
        return Err(Error::EmptyFile { path: path.into() });
    }
    let reader = || -> Result<ImageReader<Cursor<&[u8]>>, Error> {
        let reader = ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(Error::io("read file", path))?;
        if reader.format().is_none() {
            return Err(Error::UnrecognisedImage { path: path.into() });
        }
        Ok(reader)
    };

    // The header alone first: a 100000×100000 claim must fail before allocation.
    let (width, height) = reader()?.into_dimensions().map_err(|e| classify(e, path))?;
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(Error::ImageTooLarge {
            width,
            height,
            limit_mp: limits.max_pixels / 1_000_000,
            path: path.into(),
        });
    }

    if reader()?.format() == Some(ImageFormat::Jpeg) && !jpeg_has_end_marker(bytes) {
        // The JPEG decoder fills a cut-off file with grey and calls it a
        // success; a half-grey photo must not become a silent "result".
        return Err(Error::CorruptImage {
            detail: "truncated JPEG: no end-of-image marker".into(),
            path: path.into(),
        });
    }

    let mut reader = reader()?;
    let mut decode_limits = Limits::default();
    // Room for the largest allowed image at 16 bits per channel, RGBA.
    decode_limits.max_alloc = Some(limits.max_pixels * 8 + (64 << 20));
    reader.limits(decode_limits);
    let mut decoder = reader.into_decoder().map_err(|e| classify(e, path))?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| classify(e, path))?;
    image.apply_orientation(orientation);
    let has_alpha = image.color().has_alpha();
    Ok(DecodedImage {
        rgba: image.into_rgba8(),
        has_alpha,
    })
}

/// Whether an end-of-image marker follows the last start-of-scan. Inside
/// entropy-coded data 0xFF is always followed by 0x00 or a restart marker, so
/// an FF D9 after the last FF DA is the true end.
fn jpeg_has_end_marker(bytes: &[u8]) -> bool {
    let last_scan = bytes
        .windows(2)
        .rposition(|w| w == [0xFF, 0xDA])
        .unwrap_or(0);
    bytes[last_scan..].windows(2).any(|w| w == [0xFF, 0xD9])
}

fn classify(err: ImageError, path: &Path) -> Error {
    match err {
        ImageError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            Error::CorruptImage {
                detail: "file ends early".into(),
                path: path.into(),
            }
        }
        ImageError::IoError(e) => Error::Io {
            action: "read image",
            source: e,
            path: path.into(),
        },
        ImageError::Unsupported(e) => Error::UnsupportedImage {
            detail: e.to_string(),
            path: path.into(),
        },
        ImageError::Limits(e) => Error::UnsupportedImage {
            detail: format!("over a decoder limit: {e}"),
            path: path.into(),
        },
        other => Error::CorruptImage {
            detail: other.to_string(),
            path: path.into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgba;
    use std::path::PathBuf;

    fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    fn name() -> PathBuf {
        PathBuf::from("photo.png")
    }

    #[test]
    fn empty_input_is_named_as_empty() {
        let err = decode_bytes(&[], &name(), DecodeLimits::default()).unwrap_err();
        assert!(matches!(err, Error::EmptyFile { .. }), "{err}");
        assert!(err.to_string().ends_with("photo.png"));
    }

    #[test]
    fn text_is_not_an_image_whatever_its_name() {
        let err = decode_bytes(b"hello, I am text", &name(), DecodeLimits::default()).unwrap_err();
        assert!(matches!(err, Error::UnrecognisedImage { .. }), "{err}");
    }

    #[test]
    fn pixel_limit_is_checked_from_the_header() {
        let img = DynamicImage::ImageRgba8(RgbaImage::from_pixel(40, 30, Rgba([1, 2, 3, 255])));
        let png = encode(&img, ImageFormat::Png);
        let err = decode_bytes(&png, &name(), DecodeLimits { max_pixels: 1000 }).unwrap_err();
        assert!(
            matches!(
                err,
                Error::ImageTooLarge {
                    width: 40,
                    height: 30,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn truncated_jpeg_is_an_error_not_a_grey_photo() {
        let img = DynamicImage::ImageRgb8(image::RgbImage::from_fn(64, 64, |x, y| {
            image::Rgb([x as u8 * 4, y as u8 * 4, 9])
        }));
        let jpeg = encode(&img, ImageFormat::Jpeg);
        assert!(decode_bytes(&jpeg, &name(), DecodeLimits::default()).is_ok());
        let err =
            decode_bytes(&jpeg[..jpeg.len() - 40], &name(), DecodeLimits::default()).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
    }

    #[test]
    fn exif_orientation_is_applied() {
        // A 4×2 JPEG tagged "rotate 90° clockwise" must come out 2×4.
        let img =
            DynamicImage::ImageRgb8(image::RgbImage::from_pixel(4, 2, image::Rgb([200, 10, 10])));
        let jpeg = encode(&img, ImageFormat::Jpeg);
        let tagged = with_exif_orientation(&jpeg, 6);
        let decoded = decode_bytes(&tagged, &name(), DecodeLimits::default()).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (2, 4));
    }

    /// Inserts an APP1 EXIF segment with one Orientation tag after SOI.
    fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
        let mut tiff = Vec::new();
        tiff.extend_from_slice(b"MM\0\x2a\0\0\0\x08"); // big-endian, IFD at 8
        tiff.extend_from_slice(&1u16.to_be_bytes()); // one entry
        tiff.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
        tiff.extend_from_slice(&3u16.to_be_bytes()); // SHORT
        tiff.extend_from_slice(&1u32.to_be_bytes()); // count
        tiff.extend_from_slice(&orientation.to_be_bytes());
        tiff.extend_from_slice(&[0, 0]);
        tiff.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
        let mut payload = b"Exif\0\0".to_vec();
        payload.extend_from_slice(&tiff);
        let mut out = jpeg[..2].to_vec();
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(&payload);
        out.extend_from_slice(&jpeg[2..]);
        out
    }
}
