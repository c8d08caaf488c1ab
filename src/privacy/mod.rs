//! The privacy core: consent (one opt-in, off by default), the consent
//! ledger, and the retention-governed store. Plain Rust, no UI: the app, the
//! command line and the tests drive the same code.

pub mod ledger;
pub mod recent;
pub mod schedule;
pub mod settings;
pub mod store;
pub mod uploads;
pub mod writer;

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::paths::AppDirs;
use ledger::ConsentRecord;
use schedule::Cleanup;
use settings::{LoadNotice, Settings, SettingsError};
use store::{
    Clock, ItemKind, Keep, RETENTION, RetentionStore, StoreError, StoreStats, SweepReport,
    format_age,
};
use uploads::{ConsentGate, ConsentOnDisk};

pub const APP_VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot record the consent change ({0})")]
    Ledger(std::io::Error),
    #[error("cannot allow it ({source}): {}", path.display())]
    Withdrawal {
        source: std::io::Error,
        path: std::path::PathBuf,
    },
    /// Opted out at once, but not everything could be written.
    #[error("you are opted out and uploads are refused, but {0}")]
    OptOutNotSaved(String),
}

pub struct Privacy {
    dirs: AppDirs,
    clock: Arc<dyn Clock>,
    pub settings: Settings,
    /// Shared with the threads that write and upload.
    pub store: Arc<RetentionStore>,
    /// The one in-memory answer to "may anything be kept or sent?", shared
    /// with the writer and the uploader (which close it when consent is
    /// withdrawn on disk by another process). `settings.opted_in` is only
    /// what was last written to the settings file.
    gate: ConsentGate,
    /// The consent ledger, read once at open and kept in step with appends,
    /// so the Account page does not re-read the file every frame.
    ledger: Vec<ConsentRecord>,
    /// Set when the stored settings could not be used (shown to the user).
    pub notice: Option<LoadNotice>,
    /// An opt-out in force whose record could not be written in full: the
    /// Account page says "Not saved — retry".
    pub unsaved_opt_out: Option<String>,
    /// How what is kept gets deleted when the app is not running.
    pub cleanup: Cleanup,
    /// What the sweep at opening deleted.
    pub opening_sweep: SweepReport,
    /// Where training samples go (shown under the toggle), or why nowhere.
    pub upload_endpoint: Result<uploads::Endpoint, String>,
}

impl Privacy {
    /// Loads consent and opens the store, then runs the start-up sweep.
    pub fn open(dirs: &AppDirs, clock: Arc<dyn Clock>) -> Result<Self, PrivacyError> {
        let (mut settings, notice) = settings::load(&dirs.config, clock.now());
        let mut unsaved_opt_out = None;
        if settings.opted_in && settings::withdrawal_marker(&dirs.data).exists() {
            // An opt-out the settings could not take last time: it stands.
            settings.opted_in = false;
            match settings::save(&dirs.config, &settings) {
                Ok(()) => {}
                Err(e) => unsaved_opt_out = Some(e.to_string()),
            }
        }
        let store = Arc::new(RetentionStore::open(
            &dirs.data.join("store"),
            clock.clone(),
        )?);
        let settings_upload_url = settings.upload_url.clone();
        let mut privacy = Self {
            gate: ConsentGate::new(settings.opted_in),
            ledger: ledger::read(&dirs.config),
            dirs: dirs.clone(),
            clock,
            settings,
            store,
            notice,
            unsaved_opt_out,
            cleanup: Cleanup::SessionOnly {
                why: "not checked yet".into(),
            },
            opening_sweep: SweepReport::default(),
            upload_endpoint: uploads::Endpoint::configured(settings_upload_url.as_deref())
                .map_err(|e| e.to_string()),
        };
        privacy.opening_sweep = privacy.sweep()?;
        Ok(privacy)
    }

