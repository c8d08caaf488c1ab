//! Model downloads and imports against a real HTTP server on 127.0.0.1:
//! progress, resuming after a dropped connection and after a cancel, a
//! wrong checksum rejected with nothing left behind, a file changed on the
//! server, the real IMG.LY package installed from a registry mirror, and
//! imports (catalog match, and a custom model that then runs).

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use backgrounderase::checksum::{sha256_file, sha256_hex};
use backgrounderase::engine::Engine;
use backgrounderase::engine::inference::SessionOptions;
use backgrounderase::models::catalog::{Checksum, ModelCatalog};
use backgrounderase::models::download::{self, Download, DownloadError, Progress};
use backgrounderase::models::manager::{ManagerEvent, ModelManager, RowDownload};
use backgrounderase::models::{self, CustomPreset, ImportOutcome, Location};
use backgrounderase::paths::AppDirs;
use common::file_server::FileServer;

/// Bytes that differ everywhere, so a splice or an offset error shows.
fn payload(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn get(
    url: &str,
    target: &Path,
    expected: &Checksum,
    cancel: &AtomicBool,
) -> (Result<std::path::PathBuf, DownloadError>, Vec<Progress>) {
    let mut seen = Vec::new();
    let result = download::download(
        &Download {
            url,
            target,
            expected,
            expected_size: None,
        },
        &mut |p| seen.push(p),
        cancel,
    );
    (result, seen)
}

#[test]
fn progress_is_reported_and_a_dropped_connection_is_resumed() {
    let server = FileServer::start();
    let bytes = payload(3_000_000, 1);
    server.put("/m.onnx", bytes.clone(), "v1");
    server.cut_next_after(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("m.onnx");

    let (result, seen) = get(
        &server.url("/m.onnx"),
        &target,
        &Checksum::Sha256(sha256_hex(&bytes)),
        &AtomicBool::new(false),
    );
    result.unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), bytes);
    assert!(!download::part_path(&target).exists());

    // Two requests: the second asks for the rest, guarded by the ETag.
    let log = server.log();
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[0].range, None);
    assert_eq!(log[1].range.as_deref(), Some("bytes=1000000-"));
    assert_eq!(log[1].if_range.as_deref(), Some("\"v1\""));
    assert_eq!(log[1].status, 206);

    // Progress only grows, knows the total, resumes from the cut, ends at the size.
    assert!(seen.windows(2).all(|w| w[1].done >= w[0].done), "{seen:?}");
    assert!(seen.iter().all(|p| p.total == Some(3_000_000)));
    assert!(seen.iter().any(|p| p.resumed_from == 1_000_000));
    assert_eq!(seen.last().unwrap().done, 3_000_000);
    assert_eq!(seen.last().unwrap().fraction(), Some(1.0));
}

#[test]
fn a_cancelled_download_keeps_its_part_and_the_next_call_resumes() {
    let server = FileServer::start();
    let bytes = payload(2_000_000, 2);
    server.put("/m.onnx", bytes.clone(), "v1");
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("m.onnx");
    let expected = Checksum::Sha256(sha256_hex(&bytes));
    let url = server.url("/m.onnx");

    let cancel = AtomicBool::new(false);
    let result = download::download(
        &Download {
            url: &url,
            target: &target,
            expected: &expected,
            expected_size: None,
        },
        &mut |p| {
            if p.done >= 500_000 {
                cancel.store(true, Ordering::SeqCst);
            }
        },
        &cancel,
    );
    let Err(DownloadError::Cancelled { done, part }) = result else {
        panic!("{result:?}")
    };
    assert!((500_000..2_000_000).contains(&done), "{done}");
    assert_eq!(std::fs::metadata(&part).unwrap().len(), done);
    assert!(!target.exists());
    assert_eq!(download::partial_bytes(&target, &url), done);
    // Another address for the same file does not continue this part.
    assert_eq!(
        download::partial_bytes(&target, "https://elsewhere/m.onnx"),
        0
    );

    let (result, seen) = get(&url, &target, &expected, &AtomicBool::new(false));
    result.unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), bytes);
    assert_eq!(seen[0].resumed_from, done);
    let log = server.log();
    assert_eq!(log.last().unwrap().range, Some(format!("bytes={done}-")));
}

