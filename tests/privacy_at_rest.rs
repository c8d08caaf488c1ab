//! The 24-hour promise as a property of the disk: the real app in a real
//! window (Xvfb, lavapipe, no network), real photos, real processes killed
//! with SIGKILL, the scheduler's own command run under libfaketime, and a
//! scan of every byte left under the profile.
//!
//! A recording `systemctl` on `PATH` stands in for the user's systemd (these
//! machines run none): it answers like systemd does and logs what the app
//! asked. The units the app writes are checked by the real
//! `systemd-analyze verify`, and their `ExecStart` is what the tests run.

mod common;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use backgrounderase::paths::AppDirs;
use backgrounderase::privacy::store::{ItemKind, RetentionStore, StoredItem, SystemClock};
use common::{fixture, fresh_profile};

const BIN: &str = env!("CARGO_BIN_EXE_backgrounderase");

/// Each test its own X display.
fn next_display() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        ":{}",
        140 + std::process::id() % 50 * 10 + NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    fn start() -> Self {
        let display = next_display();
        let child = Command::new("Xvfb")
            .args([&display, "-screen", "0", "1280x800x24", "-nolisten", "tcp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb is required (Debian package xvfb)");
        std::thread::sleep(Duration::from_millis(800));
        Self { child, display }
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A user of this machine for one test: a home folder (where the app writes
/// its systemd units), a runtime folder, a `systemctl` that records what it
/// is asked, the app's profile (with the real runtime and model linked in),
/// and a folder of the user's photos with names worth keeping secret.
struct User {
    home: tempfile::TempDir,
    profile: tempfile::TempDir,
    dirs: AppDirs,
    photos: tempfile::TempDir,
    runtime: tempfile::TempDir,
}

/// How the recording `systemctl` behaves.
#[derive(Clone, Copy, PartialEq)]
enum Systemd {
    /// A user manager that loads, enables and starts units.
    Running,
    /// None to talk to (a container, WSL).
    Absent,
}

impl User {
    fn new(systemd: Systemd) -> Self {
        let (profile, dirs) = fresh_profile();
        let user = Self {
            home: tempfile::tempdir().unwrap(),
            profile,
            dirs,
            photos: tempfile::Builder::new()
                .prefix("acme-unreleased-campaign-")
                .tempdir()
                .unwrap(),
            runtime: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(user.bin()).unwrap();
        let script = format!(
            r#"#!/bin/sh
# Stands in for systemd's systemctl: records each call, answers like it.
echo "$*" >> "{log}"
[ "$1" = --user ] && shift
state="{state}"
mkdir -p "$state"
case "$1" in
  show-environment) {show} ;;
  daemon-reload) exit 0 ;;
  enable) [ "$2" = --now ] && shift; touch "$state/$2"; exit 0 ;;
  start) touch "$state/$2"; exit 0 ;;
  is-active) if [ -e "$state/$2" ]; then echo active; exit 0; else echo inactive; exit 3; fi ;;
  *) exit 1 ;;
esac
"#,
            log = user.systemctl_log().display(),
            state = user.home.path().join("systemd-state").display(),
            show = match systemd {
                Systemd::Running => "echo HOME=/; exit 0",
                Systemd::Absent => "echo 'Failed to connect to bus: No medium found' >&2; exit 1",
            },
        );
        let path = user.bin().join("systemctl");
        std::fs::write(&path, script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        user
    }

    fn bin(&self) -> PathBuf {
        self.home.path().join("bin")
    }

    fn systemctl_log(&self) -> PathBuf {
        self.home.path().join("systemctl.log")
    }

    /// A real photo under a name of the user's.
    fn photo(&self, fixture_name: &str, name: impl AsRef<Path>) -> PathBuf {
        let path = self.photos.path().join(name);
        std::fs::copy(fixture(fixture_name), &path).unwrap();
        path
    }

    fn path_env(&self) -> OsString {
        let mut path = OsString::from(self.bin());
        path.push(":/usr/local/bin:/usr/bin:/bin");
        path
    }

    /// The app (or a command) as this user, with no network. `clock`: a
    /// libfaketime offset file ("+25h") the process reads its wall clock
    /// through (re-read every second, so the test can move it).
    fn command(&self, display: Option<&str>, clock: Option<&Path>) -> Command {
        let mut command = Command::new("unshare");
        command.arg("-n").arg(BIN);
        self.environment(&mut command, display);
        if let Some(offset) = clock {
            command
                .env("LD_PRELOAD", libfaketime())
                .env("FAKETIME_TIMESTAMP_FILE", offset)
                .env("FAKETIME_CACHE_DURATION", "1")
                // The wall clock only: the speed factor and faked monotonic
                // time also scale every timed wait, and lavapipe then loses
                // its device (VK_ERROR_DEVICE_LOST, seen here).
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        }
        command
    }

    /// The environment of this user's session, and nothing else.
    fn environment(&self, command: &mut Command, display: Option<&str>) {
        command
            .env_clear()
            .env("PATH", self.path_env())
            .env("HOME", self.home.path())
            .env("XDG_RUNTIME_DIR", self.runtime.path())
            .env("BACKGROUNDERASE_HOME", self.profile.path())
            .env("WGPU_BACKEND", "vulkan")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(display) = display {
            command.env("DISPLAY", display);
        }
    }

    fn launch(&self, display: &str, clock: Option<&Path>, photos: &[PathBuf]) -> Child {
        let mut command = self.command(Some(display), clock);
        command
            .args(photos)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command.spawn().unwrap()
    }

    /// A second launch: hands its files to the open window and exits.
    fn hand_over(&self, photos: &[PathBuf]) {
        let out = self.command(None, None).args(photos).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn privacy(&self, action: &str) -> Output {
        self.command(None, None)
            .args(["privacy", action])
            .output()
            .unwrap()
    }

    fn store(&self) -> RetentionStore {
        RetentionStore::open(&self.dirs.data.join("store"), Arc::new(SystemClock)).unwrap()
    }

    fn items(&self, kind: ItemKind) -> Vec<StoredItem> {
        self.store().list_kind(kind)
    }

    /// The service the app installed for this profile.
    fn service_file(&self) -> PathBuf {
        let dir = self.home.path().join(".config/systemd/user");
        std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("no user units were installed ({e}): {}", dir.display()))
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "service"))
            .expect("no .service unit")
    }

    /// Runs exactly what the timer would run: the service's `ExecStart`,
    /// with its `Environment=` and nothing else but HOME and PATH, at a
    /// clock moved by `shift` (libfaketime).
    fn run_scheduled_sweep(&self, shift: &str) -> String {
        let unit = std::fs::read_to_string(self.service_file()).unwrap();
        let mut exec = Vec::new();
        let mut env = Vec::new();
        for line in unit.lines() {
            if let Some(rest) = line.strip_prefix("ExecStart=") {
                exec = systemd_words(rest);
            } else if let Some(rest) = line.strip_prefix("Environment=") {
                for word in systemd_words(rest) {
                    let (k, v) = word.split_once('=').unwrap();
                    env.push((k.to_string(), v.to_string()));
                }
            }
        }
        assert!(!exec.is_empty(), "no ExecStart in {unit}");
        let out = Command::new("faketime")
            .arg(shift)
            .args(&exec)
            .env_clear()
            .env("HOME", self.home.path())
            .env("PATH", "/usr/bin:/bin")
            .envs(env)
            .output()
            .expect("faketime is required (Debian package faketime)");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{exec:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// Strings that would give the user's work away: each photo's name and
    /// stem, and the folder they are in.
    fn secrets(&self, photos: &[PathBuf]) -> Vec<Vec<u8>> {
        use std::os::unix::ffi::OsStrExt;
        let mut secrets = vec![self.photos.path().as_os_str().as_bytes().to_vec()];
        for photo in photos {
            secrets.push(photo.file_name().unwrap().as_bytes().to_vec());
            secrets.push(photo.file_stem().unwrap().as_bytes().to_vec());
        }
        secrets
    }
}

/// The libfaketime preload library (Debian package libfaketime).
fn libfaketime() -> PathBuf {
    let found = std::fs::read_dir("/usr/lib")
        .unwrap()
        .flatten()
        .map(|e| e.path().join("faketime/libfaketime.so.1"))
        .chain([PathBuf::from("/usr/lib/faketime/libfaketime.so.1")])
        .find(|p| p.is_file());
    found.expect("libfaketime is required (Debian package faketime)")
}

/// Words of a systemd unit line: "quoted" or bare, `%%` for `%`.
fn systemd_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = line.trim().chars().peekable();
    while let Some(&c) = chars.peek() {
        if c == ' ' {
            chars.next();
            continue;
        }
        let mut word = String::new();
        if c == '"' {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => word.extend(chars.next()),
                    '"' => break,
                    c => word.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ' ' {
                    break;
                }
                word.push(c);
                chars.next();
            }
        }
        words.push(word.replace("%%", "%"));
    }
    words
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every regular file under `root` (links are not followed: the profile
/// links in the installed model and runtime).
fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(root) else {
        return out;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            out.extend(files_under(&entry.path()));
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
    out
}

/// Fails if any file under `root` holds one of `secrets`, or the pixels of
/// one of `photos`: an image of a photo's size (a mask, a copy), or a run of
/// a photo's decoded pixels as they are in memory.
fn assert_nothing_of(root: &Path, secrets: &[Vec<u8>], photos: &[PathBuf]) {
    let decoded: Vec<image::RgbaImage> = photos
        .iter()
        .map(|p| image::open(p).unwrap().to_rgba8())
        .collect();
    for file in files_under(root) {
        let bytes = std::fs::read(&file).unwrap();
        for secret in secrets {
            assert!(
                !contains(&bytes, secret),
                "{} holds {:?}",
                file.display(),
                String::from_utf8_lossy(secret)
            );
        }
        if let Ok(image) = image::load_from_memory(&bytes) {
            for photo in &decoded {
                assert_ne!(
                    (image.width(), image.height()),
                    photo.dimensions(),
                    "{} is an image of a photo's size",
                    file.display()
                );
            }
        }
        for photo in &decoded {
            let row = &photo.as_raw()[photo.width() as usize * 4 * 10..][..64];
            assert!(
                !bytes.windows(row.len()).any(|w| w == row),
                "{} holds a photo's pixels",
                file.display()
            );
        }
    }
}

/// Whether `haystack` holds `needle` as bytes, or as the list of numbers a
/// serialiser writes for bytes that are not text ("76,121,114,…").
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    let numbers: Vec<String> = needle.iter().map(u8::to_string).collect();
    let numbers = numbers.join(",");
    haystack.windows(needle.len()).any(|w| w == needle)
        || haystack
            .windows(numbers.len())
            .any(|w| w == numbers.as_bytes())
}