    /// The app's start: with no scheduler confirmed and no opt-in, what an
    /// earlier session left (a crash) is deleted before anything else.
    /// Returns how many items that was.
    pub fn start_app_session(&mut self, cleanup: Cleanup) -> Result<usize, PrivacyError> {
        self.cleanup = cleanup;
        if self.keeps_recent_work() {
            return Ok(0);
        }
        Ok(self.store.purge_all()?)
    }

    /// The app's exit: the last sweep, or everything when nothing may
    /// outlive the session.
    pub fn end_app_session(&self) -> Result<(), PrivacyError> {
        if self.keeps_recent_work() {
            self.sweep()?;
        } else {
            self.store.purge_all()?;
        }
        Ok(())
    }

    /// Whether recent work may be kept for the next start: with opt-in, or
    /// when a scheduler will delete it on time.
    pub fn keeps_recent_work(&self) -> bool {
        self.opted_in() || self.cleanup.is_scheduled()
    }

    pub fn opted_in(&self) -> bool {
        self.gate.opted_in()
    }

    pub fn gate(&self) -> ConsentGate {
        self.gate.clone()
    }

    pub fn dirs(&self) -> &AppDirs {
        &self.dirs
    }

    /// Reads consent from disk at the moment of asking (for the uploader).
    pub fn consent_on_disk(&self) -> ConsentOnDisk {
        let (config, data) = (self.dirs.config.clone(), self.dirs.data.clone());
        Arc::new(move || settings::consent_on_disk(&config, &data))
    }

    /// The periodic (and start-up, and exit) sweep.
    pub fn sweep(&self) -> Result<SweepReport, PrivacyError> {
        Ok(self.sweeper()()?)
    }

