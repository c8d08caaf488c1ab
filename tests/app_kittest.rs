//! The desktop app driven by egui_kittest on real wgpu (lavapipe in CI), with
//! the real model: drop a photo, wait for the result, compare, change the
//! background, export, and a snapshot of the window.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backgrounderase::app::{AppStart, Background, DesktopApp, DialogKind, EngineStatus, Status};
use backgrounderase::engine::encode::OutputFormat;
use backgrounderase::paths::AppDirs;
use backgrounderase::privacy::schedule::{Cleanup, Scheduler};
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

    // Copy renders on a thread: the window keeps drawing meanwhile, and the
    // clipboard answer (here: there may be no display) comes back as a notice.
    harness.get_by_label("Copy").click();
    harness.step();
    assert!(
        harness.state().copying,
        "the click returns before the render"
    );
    step_until(&mut harness, "the copy", |app| !app.copying);
    assert!(
        harness
            .state()
            .notices
            .iter()
            .any(|n| n.text == "result copied" || n.text.starts_with("could not copy")),
        "{:?}",
        harness.state().notices
    );
}

#[test]
fn main_window_with_a_result_snapshot() {
    let (_home, mut harness) = app_harness();
    harness
        .state_mut()
        .open_paths(vec![fixture("photos/chelsea.jpg")]);
    // Done, and the preview mask recomputed for the default edge settings.
    step_until(&mut harness, "the result", |app| {
        let item = &app.workspace.items[0];
        item.status == Status::Done && !item.preview_pending
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
    assert!(!harness.state().model_manager.is_installed("u2net"));
    let u2net = harness.get_by_label("U²-Net");
    assert!(u2net.accesskit_node().is_disabled());
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

/// The inspector's best-quality switch redoes the image on screen with the
/// engine's best-quality mask; the Batch page offers the same choice.
#[test]
fn the_best_quality_switch_redoes_the_image_on_screen() {
    use backgrounderase::app::{BEST_QUALITY_LABEL, Page};
    use backgrounderase::engine::decode::{DecodeLimits, decode_file};
    use backgrounderase::engine::quality::Quality;
    let (_home, mut harness) = app_harness();
    harness
        .state_mut()
        .open_paths(vec![fixture("photos/coffee.jpg")]);
    step_until(&mut harness, "the standard result", |app| {
        app.workspace.items[0].status == Status::Done
    });
    let standard = harness.state().workspace.items[0].mask.clone().unwrap();
    let switch = harness.get_by_label(BEST_QUALITY_LABEL);
    assert_eq!(
        switch.accesskit_node().role(),
        egui::accesskit::Role::CheckBox
    );
    switch.click();
    harness.step();
    assert_ne!(harness.state().workspace.items[0].status, Status::Done);
    // The preview model is installed, so best has its second opinion.
    assert!(
        harness
            .query_by_label_contains("without its second opinion")
            .is_none()
    );
    step_until(&mut harness, "the best-quality result", |app| {
        app.workspace.items[0].status == Status::Done
    });
    let best = harness.state().workspace.items[0].mask.clone().unwrap();
    let image = decode_file(&fixture("photos/coffee.jpg"), DecodeLimits::default())
        .unwrap()
        .rgba;
    let (expected, _) = common::engine().mask_at(&image, Quality::Best).unwrap();
    let worst = best
        .pixels()
        .zip(expected.pixels())
        .map(|(a, b)| a[0].abs_diff(b[0]))
        .max()
        .unwrap();
    assert!(worst <= 2, "app and library best masks differ by {worst}");
    assert_ne!(best.as_raw(), standard.as_raw());

    harness.get_by_label("Batch").click();
    harness.run_steps(2);
    assert_eq!(harness.state().page, Page::Batch);
    assert_eq!(harness.state().batch.settings.quality, Quality::Standard);
    harness.get_by_label("Quality");
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

#[test]
fn a_pasted_image_over_the_limits_is_refused_with_its_size() {
    let (_home, mut harness) = app_harness();
    // 70000×1 is only 280 KB, but wider than any image may be.
    let wide = image::RgbaImage::new(70_000, 1);
    harness.state_mut().open_pixels("Pasted image".into(), wide);
    harness.step();
    let app = harness.state();
    assert!(app.workspace.items.is_empty(), "the image was opened");
    assert!(
        app.notices
            .iter()
            .any(|n| n.is_error && n.text.contains("70000×1") && n.text.contains("Pasted image")),
        "{:?}",
        app.notices.iter().map(|n| &n.text).collect::<Vec<_>>()
    );
}

/// The name of the control that has the keyboard focus, if any.
fn focused(harness: &Harness<'_, DesktopApp>) -> Option<String> {
    harness
        .query_by(|n| n.is_focused())
        .map(|n| n.accesskit_node().label().unwrap_or_default())
}

/// The instant preview, on by default in the inspector: U²-Net portable's
/// quick cut-out is on the canvas, marked as a preview, before ISNet's result
/// replaces it; the brush does not paint on it, and the preview is never what
/// is exported.
#[test]
fn the_instant_preview_comes_first_then_the_full_result_replaces_it() {
    use backgrounderase::app::{PREVIEW_LABEL, PREVIEW_MARK};
    let (_home, mut harness) = app_harness();
    // On by default, once its model is installed; warmed from the start.
    assert_eq!(
        harness
            .get_by_label(PREVIEW_LABEL)
            .accesskit_node()
            .toggled(),
        Some(egui::accesskit::Toggled::True)
    );
    step_until(&mut harness, "the preview model", |app| {
        app.preview_model_ready && matches!(app.engine, EngineStatus::Ready { .. })
    });
    assert!(
        harness
            .query_by_label_contains("loading the preview model")
            .is_none()
    );
    harness
        .state_mut()
        .open_paths(vec![common::fixture("photos/chelsea.jpg")]);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut preview_shown = false;
    loop {
        let item = &harness.state().workspace.items[0];
        if item.status == Status::Done {
            break;
        }
        if item.provisional {
            assert!(item.mask.is_none(), "a preview is not an exportable result");
            assert!(item.preview_mask.is_some());
            if !preview_shown {
                harness.step();
                harness.get_by_label(PREVIEW_MARK);
                preview_shown = true;
            }
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for the result"
        );
        harness.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(preview_shown, "the preview came before the full result");
    harness.step();
    let item = &harness.state().workspace.items[0];
    assert!(!item.provisional);
    assert!(harness.query_by_label(PREVIEW_MARK).is_none());
    // The full model's mask, at full size.
    let mask = item.mask.as_ref().expect("the full result");
    assert_eq!(mask.dimensions(), (451, 300));
}

/// Without the preview model the switch is off and offers its download,
/// and best quality says it runs without its second opinion.
#[test]
fn the_instant_preview_offers_its_model_when_missing() {
    use backgrounderase::app::PREVIEW_LABEL;
    let (_home, dirs) = fresh_profile();
    std::fs::remove_file(dirs.models_dir().join("u2netp.onnx")).unwrap();
    let mut harness = harness_for(&dirs);
    harness.run_steps(2);
    let switch = harness.get_by_label(PREVIEW_LABEL);
    assert!(switch.accesskit_node().is_disabled());
    assert_eq!(
        switch.accesskit_node().toggled(),
        Some(egui::accesskit::Toggled::False)
    );
    harness.get_by_label_contains("Get the preview model (4.2 MB)");
    // It is also best quality's second opinion: turned on, best says so.
    assert!(
        harness
            .query_by_label_contains("without its second opinion")
            .is_none()
    );
    harness
        .get_by_label(backgrounderase::app::BEST_QUALITY_LABEL)
        .click();
    harness.run_steps(2);
    harness.get_by_label_contains("without its second opinion: it needs the preview model");
}

/// Keyboard alone: images, zoom, the before/after divider, the brush, the
/// pages, and on the Account page the consent switch as the first control
/// Tab reaches after the page tabs, toggled with Space.
#[test]
fn the_keyboard_reaches_images_zoom_compare_brush_pages_and_the_consent_switch() {
    use backgrounderase::app::{CONSENT_LABEL, Page};
    use backgrounderase::engine::refine::BrushMode;
    use egui::{Key, Modifiers};
    let (home, mut harness) = app_harness();
    let exported = home.path().join("keyboard-export.png");
    // The file dialogs answer as a user would: the two photos to open, then
    // where to save.
    let asked = Arc::new(Mutex::new(Vec::new()));
    harness.state_mut().answer_dialogs_with({
        let (asked, exported) = (asked.clone(), exported.clone());
        Arc::new(move |request| {
            asked.lock().unwrap().push(format!("{:?}", request.kind));
            Some(match request.kind {
                DialogKind::PickFiles => vec![
                    common::fixture("photos/chelsea.jpg"),
                    common::fixture("photos/coffee.jpg"),
                ],
                _ => vec![exported.clone()],
            })
        })
    });
    let press = |harness: &mut Harness<'_, DesktopApp>, modifiers: Modifiers, key: Key| {
        harness.key_press_modifiers(modifiers, key);
        harness.run_steps(2);
    };
    let cmd = Modifiers::COMMAND;
    press(&mut harness, cmd, Key::O);
    step_until(&mut harness, "both results", |app| {
        app.workspace.items.len() == 2
            && app.workspace.items.iter().all(|i| i.status == Status::Done)
    });
    harness.state_mut().workspace.selected = Some(0);
    press(&mut harness, cmd, Key::ArrowDown);
    assert_eq!(harness.state().workspace.selected, Some(1));
    press(&mut harness, cmd, Key::ArrowUp);
    assert_eq!(harness.state().workspace.selected, Some(0));

    press(&mut harness, cmd, Key::Equals);
    let zoomed = harness.state().view.zoom.expect("zoomed in");
    press(&mut harness, cmd, Key::Equals);
    assert!(harness.state().view.zoom.unwrap() > zoomed);
    press(&mut harness, cmd, Key::Num0);
    assert_eq!(harness.state().view.zoom, None, "back to fit");

    let split = harness.state().view.split;
    press(&mut harness, cmd, Key::ArrowLeft);
    assert!((harness.state().view.split - (split - 0.1)).abs() < 1e-4);

    press(&mut harness, Modifiers::NONE, Key::B);
    assert_eq!(harness.state().view.brush.mode, Some(BrushMode::Erase));
    press(&mut harness, Modifiers::NONE, Key::B);
    assert_eq!(harness.state().view.brush.mode, Some(BrushMode::Restore));
    press(&mut harness, Modifiers::NONE, Key::B);
    assert_eq!(harness.state().view.brush.mode, None);

    // Export the selected image with Ctrl+S: the save dialog is asked for
    // with the image's name, and the cut-out lands where it answered.
    press(&mut harness, cmd, Key::S);
    step_until(&mut harness, "the export", |_| exported.exists());
    let png = image::open(&exported).expect("an image").to_rgba8();
    assert_eq!(png.dimensions(), (451, 300));
    assert!(
        png.pixels().any(|p| p[3] == 0),
        "the background is transparent"
    );
    assert_eq!(
        asked.lock().unwrap().as_slice(),
        [
            "PickFiles".to_owned(),
            r#"Save { file_name: "chelsea.png" }"#.to_owned()
        ]
    );

    press(&mut harness, Modifiers::ALT, Key::Num2);
    assert_eq!(harness.state().page, Page::Batch);
    press(&mut harness, Modifiers::ALT, Key::Num4);
    assert_eq!(harness.state().page, Page::Account);

    // Tab from the top: past the four page tabs, the switch comes first.
    let mut passed = Vec::new();
    for _ in 0..10 {
        press(&mut harness, Modifiers::NONE, Key::Tab);
        match focused(&harness) {
            Some(name) if name == CONSENT_LABEL => break,
            other => passed.push(other.unwrap_or_default()),
        }
    }
    assert_eq!(
        focused(&harness).as_deref(),
        Some(CONSENT_LABEL),
        "{passed:?}"
    );
    for name in &passed {
        assert!(
            // The page tabs, and the window's notices (the export's "saved"
            // notice here) with their dismiss buttons, sit above every page.
            ["Workspace", "Batch", "Models", "Account", "×"].contains(&name.as_str()),
            "{name} is reached before the consent switch"
        );
    }
    press(&mut harness, Modifiers::NONE, Key::Space);
    assert!(harness.state().privacy().unwrap().opted_in());
}

/// A fresh profile in a temporary folder that still finds the installed
/// runtime and models (linked in), so the app starts as a new user's would.
use common::fresh_profile;

/// Where the hourly clean-up is confirmed (systemd), as for most tests.
fn systemd() -> Cleanup {
    Cleanup::Scheduled {
        scheduler: Scheduler::Systemd,
    }
}

/// The app as started where the hourly clean-up is confirmed (systemd).
fn harness_for<'a>(dirs: &AppDirs) -> Harness<'a, DesktopApp> {
    harness_with(dirs, systemd())
}

fn harness_with<'a>(dirs: &AppDirs, cleanup: Cleanup) -> Harness<'a, DesktopApp> {
    harness_on(dirs, cleanup, None)
}

/// The small fast model (U²-Net portable, ≈ 0.25 s a photo here) for tests
/// that need *a* model rather than *the* model (retention, uploads, purges);
/// whatever is about the cut-out itself runs on the default.
const FAST_MODEL: &str = "u2netp";

fn fast_harness_for<'a>(dirs: &AppDirs) -> Harness<'a, DesktopApp> {
    fast_harness_with(dirs, systemd())
}

fn fast_harness_with<'a>(dirs: &AppDirs, cleanup: Cleanup) -> Harness<'a, DesktopApp> {
    harness_on(dirs, cleanup, Some(FAST_MODEL))
}

fn harness_on<'a>(
    dirs: &AppDirs,
    cleanup: Cleanup,
    model: Option<&str>,
) -> Harness<'a, DesktopApp> {
    let mut start = AppStart::new(dirs.clone(), cleanup);
    start.model = model.map(str::to_string);
    Harness::builder()
        .with_size(egui::vec2(1280.0, 800.0))
        .wgpu()
        .build_eframe(move |cc| DesktopApp::new(cc, start))
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
    // A switch named exactly as it reads, with its state in words under it.
    assert_eq!(
        toggle.accesskit_node().role(),
        egui::accesskit::Role::Switch
    );
    harness.get_by_label(backgrounderase::app::CONSENT_OFF_WORDS);

    // By keyboard: focused, then Space.
    harness.get_by_label(CONSENT_LABEL).focus();
    harness.run_steps(1);
    harness.key_press(egui::Key::Space);
    harness.run_steps(2);
    assert!(harness.state().privacy().unwrap().opted_in());
    harness.get_by_label(backgrounderase::app::CONSENT_ON_WORDS);
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
    let ledger = harness.state().privacy().unwrap().ledger();
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
    assert!(!harness.state().privacy().unwrap().opted_in());
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

/// Steps until the store writer has kept `n` results and the workspace list.
fn wait_until_kept(harness: &mut Harness<'_, DesktopApp>, n: usize) {
    use backgrounderase::privacy::store::ItemKind;
    step_until(harness, "results kept in the store", |app| {
        let store = &app.privacy().unwrap().store;
        store.list_kind(ItemKind::Mask).len() >= n
            && !store.list_kind(ItemKind::Workspace).is_empty()
    });
}

fn export_all(harness: &mut Harness<'_, DesktopApp>, out: &Path) {
    let count = harness.state().workspace.items.len();
    for i in 0..count {
        let before = exported_notices(harness.state());
        harness.state_mut().workspace.selected = Some(i);
        harness
            .state_mut()
            .export_selected_to(out.join(format!("{i}.png")));
        step_until(harness, "the export", |app| exported_notices(app) > before);
    }
}

fn exported_notices(app: &DesktopApp) -> usize {
    app.notices
        .iter()
        .filter(|n| n.text.starts_with("exported"))
        .count()
}

#[test]
fn the_app_uploads_only_with_consent_and_brings_back_recent_work() {
    use backgrounderase::app::{CONSENT_LABEL, Page};
    use backgrounderase::privacy::settings::{self, Settings};
    use common::loopback::{Behaviour, LoopbackServer, multipart};

    let server = LoopbackServer::start(Behaviour::default());
    let (_home, dirs) = fresh_profile();
    let with_server = Settings {
        upload_url: Some(server.url.clone()),
        ..Default::default()
    };
    settings::save(&dirs.config, &with_server).unwrap();
    let photos = [fixture("photos/coffee.jpg"), fixture("photos/chelsea.jpg")];

    // Opted out (the default): process and export two photos.
    let mut harness = fast_harness_for(&dirs);
    harness.state_mut().open_paths(photos.to_vec());
    step_until(&mut harness, "both results", |app| {
        app.workspace.items.iter().all(|i| i.status == Status::Done)
    });
    let out = tempfile::tempdir().unwrap();
    export_all(&mut harness, out.path());
    wait_until_kept(&mut harness, 2);
    std::thread::sleep(Duration::from_secs(1));
    harness.step();
    assert_eq!(server.connections(), 0, "opted out: no connection at all");

    // Opt in on the Account pane, export again: both samples arrive.
    harness.get_by_label("Account").click();
    harness.run_steps(2);
    harness.get_by_label(CONSENT_LABEL).click();
    harness.run_steps(2);
    assert!(harness.state().privacy().unwrap().opted_in());
    harness.state_mut().page = Page::Workspace;
    harness.step();
    export_all(&mut harness, out.path());
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.complete_requests().len() < 2 {
        assert!(Instant::now() < deadline, "uploads did not arrive");
        harness.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    let model = harness.state().model.clone();
    for (request, photo) in server.complete_requests().iter().zip(&photos) {
        let parts = multipart(request.header("content-type").unwrap(), &request.body);
        let names: Vec<&str> = parts.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["model", "original", "mask"]);
        assert_eq!(parts[0].bytes, model.as_bytes());
        let original = image::load_from_memory(&parts[1].bytes).unwrap();
        let mask = image::load_from_memory(&parts[2].bytes).unwrap();
        let source = image::open(photo).unwrap();
        assert_eq!(
            original.to_rgb8(),
            source.to_rgb8(),
            "the pixels as decoded"
        );
        assert_eq!(
            (mask.width(), mask.height()),
            (source.width(), source.height())
        );
    }
    // The Account pane lists what was sent.
    harness.get_by_label("Account").click();
    harness.run_steps(3);
    harness.get_by_label_contains("coffee.jpg ·");
    drop(harness);

    // Restart: the recent work comes back with its results, no inference.
    let mut harness = fast_harness_for(&dirs);
    step_until(&mut harness, "restored results", |app| {
        app.workspace.items.len() == 2
            && app.workspace.items.iter().all(|i| i.status == Status::Done)
    });
    let names: Vec<String> = harness
        .state()
        .workspace
        .items
        .iter()
        .map(|i| i.name.clone())
        .collect();
    assert_eq!(names, ["coffee.jpg", "chelsea.jpg"]);
    assert!(
        harness.state().last_inference.is_none(),
        "restored from the store, not recomputed"
    );
}

/// Black-box: what the app kept is gone for `backgrounderase privacy status`
/// run 25 hours later (libfaketime), unless the user opted in.
#[test]
fn after_25_hours_nothing_is_left_unless_opted_in() {
    use backgrounderase::privacy::settings::{self, Settings};
    for opted_in in [false, true] {
        let (home, dirs) = fresh_profile();
        let consent = Settings {
            opted_in,
            ..Default::default()
        };
        settings::save(&dirs.config, &consent).unwrap();
        let mut harness = fast_harness_for(&dirs);
        harness
            .state_mut()
            .open_paths(vec![fixture("photos/coffee.jpg")]);
        step_until(&mut harness, "the result", |app| {
            app.workspace.items[0].status == Status::Done
        });
        wait_until_kept(&mut harness, 1);
        drop(harness);
        let items = dirs.data.join("store/items");
        let count = || std::fs::read_dir(&items).unwrap().count();
        assert!(count() >= 2, "the app kept the mask and its workspace");

        let output = std::process::Command::new("faketime")
            .arg("+25 hours")
            .arg(env!("CARGO_BIN_EXE_backgrounderase"))
            .args(["privacy", "status"])
            .env("BACKGROUNDERASE_HOME", home.path())
            .output()
            .expect("faketime is required (Debian package faketime)");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{stdout}");
        if opted_in {
            assert!(stdout.contains("opted in"), "{stdout}");
            assert!(!stdout.contains("stored: 0 items"), "{stdout}");
            assert!(stdout.contains("oldest 1 d 1 h"), "{stdout}");
            assert!(count() >= 2, "kept with consent");
        } else {
            assert!(stdout.contains("opted out"), "{stdout}");
            assert!(stdout.contains("stored: 0 items"), "{stdout}");
            assert_eq!(count(), 0, "the store folder is empty");
        }
    }
}

#[test]
fn batch_panel_runs_pauses_resumes_cancels_and_reports_failures() {
    use backgrounderase::app::Page;
    let (_home, mut harness) = app_harness();
    let root = tempfile::tempdir().unwrap();
    let input = root.path().join("in");
    let output = root.path().join("out");
    std::fs::create_dir_all(&input).unwrap();
    let jpeg = std::fs::read(fixture("photos/coffee.jpg")).unwrap();
    std::fs::write(input.join("a-broken.jpg"), &jpeg[..jpeg.len() / 2]).unwrap();
    for (i, photo) in [
        "coffee.jpg",
        "chelsea.jpg",
        "astronaut.jpg",
        "coffee.jpg",
        "chelsea.jpg",
    ]
    .iter()
    .enumerate()
    {
        std::fs::copy(
            fixture(&format!("photos/{photo}")),
            input.join(format!("p{i}.jpg")),
        )
        .unwrap();
    }
    std::fs::write(input.join(".DS_Store"), b"x").unwrap();

    harness.get_by_label("Batch").click();
    harness.run_steps(2);
    assert_eq!(harness.state().page, Page::Batch);
    // Native folder dialogs cannot be driven here: the paths are injected.
    harness.state_mut().batch.input = Some(input.clone());
    harness.state_mut().batch.output = Some(output.clone());
    harness.step();
    harness.get_by_label("Start").click();
    harness.step();
    step_until(&mut harness, "a failure and a finished image", |app| {
        let run = app.batch.run.as_ref().unwrap();
        run.failures.len() == 1 && run.done >= 1
    });
    harness.step();
    harness.get_by_label_contains("a-broken.jpg —");
    harness.get_by_label_contains("Skipped: 1 hidden or system files");
    harness.get_by_label_contains("images/min");

    // Pause: at most the image in hand finishes.
    harness.get_by_label("Pause").click();
    harness.step();
    let at_pause = harness.state().batch.run.as_ref().unwrap().done;
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        harness.step();
        std::thread::sleep(Duration::from_millis(50));
    }
    let paused_done = harness.state().batch.run.as_ref().unwrap().done;
    assert!(
        paused_done <= at_pause + 1,
        "{at_pause} → {paused_done} while paused"
    );
    harness.get_by_label_contains("paused");

    // Resume: work goes on.
    harness.get_by_label("Resume").click();
    harness.step();
    step_until(&mut harness, "progress after resuming", |app| {
        app.batch.run.as_ref().unwrap().done > paused_done
    });

    // Cancel: it stops, and says what became of everything.
    harness.get_by_label("Cancel").click();
    harness.step();
    step_until(&mut harness, "the batch to stop", |app| {
        app.batch.run.as_ref().unwrap().is_finished()
    });
    let run = harness.state().batch.run.as_ref().unwrap();
    let summary = run.summary.clone().unwrap();
    assert_eq!(summary.failures.len(), 1);
    assert_eq!(summary.done + summary.failures.len() + summary.cancelled, 6);
    assert!(summary.cancelled > 0, "{summary:?}");
    let written = std::fs::read_dir(&output)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".png"))
        .count();
    assert_eq!(written, summary.done);
    harness.step();
    harness.get_by_label_contains("Finished:");
}

