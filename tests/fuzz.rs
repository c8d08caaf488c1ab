//! A deterministic, seeded mutation fuzzer over every parser of outside
//! input: the image decoder (JPEG, PNG, WebP, GIF, BMP, TIFF seeds made from
//! the test photos), the model importer (ONNX graphs), and the files the app
//! reads back (settings, consent ledger, store index, custom model list,
//! catalog). Each input must give a result or an error that names it —
//! never a panic, never a single allocation over the limit under test (a
//! counting global allocator).
//!
//! Budget: `FUZZ_SECONDS` (default 60, as in CI), seed: `FUZZ_SEED`. Inputs
//! that once failed live in `tests/fuzz-regressions/<target>/` and are
//! replayed first; a new failure is written to the target folder's
//! `fuzz-crashes/` for adding there.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use backgrounderase::engine::decode::{DecodeLimits, decode_bytes, decode_file};
use image::{DynamicImage, ImageFormat};
use onnx_protobuf::{Message, ModelProto};

/// The largest single allocation since the last reset.
static LARGEST: AtomicUsize = AtomicUsize::new(0);

struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The pixel limit the decoder runs under here: small, so that a header
/// lying its way up to the limit costs milliseconds, not a second.
const FUZZ_MAX_PIXELS: u64 = 4_000_000;
/// What decoding may allocate at once under that limit: the decoder's own
/// budget (8 bytes per allowed pixel plus 64 MiB, see `decode.rs`).
const IMAGE_ALLOC_LIMIT: usize = FUZZ_MAX_PIXELS as usize * 8 + (64 << 20);
/// Settings parsing of inputs of a few KiB.
const TEXT_ALLOC_LIMIT: usize = 64 << 20;
/// The ONNX (protobuf) parser reserves room for up to 10 M elements of a
/// packed field before reading it (its own OOM guard): 80 MB for int64s.
const ONNX_ALLOC_LIMIT: usize = 96 << 20;

/// SplitMix64: small, fast, and the same sequence everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// One mutation of `input`, drawn from bit flips, interesting bytes and
/// integers, chunk splices from another seed, and length edits.
fn mutate(rng: &mut Rng, input: &[u8], seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut out = input.to_vec();
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        let len = out.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                out[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                out[i] = [0x00, 0xFF, 0x7F, 0x80, 0x01, 0xFE][rng.below(6)];
            }
            2 if len >= 4 => {
                // A length or dimension field set to something huge.
                let i = rng.below(len - 3);
                let value: u32 =
                    [0xFFFF_FFFF, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF, 0x1_0000, 0][rng.below(6)];
                let bytes = if rng.below(2) == 0 {
                    value.to_be_bytes()
                } else {
                    value.to_le_bytes()
                };
                out[i..i + 4].copy_from_slice(&bytes);
            }
            3 if len > 1 => out.truncate(rng.below(len)),
            4 => {
                let other = &seeds[rng.below(seeds.len())];
                if !other.is_empty() {
                    let from = rng.below(other.len());
                    let n = 1 + rng.below((other.len() - from).min(256));
                    let at = rng.below(len + 1);
                    out.splice(at..at, other[from..from + n].iter().copied());
                }
            }
            5 if len > 0 => {
                let from = rng.below(len);
                let n = 1 + rng.below((len - from).min(64));
                let copy: Vec<u8> = out[from..from + n].to_vec();
                let at = rng.below(len + 1);
                out.splice(at..at, copy);
            }
            6 if len > 0 => {
                let from = rng.below(len);
                let n = 1 + rng.below((len - from).min(64));
                out.drain(from..from + n);
            }
            _ => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(16);
                let noise: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                out.splice(at..at, noise);
            }
        }
    }
    out
}

/// What a target does with one input; `Err` is a broken rule (not an error
/// the input deserves, which is fine).
type Check = fn(&[u8], &Path) -> Result<(), String>;

struct Target {
    name: &'static str,
    seeds: Vec<Vec<u8>>,
    check: Check,
    alloc_limit: usize,
    share: f64,
}