    /// The sweep as a task for another thread.
    pub fn sweeper(&self) -> impl Fn() -> Result<SweepReport, StoreError> + Send + 'static {
        let store = self.store.clone();
        let gate = self.gate.clone();
        let cap = self.settings.cache_cap_bytes;
        move || store.sweep(Keep::for_consent(gate.opted_in(), cap))
    }

    /// Samples waiting to be uploaded.
    pub fn queued_uploads(&self) -> usize {
        self.store.list_kind(ItemKind::UploadQueue).len()
    }

    /// Changes consent: saved atomically and recorded in the ledger. An
    /// opt-out takes effect at once and whatever can be done is done even
    /// when a write fails: uploads refused, the queue emptied, everything
    /// past its time deleted; see [`PrivacyError::OptOutNotSaved`].
    pub fn set_opted_in(&mut self, opted_in: bool) -> Result<(), PrivacyError> {
        let settled = self.notice.is_none() && self.unsaved_opt_out.is_none();
        if opted_in == self.opted_in() && settled {
            return Ok(());
        }
        if opted_in {
            self.opt_in()
        } else {
            self.opt_out()
        }
    }

    fn opt_in(&mut self) -> Result<(), PrivacyError> {
        let marker = settings::withdrawal_marker(&self.dirs.data);
        crate::fsutil::remove_if_present(&marker).map_err(|source| PrivacyError::Withdrawal {
            source,
            path: marker.clone(),
        })?;
        let mut settings = self.settings.clone();
        settings.opted_in = true;
        settings::save(&self.dirs.config, &settings)?;
        let record = self.record(true);
        if let Err(e) = ledger::append(&self.dirs.config, &record) {
            // Not recorded, so not given: back to opted out.
            let _ = settings::save(&self.dirs.config, &self.settings);
            return Err(PrivacyError::Ledger(e));
        }
        self.settings = settings;
        self.ledger.push(record);
        self.gate.set(true);
        self.notice = None;
        self.unsaved_opt_out = None;
        Ok(())
    }

    fn opt_out(&mut self) -> Result<(), PrivacyError> {
        // First, so that an upload in flight stops at once.
        self.gate.set(false);
        self.settings.opted_in = false;
        self.notice = None;
        let mut problems = Vec::new();
        // On disk before the queue is emptied: a sample is queued only while
        // consent holds on disk, checked under the store's lock, so none can
        // slip in after the queue is emptied (from this or another process).
        if let Err(e) = settings::save(&self.dirs.config, &self.settings) {
            // The next start must not read the old "opted in": leave a mark
            // in the data folder, which it reads too.
            let marker = settings::withdrawal_marker(&self.dirs.data);
            let marked = crate::fsutil::private_dir(&self.dirs.data).and_then(|()| {
                crate::fsutil::write_atomically(
                    &marker,
                    self.now().to_rfc3339().as_bytes(),
                    crate::fsutil::Access::Private,
                )
            });
            problems.push(match marked {
                Ok(()) => format!(
                    "the setting could not be saved ({e}); it is kept in {}",
                    marker.display()
                ),
                Err(m) => format!("the setting could not be saved ({e}) nor marked ({m})"),
            });
        }
        if let Err(e) = self.store.purge_kind(ItemKind::UploadQueue) {
            problems.push(format!("the upload queue could not be emptied ({e})"));
        }
        if let Err(e) = self.sweep() {
            problems.push(format!("old data could not be deleted ({e})"));
        }
        let record = self.record(false);
        match ledger::append(&self.dirs.config, &record) {
            Ok(()) => self.ledger.push(record),
            Err(e) => problems.push(format!("the change could not be recorded ({e})")),
        }
        if problems.is_empty() {
            self.unsaved_opt_out = None;
            Ok(())
        } else {
            let text = problems.join("; ");
            self.unsaved_opt_out = Some(text.clone());
            Err(PrivacyError::OptOutNotSaved(text))
        }
    }

    fn record(&self, opted_in: bool) -> ConsentRecord {
        ConsentRecord {
            time: self.now(),
            opted_in,
            app_version: APP_VERSION.to_string(),
        }
    }

    pub fn ledger(&self) -> &[ConsentRecord] {
        &self.ledger
    }

    pub fn now(&self) -> DateTime<Utc> {
        let now = self.clock.now();
        DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now)
    }

    /// `opted out` / `opted in`.
    pub fn consent_line(&self) -> &'static str {
        if self.opted_in() {
            "opted in"
        } else {
            "opted out"
        }
    }

    /// `stored: 12 items, 3.4 MB, oldest 2 h 05 min`.
    pub fn stored_line(&self) -> String {
        stored_line(&self.store.stats())
    }

    /// Per kind: the count, the oldest one's age and when it is deleted.
    pub fn kind_lines(&self) -> Vec<String> {
        let stats = self.store.stats();
        stats
            .kinds
            .iter()
            .map(|k| {
                let deleted = if self.opted_in() {
                    "kept while you allow it".to_string()
                } else {
                    format!(
                        "deleted by {}",
                        (k.oldest_created + RETENTION).format("%Y-%m-%d %H:%M UTC")
                    )
                };
                format!(
                    "  {}: {}, oldest {}, {deleted}",
                    k.kind.plural(),
                    k.items,
                    format_age(k.oldest_age)
                )
            })
            .collect()
    }
}

/// The store's journal of exports in progress, for the command line (which
/// does not open the rest of the store): see [`crate::partials`].
/// The privacy core at work for the app: consent and the store, the store
/// writer (results, the workspace list, training samples and sweeps, off
/// the UI thread) and the uploader (idle, no connection, without consent),
/// all wired to the one consent gate.
pub struct PrivacyServices {
    pub privacy: Privacy,
    pub writer: writer::StoreWriter,
    pub uploader: uploads::Uploader,
}

impl PrivacyServices {
    /// Starts the writer and the uploader; `wake` is called when either has
    /// news for the window. Without its threads nothing may be stored:
    /// the caller keeps nothing (fails closed).
    pub fn start(privacy: Privacy, wake: Arc<dyn Fn() + Send + Sync>) -> std::io::Result<Self> {
        let uploader = uploads::Uploader::spawn(
            privacy.store.clone(),
            privacy.gate(),
            privacy.consent_on_disk(),
            privacy.upload_endpoint.clone(),
            uploads::Backoff::default(),
            wake.clone(),
        )?;
        let writer = writer::StoreWriter::spawn(
            privacy.store.clone(),
            privacy.gate(),
            privacy.consent_on_disk(),
            Box::new(privacy.sweeper()),
            Box::new(uploader.kicker()),
            wake,
        )?;
        Ok(Self {
            privacy,
            writer,
            uploader,
        })
    }

