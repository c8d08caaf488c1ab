//! The `backgrounderase` binary, driven as a user would: real files, the real
//! runtime and model, exit codes and messages.

mod common;

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output};

use common::fixture;

fn cli() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_backgrounderase"));
    cmd.env_remove("ORT_DYLIB_PATH")
        .env_remove("BACKGROUNDERASE_HOME");
    cmd
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A decompression bomb: a PNG whose header claims 100000×100000 pixels,
/// with a small IDAT of deflated zeros (valid chunks and CRCs).
fn png_bomb() -> Vec<u8> {
    fn chunk(png: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        let mut crc = flate2::Crc::new();
        crc.update(&body);
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        png.extend_from_slice(&body);
        png.extend_from_slice(&crc.sum().to_be_bytes());
    }
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    let mut zeros = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut zeros, &vec![0u8; 1 << 20]).unwrap();
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(&mut png, b"IDAT", &zeros.finish().unwrap());
    chunk(&mut png, b"IEND", &[]);
    png
}

#[test]
fn hostile_inputs_fail_one_by_one_and_the_rest_are_done() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    fs::create_dir(&input).unwrap();
    let jpeg = fs::read(fixture("photos/chelsea.jpg")).unwrap();
    let photo = image::open(fixture("photos/chelsea.jpg")).unwrap();

    let bad: Vec<(PathBuf, &str)> = vec![
        (input.join("empty.jpg"), "empty"),
        (input.join("truncated.jpg"), "truncated"),
        (input.join("notes.png"), "unrecognised"),
        (input.join("bomb.png"), "100000×100000"),
        (input.join("huge.tif"), "over the 1024 MiB limit"),
        (input.join("tags.tif"), "claims"),
        (input.join("folder.jpg"), "not a regular file"),
    ];
    fs::write(&bad[0].0, b"").unwrap();
    fs::write(&bad[1].0, &jpeg[..jpeg.len() * 2 / 5]).unwrap();
    fs::write(&bad[2].0, "this is a text file with an image's name\n").unwrap();
    fs::write(&bad[3].0, png_bomb()).unwrap();
    // 2 GiB that take no disk (sparse): refused from its size, never read.
    fs::File::create(&bad[4].0)
        .unwrap()
        .set_len(2 << 30)
        .unwrap();
    // A TIFF whose tag claims more values than the file holds (found by
    // tests/fuzz.rs: the decoder used to reserve 134 MiB for it).
    fs::copy(
        fixture("../fuzz-regressions/image/tiff-tag-count-over-file-size.bin"),
        &bad[5].0,
    )
    .unwrap();
    fs::create_dir(&bad[6].0).unwrap();

    let mut good = vec![
        fixture("photos/chelsea.jpg"),
        fixture("odd/cmyk.jpg"),
        fixture("odd/palette.png"),
        fixture("objects/bear.png"),
    ];
    let grey = input.join("grey.png");
    photo.to_luma8().save(&grey).unwrap();
    let deep = input.join("deep16.png");
    image::DynamicImage::ImageRgb16(photo.to_rgb16())
        .save(&deep)
        .unwrap();
    good.extend([grey, deep]);
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let latin1 = input.join(std::ffi::OsStr::from_bytes(b"caf\xe9.jpg"));
        fs::write(&latin1, &jpeg).unwrap();
        good.push(latin1);
    }

    // Bad files interleaved with good ones: none may disturb its neighbours.
    let mut args: Vec<PathBuf> = Vec::new();
    for (i, g) in good.iter().enumerate() {
        args.push(g.clone());
        if let Some((b, _)) = bad.get(i) {
            args.push(b.clone());
        }
    }
    let out = dir.path().join("out");
    let output = cli()
        .arg("remove")
        .args(&args)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for (path, reason) in &bad {
        let line = stderr
            .lines()
            .find(|l| l.ends_with(&path.display().to_string()))
            .unwrap_or_else(|| panic!("no error line for {}:\n{stderr}", path.display()));
        assert!(line.starts_with("error: "), "{line}");
        assert!(line.contains(reason), "{line}");
    }
    assert!(
        stderr.contains(&format!(
            "{} of {} images done, {} failed",
            good.len(),
            good.len() + bad.len(),
            bad.len()
        )),
        "{stderr}"
    );
    for g in &good {
        let mut name = g.file_stem().unwrap().to_os_string();
        name.push(".png");
        let result =
            image::open(out.join(&name)).unwrap_or_else(|e| panic!("{}: {e}", g.display()));
        let source = image::open(g).unwrap();
        assert_eq!(
            (result.width(), result.height()),
            (source.width(), source.height())
        );
    }
}

