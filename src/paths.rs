//! Where the app keeps its files: one root per kind (config, data, cache),
//! overridable with `BACKGROUNDERASE_HOME` for portable installs and tests.

use std::env;
use std::path::{Path, PathBuf};

/// Environment variable that moves every file the app owns under one folder.
pub const HOME_ENV: &str = "BACKGROUNDERASE_HOME";

/// No home folder and no `BACKGROUNDERASE_HOME` (some service accounts).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error(
    "there is no home folder to keep settings and models in; set BACKGROUNDERASE_HOME to a folder of your own"
)]
pub struct NoHome;

/// The folders the app reads and writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppDirs {
    /// Settings and the consent ledger.
    pub config: PathBuf,
    /// Models and the ONNX Runtime installed by `backgrounderase setup`.
    pub data: PathBuf,
    /// Downloads kept so that setup can run again offline.
    pub cache: PathBuf,
}

impl AppDirs {
    /// Resolves the folders from `BACKGROUNDERASE_HOME`, else the platform's
    /// conventional locations (XDG on Linux, `Application Support` on macOS,
    /// `%APPDATA%` on Windows). With neither there is no place of the user's
    /// own to keep anything: an error, never the current folder.
    pub fn discover() -> Result<Self, NoHome> {
        if let Some(home) = env::var_os(HOME_ENV).filter(|v| !v.is_empty()) {
            return Ok(Self::under(Path::new(&home)));
        }
        let dirs = directories::ProjectDirs::from("app", "BackgroundErase", "backgrounderase")
            .ok_or(NoHome)?;
        Ok(Self {
            config: dirs.config_dir().to_path_buf(),
            data: dirs.data_dir().to_path_buf(),
            cache: dirs.cache_dir().to_path_buf(),
        })
    }

    /// All folders under one root, as used by `BACKGROUNDERASE_HOME`.
    pub fn under(root: &Path) -> Self {
        Self {
            config: root.join("config"),
            data: root.join("data"),
            cache: root.join("cache"),
        }
    }

    /// Where `setup` installs models and where the app looks first.
    pub fn models_dir(&self) -> PathBuf {
        self.data.join("models")
    }

    /// Where `setup` installs the ONNX Runtime shared library.
    pub fn runtime_dir(&self) -> PathBuf {
        self.data.join("runtime")
    }

    /// Copies derived from installed models (fp32 versions of fp16 models
    /// for the CPU); safe to delete, remade on the next load.
    pub fn derived_models_dir(&self) -> PathBuf {
        self.cache.join("derived-models")
    }

    /// Downloaded wheels and npm tarballs, reused by later setups.
    pub fn downloads_dir(&self) -> PathBuf {
        self.cache.join("downloads")
    }
}

/// The folder holding the running executable, if it can be found.
pub fn executable_dir() -> Option<PathBuf> {
    env::current_exe()
        .ok()
        .and_then(|exe| exe.canonicalize().ok())
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn under_keeps_every_folder_inside_the_root() {
        let dirs = AppDirs::under(Path::new("/portable"));
        for dir in [&dirs.config, &dirs.data, &dirs.cache] {
            assert!(dir.starts_with("/portable"), "{dir:?}");
        }
        assert_eq!(dirs.models_dir(), Path::new("/portable/data/models"));
        assert_eq!(dirs.runtime_dir(), Path::new("/portable/data/runtime"));
    }
}
