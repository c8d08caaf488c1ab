//! Settings and consent, persisted as RON in the config folder.
//!
//! Missing, unreadable or corrupt settings mean **opted out**. A corrupt file
//! is moved aside (never silently overwritten) and the caller is told, so the
//! user can be shown a notice.

use std::fs;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Bumped when the file's shape changes incompatibly.
pub const SCHEMA_VERSION: u32 = 1;

pub const SETTINGS_FILE: &str = "settings.ron";

/// Default cap on what is kept locally when the user has opted in.
pub const DEFAULT_CACHE_CAP_BYTES: u64 = 2 * 1024 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub schema_version: u32,
    /// The single gate: keeping anything past 24 hours, and uploading for
    /// model training. Off unless the user turns it on.
    pub opted_in: bool,
    /// Where training uploads go (only ever used when opted in).
    pub upload_url: Option<String>,
    /// What may be kept locally when opted in.
    pub cache_cap_bytes: u64,
    /// npm registry for model downloads (a company mirror); the public
    /// registry when unset. Only used when the user starts a download.
    pub npm_registry: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            opted_in: false,
            upload_url: None,
            cache_cap_bytes: DEFAULT_CACHE_CAP_BYTES,
            npm_registry: None,
        }
    }
}

/// Why the settings could not be used as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadNotice {
    /// The file was unreadable or corrupt; it was kept at `moved_to`.
    Corrupt { detail: String, moved_to: PathBuf },
    /// Written by a newer version of the app: read as opted out, left untouched.
    NewerSchema { found: u32 },
}

impl LoadNotice {
    pub fn message(&self) -> String {
        match self {
            LoadNotice::Corrupt { detail, moved_to } => format!(
                "Your settings could not be read ({detail}). You are opted out until you choose otherwise; the old file was kept at {}",
                moved_to.display()
            ),
            LoadNotice::NewerSchema { found } => format!(
                "Your settings come from a newer version of the app (schema {found}). You are opted out in this version."
            ),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot {action} ({source}): {}", path.display())]
pub struct SettingsError {
    pub action: &'static str,
    pub source: std::io::Error,
    pub path: PathBuf,
}

/// Reads the settings from `config_dir`; never fails: anything wrong means
/// the defaults (opted out), plus a notice when the user should hear of it.
pub fn load(config_dir: &Path, now: DateTime<Utc>) -> (Settings, Option<LoadNotice>) {
    let path = config_dir.join(SETTINGS_FILE);
    let text = match crate::limits::read_settings_text(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (Settings::default(), None),
        Err(e) => {
            return (
                Settings::default(),
                Some(set_aside(&path, e.to_string(), now)),
            );
        }
    };
    match ron::from_str::<Settings>(&text) {
        Ok(settings) if settings.schema_version > SCHEMA_VERSION => (
            Settings::default(),
            Some(LoadNotice::NewerSchema {
                found: settings.schema_version,
            }),
        ),
        Ok(settings) => (settings, None),
        Err(e) => (
            Settings::default(),
            Some(set_aside(&path, e.to_string(), now)),
        ),
    }
}

/// Whether the settings file on disk says opted in, read without side
/// effects: anything unreadable is "no". See [`consent_on_disk`] for what
/// background threads ask.
pub fn opted_in_on_disk(config_dir: &Path) -> bool {
    crate::limits::read_settings_text(&config_dir.join(SETTINGS_FILE))
        .ok()
        .and_then(|t| ron::from_str::<Settings>(&t).ok())
        .is_some_and(|s| s.schema_version <= SCHEMA_VERSION && s.opted_in)
}

/// The file that records an opt-out the settings could not take (a full
/// disk, a read-only config folder): while it exists the user is opted out,
/// whatever `settings.ron` says. In the data folder, so that it can be
/// written when the config folder cannot.
pub const WITHDRAWN_FILE: &str = "consent-withdrawn";

pub fn withdrawal_marker(data_dir: &Path) -> PathBuf {
    data_dir.join(WITHDRAWN_FILE)
}

/// Consent as recorded on disk at this moment: opted in by the settings
/// and no withdrawal pending. Background threads ask this at the moment of
/// acting, so a change made elsewhere (the admin CLI while the app runs) is
/// respected.
pub fn consent_on_disk(config_dir: &Path, data_dir: &Path) -> bool {
    opted_in_on_disk(config_dir) && !withdrawal_marker(data_dir).exists()
}

/// Moves a bad settings file out of the way, keeping it for the user.
fn set_aside(path: &Path, detail: String, now: DateTime<Utc>) -> LoadNotice {
    let moved_to = path.with_file_name(format!(
        "{SETTINGS_FILE}.corrupt-{}",
        now.format("%Y%m%dT%H%M%SZ")
    ));
    match fs::rename(path, &moved_to) {
        Ok(()) => LoadNotice::Corrupt { detail, moved_to },
        // Could not move it: leave it where it is, untouched.
        Err(_) => LoadNotice::Corrupt {
            detail,
            moved_to: path.to_path_buf(),
        },
    }
}

/// Writes the settings atomically (temporary file, flushed, renamed; the
/// folder flushed), readable by the owner only.
pub fn save(config_dir: &Path, settings: &Settings) -> Result<(), SettingsError> {
    let path = config_dir.join(SETTINGS_FILE);
    let err = |action| {
        let path = path.clone();
        move |source| SettingsError {
            action,
            source,
            path,
        }
    };
    crate::fsutil::private_dir(config_dir).map_err(err("create the settings folder"))?;
    let text = ron::ser::to_string_pretty(settings, ron::ser::PrettyConfig::default())
        .map_err(|e| std::io::Error::other(e.to_string()))
        .map_err(err("write settings"))?;
    crate::fsutil::write_atomically(&path, text.as_bytes(), crate::fsutil::Access::Private)
        .map_err(err("write settings"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-11-29T10:00:00Z".parse().unwrap()
    }

    #[test]
    fn a_fresh_profile_is_opted_out() {
        let dir = tempfile::tempdir().unwrap();
        let (settings, notice) = load(dir.path(), now());
        assert!(!settings.opted_in);
        assert_eq!(notice, None);
    }

    #[test]
    fn saved_settings_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings {
            opted_in: true,
            ..Settings::default()
        };
        save(dir.path(), &settings).unwrap();
        assert_eq!(load(dir.path(), now()).0, settings);
    }

    #[test]
    fn a_corrupt_file_means_opted_out_and_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SETTINGS_FILE);
        fs::write(&path, "(opted_in: tru").unwrap();
        let (settings, notice) = load(dir.path(), now());
        assert!(!settings.opted_in);
        let Some(LoadNotice::Corrupt { moved_to, .. }) = notice else {
            panic!("{notice:?}")
        };
        assert_eq!(fs::read_to_string(&moved_to).unwrap(), "(opted_in: tru");
        assert!(
            !path.exists(),
            "the corrupt file is moved aside, not overwritten later"
        );
    }

    #[test]
    fn a_newer_schema_is_read_as_opted_out_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SETTINGS_FILE);
        fs::write(&path, "(schema_version: 99, opted_in: true)").unwrap();
        let (settings, notice) = load(dir.path(), now());
        assert!(!settings.opted_in);
        assert_eq!(notice, Some(LoadNotice::NewerSchema { found: 99 }));
        assert!(path.exists());
    }
}