/// The Batch page ends with "Needs review (N)": the real model's unsure
/// masks, least sure first; one click opens that photo in the editor.
#[test]
fn the_batch_review_list_opens_an_unsure_image_in_the_editor() {
    use backgrounderase::app::Page;
    let (_home, mut harness) = app_harness();
    let root = tempfile::tempdir().unwrap();
    let input = root.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    for photo in ["coffee.jpg", "gravel.png"] {
        std::fs::copy(fixture(&format!("photos/{photo}")), input.join(photo)).unwrap();
    }
    harness.get_by_label("Batch").click();
    harness.run_steps(2);
    harness.state_mut().batch.input = Some(input.clone());
    harness.state_mut().batch.output = Some(root.path().join("out"));
    harness.step();
    harness.get_by_label("Start").click();
    harness.step();
    step_until(&mut harness, "the batch to finish", |app| {
        app.batch.run.as_ref().unwrap().is_finished()
    });
    harness.step();
    harness.get_by_label("Needs review (1)");
    // The per-file list names every file; the review list only gravel.
    assert_eq!(harness.get_all_by_label("coffee.jpg").count(), 1);
    assert_eq!(harness.get_all_by_label("gravel.png").count(), 2);
    harness.get_by_label_contains("no clear subject");
    harness.get_by_label("Save review list…");

    // The review list (above the per-file list) links to the photo.
    harness
        .get_all_by_label("gravel.png")
        .next()
        .unwrap()
        .click();
    harness.step();
    assert_eq!(harness.state().page, Page::Workspace);
    let app = harness.state();
    let selected = &app.workspace.items[app.workspace.selected.unwrap()];
    assert_eq!(
        selected.path.as_deref(),
        Some(input.join("gravel.png").as_path())
    );
    step_until(&mut harness, "the reopened photo's mask", |app| {
        app.workspace.items[0].status == Status::Done
    });
    // The workspace list marks it too.
    harness.get_by_label("needs review");
}

