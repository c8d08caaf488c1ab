//! Export presets: a named, complete export spec (format and JPEG quality,
//! background, edges, crop, canvas, subject fill, maximum size, shadow,
//! quality pass and file-name pattern). Built-in ones cover common
//! marketplace and social specs; the user's own live in `presets.ron` in the
//! config folder (atomic, owner-only). A preset never holds an image's name
//! or path: only settings.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::engine::encode::{OutputFormat, Rgb8};
use crate::engine::finish::FinishSettings;
use crate::engine::layout::{Canvas, LayoutSettings};
use crate::engine::quality::Quality;
use crate::engine::refine::EdgeSettings;

pub const PRESETS_FILE: &str = "presets.ron";

/// One named export spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Preset {
    pub name: String,
    pub format: OutputFormat,
    /// 1–100, for JPEG.
    pub jpeg_quality: u8,
    /// What shows through: `None` keeps transparency (a JPEG, which has
    /// none, gets white).
    pub background: Option<Rgb8>,
    pub finish: FinishSettings,
    pub quality: Quality,
    /// Output name: `{name}` = input name without extension, `{ext}` = the
    /// format's.
    pub pattern: String,
}

impl Default for Preset {
    fn default() -> Self {
        Self {
            name: String::new(),
            format: OutputFormat::Png,
            jpeg_quality: 92,
            background: None,
            finish: FinishSettings::default(),
            quality: Quality::Standard,
            pattern: "{name}.{ext}".into(),
        }
    }
}

impl Preset {
    /// The background colour the encoder flattens on (white when the
    /// preset keeps transparency but the format has none).
    pub fn background_colour(&self) -> Rgb8 {
        self.background.unwrap_or_default()
    }

    /// One line for lists: "JPEG 92 on #ffffff · 2000x2000 · fill 85 % · …".
    pub fn summary(&self) -> String {
        let mut parts = vec![match self.format {
            OutputFormat::Jpeg => format!("JPEG {}", self.jpeg_quality),
            OutputFormat::Png => "PNG".into(),
            OutputFormat::Webp => "WebP".into(),
            OutputFormat::Mask => "mask PNG".into(),
        }];
        match self.background {
            Some(colour) => parts.push(format!("on {colour}")),
            None if self.format == OutputFormat::Jpeg => parts.push("on #ffffff".into()),
            None => parts.push("transparent".into()),
        }
        let layout = &self.finish.layout;
        if layout.canvas != Canvas::Original {
            parts.push(format!("canvas {}", layout.canvas));
        }
        if let Some(fill) = layout.subject_fill {
            parts.push(format!("subject fills {fill} %"));
        } else if let Some(margin) = layout.crop_margin {
            parts.push(format!("crop margin {margin}"));
        }
        if let Some(side) = layout.max_side {
            parts.push(format!("max {side} px"));
        }
        if layout.shadow.is_some() {
            parts.push("shadow".into());
        }
        if self.quality == Quality::Best {
            parts.push("best quality".into());
        }
        parts.join(" · ")
    }
}

/// The presets that come with the app.
pub fn built_in() -> Vec<Preset> {
    let white = Some(Rgb8([255, 255, 255]));
    vec![
        Preset {
            name: "Marketplace: white, square 2000 px, subject fills 85 %".into(),
            format: OutputFormat::Jpeg,
            jpeg_quality: 92,
            background: white,
            finish: FinishSettings {
                edges: EdgeSettings::default(),
                layout: LayoutSettings {
                    canvas: Canvas::Size(2000, 2000),
                    subject_fill: Some(85.0),
                    ..Default::default()
                },
            },
            ..Default::default()
        },
        Preset {
            name: "Transparent PNG, full size".into(),
            ..Default::default()
        },
        Preset {
            name: "Social 4:5 1080×1350".into(),
            format: OutputFormat::Jpeg,
            jpeg_quality: 90,
            background: white,
            finish: FinishSettings {
                edges: EdgeSettings::default(),
                layout: LayoutSettings {
                    canvas: Canvas::Size(1080, 1350),
                    subject_fill: Some(80.0),
                    shadow: Some(Default::default()),
                    ..Default::default()
                },
            },
            ..Default::default()
        },
    ]
}

#[derive(Debug, thiserror::Error)]
pub enum PresetError {
    #[error("could not {action} ({source}): {}", path.display())]
    Io {
        action: &'static str,
        source: std::io::Error,
        path: PathBuf,
    },
    #[error("no preset is called '{name}' (see `backgrounderase presets list`)")]
    Unknown { name: String },
    #[error("'{name}' is a built-in preset; save yours under another name")]
    BuiltIn { name: String },
    #[error("a preset needs a name")]
    EmptyName,
}

/// The user's presets in `config_dir` (none when the file is missing). A
/// file that cannot be read or parsed is an error naming it; it is left
/// alone.
pub fn load_user(config_dir: &Path) -> Result<Vec<Preset>, PresetError> {
    let path = config_dir.join(PRESETS_FILE);
    let text = match crate::limits::read_settings_text(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(PresetError::Io {
                action: "read the presets",
                source,
                path,
            });
        }
    };
    ron::from_str::<Vec<Preset>>(&text).map_err(|e| PresetError::Io {
        action: "read the presets",
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
        path,
    })
}

