//! The first minute, timed in the real window for `scripts/bench-first-minute`.
//! Enabled only by `BACKGROUNDERASE_TIMELINE=<file>`: the app appends one line
//! per milestone — `first_frame`, `ready` (model loaded and warmed up), and
//! for each photo `opened`, `decoded`, `started` (the model began), `preview`
//! and `result` — each with the wall clock in milliseconds, so the
//! script can measure from the moment it launched the process.
//!
//! Names only the milestone, never an image: the file is the benchmark's.

use std::io::Write;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

pub struct Timeline {
    out: PathBuf,
    first_frame_marked: bool,
}

impl Timeline {
    pub fn from_env() -> Option<Self> {
        let out = std::env::var_os("BACKGROUNDERASE_TIMELINE")?;
        Some(Self {
            out: PathBuf::from(out),
            first_frame_marked: false,
        })
    }

    pub fn mark(&self, milestone: &str) {
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let line = format!("{unix_ms} {milestone}\n");
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.out)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = written {
            tracing::warn!("timeline not written ({e})");
        }
    }

    /// Marks the first frame once.
    pub fn frame(&mut self) {
        if !self.first_frame_marked {
            self.first_frame_marked = true;
            self.mark("first_frame");
        }
    }
}