#[test]
fn one_input_to_a_jpeg_on_a_chosen_background() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cat.jpg");
    let output = cli()
        .args([
            "remove",
            "--format",
            "jpeg",
            "--bg",
            "#00ff00",
            "--provider",
            "cpu",
        ])
        .arg(fixture("photos/coffee.jpg"))
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    let (_, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("on CPU"),
        "the provider in use is reported: {stderr}"
    );
    let result = image::open(&out).unwrap().to_rgb8();
    assert_eq!(result.dimensions(), (600, 400));
    // The table in the corners is background now: green.
    let corner = result.get_pixel(5, 395).0;
    assert!(
        corner[1] > 200 && corner[0] < 60 && corner[2] < 60,
        "{corner:?}"
    );
}

#[test]
fn require_gpu_fails_clearly_on_a_cpu_only_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let output = cli()
        .args(["remove", "--require-gpu"])
        .arg(fixture("photos/coffee.jpg"))
        .arg("-o")
        .arg(dir.path().join("x.png"))
        .output()
        .unwrap();
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("GPU execution provider unavailable") && stderr.contains("CUDA"),
        "{stderr}"
    );
    assert!(!dir.path().join("x.png").exists());
}

#[test]
fn a_missing_runtime_is_explained_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere/libonnxruntime.so");
    let output = cli()
        .env("ORT_DYLIB_PATH", &missing)
        .arg("remove")
        .arg(fixture("photos/coffee.jpg"))
        .arg("-o")
        .arg(dir.path().join("x.png"))
        .output()
        .unwrap();
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("ORT_DYLIB_PATH") && stderr.contains(&missing.display().to_string()),
        "{stderr}"
    );
}

#[test]
fn a_model_that_is_not_installed_says_how_to_get_it() {
    let home = tempfile::tempdir().unwrap();
    for (model, hint) in [
        (
            "isnet-imgly-small",
            "backgrounderase setup --model isnet-imgly-small",
        ),
        (
            "u2net",
            "https://github.com/danielgatis/rembg/releases/download/v0.0.0/u2net.onnx",
        ),
    ] {
        let output = cli()
            .env("BACKGROUNDERASE_HOME", home.path())
            .args(["remove", "--model", model])
            .arg(fixture("photos/coffee.jpg"))
            .arg("-o")
            .arg(home.path().join("x.png"))
            .output()
            .unwrap();
        let (_, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("not installed") && stderr.contains(hint),
            "{stderr}"
        );
    }
    let output = cli()
        .args(["remove", "--model", "nope", "a.jpg", "-o", "b.png"])
        .output()
        .unwrap();
    let (_, stderr) = text(&output);
    assert!(
        stderr.contains("unknown model 'nope'") && stderr.contains("isnet-imgly-medium"),
        "{stderr}"
    );
}

#[test]
fn models_lists_the_catalog_and_what_is_installed() {
    let output = cli().arg("models").output().unwrap();
    let (stdout, _) = text(&output);
    assert!(output.status.success());
    for id in [
        "isnet-imgly-medium",
        "isnet-imgly-small",
        "isnet-general-use",
        "u2net",
        "u2netp",
        "silueta",
        "birefnet-general-lite",
    ] {
        assert!(stdout.contains(id), "{id} missing:\n{stdout}");
    }
    let default_line = stdout
        .lines()
        .find(|l| l.starts_with("isnet-imgly-medium*"))
        .unwrap();
    assert!(
        default_line.ends_with("isnet-imgly-medium.onnx"),
        "installed path shown: {default_line}"
    );
}