/// An Adobe RGB photo (Debian colord-data's profile embedded) exported from
/// the window keeps its profile, so its colours mean the same in the
/// designer's tools.
#[test]
fn the_window_export_keeps_the_photos_colour_profile() {
    use image::{ImageDecoder, ImageEncoder};
    let icc = std::fs::read("/usr/share/color/icc/colord/AdobeRGB1998.icc")
        .expect("Debian's colord-data (.ci/run installs it)");
    let dir = tempfile::tempdir().unwrap();
    let photo = dir.path().join("adobe.jpg");
    let pixels = image::open(fixture("photos/coffee.jpg")).unwrap().to_rgb8();
    let mut encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(
        std::fs::File::create(&photo).unwrap(),
        95,
    );
    encoder.set_icc_profile(icc.clone()).unwrap();
    encoder
        .write_image(&pixels, 600, 400, image::ExtendedColorType::Rgb8)
        .unwrap();

    let (_home, mut harness) = app_harness();
    harness.state_mut().open_paths(vec![photo]);
    step_until(&mut harness, "the result", |app| {
        app.workspace.items[0].status == Status::Done
    });
    for (format, name) in [
        (OutputFormat::Png, "out.png"),
        (OutputFormat::Jpeg, "out.jpg"),
    ] {
        harness.state_mut().format = format;
        let path = dir.path().join(name);
        let before = exported_notices(harness.state());
        harness.state_mut().export_selected_to(path.clone());
        step_until(&mut harness, "the export", |app| {
            exported_notices(app) > before
        });
        let mut decoder = image::ImageReader::open(&path)
            .unwrap()
            .with_guessed_format()
            .unwrap()
            .into_decoder()
            .unwrap();
        assert_eq!(decoder.icc_profile().unwrap(), Some(icc.clone()), "{name}");
    }
}