fn profile_holds(user: &User, secret: &[u8]) -> bool {
    files_under(user.profile.path())
        .iter()
        .any(|f| contains(&std::fs::read(f).unwrap_or_default(), secret))
}

fn kill9(mut app: Child) {
    app.kill().unwrap(); // SIGKILL
    app.wait().unwrap();
}

#[test]
fn killed_with_sigkill_then_the_schedulers_own_command_a_day_later_leaves_nothing() {
    let x = Xvfb::start();
    let user = User::new(Systemd::Running);
    let photos = [
        user.photo("photos/coffee.jpg", "Aurora launch hero shot.jpg"),
        user.photo("photos/chelsea.jpg", "Borealis packshot (final).jpg"),
    ];
    let app = user.launch(&x.display, None, &photos[..1]);
    wait_for("the first result kept", Duration::from_secs(120), || {
        user.items(ItemKind::Workspace).len() == 1
    });
    // A second launch hands its photo to the open window.
    user.hand_over(&photos[1..]);
    wait_for("both results kept", Duration::from_secs(120), || {
        user.items(ItemKind::Workspace).len() == 2 && user.items(ItemKind::Mask).len() == 2
    });
    // The store really held the user's work: the scan below means something.
    for secret in user.secrets(&photos) {
        assert!(
            profile_holds(&user, &secret),
            "{:?}",
            String::from_utf8_lossy(&secret)
        );
    }

    // The app installed and started its hourly timer, and the units pass
    // systemd's own checks.
    let calls = std::fs::read_to_string(user.systemctl_log()).unwrap();
    assert!(
        calls.contains("--user enable --now backgrounderase-sweep-"),
        "{calls}"
    );
    let service = user.service_file();
    let timer = service.with_extension("timer");
    let verify = Command::new("systemd-analyze")
        .args(["verify", "--user"])
        .args([&service, &timer])
        .env("XDG_RUNTIME_DIR", user.runtime.path())
        .env("HOME", user.home.path())
        .output()
        .expect("systemd-analyze is required (Debian package systemd)");
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let timer_text = std::fs::read_to_string(&timer).unwrap();
    for line in ["OnCalendar=hourly", "Persistent=true", "OnStartupSec=2min"] {
        assert!(timer_text.contains(line), "{timer_text}");
    }

    kill9(app);

    // 22 hours on, the next hourly run still keeps the work (it is not
    // simply deleted by any run)...
    let early = user.run_scheduled_sweep("+22 hours");
    assert!(early.starts_with("deleted 0 items"), "{early}");
    assert_eq!(user.items(ItemKind::Workspace).len(), 2);
    // ...and the run 24 hours later leaves nothing of it anywhere.
    let report = user.run_scheduled_sweep("+24 hours");
    assert!(
        report.starts_with("deleted 4 items (2 masks, 2 workspace entries)"),
        "{report}"
    );
    for secret in user.secrets(&photos) {
        assert!(
            !contains(report.as_bytes(), &secret),
            "the log names a photo: {report}"
        );
    }
    assert_nothing_of(user.profile.path(), &user.secrets(&photos), &photos);
    assert_nothing_of(user.home.path(), &user.secrets(&photos), &photos);
}