#[test]
fn a_wrong_checksum_is_rejected_and_nothing_is_left_behind() {
    let server = FileServer::start();
    let bytes = payload(1_500_000, 3);
    server.put("/m.onnx", bytes.clone(), "v1");
    server.cut_next_after(400_000);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("m.onnx");
    let wrong = Checksum::Sha256("0".repeat(64));

    let (result, _) = get(
        &server.url("/m.onnx"),
        &target,
        &wrong,
        &AtomicBool::new(false),
    );
    let err = result.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, DownloadError::Checksum(_)), "{text}");
    assert!(
        text.contains(&sha256_hex(&bytes)) && text.contains("deleted") && text.contains("m.onnx"),
        "{text}"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
    assert!(left.is_empty(), "no file, part or note stays: {left:?}");
}

#[test]
fn a_file_changed_on_the_server_restarts_instead_of_splicing() {
    let server = FileServer::start();
    let old = payload(1_000_000, 4);
    server.put("/m.onnx", old, "v1");
    server.cut_next_after(300_000);
    // The first try is cut, and the retry is cut too: the part stays.
    server.cut_next_after(100_000);
    server.cut_next_after(100_000);
    server.cut_next_after(100_000);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("m.onnx");
    let new = payload(1_200_000, 5);
    let expected = Checksum::Sha256(sha256_hex(&new));
    let (result, _) = get(
        &server.url("/m.onnx"),
        &target,
        &expected,
        &AtomicBool::new(false),
    );
    assert!(
        matches!(result, Err(DownloadError::Interrupted { .. })),
        "{result:?}"
    );
    assert!(download::part_path(&target).exists());

    // Now the server has another version: If-Range no longer matches, it
    // answers 200 with the whole new file, which replaces the part.
    server.put("/m.onnx", new.clone(), "v2");
    let (result, _) = get(
        &server.url("/m.onnx"),
        &target,
        &expected,
        &AtomicBool::new(false),
    );
    result.unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), new);
    let last = server.log().last().cloned().unwrap();
    assert_eq!(last.if_range.as_deref(), Some("\"v1\""));
    assert_eq!(last.status, 200);
}

#[test]
fn a_missing_file_is_an_http_error_naming_the_address() {
    let server = FileServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (result, _) = get(
        &server.url("/nope.onnx"),
        &dir.path().join("nope.onnx"),
        &Checksum::Sha256("0".repeat(64)),
        &AtomicBool::new(false),
    );
    let text = result.unwrap_err().to_string();
    assert!(
        text.contains("404") && text.ends_with("/nope.onnx"),
        "{text}"
    );
}

#[test]
fn an_untrusted_certificate_is_reported_at_once_not_retried() {
    // A real TLS server (openssl s_server) with a self-signed certificate:
    // what a wrong host or an untrusted proxy looks like. A retry cannot
    // mend it, so there is no backoff, and the error says why.
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is installed (.ci/run installs it)");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new("openssl")
        .args(["s_server", "-quiet", "-www", "-accept", &port.to_string()])
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "s_server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let url = format!("https://127.0.0.1:{port}/m.onnx");
    let started = std::time::Instant::now();
    let (result, _) = get(
        &url,
        &dir.path().join("m.onnx"),
        &Checksum::Sha256("0".repeat(64)),
        &AtomicBool::new(false),
    );
    let elapsed = started.elapsed();
    let _ = server.kill();
    let _ = server.wait();
    let err = result.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, DownloadError::Connect { .. }), "{text}");
    assert!(
        text.contains("certificate") && text.ends_with(&url),
        "{text}"
    );
    assert!(
        elapsed < Duration::from_millis(400),
        "no backoff: {elapsed:?}"
    );
    assert!(!download::part_path(&dir.path().join("m.onnx")).exists());
}

/// The real IMG.LY package, as `setup` cached it, served as a registry mirror.
fn registry_with_the_real_package() -> FileServer {
    let tarball = AppDirs::discover()
        .unwrap()
        .downloads_dir()
        .join("imgly-background-removal-data-1.4.5.tgz");
    let bytes = std::fs::read(&tarball).unwrap_or_else(|e| {
        panic!(
            "the cached npm package is needed (run `scripts/test`, whose setup fetches it): {e}: {}",
            tarball.display()
        )
    });
    let server = FileServer::start();
    server.put(
        "/@imgly/background-removal-data/-/background-removal-data-1.4.5.tgz",
        bytes,
        "imgly-1.4.5",
    );
    server
}

