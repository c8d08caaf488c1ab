//! Frame timing of the real window, for the responsiveness benchmark
//! (`scripts/bench-window-frames`). Enabled only by
//! `BACKGROUNDERASE_FRAME_STATS=<file.json>`: the window then repaints
//! continuously, times every frame from the first opened image until its
//! result has been on screen for a moment, writes the figures and closes.
//! Started without images it times 30 frames of the empty window once the
//! model has loaded: the renderer's own baseline.
//!
//! Under continuous repainting the time between the starts of two frames is
//! the whole frame: input, layout, texture uploads, drawing and presenting.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Frames kept after the result first appears, so its upload and first
/// draws are counted.
const FRAMES_AFTER_RESULT: usize = 30;

pub struct FrameProbe {
    out: PathBuf,
    last_frame_start: Option<Instant>,
    started: Option<Instant>,
    frames: Vec<Duration>,
    /// eframe's measure of each frame without the wait for vsync.
    busy_time: Vec<Duration>,
    frames_after_result: Option<usize>,
    written: bool,
}

#[derive(Debug, Serialize)]
pub struct WindowReport {
    /// Start-to-start time of each frame.
    pub frames: FrameReport,
    /// The part eframe spent in the app and in rendering, without waiting
    /// for the display.
    pub without_vsync_wait: FrameReport,
}

#[derive(Debug, Serialize)]
pub struct FrameReport {
    pub frames: usize,
    pub seconds: f64,
    pub median_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub over_50ms: usize,
    /// Every frame, in order, in milliseconds.
    pub frame_ms: Vec<f64>,
}

impl FrameProbe {
    pub fn from_env() -> Option<Self> {
        let out = std::env::var_os("BACKGROUNDERASE_FRAME_STATS")?;
        Some(Self {
            out: PathBuf::from(out),
            last_frame_start: None,
            started: None,
            frames: Vec::new(),
            busy_time: Vec::new(),
            frames_after_result: None,
            written: false,
        })
    }

    /// Called at the start of every frame. Timing begins with the first
    /// frame where `start` holds and ends 30 frames after the first where
    /// `done` holds; `previous_cpu` is eframe's time of the previous frame
    /// without the wait for the display. Returns true once the figures are
    /// written and the window should close.
    pub fn frame(&mut self, start: bool, done: bool, previous_cpu: Option<f32>) -> bool {
        let now = Instant::now();
        if let (Some(last), Some(_)) = (self.last_frame_start, self.started) {
            self.frames.push(now - last);
            self.busy_time
                .push(Duration::from_secs_f32(previous_cpu.unwrap_or(0.0)));
        }
        self.last_frame_start = Some(now);
        if start && self.started.is_none() {
            self.started = Some(now);
        }
        if done && self.frames_after_result.is_none() {
            self.frames_after_result = Some(self.frames.len());
        }
        let finished = self
            .frames_after_result
            .is_some_and(|at| self.frames.len() >= at + FRAMES_AFTER_RESULT);
        if finished && !self.written {
            self.written = true;
            let total = self.started.map(|s| now - s);
            let report = WindowReport {
                frames: report(&self.frames, total),
                without_vsync_wait: report(&self.busy_time, total),
            };
            let json = serde_json::to_vec_pretty(&report).unwrap_or_default();
            if let Err(e) = std::fs::write(&self.out, json) {
                eprintln!("cannot write frame stats ({e}): {}", self.out.display());
            }
        }
        finished
    }
}

pub fn report(frames: &[Duration], total: Option<Duration>) -> FrameReport {
    let ms = |d: &Duration| d.as_secs_f64() * 1e3;
    let mut sorted: Vec<f64> = frames.iter().map(ms).collect();
    sorted.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        sorted
            .get(((sorted.len().max(1) - 1) as f64 * p) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    FrameReport {
        frames: frames.len(),
        seconds: total.unwrap_or_default().as_secs_f64(),
        median_ms: pct(0.5),
        p99_ms: pct(0.99),
        max_ms: sorted.last().copied().unwrap_or(0.0),
        over_50ms: sorted.iter().filter(|f| **f > 50.0).count(),
        frame_ms: frames.iter().map(ms).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_counts_slow_frames_and_percentiles() {
        let frames: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let r = report(&frames, Some(Duration::from_secs(5)));
        assert_eq!(r.frames, 100);
        assert_eq!(r.over_50ms, 50);
        assert_eq!(r.max_ms, 100.0);
        assert!((r.median_ms - 50.0).abs() < 1.01);
    }
}
