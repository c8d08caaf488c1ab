//! The real binary in a real window (Xvfb, lavapipe): started with an image
//! path, it shows the cut-out, or, with no model installed, the photo waiting
//! beside the download. Checked by screenshots of the X screen. The
//! app runs inside `unshare -n`: a network namespace with no network at all.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{fixture, fresh_profile};

/// Whether the screenshot shows the transparency checkerboard of a result:
/// many pixels of exactly the two checker greys (235 and 200).
fn shows_checkerboard(png: &[u8]) -> bool {
    let Ok(img) = image::load_from_memory(png) else {
        return false;
    };
    let rgb = img.to_rgb8();
    let count = rgb
        .pixels()
        .filter(|p| p[0] == p[1] && p[1] == p[2] && (p[0] == 235 || p[0] == 200))
        .count();
    count > 20_000
}

/// An X server on `display` and the real app inside it, started on `image`
/// with the profile under `home`, in a network namespace with no network.
struct Window {
    xvfb: Child,
    app: Child,
    display: &'static str,
}

impl Window {
    fn open(display: &'static str, home: &Path, runtime_dir: &Path, image: &Path) -> Self {
        let xvfb = Command::new("Xvfb")
            .args([display, "-screen", "0", "1280x800x24", "-nolisten", "tcp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb is required (Debian package xvfb)");
        std::thread::sleep(Duration::from_millis(800));
        // The X server is reached through its socket file, which works across
        // network namespaces.
        let app = Command::new("unshare")
            .arg("-n")
            .arg(env!("CARGO_BIN_EXE_backgrounderase"))
            .arg(image)
            .env("BACKGROUNDERASE_HOME", home)
            .env("DISPLAY", display)
            .env_remove("WAYLAND_DISPLAY")
            .env("XDG_RUNTIME_DIR", runtime_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Self { xvfb, app, display }
    }

    /// Screenshots every 2 s until `seen` holds for one, for at most `limit`.
    fn wait_for(&mut self, shot: &Path, limit: Duration, seen: impl Fn(&Path) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_secs(2));
            if let Ok(Some(status)) = self.app.try_wait() {
                panic!("the app exited early: {status}");
            }
            let taken = Command::new("import")
                .args(["-display", self.display, "-window", "root"])
                .arg(shot)
                .status()
                .expect("ImageMagick's import is required (Debian package imagemagick)");
            if taken.success() && seen(shot) {
                return true;
            }
        }
        false
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        let _ = self.app.kill();
        let _ = self.app.wait();
        let _ = self.xvfb.kill();
        let _ = self.xvfb.wait();
    }
}

/// The words on a screenshot, as Tesseract reads them.
fn read_text(shot: &Path) -> String {
    let out = Command::new("tesseract")
        .arg(shot)
        .arg("stdout")
        .stderr(Stdio::null())
        .output()
        .expect("Tesseract is required (Debian package tesseract-ocr)");
    String::from_utf8_lossy(&out.stdout).to_lowercase()
}

#[test]
fn started_with_an_image_the_window_shows_the_result() {
    let dir = tempfile::tempdir().unwrap();
    let (home, _dirs) = fresh_profile();
    let mut window = Window::open(
        ":87",
        home.path(),
        dir.path(),
        &fixture("photos/coffee.jpg"),
    );
    let shot = dir.path().join("shot.png");
    let seen = window.wait_for(&shot, Duration::from_secs(90), |shot| {
        shows_checkerboard(&std::fs::read(shot).unwrap_or_default())
    });
    assert!(
        seen,
        "no cut-out appeared in the window within 90 s (last screenshot: {})",
        shot.display()
    );
}

/// The first minute's dead end, gone: a photo opened before any model is
/// installed is drawn whole and waits, beside the one-click download; no
/// error and no command to type. Read off the real window by OCR.
#[test]
fn opened_before_any_model_the_photo_waits_beside_the_download() {
    let dir = tempfile::tempdir().unwrap();
    let (home, dirs) = fresh_profile();
    for entry in std::fs::read_dir(dirs.models_dir()).unwrap().flatten() {
        std::fs::remove_file(entry.path()).unwrap();
    }
    let mut window = Window::open(
        ":88",
        home.path(),
        dir.path(),
        &fixture("photos/coffee.jpg"),
    );
    let shot = dir.path().join("shot.png");
    let seen = window.wait_for(&shot, Duration::from_secs(60), |shot| {
        let text = read_text(shot);
        text.contains("waiting for the model") && text.contains("download the default model")
    });
    let text = read_text(&shot);
    assert!(
        seen,
        "the window did not show the photo waiting beside the download within 60 s; \
         it read: {text:?} (last screenshot: {})",
        shot.display()
    );
    assert!(!text.contains("failed"), "{text:?}");
    assert!(!text.contains("backgrounderase setup"), "{text:?}");
    // The photo itself is on the canvas: coffee.jpg's dark brown, in quantity.
    let rgb = image::open(&shot).unwrap().to_rgb8();
    let brown = rgb
        .pixels()
        .filter(|p| u16::from(p[0]) > u16::from(p[2]) + 20 && p[0] < 140 && p[1] < 110)
        .count();
    // BACKGROUNDERASE_KEEP_SCREENSHOT=FILE keeps it (the README's picture).
    if let Some(keep) = std::env::var_os("BACKGROUNDERASE_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
    assert!(
        brown > 10_000,
        "the photo is not drawn ({brown} brown pixels)"
    );
}
