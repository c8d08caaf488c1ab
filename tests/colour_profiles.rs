//! Colour profiles are kept: a photo with an embedded ICC profile (real
//! profiles from Debian's colord-data: Adobe RGB 1998, ProPhoto RGB) keeps
//! it in every output format that can hold one, with its pixel values
//! unchanged, so the designer's tools show the colours the photo had. Runs
//! the real binary and model.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::fixture;
use image::{ImageDecoder, ImageEncoder, ImageReader};

const PROFILES: &str = "/usr/share/color/icc/colord";

fn profile(name: &str) -> Vec<u8> {
    let path = Path::new(PROFILES).join(name);
    fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{e}: {} (install Debian's colord-data; .ci/run does)",
            path.display()
        )
    })
}

fn cli() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_backgrounderase"));
    cmd.env_remove("ORT_DYLIB_PATH")
        .env_remove("BACKGROUNDERASE_HOME");
    cmd
}

/// The embedded profile of an image file, read back by the decoder.
fn embedded_profile(path: &Path) -> Option<Vec<u8>> {
    let mut decoder = ImageReader::open(path)
        .unwrap()
        .with_guessed_format()
        .unwrap()
        .into_decoder()
        .unwrap();
    decoder.icc_profile().unwrap()
}

/// The coffee photo saved as `name` (PNG or JPEG) with `icc` embedded.
fn photo_with_profile(dir: &Path, name: &str, icc: &[u8]) -> PathBuf {
    let photo = image::open(fixture("photos/coffee.jpg")).unwrap().to_rgb8();
    let path = dir.join(name);
    let file = fs::File::create(&path).unwrap();
    let (w, h) = photo.dimensions();
    if name.ends_with(".png") {
        let mut encoder = image::codecs::png::PngEncoder::new(file);
        encoder.set_icc_profile(icc.to_vec()).unwrap();
        encoder
            .write_image(&photo, w, h, image::ExtendedColorType::Rgb8)
            .unwrap();
    } else {
        let mut encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(file, 95);
        encoder.set_icc_profile(icc.to_vec()).unwrap();
        encoder
            .write_image(&photo, w, h, image::ExtendedColorType::Rgb8)
            .unwrap();
    }
    assert_eq!(embedded_profile(&path).as_deref(), Some(icc));
    path
}

#[test]
fn every_output_format_keeps_the_photos_profile_and_its_pixel_values() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    fs::create_dir(&input).unwrap();
    let adobe = profile("AdobeRGB1998.icc");
    let prophoto = profile("ProPhotoRGB.icc");
    photo_with_profile(&input, "adobe.jpg", &adobe);
    photo_with_profile(&input, "prophoto.png", &prophoto);
    fs::copy(fixture("photos/chelsea.jpg"), input.join("plain.jpg")).unwrap();

    for (format, ext) in [("png", "png"), ("webp", "webp"), ("jpeg", "jpg")] {
        let out = dir.path().join(format);
        let run = cli()
            .args(["batch"])
            .arg(&input)
            .arg("-o")
            .arg(&out)
            .args(["--format", format])
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{format}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        let adobe_out = out.join(format!("adobe.{ext}"));
        let prophoto_out = out.join(format!("prophoto.{ext}"));
        assert_eq!(
            embedded_profile(&adobe_out).as_deref(),
            Some(adobe.as_slice()),
            "{}",
            adobe_out.display()
        );
        assert_eq!(
            embedded_profile(&prophoto_out).as_deref(),
            Some(prophoto.as_slice()),
            "{}",
            prophoto_out.display()
        );
        // A photo without a profile gets none (it is sRGB by convention).
        assert_eq!(embedded_profile(&out.join(format!("plain.{ext}"))), None);

        // The known colour is carried as it was, not converted: inside the
        // cup (opaque, far from the edge) the lossless cut-outs hold the
        // lossless input's values exactly.
        if format != "jpeg" {
            let original = image::open(input.join("prophoto.png")).unwrap().to_rgb8();
            let cut = image::open(&prophoto_out).unwrap().to_rgba8();
            let (want, got) = (original.get_pixel(300, 120).0, cut.get_pixel(300, 120).0);
            assert_eq!(got, [want[0], want[1], want[2], 255], "{format}");
        }
    }

    // A mask has no colours, so no profile.
    let masks = dir.path().join("masks");
    let run = cli()
        .args(["batch"])
        .arg(&input)
        .arg("-o")
        .arg(&masks)
        .args(["--format", "mask"])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(embedded_profile(&masks.join("adobe.png")), None);
}