/// Export presets in the inspector: choosing the built-in marketplace spec
/// sets the format, background and layout; the current settings saved
/// under a name land in `presets.ron` (settings only) and are offered next.
#[test]
fn presets_are_chosen_and_saved_in_the_inspector() {
    use backgrounderase::engine::layout::Canvas;
    let (home, dirs) = fresh_profile();
    let mut harness = harness_for(&dirs);
    harness.get_by_label("Preset").click();
    harness.run_steps(2);
    harness
        .get_by_label("Marketplace: white, square 2000 px, subject fills 85 %")
        .click();
    harness.run_steps(2);
    let app = harness.state();
    assert_eq!(app.format, OutputFormat::Jpeg);
    assert_eq!(app.view.background, Background::Colour([255, 255, 255]));
    assert_eq!(app.finish.layout.canvas, Canvas::Size(2000, 2000));
    assert_eq!(app.finish.layout.subject_fill, Some(85.0));

    harness.get_by_label("Save…").click();
    harness.run_steps(2);
    let name_field = harness.get_by_role(egui::accesskit::Role::TextInput);
    name_field.focus();
    name_field.type_text("Shop square");
    harness.run_steps(2);
    harness.get_by_label("Save as preset").click();
    harness.step();
    step_until(&mut harness, "the saved preset", |app| {
        app.presets.iter().any(|p| p.name == "Shop square")
    });
    let text = std::fs::read_to_string(dirs.config.join("presets.ron")).unwrap();
    assert!(
        text.contains("Shop square") && text.contains("Size(2000, 2000)"),
        "{text}"
    );
    assert!(
        !text.contains(home.path().to_str().unwrap()),
        "no paths: {text}"
    );
}

