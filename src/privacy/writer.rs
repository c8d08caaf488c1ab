//! The thread that writes into the retention store for the app: results
//! kept for the next start, the workspace list, training samples (only with
//! consent) and the periodic sweep. The UI only submits jobs over a bounded
//! channel and reads reports, so it never waits on the disk.

use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use image::{GrayImage, RgbaImage};

use super::recent::{SavedResult, save_result, save_workspace};
use super::store::{RetentionStore, StoreError, SweepReport};
use super::uploads::{ConsentGate, TrainingSample, enqueue};

pub enum StoreJob {
    /// Keep a finished result for the next start.
    SaveResult {
        image_id: u64,
        name: String,
        path: Option<PathBuf>,
        original: Arc<RgbaImage>,
        mask: Arc<GrayImage>,
        model: String,
        replaces: Option<SavedResult>,
    },
    /// Which results make up the workspace now.
    SaveWorkspace(Vec<SavedResult>),
    /// A training sample; dropped unless consent holds when it is written.
    QueueUpload {
        label: String,
        original: Arc<RgbaImage>,
        mask: Arc<GrayImage>,
        model: String,
    },
    Sweep,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StoreReport {
    Saved { image_id: u64, result: SavedResult },
    Queued { label: String },
    Swept(SweepReport),
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
        sweeper: Sweeper,
        queued: Box<dyn Fn() + Send>,
        wake: Arc<dyn Fn() + Send + Sync>,
    ) -> Self {
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
                            replaces,
                        } => match save_result(
                            &store,
                            &name,
                            path,
                            &original,
                            &mask,
                            &model,
                            replaces.as_ref(),
                        ) {
                            Ok(result) => StoreReport::Saved { image_id, result },
                            Err(e) => StoreReport::Failed(e.to_string()),
                        },
                        StoreJob::SaveWorkspace(results) => {
                            match save_workspace(&store, &results) {
                                Ok(()) => continue,
                                Err(e) => StoreReport::Failed(e.to_string()),
                            }
                        }
                        StoreJob::QueueUpload {
                            label,
                            original,
                            mask,
                            model,
                        } => {
                            let sample = TrainingSample {
                                original: &original,
                                mask: &mask,
                                model_id: &model,
                            };
                            match enqueue(&store, &gate, &label, &sample) {
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
                    };
                    // A full report queue means the UI is gone or stalled:
                    // the work is done either way.
                    let _ = report_tx.try_send(report);
                    wake();
                }
            })
            .expect("spawn store writer");
        Self {
            jobs: Some(jobs),
            reports,
            thread: Some(thread),
        }
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