/// `tests/fixtures/cmyk-patches.jpg`: four 32×32 CMYK patches, Adobe
/// (inverted) CMYK as Photoshop writes it, made with Pillow:
/// `Image.new("CMYK", (128, 32))`, each patch pasted with the inks below,
/// `save(..., quality=100, subsampling=0)`. No profile inside: the tests
/// splice one in.
const CMYK_PATCHES: [([u8; 4], [u8; 3]); 4] = [
    // Inks → sRGB by Little CMS 2.19 (relative colorimetric) through
    // Ghostscript's default_cmyk.icc: an independent engine.
    ([0, 255, 255, 0], [238, 51, 56]),
    ([255, 0, 0, 0], [0, 176, 240]),
    ([128, 51, 0, 26], [118, 163, 204]),
    ([20, 60, 90, 10], [224, 190, 161]),
];

/// A JPEG with `icc` spliced in as APP2 ICC_PROFILE segments after SOI.
fn jpeg_with_profile(jpeg: &[u8], icc: &[u8]) -> Vec<u8> {
    let chunks: Vec<&[u8]> = icc.chunks(65_519).collect();
    let mut out = jpeg[..2].to_vec();
    for (i, chunk) in chunks.iter().enumerate() {
        out.extend([0xFF, 0xE2]);
        out.extend(((chunk.len() + 16) as u16).to_be_bytes());
        out.extend(b"ICC_PROFILE\0");
        out.extend([(i + 1) as u8, chunks.len() as u8]);
        out.extend(*chunk);
    }
    out.extend(&jpeg[2..]);
    out
}

/// A CMYK JPEG is converted through its own profile (not by the decoder's
/// naive formula), and its outputs, now sRGB, do not claim the CMYK
/// profile.
#[test]
fn a_cmyk_jpeg_is_converted_with_its_profile() {
    use backgrounderase::engine::decode::{DecodeLimits, decode_file};
    let icc = fs::read("/usr/share/color/icc/ghostscript/default_cmyk.icc")
        .expect("Ghostscript's CMYK profile (Debian libgs-common; .ci/run installs it)");
    let jpeg = fs::read(fixture("cmyk-patches.jpg")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let photo = dir.path().join("print.jpg");
    fs::write(&photo, jpeg_with_profile(&jpeg, &icc)).unwrap();
    let naive = dir.path().join("naive.jpg");
    fs::write(&naive, &jpeg).unwrap();

    let managed = decode_file(&photo, DecodeLimits::default()).unwrap();
    assert!(managed.icc_profile.is_none(), "the pixels are sRGB now");
    let plain = decode_file(&naive, DecodeLimits::default()).unwrap();
    for (i, (ink, want)) in CMYK_PATCHES.iter().enumerate() {
        let centre = (i as u32 * 32 + 16, 16);
        let got = managed.rgba.get_pixel(centre.0, centre.1).0;
        let near = got.iter().zip(want).all(|(g, w)| g.abs_diff(*w) <= 4);
        assert!(near, "ink {ink:?}: {got:?}, want {want:?}");
        // Without its profile it is the naive conversion, which is far off
        // for real inks (pure magenta + yellow reads as pure red).
        let naive = plain.rgba.get_pixel(centre.0, centre.1).0;
        if i == 0 {
            assert!(naive[1] < 10 && naive[0] > 245, "{naive:?}");
        }
    }

    // Through `remove`: the output carries no CMYK profile.
    let out = dir.path().join("print.png");
    let run = cli()
        .args(["remove"])
        .arg(&photo)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(embedded_profile(&out), None);
}
