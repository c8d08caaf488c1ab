//! UI responsiveness while a 12 MP photo is decoded, inferred and shown:
//! every frame of the real app (egui_kittest on wgpu, lavapipe here) is timed
//! from the drop until the result is on screen.
//!
//!     scripts/fetch-test-photos && cargo bench --bench ui_frames
//!
//! A frame here is `Harness::step` (events, layout, texture uploads) plus
//! `Harness::render` (GPU draw and read-back), so it over-states a real window's
//! frame, which presents without reading pixels back.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use backgrounderase::app::{DesktopApp, Status};
use backgrounderase::paths::AppDirs;
use egui_kittest::Harness;
use image::imageops::FilterType;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let photos = std::env::var_os("BACKGROUNDERASE_TEST_PHOTOS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/backgrounderase/test-photos")
        });
    let tmp = tempfile::tempdir().unwrap();
    let photo = tmp.path().join("12mp.jpg");
    let volna = image::open(photos.join("volna-5120x2880.jpg"))
        .expect("run scripts/fetch-test-photos first");
    volna
        .crop_imm(560, 0, 4000, 2880)
        .resize_exact(4000, 3000, FilterType::Lanczos3)
        .to_rgb8()
        .save(&photo)
        .unwrap();

    // A profile of its own (the installed runtime and models linked in), so
    // no earlier work is restored into the measurement.
    let installed = AppDirs::discover().unwrap();
    let dirs = AppDirs::under(&tmp.path().join("home"));
    std::fs::create_dir_all(&dirs.data).unwrap();
    std::os::unix::fs::symlink(installed.models_dir(), dirs.models_dir()).unwrap();
    std::os::unix::fs::symlink(installed.runtime_dir(), dirs.runtime_dir()).unwrap();
    let mut harness = Harness::builder()
        .with_size(egui::vec2(1280.0, 800.0))
        .wgpu()
        .build_eframe(move |cc| {
            DesktopApp::new(
                cc,
                backgrounderase::app::AppStart::new(
                    dirs,
                    backgrounderase::privacy::schedule::Cleanup::Scheduled {
                        scheduler: backgrounderase::privacy::schedule::Scheduler::Systemd,
                    },
                ),
            )
        });
    // Let the model load first: this measures an image's journey, not start-up.
    let ready = Instant::now();
    while matches!(
        harness.state().engine,
        backgrounderase::app::EngineStatus::Loading
    ) {
        harness.step();
        std::thread::sleep(Duration::from_millis(10));
        assert!(
            ready.elapsed() < Duration::from_secs(60),
            "model did not load"
        );
    }

    // Baseline: the same frames with nothing to do (empty window).
    let mut idle_logic = Vec::new();
    let mut idle = Vec::new();
    for _ in 0..30 {
        let t = Instant::now();
        harness.step();
        idle_logic.push(t.elapsed());
        harness.render().expect("render");
        idle.push(t.elapsed());
    }

    harness.state_mut().open_paths(vec![photo]);
    let mut frames = Vec::new();
    let mut logic = Vec::new();
    let started = Instant::now();
    loop {
        let t = Instant::now();
        harness.step();
        logic.push(t.elapsed());
        harness.render().expect("render");
        frames.push(t.elapsed());
        if harness.state().workspace.items[0].status == Status::Done {
            // One more frame shows the result.
            let t = Instant::now();
            harness.step();
            logic.push(t.elapsed());
            harness.render().expect("render");
            frames.push(t.elapsed());
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "no result");
        // About 60 frames a second when idle between events.
        std::thread::sleep(Duration::from_millis(16).saturating_sub(t.elapsed()));
    }
    let total = started.elapsed();
    println!("idle window, {} frames:", idle.len());
    report("  app logic (step)          ", &idle_logic);
    report("  logic + render + readback ", &idle);
    println!(
        "12 MP photo, {} frames in {:.1} s:",
        frames.len(),
        total.as_secs_f64()
    );
    report("  app logic (step)          ", &logic);
    report("  logic + render + readback ", &frames);
}

fn report(label: &str, frames: &[Duration]) {
    let mut sorted = frames.to_vec();
    sorted.sort();
    let pct = |p: f64| sorted[((sorted.len() - 1) as f64 * p) as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let over = frames
        .iter()
        .filter(|f| **f > Duration::from_millis(50))
        .count();
    println!(
        "{label} median {:.1} ms, p99 {:.1} ms, max {:.1} ms; {over} of {} over 50 ms",
        ms(pct(0.5)),
        ms(pct(0.99)),
        ms(*sorted.last().unwrap()),
        frames.len()
    );
}
