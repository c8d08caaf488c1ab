//! `--speed fast`: the int8 variant made on this machine from the real
//! installed model. It is built once into the cache (under 4 GB peak), ONNX
//! Runtime really fuses its quantized convolutions into QLinearConv (no Q/DQ
//! pairs left around them in the optimised graph), its masks agree with the
//! float model's, and it goes when the model goes.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use backgrounderase::engine::quantize;
use backgrounderase::paths::AppDirs;
use common::fixture;
use onnx_protobuf::{Message, ModelProto};

fn cli(cache: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_backgrounderase"));
    cmd.env_remove("ORT_DYLIB_PATH")
        .env_remove("BACKGROUNDERASE_HOME")
        .env_remove("BACKGROUNDERASE_INT8_KEEP")
        .env("XDG_CACHE_HOME", cache);
    cmd
}

fn variants(cache: &Path) -> Vec<PathBuf> {
    let dir = cache.join("backgrounderase/derived-models");
    let mut found: Vec<PathBuf> = fs::read_dir(&dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().contains(".int8-"))
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

fn alpha(path: &Path) -> Vec<u8> {
    image::open(path)
        .unwrap()
        .to_rgba8()
        .pixels()
        .map(|p| p[3])
        .collect()
}

#[test]
fn the_fast_variant_is_built_once_fused_and_masks_like_the_model() {
    let cache = tempfile::tempdir().unwrap();
    if !quantize::cpu_has_int8_dot_product() {
        // Where int8 would be slower, fast is refused with the reason.
        assert_fast_is_refused(cli(cache.path()), cache.path());
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let input = root.path().join("in");
    fs::create_dir_all(&input).unwrap();
    fs::copy(fixture("photos/coffee.jpg"), input.join("cup.jpg")).unwrap();
    fs::copy(fixture("photos/chelsea.jpg"), input.join("cat.jpg")).unwrap();

    // First use: the variant is made (with peak memory under 4 GB).
    let fast_out = root.path().join("fast");
    let run = cli(cache.path())
        .args(["batch"])
        .arg(&input)
        .arg("-o")
        .arg(&fast_out)
        .args(["--speed", "fast", "--stats"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{log}");
    assert!(
        log.contains("on CPU (fast: int8 variant)"),
        "the model line says which variant runs: {log}"
    );
    let peak: f64 = log
        .lines()
        .find_map(|l| l.strip_prefix("peak memory: "))
        .and_then(|v| v.trim_end_matches(" MB").parse().ok())
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        peak < 4096.0,
        "peak {peak} MB building and running the variant"
    );
    let made = variants(cache.path());
    assert_eq!(made.len(), 1, "{made:?}");
    let built_at = fs::metadata(&made[0]).unwrap().modified().unwrap();

    // Second use: the cached one.
    let again = cli(cache.path())
        .args(["remove"])
        .arg(input.join("cup.jpg"))
        .arg("-o")
        .arg(root.path().join("again.png"))
        .args(["--speed", "fast"])
        .output()
        .unwrap();
    assert!(again.status.success());
    assert_eq!(variants(cache.path()), made);
    assert_eq!(
        fs::metadata(&made[0]).unwrap().modified().unwrap(),
        built_at
    );

    // The float model on the same photos: the masks agree.
    let float_out = root.path().join("float");
    let run = cli(cache.path())
        .args(["batch"])
        .arg(&input)
        .arg("-o")
        .arg(&float_out)
        .output()
        .unwrap();
    assert!(run.status.success());
    for name in ["cup.png", "cat.png"] {
        let (fast, float) = (alpha(&fast_out.join(name)), alpha(&float_out.join(name)));
        let both = fast
            .iter()
            .zip(&float)
            .filter(|(a, b)| **a >= 128 && **b >= 128)
            .count();
        let either = fast
            .iter()
            .zip(&float)
            .filter(|(a, b)| **a >= 128 || **b >= 128)
            .count();
        let iou = both as f64 / either as f64;
        let mae = fast
            .iter()
            .zip(&float)
            .map(|(a, b)| f64::from(a.abs_diff(*b)))
            .sum::<f64>()
            / fast.len() as f64
            / 255.0;
        assert!(
            iou > 0.97 && mae < 0.01,
            "{name}: IoU {iou:.4}, MAE {mae:.4}"
        );
    }

    // ONNX Runtime's optimised graph: the quantized convolutions are fused.
    let dirs = AppDirs::discover().unwrap();
    let runtime = backgrounderase::engine::runtime::load(&dirs).unwrap();
    let optimised = root.path().join("optimised.onnx");
    let session = ort::session::Session::builder(&runtime.environment)
        .unwrap()
        .with_optimization_level(ort::session::builder::GraphOptimizationLevel::All)
        .unwrap()
        .with_optimized_model_path(&optimised)
        .unwrap()
        .commit_from_file(&made[0])
        .unwrap();
    drop(session);
    let graph = ModelProto::parse_from_bytes(&fs::read(&optimised).unwrap())
        .unwrap()
        .graph
        .unwrap();
    let count = |op: &str| graph.node.iter().filter(|n| n.op_type == op).count();
    let source = ModelProto::parse_from_bytes(
        &fs::read(
            made[0]
                .to_string_lossy()
                .split(".int8-")
                .next()
                .map(|s| format!("{s}.onnx"))
                .unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    let convs = source
        .graph
        .unwrap()
        .node
        .iter()
        .filter(|n| n.op_type == "Conv")
        .count();
    // Every convolution of the encoder and decoder blocks is fused (ISNet
    // medium has 119, all inside them).
    assert_eq!(
        count("QLinearConv"),
        convs,
        "{} of {convs} convolutions fused",
        count("QLinearConv")
    );
    assert_eq!(count("Conv"), 0, "float convolutions left");
    // A DequantizeLinear feeding a Conv would mean a convolution that was
    // meant to be int8 runs in float after all.
    let dq_outputs: Vec<&String> = graph
        .node
        .iter()
        .filter(|n| n.op_type == "DequantizeLinear")
        .flat_map(|n| &n.output)
        .collect();
    let dq_fed_convs = graph
        .node
        .iter()
        .filter(|n| n.op_type == "Conv" && n.input.get(1).is_some_and(|w| dq_outputs.contains(&w)))
        .count();
    assert_eq!(
        dq_fed_convs, 0,
        "convolutions with int8 weights left unfused"
    );
}

/// On a CPU without int8 dot products (told so here by an environment
/// variable, since this one has them) fast is refused with the reason and
/// nothing is built.
#[test]
fn without_int8_dot_products_fast_is_refused_with_the_reason() {
    let cache = tempfile::tempdir().unwrap();
    let mut cmd = cli(cache.path());
    cmd.env("BACKGROUNDERASE_ASSUME_NO_INT8", "1");
    assert_fast_is_refused(cmd, cache.path());
}

/// `remove --speed fast` with `cmd` exits 2 saying why and builds nothing.
fn assert_fast_is_refused(mut cmd: Command, cache: &Path) {
    let run = cmd
        .args(["remove"])
        .arg(fixture("photos/coffee.jpg"))
        .args(["-o", "/dev/null", "--speed", "fast"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{log}");
    assert!(log.contains("int8 dot-product instructions"), "{log}");
    assert!(log.contains("use balanced"), "{log}");
    assert!(variants(cache).is_empty());
}

/// The variant is named after its source's size and mtime: a replaced
/// model gets a new one and the stale one is deleted; removing the model
/// deletes what was made from it.
#[test]
fn a_changed_model_gets_a_new_variant_and_a_removed_one_takes_its_variants() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("model.onnx");
    fs::write(&source, b"one").unwrap();
    let first = quantize::variant_path(&source, dir.path()).unwrap();
    quantize::store_variant(&first, b"int8 of one").unwrap();
    fs::write(&source, b"one, changed").unwrap();
    let second = quantize::variant_path(&source, dir.path()).unwrap();
    assert_ne!(first, second);
    quantize::store_variant(&second, b"int8 of the new one").unwrap();
    assert!(!first.exists(), "the stale variant is gone");
    assert!(second.exists());

    // `models remove` on a real profile: the derived files go too.
    // (The profile's models are links to the installed files.)
    let (home, dirs) = common::fresh_profile();
    assert!(dirs.models_dir().join("u2netp.onnx").exists());
    // A cache folder of its own (the profile links the real one).
    let derived = dirs.derived_models_dir();
    fs::remove_file(&derived).unwrap();
    fs::create_dir_all(&derived).unwrap();
    for name in [
        "u2netp.int8-r1-1-2.onnx",
        "u2netp.no-fp16-1-2",
        "u2netp-other.onnx",
    ] {
        fs::write(derived.join(name), b"x").unwrap();
    }
    let run = Command::new(env!("CARGO_BIN_EXE_backgrounderase"))
        .args(["models", "remove", "u2netp"])
        .env("BACKGROUNDERASE_HOME", home.path())
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let left: Vec<String> = fs::read_dir(&derived)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["u2netp-other.onnx"]);
}
