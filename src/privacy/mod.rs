//! The privacy core: consent (one opt-in, off by default), the consent
//! ledger, and the retention-governed store. Plain Rust, no UI: the app, the
//! command line and the tests drive the same code.

pub mod ledger;
pub mod recent;
pub mod settings;
pub mod store;
pub mod uploads;
pub mod writer;

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::paths::AppDirs;
use ledger::ConsentRecord;
use settings::{LoadNotice, Settings, SettingsError};
use store::{Clock, ItemKind, RetentionStore, StoreError, StoreStats, SweepReport, format_age};
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
}

pub struct Privacy {
    dirs: AppDirs,
    clock: Arc<dyn Clock>,
    pub settings: Settings,
    /// Shared with the threads that write and upload.
    pub store: Arc<RetentionStore>,
    /// Consent as the background threads see it; always equal to
    /// `settings.opted_in` except when withdrawn from elsewhere.
    gate: ConsentGate,
    /// The consent ledger, read once at open and kept in step with appends,
    /// so the Account page does not re-read the file every frame.
    ledger: Vec<ConsentRecord>,
    /// Set when the stored settings could not be used (shown to the user).
    pub notice: Option<LoadNotice>,
}

impl Privacy {
    /// Loads consent and opens the store, then runs the start-up sweep.
    pub fn open(dirs: &AppDirs, clock: Arc<dyn Clock>) -> Result<Self, PrivacyError> {
        let (settings, notice) = settings::load(&dirs.config, clock.now());
        let store = Arc::new(RetentionStore::open(
            &dirs.data.join("store"),
            clock.clone(),
        )?);
        let privacy = Self {
            gate: ConsentGate::new(settings.opted_in),
            ledger: ledger::read(&dirs.config),
            dirs: dirs.clone(),
            clock,
            settings,
            store,
            notice,
        };
        privacy.sweep()?;
        Ok(privacy)
    }

    pub fn opted_in(&self) -> bool {
        self.settings.opted_in && self.gate.opted_in()
    }

    pub fn gate(&self) -> ConsentGate {
        self.gate.clone()
    }

    /// Reads consent from disk at the moment of asking (for the uploader).
    pub fn consent_on_disk(&self) -> ConsentOnDisk {
        let config = self.dirs.config.clone();
        Arc::new(move || settings::opted_in_on_disk(&config))
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
        move || store.sweep(gate.opted_in(), cap)
    }

    /// Samples waiting to be uploaded.
    pub fn queued_uploads(&self) -> usize {
        self.store.list_kind(ItemKind::UploadQueue).len()
    }

    /// Changes consent: saved atomically, recorded in the ledger, and when
    /// revoked, everything over 24 hours old is deleted at once.
    pub fn set_opted_in(&mut self, opted_in: bool) -> Result<(), PrivacyError> {
        if opted_in == self.opted_in() && self.notice.is_none() {
            return Ok(());
        }
        if !opted_in {
            // First, so that an upload in flight stops at once.
            self.gate.set(false);
        }
        self.settings.opted_in = opted_in;
        settings::save(&self.dirs.config, &self.settings)?;
        if opted_in {
            self.gate.set(true);
        }
        self.notice = None;
        let record = ConsentRecord {
            time: self.now(),
            opted_in,
            app_version: APP_VERSION.to_string(),
        };
        ledger::append(&self.dirs.config, &record).map_err(PrivacyError::Ledger)?;
        self.ledger.push(record);
        if !opted_in {
            self.store.purge_kind(ItemKind::UploadQueue)?;
            self.sweep()?;
        }
        Ok(())
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
        if self.settings.opted_in {
            "opted in"
        } else {
            "opted out"
        }
    }

    /// `stored: 12 items, 3.4 MB, oldest 2 h 05 min`.
    pub fn stored_line(&self) -> String {
        stored_line(&self.store.stats())
    }
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
