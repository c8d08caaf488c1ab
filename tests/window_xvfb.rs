//! The real binary in a real window (Xvfb, lavapipe): started with an image
//! path, it shows the cut-out. Checked by screenshots of the X screen. The
//! app runs inside `unshare -n`: a network namespace with no network at all.

mod common;

use std::process::{Command, Stdio};
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

#[test]
fn started_with_an_image_the_window_shows_the_result() {
    let dir = tempfile::tempdir().unwrap();
    let (home, _dirs) = fresh_profile();
    let display = ":87";
    let mut xvfb = Command::new("Xvfb")
        .args([display, "-screen", "0", "1280x800x24", "-nolisten", "tcp"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("Xvfb is required (Debian package xvfb)");
    std::thread::sleep(Duration::from_millis(800));
    // The X server is reached through its socket file, which works across
    // network namespaces.
    let mut app = Command::new("unshare")
        .arg("-n")
        .arg(env!("CARGO_BIN_EXE_backgrounderase"))
        .arg(fixture("photos/coffee.jpg"))
        .env("BACKGROUNDERASE_HOME", home.path())
        .env("DISPLAY", display)
        .env_remove("WAYLAND_DISPLAY")
        .env("XDG_RUNTIME_DIR", dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let shot = dir.path().join("shot.png");
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut seen = false;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(2));
        if let Ok(Some(status)) = app.try_wait() {
            panic!("the app exited early: {status}");
        }
        let taken = Command::new("import")
            .args(["-display", display, "-window", "root"])
            .arg(&shot)
            .status()
            .expect("ImageMagick's import is required (Debian package imagemagick)");
        if taken.success() && shows_checkerboard(&std::fs::read(&shot).unwrap_or_default()) {
            seen = true;
            break;
        }
    }
    let _ = app.kill();
    let _ = app.wait();
    let _ = xvfb.kill();
    let _ = xvfb.wait();
    assert!(
        seen,
        "no cut-out appeared in the window within 90 s (last screenshot: {})",
        shot.display()
    );
}
