//! Shared helpers for the integration tests: the real runtime and model
//! (installed by `backgrounderase setup`), fixtures, and mask metrics.
#![allow(dead_code)]

pub mod file_server;
pub mod loopback;

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, OnceLock};

use backgrounderase::engine::Engine;
use backgrounderase::engine::inference::SessionOptions;
use backgrounderase::models::catalog::ModelCatalog;
use backgrounderase::paths::AppDirs;
use image::GrayImage;

/// One engine per test binary: ONNX Runtime allows one environment per
/// process, and loading the model once keeps the suite quick.
pub fn engine() -> MutexGuard<'static, Engine> {
    static ENGINE: OnceLock<Mutex<Engine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let engine = Engine::load(
                &AppDirs::discover().unwrap(),
                &ModelCatalog::builtin(),
                None,
                &SessionOptions::default(),
            )
            .unwrap_or_else(|e| {
                panic!("the real model is required (run `scripts/test`, which installs it): {e}")
            });
            Mutex::new(engine)
        })
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// A high-resolution photo fetched by `scripts/fetch-test-photos`.
pub fn test_photo(name: &str) -> PathBuf {
    let dir = std::env::var_os("BACKGROUNDERASE_TEST_PHOTOS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default();
            std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| home.join(".cache"))
                .join("backgrounderase/test-photos")
        });
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "test photo missing: run `scripts/fetch-test-photos` (the README's test command does): {}",
        path.display()
    );
    path
}

/// Intersection over union of the masks thresholded at `threshold` (0..1).
pub fn iou(predicted: &GrayImage, truth: &GrayImage, threshold: f32) -> f64 {
    assert_eq!(predicted.dimensions(), truth.dimensions());
    let t = (threshold * 255.0) as u8;
    let (mut inter, mut union) = (0u64, 0u64);
    for (p, q) in predicted.pixels().zip(truth.pixels()) {
        let (a, b) = (p[0] > t, q[0] > t);
        inter += u64::from(a && b);
        union += u64::from(a || b);
    }
    inter as f64 / union.max(1) as f64
}

/// A profile of its own under a temporary `BACKGROUNDERASE_HOME`, with the
/// installed runtime and models linked in; keep the folder alive.
pub fn fresh_profile() -> (tempfile::TempDir, AppDirs) {
    let home = tempfile::tempdir().unwrap();
    let dirs = AppDirs::under(home.path());
    let installed = AppDirs::discover().unwrap();
    std::fs::create_dir_all(&dirs.data).unwrap();
    // Each model file linked into a folder of the profile's own, so that
    // tests that install or remove models never touch the real folder.
    std::fs::create_dir_all(dirs.models_dir()).unwrap();
    for entry in std::fs::read_dir(installed.models_dir()).unwrap().flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().ends_with(".onnx") {
            std::os::unix::fs::symlink(entry.path(), dirs.models_dir().join(name)).unwrap();
        }
    }
    std::os::unix::fs::symlink(installed.runtime_dir(), dirs.runtime_dir()).unwrap();
    // The fp32 copy `setup` made of the model (remade otherwise, ≈ 2 s each).
    std::fs::create_dir_all(installed.derived_models_dir()).unwrap();
    std::fs::create_dir_all(&dirs.cache).unwrap();
    std::os::unix::fs::symlink(installed.derived_models_dir(), dirs.derived_models_dir()).unwrap();
    (home, dirs)
}

/// A float tensor's name and fixed shape, as a graph input or output.
pub fn onnx_value(name: &str, dims: &[i64]) -> onnx_protobuf::ValueInfoProto {
    use onnx_protobuf::{TypeProto, ValueInfoProto, tensor_shape_proto, type_proto};
    let mut shape = onnx_protobuf::TensorShapeProto::new();
    for &d in dims {
        let mut dim = tensor_shape_proto::Dimension::new();
        dim.set_dim_value(d);
        shape.dim.push(dim);
    }
    let mut tensor = type_proto::Tensor::new();
    tensor.elem_type = 1;
    tensor.shape = Some(shape).into();
    let mut kind = TypeProto::new();
    kind.set_tensor_type(tensor);
    let mut info = ValueInfoProto::new();
    info.name = name.into();
    info.type_ = Some(kind).into();
    info
}

/// A 64×64 "model" made here: the channel mean through a sigmoid, so
/// bright pixels come out opaque. Small and quick, for the custom import.
pub fn tiny_onnx_model() -> Vec<u8> {
    use onnx_protobuf::{
        AttributeProto, GraphProto, Message, ModelProto, NodeProto, OperatorSetIdProto,
        attribute_proto,
    };
    let value = onnx_value;
    let mut mean = NodeProto::new();
    mean.op_type = "ReduceMean".into();
    mean.input.push("image".into());
    mean.output.push("mean".into());
    let mut axes = AttributeProto::new();
    axes.name = "axes".into();
    axes.type_ = attribute_proto::AttributeType::INTS.into();
    axes.ints = vec![1];
    mean.attribute.push(axes);
    let mut sigmoid = NodeProto::new();
    sigmoid.op_type = "Sigmoid".into();
    sigmoid.input.push("mean".into());
    sigmoid.output.push("alpha".into());
    let mut graph = GraphProto::new();
    graph.name = "tiny".into();
    graph.node = vec![mean, sigmoid];
    graph.input.push(value("image", &[1, 3, 64, 64]));
    graph.output.push(value("alpha", &[1, 1, 64, 64]));
    let mut opset = OperatorSetIdProto::new();
    opset.version = 17;
    let mut model = ModelProto::new();
    model.ir_version = 8;
    model.opset_import.push(opset);
    model.graph = Some(graph).into();
    model.write_to_bytes().unwrap()
}