/// The editor: paint a stroke with the restore brush, undo it (Ctrl/Cmd+Z:
/// the mask is back bit for bit), redo it (Shift+Ctrl/Cmd+Z); the export
/// carries the stroke; then the 1:1 canvas preset changes the exported size.
#[test]
fn restore_brush_undo_redo_and_canvas_preset() {
    use backgrounderase::engine::layout::Canvas;
    use backgrounderase::privacy::recent;
    let (home, dirs) = fresh_profile();
    let mut harness = harness_for(&dirs);
    harness
        .input_mut()
        .dropped_files
        .push(Arc::new(DroppedPath(fixture("photos/coffee.jpg"))));
    harness.step();
    step_until(&mut harness, "the result", |app| {
        app.workspace.items[0].status == Status::Done
    });
    let model_mask = harness.state().workspace.items[0]
        .display_mask()
        .unwrap()
        .as_ref()
        .clone();

    harness.get_by_label("Restore").click();
    harness.step();
    // A stroke over the upper left of the photo (background there).
    let canvas = harness.get_by_label("Compare before and after").rect();
    let from = canvas.center() - egui::vec2(canvas.width() * 0.25, canvas.height() * 0.3);
    let to = from + egui::vec2(canvas.width() * 0.15, 0.0);
    harness.drag_at(from);
    harness.step();
    harness.hover_at(from + egui::vec2(10.0, 0.0));
    harness.step();
    harness.hover_at(to);
    harness.step();
    harness.drop_at(to);
    harness.step();
    step_until(&mut harness, "the stroke", |app| {
        let item = &app.workspace.items[0];
        item.strokes.len() == 1 && item.edited_preview_mask.is_some()
    });
    let painted = harness.state().workspace.items[0]
        .display_mask()
        .unwrap()
        .as_ref()
        .clone();
    let changed = painted
        .pixels()
        .zip(model_mask.pixels())
        .filter(|(a, b)| a != b)
        .count();
    assert!(changed > 100, "the stroke changed {changed} pixels");
    assert!(
        painted
            .pixels()
            .zip(model_mask.pixels())
            .all(|(a, b)| a[0] >= b[0]),
        "restore only raises the mask"
    );
    let out = home.path().join("out");
    harness
        .state_mut()
        .export_selected_to(out.join("painted.png"));
    step_until(&mut harness, "the export", |app| exported_notices(app) >= 1);

    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    step_until(&mut harness, "undo", |app| {
        let item = &app.workspace.items[0];
        item.strokes.is_empty() && item.redo.len() == 1
    });
    let undone = harness.state().workspace.items[0]
        .display_mask()
        .unwrap()
        .as_ref()
        .clone();
    assert!(
        undone == model_mask,
        "undo restores the model's mask bit for bit"
    );

    harness.key_press_modifiers(
        egui::Modifiers::COMMAND | egui::Modifiers::SHIFT,
        egui::Key::Z,
    );
    step_until(&mut harness, "redo", |app| {
        let item = &app.workspace.items[0];
        item.strokes.len() == 1 && item.edited_preview_mask.is_some()
    });
    let redone = harness.state().workspace.items[0]
        .display_mask()
        .unwrap()
        .as_ref()
        .clone();
    assert!(redone == painted, "redo paints the same pixels again");

    // The stroke is kept with the image in the retention store and comes
    // back with it when the app is reopened.
    step_until(&mut harness, "the stroke kept in the store", |app| {
        let store = &app.privacy().unwrap().store;
        recent::load_workspace(store)
            .first()
            .is_some_and(|kept| kept.result.strokes.len() == 1)
    });
    drop(harness);
    let mut harness = harness_for(&dirs);
    harness.step();
    step_until(&mut harness, "the image and its stroke back", |app| {
        app.workspace.items.first().is_some_and(|item| {
            item.status == Status::Done
                && item.strokes.len() == 1
                && item.edited_preview_mask.is_some()
        })
    });
    let reopened = harness.state().workspace.items[0]
        .display_mask()
        .unwrap()
        .as_ref()
        .clone();
    assert!(
        reopened == painted,
        "the reopened image shows the same edit"
    );

    // The export has the stroke: more opaque pixels than the model's cut-out.
    let opaque = |p: &Path| {
        image::open(p)
            .unwrap()
            .to_rgba8()
            .pixels()
            .filter(|px| px[3] > 128)
            .count()
    };
    let (w, h) = image::image_dimensions(out.join("painted.png")).unwrap();
    let model_opaque = model_mask.pixels().filter(|p| p[0] > 128).count() as f64
        / model_mask.len() as f64
        * f64::from(w * h);
    assert!(opaque(&out.join("painted.png")) as f64 > model_opaque * 1.01);

    // Canvas preset 1:1 from the inspector: the export becomes square.
    assert_ne!(w, h, "coffee.jpg is not square");
    harness.get_by_label("Canvas").click();
    harness.step();
    harness.step();
    harness.get_by_label("1:1 square").click();
    harness.step();
    assert_eq!(harness.state().finish.layout.canvas, Canvas::Ratio(1, 1));
    // The canvas previews the square export live (brush off: the finished view).
    harness.get_by_label("Off").click();
    step_until(&mut harness, "the square preview", |app| {
        app.workspace.items[0]
            .finished_preview
            .as_ref()
            .is_some_and(|(c, a)| c.width() == c.height() && a.dimensions() == c.dimensions())
    });
    harness.step();
    harness.step();
    harness
        .state_mut()
        .export_selected_to(out.join("square.png"));
    step_until(&mut harness, "the export", |app| exported_notices(app) >= 1);
    let (sw, sh) = image::image_dimensions(out.join("square.png")).unwrap();
    assert_eq!(sw, sh, "{sw}x{sh}");
    assert_eq!(sw, w.max(h), "the smallest square around the whole photo");
}

/// A profile with the runtime but no model at all, whose settings point
/// model downloads at `registry` (a loopback mirror).
fn profile_without_models(registry: &str) -> (tempfile::TempDir, AppDirs) {
    let home = tempfile::tempdir().unwrap();
    let dirs = AppDirs::under(home.path());
    std::fs::create_dir_all(&dirs.data).unwrap();
    std::os::unix::fs::symlink(
        std::fs::canonicalize(AppDirs::discover().unwrap().runtime_dir()).unwrap(),
        dirs.runtime_dir(),
    )
    .unwrap();
    std::fs::create_dir_all(&dirs.config).unwrap();
    std::fs::write(
        dirs.config.join("settings.ron"),
        format!("(npm_registry: Some(\"{registry}\"))"),
    )
    .unwrap();
    (home, dirs)
}

fn registry_with_the_real_package() -> common::file_server::FileServer {
    let tarball = AppDirs::discover()
        .unwrap()
        .downloads_dir()
        .join("imgly-background-removal-data-1.4.5.tgz");
    let server = common::file_server::FileServer::start();
    server.put(
        "/@imgly/background-removal-data/-/background-removal-data-1.4.5.tgz",
        std::fs::read(&tarball).unwrap_or_else(|e| panic!("{e}: {}", tarball.display())),
        "imgly-1.4.5",
    );
    server
}

/// A photo opened before any model is installed waits beside the one-click
/// download (no error, no command to type), is drawn whole on the canvas,
/// and is processed as soon as the model lands.
#[test]
fn a_photo_opened_without_a_model_waits_for_it_then_is_processed() {
    use backgrounderase::app::FIRST_RUN_BUTTON;
    let server = registry_with_the_real_package();
    let (_home, dirs) = profile_without_models(&server.base);
    let mut harness = harness_for(&dirs);
    harness.run_steps(3);
    harness
        .state_mut()
        .open_paths(vec![common::fixture("photos/chelsea.jpg")]);
    step_until(&mut harness, "the photo to wait", |app| {
        app.workspace.items[0].status == Status::WaitingForModel
    });
    harness.run_steps(3);
    assert!(
        harness.state().notices.iter().all(|n| !n.is_error),
        "{:?}",
        harness.state().notices
    );
    assert!(
        harness
            .query_by_label_contains("backgrounderase setup")
            .is_none()
    );
    assert!(
        harness
            .query_all_by_label_contains("waiting for the model")
            .count()
            >= 1
    );
    harness.get_by_label_contains("your images are processed as soon as it is");
    // The photo lies whole inside the canvas, between the two side panels.
    let canvas = harness.get_by_label("Compare before and after").rect();
    let list = harness.get_by_label("Images").rect();
    assert!(
        canvas.left() >= list.right(),
        "{canvas:?} overlaps the list {list:?}"
    );
    assert!(
        canvas.right() <= 1280.0 && canvas.width() > 300.0,
        "{canvas:?}"
    );
    let source = harness.get_by_label_contains("from 127.0.0.1").rect();
    harness.mask(source);
    harness.snapshot("waiting_for_the_model");

    harness.get_by_label(FIRST_RUN_BUTTON).click();
    step_until(&mut harness, "the result", |app| {
        app.workspace.items[0].status == Status::Done
    });
    assert!(harness.state().workspace.items[0].mask.is_some());
}