#[test]
fn help_lists_the_subcommands() {
    let output = cli().arg("--help").output().unwrap();
    let (stdout, _) = text(&output);
    assert!(output.status.success());
    assert!(
        stdout.contains("remove") && stdout.contains("models") && stdout.contains("setup"),
        "{stdout}"
    );
}

#[test]
fn without_a_display_the_app_explains_instead_of_crashing() {
    let runtime_dir = tempfile::tempdir().unwrap();
    let output = cli()
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env("XDG_RUNTIME_DIR", runtime_dir.path())
        .output()
        .unwrap();
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("cannot open the window") && stderr.contains("--help"),
        "{stderr}"
    );
}

#[test]
fn setup_is_idempotent_and_offline_once_installed() {
    // The README's test command ran setup already; a second run must find
    // everything in place and touch no network (PATH without pip or npm).
    let output = cli()
        .arg("setup")
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stdout.contains("ONNX Runtime: already installed"),
        "{stdout}"
    );
    assert!(
        stdout.contains("model isnet-imgly-medium: already installed"),
        "{stdout}"
    );
}

#[test]
fn privacy_status_opt_in_opt_out_and_purge() {
    let home = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let output = cli()
            .env("BACKGROUNDERASE_HOME", home.path())
            .arg("privacy")
            .args(args)
            .output()
            .unwrap();
        let (stdout, stderr) = text(&output);
        assert!(output.status.success(), "{stderr}");
        stdout
    };
    let status = run(&["status"]);
    assert!(status.starts_with("opted out\n"), "{status}");
    assert!(
        status.contains("stored: 0 items, 0.0 MB") && status.contains("queued uploads: 0"),
        "{status}"
    );
    assert!(run(&["opt-in"]).starts_with("opted in\n"));
    assert!(run(&["status"]).starts_with("opted in\n"), "persisted");
    assert!(run(&["opt-out"]).starts_with("opted out\n"));
    assert!(run(&["purge"]).contains("deleted 0 stored items"));
    let ledger = fs::read_to_string(home.path().join("config/consent-ledger.ron")).unwrap();
    assert_eq!(ledger.lines().count(), 2, "{ledger}");
}

