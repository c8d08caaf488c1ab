//! `backgrounderase watch` as a real process with the real model on a real
//! folder: files copied in slowly, in bursts, renamed into place and deleted
//! before they settle; then kill -9 in the middle of work, changes made while
//! nothing watches, and a restart that does exactly what is missing.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use common::fixture;

const SETTLE: &str = "1.5";

struct Watcher {
    child: Child,
    log: PathBuf,
}

impl Watcher {
    fn start(input: &Path, output: &Path, log: PathBuf) -> Self {
        let file = fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_backgrounderase"))
            .arg("watch")
            .arg(input)
            .arg("-o")
            .arg(output)
            .args(["--settle", SETTLE, "--rescan", "30"])
            .env_remove("ORT_DYLIB_PATH")
            .env_remove("BACKGROUNDERASE_HOME")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap();
        Self { child, log }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log shows `lines` "done …" lines.
    fn wait_for_done(&mut self, lines: usize) {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let log = self.log();
            if log.lines().filter(|l| l.starts_with("done ")).count() >= lines {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("watch exited ({status}): {log}");
            }
            assert!(Instant::now() < deadline, "timed out waiting: {log}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn kill_9(mut self) -> String {
        // Child::kill is SIGKILL on Unix: no clean-up code runs.
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.log()
    }
}

/// The manifest's lines by input (hashed relative path): `(size, output)`.
fn manifest(output: &Path) -> BTreeMap<String, Vec<(u64, String)>> {
    let text = fs::read_to_string(output.join(".backgrounderase-batch.jsonl")).unwrap_or_default();
    let mut lines: BTreeMap<String, Vec<(u64, String)>> = BTreeMap::new();
    for line in text.lines() {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        lines
            .entry(value["input_sha256"].as_str().unwrap().to_string())
            .or_default()
            .push((
                value["size"].as_u64().unwrap(),
                value["output"].as_str().unwrap().to_string(),
            ));
    }
    lines
}

fn key(relative: &str) -> String {
    Sha256::digest(relative.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn assert_cutout(path: &Path) {
    let image = image::open(path)
        .unwrap_or_else(|e| panic!("{e}: {}", path.display()))
        .to_rgba8();
    assert!(image.pixels().any(|p| p[3] == 0), "{}", path.display());
    assert!(image.pixels().any(|p| p[3] == 255), "{}", path.display());
}

#[test]
fn a_hot_folder_reads_finished_files_once_and_a_kill_9_loses_nothing() {
    let root = tempfile::tempdir().unwrap();
    let input = root.path().join("hot");
    let output = root.path().join("done");
    fs::create_dir_all(input.join("shoes")).unwrap();
    let coffee = fs::read(fixture("photos/coffee.jpg")).unwrap();
    let cat = fs::read(fixture("photos/chelsea.jpg")).unwrap();
    let astronaut = fs::read(fixture("photos/astronaut.jpg")).unwrap();
    fs::write(input.join("there-before.jpg"), &cat).unwrap();

    let mut watcher = Watcher::start(&input, &output, root.path().join("first.log"));
    watcher.wait_for_done(1);

    // A slow copy: a chunk every 0.4 s, each gap shorter than the settle
    // time. Read half-way, the JPEG would fail to decode or be recorded
    // with a short size.
    let mut slow = fs::File::create(input.join("shoes/slow.jpg")).unwrap();
    for chunk in coffee.chunks(coffee.len().div_ceil(6)) {
        slow.write_all(chunk).unwrap();
        slow.flush().unwrap();
        std::thread::sleep(Duration::from_millis(400));
    }
    drop(slow);
    // A burst of four at once.
    for i in 0..4 {
        fs::write(input.join(format!("burst-{i}.jpg")), &cat).unwrap();
    }
    // Written under a name that is not an image, then renamed into place
    // (what rsync and many uploaders do).
    fs::write(input.join("upload.partial"), &astronaut).unwrap();
    fs::rename(input.join("upload.partial"), input.join("renamed.jpg")).unwrap();
    // Dropped in by mistake and taken back at once.
    fs::write(input.join("mistake.jpg"), &cat).unwrap();
    fs::remove_file(input.join("mistake.jpg")).unwrap();

    watcher.wait_for_done(7);
    let first = watcher.log();
    assert!(!first.contains("error"), "{first}");

    let lines = manifest(&output);
    let expect_once = |rel: &str, size: usize, out: &str| {
        let entries = lines
            .get(&key(rel))
            .unwrap_or_else(|| panic!("{rel} not done: {first}"));
        assert_eq!(entries, &vec![(size as u64, out.to_string())], "{rel}");
        assert_cutout(&output.join(out));
    };
    expect_once("there-before.jpg", cat.len(), "there-before.png");
    expect_once("shoes/slow.jpg", coffee.len(), "shoes/slow.png");
    for i in 0..4 {
        expect_once(
            &format!("burst-{i}.jpg"),
            cat.len(),
            &format!("burst-{i}.png"),
        );
    }
    expect_once("renamed.jpg", astronaut.len(), "renamed.png");
    assert_eq!(lines.len(), 7, "only these seven: {first}");
    assert!(!output.join("mistake.png").exists());
    assert!(!output.join("upload.png").exists());

    // kill -9 while a second burst is being processed.
    for i in 0..3 {
        fs::write(input.join(format!("late-{i}.jpg")), &coffee).unwrap();
    }
    watcher.wait_for_done(8);
    let first = watcher.kill_9();
    let done_before_kill: Vec<String> = first
        .lines()
        .filter(|l| l.starts_with("done late-"))
        .map(|l| l["done ".len().."done late-0.jpg".len()].to_string())
        .collect();
    assert!(!done_before_kill.is_empty());

    // While nothing watches: a new photo arrives and an old one is replaced.
    fs::write(input.join("while-stopped.jpg"), &astronaut).unwrap();
    fs::write(input.join("there-before.jpg"), &coffee).unwrap();

    let mut watcher = Watcher::start(&input, &output, root.path().join("second.log"));
    let missing = 3 - done_before_kill.len() + 2;
    watcher.wait_for_done(missing);
    // Give it time to (wrongly) redo anything else.
    std::thread::sleep(Duration::from_secs(4));
    let second = watcher.kill_9();
    let redone: Vec<&str> = second.lines().filter(|l| l.starts_with("done ")).collect();
    assert_eq!(redone.len(), missing, "only what was missing: {second}");
    for name in &done_before_kill {
        assert!(
            !second.contains(&format!("done {name}")),
            "{name} redone: {second}"
        );
    }
    assert!(second.contains("done while-stopped.jpg"), "{second}");
    assert!(second.contains("done there-before.jpg"), "{second}");

    let lines = manifest(&output);
    assert_eq!(lines.len(), 11, "{first}\n{second}");
    for i in 0..3 {
        let entries = &lines[&key(&format!("late-{i}.jpg"))];
        assert_eq!(entries.len(), 1, "late-{i} finished once");
        assert_cutout(&output.join(format!("late-{i}.png")));
    }
    // The replaced photo's result replaced the old one under the same name.
    assert_eq!(
        lines[&key("there-before.jpg")],
        vec![
            (cat.len() as u64, "there-before.png".to_string()),
            (coffee.len() as u64, "there-before.png".to_string())
        ]
    );
    let replaced = image::open(output.join("there-before.png")).unwrap();
    let coffee_size = image::load_from_memory(&coffee).unwrap();
    assert_eq!(
        (replaced.width(), replaced.height()),
        (coffee_size.width(), coffee_size.height())
    );
    // No temporaries left in the output folder.
    for entry in walk(&output) {
        let name = entry.file_name().unwrap().to_string_lossy().into_owned();
        assert!(!name.ends_with(".part"), "{}", entry.display());
    }
}

#[test]
fn quiet_prints_no_file_names_and_a_missing_folder_is_named() {
    let root = tempfile::tempdir().unwrap();
    let input = root.path().join("private-client-shoot");
    fs::create_dir_all(&input).unwrap();
    fs::write(
        input.join("client-secret.jpg"),
        fs::read(fixture("photos/coffee.jpg")).unwrap(),
    )
    .unwrap();
    let output = root.path().join("out");
    let log = root.path().join("quiet.log");
    let file = fs::File::create(&log).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_backgrounderase"))
        .arg("watch")
        .arg(&input)
        .arg("-o")
        .arg(&output)
        .args(["--settle", "0.5", "--quiet"])
        .stderr(file)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !output.join("client-secret.png").exists() {
        assert!(
            Instant::now() < deadline,
            "{}",
            fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    child.kill().unwrap();
    child.wait().unwrap();
    let text = fs::read_to_string(&log).unwrap();
    assert!(text.contains("1 done, 0 failed"), "{text}");
    assert!(!text.contains("client-secret"), "{text}");

    let missing = Command::new(env!("CARGO_BIN_EXE_backgrounderase"))
        .args(["watch", "/nonexistent/hot folder", "-o"])
        .arg(&output)
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2), "a usage error");
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("/nonexistent/hot folder"), "{err}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// The README's systemd user service passes systemd's own checks, and its
/// command line, run as written, makes a hot folder work.
#[test]
fn the_example_user_service_is_valid_and_its_command_works() {
    let unit = fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("packaging/examples/backgrounderase-watch.service"),
    )
    .unwrap();
    let home = tempfile::tempdir().unwrap();
    let units = home.path().join(".config/systemd/user");
    fs::create_dir_all(&units).unwrap();
    let bin = env!("CARGO_BIN_EXE_backgrounderase");
    let service = units.join("backgrounderase-watch.service");
    fs::write(&service, unit.replace("/usr/bin/backgrounderase", bin)).unwrap();
    let runtime = tempfile::tempdir().unwrap();
    let verify = Command::new("systemd-analyze")
        .args(["verify", "--user"])
        .arg(&service)
        .env("XDG_RUNTIME_DIR", runtime.path())
        .env("HOME", home.path())
        .output()
        .expect("systemd-analyze is required (Debian package systemd)");
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&verify.stderr)
    );

    // Its ExecStartPre and ExecStart, with %h expanded.
    let command = |key: &str| -> Vec<String> {
        unit.lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap()
            .replace("%h", &home.path().to_string_lossy())
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    let pre = command("ExecStartPre=");
    assert!(
        Command::new(&pre[0])
            .args(&pre[1..])
            .status()
            .unwrap()
            .success()
    );
    let start = command("ExecStart=");
    assert_eq!(start[0], "/usr/bin/backgrounderase");
    let hot = home.path().join("HotFolder");
    fs::copy(fixture("photos/coffee.jpg"), hot.join("in/cup.jpg")).unwrap();
    let mut child = Command::new(bin)
        .args(&start[1..])
        .env_remove("ORT_DYLIB_PATH")
        .env_remove("BACKGROUNDERASE_HOME")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let result = hot.join("out/cup.jpg");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !result.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            panic!("exited {status}: {err}");
        }
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // The marketplace preset: a 2000×2000 JPEG on white.
    let image = image::open(&result).unwrap();
    assert_eq!((image.width(), image.height()), (2000, 2000));
    assert_eq!(image.to_rgb8().get_pixel(5, 5).0, [255, 255, 255]);
}
