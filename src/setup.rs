//! `backgrounderase setup`: installs the ONNX Runtime library and models into
//! the user's data folder, using only the ordinary registry clients (pip for
//! the runtime wheel, npm for IMG.LY's model package). Downloads are cached,
//! so a second run — or a run on a machine with a warm cache — needs no network.
//! Everything is checked against pinned checksums before it is put in place.

use std::env;
use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::checksum::{self, ChecksumMismatch};
use crate::engine::runtime::{LIBRARY_NAME, ORT_VERSION};
use crate::models::catalog::{ModelEntry, ModelSource};
use crate::models::npm::{assemble_npm_resource, npm_tarball_name};
use crate::paths::AppDirs;

/// The PyPI package whose wheel carries the CPU runtime.
pub const DEFAULT_RUNTIME_PACKAGE: &str = "onnxruntime";

/// sha256 of the runtime library inside the pinned wheel, per platform.
/// Platforms without an entry rely on pip's own hash check of the wheel.
const PINNED_LIBRARY_SHA256: &[(&str, &str, &str)] = &[(
    "onnxruntime",
    "linux-x86_64",
    "fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3",
)];

/// sha256 of every runtime wheel pip may fetch (all platforms, Python
/// versions and runtime packages), from `scripts/pin-runtime-wheels`.
const RUNTIME_WHEEL_PINS: &str = include_str!("../packaging/runtime-wheels.sha256");

/// Every pin as (sha256, wheel file name).
fn wheel_pins() -> impl Iterator<Item = (&'static str, &'static str)> {
    RUNTIME_WHEEL_PINS
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once("  "))
}

/// The pinned sha256 of a wheel, by its file name.
pub fn pinned_wheel_sha256(wheel_name: &str) -> Option<&'static str> {
    wheel_pins()
        .find(|(_, name)| *name == wheel_name)
        .map(|(sha, _)| sha)
}

/// Every pinned sha256 of `package`'s wheels at `version`.
fn pinned_wheels(package: &str, version: &str) -> Vec<&'static str> {
    let prefix = format!("{}-{version}-", package.replace('-', "_"));
    wheel_pins()
        .filter(|(_, name)| name.starts_with(&prefix))
        .map(|(sha, _)| sha)
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot {action} ({source}): {}", path.display())]
    Io {
        action: &'static str,
        source: std::io::Error,
        path: PathBuf,
    },
    #[error(
        "`{command}` failed ({detail}); check that it is installed and that its registry is reachable"
    )]
    Command { command: String, detail: String },
    #[error("{what} not found in the download ({detail}): {}", path.display())]
    MissingPart {
        what: String,
        detail: String,
        path: PathBuf,
    },
    #[error(transparent)]
    Checksum(#[from] ChecksumMismatch),
    #[error(
        "no pinned checksum for this wheel, so it is not installed (see packaging/runtime-wheels.sha256): {}",
        path.display()
    )]
    Unpinned { path: PathBuf },
    #[error(transparent)]
    Npm(#[from] crate::models::npm::NpmError),
    #[error(transparent)]
    Download(Box<crate::models::InstallError>),
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> SetupError {
    let path = path.to_path_buf();
    move |source| SetupError::Io {
        action,
        source,
        path,
    }
}

/// What setup did for one component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installed {
    AlreadyThere(PathBuf),
    Installed(PathBuf),
}

impl Installed {
    pub fn path(&self) -> &Path {
        match self {
            Installed::AlreadyThere(p) | Installed::Installed(p) => p,
        }
    }
}

pub struct Setup<'a> {
    pub dirs: &'a AppDirs,
    /// PyPI package for the runtime (`onnxruntime`, `onnxruntime-gpu`, `onnxruntime-directml`).
    pub runtime_package: String,
    pub log: &'a mut dyn FnMut(&str),
}