    /// Changes consent (see [`Privacy::set_opted_in`]) and has the uploader
    /// look at the queue at once.
    pub fn set_opted_in(&mut self, opted_in: bool) -> Result<(), PrivacyError> {
        let result = self.privacy.set_opted_in(opted_in);
        self.uploader.kick();
        result
    }
}

pub fn partials_journal(dirs: &AppDirs) -> std::io::Result<std::path::PathBuf> {
    let dir = dirs.data.join("store").join(store::PARTIALS_DIR);
    crate::fsutil::private_dir(&dirs.data.join("store"))?;
    crate::fsutil::private_dir(&dir)?;
    Ok(dir)
}

/// "deleted 3 items (2 masks, 1 workspace entries); kept 4": counts only,
/// never a name (the scheduler's log keeps this line).
pub fn sweep_line(report: &SweepReport) -> String {
    let kinds: Vec<String> = report
        .removed_kinds
        .iter()
        .map(|(kind, n)| format!("{n} {}", kind.plural()))
        .collect();
    let mut line = format!(
        "deleted {} item{}",
        report.removed,
        if report.removed == 1 { "" } else { "s" }
    );
    if !kinds.is_empty() {
        line.push_str(&format!(" ({})", kinds.join(", ")));
    }
    if report.strays > 0 {
        line.push_str(&format!(", {} leftover files", report.strays));
    }
    if report.partials > 0 {
        line.push_str(&format!(", {} unfinished exports", report.partials));
    }
    line.push_str(&format!("; kept {}", report.kept));
    line
}

pub fn stored_line(stats: &StoreStats) -> String {
    let size = format!("{:.1} MB", stats.bytes as f64 / 1e6);
    match stats.oldest_age {
        Some(age) => format!(
            "stored: {} item{}, {size}, oldest {}",
            stats.items,
            if stats.items == 1 { "" } else { "s" },
            format_age(age)
        ),
        None => format!("stored: 0 items, {size}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;
    use store::{ItemKind, ManualClock};

    #[test]
    fn revoking_consent_deletes_old_items_at_once_and_is_recorded() {
        let home = tempfile::tempdir().unwrap();
        let dirs = AppDirs::under(home.path());
        let clock = Arc::new(ManualClock::new("2026-11-29T10:00:00Z".parse().unwrap()));
        let mut privacy = Privacy::open(&dirs, clock.clone()).unwrap();
        assert!(!privacy.opted_in(), "off by default");
        privacy.set_opted_in(true).unwrap();
        privacy.store.put(ItemKind::Mask, "cat.jpg", b"m").unwrap();
        clock.advance(TimeDelta::hours(30));
        assert_eq!(privacy.sweep().unwrap().removed, 0, "kept while opted in");
        assert_eq!(
            privacy.stored_line(),
            "stored: 1 item, 0.0 MB, oldest 1 d 6 h"
        );
        privacy.set_opted_in(false).unwrap();
        assert_eq!(privacy.store.stats().items, 0, "revoke sweeps immediately");
        let ledger = privacy.ledger();
        assert_eq!(
            ledger.iter().map(|r| r.opted_in).collect::<Vec<_>>(),
            vec![true, false]
        );
        assert_eq!(ledger[0].app_version, APP_VERSION);

        // A restart reads the choice back, and sweeps at start-up.
        let privacy = Privacy::open(&dirs, clock).unwrap();
        assert!(!privacy.opted_in());
        assert_eq!(privacy.consent_line(), "opted out");
    }
}