fn image_seeds() -> Vec<Vec<u8>> {
    let photo = image::open(common::fixture("photos/chelsea.jpg")).unwrap();
    let small = photo.thumbnail(48, 36);
    let object = image::open(common::fixture("objects/bear.png"))
        .unwrap()
        .thumbnail(40, 40);
    let mut seeds = Vec::new();
    for (img, formats) in [
        (
            &small,
            &[
                ImageFormat::Jpeg,
                ImageFormat::Png,
                ImageFormat::Bmp,
                ImageFormat::Tiff,
                ImageFormat::Gif,
            ][..],
        ),
        (
            &object,
            &[
                ImageFormat::Png,
                ImageFormat::WebP,
                ImageFormat::Tiff,
                ImageFormat::Gif,
            ][..],
        ),
    ] {
        for &format in formats {
            let img: DynamicImage = if format == ImageFormat::Jpeg {
                DynamicImage::ImageRgb8(img.to_rgb8())
            } else {
                img.clone()
            };
            let mut out = Cursor::new(Vec::new());
            img.write_to(&mut out, format).unwrap();
            seeds.push(out.into_inner());
        }
    }
    // Real files as they come: a CMYK JPEG and a palette PNG.
    seeds.push(std::fs::read(common::fixture("odd/cmyk.jpg")).unwrap());
    seeds.push(std::fs::read(common::fixture("odd/palette.png")).unwrap());
    seeds
}

fn check_image(bytes: &[u8], name: &Path) -> Result<(), String> {
    let limits = DecodeLimits {
        max_pixels: FUZZ_MAX_PIXELS,
    };
    match decode_bytes(bytes, name, limits) {
        Ok(decoded) => {
            let pixels = u64::from(decoded.width()) * u64::from(decoded.height());
            if pixels > FUZZ_MAX_PIXELS {
                return Err(format!("decoded {pixels} pixels, over the limit"));
            }
            Ok(())
        }
        Err(e) if e.to_string().ends_with(&name.display().to_string()) => Ok(()),
        Err(e) => Err(format!("an error that does not name the input: {e}")),
    }
}

/// Graphs as an importer sees them: an image input, a few operators, a
/// weight, an attribute (the custom-import test's model among them).
fn onnx_seeds() -> Vec<Vec<u8>> {
    use common::onnx_value as value;
    use onnx_protobuf::{GraphProto, NodeProto, OperatorSetIdProto, TensorProto};
    let node = |op: &str, inputs: &[&str], output: &str| {
        let mut n = NodeProto::new();
        n.op_type = op.into();
        n.input = inputs.iter().map(|s| s.to_string()).collect();
        n.output = vec![output.into()];
        n.name = format!("{op}_{output}");
        n
    };
    let mut seeds = Vec::new();
    for side in [32i64, 320] {
        let mut weight = TensorProto::new();
        weight.name = "w".into();
        weight.dims = vec![1, 3, 1, 1];
        weight.data_type = 1;
        weight.float_data = vec![0.3, 0.6, 0.1];
        let mut graph = GraphProto::new();
        graph.name = "tiny".into();
        graph.input.push(value("image", &[1, 3, side, side]));
        graph.output.push(value("mask", &[1, 1, side, side]));
        graph.initializer.push(weight);
        graph.node.push(node("Conv", &["image", "w"], "c"));
        graph.node.push(node("Sigmoid", &["c"], "mask"));
        let mut model = ModelProto::new();
        model.ir_version = 8;
        let mut opset = OperatorSetIdProto::new();
        opset.version = 17;
        model.opset_import.push(opset);
        model.graph = Some(graph).into();
        seeds.push(model.write_to_bytes().unwrap());
    }
    seeds.push(common::tiny_onnx_model());
    seeds
}

fn check_onnx(bytes: &[u8], name: &Path) -> Result<(), String> {
    match backgrounderase::models::inspect_graph_bytes(bytes, name) {
        Ok(info) => match info.input_size {
            Some((w, h)) if !(16..=4096).contains(&w) || !(16..=4096).contains(&h) => {
                Err(format!("accepted an input of {w}×{h}"))
            }
            _ => Ok(()),
        },
        Err(e) if e.to_string().ends_with(&name.display().to_string()) => Ok(()),
        Err(e) => Err(format!("an error that does not name the input: {e}")),
    }
}