#[test]
fn first_run_gets_the_default_model_in_one_click_and_removes_a_background() {
    use backgrounderase::app::FIRST_RUN_BUTTON;
    let server = registry_with_the_real_package();
    // Slow enough that the progress bar is seen.
    server.throttle(Duration::from_millis(1));
    let (_home, dirs) = profile_without_models(&server.base);
    let mut harness = harness_for(&dirs);
    // The worker finds no model on its own thread: wait for its answer.
    step_until(&mut harness, "the worker to find no model", |app| {
        matches!(app.engine, EngineStatus::Failed(_))
    });
    harness.get_by_label_contains("is not installed yet");
    harness.get_by_label_contains("No model installed yet");
    assert!(
        harness.state().notices.iter().all(|n| !n.is_error),
        "a missing model is not an error: {:?}",
        harness.state().notices
    );
    // Nothing was fetched on its own.
    std::thread::sleep(Duration::from_millis(300));
    harness.step();
    assert!(server.log().is_empty(), "{:?}", server.log());

    // The mirror's port changes from run to run: keep it out of the image.
    let source = harness.get_by_label_contains("from 127.0.0.1").rect();
    harness.mask(source);
    harness.snapshot("first_run");
    harness.get_by_label(FIRST_RUN_BUTTON).click();
    harness.step();
    step_until(&mut harness, "the progress bar", |app| {
        matches!(
            app.model_manager
                .row("isnet-imgly-medium")
                .unwrap()
                .download,
            backgrounderase::models::manager::RowDownload::Running {
                progress: Some(_),
                ..
            }
        )
    });
    step_until(&mut harness, "the engine", |app| {
        matches!(app.engine, EngineStatus::Ready { .. })
    });
    assert_eq!(server.log().len(), 1, "one request: {:?}", server.log());
    let model = dirs.models_dir().join("isnet-imgly-medium.onnx");
    assert_eq!(
        backgrounderase::checksum::sha256_file(&model).unwrap(),
        "b6e8497ba978a6f5fbb647e419d2696cd80df5a23cb6a8ea532021911bd76acb"
    );
    harness.get_by_label_contains("Drop images here");
    harness.get_by_label_contains("model installed");

    harness
        .state_mut()
        .open_paths(vec![fixture("photos/coffee.jpg")]);
    step_until(&mut harness, "the result", |app| {
        app.workspace.items[0].status == Status::Done
    });
}

#[test]
fn models_page_lists_licences_and_adds_a_confirmed_custom_model() {
    use backgrounderase::app::Page;
    // Without the preview model, which the Models page then offers.
    let (_home, dirs) = fresh_profile();
    std::fs::remove_file(dirs.models_dir().join("u2netp.onnx")).unwrap();
    let mut harness = harness_for(&dirs);
    harness.get_by_label("Models").click();
    harness.run_steps(2);
    assert_eq!(harness.state().page, Page::Models);
    harness.get_by_label_contains("nothing is fetched on its own");
    assert!(harness.get_all_by_label("Licence: AGPL-3.0").count() >= 2);
    harness.get_by_label("Licence: MIT");
    // Bundled-or-set-up models say where they are; others offer a download.
    assert!(harness.get_all_by_label_contains("Installed").count() >= 2);
    harness.get_by_label("Download (4.2 MB)");

    // A file outside the catalog waits for the user's confirmation.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("my-matting.onnx");
    std::fs::write(&file, common::tiny_onnx_model()).unwrap();
    harness.state_mut().import_model(file);
    step_until(&mut harness, "the import check", |app| {
        assert!(app.notices.is_empty(), "{:?}", app.notices);
        app.model_manager.pending_custom.is_some()
    });
    harness.get_by_label_contains("matches no model in the catalog");
    harness.get_by_label_contains("64×64");
    assert!(
        !harness
            .state()
            .model_manager
            .catalog()
            .models
            .iter()
            .any(|m| m.id.starts_with("custom-")),
        "nothing is added before the user confirms"
    );
    harness.get_by_label("Add custom model").click();
    step_until(&mut harness, "the custom model", |app| {
        app.model_manager
            .rows()
            .iter()
            .any(|r| r.is_custom && r.installed.is_some())
    });
    harness.get_by_label("my-matting");
    harness.get_by_label("Licence unknown: check it before commercial use");
    // The model in use cannot be removed from under the app; others can.
    assert_eq!(harness.get_all_by_label("Remove").count(), 2);
    step_until(&mut harness, "the engine", |app| {
        matches!(app.engine, EngineStatus::Ready { .. })
    });
    harness.snapshot("models_page");
}

/// Under the toggle: where samples would go and how local data is cleaned
/// up when the app is closed; without a scheduler, why nothing is restored.
#[test]
fn the_account_page_shows_the_upload_host_and_the_clean_up_under_the_toggle() {
    use backgrounderase::app::{CONSENT_LABEL, Page};
    let (_home, dirs) = fresh_profile();
    let mut harness = harness_for(&dirs);
    harness.state_mut().page = Page::Account;
    harness.run_steps(2);
    let toggle = harness.get_by_label(CONSENT_LABEL).rect().top();
    let host = harness.get_by_label("Samples go to: training.backgrounderase.app");
    assert!(host.rect().top() > toggle);
    let cleanup = harness.get_by_label("Automatic clean-up: hourly (systemd)");
    assert!(cleanup.rect().top() > toggle);
    drop(harness);

    let mut harness = harness_with(
        &dirs,
        Cleanup::SessionOnly {
            why: "no systemd user session to run the hourly clean-up".into(),
        },
    );
    harness.state_mut().page = Page::Account;
    harness.run_steps(2);
    harness.get_by_label(
        "Automatic clean-up: none (no systemd user session to run the hourly clean-up).",
    );
    harness.get_by_label_contains("recent work is not restored");
}

/// Without a confirmed scheduler (and no opt-in) nothing of a session is
/// kept for the next: not written during it, and what an earlier session
/// left is deleted at start.
#[test]
fn without_a_scheduler_recent_work_is_neither_kept_nor_restored() {
    use backgrounderase::privacy::store::ItemKind;
    let (_home, dirs) = fresh_profile();
    let session_only = || Cleanup::SessionOnly {
        why: "none in this test".into(),
    };
    // A session with the scheduler leaves its work (as after a crash).
    let mut harness = fast_harness_for(&dirs);
    harness
        .state_mut()
        .open_paths(vec![fixture("photos/coffee.jpg")]);
    wait_until_kept(&mut harness, 1);
    std::mem::forget(harness); // no exit handler: like a crash

    let mut harness = fast_harness_with(&dirs, session_only());
    harness.step();
    let store = harness.state().privacy().unwrap().store.clone();
    assert_eq!(store.stats().items, 0, "deleted before anything else");
    assert!(
        harness.state().workspace.items.is_empty(),
        "nothing restored"
    );
    harness.get_by_label_contains("Deleted 2 items an earlier session left");
    harness
        .state_mut()
        .open_paths(vec![fixture("photos/chelsea.jpg")]);
    step_until(&mut harness, "the result", |app| {
        app.workspace.items[0].status == Status::Done
    });
    std::thread::sleep(Duration::from_secs(1));
    harness.step();
    assert!(
        store.list_kind(ItemKind::Mask).is_empty(),
        "kept without a scheduler"
    );
}