#[test]
fn with_no_scheduler_nothing_outlives_the_session_and_a_crash_is_cleaned_at_the_next_start() {
    let x = Xvfb::start();
    // A session with the timer, killed: its work is on disk.
    let user = User::new(Systemd::Running);
    let photo = user.photo("photos/coffee.jpg", "Cassiopeia moodboard.jpg");
    let app = user.launch(&x.display, None, std::slice::from_ref(&photo));
    wait_for("the result kept", Duration::from_secs(120), || {
        user.items(ItemKind::Mask).len() == 1
    });
    kill9(app);
    assert!(profile_holds(&user, b"Cassiopeia"));

    // The next start finds no systemd: before anything else, the crash's
    // leftovers go, and nothing of this session is kept either.
    let user = User::new(Systemd::Absent).with_profile_of(user);
    let second = user.photo("photos/chelsea.jpg", "Draco teaser.jpg");
    let report = tempfile::tempdir().unwrap();
    let mut command = user.command(Some(&x.display), None);
    command
        .arg(&second)
        .env(
            "BACKGROUNDERASE_FRAME_STATS",
            report.path().join("frames.json"),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let started = Instant::now();
    let mut app = command.spawn().unwrap();
    wait_for(
        "the leftovers deleted at start",
        Duration::from_secs(30),
        || user.store().list().is_empty(),
    );
    // The frame probe closes the window once the result is shown: a normal
    // exit, after which nothing of the session may remain.
    let status = loop {
        if let Some(status) = app.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the app did not finish"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(status.success());
    assert!(
        report.path().join("frames.json").exists(),
        "the result was shown"
    );
    assert!(user.store().list().is_empty());
    let photos = [photo, second];
    assert_nothing_of(user.profile.path(), &user.secrets(&photos), &photos);
    let calls = std::fs::read_to_string(user.systemctl_log()).unwrap();
    assert!(
        !calls.contains("enable"),
        "no units without a manager: {calls}"
    );
}

impl User {
    /// This user, but with `other`'s profile and photos (the same person
    /// starting the app again on a machine that changed).
    fn with_profile_of(mut self, other: User) -> Self {
        self.profile = other.profile;
        self.dirs = other.dirs;
        self.photos = other.photos;
        self
    }
}

/// A session that lasts days, the wall clock moved on while the app runs
/// (libfaketime reading an offset file the test rewrites).
#[test]
fn in_a_session_that_lasts_days_an_image_leaves_the_disk_a_day_after_it_was_opened() {
    let x = Xvfb::start();
    let user = User::new(Systemd::Running);
    let clock = user.home.path().join("clock-offset");
    let set_clock = |offset: &str| std::fs::write(&clock, offset).unwrap();
    set_clock("+0");
    let first = user.photo("photos/coffee.jpg", "Eridanus day one.jpg");
    let mut app = user.launch(&x.display, Some(&clock), std::slice::from_ref(&first));
    wait_for("the first result kept", Duration::from_secs(120), || {
        user.items(ItemKind::Mask).len() == 1
    });
    // The hours go by; the app sweeps every 30 s of its own time.
    for hour in 1..=22 {
        set_clock(&format!("+{hour}h"));
        std::thread::sleep(Duration::from_millis(300));
    }
    std::thread::sleep(Duration::from_secs(35));
    assert_eq!(user.items(ItemKind::Workspace).len(), 1, "kept for 22 h");
    set_clock("+24h");
    wait_for("the first image gone", Duration::from_secs(70), || {
        user.store().list().is_empty()
    });
    assert!(!profile_holds(&user, b"Eridanus"));
    assert!(
        app.try_wait().unwrap().is_none(),
        "the app is still running"
    );

    // It keeps working: a new image is kept, the old one is not written back.
    let second = user.photo("photos/chelsea.jpg", "Fornax day two.jpg");
    user.hand_over(std::slice::from_ref(&second));
    wait_for("the second result kept", Duration::from_secs(120), || {
        user.items(ItemKind::Workspace).len() == 1
    });
    let labels: Vec<String> = user.store().list().into_iter().map(|i| i.label).collect();
    assert!(
        labels.iter().all(|l| l == "Fornax day two.jpg"),
        "{labels:?}"
    );
    assert!(!profile_holds(&user, b"Eridanus"));

    // Day three: the second image goes too, with the app still open.
    set_clock("+49h");
    wait_for("the second image gone", Duration::from_secs(70), || {
        user.store().list().is_empty()
    });
    assert!(
        app.try_wait().unwrap().is_none(),
        "the app is still running"
    );
    let photos = [first, second];
    assert_nothing_of(user.profile.path(), &user.secrets(&photos), &photos);
    kill9(app);
}

#[test]
fn purged_while_the_app_runs_no_name_comes_back_with_the_next_result() {
    let x = Xvfb::start();
    let user = User::new(Systemd::Running);
    let first = user.photo("photos/coffee.jpg", "Gemini confidential.jpg");
    let app = user.launch(&x.display, None, std::slice::from_ref(&first));
    wait_for("the first result kept", Duration::from_secs(120), || {
        user.items(ItemKind::Workspace).len() == 1
    });
    let out = user.privacy("purge");
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("deleted 2 stored items"), "{said}");
    assert!(!profile_holds(&user, b"Gemini"));

    let second = user.photo("photos/chelsea.jpg", "Hydra public.jpg");
    user.hand_over(std::slice::from_ref(&second));
    wait_for("the second result kept", Duration::from_secs(120), || {
        user.items(ItemKind::Workspace).len() == 1
    });
    std::thread::sleep(Duration::from_secs(3));
    let labels: Vec<String> = user.store().list().into_iter().map(|i| i.label).collect();
    assert!(labels.iter().all(|l| l == "Hydra public.jpg"), "{labels:?}");
    assert!(!profile_holds(&user, b"Gemini"));
    kill9(app);
}

#[test]
fn a_file_name_that_is_not_utf8_is_kept_and_swept_like_any_other() {
    use std::os::unix::ffi::OsStrExt;
    let x = Xvfb::start();
    let user = User::new(Systemd::Running);
    let odd = user.photo(
        "photos/coffee.jpg",
        std::ffi::OsStr::from_bytes(b"Lyra caf\xe9 \xff.jpg"),
    );
    let app = user.launch(&x.display, None, std::slice::from_ref(&odd));
    wait_for("the result kept", Duration::from_secs(120), || {
        user.items(ItemKind::Workspace).len() == 1
    });
    // The writer lives on: the next image is kept too.
    let plain = user.photo("photos/chelsea.jpg", "Lyra plain.jpg");
    user.hand_over(std::slice::from_ref(&plain));
    wait_for("the next result kept", Duration::from_secs(120), || {
        user.items(ItemKind::Workspace).len() == 2
    });
    assert!(
        profile_holds(&user, b"caf\xe9 \xff"),
        "the path's own bytes are kept"
    );
    kill9(app);
    let report = user.run_scheduled_sweep("+24 hours");
    assert!(report.starts_with("deleted 4 items"), "{report}");
    let photos = [odd, plain];
    assert_nothing_of(user.profile.path(), &user.secrets(&photos), &photos);
}

/// The binary with `args`, as `user`, with the config folder read-only: a
/// bind mount in a mount namespace of its own, where writes fail with EROFS
/// even for root. `network`: whether loopback reaches this machine's.
fn with_read_only_config(
    user: &User,
    args: &[&str],
    display: Option<&str>,
    network: bool,
) -> Command {
    let config = user.dirs.config.display().to_string();
    let mut command = Command::new("unshare");
    command.arg(if network { "-m" } else { "-mn" });
    command.args(["sh", "-c"]).arg(format!(
        "mount --bind '{config}' '{config}' && mount -o remount,bind,ro '{config}' && exec \"$@\""
    ));
    command.args(["sh", BIN]).args(args);
    user.environment(&mut command, display);
    command
}

#[test]
fn an_opt_out_the_config_folder_cannot_take_still_stops_every_upload_after_a_restart() {
    use backgrounderase::privacy::Privacy;
    use backgrounderase::privacy::settings::{self, Settings};
    use backgrounderase::privacy::uploads::{TrainingSample, enqueue};
    use common::loopback::{Behaviour, LoopbackServer};

    let server = LoopbackServer::start(Behaviour::default());
    let user = User::new(Systemd::Running);
    settings::save(
        &user.dirs.config,
        &Settings {
            opted_in: true,
            upload_url: Some(server.url.clone()),
            ..Default::default()
        },
    )
    .unwrap();
    {
        let privacy = Privacy::open(&user.dirs, Arc::new(SystemClock)).unwrap();
        assert!(privacy.opted_in());
        let image = image::open(fixture("photos/coffee.jpg"))
            .unwrap()
            .to_rgba8();
        let mask = image::GrayImage::new(image.width(), image.height());
        let sample = TrainingSample {
            original: &image,
            mask: &mask,
            model_id: "isnet-imgly-medium",
        };
        enqueue(
            &privacy.store,
            &privacy.gate(),
            &privacy.consent_on_disk(),
            "Orion.jpg",
            &sample,
        )
        .unwrap()
        .expect("queued with consent");
    }

    // `privacy opt-out` with the config folder read-only.
    let out = with_read_only_config(&user, &["privacy", "opt-out"], None, false)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("you are opted out"), "{stderr}");
    assert!(stderr.contains("could not be saved"), "{stderr}");
    assert!(
        settings::opted_in_on_disk(&user.dirs.config),
        "the settings file still says opted in (it could not be written)"
    );
    assert!(
        user.items(ItemKind::UploadQueue).is_empty(),
        "the queue was emptied"
    );

    // A sample left in the queue anyway (an older version, say), then the
    // app restarts, the config folder still read-only, pointed at the
    // server: not in its own network namespace, so that "no connection"
    // means the app did not try.
    user.store()
        .put(ItemKind::UploadQueue, "stale", b"--x\r\n")
        .unwrap();
    let x = Xvfb::start();
    let mut app = with_read_only_config(&user, &[], Some(&x.display), true);
    app.env("BACKGROUNDERASE_UPLOAD_URL", &server.url)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let app = app.spawn().unwrap();
    std::thread::sleep(Duration::from_secs(15));
    let mut app = app;
    assert!(app.try_wait().unwrap().is_none(), "the app runs");
    assert_eq!(
        server.connections(),
        0,
        "an upload was attempted after opting out"
    );
    kill9(app);
    let status = with_read_only_config(&user, &["privacy", "status"], None, false)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&status.stdout).starts_with("opted out"),
        "{}{}",
        String::from_utf8_lossy(&status.stdout),
        String::from_utf8_lossy(&status.stderr)
    );
}

