//! The privacy core: consent (one opt-in, off by default), the consent
//! ledger, and the retention-governed store. Plain Rust, no UI: the app, the
//! command line and the tests drive the same code.

pub mod ledger;
pub mod settings;
pub mod store;

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::paths::AppDirs;
use ledger::ConsentRecord;
use settings::{LoadNotice, Settings, SettingsError};
use store::{Clock, RetentionStore, StoreError, StoreStats, SweepReport, format_age};

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
    pub store: RetentionStore,
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
        let store = RetentionStore::open(&dirs.data.join("store"), clock.clone())?;
        let privacy = Self {
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
        self.settings.opted_in
    }

    /// The periodic (and start-up, and exit) sweep.
    pub fn sweep(&self) -> Result<SweepReport, PrivacyError> {
        Ok(self
            .store
            .sweep(self.settings.opted_in, self.settings.cache_cap_bytes)?)
    }

    /// Changes consent: saved atomically, recorded in the ledger, and when
    /// revoked, everything over 24 hours old is deleted at once.
    pub fn set_opted_in(&mut self, opted_in: bool) -> Result<(), PrivacyError> {
        if opted_in == self.settings.opted_in && self.notice.is_none() {
            return Ok(());
        }
        self.settings.opted_in = opted_in;
        settings::save(&self.dirs.config, &self.settings)?;
        self.notice = None;
        let record = ConsentRecord {
            time: self.now(),
            opted_in,
            app_version: APP_VERSION.to_string(),
        };
        ledger::append(&self.dirs.config, &record).map_err(PrivacyError::Ledger)?;
        self.ledger.push(record);
        if !opted_in {
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