/// "Delete all local data now" also empties the app's memory of what it
/// stored: the open image, re-processed with another model, is not written
/// back.
#[test]
fn a_purge_from_the_account_page_is_not_undone_by_the_open_images() {
    use backgrounderase::app::Page;
    let (_home, dirs) = fresh_profile();
    let mut harness = fast_harness_for(&dirs);
    harness
        .state_mut()
        .open_paths(vec![fixture("photos/coffee.jpg")]);
    wait_until_kept(&mut harness, 1);
    harness.state_mut().page = Page::Account;
    harness.run_steps(2);
    harness.get_by_label("Delete all local data now").click();
    harness.run_steps(2);
    harness.get_by_label("Delete").click();
    // The store writer deletes, after whatever it is writing; its report
    // is the notice.
    step_until(&mut harness, "the purge", |app| {
        app.notices.iter().any(|n| n.text.starts_with("deleted "))
    });
    let store = harness.state().privacy().unwrap().store.clone();
    assert_eq!(store.stats().items, 0);
    harness.state_mut().page = Page::Workspace;
    harness.state_mut().switch_model("isnet-imgly-small");
    step_until(&mut harness, "the result of the other model", |app| {
        matches!(&app.engine, EngineStatus::Ready { model, .. } if model.contains("small"))
            && app.workspace.items[0].status == Status::Done
    });
    std::thread::sleep(Duration::from_secs(1));
    harness.step();
    assert_eq!(store.stats().items, 0, "the purged image was written back");
}

/// An opt-out the settings cannot take (here the config folder is gone and
/// a file stands in its place, which fails even for root): uploads are
/// refused at once, the queue is emptied, the pane says "Not saved — retry",
/// and the next start reads the user as opted out.
#[test]
fn an_opt_out_that_cannot_be_saved_still_wins_and_says_not_saved() {
    use backgrounderase::app::{CONSENT_LABEL, NOT_SAVED_RETRY, Page};
    use backgrounderase::privacy::settings::{self, Settings};
    use backgrounderase::privacy::store::ItemKind;
    let (_home, dirs) = fresh_profile();
    settings::save(
        &dirs.config,
        &Settings {
            opted_in: true,
            ..Default::default()
        },
    )
    .unwrap();
    let mut harness = harness_for(&dirs);
    let store = harness.state().privacy().unwrap().store.clone();
    store
        .put(ItemKind::UploadQueue, "queued.jpg", b"--x\r\n")
        .unwrap();
    harness.state_mut().page = Page::Account;
    harness.run_steps(2);
    assert!(harness.state().privacy().unwrap().opted_in());

    let config = dirs.config.clone();
    let aside = config.with_extension("aside");
    std::fs::rename(&config, &aside).unwrap();
    std::fs::write(&config, b"not a folder").unwrap();
    harness.get_by_label(CONSENT_LABEL).click();
    harness.run_steps(3);
    let privacy = harness.state().privacy().unwrap();
    assert!(!privacy.opted_in(), "opted out at once");
    assert!(!privacy.gate().opted_in(), "uploads refused");
    assert_eq!(privacy.queued_uploads(), 0, "queue emptied");
    harness.get_by_label(NOT_SAVED_RETRY);
    harness.get_by_label_contains("could not be saved in full");
    drop(harness);

    // The config folder is back, still saying "opted in": the next start
    // reads the withdrawal mark and the user is opted out.
    std::fs::remove_file(&config).unwrap();
    std::fs::rename(&aside, &config).unwrap();
    assert!(settings::opted_in_on_disk(&config));
    let harness = harness_for(&dirs);
    assert!(!harness.state().privacy().unwrap().opted_in());
    assert!(
        !settings::opted_in_on_disk(&config),
        "and the settings now say so too"
    );
}