#[test]
fn the_manager_downloads_the_default_model_from_a_registry_mirror() {
    let server = registry_with_the_real_package();
    // A cut mid-way: the manager's download resumes by itself.
    server.cut_next_after(50_000_000);
    let home = tempfile::tempdir().unwrap();
    let dirs = AppDirs::under(home.path());
    let wakes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = wakes.clone();
    let mut manager = ModelManager::new(
        dirs.clone(),
        Some(server.base.clone()),
        Arc::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        }),
    );
    assert!(!manager.is_installed("isnet-imgly-medium"));
    assert!(matches!(
        &manager.row("isnet-imgly-medium").unwrap().download,
        RowDownload::Available { host, .. } if host.starts_with("127.0.0.1:")
    ));

    manager.start_download("isnet-imgly-medium");
    assert!(matches!(
        manager.row("isnet-imgly-medium").unwrap().download,
        RowDownload::Running { .. }
    ));
    let events = manager.wait_idle(Duration::from_secs(300));
    let path = dirs.models_dir().join("isnet-imgly-medium.onnx");
    assert_eq!(
        events,
        vec![ManagerEvent::Installed {
            id: "isnet-imgly-medium".into(),
            path: path.clone()
        }]
    );
    assert_eq!(
        sha256_file(&path).unwrap(),
        "b6e8497ba978a6f5fbb647e419d2696cd80df5a23cb6a8ea532021911bd76acb"
    );
    let row = manager.row("isnet-imgly-medium").unwrap();
    assert_eq!(row.installed, Some((path, Location::User)));
    assert!(wakes.load(Ordering::SeqCst) >= 2, "the UI is woken");
    let log = server.log();
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[1].range.as_deref(), Some("bytes=50000000-"));

    // The small model comes from the same package: no second download.
    manager.start_download("isnet-imgly-small");
    let events = manager.wait_idle(Duration::from_secs(120));
    assert!(
        matches!(&events[..], [ManagerEvent::Installed { id, .. }] if id == "isnet-imgly-small"),
        "{events:?}"
    );
    assert_eq!(server.log().len(), 2);

    // Removing deletes the user's copy.
    assert_eq!(manager.remove("isnet-imgly-small"), Ok(true));
    assert!(!manager.is_installed("isnet-imgly-small"));
}

#[test]
fn both_models_of_one_package_asked_at_once_fetch_it_once() {
    let server = registry_with_the_real_package();
    server.throttle(Duration::from_micros(200));
    let home = tempfile::tempdir().unwrap();
    let dirs = AppDirs::under(home.path());
    let mut manager = ModelManager::new(dirs.clone(), Some(server.base.clone()), Arc::new(|| {}));
    manager.start_download("isnet-imgly-medium");
    manager.start_download("isnet-imgly-small");
    let mut events = manager.wait_idle(Duration::from_secs(300));
    events.sort_by_key(|e| format!("{e:?}"));
    assert!(
        matches!(
            &events[..],
            [ManagerEvent::Installed { id: a, .. }, ManagerEvent::Installed { id: b, .. }]
                if a == "isnet-imgly-medium" && b == "isnet-imgly-small"
        ),
        "{events:?}"
    );
    assert_eq!(
        server.log().len(),
        1,
        "one package download: {:?}",
        server.log()
    );
    assert_eq!(
        sha256_file(&dirs.models_dir().join("isnet-imgly-small.onnx")).unwrap(),
        "7001d60734fdc112dd9c062635fb59cd401fb82a9d4213134bce4dbd655c803a"
    );
}

