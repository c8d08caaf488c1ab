//! The thread that writes into the retention store for the app: results
//! kept for the next start, the workspace list, training samples (only with
//! consent) and the periodic sweep. The UI only submits jobs over a bounded
//! channel and reads reports, so it never waits on the disk.

use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use image::{GrayImage, RgbaImage};

use super::recent::{Kept, NewResult, save_result, save_strokes};
use super::store::{RetentionStore, StoreError, SweepReport};
use super::uploads::{ConsentGate, ConsentOnDisk, TrainingSample, enqueue};
use crate::engine::refine::Stroke;
/// The app's id of an open image (reports name it).
pub type ImageId = u64;

pub enum StoreJob {
    /// Keep a finished result for the next start.
    SaveResult {
        image_id: ImageId,
        name: String,
        path: Option<PathBuf>,
        original: Arc<RgbaImage>,
        mask: Arc<GrayImage>,
        model: String,
        strokes: Vec<Stroke>,
        /// What is kept of the same image already (its date carries over).
        kept: Option<Kept>,
    },
    /// The image's brush strokes changed.
    SaveStrokes {
        image_id: ImageId,
        kept: Kept,
        strokes: Vec<Stroke>,
    },
    /// A training sample; dropped unless consent holds when it is written.
    /// The final mask (strokes and edge settings on the model's mask) is
    /// made here, off the UI thread.
    /// A delivered result as a training sample: the photo and the user's
    /// final mask (strokes and edge settings applied, made by the export).
    QueueUpload {
        label: String,
        original: Arc<RgbaImage>,
        final_mask: Arc<GrayImage>,
        model: String,
    },
    Sweep,
    /// Delete everything stored.
    Purge,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StoreReport {
    Saved {
        image_id: ImageId,
        kept: Kept,
    },
    /// The image's entry is gone (swept or purged): nothing more of it is
    /// written.
    Gone {
        image_id: ImageId,
    },
    Queued {
        label: String,
    },
    Swept(SweepReport),
    Purged(usize),
    Failed(String),
}

pub type Sweeper = Box<dyn Fn() -> Result<SweepReport, StoreError> + Send>;

pub struct StoreWriter {
    jobs: Option<Sender<StoreJob>>,
    reports: Receiver<StoreReport>,
    thread: Option<JoinHandle<()>>,
}

const JOB_QUEUE: usize = 64;
const REPORT_QUEUE: usize = 64;

impl StoreWriter {
    /// `queued` is called after a sample was queued (to wake the uploader);
    /// `wake` after every report.
    pub fn spawn(
        store: Arc<RetentionStore>,
        gate: ConsentGate,
        consent_on_disk: ConsentOnDisk,
        sweeper: Sweeper,
        queued: Box<dyn Fn() + Send>,
        wake: Arc<dyn Fn() + Send + Sync>,
    ) -> std::io::Result<Self> {
        let (jobs, job_rx) = bounded::<StoreJob>(JOB_QUEUE);
        let (report_tx, reports) = bounded::<StoreReport>(REPORT_QUEUE);
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                for job in job_rx {
                    let report = match job {
                        StoreJob::SaveResult {
                            image_id,
                            name,
                            path,
                            original,
                            mask,
                            model,
                            strokes,
                            kept,
                        } => {
                            let new = NewResult {
                                name: &name,
                                path,
                                original: &original,
                                mask: &mask,
                                model: &model,
                                strokes: &strokes,
                            };
                            kept_report(image_id, save_result(&store, new, kept.as_ref()))
                        }
                        StoreJob::SaveStrokes {
                            image_id,
                            kept,
                            strokes,
                        } => kept_report(image_id, save_strokes(&store, &kept, &strokes)),
                        StoreJob::QueueUpload {
                            label,
                            original,
                            final_mask,
                            model,
                        } => {
                            if !gate.opted_in() {
                                continue;
                            }
                            let sample = TrainingSample {
                                original: &original,
                                mask: &final_mask,
                                model_id: &model,
                            };
                            match enqueue(&store, &gate, &consent_on_disk, &label, &sample) {
                                Ok(Some(_)) => {
                                    queued();
                                    StoreReport::Queued { label }
                                }
                                Ok(None) => continue,
                                Err(e) => StoreReport::Failed(e.to_string()),
                            }
                        }
                        StoreJob::Sweep => match sweeper() {
                            Ok(report) => StoreReport::Swept(report),
                            Err(e) => StoreReport::Failed(e.to_string()),
                        },
                        StoreJob::Purge => match store.purge_all() {
                            Ok(n) => StoreReport::Purged(n),
                            Err(e) => StoreReport::Failed(e.to_string()),
                        },
                    };
                    // A full report queue means the UI is gone or stalled:
                    // the work is done either way.
                    let _ = report_tx.try_send(report);
                    wake();
                }
            })?;
        Ok(Self {
            jobs: Some(jobs),
            reports,
            thread: Some(thread),
        })
    }

    /// Hands a job to the thread without waiting; `false` if it is backed up.
    pub fn submit(&self, job: StoreJob) -> bool {
        let Some(jobs) = &self.jobs else {
            return false;
        };
        match jobs.try_send(job) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        }
    }

    pub fn poll(&self) -> Vec<StoreReport> {
        self.reports.try_iter().collect()
    }

    /// Runs what is queued, then stops (at exit: the last sweep included).
    pub fn finish(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for StoreWriter {
    fn drop(&mut self) {
        self.finish();
    }
}

fn kept_report(
    image_id: ImageId,
    saved: Result<Option<Kept>, super::recent::RecentError>,
) -> StoreReport {
    match saved {
        Ok(Some(kept)) => StoreReport::Saved { image_id, kept },
        Ok(None) => StoreReport::Gone { image_id },
        Err(e) => StoreReport::Failed(e.to_string()),
    }
}