fn settings_seeds() -> Vec<Vec<u8>> {
    let catalog = include_str!("../models/catalog.ron");
    vec![
        b"(schema_version: 1, opted_in: false, upload_url: None, npm_registry: None)".to_vec(),
        b"(opted_in: true)".to_vec(),
        br#"(next_id: 3, high_water: "2026-12-01T10:00:00Z", items: [(id: 1, kind: Original, label: "a.jpg", created: "2026-12-01T09:00:00Z", size: 10)])"#.to_vec(),
        br#"(at: "2026-12-01T10:00:00Z", opted_in: false, source: "account page")"#.to_vec(),
        catalog.as_bytes().to_vec(),
        format!(
            "[(id: \"custom-{0}\", display_name: \"x\", description: \"\", file: \"custom-{0}.onnx\", source: Imported, \
             checksum: Sha256(\"{0}{1}\"), size_bytes: Some(5), license: (name: \"u\", commercial_use: false, note: \"\"), \
             input_size: (320, 320), input: None, output: None, normalization: (mean: (0.0, 0.0, 0.0), std: (1.0, 1.0, 1.0)), \
             postprocess: Sigmoid)]",
            "0123456789ab",
            "c".repeat(52)
        )
        .into_bytes(),
    ]
}

/// The same bytes as each of the app's own files, read back the way the app
/// reads them at start-up.
fn check_settings(bytes: &[u8], _name: &Path) -> Result<(), String> {
    use backgrounderase::paths::AppDirs;
    use backgrounderase::privacy::store::{RetentionStore, SystemClock};
    use backgrounderase::privacy::{ledger, settings};
    let home = tempfile::tempdir().map_err(|e| e.to_string())?;
    let dirs = AppDirs::under(home.path());
    for dir in [&dirs.config, &dirs.data, &dirs.models_dir()] {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    std::fs::write(dirs.config.join(settings::SETTINGS_FILE), bytes).map_err(|e| e.to_string())?;
    std::fs::write(ledger::ledger_path(&dirs.config), bytes).map_err(|e| e.to_string())?;
    std::fs::write(
        dirs.models_dir()
            .join(backgrounderase::models::CUSTOM_MODELS_FILE),
        bytes,
    )
    .map_err(|e| e.to_string())?;
    let _ = settings::load(&dirs.config, chrono::Utc::now());
    let _ = settings::opted_in_on_disk(&dirs.config);
    let _ = ledger::read(&dirs.config);
    let catalog = backgrounderase::models::profile_catalog(&dirs);
    for m in &catalog.models {
        if m.id.starts_with("custom-") {
            backgrounderase::models::check_custom_entry(m)?;
        }
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        let _ = backgrounderase::models::catalog::ModelCatalog::parse(text);
    }
    let store_dir = dirs.data.join("store");
    std::fs::create_dir_all(&store_dir).map_err(|e| e.to_string())?;
    std::fs::write(store_dir.join("index.ron"), bytes).map_err(|e| e.to_string())?;
    if let Ok(store) = RetentionStore::open(&store_dir, std::sync::Arc::new(SystemClock)) {
        let _ = store.list();
    }
    Ok(())
}

fn regressions_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-regressions")
        .join(target)
}

/// Runs one input; a panic, a broken rule or an allocation over the limit
/// comes back as the failure's description.
fn run_one(target: &Target, bytes: &[u8], name: &Path) -> Option<String> {
    LARGEST.store(0, Ordering::Relaxed);
    let outcome = catch_unwind(AssertUnwindSafe(|| (target.check)(bytes, name)));
    let largest = LARGEST.load(Ordering::Relaxed);
    match outcome {
        Err(panic) => Some(format!(
            "panic: {}",
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        )),
        Ok(Err(broken)) => Some(broken),
        Ok(Ok(())) if largest > target.alloc_limit => Some(format!(
            "allocated {} MiB at once, over the {} MiB limit",
            largest >> 20,
            target.alloc_limit >> 20
        )),
        Ok(Ok(())) => None,
    }
}

