//! What the user chose in the window, kept for the next start: the export
//! format, edge and layout settings, the background, the brush's size and
//! hardness, the page, appearance, quality, the instant preview and the
//! Batch page's options. Plain data, read and written here, shown by the
//! front end.
//!
//! Never anything of an image: no names, paths or pixels. A picture chosen
//! as the background is the user's file, so it comes back as transparent;
//! the Batch page's folders are not kept either.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::engine::batch::{BatchSettings, IfExists};
use crate::engine::encode::{OutputFormat, Rgb8};
use crate::engine::finish::FinishSettings;
use crate::engine::quality::Quality;

pub const PREFERENCES_FILE: &str = "preferences.ron";
const SCHEMA_VERSION: u32 = 1;

/// The background shown behind the cut-out and used for exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SavedBackground {
    #[default]
    Transparent,
    Colour([u8; 3]),
    /// The photo itself, blurred.
    Blur,
}

/// The brush's size (screen points) and hardness. Its mode is not kept: a
/// new session starts with the brush off, so a first drag never paints.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SavedBrush {
    pub radius: f32,
    pub hardness: f32,
}

impl SavedBrush {
    pub const RADIUS_RANGE: std::ops::RangeInclusive<f32> = 2.0..=150.0;
    pub const HARDNESS_RANGE: std::ops::RangeInclusive<f32> = 0.0..=1.0;

    /// Within the sliders' ranges (a hand-edited file may say anything).
    pub fn clamped(self) -> Self {
        let clamp = |v: f32, range: &std::ops::RangeInclusive<f32>, default: f32| {
            if v.is_finite() {
                v.clamp(*range.start(), *range.end())
            } else {
                default
            }
        };
        let default = Self::default();
        Self {
            radius: clamp(self.radius, &Self::RADIUS_RANGE, default.radius),
            hardness: clamp(self.hardness, &Self::HARDNESS_RANGE, default.hardness),
        }
    }
}

impl Default for SavedBrush {
    fn default() -> Self {
        Self {
            radius: 20.0,
            hardness: 0.7,
        }
    }
}

/// The pages of the window (the front end shows them; the last one shown
/// comes back).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Page {
    #[default]
    Workspace,
    Batch,
    Models,
    Account,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Appearance {
    /// Follows the system's light or dark setting.
    #[default]
    System,
    Light,
    Dark,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Preferences {
    pub schema_version: u32,
    pub format: OutputFormat,
    pub finish: FinishSettings,
    pub background: SavedBackground,
    pub brush: SavedBrush,
    pub page: Page,
    pub appearance: Appearance,
    pub best_quality: bool,
    pub instant_preview: bool,
    /// Absent in files from before it existed: the defaults.
    pub batch: SavedBatch,
    pub speed: crate::engine::inference::Speed,
}

/// The Batch page's options (its folders are not kept: they are paths).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SavedBatch {
    pub include_subfolders: bool,
    pub mirror: bool,
    pub format: OutputFormat,
    pub background: Rgb8,
    pub jpeg_quality: u8,
    pub pattern: String,
    pub if_exists: IfExists,
    pub quality: Quality,
    pub keep_watching: bool,
}

impl Default for SavedBatch {
    fn default() -> Self {
        Self::from_settings(&BatchSettings::default(), false)
    }
}

impl SavedBatch {
    pub fn from_settings(settings: &BatchSettings, keep_watching: bool) -> Self {
        Self {
            include_subfolders: settings.include_subfolders,
            mirror: settings.mirror,
            format: settings.format,
            background: settings.background,
            jpeg_quality: settings.jpeg_quality,
            pattern: settings.pattern.clone(),
            if_exists: settings.if_exists,
            quality: settings.quality,
            keep_watching,
        }
    }

    /// The batch settings with these options (a hand-edited quality is
    /// brought into range; a bad pattern is the batch's to report).
    pub fn settings(&self) -> BatchSettings {
        BatchSettings {
            include_subfolders: self.include_subfolders,
            mirror: self.mirror,
            format: self.format,
            background: self.background,
            jpeg_quality: self.jpeg_quality.clamp(1, 100),
            pattern: self.pattern.clone(),
            if_exists: self.if_exists,
            quality: self.quality,
            ..BatchSettings::default()
        }
    }
}

impl Default for Preferences {
    fn default() -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            format: OutputFormat::default(),
            finish: FinishSettings::default(),
            background: SavedBackground::default(),
            brush: SavedBrush::default(),
            page: Page::default(),
            appearance: Appearance::default(),
            best_quality: false,
            // On: scripts/bench-first-minute measured the full result 5.9 %
            // later with it (it runs on its own thread), under the 10 % bar.
            instant_preview: true,
            batch: SavedBatch::default(),
            speed: crate::engine::inference::Speed::Balanced,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("could not {action} ({source}): {}", path.display())]