#[test]
fn remove_works_with_no_network_at_all() {
    // `unshare -n`: a fresh network namespace, not even loopback up.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cutout.png");
    let output = Command::new("unshare")
        .arg("-n")
        .arg(env!("CARGO_BIN_EXE_backgrounderase"))
        .arg("remove")
        .arg(fixture("photos/chelsea.jpg"))
        .arg("-o")
        .arg(&out)
        .output()
        .expect("unshare (util-linux) is required");
    let (_, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    let result = image::open(&out).unwrap().to_rgba8();
    assert!(result.pixels().any(|p| p[3] == 0), "a real cut-out");
    assert!(result.pixels().any(|p| p[3] == 255));
}

/// The designer settings from the command line give exactly the pixels the
/// library's finishing step gives (the one the app's export and batch use):
/// the same model mask, shifted, feathered, decontaminated, cropped to the
/// subject on a square canvas with a shadow.
#[test]
fn remove_with_designer_flags_matches_the_library_pixel_for_pixel() {
    use backgrounderase::engine::decode::{DecodeLimits, decode_file};
    use backgrounderase::engine::finish::{FinishSettings, render};
    use backgrounderase::engine::layout::{Canvas, LayoutSettings, Margin, Shadow};
    use backgrounderase::engine::refine::EdgeSettings;

    let out = tempfile::tempdir().unwrap();
    let photo = fixture("photos/chelsea.jpg");
    let target = out.path().join("cat.png");
    let output = cli()
        .args(["remove", "--despill", "--feather", "2", "--shift", "-1"])
        .args(["--crop-margin", "5%", "--canvas", "1:1", "--shadow"])
        .arg(&photo)
        .arg("-o")
        .arg(&target)
        .output()
        .unwrap();
    let (_, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    let produced = image::open(&target).unwrap().to_rgba8();
    assert_eq!(produced.width(), produced.height(), "square canvas");

    let settings = FinishSettings {
        edges: EdgeSettings {
            shift: -1,
            feather: 2.0,
            despill: true,
        },
        layout: LayoutSettings {
            crop_margin: Some(Margin::Percent(5.0)),
            canvas: Canvas::Ratio(1, 1),
            subject_fill: None,
            max_side: None,
            shadow: Some(Shadow::default()),
        },
    };
    let image = decode_file(&photo, DecodeLimits::default()).unwrap().rgba;
    let mask = common::engine().mask(&image).unwrap();
    let (colours, alpha) = render(&image, &mask, &[], &settings).unwrap();
    assert_eq!(produced.dimensions(), colours.dimensions());
    let mut worst = 0u8;
    for ((p, c), a) in produced.pixels().zip(colours.pixels()).zip(alpha.pixels()) {
        worst = worst.max(p[3].abs_diff(a[0]));
        if a[0] > 0 {
            for k in 0..3 {
                worst = worst.max(p[k].abs_diff(c[k]));
            }
        }
    }
    assert!(worst <= 1, "largest difference {worst}");
}

#[test]
fn batch_takes_the_designer_flags_too() {
    let input = tempfile::tempdir().unwrap();
    fs::copy(
        fixture("photos/coffee.jpg"),
        input.path().join("coffee.jpg"),
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let output = cli()
        .arg("batch")
        .arg(input.path())
        .arg("-o")
        .arg(out.path())
        .args([
            "--crop-margin",
            "40px",
            "--canvas",
            "4:5",
            "--model",
            "isnet-imgly-small",
        ])
        .output()
        .unwrap();
    let (_, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    let (w, h) = image::image_dimensions(out.path().join("coffee.png")).unwrap();
    // 4:5 to the pixel (the longer side is rounded up).
    assert!(
        (i64::from(w) * 5 - i64::from(h) * 4).abs() < 5,
        "{w}x{h} is not 4:5"
    );
    let bad = cli()
        .args(["batch", "x", "-o", "y", "--canvas", "wide"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad).1.contains("is not a canvas"), "{}", text(&bad).1);
}

#[test]
fn a_layout_over_the_export_limit_fails_that_image_by_name_and_the_rest_go_on() {
    let out = tempfile::tempdir().unwrap();
    let photos = [fixture("photos/chelsea.jpg"), fixture("photos/coffee.jpg")];
    // A 20,000 px margin on every side: a crop of about 40,000² px (1.6 GP)
    // that must be refused before it is allocated.
    let output = cli()
        .arg("remove")
        .args(&photos)
        .arg("-o")
        .arg(out.path())
        .args(["--crop-margin", "20000px", "--model", "isnet-imgly-small"])
        .output()
        .unwrap();
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for photo in &photos {
        let line = stderr
            .lines()
            .find(|l| l.ends_with(&photo.display().to_string()))
            .unwrap_or_else(|| panic!("no error line for {}:\n{stderr}", photo.display()));
        assert!(line.contains("over the 100 MP limit"), "{line}");
    }
    // Arguments out of range are refused before any work, naming the flag.
    for (flag, value, says) in [
        ("--crop-margin", "20001px", "is not a margin"),
        ("--crop-margin", "1001%", "is not a margin"),
        ("--canvas", "1:1000", "is not a canvas"),
        ("--canvas", "20000x20000", "is not a canvas"),
        ("--shift", "501", "--shift takes"),
        ("--feather", "NaN", "--feather takes"),
    ] {
        let bad = cli()
            .arg("remove")
            .arg(&photos[0])
            .arg("-o")
            .arg(out.path())
            .args([flag, value])
            .output()
            .unwrap();
        let (_, stderr) = text(&bad);
        assert!(!bad.status.success(), "{flag} {value} was accepted");
        assert!(stderr.contains(says), "{flag} {value}: {stderr}");
    }
}

#[test]
fn remove_at_best_quality_matches_the_library_and_a_bad_quality_is_refused() {
    use backgrounderase::engine::decode::{DecodeLimits, decode_file};
    use backgrounderase::engine::quality::Quality;

    let out = tempfile::tempdir().unwrap();
    let photo = fixture("photos/coffee.jpg");
    let target = out.path().join("coffee.png");
    let output = cli()
        .args(["remove", "--quality", "best"])
        .arg(&photo)
        .arg("-o")
        .arg(&target)
        .output()
        .unwrap();
    let (_, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("second opinion"), "{stderr}");
    let produced = image::open(&target).unwrap().to_rgba8();
    let image = decode_file(&photo, DecodeLimits::default()).unwrap().rgba;
    let (best, _) = common::engine().mask_at(&image, Quality::Best).unwrap();
    let standard = common::engine().mask(&image).unwrap();
    let worst = produced
        .pixels()
        .zip(best.pixels())
        .map(|(p, a)| p[3].abs_diff(a[0]))
        .max()
        .unwrap();
    assert!(
        worst <= 1,
        "largest alpha difference from the library: {worst}"
    );
    assert_ne!(best, standard, "best quality changed nothing");

    let bad = cli()
        .args(["remove", "--quality", "ultra", "x.jpg", "-o", "y.png"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let (_, stderr) = text(&bad);
    assert!(
        stderr.contains("ultra") && stderr.contains("standard or best"),
        "{stderr}"
    );
}

/// Best quality without its second opinion's model (u2netp) still makes
/// the cut-out, says what it lacks and how to add it, and downloads nothing;
/// standard quality has nothing to say about it.
#[test]
fn best_quality_without_its_second_opinion_says_so_and_still_works() {
    let (home, dirs) = common::fresh_profile();
    std::fs::remove_file(dirs.models_dir().join("u2netp.onnx")).unwrap();
    let out = tempfile::tempdir().unwrap();
    for quality in ["best", "standard"] {
        let target = out.path().join(format!("coffee-{quality}.png"));
        let output = cli()
            .env("BACKGROUNDERASE_HOME", home.path())
            .args(["remove", "--quality", quality])
            .arg(fixture("photos/coffee.jpg"))
            .arg("-o")
            .arg(&target)
            .output()
            .unwrap();
        let (_, stderr) = text(&output);
        assert!(output.status.success(), "{stderr}");
        assert!(target.is_file());
        let noted = stderr.contains("without its second opinion (u2netp");
        assert_eq!(noted, quality == "best", "{quality}: {stderr}");
        if noted {
            assert!(
                stderr.contains("backgrounderase models download u2netp"),
                "{stderr}"
            );
        }
    }
    assert!(!dirs.models_dir().join("u2netp.onnx").exists());
}

/// A marketplace spec from the command line: a square canvas where the
/// subject fills 80 % (its longer extent, centred), capped at 400 px; out
/// of range values are refused with what is allowed.
#[test]
fn subject_fill_and_max_size_make_a_marketplace_frame() {
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("cup.png");
    let output = cli()
        .args([
            "remove",
            "--canvas",
            "1:1",
            "--subject-fill",
            "80",
            "--max-size",
            "400",
        ])
        .arg(fixture("photos/coffee.jpg"))
        .arg("-o")
        .arg(&target)
        .output()
        .unwrap();
    let (_, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    let produced = image::open(&target).unwrap().to_rgba8();
    assert_eq!(produced.dimensions(), (400, 400));
    // The subject's box at half opacity.
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for (x, y, p) in produced.enumerate_pixels() {
        if p[3] >= 128 {
            (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x + 1), y1.max(y + 1));
        }
    }
    let longer = (x1 - x0).max(y1 - y0);
    assert!(
        (310..=330).contains(&longer),
        "subject spans {longer} of 400 px"
    );
    let (cx, cy) = (i64::from(x0 + x1), i64::from(y0 + y1));
    assert!(
        (cx - 400).abs() <= 6 && (cy - 400).abs() <= 6,
        "centre ({cx}, {cy})/2"
    );

    for (flag, value, words) in [
        ("--subject-fill", "0", "write 1 to 100"),
        ("--subject-fill", "most", "is not a percentage"),
        ("--max-size", "5", "write 16 to 20000"),
    ] {
        let bad = cli()
            .args(["remove", "x.jpg", "-o", "y.png", flag, value])
            .output()
            .unwrap();
        assert_eq!(bad.status.code(), Some(2));
        assert!(text(&bad).1.contains(words), "{}", text(&bad).1);
    }
}

/// Export presets from the command line: the built-in specs are listed and
/// shown, `--preset` (a unique start of the name is enough) makes the
/// marketplace frame, a user's own preset from `presets.ron` in the config
/// folder is found, and a clash with an option the preset sets, or an
/// unknown name, is a clear error.
#[test]
fn presets_are_listed_shown_and_used_by_remove_and_batch() {
    let config = tempfile::tempdir().unwrap();
    let with_config = || {
        let mut cmd = cli();
        cmd.env("XDG_CONFIG_HOME", config.path());
        cmd
    };
    let list = with_config().args(["presets", "list"]).output().unwrap();
    let (stdout, stderr) = text(&list);
    assert!(list.status.success(), "{stderr}");
    for name in [
        "Marketplace: white, square 2000 px, subject fills 85 %",
        "Transparent PNG, full size",
        "Social 4:5 1080×1350",
    ] {
        assert!(stdout.contains(name), "{stdout}");
    }
    let show = with_config()
        .args(["presets", "show", "marketplace"])
        .output()
        .unwrap();
    let (stdout, _) = text(&show);
    assert!(stdout.contains("subject_fill: Some(85.0)"), "{stdout}");

    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("cup.jpg");
    let made = with_config()
        .args(["remove", "--preset", "market"])
        .arg(fixture("photos/coffee.jpg"))
        .arg("-o")
        .arg(&target)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", text(&made).1);
    let jpeg = image::open(&target).unwrap().to_rgb8();
    assert_eq!(jpeg.dimensions(), (2000, 2000));
    assert_eq!(jpeg.get_pixel(5, 5).0, [255, 255, 255], "white around");

    // A preset of the user's own, used by batch (its pattern too).
    let mine = config.path().join("backgrounderase");
    fs::create_dir_all(&mine).unwrap();
    fs::write(
        mine.join("presets.ron"),
        r#"[(name: "Catalogue WebP", format: Webp, pattern: "{name}-cat.{ext}",
             finish: (layout: (canvas: Ratio(1, 1), max_side: Some(300))))]"#,
    )
    .unwrap();
    let input = tempfile::tempdir().unwrap();
    fs::copy(fixture("photos/coffee.jpg"), input.path().join("cup.jpg")).unwrap();
    let batch_out = out.path().join("batch");
    let run = with_config()
        .args(["batch", "--preset", "catalogue webp"])
        .arg(input.path())
        .arg("-o")
        .arg(&batch_out)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", text(&run).1);
    let made = batch_out.join("cup-cat.webp");
    assert_eq!(image::image_dimensions(&made).unwrap(), (300, 300));

    let clash = with_config()
        .args([
            "remove", "x.jpg", "-o", "y.png", "--preset", "market", "--canvas", "1:1",
        ])
        .output()
        .unwrap();
    assert_eq!(clash.status.code(), Some(2));
    assert!(
        text(&clash).1.contains("cannot be used with"),
        "{}",
        text(&clash).1
    );
    let unknown = with_config()
        .args(["presets", "show", "billboard"])
        .output()
        .unwrap();
    assert!(!unknown.status.success());
    assert!(
        text(&unknown).1.contains("no preset is called 'billboard'"),
        "{}",
        text(&unknown).1
    );
}
