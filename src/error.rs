//! The engine's errors. Each names the file it concerns last, so that a line
//! in a batch report reads "what went wrong: which file".

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot {action} ({source}): {}", path.display())]
    Io {
        action: &'static str,
        source: io::Error,
        path: PathBuf,
    },

    #[error("file is empty: {}", path.display())]
    EmptyFile { path: PathBuf },

    #[error("not a regular file: {}", path.display())]
    NotAFile { path: PathBuf },

    #[error("file is {size_mb} MiB, over the {limit_mb} MiB limit for images: {}", path.display())]
    FileTooLarge {
        size_mb: u64,
        limit_mb: u64,
        path: PathBuf,
    },

    #[error(
        "the export would be {width}×{height} pixels, over the {} MP limit (lower the crop margin or the canvas): {}",
        crate::limits::MAX_OUTPUT_PIXELS / 1_000_000,
        path.display()
    )]
    OutputTooLarge {
        width: u64,
        height: u64,
        path: PathBuf,
    },

    #[error("not an image this app can read (unrecognised content): {}", path.display())]
    UnrecognisedImage { path: PathBuf },

    #[error("image is damaged or truncated ({detail}): {}", path.display())]
    CorruptImage { detail: String, path: PathBuf },

    #[error("image format not supported ({detail}): {}", path.display())]
    UnsupportedImage { detail: String, path: PathBuf },

    #[error(
        "image is {width}×{height} pixels ({:.0} MP), over the {limit_mp} MP limit: {}",
        (*width as f64) * (*height as f64) / 1e6,
        path.display()
    )]
    ImageTooLarge {
        width: u32,
        height: u32,
        limit_mp: u64,
        path: PathBuf,
    },

    #[error("cannot encode {format} ({detail}): {}", path.display())]
    Encode {
        format: &'static str,
        detail: String,
        path: PathBuf,
    },

    #[error(transparent)]
    Runtime(#[from] crate::engine::runtime::RuntimeError),

    #[error("unknown model '{id}' (known models: {known})")]
    UnknownModel { id: String, known: String },

    #[error("model '{id}' is not installed; to get it, {how_to_get}")]
    ModelNotInstalled { id: String, how_to_get: String },

    #[error("cannot load model ({detail}): {}", path.display())]
    ModelLoad { detail: String, path: PathBuf },

    #[error("model output is not what the catalog describes ({detail})")]
    ModelOutput { detail: String },

    #[error("inference failed ({detail})")]
    Inference { detail: String },

    #[error("{requested} execution provider unavailable: {reason}")]
    ProviderUnavailable { requested: String, reason: String },

    #[error("cancelled")]
    Cancelled,
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| Error::Io {
            action,
            source,
            path,
        }
    }
}
