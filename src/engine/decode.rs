//! Reading image files: format sniffed from content (never trusted from the
//! extension), EXIF orientation applied, the file's size and the header's
//! dimensions checked (see `crate::limits`) before the body is read or any
//! pixel memory is allocated.

use std::fs;
use std::io::{Cursor, Read};
use std::path::Path;
use std::sync::Arc;

use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits, RgbaImage};

use super::colour::{ProfileSpace, cmyk_to_srgb, jpeg_cmyk_samples, profile_space};
use crate::error::Error;
use crate::limits::{MAX_IMAGE_FILE_BYTES, MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE};

/// Extensions of the image files the app and batches pick up from folders.
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"];

/// Largest image accepted by default, in pixels (a 12000×8333 photo).
pub const DEFAULT_MAX_PIXELS: u64 = MAX_IMAGE_PIXELS;

/// Bytes read before the header is judged: every format's dimensions are in
/// its first few KiB, a JPEG's after its APP segments (64 KiB each at most).
const HEADER_PREFIX_BYTES: u64 = 256 << 10;

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
    /// The embedded colour profile (JPEG APP2, PNG iCCP, WebP ICCP, TIFF),
    /// carried into every output that can hold one so that a Display P3 or
    /// Adobe RGB photo keeps its colours. The pixels are not converted.
    pub icc_profile: Option<Arc<Vec<u8>>>,
}

impl DecodedImage {
    pub fn width(&self) -> u32 {
        self.rgba.width()
    }
    pub fn height(&self) -> u32 {
        self.rgba.height()
    }
}

/// Reads and decodes an image file: its size and its header are checked
/// before the rest is read, and the read stops at the file-size limit
/// whatever the file system says (a file may grow while it is read).
pub fn decode_file(path: &Path, limits: DecodeLimits) -> Result<DecodedImage, Error> {
    // Checked before opening: opening a FIFO for reading would wait for a writer.
    let not_a_file = || Error::NotAFile { path: path.into() };
    if !fs::metadata(path)
        .map_err(Error::io("open file", path))?
        .is_file()
    {
        return Err(not_a_file());
    }
    let file = fs::File::open(path).map_err(Error::io("open file", path))?;
    let meta = file.metadata().map_err(Error::io("read file", path))?;
    if !meta.is_file() {
        return Err(not_a_file());
    }
    let too_large = |size: u64| Error::FileTooLarge {
        size_mb: size.div_ceil(1 << 20),
        limit_mb: MAX_IMAGE_FILE_BYTES >> 20,
        path: path.into(),
    };
    if meta.len() > MAX_IMAGE_FILE_BYTES {
        return Err(too_large(meta.len()));
    }
    let mut bytes = Vec::with_capacity(meta.len().min(HEADER_PREFIX_BYTES) as usize);
    let mut reader = (&file).take(HEADER_PREFIX_BYTES);
    reader
        .read_to_end(&mut bytes)
        .map_err(Error::io("read file", path))?;
    if bytes.is_empty() {
        return Err(Error::EmptyFile { path: path.into() });
    }
    // A header that already states too many pixels ends the read here; one
    // that needs more bytes is judged again on the whole file below.
    if let Ok(dimensions) = header_dimensions(&bytes, path) {
        check_dimensions(dimensions, path, limits)?;
    }
    bytes.reserve(meta.len().saturating_sub(bytes.len() as u64) as usize);
    let rest = MAX_IMAGE_FILE_BYTES + 1 - bytes.len() as u64;
    (&file)
        .take(rest)
        .read_to_end(&mut bytes)
        .map_err(Error::io("read file", path))?;
    if bytes.len() as u64 > MAX_IMAGE_FILE_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    decode_bytes(&bytes, path, limits)
}

fn image_reader<'a>(bytes: &'a [u8], path: &Path) -> Result<ImageReader<Cursor<&'a [u8]>>, Error> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(Error::io("read file", path))?;
    if reader.format().is_none() {
        return Err(Error::UnrecognisedImage { path: path.into() });
    }
    Ok(reader)
}

fn header_dimensions(bytes: &[u8], path: &Path) -> Result<(u32, u32), Error> {
    if let Err(detail) = tiff_tags_fit(bytes) {
        return Err(Error::CorruptImage {
            detail,
            path: path.into(),
        });
    }
    image_reader(bytes, path)?
        .into_dimensions()
        .map_err(|e| classify(e, path))
}