impl Setup<'_> {
    /// Puts the runtime library in `<data>/runtime`, unless the right one is there.
    pub fn ensure_runtime(&mut self) -> Result<Installed, SetupError> {
        let dir = self.dirs.runtime_dir();
        let target = dir.join(LIBRARY_NAME);
        let marker = dir.join("VERSION");
        let wanted = format!("{} {}", self.runtime_package, ORT_VERSION);
        if target.is_file() && fs::read_to_string(&marker).is_ok_and(|v| v.trim() == wanted) {
            return Ok(Installed::AlreadyThere(target));
        }
        let wheel = self.runtime_wheel()?;
        (self.log)(&format!("extracting ONNX Runtime from {}", wheel.display()));
        let libraries = extract_runtime_libraries(&wheel)?;
        fs::create_dir_all(&dir).map_err(io_err("create folder", &dir))?;
        for (name, bytes) in &libraries {
            let is_main = name == LIBRARY_NAME;
            if is_main && let Some(expected) = pinned_library_sha256(&self.runtime_package) {
                checksum::verify_sha256(bytes, expected, &wheel)?;
            }
            write_file(&dir.join(name), bytes)?;
        }
        write_file(&marker, wanted.as_bytes())?;
        (self.log)(&format!(
            "ONNX Runtime {ORT_VERSION} installed in {}",
            dir.display()
        ));
        Ok(Installed::Installed(target))
    }

    /// Puts `model` in `<data>/models`, unless a verified copy is there.
    pub fn ensure_model(&mut self, model: &ModelEntry) -> Result<Installed, SetupError> {
        let dir = self.dirs.models_dir();
        let target = dir.join(&model.file);
        if target.is_file() {
            let bytes = fs::read(&target).map_err(io_err("read model", &target))?;
            if checksum::verify(&bytes, &model.checksum, &target).is_ok() {
                return Ok(Installed::AlreadyThere(target));
            }
            (self.log)(&format!(
                "{} fails its checksum; installing it again",
                target.display()
            ));
        }
        let bytes = match &model.source {
            ModelSource::NpmPackage {
                package,
                version,
                resource,
                ..
            } => {
                let tarball = self.npm_tarball(package, version)?;
                (self.log)(&format!("assembling {resource} from {}", tarball.display()));
                assemble_npm_resource(&tarball, resource)?
            }
            ModelSource::Url(url) | ModelSource::PypiWheel { url, .. } => {
                (self.log)(&format!("downloading {url}"));
                let mut tenths = 0;
                let log = &mut self.log;
                let path = crate::models::download_model(
                    model,
                    self.dirs,
                    crate::models::catalog::DEFAULT_NPM_REGISTRY,
                    &mut |p| {
                        let now = p.fraction().map_or(0, |f| (f * 10.0) as u32);
                        if now > tenths {
                            tenths = now;
                            log(&format!("{}: {} %", model.id, now * 10));
                        }
                    },
                    &std::sync::atomic::AtomicBool::new(false),
                )
                .map_err(|e| SetupError::Download(Box::new(e)))?;
                (self.log)(&format!(
                    "model '{}' installed as {}",
                    model.id,
                    path.display()
                ));
                return Ok(Installed::Installed(path));
            }
            ModelSource::Imported => {
                return Err(SetupError::MissingPart {
                    what: format!("imported model '{}'", model.id),
                    detail: "import the file again".into(),
                    path: target,
                });
            }
        };
        checksum::verify(&bytes, &model.checksum, &target)?;
        fs::create_dir_all(&dir).map_err(io_err("create folder", &dir))?;
        write_file(&target, &bytes)?;
        (self.log)(&format!(
            "model '{}' installed as {}",
            model.id,
            target.display()
        ));
        Ok(Installed::Installed(target))
    }

    /// The cached wheel, fetched with pip when absent; either way checked
    /// against its pinned sha256 before anything is taken from it.
    fn runtime_wheel(&mut self) -> Result<PathBuf, SetupError> {
        let wheel = self.cached_or_downloaded_wheel()?;
        let name = wheel
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let expected = pinned_wheel_sha256(name).ok_or_else(|| SetupError::Unpinned {
            path: wheel.clone(),
        })?;
        let actual = checksum::sha256_file(&wheel).map_err(io_err("read", &wheel))?;
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(SetupError::Checksum(ChecksumMismatch {
                algorithm: "sha256",
                expected: expected.to_string(),
                actual,
                path: wheel,
            }));
        }
        Ok(wheel)
    }

    fn cached_or_downloaded_wheel(&mut self) -> Result<PathBuf, SetupError> {
        let downloads = self.dirs.downloads_dir();
        let prefix = format!("{}-{ORT_VERSION}-", self.runtime_package.replace('-', "_"));
        if let Some(found) = find_file(&downloads, |name| {
            name.starts_with(&prefix) && name.ends_with(".whl")
        }) {
            return Ok(found);
        }
        let pins = pinned_wheels(&self.runtime_package, ORT_VERSION);
        if pins.is_empty() {
            return Err(SetupError::Command {
                command: format!("pip download {}=={ORT_VERSION}", self.runtime_package),
                detail: "no wheel of this package is pinned for this runtime version".into(),
            });
        }
        fs::create_dir_all(&downloads).map_err(io_err("create folder", &downloads))?;
        (self.log)(&format!(
            "downloading {}=={ORT_VERSION} with pip into {}",
            self.runtime_package,
            downloads.display()
        ));
        // pip checks the hash itself as it downloads (--require-hashes).
        let requirements = downloads.join(format!(".requirements-{}.txt", self.runtime_package));
        let hashes: String = pins
            .iter()
            .map(|sha| format!(" --hash=sha256:{sha}"))
            .collect();
        write_file(
            &requirements,
            format!("{}=={ORT_VERSION}{hashes}\n", self.runtime_package).as_bytes(),
        )?;
        let python = env::var_os("PYTHON").unwrap_or_else(|| OsString::from(default_python()));
        let mut cmd = Command::new(&python);
        cmd.args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--require-hashes",
            "-r",
        ])
        .arg(&requirements)
        .arg("-d")
        .arg(&downloads);
        let ran = run(cmd);
        let _ = fs::remove_file(&requirements);
        ran?;
        find_file(&downloads, |name| {
            name.starts_with(&prefix) && name.ends_with(".whl")
        })
        .ok_or_else(|| SetupError::MissingPart {
            what: "runtime wheel".into(),
            detail: format!("pip saved no {prefix}*.whl"),
            path: downloads.clone(),
        })
    }

    /// The cached npm tarball, fetched with `npm pack` when absent.
    fn npm_tarball(&mut self, package: &str, version: &str) -> Result<PathBuf, SetupError> {
        let downloads = self.dirs.downloads_dir();
        let file = npm_tarball_name(package, version);
        let path = downloads.join(&file);
        if path.is_file() {
            return Ok(path);
        }
        fs::create_dir_all(&downloads).map_err(io_err("create folder", &downloads))?;
        (self.log)(&format!(
            "downloading {package}@{version} with npm into {}",
            downloads.display()
        ));
        let mut cmd = Command::new(if cfg!(windows) { "npm.cmd" } else { "npm" });
        cmd.args([
            "pack",
            "--silent",
            &format!("{package}@{version}"),
            "--pack-destination",
        ])
        .arg(&downloads);
        run(cmd)?;
        if path.is_file() {
            Ok(path)
        } else {
            Err(SetupError::MissingPart {
                what: "npm tarball".into(),
                detail: format!("npm saved no {file}"),
                path: downloads,
            })
        }
    }
}

