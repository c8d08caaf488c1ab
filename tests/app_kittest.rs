//! The desktop app driven by egui_kittest on real wgpu (lavapipe in CI), with
//! the real model: drop a photo, wait for the result, compare, change the
//! background, export, and a snapshot of the window.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backgrounderase::app::{Background, DesktopApp, EngineStatus, Status};
use backgrounderase::engine::encode::OutputFormat;
use backgrounderase::paths::AppDirs;
use common::fixture;
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};

#[derive(Debug)]
struct DroppedPath(PathBuf);

impl egui::DroppedFile for DroppedPath {
    fn path(&self) -> &Path {
        &self.0
    }
    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

/// The app on a fresh profile (see [`fresh_profile`]); keep the folder alive.
fn app_harness<'a>() -> (tempfile::TempDir, Harness<'a, DesktopApp>) {
    let (home, dirs) = fresh_profile();
    (home, harness_for(&dirs))
}

/// Steps the app until `done` holds, in real time (the worker runs on its own threads).
fn step_until(
    harness: &mut Harness<'_, DesktopApp>,
    what: &str,
    done: impl Fn(&DesktopApp) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done(harness.state()) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        harness.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    harness.step();
}

#[test]
fn drop_compare_recolour_export() {
    let (_home, mut harness) = app_harness();
    harness.get_by_label_contains("Drop images here");

    harness
        .input_mut()
        .dropped_files
        .push(Arc::new(DroppedPath(fixture("photos/coffee.jpg"))));
    harness.step();
    assert_eq!(harness.state().workspace.items.len(), 1);
    step_until(&mut harness, "the result", |app| {
        app.workspace.items[0].status == Status::Done
    });
    assert!(
        matches!(&harness.state().engine, EngineStatus::Ready { provider, .. } if provider == "CPU")
    );
    // The status bar names the provider and the privacy state.
    harness.get_by_label_contains("· CPU");
    harness.get_by_label_contains("nothing leaves this computer");

    // Drag the compare divider from the middle towards the left.
    let canvas = harness.get_by_label("Compare before and after").rect();
    let start = canvas.center();
    harness.drag_at(start);
    harness.step();
    harness.hover_at(start - egui::vec2(canvas.width() * 0.2, 0.0));
    harness.step();
    harness.drop_at(start - egui::vec2(canvas.width() * 0.2, 0.0));
    harness.step();
    let split = harness.state().view.split;
    assert!(split < 0.45, "divider moved left: {split}");

    // A colour background, then a JPEG export flattened on it.
    harness.get_by_label("Colour").click();
    harness.step();
    assert_eq!(
        harness.state().view.background,
        Background::Colour([255, 255, 255])
    );
    harness.state_mut().view.background = Background::Colour([0, 200, 0]);
    harness.state_mut().format = OutputFormat::Jpeg;
    harness.step();

    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("coffee.jpg");
    harness.state_mut().export_selected_to(path.clone());
    step_until(&mut harness, "the export", |app| {
        app.notices.iter().any(|n| n.text.starts_with("exported"))
    });
    let exported = image::open(&path).unwrap().to_rgb8();
    assert_eq!(exported.dimensions(), (600, 400));
    let corner = exported.get_pixel(4, 396).0;
    assert!(
        corner[1] > 170 && corner[0] < 60 && corner[2] < 60,
        "background is the chosen green: {corner:?}"
    );
    let cup = exported.get_pixel(300, 120).0;
    assert!(cup[0] > cup[1], "the cup keeps its colour: {cup:?}");
}

#[test]
fn main_window_with_a_result_snapshot() {
    let (_home, mut harness) = app_harness();
    harness
        .state_mut()
        .open_paths(vec![fixture("photos/chelsea.jpg")]);
    step_until(&mut harness, "the result", |app| {
        app.workspace.items[0].status == Status::Done
    });
    // The inference time differs from run to run: keep it out of the image.
    let timing = harness.get_by_label_contains("last:").rect();
    harness.mask(timing);
    harness.snapshot("main_window_result");
}

#[test]
fn switching_model_reprocesses_open_images() {
    let (_home, mut harness) = app_harness();
    harness
        .state_mut()
        .open_paths(vec![fixture("photos/coffee.jpg")]);
    step_until(&mut harness, "the first result", |app| {
        app.workspace.items[0].status == Status::Done
    });
    let first = harness.state().workspace.items[0].mask.clone().unwrap();
    // Not-installed models are listed but cannot be picked.
    assert!(
        harness
            .state()
            .models
            .iter()
            .any(|m| m.id == "u2net" && m.missing_hint.is_some())
    );
    harness.state_mut().switch_model("isnet-imgly-small");
    harness.step();
    assert_eq!(harness.state().workspace.items[0].status, Status::Queued);
    step_until(&mut harness, "the small model's result", |app| {
        app.workspace.items[0].status == Status::Done
    });
    assert!(
        matches!(&harness.state().engine, EngineStatus::Ready { model, .. } if model.contains("small"))
    );
    let second = harness.state().workspace.items[0].mask.clone().unwrap();
    assert_eq!(first.dimensions(), second.dimensions());
    assert_ne!(
        first.as_raw(),
        second.as_raw(),
        "a different model gives a different mask"
    );
}