/// A clock that once ran ahead, and one set back: either way an item is
/// deleted no later than 24 hours of real time after it was written (here:
/// at once, because by the store's reckoning it is already a day old).
#[test]
fn clock_jumps_either_way_never_make_an_item_outlive_a_real_day() {
    let x = Xvfb::start();
    let user = User::new(Systemd::Running);

    // Some process ran with the clock 25 hours ahead...
    let ahead = Command::new("faketime")
        .arg("+25 hours")
        .arg(BIN)
        .args(["privacy", "status"])
        .env("BACKGROUNDERASE_HOME", user.profile.path())
        .output()
        .unwrap();
    assert!(ahead.status.success());
    // ...then the app runs with the right time and keeps a result.
    let first = user.photo("photos/coffee.jpg", "Pegasus.jpg");
    let app = user.launch(&x.display, None, std::slice::from_ref(&first));
    wait_for("the result kept", Duration::from_secs(120), || {
        user.items(ItemKind::Workspace).len() == 1
    });
    kill9(app);
    // The next scheduled run, at the real time, deletes it.
    let report = user.run_scheduled_sweep("+0 seconds");
    assert!(report.starts_with("deleted 2 items"), "{report}");

    // The reverse: the app runs with its clock 25 hours behind.
    let clock = user.home.path().join("clock-offset");
    std::fs::write(&clock, "-25h").unwrap();
    let second = user.photo("photos/chelsea.jpg", "Perseus.jpg");
    let app = user.launch(&x.display, Some(&clock), std::slice::from_ref(&second));
    wait_for("the result kept", Duration::from_secs(120), || {
        user.items(ItemKind::Workspace).len() == 1
    });
    kill9(app);
    let report = user.run_scheduled_sweep("+0 seconds");
    assert!(report.starts_with("deleted 2 items"), "{report}");
    let photos = [first, second];
    assert_nothing_of(user.profile.path(), &user.secrets(&photos), &photos);
}