fn check_dimensions(
    (width, height): (u32, u32),
    path: &Path,
    limits: DecodeLimits,
) -> Result<(), Error> {
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels || width > MAX_IMAGE_SIDE || height > MAX_IMAGE_SIDE {
        return Err(Error::ImageTooLarge {
            width,
            height,
            limit_mp: limits.max_pixels / 1_000_000,
            path: path.into(),
        });
    }
    if pixels == 0 {
        return Err(Error::CorruptImage {
            detail: format!("the header says {width}×{height} pixels"),
            path: path.into(),
        });
    }
    Ok(())
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
    let reader = || image_reader(bytes, path);

    // The header alone first: a 100000×100000 claim must fail before allocation.
    check_dimensions(header_dimensions(bytes, path)?, path, limits)?;

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
    decode_limits.max_alloc = Some(limits.max_pixels.saturating_mul(8).saturating_add(64 << 20));
    decode_limits.max_image_width = Some(MAX_IMAGE_SIDE);
    decode_limits.max_image_height = Some(MAX_IMAGE_SIDE);
    reader.limits(decode_limits);
    let mut decoder = reader.into_decoder().map_err(|e| classify(e, path))?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    // An unreadable profile is dropped (the photo still opens), as viewers do.
    let icc_profile = decoder
        .icc_profile()
        .ok()
        .flatten()
        .filter(|p| !p.is_empty())
        .map(Arc::new);
    let space = icc_profile.as_deref().map(|icc| profile_space(icc));
    // A CMYK JPEG: converted through its own profile, not the decoder's
    // naive formula (which is only the fallback).
    let managed_cmyk = icc_profile
        .as_deref()
        .filter(|_| space == Some(ProfileSpace::Cmyk))
        .and_then(|icc| {
            let (inks, width, height) = jpeg_cmyk_samples(bytes)?;
            cmyk_to_srgb(&inks, width, height, icc)
        });
    let mut image = match managed_cmyk {
        Some(rgba) => DynamicImage::ImageRgba8(rgba),
        None => DynamicImage::from_decoder(decoder).map_err(|e| classify(e, path))?,
    };
    // Outputs are RGB (sRGB after a CMYK conversion): only an RGB profile
    // describes them, so a CMYK or grey one is not passed on.
    let icc_profile = icc_profile.filter(|_| space == Some(ProfileSpace::Rgb));
    image.apply_orientation(orientation);
    let has_alpha = image.color().has_alpha();
    Ok(DecodedImage {
        rgba: image.into_rgba8(),
        has_alpha,
        icc_profile,
    })
}

/// The TIFF decoder reserves room for a tag's values from the count the
/// file states, before it reads them and before any limit is applied (up
/// to 256 MiB for a 5 KiB file). No tag of the first directory may claim
/// more bytes than the whole file holds. Not TIFF: nothing to check.
fn tiff_tags_fit(bytes: &[u8]) -> Result<(), String> {
    let (big_endian, big_tiff) = match bytes.get(..4) {
        Some(b"II*\0") => (false, false),
        Some(b"MM\0*") => (true, false),
        Some(b"II+\0") => (false, true),
        Some(b"MM\0+") => (true, true),
        _ => return Ok(()),
    };
    let read = |at: usize, n: usize| -> Option<u64> {
        let field = bytes.get(at..at.checked_add(n)?)?;
        let mut value = 0u64;
        for i in 0..n {
            let byte = u64::from(if big_endian {
                field[i]
            } else {
                field[n - 1 - i]
            });
            value = (value << 8) | byte;
        }
        Some(value)
    };
    let truncated = || "truncated TIFF directory".to_string();
    let (first_ifd, count_size, entry_size, count_at, count_len) = if big_tiff {
        (read(8, 8).ok_or_else(truncated)?, 8, 20, 4, 8)
    } else {
        (read(4, 4).ok_or_else(truncated)?, 2, 12, 4, 4)
    };
    let ifd = usize::try_from(first_ifd).map_err(|_| truncated())?;
    let Some(entries) = read(ifd, count_size) else {
        // A directory past the end: the decoder reports that itself.
        return Ok(());
    };
    let file_len = bytes.len() as u64;
    for i in 0..entries.min(4096) as usize {
        let entry = ifd + count_size + i * entry_size;
        let (Some(tag), Some(kind), Some(count)) = (
            read(entry, 2),
            read(entry + 2, 2),
            read(entry + count_at, count_len),
        ) else {
            break;
        };
        let value_size: u64 = match kind {
            3 | 8 => 2,
            4 | 9 | 11 | 13 => 4,
            5 | 10 | 12 | 16..=18 => 8,
            _ => 1,
        };
        if count.saturating_mul(value_size) > file_len {
            return Err(format!(
                "TIFF tag {tag} claims {count} values, more than the file holds"
            ));
        }
    }
    Ok(())
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

    /// A header that claims too many pixels ends the read after the first
    /// 256 KiB: here the rest is 900 MB of a sparse file, neither read nor
    /// allocated for (the fuzz test's counting allocator checks the latter).
    #[test]
    fn a_file_is_judged_by_its_header_before_its_body_is_read() {
        let img = DynamicImage::ImageRgba8(RgbaImage::from_pixel(8, 8, Rgba([1, 2, 3, 255])));
        let mut png = encode(&img, ImageFormat::Png);
        // IHDR width and height (bytes 16..24): 12000×12000 = 144 MP.
        png[16..20].copy_from_slice(&12_000u32.to_be_bytes());
        png[20..24].copy_from_slice(&12_000u32.to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(&png[12..29]);
        png[29..33].copy_from_slice(&crc.sum().to_be_bytes());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("claims.png");
        std::fs::write(&path, &png).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(900 << 20)
            .unwrap();
        let err = decode_file(&path, DecodeLimits::default()).unwrap_err();
        assert!(
            matches!(err, Error::ImageTooLarge { width: 12_000, .. }),
            "{err}"
        );
        assert!(err.to_string().ends_with("claims.png"));
    }

    #[test]
    fn a_tiff_tag_claiming_more_than_the_file_is_refused_before_decoding() {
        let img = DynamicImage::ImageRgb8(image::RgbImage::from_pixel(4, 4, image::Rgb([9, 9, 9])));
        let mut tiff = encode(&img, ImageFormat::Tiff);
        let ifd = u32::from_le_bytes(tiff[4..8].try_into().unwrap()) as usize;
        // The first entry's count: four billion values in a file of a few hundred bytes.
        tiff[ifd + 2 + 4..ifd + 2 + 8].copy_from_slice(&u32::MAX.to_le_bytes());
        let err = decode_bytes(&tiff, &name(), DecodeLimits::default()).unwrap_err();
        assert!(err.to_string().contains("claims"), "{err}");
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