#[test]
fn a_queued_image_can_be_cancelled() {
    let (_home, mut harness) = app_harness();
    harness.state_mut().open_paths(vec![
        fixture("photos/coffee.jpg"),
        fixture("photos/astronaut.jpg"),
    ]);
    harness.step();
    let second = harness.state().workspace.items[1].id;
    harness.state_mut().cancel(second);
    step_until(&mut harness, "the first result", |app| {
        app.workspace.items[0].status == Status::Done
    });
    // Give the worker time to reach the cancelled one: it must never run.
    for _ in 0..20 {
        harness.step();
        std::thread::sleep(Duration::from_millis(50));
    }
    let item = &harness.state().workspace.items[1];
    assert_eq!(item.status, Status::Cancelled);
    assert!(item.mask.is_none());
}

#[test]
fn a_bad_file_shows_a_readable_reason_in_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("notes.png");
    std::fs::write(&bad, "not an image").unwrap();
    let (_home, mut harness) = app_harness();
    harness.state_mut().open_paths(vec![bad]);
    step_until(&mut harness, "the failure", |app| {
        matches!(app.workspace.items[0].status, Status::Failed(_))
    });
    assert!(
        harness
            .query_all_by_label_contains("not an image this app can read")
            .count()
            >= 1
    );
}

/// A fresh profile in a temporary folder that still finds the installed
/// runtime and models (linked in), so the app starts as a new user's would.
fn fresh_profile() -> (tempfile::TempDir, AppDirs) {
    let home = tempfile::tempdir().unwrap();
    let dirs = AppDirs::under(home.path());
    let installed = AppDirs::discover();
    std::fs::create_dir_all(&dirs.data).unwrap();
    std::os::unix::fs::symlink(installed.models_dir(), dirs.models_dir()).unwrap();
    std::os::unix::fs::symlink(installed.runtime_dir(), dirs.runtime_dir()).unwrap();
    (home, dirs)
}

fn harness_for<'a>(dirs: &AppDirs) -> Harness<'a, DesktopApp> {
    let dirs = dirs.clone();
    Harness::builder()
        .with_size(egui::vec2(1280.0, 800.0))
        .wgpu()
        .build_eframe(move |cc| DesktopApp::new(cc, dirs, None, Vec::new()))
}

#[test]
fn consent_toggle_is_first_off_by_default_persists_and_is_recorded() {
    use backgrounderase::app::{CONSENT_LABEL, Page};
    let (_home, dirs) = fresh_profile();
    let mut harness = harness_for(&dirs);
    harness.get_by_label("Account").click();
    harness.run_steps(2);
    assert_eq!(harness.state().page, Page::Account);

    let toggle = harness.get_by_label(CONSENT_LABEL);
    assert_eq!(
        toggle.accesskit_node().toggled(),
        Some(egui::accesskit::Toggled::False)
    );
    // First widget of the pane: above everything else in it.
    let top = toggle.rect().top();
    for other in [
        "Stored on this computer",
        "Delete all local data now",
        "Consent history",
    ] {
        assert!(
            harness.get_by_label(other).rect().top() > top,
            "{other} is above the toggle"
        );
    }
    harness.get_by_label_contains("nothing is uploaded").rect();

    harness.get_by_label(CONSENT_LABEL).click();
    harness.run_steps(2);
    assert!(harness.state().privacy.as_ref().unwrap().opted_in());
    drop(harness);

    // Restart: the choice is back, and the ledger has recorded it.
    let mut harness = harness_for(&dirs);
    harness.get_by_label("Account").click();
    harness.run_steps(2);
    let toggle = harness.get_by_label(CONSENT_LABEL);
    assert_eq!(
        toggle.accesskit_node().toggled(),
        Some(egui::accesskit::Toggled::True)
    );
    let ledger = harness.state().privacy.as_ref().unwrap().ledger();
    assert_eq!(ledger.len(), 1);
    assert!(ledger[0].opted_in);
    harness.get_by_label_contains("· allowed ·");
}

#[test]
fn corrupt_settings_start_opted_out_keep_the_file_and_say_so() {
    let (_home, dirs) = fresh_profile();
    std::fs::create_dir_all(&dirs.config).unwrap();
    std::fs::write(dirs.config.join("settings.ron"), "(opted_in: tr").unwrap();
    let mut harness = harness_for(&dirs);
    harness.run_steps(2);
    assert!(!harness.state().privacy.as_ref().unwrap().opted_in());
    harness.get_by_label_contains("Your settings could not be read");
    let kept: Vec<_> = std::fs::read_dir(&dirs.config)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("settings.ron.corrupt-")
        })
        .collect();
    assert_eq!(kept.len(), 1);
    assert_eq!(
        std::fs::read_to_string(kept[0].path()).unwrap(),
        "(opted_in: tr"
    );
}