#[test]
fn every_parser_of_outside_input_survives_mutation() {
    let budget = Duration::from_secs_f64(
        std::env::var("FUZZ_SECONDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(60.0),
    );
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5EED_2026);
    // Panics are caught and reported per input; keep the log readable.
    std::panic::set_hook(Box::new(|_| {}));

    let targets = [
        Target {
            name: "image",
            seeds: image_seeds(),
            check: check_image,
            alloc_limit: IMAGE_ALLOC_LIMIT,
            share: 0.6,
        },
        Target {
            name: "onnx",
            seeds: onnx_seeds(),
            check: check_onnx,
            alloc_limit: ONNX_ALLOC_LIMIT,
            share: 0.2,
        },
        Target {
            name: "settings",
            seeds: settings_seeds(),
            check: check_settings,
            alloc_limit: TEXT_ALLOC_LIMIT,
            share: 0.2,
        },
    ];
    let crashes = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-crashes");
    let mut failures = Vec::new();
    let mut report = Vec::new();
    for target in &targets {
        // The seeds and the inputs that once broke a rule come first.
        let mut replayed = 0;
        let mut fixed: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(regressions_dir(target.name))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter_map(|p| std::fs::read(&p).ok().map(|b| (p, b)))
            .collect();
        fixed.sort();
        for (path, bytes) in fixed.iter().map(|(p, b)| (p.clone(), b.clone())).chain(
            target
                .seeds
                .iter()
                .enumerate()
                .map(|(i, b)| (PathBuf::from(format!("seed-{i}")), b.clone())),
        ) {
            replayed += 1;
            if let Some(why) = run_one(target, &bytes, &path) {
                failures.push(format!("{} {}: {why}", target.name, path.display()));
            }
        }
        // Then mutations, for the target's share of the budget.
        let mut rng = Rng(seed ^ (target.name.len() as u64 * 0x1000_0001));
        let started = Instant::now();
        let mut runs = 0u64;
        while started.elapsed() < budget.mul_f64(target.share) {
            let base = &target.seeds[rng.below(target.seeds.len())];
            let input = mutate(&mut rng, base, &target.seeds);
            let name = PathBuf::from(format!("fuzz/{}-{seed}-{runs}.bin", target.name));
            runs += 1;
            if let Some(why) = run_one(target, &input, &name) {
                let _ = std::fs::create_dir_all(&crashes);
                let saved = crashes.join(format!("{}-{seed}-{runs}.bin", target.name));
                let _ = std::fs::write(&saved, &input);
                failures.push(format!(
                    "{}: {why} (input saved as {})",
                    target.name,
                    saved.display()
                ));
                if failures.len() > 20 {
                    break;
                }
            }
            // Now and then the file path too: size check, bounded read.
            if runs.is_multiple_of(64) && target.name == "image" {
                let dir = tempfile::tempdir().unwrap();
                let file = dir.path().join("input.img");
                std::fs::write(&file, &input).unwrap();
                LARGEST.store(0, Ordering::Relaxed);
                let outcome = catch_unwind(|| {
                    decode_file(
                        &file,
                        DecodeLimits {
                            max_pixels: FUZZ_MAX_PIXELS,
                        },
                    )
                });
                match outcome {
                    Err(_) => {
                        failures.push(format!("image (from a file): panic on {}", name.display()))
                    }
                    Ok(Err(e)) if !e.to_string().ends_with(&file.display().to_string()) => {
                        failures.push(format!("image (from a file): unnamed error {e}"))
                    }
                    _ => {}
                }
            }
        }
        let secs = started.elapsed().as_secs_f64();
        report.push(format!(
            "{}: {replayed} replayed, {runs} mutated inputs in {secs:.1} s ({:.0}/s)",
            target.name,
            runs as f64 / secs.max(1e-9)
        ));
    }
    let _ = std::panic::take_hook();
    for line in &report {
        eprintln!("fuzz {line}");
    }
    assert!(
        failures.is_empty(),
        "fuzzing broke a rule:\n{}",
        failures.join("\n")
    );
}