pub struct PreferencesError {
    pub action: &'static str,
    pub source: std::io::Error,
    pub path: PathBuf,
}

/// Reads the preferences from `config_dir`. Missing means the defaults; a
/// file that cannot be read or parsed also means the defaults, with the
/// reason (the file is left alone until the next change is saved).
pub fn load(config_dir: &Path) -> (Preferences, Option<PreferencesError>) {
    let path = config_dir.join(PREFERENCES_FILE);
    let text = match crate::limits::read_settings_text(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return (Preferences::default(), None);
        }
        Err(source) => {
            let error = PreferencesError {
                action: "read the preferences",
                source,
                path,
            };
            return (Preferences::default(), Some(error));
        }
    };
    match ron::from_str::<Preferences>(&text) {
        Ok(mut prefs) => {
            prefs.brush = prefs.brush.clamped();
            (prefs, None)
        }
        Err(e) => {
            let error = PreferencesError {
                action: "read the preferences",
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
                path,
            };
            (Preferences::default(), Some(error))
        }
    }
}

/// Writes the preferences atomically (the old file or the new one, never a
/// torn one), readable by the owner only.
pub fn save(config_dir: &Path, prefs: &Preferences) -> Result<(), PreferencesError> {
    let path = config_dir.join(PREFERENCES_FILE);
    let err = |action| {
        let path = path.clone();
        move |source| PreferencesError {
            action,
            source,
            path,
        }
    };
    crate::fsutil::private_dir(config_dir).map_err(err("create the settings folder"))?;
    let text = ron::ser::to_string_pretty(prefs, ron::ser::PrettyConfig::default())
        .map_err(|e| std::io::Error::other(e.to_string()))
        .map_err(err("write the preferences"))?;
    crate::fsutil::write_atomically(&path, text.as_bytes(), crate::fsutil::Access::Private)
        .map_err(err("write the preferences"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::layout::Shadow;

    #[test]
    fn a_fresh_profile_has_the_defaults_and_no_error() {
        let dir = tempfile::tempdir().unwrap();
        let (prefs, error) = load(dir.path());
        assert_eq!(prefs, Preferences::default());
        assert!(error.is_none());
        assert!(
            prefs.finish.edges.despill,
            "colour decontamination is the default"
        );
        assert!(prefs.instant_preview);
    }

    #[test]
    fn saved_preferences_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut prefs = Preferences {
            format: OutputFormat::Webp,
            background: SavedBackground::Colour([10, 20, 30]),
            page: Page::Batch,
            appearance: Appearance::Dark,
            best_quality: true,
            instant_preview: false,
            brush: SavedBrush {
                radius: 64.0,
                hardness: 0.25,
            },
            ..Preferences::default()
        };
        prefs.finish.edges.feather = 2.5;
        prefs.finish.layout.shadow = Some(Shadow::default());
        prefs.batch = SavedBatch {
            include_subfolders: false,
            format: OutputFormat::Jpeg,
            background: Rgb8([250, 250, 240]),
            jpeg_quality: 85,
            pattern: "{name}-cut.{ext}".into(),
            if_exists: IfExists::KeepBoth,
            quality: Quality::Best,
            keep_watching: true,
            ..SavedBatch::default()
        };
        save(dir.path(), &prefs).unwrap();
        assert_eq!(load(dir.path()).0, prefs);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(PREFERENCES_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "owner only: {mode:o}");
        }
    }

    #[test]
    fn a_broken_file_means_the_defaults_and_says_which_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(PREFERENCES_FILE);
        std::fs::write(&path, "(format: Gif, oops").unwrap();
        let (prefs, error) = load(dir.path());
        assert_eq!(prefs, Preferences::default());
        let message = error.unwrap().to_string();
        assert!(message.ends_with(&path.display().to_string()), "{message}");
        // Left alone: the user may want to mend it.
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "(format: Gif, oops"
        );
    }

    #[test]
    fn a_file_from_an_older_version_keeps_what_it_has() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(PREFERENCES_FILE), "(format: Jpeg)").unwrap();
        let (prefs, error) = load(dir.path());
        assert!(error.is_none());
        assert_eq!(prefs.format, OutputFormat::Jpeg);
        assert_eq!(prefs.background, SavedBackground::Transparent);
    }

    #[test]
    fn a_brush_out_of_range_comes_back_within_the_sliders() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(PREFERENCES_FILE),
            "(brush: (radius: 1e9, hardness: -3.0))",
        )
        .unwrap();
        let (prefs, error) = load(dir.path());
        assert!(error.is_none());
        assert_eq!(prefs.brush.radius, *SavedBrush::RADIUS_RANGE.end());
        assert_eq!(prefs.brush.hardness, 0.0);
    }
}