/// What the user chose in the window comes back at the next start: export
/// format, edge settings, background, page, appearance, best quality and the
/// preview switch. Nothing of the images is in that file, and a picture
/// background (the user's own file) is not kept.
#[test]
fn the_window_settings_survive_a_restart_and_hold_nothing_of_the_images() {
    use backgrounderase::app::{BEST_QUALITY_LABEL, PREVIEW_LABEL, Page};
    use backgrounderase::prefs::PREFERENCES_FILE;
    let (_home, dirs) = fresh_profile();
    let file = dirs.config.join(PREFERENCES_FILE);
    let read = |file: &Path| std::fs::read_to_string(file).unwrap_or_default();
    {
        let mut harness = harness_for(&dirs);
        harness
            .state_mut()
            .open_paths(vec![fixture("photos/coffee.jpg")]);
        step_until(&mut harness, "the result", |app| {
            app.workspace.items[0].status == Status::Done
        });
        harness.get_by_label(BEST_QUALITY_LABEL).click();
        harness.get_by_label(PREVIEW_LABEL).click();
        harness.step();
        {
            let app = harness.state_mut();
            app.format = OutputFormat::Webp;
            app.finish.edges.feather = 3.0;
            app.view.background = Background::Colour([200, 10, 10]);
            app.view.brush.radius = 48.0;
            app.page = Page::Batch;
            // The Batch page's options, and folders that must not be kept.
            app.batch.settings.pattern = "{name}-cut.{ext}".into();
            app.batch.settings.jpeg_quality = 80;
            app.batch.keep_watching = true;
            app.batch.input = Some(dirs.data.join("client-folder"));
        }
        harness.ctx.set_theme(egui::ThemePreference::Dark);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !read(&file).contains("Webp") || !read(&file).contains("Dark") {
            assert!(Instant::now() < deadline, "not saved: {:?}", read(&file));
            harness.step();
            std::thread::sleep(Duration::from_millis(20));
        }
        let text = read(&file);
        assert!(!text.contains("coffee"), "{text}");
        assert!(!text.contains("client-folder"), "{text}");
        assert!(!text.contains(&*dirs.data.to_string_lossy()), "{text}");
    }
    let mut harness = harness_for(&dirs);
    harness.run_steps(2);
    {
        let app = harness.state();
        assert_eq!(app.format, OutputFormat::Webp);
        assert_eq!(app.finish.edges.feather, 3.0);
        assert!(
            app.finish.edges.despill,
            "untouched settings keep their default"
        );
        assert_eq!(app.view.background, Background::Colour([200, 10, 10]));
        assert_eq!(app.view.brush.radius, 48.0);
        assert_eq!(app.view.brush.mode, None, "the brush starts off");
        assert_eq!(app.page, Page::Batch);
        assert_eq!(app.batch.settings.pattern, "{name}-cut.{ext}");
        assert_eq!(app.batch.settings.jpeg_quality, 80);
        assert!(app.batch.keep_watching);
        assert_eq!(app.batch.input, None, "folders are not kept");
    }
    assert_eq!(
        harness.ctx.options(|o| o.theme_preference),
        egui::ThemePreference::Dark
    );
    harness.state_mut().page = Page::Workspace;
    harness
        .state_mut()
        .open_paths(vec![fixture("photos/coffee.jpg")]);
    step_until(&mut harness, "the result", |app| {
        app.workspace.items[0].status == Status::Done
    });
    let toggled = |harness: &Harness<'_, DesktopApp>, label| {
        harness.get_by_label(label).accesskit_node().toggled()
    };
    assert_eq!(
        toggled(&harness, BEST_QUALITY_LABEL),
        Some(egui::accesskit::Toggled::True)
    );
    assert_eq!(
        toggled(&harness, PREVIEW_LABEL),
        Some(egui::accesskit::Toggled::False)
    );
    // A picture of the user's is shown, and kept as "transparent".
    harness.state_mut().view.background = Background::Picture {
        key: 1,
        image: Arc::new(image::RgbaImage::new(4, 4)),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !read(&file).contains("Transparent") {
        assert!(Instant::now() < deadline, "not saved: {:?}", read(&file));
        harness.step();
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// "Keep watching" on the Batch page: what is in the folder is done, then
/// a photo copied in later is done too, once fully written; the page says
/// it is watching until told to stop.
#[test]
fn keep_watching_processes_images_that_arrive_later() {
    use backgrounderase::app::Page;
    let (_home, mut harness) = app_harness();
    let root = tempfile::tempdir().unwrap();
    let input = root.path().join("hot");
    let output = root.path().join("out");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::copy(fixture("photos/coffee.jpg"), input.join("first.jpg")).unwrap();
    harness.get_by_label("Batch").click();
    harness.run_steps(2);
    assert_eq!(harness.state().page, Page::Batch);
    harness.state_mut().batch.input = Some(input.clone());
    harness.state_mut().batch.output = Some(output.clone());
    harness.step();
    harness.get_by_label("Keep watching").click();
    harness.step();
    harness.get_by_label("Start").click();
    harness.step();
    step_until(&mut harness, "the first image", |_| {
        output.join("first.png").is_file()
    });
    harness.get_by_label_contains("Watching ");

    // Written in two halves a second apart: read only once complete.
    let photo = std::fs::read(fixture("photos/chelsea.jpg")).unwrap();
    let (head, tail) = photo.split_at(photo.len() / 2);
    std::fs::write(input.join("later.jpg"), head).unwrap();
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        harness.step();
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(input.join("later.jpg"))
        .unwrap();
    std::io::Write::write_all(&mut file, tail).unwrap();
    drop(file);
    step_until(&mut harness, "the image that arrived later", |app| {
        output.join("later.png").is_file()
            && app.batch.run.as_ref().is_some_and(|r| r.is_finished())
    });
    let run = harness.state().batch.run.as_ref().unwrap();
    assert!(run.failures.is_empty(), "{:?}", run.failures);
    let cutout = image::open(output.join("later.png")).unwrap();
    assert_eq!(
        (cutout.width(), cutout.height()),
        image::image_dimensions(fixture("photos/chelsea.jpg")).unwrap()
    );
    harness.step();
    harness.get_by_label_contains("2 done so far");

    harness.get_by_label("Stop watching").click();
    harness.run_steps(2);
    assert!(harness.state().batch.watch.is_none());
    harness.get_by_label("Start");
}

/// The Batch page's Preset chooser sets the batch's format, background,
/// JPEG quality and pattern (and, as everywhere, the edges and layout the
/// batch takes from the inspector).
#[test]
fn the_batch_pages_preset_chooser_sets_the_batch_spec() {
    use backgrounderase::app::Page;
    use backgrounderase::engine::encode::Rgb8;
    use backgrounderase::engine::layout::Canvas;
    let (_home, mut harness) = app_harness();
    harness.get_by_label("Batch").click();
    harness.run_steps(2);
    assert_eq!(harness.state().page, Page::Batch);
    assert_eq!(harness.state().batch.settings.format, OutputFormat::Png);
    harness.get_by_label("Preset").click();
    harness.run_steps(2);
    harness.get_by_label("Social 4:5 1080×1350").click();
    harness.run_steps(2);
    let app = harness.state();
    let batch = &app.batch.settings;
    assert_eq!(batch.format, OutputFormat::Jpeg);
    assert_eq!(batch.background, Rgb8([255, 255, 255]));
    assert_eq!(batch.jpeg_quality, 90);
    assert_eq!(batch.pattern, "{name}.{ext}");
    assert_eq!(app.finish.layout.canvas, Canvas::Size(1080, 1350));
    assert_eq!(app.finish.layout.subject_fill, Some(80.0));
    assert!(app.finish.layout.shadow.is_some());
}

/// The canvas shows a photo colour-managed: an Adobe RGB photo of one flat
/// colour is on screen as its sRGB equivalent (Little CMS gives the same
/// within 2 levels), while the image kept for export has its own values.
#[test]
fn the_canvas_shows_a_wide_gamut_photo_in_its_srgb_colours() {
    use image::ImageEncoder;
    let icc = std::fs::read("/usr/share/color/icc/colord/AdobeRGB1998.icc")
        .expect("Debian's colord-data (.ci/run installs it)");
    let dir = tempfile::tempdir().unwrap();
    let photo = dir.path().join("green.png");
    let flat = image::RgbImage::from_pixel(600, 400, image::Rgb([100, 150, 100]));
    let mut encoder = image::codecs::png::PngEncoder::new(std::fs::File::create(&photo).unwrap());
    encoder.set_icc_profile(icc).unwrap();
    encoder
        .write_image(&flat, 600, 400, image::ExtendedColorType::Rgb8)
        .unwrap();

    let (_home, mut harness) = app_harness();
    harness.state_mut().open_paths(vec![photo]);
    step_until(&mut harness, "the decoded photo", |app| {
        app.workspace.items[0].preview.is_some()
    });
    let item = &harness.state().workspace.items[0];
    assert_eq!(
        item.original.as_ref().unwrap().get_pixel(10, 10).0,
        [100, 150, 100, 255]
    );
    let shown = item.preview.as_ref().unwrap().get_pixel(10, 10).0;
    let srgb = [66u8, 151, 97];
    let near = |p: &[u8], want: [u8; 3]| p.iter().zip(want).all(|(g, w)| g.abs_diff(w) <= 2);
    assert!(near(&shown[..3], srgb), "{shown:?}");

    // What reaches the screen.
    harness.run_steps(3);
    let screen = harness.render().unwrap();
    let count = |want: [u8; 3]| screen.pixels().filter(|p| near(&p.0[..3], want)).count();
    assert!(count(srgb) > 10_000, "{} pixels in sRGB green", count(srgb));
    assert!(
        count([100, 150, 100]) < 100,
        "{} unmanaged",
        count([100, 150, 100])
    );
}

/// The inspector's Speed choice: Fast starts a worker on the int8 variant
/// (the status bar says so), the open photo is redone with it, and the
/// choice comes back on restart. The Batch page shows the same setting.
#[test]
fn speed_fast_runs_the_int8_variant_and_is_kept() {
    use backgrounderase::app::{Page, SPEED_LABEL};
    use backgrounderase::engine::inference::Speed;
    use backgrounderase::prefs::PREFERENCES_FILE;
    let (_home, dirs) = fresh_profile();
    {
        let mut harness = harness_for(&dirs);
        harness
            .state_mut()
            .open_paths(vec![fixture("photos/coffee.jpg")]);
        step_until(&mut harness, "the result", |app| {
            app.workspace.items[0].status == Status::Done
        });
        if !backgrounderase::engine::quantize::cpu_has_int8_dot_product() {
            // Not offered where int8 would be slower.
            assert!(
                harness
                    .get_by_label(SPEED_LABEL)
                    .accesskit_node()
                    .is_disabled()
            );
            return;
        }
        harness.get_by_label(SPEED_LABEL).click();
        harness.run_steps(2);
        harness.get_by_label("Fast (int8)").click();
        harness.run_steps(2);
        assert_eq!(harness.state().speed, Speed::Fast);
        step_until(
            &mut harness,
            "the int8 worker and the photo redone",
            |app| {
                matches!(&app.engine, EngineStatus::Ready { provider, .. } if provider.contains("fast (int8)"))
                    && app.workspace.items[0].status == Status::Done
            },
        );
        harness.get_by_label_contains("fast (int8)");
        let mask = harness.state().workspace.items[0].mask.clone().unwrap();
        let solid = mask.pixels().filter(|p| p[0] >= 128).count();
        assert!(
            solid > mask.len() / 20,
            "a real cut-out: {solid} solid pixels"
        );
        // The Batch page offers the same setting.
        harness.state_mut().page = Page::Batch;
        harness.run_steps(2);
        harness.get_by_label(SPEED_LABEL);
        let file = dirs.config.join(PREFERENCES_FILE);
        step_until(&mut harness, "the preference saved", |_| {
            std::fs::read_to_string(&file).is_ok_and(|t| t.contains("speed: Fast"))
        });
    }
    let mut harness = harness_for(&dirs);
    harness.run_steps(2);
    assert_eq!(harness.state().speed, Speed::Fast);
}
