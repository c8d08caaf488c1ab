//! File dialogs that never block a frame. A dialog is asked for from layout
//! code and its answer comes back on a later frame, applied with the other
//! results; the window keeps painting (and the worker's results keep
//! arriving) while it is open. Tests answer dialogs themselves.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender, bounded};

/// What the chosen path is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialogPurpose {
    OpenImages,
    /// Export the selected image (`extension` of the chosen format).
    Export,
    BackgroundPicture,
    BatchInput,
    BatchOutput,
    /// Save the batch's failure report (its CSV text).
    SaveReport(String),
    ImportModel,
}

/// What kind of dialog, and what it offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialogKind {
    PickFiles,
    PickFile,
    PickFolder,
    Save { file_name: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialogRequest {
    pub purpose: DialogPurpose,
    pub kind: DialogKind,
    /// (name, extensions without dots)
    pub filters: Vec<(String, Vec<String>)>,
}

impl DialogRequest {
    pub fn new(purpose: DialogPurpose, kind: DialogKind) -> Self {
        Self {
            purpose,
            kind,
            filters: Vec::new(),
        }
    }

    pub fn filter(mut self, name: impl Into<String>, extensions: &[&str]) -> Self {
        self.filters.push((
            name.into(),
            extensions.iter().map(|e| (*e).to_owned()).collect(),
        ));
        self
    }
}

/// A dialog's answer: the paths chosen, or `None` when cancelled (or when no
/// dialog could be shown).
#[derive(Debug)]
pub struct DialogAnswer {
    pub purpose: DialogPurpose,
    pub paths: Option<Vec<PathBuf>>,
}

/// Answers requests in place of the system's dialogs (tests).
pub type Answerer = Arc<dyn Fn(&DialogRequest) -> Option<Vec<PathBuf>> + Send + Sync>;

/// One file dialog at a time, shown by the system (rfd) or answered by a
/// test.
pub struct Dialogs {
    tx: Sender<DialogAnswer>,
    rx: Receiver<DialogAnswer>,
    open: bool,
    answerer: Option<Answerer>,
    wake: Arc<dyn Fn() + Send + Sync>,
}

impl Dialogs {
    pub fn new(wake: Arc<dyn Fn() + Send + Sync>) -> Self {
        let (tx, rx) = bounded(1);
        Self {
            tx,
            rx,
            open: false,
            answerer: None,
            wake,
        }
    }

    /// From now on requests are answered by `answerer`, not shown.
    pub fn answer_with(&mut self, answerer: Answerer) {
        self.answerer = Some(answerer);
    }

    /// Shows the dialog; `false` (and nothing shown) while another is open.
    pub fn request(&mut self, request: DialogRequest) -> bool {
        if self.open {
            return false;
        }
        self.open = true;
        if let Some(answerer) = &self.answerer {
            let paths = answerer(&request);
            let _ = self.tx.try_send(DialogAnswer {
                purpose: request.purpose,
                paths,
            });
            (self.wake)();
            return true;
        }
        // The dialog is created here, on the UI thread (macOS wants its
        // panels made there), and awaited on a thread of its own.
        let mut dialog = rfd::AsyncFileDialog::new();
        for (name, extensions) in &request.filters {
            dialog = dialog.add_filter(name, extensions);
        }
        let to_paths = |files: Vec<rfd::FileHandle>| -> Vec<PathBuf> {
            files.into_iter().map(|f| f.path().to_path_buf()).collect()
        };
        let chosen: Pin<Box<dyn Future<Output = Option<Vec<PathBuf>>> + Send>> = match request.kind
        {
            DialogKind::PickFiles => {
                let picked = dialog.pick_files();
                Box::pin(async move { picked.await.map(to_paths) })
            }
            DialogKind::PickFile => {
                let picked = dialog.pick_file();
                Box::pin(async move { picked.await.map(|f| to_paths(vec![f])) })
            }
            DialogKind::PickFolder => {
                let picked = dialog.pick_folder();
                Box::pin(async move { picked.await.map(|f| to_paths(vec![f])) })
            }
            DialogKind::Save { file_name } => {
                let picked = dialog.set_file_name(file_name).save_file();
                Box::pin(async move { picked.await.map(|f| to_paths(vec![f])) })
            }
        };
        let (tx, wake, purpose) = (self.tx.clone(), self.wake.clone(), request.purpose);
        let spawned = std::thread::Builder::new()
            .name("file-dialog".into())
            .spawn(move || {
                let paths = pollster::block_on(chosen);
                let _ = tx.try_send(DialogAnswer { purpose, paths });
                wake();
            });
        if spawned.is_err() {
            self.open = false;
        }
        spawned.is_ok()
    }

    /// The answer of the open dialog, once it has one.
    pub fn poll(&mut self) -> Option<DialogAnswer> {
        let answer = self.rx.try_recv().ok()?;
        self.open = false;
        Some(answer)
    }
}