/// The app working through images while `privacy purge` runs in a loop
/// beside it for a minute: the index and the item files always agree, and
/// after the last purge nothing of the earlier images comes back.
#[test]
fn the_app_and_a_purge_loop_racing_for_a_minute_leave_a_consistent_store() {
    let x = Xvfb::start();
    let user = User::new(Systemd::Running);
    let first = user.photo("photos/chelsea.jpg", "race-000.jpg");
    let app = user.launch(&x.display, None, std::slice::from_ref(&first));
    wait_for("the first result kept", Duration::from_secs(120), || {
        user.items(ItemKind::Workspace).len() == 1
    });
    let consistent = |user: &User| {
        let store = user.store();
        let items_dir = user.dirs.data.join("store/items");
        // Both looks under the store's lock, as a writer would take them:
        // the index and the folder read apart could straddle a purge.
        let (indexed, mut on_disk) = store
            .update(|tx| {
                let indexed: Vec<u64> = tx.items().iter().map(|i| i.id).collect();
                let on_disk: Vec<u64> = std::fs::read_dir(&items_dir)
                    .unwrap()
                    .flatten()
                    .filter_map(|e| e.file_name().to_str()?.strip_suffix(".bin")?.parse().ok())
                    .collect();
                Ok::<_, backgrounderase::privacy::store::StoreError>((indexed, on_disk))
            })
            .unwrap();
        on_disk.sort();
        let mut sorted = indexed.clone();
        sorted.sort();
        let mut deduped = sorted.clone();
        deduped.dedup();
        assert_eq!(sorted, deduped, "an id taken twice");
        // Every indexed item has its file (a purge never leaves an entry
        // without one); a file without an entry can exist only for the
        // moment a writer holds the lock.
        for id in &indexed {
            assert!(on_disk.contains(id), "item {id} is indexed but has no file");
        }
    };
    let purges = std::sync::atomic::AtomicUsize::new(0);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut handed = Vec::new();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while Instant::now() < deadline {
                let out = user.privacy("purge");
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                purges.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(300));
            }
        });
        let mut n = 1;
        while Instant::now() < deadline {
            let fixture_name = if n % 2 == 0 {
                "photos/coffee.jpg"
            } else {
                "photos/chelsea.jpg"
            };
            let photo = user.photo(fixture_name, format!("race-{n:03}.jpg"));
            user.hand_over(std::slice::from_ref(&photo));
            handed.push(photo);
            consistent(&user);
            std::thread::sleep(Duration::from_millis(1500));
            n += 1;
        }
    });
    assert!(purges.load(Ordering::SeqCst) > 20, "the purge loop ran");
    // Let the app finish what it was handed, then the last purge.
    let mut last = usize::MAX;
    let mut stable_since = Instant::now();
    wait_for("the app idle", Duration::from_secs(180), || {
        let now = user.store().list().len();
        if now != last {
            last = now;
            stable_since = Instant::now();
        }
        stable_since.elapsed() > Duration::from_secs(10)
    });
    consistent(&user);
    assert!(user.privacy("purge").status.success());
    std::thread::sleep(Duration::from_secs(10));
    assert!(
        user.store().list().is_empty(),
        "something came back after the purge"
    );
    let mut all = handed.clone();
    all.push(first);
    assert_nothing_of(user.profile.path(), &user.secrets(&all), &all);

    // The app still keeps new work, and only that.
    let after = user.photo("photos/coffee.jpg", "after-the-race.jpg");
    user.hand_over(std::slice::from_ref(&after));
    wait_for("the new result kept", Duration::from_secs(120), || {
        user.items(ItemKind::Workspace).len() == 1
    });
    std::thread::sleep(Duration::from_secs(3));
    let labels: Vec<String> = user.store().list().into_iter().map(|i| i.label).collect();
    assert!(
        labels.iter().all(|l| l == "after-the-race.jpg"),
        "{labels:?}"
    );
    consistent(&user);
    kill9(app);
}