/// Writes the user's presets atomically, owner-only.
pub fn save_user(config_dir: &Path, presets: &[Preset]) -> Result<(), PresetError> {
    let path = config_dir.join(PRESETS_FILE);
    let io = |action| {
        let path = path.clone();
        move |source| PresetError::Io {
            action,
            source,
            path,
        }
    };
    crate::fsutil::private_dir(config_dir).map_err(io("create the settings folder"))?;
    let text = ron::ser::to_string_pretty(presets, ron::ser::PrettyConfig::default())
        .map_err(|e| std::io::Error::other(e.to_string()))
        .map_err(io("write the presets"))?;
    crate::fsutil::write_atomically(&path, text.as_bytes(), crate::fsutil::Access::Private)
        .map_err(io("write the presets"))
}

/// Every preset: the built-in ones, then the user's.
pub fn all(config_dir: &Path) -> Result<Vec<Preset>, PresetError> {
    let mut presets = built_in();
    presets.extend(load_user(config_dir)?);
    Ok(presets)
}

/// The preset called `name` (case and surrounding spaces ignored; a unique
/// prefix is enough, so `--preset marketplace` works).
pub fn find(config_dir: &Path, name: &str) -> Result<Preset, PresetError> {
    let wanted = name.trim().to_lowercase();
    let presets = all(config_dir)?;
    if let Some(exact) = presets.iter().find(|p| p.name.to_lowercase() == wanted) {
        return Ok(exact.clone());
    }
    let mut starting = presets
        .iter()
        .filter(|p| !wanted.is_empty() && p.name.to_lowercase().starts_with(&wanted));
    match (starting.next(), starting.next()) {
        (Some(only), None) => Ok(only.clone()),
        _ => Err(PresetError::Unknown {
            name: name.to_string(),
        }),
    }
}

/// Saves `preset` among the user's presets, replacing one of the same name.
pub fn save_as(config_dir: &Path, preset: Preset) -> Result<(), PresetError> {
    let name = preset.name.trim().to_string();
    if name.is_empty() {
        return Err(PresetError::EmptyName);
    }
    if built_in()
        .iter()
        .any(|p| p.name.eq_ignore_ascii_case(&name))
    {
        return Err(PresetError::BuiltIn { name });
    }
    let mut presets = load_user(config_dir)?;
    presets.retain(|p| !p.name.eq_ignore_ascii_case(&name));
    presets.push(Preset { name, ..preset });
    save_user(config_dir, &presets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_ins_are_complete_specs_with_unique_names() {
        let presets = built_in();
        assert_eq!(presets.len(), 3);
        let market = &presets[0];
        assert_eq!(market.format, OutputFormat::Jpeg);
        assert_eq!(market.finish.layout.canvas, Canvas::Size(2000, 2000));
        assert_eq!(market.finish.layout.subject_fill, Some(85.0));
        assert_eq!(
            market.summary(),
            "JPEG 92 · on #ffffff · canvas 2000x2000 · subject fills 85 %"
        );
        assert_eq!(presets[1].summary(), "PNG · transparent");
        let mut names: Vec<_> = presets.iter().map(|p| p.name.to_lowercase()).collect();
        names.dedup();
        assert_eq!(names.len(), 3);
    }

    #[test]
    fn user_presets_round_trip_atomically_and_are_found_by_prefix() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load_user(dir.path()).unwrap().is_empty());
        let mine = Preset {
            name: "Etsy square".into(),
            format: OutputFormat::Webp,
            finish: FinishSettings {
                layout: LayoutSettings {
                    canvas: Canvas::Ratio(1, 1),
                    max_side: Some(1600),
                    ..Default::default()
                },
                ..Default::default()
            },
            ..Default::default()
        };
        save_as(dir.path(), mine.clone()).unwrap();
        assert_eq!(load_user(dir.path()).unwrap(), vec![mine.clone()]);
        assert_eq!(find(dir.path(), "  etsy SQUARE ").unwrap(), mine);
        assert_eq!(find(dir.path(), "ets").unwrap(), mine);
        assert_eq!(find(dir.path(), "marketplace").unwrap(), built_in()[0]);
        // Saving again under the same name replaces it.
        save_as(
            dir.path(),
            Preset {
                jpeg_quality: 70,
                ..mine.clone()
            },
        )
        .unwrap();
        assert_eq!(load_user(dir.path()).unwrap().len(), 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(PRESETS_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let text = std::fs::read_to_string(dir.path().join(PRESETS_FILE)).unwrap();
        assert!(!text.contains('/'), "no paths in presets: {text}");
    }

    #[test]
    fn unknown_ambiguous_built_in_and_broken_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let unknown = find(dir.path(), "billboard").unwrap_err().to_string();
        assert!(unknown.contains("'billboard'"), "{unknown}");
        assert!(find(dir.path(), "").is_err());
        let clash = save_as(
            dir.path(),
            Preset {
                name: "transparent png, full size".into(),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(matches!(clash, PresetError::BuiltIn { .. }), "{clash}");
        assert!(matches!(
            save_as(dir.path(), Preset::default()).unwrap_err(),
            PresetError::EmptyName
        ));
        std::fs::write(dir.path().join(PRESETS_FILE), "[(name: 3").unwrap();
        let broken = load_user(dir.path()).unwrap_err().to_string();
        assert!(broken.contains(PRESETS_FILE), "{broken}");
    }
}
