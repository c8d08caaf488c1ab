//! The model catalog (`models/catalog.ron`, compiled into the binary) and the
//! lookup of installed model files.

use std::env;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::paths::{AppDirs, executable_dir};

/// Extra folder to search for model files, before the standard ones.
pub const MODEL_DIR_ENV: &str = "BACKGROUNDERASE_MODEL_DIR";

const BUILTIN_CATALOG: &str = include_str!("../../models/catalog.ron");

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelCatalog {
    pub default_model: String,
    pub models: Vec<ModelEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelEntry {
    pub id: String,
    pub display_name: String,
    pub description: String,
    /// File name looked up in the model folders.
    pub file: String,
    pub source: ModelSource,
    pub checksum: Checksum,
    pub size_bytes: Option<u64>,
    pub license: License,
    /// Width and height the network expects.
    pub input_size: (u32, u32),
    /// Graph input name; `None` uses the graph's first input.
    pub input: Option<String>,
    /// Graph output fetched; `None` uses the graph's first output.
    pub output: Option<String>,
    pub normalization: Normalization,
    pub postprocess: PostProcess,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ModelSource {
    /// A public HTTPS address.
    Url(String),
    /// A resource inside an npm package, stored as chunk files listed in the
    /// package's `dist/resources.json` (IMG.LY's layout).
    NpmPackage {
        package: String,
        version: String,
        resource: String,
        /// npm's integrity hash of the package tarball, checked when the app
        /// downloads the tarball itself.
        #[serde(default)]
        tarball_sha512: Option<String>,
        /// The tarball's size, shown before a download starts.
        #[serde(default)]
        tarball_bytes: Option<u64>,
    },
    /// A file inside a Python wheel on PyPI (a zip at an HTTPS address): the
    /// wheel is checked against `wheel_sha256` (PyPI's own digest) before the
    /// `member` is taken out, and the member against the entry's checksum.
    PypiWheel {
        url: String,
        wheel_sha256: String,
        /// The wheel's size, shown before a download starts.
        #[serde(default)]
        wheel_bytes: Option<u64>,
        member: String,
    },
    /// A file the user imported that matches no catalog entry.
    Imported,
}

/// The public npm registry, used when the settings name no other.
pub const DEFAULT_NPM_REGISTRY: &str = "https://registry.npmjs.org";

impl ModelSource {
    /// The address a download of this source fetches, if it has one:
    /// the file itself, or the npm package tarball holding it.
    pub fn download_url(&self, npm_registry: &str) -> Option<String> {
        match self {
            ModelSource::Url(url) | ModelSource::PypiWheel { url, .. } => Some(url.clone()),
            ModelSource::NpmPackage {
                package, version, ..
            } => {
                // `@scope/name` → `<registry>/@scope/name/-/name-<version>.tgz`.
                let base = package.rsplit('/').next().unwrap_or(package);
                Some(format!(
                    "{}/{package}/-/{base}-{version}.tgz",
                    npm_registry.trim_end_matches('/')
                ))
            }
            ModelSource::Imported => None,
        }
    }

    /// How many bytes a download of this source fetches, if known.
    pub fn download_bytes(&self, model_bytes: Option<u64>) -> Option<u64> {
        match self {
            ModelSource::Url(_) => model_bytes,
            ModelSource::NpmPackage { tarball_bytes, .. } => *tarball_bytes,
            ModelSource::PypiWheel { wheel_bytes, .. } => *wheel_bytes,
            ModelSource::Imported => None,
        }
    }

    /// Where a download comes from, for the user: the host name.
    pub fn host(&self, npm_registry: &str) -> Option<String> {
        let url = self.download_url(npm_registry)?;
        let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
        Some(rest.split('/').next().unwrap_or(rest).to_string())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Checksum {
    Sha256(String),
    /// npm's tarball integrity (hex of the SRI sha512).
    Sha512(String),
    /// Only where upstream publishes nothing stronger.
    Md5(String),
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Checksum::Sha256(hex) => write!(f, "sha256 {hex}"),
            Checksum::Sha512(hex) => write!(f, "sha512 {hex}"),
            Checksum::Md5(hex) => write!(f, "md5 {hex}"),
        }
    }
}

impl Checksum {
    pub fn hex(&self) -> &str {
        match self {
            Checksum::Sha256(hex) | Checksum::Sha512(hex) | Checksum::Md5(hex) => hex,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct License {
    /// SPDX-style name.
    pub name: String,
    /// `false` flags a licence that forbids commercial use.
    pub commercial_use: bool,
    pub note: String,
}

/// `value = (pixel - mean) / std` on 0..255 pixel values, per RGB channel.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    pub mean: (f32, f32, f32),
    pub std: (f32, f32, f32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PostProcess {
    /// The output already is alpha in 0..1.
    None,
    /// Stretch the output's range to 0..1 (U²-Net family).
    MinMax,
    /// The output is logits (BiRefNet).
    Sigmoid,
}

impl ModelCatalog {
    /// The catalog shipped with the app.
    #[allow(
        clippy::expect_used,
        reason = "the built-in catalog is parsed by a unit test"
    )]
    pub fn builtin() -> Self {
        Self::parse(BUILTIN_CATALOG).expect("models/catalog.ron is checked by the test suite")
    }

    pub fn parse(text: &str) -> Result<Self, ron::error::SpannedError> {
        ron::from_str(text)
    }

    pub fn get(&self, id: &str) -> Option<&ModelEntry> {
        self.models.iter().find(|m| m.id == id)
    }

    #[allow(
        clippy::expect_used,
        reason = "a unit test checks the built-in default is listed"
    )]
    pub fn default_entry(&self) -> &ModelEntry {
        self.get(&self.default_model)
            .expect("the default model is listed in the catalog")
    }

    /// The entry for `id`, or an error naming the ids that exist.
    pub fn require(&self, id: &str) -> Result<&ModelEntry, Error> {
        self.get(id).ok_or_else(|| Error::UnknownModel {
            id: id.to_string(),
            known: self
                .models
                .iter()
                .map(|m| m.id.clone())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }
}

/// The folders searched for model files, most specific first.
pub fn model_search_dirs(dirs: &AppDirs) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(dir) = env::var_os(MODEL_DIR_ENV).filter(|v| !v.is_empty()) {
        out.push(PathBuf::from(dir));
    }
    out.push(dirs.models_dir());
    if let Some(exe) = executable_dir() {
        out.push(exe.join("models"));
        // Installed layout: <prefix>/bin/backgrounderase + <prefix>/share/backgrounderase/models.
        if let Some(prefix) = exe.parent() {
            out.push(prefix.join("share/backgrounderase/models"));
        }
        // macOS bundle: Contents/MacOS/backgrounderase + Contents/Resources/models.
        if cfg!(target_os = "macos")
            && let Some(contents) = exe.parent()
        {
            out.push(contents.join("Resources/models"));
        }
    }
    out
}

/// Where the model's file is installed, if it is.
pub fn find_installed(entry: &ModelEntry, dirs: &AppDirs) -> Option<PathBuf> {
    model_search_dirs(dirs)
        .into_iter()
        .map(|dir| dir.join(&entry.file))
        .find(|path| path.is_file())
}

/// The installed model file, or an error saying how to get it.
pub fn require_installed(entry: &ModelEntry, dirs: &AppDirs) -> Result<PathBuf, Error> {
    find_installed(entry, dirs).ok_or_else(|| Error::ModelNotInstalled {
        id: entry.id.clone(),
        how_to_get: how_to_get(entry, &dirs.models_dir()),
    })
}

/// Plain instructions for installing a model that is missing.
pub fn how_to_get(entry: &ModelEntry, models_dir: &Path) -> String {
    match &entry.source {
        ModelSource::NpmPackage { .. } => format!(
            "run `backgrounderase setup --model {}` (fetches it with npm, checks {})",
            entry.id, entry.checksum
        ),
        ModelSource::Url(url) => format!(
            "download it in the app's Models page or from {url}, check its {}, and save it as {}",
            entry.checksum,
            models_dir.join(&entry.file).display()
        ),
        ModelSource::PypiWheel { .. } => format!(
            "download it in the app's Models page or with `backgrounderase models download {}`",
            entry.id
        ),
        ModelSource::Imported => format!(
            "import its file again in the app's Models page (expected {}, {})",
            entry.checksum,
            models_dir.join(&entry.file).display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalog_parses_and_lists_the_required_models() {
        let catalog = ModelCatalog::builtin();
        for id in [
            "isnet-imgly-medium",
            "isnet-imgly-small",
            "isnet-general-use",
            "u2net",
            "u2netp",
            "silueta",
            "birefnet-general-lite",
        ] {
            let entry = catalog.get(id).unwrap_or_else(|| panic!("{id} missing"));
            match &entry.checksum {
                Checksum::Sha256(hex) => assert_eq!(hex.len(), 64, "{id}"),
                Checksum::Md5(hex) => assert_eq!(hex.len(), 32, "{id}"),
                Checksum::Sha512(hex) => assert_eq!(hex.len(), 128, "{id}"),
            }
            if let Some(url) = entry.source.download_url(DEFAULT_NPM_REGISTRY) {
                assert!(url.starts_with("https://"), "{id}: {url}");
            }
        }
        // The preview model comes from a registry (PyPI), not from GitHub.
        let preview = catalog.get("u2netp").unwrap();
        assert!(matches!(
            &preview.source,
            ModelSource::PypiWheel { member, .. } if member == "rembg/u2netp.onnx"
        ));
        assert_eq!(
            preview.source.host(DEFAULT_NPM_REGISTRY).as_deref(),
            Some("files.pythonhosted.org")
        );
        assert_eq!(catalog.default_entry().id, "isnet-imgly-medium");
    }

    #[test]
    fn model_ids_and_files_are_unique() {
        let catalog = ModelCatalog::builtin();
        let mut ids: Vec<_> = catalog.models.iter().map(|m| &m.id).collect();
        let mut files: Vec<_> = catalog.models.iter().map(|m| &m.file).collect();
        ids.sort();
        ids.dedup();
        files.sort();
        files.dedup();
        assert_eq!(ids.len(), catalog.models.len());
        assert_eq!(files.len(), catalog.models.len());
    }

    #[test]
    fn unknown_model_error_lists_known_ids() {
        let catalog = ModelCatalog::builtin();
        let err = catalog.require("nope").unwrap_err().to_string();
        assert!(err.contains("nope") && err.contains("u2net"), "{err}");
    }

    #[test]
    fn missing_url_model_says_where_to_put_it() {
        let catalog = ModelCatalog::builtin();
        let tmp = tempfile::tempdir().unwrap();
        let dirs = AppDirs::under(tmp.path());
        let entry = catalog.get("u2net").unwrap();
        let err = require_installed(entry, &dirs).unwrap_err().to_string();
        assert!(err.contains("u2net.onnx"), "{err}");
        assert!(err.contains("https://github.com/danielgatis"), "{err}");
        assert!(err.contains("sha256 8d10d2f3"), "{err}");
    }
}
