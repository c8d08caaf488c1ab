//! UI responsiveness while a 12 MP photo is decoded, inferred and shown,
//! then edited (a brush stroke, feather and shift) and exported with the
//! training opt-in on: every frame of the real app (egui_kittest on wgpu,
//! lavapipe here) is timed from the drop until the result is on screen, and
//! from the export until its notice. The frame that applies the export's
//! "delivered" report is where the final mask used to be recomputed at full
//! resolution on the UI thread; that recompute is timed beside it.
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
        timed_frame(&mut harness, &mut idle_logic, &mut idle);
    }

    harness.state_mut().open_paths(vec![photo]);
    let mut frames = Vec::new();
    let mut logic = Vec::new();
    let started = Instant::now();
    loop {
        let t = Instant::now();
        timed_frame(&mut harness, &mut logic, &mut frames);
        if harness.state().workspace.items[0].status == Status::Done {
            // One more frame shows the result.
            timed_frame(&mut harness, &mut logic, &mut frames);
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "no result");
        // About 60 frames a second when idle between events.
        std::thread::sleep(Duration::from_millis(16).saturating_sub(t.elapsed()));
    }
    let total = started.elapsed();
    let (export_logic, export_frames, export_total, before) = edit_and_export(&mut harness, &tmp);
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
    println!(
        "edited 12 MP result exported with opt-in on, {} frames in {:.1} s:",
        export_frames.len(),
        export_total.as_secs_f64()
    );
    report("  app logic (step)          ", &export_logic);
    report("  logic + render + readback ", &export_frames);
    println!(
        "  the full-resolution final mask (strokes, feather, shift) that the UI \
         thread used to make on delivery: {:.1} ms",
        before.as_secs_f64() * 1e3
    );
}

/// Opts in (the Account switch), edits the result, exports it and steps
/// until the export's notice is shown and the training sample is queued.
/// Returns per-frame logic and whole-frame times, the phase's length, and
/// the time of the old UI-thread recompute of the final mask.
fn edit_and_export(
    harness: &mut Harness<'_, DesktopApp>,
    tmp: &tempfile::TempDir,
) -> (Vec<Duration>, Vec<Duration>, Duration, Duration) {
    use backgrounderase::engine::refine::{BrushMode, Stroke, finish_mask};
    use egui_kittest::kittest::Queryable;

    harness.state_mut().page = backgrounderase::app::Page::Account;
    harness.step();
    harness
        .get_by_label(backgrounderase::app::CONSENT_LABEL)
        .click();
    harness.step();
    harness.step();
    assert!(harness.state().privacy().unwrap().opted_in());
    harness.state_mut().page = backgrounderase::app::Page::Workspace;
    let app = harness.state_mut();
    app.finish.edges.feather = 2.0;
    app.finish.edges.shift = -1;
    let item = app.workspace.selected_mut().expect("the photo");
    item.strokes.push(Stroke {
        mode: BrushMode::Erase,
        radius: 60.0,
        hardness: 0.5,
        points: vec![[400.0, 400.0], [1600.0, 900.0], [2400.0, 600.0]],
    });
    let (mask, strokes, edges) = (
        item.mask.clone().expect("the result"),
        item.strokes.clone(),
        app.finish.edges,
    );
    let t = Instant::now();
    let _ = finish_mask(&mask, &strokes, &edges);
    let before = t.elapsed();

    let out = tmp.path().join("exported.png");
    harness.state_mut().export_selected_to(out.clone());
    let (mut logic, mut frames) = (Vec::new(), Vec::new());
    let started = Instant::now();
    loop {
        let t = Instant::now();
        timed_frame(harness, &mut logic, &mut frames);
        let exported = harness
            .state()
            .notices
            .iter()
            .any(|n| n.text.starts_with("exported"));
        if exported && out.exists() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "no export");
        std::thread::sleep(Duration::from_millis(16).saturating_sub(t.elapsed()));
    }
    (logic, frames, started.elapsed(), before)
}

/// One frame: the app's logic (`step`) timed into `logic`, and with the
/// GPU draw and read-back into `whole`.
fn timed_frame(
    harness: &mut Harness<'_, DesktopApp>,
    logic: &mut Vec<Duration>,
    whole: &mut Vec<Duration>,
) {
    let t = Instant::now();
    harness.step();
    logic.push(t.elapsed());
    harness.render().expect("render");
    whole.push(t.elapsed());
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
