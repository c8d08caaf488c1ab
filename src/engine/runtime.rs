//! Finding and loading the ONNX Runtime shared library.
//!
//! `ort` is built with `load-dynamic`: nothing is linked at build time, and the
//! library is loaded once per process from an absolute path we chose. No `ort`
//! API may be touched before [`load`] succeeded, because `ort`'s own fallback
//! lookup panics when the library is missing.

use std::env;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use crate::paths::{AppDirs, executable_dir};

/// The ONNX Runtime release this build's `ort` bindings target (API 31).
#[cfg(feature = "ort-1-31")]
pub const ORT_VERSION: &str = "1.31.1";
/// The ONNX Runtime release of the DirectML build (API 24).
#[cfg(all(feature = "ort-1-24", not(feature = "ort-1-31")))]
pub const ORT_VERSION: &str = "1.24.4";
#[cfg(not(any(feature = "ort-1-31", feature = "ort-1-24")))]
compile_error!("choose an ONNX Runtime API level: feature `ort-1-31` (default) or `ort-1-24`");

/// Environment variable naming the library file explicitly (ort's convention).
pub const DYLIB_ENV: &str = "ORT_DYLIB_PATH";

#[cfg(target_os = "windows")]
pub const LIBRARY_NAME: &str = "onnxruntime.dll";
#[cfg(target_os = "macos")]
pub const LIBRARY_NAME: &str = "libonnxruntime.dylib";
#[cfg(not(any(target_os = "windows", target_os = "macos")))]
pub const LIBRARY_NAME: &str = "libonnxruntime.so";

#[derive(Debug, Clone, thiserror::Error)]
pub enum RuntimeError {
    #[error(
        "ONNX Runtime not found (looked for {LIBRARY_NAME} in: {}); install it with `backgrounderase setup`, or point {DYLIB_ENV} at the library file",
        searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    NotFound { searched: Vec<PathBuf> },

    #[error("{DYLIB_ENV} names a file that does not exist: {}", path.display())]
    EnvPathMissing { path: PathBuf },

    #[error("cannot load ONNX Runtime ({detail}); reinstall it with `backgrounderase setup`: {}", path.display())]
    LoadFailed { detail: String, path: PathBuf },
}

/// The runtime of this process, loaded once.
pub struct LoadedRuntime {
    pub library: PathBuf,
    pub environment: ort::environment::Environment,
}

static RUNTIME: OnceLock<LoadedRuntime> = OnceLock::new();
static LOADING: Mutex<()> = Mutex::new(());

/// Candidate library paths in the order they are tried.
pub fn candidate_paths(dirs: &AppDirs) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(exe) = executable_dir() {
        out.push(exe.join(LIBRARY_NAME));
        if let Some(prefix) = exe.parent() {
            // Installed layout: <prefix>/bin/backgrounderase + <prefix>/lib/backgrounderase/.
            out.push(prefix.join("lib/backgrounderase").join(LIBRARY_NAME));
            // macOS bundle: Contents/MacOS/backgrounderase + Contents/Frameworks/.
            if cfg!(target_os = "macos") {
                out.push(prefix.join("Frameworks").join(LIBRARY_NAME));
            }
        }
    }
    out.push(dirs.runtime_dir().join(LIBRARY_NAME));
    out
}

/// Where the library would be loaded from, without loading it.
pub fn locate(dirs: &AppDirs) -> Result<PathBuf, RuntimeError> {
    if let Some(path) = env::var_os(DYLIB_ENV).filter(|v| !v.is_empty()) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(absolute(&path))
        } else {
            Err(RuntimeError::EnvPathMissing { path })
        };
    }
    let searched = candidate_paths(dirs);
    searched
        .iter()
        .find(|p| p.is_file())
        .map(|p| absolute(p))
        .ok_or(RuntimeError::NotFound { searched })
}

/// Loads the runtime once per process; later calls return the same one.
/// A failed load is not cached, so the user can install the runtime and retry.
pub fn load(dirs: &AppDirs) -> Result<&'static LoadedRuntime, RuntimeError> {
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime);
    }
    let _guard = LOADING.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime);
    }
    let library = locate(dirs)?;
    let load_failed = |detail: String| RuntimeError::LoadFailed {
        detail,
        path: library.clone(),
    };
    let environment = ort::init_from(&library)
        .map_err(|e| load_failed(format!("{e:?}")))?
        .with_name("backgrounderase")
        // The privacy promise: the runtime reports nothing anywhere.
        .with_telemetry(false)
        .build()
        .map_err(|e| load_failed(format!("{e:?}")))?;
    tracing::info!(library = %library.display(), "ONNX Runtime loaded");
    Ok(RUNTIME.get_or_init(|| LoadedRuntime {
        library,
        environment,
    }))
}

fn absolute(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_runtime_error_names_every_place_searched_and_the_fix() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = AppDirs::under(tmp.path());
        let searched = candidate_paths(&dirs);
        assert!(searched.contains(&dirs.runtime_dir().join(LIBRARY_NAME)));
        let text = RuntimeError::NotFound { searched }.to_string();
        assert!(
            text.contains(&dirs.runtime_dir().display().to_string()),
            "{text}"
        );
        assert!(text.contains("backgrounderase setup"), "{text}");
        assert!(text.contains(DYLIB_ENV), "{text}");
    }
}
