//! One limits policy for everything that comes from outside: image files,
//! folders, pastes, drops, arguments, model files and the app's own settings
//! files (which another program may have written). Every entry point checks
//! against these numbers before it allocates, and a violation is an error
//! naming the input — never a panic, never an allocation the size of a lie.
//!
//! The README's *Limits* table is these constants; a unit test keeps the two
//! in step.

/// Largest image decoded, in pixels (a 12000×8333 photo).
pub const MAX_IMAGE_PIXELS: u64 = 100_000_000;
/// Longest side of an image, in pixels (JPEG's own maximum).
pub const MAX_IMAGE_SIDE: u32 = 65_535;
/// Largest image file read: a 100 MP, 16-bit RGBA TIFF is 800 MB.
pub const MAX_IMAGE_FILE_BYTES: u64 = 1 << 30;

/// Largest picture an export may produce after crop, canvas and margins.
pub const MAX_OUTPUT_PIXELS: u64 = 100_000_000;
/// Longest side of an exact canvas (`--canvas WxH`).
pub const MAX_CANVAS_SIDE: u32 = 20_000;
/// Largest part of a canvas ratio (`--canvas A:B`).
pub const MAX_RATIO_PART: u32 = 100;
/// Crop margin: percent of the subject's longer side, or pixels.
pub const MAX_MARGIN_PERCENT: f32 = 1000.0;
pub const MAX_MARGIN_PIXELS: u32 = 20_000;
/// Edge shift and feather, in pixels.
pub const MAX_SHIFT_PIXELS: i32 = 500;
pub const MAX_FEATHER_PIXELS: f32 = 500.0;
/// Shadow offset and blur, in pixels.
pub const MAX_SHADOW_PIXELS: f32 = 2_000.0;

/// Largest model file imported or loaded (protobuf's own 2 GiB ceiling).
pub const MAX_MODEL_FILE_BYTES: u64 = 2 << 30;
/// Model input and output sides, in pixels.
pub const MIN_MODEL_SIDE: u32 = 16;
pub const MAX_MODEL_SIDE: u32 = 4096;

/// Settings, presets, the custom model list and the store's index: text the
/// app wrote, read back whole.
pub const MAX_SETTINGS_FILE_BYTES: u64 = 16 << 20;

/// Whether a model's input or output side is one the engine will run.
pub fn model_side_ok(side: u32) -> bool {
    (MIN_MODEL_SIDE..=MAX_MODEL_SIDE).contains(&side)
}

/// Whether a `width`×`height` image may be decoded.
pub fn image_size_ok(width: u32, height: u32) -> bool {
    width > 0
        && height > 0
        && width <= MAX_IMAGE_SIDE
        && height <= MAX_IMAGE_SIDE
        && u64::from(width) * u64::from(height) <= MAX_IMAGE_PIXELS
}

/// Whether an export of `width`×`height` may be produced.
pub fn output_size_ok(width: u64, height: u64) -> bool {
    width > 0
        && height > 0
        && width <= u64::from(MAX_IMAGE_SIDE)
        && height <= u64::from(MAX_IMAGE_SIDE)
        && width.saturating_mul(height) <= MAX_OUTPUT_PIXELS
}

/// Reads a small text file the app keeps (settings, lists, indexes), refusing
/// one over [`MAX_SETTINGS_FILE_BYTES`] before reading it.
pub fn read_settings_text(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let mut text = String::new();
    file.take(MAX_SETTINGS_FILE_BYTES + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_SETTINGS_FILE_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "over the {} MiB limit for settings files",
                MAX_SETTINGS_FILE_BYTES >> 20
            ),
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_sizes_at_and_over_the_limits() {
        assert!(image_size_ok(12_000, 8_333));
        assert!(!image_size_ok(10_001, 10_000));
        assert!(!image_size_ok(0, 10));
        assert!(!image_size_ok(MAX_IMAGE_SIDE + 1, 1));
        assert!(output_size_ok(2000, 2000));
        assert!(!output_size_ok(u64::MAX, 2));
    }

    /// The README's table states these numbers; a change here must change it.
    #[test]
    fn the_readme_states_the_limits() {
        let readme = include_str!("../README.md");
        for line in [
            "| image pixels | 100 MP |",
            "| image side | 65,535 px |",
            "| image file | 1 GiB |",
            "| export after crop and canvas | 100 MP |",
            "| `--canvas WxH` | each side 1–20,000 px |",
            "| `--canvas A:B` | each part 1–100 |",
            "| `--crop-margin` | 0–1000 % or 0–20,000 px |",
            "| `--shift` | −500 to 500 px |",
            "| `--feather` | 0–500 px |",
            "| model file | 2 GiB |",
            "| model input and output side | 16–4096 px |",
            "| settings, lists, store index | 16 MiB |",
        ] {
            assert!(readme.contains(line), "README lacks the limits row {line}");
        }
    }
}