fn default_python() -> &'static str {
    if cfg!(windows) { "python" } else { "python3" }
}

fn run(mut cmd: Command) -> Result<(), SetupError> {
    let shown = format!("{cmd:?}").replace('"', "");
    let output = cmd.output().map_err(|e| SetupError::Command {
        command: shown.clone(),
        detail: e.to_string(),
    })?;
    if output.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(3).collect();
        Err(SetupError::Command {
            command: shown,
            detail: format!(
                "{}: {}",
                output.status,
                tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
            ),
        })
    }
}

fn find_file(dir: &Path, matches: impl Fn(&str) -> bool) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(&matches))
        .collect();
    found.sort();
    found.pop()
}

fn platform() -> String {
    format!("{}-{}", env::consts::OS, env::consts::ARCH)
}

fn pinned_library_sha256(package: &str) -> Option<&'static str> {
    let platform = platform();
    PINNED_LIBRARY_SHA256
        .iter()
        .find(|(p, plat, _)| *p == package && *plat == platform)
        .map(|(_, _, sha)| *sha)
}

/// The runtime libraries in a wheel, the main one renamed to [`LIBRARY_NAME`].
fn extract_runtime_libraries(wheel: &Path) -> Result<Vec<(String, Vec<u8>)>, SetupError> {
    let file = fs::File::open(wheel).map_err(io_err("open wheel", wheel))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| SetupError::MissingPart {
        what: "zip archive".into(),
        detail: e.to_string(),
        path: wheel.into(),
    })?;
    let mut out = Vec::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| SetupError::MissingPart {
            what: "wheel entry".into(),
            detail: e.to_string(),
            path: wheel.into(),
        })?;
        let full_name = entry.name().map(|n| n.into_owned()).unwrap_or_default();
        // The runtime's licence and notices travel with the library.
        let notice = match full_name.as_str() {
            "onnxruntime/LICENSE" => Some("ONNXRUNTIME-LICENSE".to_string()),
            "onnxruntime/ThirdPartyNotices.txt" => {
                Some("ONNXRUNTIME-ThirdPartyNotices.txt".to_string())
            }
            _ => None,
        };
        let library = full_name
            .strip_prefix("onnxruntime/capi/")
            .and_then(runtime_file_name);
        let Some(installed_name) = library.or(notice) else {
            continue;
        };
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry
            .read_to_end(&mut bytes)
            .map_err(io_err("read wheel", wheel))?;
        out.push((installed_name, bytes));
    }
    if !out.iter().any(|(n, _)| n == LIBRARY_NAME) {
        return Err(SetupError::MissingPart {
            what: LIBRARY_NAME.to_string(),
            detail: "the wheel has no runtime library for this platform".into(),
            path: wheel.into(),
        });
    }
    Ok(out)
}

