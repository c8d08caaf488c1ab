//! The app's side of the privacy services and of the preferences file:
//! what it hands the store writer (results, strokes, training samples,
//! sweeps), what it does with the writer's reports, consent and purging, and
//! restoring the last session's work.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, bounded};
use image::GrayImage;

use super::worker::{ImageId, ImageSource, KnownMask};
use super::{DesktopApp, Notice};
use crate::paths::AppDirs;
use crate::prefs::{self, Preferences};
use crate::privacy::recent;
use crate::privacy::schedule::Cleanup;
use crate::privacy::store::SystemClock;
use crate::privacy::writer::{StoreJob, StoreReport};
use crate::privacy::{Privacy, PrivacyServices};

/// How often the retention sweep runs while the app is open. Cheap (a
/// sweep with nothing to delete reads the index and writes nothing), and
/// short, so that a clock that jumps while the app runs is acted on soon.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// Opens the store (sweeping what is past its time, and what a crashed
/// session left when nothing deletes it on schedule) and starts the
/// services; `None`, with a notice, when local data cannot be managed:
/// then nothing is kept at all.
pub(super) fn start_privacy(
    dirs: &AppDirs,
    cleanup: Cleanup,
    wake: Arc<dyn Fn() + Send + Sync>,
    notices: &mut Vec<Notice>,
) -> Option<PrivacyServices> {
    let cannot_manage = |e: &dyn std::fmt::Display| Notice {
        text: format!("Local data cannot be managed ({e}); nothing will be kept."),
        is_error: true,
    };
    let mut privacy = match Privacy::open(dirs, Arc::new(SystemClock)) {
        Ok(privacy) => privacy,
        Err(e) => {
            notices.push(cannot_manage(&e));
            return None;
        }
    };
    if let Some(notice) = &privacy.notice {
        notices.push(Notice {
            text: notice.message(),
            is_error: true,
        });
    }
    // Before anything else: with no scheduler to delete it on time, what
    // an earlier session left (a crash) goes now.
    match privacy.start_app_session(cleanup) {
        Ok(0) => {}
        Ok(n) => notices.push(Notice {
            text: format!(
                "Deleted {n} item{} an earlier session left: no automatic clean-up is confirmed on this computer, so nothing is kept after the app closes (see Account).",
                plural(n)
            ),
            is_error: false,
        }),
        Err(e) => notices.push(Notice {
            text: format!("Local data could not be deleted ({e})"),
            is_error: true,
        }),
    }
    match PrivacyServices::start(privacy, wake) {
        Ok(services) => Some(services),
        Err(e) => {
            notices.push(cannot_manage(&e));
            None
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Writes the preferences off the UI thread (an atomic write flushes to
/// disk); only the newest of several quick changes is written.
pub(super) struct PrefsSaver {
    tx: Sender<Preferences>,
}

impl PrefsSaver {
    pub(super) fn spawn(config_dir: PathBuf) -> Option<Self> {
        let (tx, rx) = bounded::<Preferences>(4);
        let spawned = std::thread::Builder::new()
            .name("preferences".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let newest = rx.try_iter().last().unwrap_or(first);
                    if let Err(e) = prefs::save(&config_dir, &newest) {
                        tracing::warn!("{e}");
                    }
                }
            });
        match spawned {
            Ok(_) => Some(Self { tx }),
            Err(e) => {
                tracing::warn!("window settings will not be kept ({e})");
                None
            }
        }
    }

    /// Whether the saver took them (a full queue: try again next frame).
    pub(super) fn offer(&self, preferences: Preferences) -> bool {
        self.tx.try_send(preferences).is_ok()
    }
}

impl DesktopApp {
    /// Consent and the local store; `None` if they could not be opened
    /// (then nothing is kept at all, and the user was told).
    pub fn privacy(&self) -> Option<&Privacy> {
        self.services.as_ref().map(|s| &s.privacy)
    }

    /// Reopens the images of the last session still in the store, with
    /// their masks (no inference unless the file changed).
    pub(super) fn restore_recent_work(&mut self) {
        let Some(store) = self.privacy().map(|p| p.store.clone()) else {
            return;
        };
        for kept in recent::load_workspace(&store) {
            let saved = &kept.result;
            let source = match (&saved.path, saved.original_item) {
                (Some(path), _) if path.is_file() => ImageSource::File(path.clone()),
                (_, Some(item)) => ImageSource::Stored(store.clone(), item),
                (Some(path), None) => {
                    let id = self.workspace.add(saved.name.clone(), Some(path.clone()));
                    self.workspace.fail(
                        id,
                        format!("the file is no longer there: {}", path.display()),
                    );
                    continue;
                }
                (None, None) => continue,
            };
            let id = self.workspace.add(saved.name.clone(), saved.path.clone());
            if let Some(item) = self.workspace.get_mut(id) {
                item.strokes = saved.strokes.clone();
            }
            let known = KnownMask {
                store: store.clone(),
                item: saved.mask_item,
            };
            self.saved.insert(id, kept);
            if !self.worker.open_with(id, source, Some(known)) {
                self.workspace.fail(id, "too many images waiting".into());
            }
        }
    }

    /// Where unfinished exports are recorded for the sweep (the store's).
    pub(super) fn partials_journal(&self) -> Option<PathBuf> {
        self.privacy().map(|p| p.store.partials_dir())
    }

    /// Writes an image's strokes into its stored entry (which keeps its
    /// date, so they leave the disk with the image).
    pub(super) fn save_strokes(&mut self, id: ImageId) {
        let (Some(kept), Some(item)) = (
            self.saved.get(&id).cloned(),
            self.workspace.items.iter().find(|i| i.id == id),
        ) else {
            return;
        };
        let job = StoreJob::SaveStrokes {
            image_id: id,
            kept,
            strokes: item.strokes.clone(),
        };
        self.submit_store_job(job);
    }

    /// Keeps a finished result for the next start, when anything may be
    /// kept: see [`Privacy::keeps_recent_work`].
    pub(super) fn keep_result(&mut self, id: ImageId, mask: Arc<GrayImage>) {
        if self.not_kept.contains(&id) || !self.privacy().is_some_and(Privacy::keeps_recent_work) {
            return;
        }
        let Some(item) = self.workspace.items.iter().find(|i| i.id == id) else {
            return;
        };
        let Some(original) = item.original.clone() else {
            return;
        };
        let job = StoreJob::SaveResult {
            image_id: id,
            name: item.name.clone(),
            path: item.path.clone(),
            original,
            mask,
            model: self.model.clone(),
            strokes: item.strokes.clone(),
            kept: self.saved.get(&id).cloned(),
        };
        self.submit_store_job(job);
    }

    /// A result the user exported or copied is their final version: with
    /// consent it becomes a training sample. `final_mask` was made by the
    /// export; this only hands shared buffers to the store writer.
    pub(super) fn delivered(&mut self, id: ImageId, final_mask: Arc<GrayImage>) {
        if !self.privacy().is_some_and(Privacy::opted_in) {
            return;
        }
        let Some(item) = self.workspace.items.iter().find(|i| i.id == id) else {
            return;
        };
        let Some(original) = item.original.clone() else {
            return;
        };
        let model = self
            .saved
            .get(&id)
            .map_or_else(|| self.model.clone(), |s| s.result.model.clone());
        let job = StoreJob::QueueUpload {
            label: item.name.clone(),
            original,
            final_mask,
            model,
        };
        self.submit_store_job(job);
    }

    /// Everything stored was deleted: nothing of the open images is
    /// written again (a result still on its way to the store included).
    fn forget_stored_images(&mut self) {
        self.saved.clear();
        self.not_kept
            .extend(self.workspace.items.iter().map(|i| i.id));
    }

    fn submit_store_job(&mut self, job: StoreJob) {
        if let Some(services) = &self.services
            && !services.writer.submit(job)
        {
            self.notify(
                "the local store is busy; this result will not be kept",
                true,
            );
        }
    }

    /// The Account pane's switch. Applied here, at once: an opt-out must be
    /// in force before anything else happens (see `Privacy::set_opted_in`).
    pub(super) fn set_consent(&mut self, opted_in: bool) {
        let Some(services) = &mut self.services else {
            return;
        };
        let result = services.set_opted_in(opted_in);
        self.refresh_upload_count();
        if let Err(e) = result {
            self.notify(e.to_string(), true);
        }
    }

    /// Deletes everything stored, on the store writer's thread (after
    /// whatever it is writing); its report forgets the open images.
    pub(super) fn purge_all(&mut self) {
        // Nothing more of the open images is written from now on.
        self.forget_stored_images();
        let Some(services) = &self.services else {
            return;
        };
        if services.writer.submit(StoreJob::Purge) {
            return;
        }
        // The writer's queue is full: a purge is never dropped, so it runs
        // here and now.
        let report = match services.privacy.store.purge_all() {
            Ok(n) => StoreReport::Purged(n),
            Err(e) => StoreReport::Failed(e.to_string()),
        };
        self.apply_store_report(report);
    }

    /// Samples waiting to be sent, for the status bar: read from the store
    /// only when it may have changed, not every frame.
    pub(super) fn refresh_upload_count(&mut self) {
        self.queued_uploads = self
            .privacy()
            .map_or(0, |p| if p.opted_in() { p.queued_uploads() } else { 0 });
        self.uploads_sent = self.services.as_ref().map_or(0, |s| s.uploader.sent());
    }

    /// Applies what the store writer reported since last frame.
    pub(super) fn drain_store_reports(&mut self) {
        let reports = self
            .services
            .as_ref()
            .map(|s| s.writer.poll())
            .unwrap_or_default();
        let sent = self.services.as_ref().map_or(0, |s| s.uploader.sent());
        if sent != self.uploads_sent {
            self.refresh_upload_count();
        }
        for report in reports {
            self.apply_store_report(report);
        }
    }

    fn apply_store_report(&mut self, report: StoreReport) {
        match report {
            StoreReport::Saved { image_id, kept } => {
                if self.not_kept.contains(&image_id) {
                    // Purged while this was being written.
                    if let Some(privacy) = self.privacy() {
                        let _ = recent::forget(&privacy.store, &kept);
                    }
                } else {
                    self.saved.insert(image_id, kept);
                }
            }
            StoreReport::Gone { image_id } => {
                self.saved.remove(&image_id);
                self.not_kept.insert(image_id);
            }
            StoreReport::Swept(report) => {
                // Images a day old are gone from the disk: forget them.
                if report.removed > 0
                    && let Some(store) = self.privacy().map(|p| p.store.clone())
                {
                    let stored: HashSet<u64> = store.list().iter().map(|i| i.id).collect();
                    let gone: Vec<ImageId> = self
                        .saved
                        .iter()
                        .filter(|(_, k)| !stored.contains(&k.entry_item))
                        .map(|(id, _)| *id)
                        .collect();
                    for id in gone {
                        self.saved.remove(&id);
                        self.not_kept.insert(id);
                    }
                }
                // Every sweep (twice a minute): also catches samples the
                // uploader gave up on, which no report announces.
                self.refresh_upload_count();
            }
            StoreReport::Purged(n) => {
                self.forget_stored_images();
                self.refresh_upload_count();
                self.notify(format!("deleted {n} stored item{}", plural(n)), false);
            }
            StoreReport::Queued { .. } => self.refresh_upload_count(),
            StoreReport::Failed(text) => self.notify(text, true),
        }
    }

    /// The retention sweep, every [`SWEEP_EVERY`] while running.
    pub(super) fn sweep_if_due(&mut self) {
        let since = self.last_sweep.elapsed();
        if since < SWEEP_EVERY {
            // Come back when it is due even if nothing else wakes the window.
            self.ctx.request_repaint_after(SWEEP_EVERY - since);
            return;
        }
        self.last_sweep = Instant::now();
        self.submit_store_job(StoreJob::Sweep);
    }

    /// At exit, after whatever the writer still has to do: the exit sweep,
    /// or deleting everything when nothing may outlive the session.
    pub(super) fn stop_privacy(&mut self) {
        let Some(services) = &mut self.services else {
            return;
        };
        services.writer.finish();
        if let Err(e) = services.privacy.end_app_session() {
            tracing::warn!("local data could not be cleaned up at exit ({e})");
        }
    }
}
