//! The consent ledger: every change of the opt-in, appended, never rewritten.
//! One RON record per line, so a torn last line loses only itself.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub const LEDGER_FILE: &str = "consent-ledger.ron";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentRecord {
    /// UTC, to the second.
    pub time: DateTime<Utc>,
    pub opted_in: bool,
    pub app_version: String,
}

pub fn ledger_path(config_dir: &Path) -> PathBuf {
    config_dir.join(LEDGER_FILE)
}

/// Appends one record (and flushes it to disk before returning).
pub fn append(config_dir: &Path, record: &ConsentRecord) -> std::io::Result<()> {
    crate::fsutil::private_dir(config_dir)?;
    let line = ron::to_string(record).map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut file = crate::fsutil::open_private_append(&ledger_path(config_dir))?;
    writeln!(file, "{line}")?;
    file.sync_all()
}

/// Every readable record, oldest first; unreadable lines are skipped.
pub fn read(config_dir: &Path) -> Vec<ConsentRecord> {
    crate::limits::read_settings_text(&ledger_path(config_dir))
        .map(|text| text.lines().filter_map(|l| ron::from_str(l).ok()).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_appended_in_order_and_survive_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let record = |s: &str, opted_in| ConsentRecord {
            time: s.parse().unwrap(),
            opted_in,
            app_version: "0.1.0".into(),
        };
        append(dir.path(), &record("2026-11-29T10:00:00Z", true)).unwrap();
        append(dir.path(), &record("2026-11-29T11:00:00Z", false)).unwrap();
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(ledger_path(dir.path()))
            .unwrap();
        write!(file, "(time: \"2026-11").unwrap();
        let records = read(dir.path());
        assert_eq!(records.len(), 2);
        assert!(records[0].opted_in && !records[1].opted_in);
    }
}