#[test]
fn cli_models_download_list_and_remove() {
    let server = registry_with_the_real_package();
    let home = tempfile::tempdir().unwrap();
    let dirs = AppDirs::under(home.path());
    std::fs::create_dir_all(&dirs.config).unwrap();
    std::fs::write(
        dirs.config.join("settings.ron"),
        format!("(npm_registry: Some(\"{}\"))", server.base),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_backgrounderase"))
            .args(args)
            .env("BACKGROUNDERASE_HOME", home.path())
            .env_remove("BACKGROUNDERASE_MODEL_DIR")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = run(&["models", "download", "isnet-imgly-small"]);
    assert_eq!(code, Some(0), "{stderr}");
    let path = dirs.models_dir().join("isnet-imgly-small.onnx");
    assert!(stdout.contains(&path.display().to_string()), "{stdout}");
    assert_eq!(
        sha256_file(&path).unwrap(),
        "7001d60734fdc112dd9c062635fb59cd401fb82a9d4213134bce4dbd655c803a"
    );
    let (_, list, _) = run(&["models"]);
    let line = list
        .lines()
        .find(|l| l.starts_with("isnet-imgly-small"))
        .unwrap();
    assert!(
        line.contains("AGPL-3.0") && line.ends_with(&path.display().to_string()),
        "{line}"
    );

    let (code, _, stderr) = run(&["models", "download", "nope"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("unknown model 'nope'"), "{stderr}");

    let (code, stdout, _) = run(&["models", "remove", "isnet-imgly-small"]);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("deleted"), "{stdout}");
    assert!(!path.exists());
}

#[test]
fn imports_match_the_catalog_or_become_custom_models_that_run() {
    let (_home, installed) = common::fresh_profile();
    // A profile with the runtime but an empty models folder of its own.
    let home = tempfile::tempdir().unwrap();
    let dirs = AppDirs::under(home.path());
    std::fs::create_dir_all(&dirs.data).unwrap();
    std::os::unix::fs::symlink(
        std::fs::canonicalize(installed.runtime_dir()).unwrap(),
        dirs.runtime_dir(),
    )
    .unwrap();
    let catalog = ModelCatalog::builtin();

    // The real small model under another name is recognised by its checksum.
    let real = AppDirs::discover()
        .unwrap()
        .models_dir()
        .join("isnet-imgly-small.onnx");
    let renamed = home.path().join("downloaded (1).onnx");
    std::fs::copy(&real, &renamed).unwrap();
    let outcome = models::import_file(&renamed, &catalog, &dirs).unwrap();
    let target = dirs.models_dir().join("isnet-imgly-small.onnx");
    assert_eq!(
        outcome,
        ImportOutcome::Matched {
            id: "isnet-imgly-small".into(),
            path: target.clone()
        }
    );
    assert_eq!(
        sha256_file(&target).unwrap(),
        "7001d60734fdc112dd9c062635fb59cd401fb82a9d4213134bce4dbd655c803a"
    );

    // A file that is not a model is refused, naming it.
    let junk = home.path().join("notes.onnx");
    std::fs::write(&junk, b"not a model at all").unwrap();
    let text = models::import_file(&junk, &catalog, &dirs)
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("not an ONNX model") && text.ends_with("notes.onnx"),
        "{text}"
    );

    // An unknown model is inspected, not installed, until confirmed.
    let tiny = home.path().join("tiny.onnx");
    std::fs::write(&tiny, common::tiny_onnx_model()).unwrap();
    let ImportOutcome::Unrecognised(unknown) = models::import_file(&tiny, &catalog, &dirs).unwrap()
    else {
        panic!("the tiny model is not in the catalog")
    };
    assert_eq!(unknown.input, "image");
    assert_eq!(unknown.output, "alpha");
    assert_eq!(unknown.input_size, Some((64, 64)));
    assert!(models::profile_catalog(&dirs).models.len() == catalog.models.len());

    let entry =
        models::add_custom_model(&unknown, "Tiny test", CustomPreset::U2net, &dirs).unwrap();
    assert_eq!(entry.input_size, (64, 64));
    assert!(
        !entry.license.commercial_use,
        "an unknown licence is flagged"
    );
    let profile = models::profile_catalog(&dirs);
    assert_eq!(profile.get(&entry.id).unwrap().display_name, "Tiny test");

    // It runs: a bright square on black comes out opaque where it is bright.
    let mut engine = Engine::load(&dirs, &profile, Some(&entry.id), &SessionOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let photo = image::RgbaImage::from_fn(200, 100, |x, _| {
        if x < 100 {
            image::Rgba([250, 250, 250, 255])
        } else {
            image::Rgba([0, 0, 0, 255])
        }
    });
    let mask = engine.mask(&photo).unwrap();
    assert_eq!(mask.dimensions(), (200, 100));
    assert!(
        mask.get_pixel(20, 50)[0] > 200,
        "{:?}",
        mask.get_pixel(20, 50)
    );
    assert!(
        mask.get_pixel(180, 50)[0] < 50,
        "{:?}",
        mask.get_pixel(180, 50)
    );

    // Removing a custom model takes it out of the catalog too.
    assert!(models::remove_model(&entry, &dirs).unwrap());
    assert!(models::profile_catalog(&dirs).get(&entry.id).is_none());
}

/// The preview model comes inside a wheel on PyPI: the wheel is checked
/// against PyPI's sha256, the model taken out of it and checked against the
/// catalog; the cached wheel serves a second install with no request; a
/// wheel that is not the pinned one installs nothing and is not kept.
#[test]
fn a_model_inside_a_pypi_wheel_is_checked_extracted_and_installed() {
    use backgrounderase::models::catalog::ModelSource;
    let mut entry = ModelCatalog::builtin().get("u2netp").unwrap().clone();
    let ModelSource::PypiWheel { url, .. } = &mut entry.source else {
        panic!("u2netp comes from PyPI: {:?}", entry.source);
    };
    let name = url.rsplit('/').next().unwrap().to_owned();
    let cached = AppDirs::discover().unwrap().downloads_dir().join(&name);
    let wheel = std::fs::read(&cached).unwrap_or_else(|e| {
        panic!(
            "the cached wheel is needed (run `scripts/test`, whose setup fetches it): {e}: {}",
            cached.display()
        )
    });
    let server = FileServer::start();
    let at = format!("/packages/7c/c0/{name}");
    server.put(&at, wheel.clone(), "wheel-1");
    *url = server.url(&at);

    let home = tempfile::tempdir().unwrap();
    let dirs = AppDirs::under(home.path());
    let never = AtomicBool::new(false);
    let mut seen = Vec::new();
    let path = models::download_model(&entry, &dirs, "unused", &mut |p| seen.push(p), &never)
        .expect("installed");
    assert_eq!(path, dirs.models_dir().join("u2netp.onnx"));
    assert_eq!(
        sha256_file(&path).unwrap(),
        "309c8469258dda742793dce0ebea8e6dd393174f89934733ecc8b14c76f4ddd8"
    );
    assert_eq!(server.log().len(), 1);
    assert_eq!(seen.last().and_then(|p| p.total), Some(wheel.len() as u64));
    // It runs in the real engine.
    let engine = Engine::load(
        &dirs_with_runtime(&dirs),
        &ModelCatalog::builtin(),
        Some("u2netp"),
        &SessionOptions::default(),
    );
    let mut engine = engine.expect("u2netp loads");
    let photo = image::open(common::fixture("photos/chelsea.jpg"))
        .unwrap()
        .to_rgba8();
    let mask = engine.mask(&photo).unwrap();
    assert_eq!(mask.dimensions(), photo.dimensions());
    assert!(mask.pixels().any(|p| p[0] > 200) && mask.pixels().any(|p| p[0] < 30));

    std::fs::remove_file(&path).unwrap();
    models::download_model(&entry, &dirs, "unused", &mut |_| {}, &never).expect("from the cache");
    assert_eq!(server.log().len(), 1, "the cached wheel is used");

    // Another wheel at the same address (one byte changed): refused.
    let mut other = wheel;
    let middle = other.len() / 2;
    other[middle] ^= 0x55;
    server.put(&at, other, "wheel-2");
    let home = tempfile::tempdir().unwrap();
    let dirs = AppDirs::under(home.path());
    let err = models::download_model(&entry, &dirs, "unused", &mut |_| {}, &never)
        .expect_err("a wheel that is not the pinned one");
    assert!(err.to_string().contains("sha256"), "{err}");
    assert!(!dirs.models_dir().join("u2netp.onnx").exists());
    assert!(!dirs.downloads_dir().join(&name).exists());
}

/// `dirs` with the installed runtime linked in, so its engine can load.
fn dirs_with_runtime(dirs: &AppDirs) -> AppDirs {
    let runtime = dirs.runtime_dir();
    if !runtime.exists() {
        std::fs::create_dir_all(runtime.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(AppDirs::discover().unwrap().runtime_dir(), &runtime).unwrap();
    }
    dirs.clone()
}