/// Which files of `onnxruntime/capi/` the app needs, and under what name.
fn runtime_file_name(name: &str) -> Option<String> {
    if name.contains('/') || name.contains("pybind") {
        return None;
    }
    // The main library: libonnxruntime.so.1.31.1, libonnxruntime.1.31.1.dylib, onnxruntime.dll.
    let is_main = name.starts_with("libonnxruntime.so.")
        || (name.starts_with("libonnxruntime.") && name.ends_with(".dylib"))
        || name == "onnxruntime.dll";
    if is_main {
        return Some(LIBRARY_NAME.to_string());
    }
    // Provider plug-ins and their helpers (CUDA, DirectML builds).
    let is_provider = name.starts_with("libonnxruntime_providers_")
        || name.starts_with("onnxruntime_providers_")
        || name == "DirectML.dll";
    is_provider.then(|| name.to_string())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), SetupError> {
    crate::fsutil::write_atomically(path, bytes, crate::fsutil::Access::Shared)
        .map_err(io_err("write file", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_files_are_picked_and_renamed() {
        assert_eq!(
            runtime_file_name("libonnxruntime.so.1.31.1").as_deref(),
            Some(LIBRARY_NAME)
        );
        assert_eq!(
            runtime_file_name("libonnxruntime_providers_shared.so").as_deref(),
            Some("libonnxruntime_providers_shared.so")
        );
        assert_eq!(runtime_file_name("onnxruntime_pybind11_state.so"), None);
        assert_eq!(runtime_file_name("__init__.py"), None);
    }

    #[test]
    fn the_package_checksums_agree_with_the_pinned_ones() {
        let sums = include_str!("../packaging/linux/SHA256SUMS");
        let pinned = |path: &str| {
            sums.lines()
                .find_map(|l| l.strip_suffix(path).map(|h| h.trim().to_string()))
                .unwrap_or_else(|| panic!("{path} missing from SHA256SUMS"))
        };
        let lib = PINNED_LIBRARY_SHA256
            .iter()
            .find(|(p, plat, _)| *p == "onnxruntime" && *plat == "linux-x86_64")
            .unwrap()
            .2;
        assert_eq!(pinned("runtime/libonnxruntime.so"), lib);
        let catalog = crate::models::catalog::ModelCatalog::builtin();
        let default = catalog.default_entry();
        // The default model and best quality's second opinion ship together.
        let second = catalog
            .get(crate::engine::second_opinion::SECOND_OPINION_MODEL)
            .unwrap();
        for entry in [default, second] {
            assert_eq!(
                pinned(&format!("models/{}", entry.file)),
                entry.checksum.hex()
            );
        }
    }

    /// Everything setup and the model manager can fetch is pinned by
    /// sha256: every runtime package on every platform it ships for, at the
    /// runtime version of this build, and every catalog model with an address.
    #[test]
    fn the_pins_cover_everything_that_can_be_fetched() {
        let platforms: &[(&str, &[&str])] = &[
            (
                "onnxruntime",
                &[
                    "macosx_14_0_arm64",
                    "manylinux_2_28_aarch64",
                    "manylinux_2_28_x86_64",
                    "win_amd64",
                    "win_arm64",
                ],
            ),
            ("onnxruntime-gpu", &["manylinux_2_28_x86_64", "win_amd64"]),
        ];
        for (package, tags) in platforms {
            for tag in *tags {
                for python in ["cp311-cp311", "cp312-cp312", "cp313-cp313"] {
                    let prefix = format!("{}-{ORT_VERSION}-{python}-", package.replace('-', "_"));
                    let pinned = wheel_pins().any(|(sha, name)| {
                        name.starts_with(&prefix)
                            && name.contains(tag)
                            && sha.len() == 64
                            && sha.bytes().all(|b| b.is_ascii_hexdigit())
                    });
                    assert!(pinned, "no pinned {package} wheel for {python} {tag}");
                }
            }
        }
        if ORT_VERSION == "1.24.4" {
            assert!(!pinned_wheels("onnxruntime-directml", ORT_VERSION).is_empty());
        }
        for model in &crate::models::catalog::ModelCatalog::builtin().models {
            assert!(
                matches!(model.checksum, crate::models::catalog::Checksum::Sha256(_)),
                "{} is not pinned by sha256",
                model.id
            );
        }
    }

    /// The wheel cached by an earlier setup is checked like a fresh one.
    #[test]
    fn a_cached_wheel_that_is_not_the_pinned_one_is_refused() {
        let home = tempfile::tempdir().unwrap();
        let dirs = AppDirs::under(home.path());
        let downloads = dirs.downloads_dir();
        fs::create_dir_all(&downloads).unwrap();
        let name = format!("onnxruntime-{ORT_VERSION}-cp311-cp311-manylinux_2_28_x86_64.whl");
        fs::write(downloads.join(&name), b"not the wheel").unwrap();
        let mut log = |_: &str| {};
        let mut setup = Setup {
            dirs: &dirs,
            runtime_package: "onnxruntime".into(),
            log: &mut log,
        };
        let err = setup.ensure_runtime().unwrap_err();
        assert!(matches!(err, SetupError::Checksum(_)), "{err}");
        fs::rename(
            downloads.join(&name),
            downloads.join(format!("onnxruntime-{ORT_VERSION}-cp399-x.whl")),
        )
        .unwrap();
        let err = setup.ensure_runtime().unwrap_err();
        assert!(matches!(err, SetupError::Unpinned { .. }), "{err}");
    }
}
