//! The fast variant of a model: int8 convolutions (QDQ), made on this
//! computer from the installed model, in Rust on the ONNX graph (no Python).
//!
//! - Weights: per output channel, symmetric int8; biases int32 at the
//!   input scale × the weight scale, as ONNX Runtime's QLinearConv wants.
//! - Activations: asymmetric uint8 from ranges measured on real photos (the
//!   0.01 and 99.99 percentiles of each tensor, averaged over the photos, so
//!   a few outliers do not stretch the scale). Streaming: one photo's
//!   tensors at a time.
//! - A Relu right after a Conv is folded into the Conv's quantized output
//!   (its range starts at 0, so quantizing clamps exactly as Relu does);
//!   MaxPool and Resize keep their input's scale so they run on uint8.
//! - Everything outside the encoder and decoder blocks (the side outputs'
//!   fusion, the sigmoid) stays float; `KEEP_FLOAT` can keep blocks in
//!   float too, ranked by `scripts/quant/probe.py` (each block quantized on
//!   its own, mask change measured on dev photos).
//!
//! ONNX Runtime then fuses each DQ → Conv → Q into one QLinearConv (a test
//! checks the optimised graph), which uses the CPU's int8 dot-product
//! instructions (AVX-512 VNNI / AVX-VNNI / ARM dot product).

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use image::RgbaImage;
use onnx_protobuf::{
    AttributeProto, GraphProto, Message, ModelProto, NodeProto, TensorProto, TypeProto,
    ValueInfoProto, type_proto,
};

use crate::fsutil::{Access, write_atomically};

const FLOAT: i32 = 1;
const UINT8: i32 = 2;
const INT8: i32 = 3;
const INT32: i32 = 6;

/// Bumped when the recipe changes, so old variants are rebuilt.
const RECIPE: u32 = 2;

/// Blocks of the ISNet graph kept in float. None: every encoder and decoder
/// block is int8 (only the side outputs' fusion and the sigmoid stay
/// float). Measured on the evaluation set's test split and
/// `scripts/bench-batch` (README, *Fast mode*): keeping the two most
/// sensitive blocks (stage1, side1) in float halved the IoU loss (−0.0021
/// instead of −0.0039, both within the −0.005 allowed) but left the batch at
/// 0.66× the float model's time instead of 0.54×.
pub const KEEP_FLOAT: &[&str] = &[];

/// Photos the activation ranges are measured on: the repository's own
/// test photos (scikit-image's, not the evaluation set), each also mirrored.
const CALIBRATION_PHOTOS: [&[u8]; 3] = [
    include_bytes!("../../tests/fixtures/photos/coffee.jpg"),
    include_bytes!("../../tests/fixtures/photos/chelsea.jpg"),
    include_bytes!("../../tests/fixtures/photos/astronaut.jpg"),
];

#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    #[error("cannot read the model ({0})")]
    Read(std::io::Error),
    #[error("the model is not a valid ONNX file ({0})")]
    Parse(String),
    #[error("this model has no convolutions to make fast")]
    NothingToQuantize,
    #[error("measuring the model's ranges failed ({0})")]
    Calibration(String),
    #[error("cannot write the fast variant ({0})")]
    Write(String),
}

/// Whether this CPU has int8 dot-product instructions; without them the
/// int8 variant is not faster, so it is not offered.
pub fn cpu_has_int8_dot_product() -> bool {
    // Asked every frame by the Speed choice: detected once.
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(detect_int8_dot_product)
}

fn detect_int8_dot_product() -> bool {
    // For checking the refusal on machines that do have them.
    if std::env::var_os("BACKGROUNDERASE_ASSUME_NO_INT8").is_some() {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512vnni")
            || std::arch::is_x86_feature_detected!("avxvnni")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("dotprod")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// The ISNet block a node belongs to (`/stage3d/rebnconv1/conv_s1/Conv` →
/// `stage3d`); `None` for nodes outside the blocks.
fn block_of(node_name: &str) -> Option<&str> {
    let rest = node_name.strip_prefix('/')?;
    let block = rest.split('/').next()?;
    let known = ["stage", "side", "conv_in"];
    (rest.contains('/') && known.iter().any(|k| block.starts_with(k))).then_some(block)
}

/// What will be quantized, decided from the graph alone.
#[derive(Debug, Default)]
pub struct QuantPlan {
    /// Indices of nodes that run quantized.
    nodes: HashSet<usize>,
    /// Activation tensors that get their own measured range.
    measured: Vec<String>,
    /// Tensors that take another tensor's range (MaxPool, Resize outputs).
    same_as: HashMap<String, String>,
    /// `(conv, relu)` node pairs whose Relu folds into the Conv's output.
    relu_folds: Vec<(usize, usize)>,
}

/// Which node outputs are float tensors, by following the graph (the op
/// set of image models: Conv, Relu, MaxPool, Resize, Concat, Add, Sigmoid on
/// float; Shape, Slice, Cast, Concat on the int64 shape arithmetic).
fn float_tensors(graph: &GraphProto) -> HashSet<String> {
    let mut float: HashSet<String> = graph
        .input
        .iter()
        .filter(|i| i.type_.tensor_type().elem_type == FLOAT || !i.type_.has_tensor_type())
        .map(|i| i.name.clone())
        .collect();
    let mut known: HashSet<String> = float.clone();
    for init in &graph.initializer {
        known.insert(init.name.clone());
        if init.data_type == FLOAT {
            float.insert(init.name.clone());
        }
    }
    // Node order is not always topological (the Cast of the graph input
    // comes last in IMG.LY's files): repeat until nothing changes.
    let mut grew = true;
    while grew {
        grew = false;
        let before = float.len();
        propagate(graph, &mut float, &mut known);
        grew |= float.len() != before;
    }
    float
}

fn propagate(graph: &GraphProto, float: &mut HashSet<String>, known: &mut HashSet<String>) {
    for node in &graph.node {
        let first_float = node.input.first().is_some_and(|i| float.contains(i));
        let is_float = match node.op_type.as_str() {
            "Shape" => false,
            "Cast" => node
                .attribute
                .iter()
                .any(|a| a.name == "to" && a.i == i64::from(FLOAT)),
            "Constant" => node
                .attribute
                .iter()
                .any(|a| a.t.as_ref().is_some_and(|t| t.data_type == FLOAT)),
            _ => first_float,
        };
        for output in &node.output {
            known.insert(output.clone());
            if is_float {
                float.insert(output.clone());
            }
        }
    }
}

/// Decides what to quantize: every node of a quantizable kind inside an
/// ISNet block not in `keep_float`.
pub fn plan(model: &ModelProto, keep_float: &[&str]) -> Result<QuantPlan, QuantizeError> {
    let graph = model
        .graph
        .as_ref()
        .ok_or(QuantizeError::NothingToQuantize)?;
    let float = float_tensors(graph);
    let initializers: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let outputs: HashSet<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
    let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
    for (index, node) in graph.node.iter().enumerate() {
        for input in &node.input {
            consumers.entry(input.as_str()).or_default().push(index);
        }
    }
    let mut plan = QuantPlan::default();
    for (index, node) in graph.node.iter().enumerate() {
        let quantizable = matches!(
            node.op_type.as_str(),
            "Conv" | "MaxPool" | "Resize" | "Concat" | "Add"
        );
        let in_block = block_of(&node.name).is_some_and(|b| !keep_float.contains(&b));
        let all_float = node
            .input
            .iter()
            .take(if node.op_type == "Resize" {
                1
            } else {
                usize::MAX
            })
            .filter(|i| !i.is_empty() && !initializers.contains(i.as_str()))
            .all(|i| float.contains(i));
        if quantizable && in_block && all_float {
            plan.nodes.insert(index);
        }
    }
    if !plan.nodes.iter().any(|&i| graph.node[i].op_type == "Conv") {
        return Err(QuantizeError::NothingToQuantize);
    }
    let mut seen = HashSet::new();
    let mut indices: Vec<usize> = plan.nodes.iter().copied().collect();
    indices.sort_unstable();
    for &index in &indices {
        let node = &graph.node[index];
        let activations = node
            .input
            .iter()
            .take(if matches!(node.op_type.as_str(), "Conv" | "Resize") {
                1
            } else {
                usize::MAX
            })
            .filter(|i| !i.is_empty() && !initializers.contains(i.as_str()));
        for input in activations {
            if seen.insert(input.clone()) && !plan.same_as.contains_key(input) {
                plan.measured.push(input.clone());
            }
        }
        let mut output = node.output[0].clone();
        if node.op_type == "Conv" {
            let users = consumers
                .get(output.as_str())
                .map_or(&[][..], Vec::as_slice);
            if let [relu] = users
                && graph.node[*relu].op_type == "Relu"
                && !outputs.contains(output.as_str())
            {
                plan.relu_folds.push((index, *relu));
                output = graph.node[*relu].output[0].clone();
            }
        }
        if !seen.insert(output.clone()) {
            continue;
        }
        if matches!(node.op_type.as_str(), "MaxPool" | "Resize") {
            plan.same_as.insert(output, node.input[0].clone());
        } else {
            plan.measured.push(output);
        }
    }
    Ok(plan)
}

/// The model with the measured tensors as extra outputs, for calibration.
pub fn calibration_model(model: &ModelProto, plan: &QuantPlan) -> ModelProto {
    let mut model = model.clone();
    if let Some(graph) = model.graph.as_mut() {
        let existing: HashSet<String> = graph.output.iter().map(|o| o.name.clone()).collect();
        for name in &plan.measured {
            if existing.contains(name) {
                continue;
            }
            let mut tensor = type_proto::Tensor::new();
            tensor.elem_type = FLOAT;
            let mut type_ = TypeProto::new();
            type_.set_tensor_type(tensor);
            let mut info = ValueInfoProto::new();
            info.name = name.clone();
            info.type_ = Some(type_).into();
            graph.output.push(info);
        }
    }
    model
}

/// Low and high percentiles of `values` (0.01 % and 99.99 %), in O(n).
fn percentile_range(values: &mut [f32]) -> (f32, f32) {
    let n = values.len();
    if n == 0 {
        return (0.0, 0.0);
    }
    let lo_at = ((n as f64) * 0.0001) as usize;
    let hi_at = (((n as f64) * 0.9999) as usize).min(n - 1);
    let cmp = |a: &f32, b: &f32| a.total_cmp(b);
    let (_, hi, _) = values.select_nth_unstable_by(hi_at, cmp);
    let hi = *hi;
    let (_, lo, _) = values[..=hi_at].select_nth_unstable_by(lo_at.min(hi_at), cmp);
    (*lo, hi)
}

/// Running mean of each tensor's per-photo percentile range.
#[derive(Debug, Default)]
pub struct Ranges {
    sums: HashMap<String, (f64, f64, u32)>,
}

impl Ranges {
    pub fn add(&mut self, name: &str, values: &mut [f32]) {
        let (lo, hi) = percentile_range(values);
        let entry = self.sums.entry(name.to_string()).or_insert((0.0, 0.0, 0));
        entry.0 += f64::from(lo);
        entry.1 += f64::from(hi);
        entry.2 += 1;
    }

    pub fn get(&self, name: &str) -> Option<(f32, f32)> {
        self.sums
            .get(name)
            .filter(|s| s.2 > 0)
            .map(|s| ((s.0 / f64::from(s.2)) as f32, (s.1 / f64::from(s.2)) as f32))
    }
}

/// uint8 scale and zero point for a range (which always includes 0).
fn activation_params((lo, hi): (f32, f32)) -> (f32, u8) {
    let lo = lo.min(0.0);
    let hi = hi.max(0.0);
    let scale = ((hi - lo) / 255.0).max(1e-8);
    let zero = (-lo / scale).round().clamp(0.0, 255.0) as u8;
    (scale, zero)
}

fn scalar_f32(name: String, value: f32) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name;
    t.data_type = FLOAT;
    t.raw_data = value.to_le_bytes().to_vec();
    t
}

fn tensor(name: String, data_type: i32, dims: Vec<i64>, raw: Vec<u8>) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name;
    t.data_type = data_type;
    t.dims = dims;
    t.raw_data = raw;
    t
}

fn floats_of(t: &TensorProto) -> Vec<f32> {
    if t.raw_data.is_empty() {
        t.float_data.clone()
    } else {
        t.raw_data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }
}

fn node(op: &str, name: String, inputs: Vec<String>, outputs: Vec<String>) -> NodeProto {
    let mut n = NodeProto::new();
    n.op_type = op.into();
    n.name = name;
    n.input = inputs;
    n.output = outputs;
    n
}

fn axis(value: i64) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = "axis".into();
    a.type_ = onnx_protobuf::attribute_proto::AttributeType::INT.into();
    a.i = value;
    a
}

/// The QDQ model: `plan` applied with the measured `ranges`.
pub fn quantize(
    model: &ModelProto,
    plan: &QuantPlan,
    ranges: &Ranges,
) -> Result<ModelProto, QuantizeError> {
    let mut model = model.clone();
    let graph = model
        .graph
        .as_mut()
        .ok_or(QuantizeError::NothingToQuantize)?;

    // Activation parameters, then the folded Relus.
    let mut params: HashMap<String, (f32, u8)> = HashMap::new();
    for name in &plan.measured {
        let range = ranges
            .get(name)
            .ok_or_else(|| QuantizeError::Calibration(format!("no range for {name}")))?;
        params.insert(name.clone(), activation_params(range));
    }
    // A MaxPool or Resize output takes its source's parameters, following
    // chains (MaxPool → MaxPool) back to a measured tensor.
    for output in plan.same_as.keys() {
        let mut source = output;
        while let Some(input) = plan.same_as.get(source) {
            source = input;
        }
        if let Some(p) = params.get(source).copied() {
            params.insert(output.clone(), p);
        }
    }
    let mut removed = HashSet::new();
    for &(conv, relu) in &plan.relu_folds {
        let relu_output = graph.node[relu].output[0].clone();
        graph.node[conv].output[0] = relu_output;
        removed.insert(relu);
    }

    // Weights and biases of the quantized convolutions.
    let initializers: HashMap<String, usize> = graph
        .initializer
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.clone(), i))
        .collect();
    let mut new_nodes: Vec<NodeProto> = Vec::new();
    let mut new_inits: Vec<TensorProto> = Vec::new();
    let mut weight_dq = HashMap::new();
    for &index in &plan.nodes {
        let conv = &graph.node[index];
        if conv.op_type != "Conv" {
            continue;
        }
        let Some(&w_at) = conv.input.get(1).and_then(|w| initializers.get(w)) else {
            continue;
        };
        let Some(&(x_scale, _)) = params.get(&conv.input[0]) else {
            continue;
        };
        let weight = &graph.initializer[w_at];
        let dims = weight.dims.clone();
        let values = floats_of(weight);
        let channels = dims.first().copied().unwrap_or(0).max(0) as usize;
        if channels == 0 || !values.len().is_multiple_of(channels) {
            continue;
        }
        let per = values.len() / channels;
        let mut scales = Vec::with_capacity(channels);
        let mut q = Vec::with_capacity(values.len());
        for c in 0..channels {
            let row = &values[c * per..(c + 1) * per];
            let max = row.iter().fold(0f32, |m, v| m.max(v.abs()));
            let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
            scales.push(scale);
            q.extend(
                row.iter()
                    .map(|v| (v / scale).round().clamp(-127.0, 127.0) as i8 as u8),
            );
        }
        let w = &conv.input[1];
        let scale_bytes: Vec<u8> = scales.iter().flat_map(|s| s.to_le_bytes()).collect();
        new_inits.push(tensor(format!("{w}_q"), INT8, dims, q));
        new_inits.push(tensor(
            format!("{w}_scale"),
            FLOAT,
            vec![channels as i64],
            scale_bytes,
        ));
        new_inits.push(tensor(
            format!("{w}_zero"),
            INT8,
            vec![channels as i64],
            vec![0; channels],
        ));
        let mut dq = node(
            "DequantizeLinear",
            format!("{w}_DequantizeLinear"),
            vec![format!("{w}_q"), format!("{w}_scale"), format!("{w}_zero")],
            vec![format!("{w}_dq")],
        );
        dq.attribute.push(axis(0));
        new_nodes.push(dq);
        weight_dq.insert((index, 1usize), format!("{w}_dq"));

        if let Some(&b_at) = conv.input.get(2).and_then(|b| initializers.get(b)) {
            let b = &conv.input[2];
            let bias = floats_of(&graph.initializer[b_at]);
            if bias.len() == channels {
                let b_scales: Vec<f32> = scales.iter().map(|s| s * x_scale).collect();
                let q: Vec<u8> = bias
                    .iter()
                    .zip(&b_scales)
                    .flat_map(|(v, s)| ((v / s).round() as i32).to_le_bytes())
                    .collect();
                new_inits.push(tensor(format!("{b}_q"), INT32, vec![channels as i64], q));
                new_inits.push(tensor(
                    format!("{b}_scale"),
                    FLOAT,
                    vec![channels as i64],
                    b_scales.iter().flat_map(|s| s.to_le_bytes()).collect(),
                ));
                let mut dq = node(
                    "DequantizeLinear",
                    format!("{b}_DequantizeLinear"),
                    vec![format!("{b}_q"), format!("{b}_scale")],
                    vec![format!("{b}_dq")],
                );
                dq.attribute.push(axis(0));
                new_nodes.push(dq);
                weight_dq.insert((index, 2usize), format!("{b}_dq"));
            }
        }
    }
    for ((index, slot), name) in weight_dq {
        graph.node[index].input[slot] = name;
    }

    // Q → DQ on every quantized activation; its readers read the DQ.
    let mut quantized: Vec<&String> = params.keys().collect();
    quantized.sort();
    let mut renamed: HashMap<String, String> = HashMap::new();
    for name in quantized {
        let (scale, zero) = params[name];
        new_inits.push(scalar_f32(format!("{name}_scale"), scale));
        new_inits.push(tensor(format!("{name}_zero"), UINT8, vec![], vec![zero]));
        new_nodes.push(node(
            "QuantizeLinear",
            format!("{name}_QuantizeLinear"),
            vec![
                name.clone(),
                format!("{name}_scale"),
                format!("{name}_zero"),
            ],
            vec![format!("{name}_q")],
        ));
        new_nodes.push(node(
            "DequantizeLinear",
            format!("{name}_DequantizeLinear"),
            vec![
                format!("{name}_q"),
                format!("{name}_scale"),
                format!("{name}_zero"),
            ],
            vec![format!("{name}_dq")],
        ));
        renamed.insert(name.clone(), format!("{name}_dq"));
    }
    for (index, n) in graph.node.iter_mut().enumerate() {
        if removed.contains(&index) {
            continue;
        }
        for input in &mut n.input {
            if let Some(dq) = renamed.get(input) {
                *input = dq.clone();
            }
        }
    }

    // The old float weights are no longer read.
    let replaced: HashSet<String> = new_inits
        .iter()
        .filter_map(|t| t.name.strip_suffix("_q").map(str::to_string))
        .collect();
    let old_nodes = std::mem::take(&mut graph.node);
    graph
        .initializer
        .retain(|t| !replaced.contains(&t.name) || t.data_type != FLOAT);
    graph.initializer.extend(new_inits);

    // One topological order for the old and new nodes (Kahn), so every
    // tensor is made before it is read whatever order the file had.
    let nodes: Vec<NodeProto> = new_nodes
        .into_iter()
        .chain(
            old_nodes
                .into_iter()
                .enumerate()
                .filter(|(i, _)| !removed.contains(i))
                .map(|(_, n)| n),
        )
        .collect();
    let ordered = topological(nodes);
    graph.node = ordered;
    Ok(model)
}

/// Nodes in an order where each input is produced before it is read
/// (inputs no node produces are graph inputs or initializers).
fn topological(nodes: Vec<NodeProto>) -> Vec<NodeProto> {
    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        for o in &n.output {
            producer.insert(o.as_str(), i);
        }
    }
    let mut waiting = vec![0usize; nodes.len()];
    let mut readers: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (i, n) in nodes.iter().enumerate() {
        let mut sources: Vec<usize> = n
            .input
            .iter()
            .filter_map(|input| producer.get(input.as_str()).copied())
            .filter(|&p| p != i)
            .collect();
        sources.sort_unstable();
        sources.dedup();
        waiting[i] = sources.len();
        for p in sources {
            readers[p].push(i);
        }
    }
    let mut ready: std::collections::VecDeque<usize> =
        (0..nodes.len()).filter(|&i| waiting[i] == 0).collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(i) = ready.pop_front() {
        order.push(i);
        for &r in &readers[i] {
            waiting[r] -= 1;
            if waiting[r] == 0 {
                ready.push_back(r);
            }
        }
    }
    // A cycle cannot come from a valid model; keep whatever is left as is.
    let placed: HashSet<usize> = order.iter().copied().collect();
    order.extend((0..nodes.len()).filter(|i| !placed.contains(i)));
    let mut slots: Vec<Option<NodeProto>> = nodes.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// Builds the fast variant of `model_path` with `measure` (which runs the
/// calibration model on one prepared photo and passes each measured tensor's
/// values to the closure).
pub fn build(
    model_bytes: &[u8],
    keep_float: &[&str],
    mut measure: impl FnMut(&[u8], &[String], &mut Ranges) -> Result<(), String>,
) -> Result<Vec<u8>, QuantizeError> {
    let model = ModelProto::parse_from_bytes(model_bytes)
        .map_err(|e| QuantizeError::Parse(e.to_string()))?;
    let plan = plan(&model, keep_float)?;
    let calibration = calibration_model(&model, &plan)
        .write_to_bytes()
        .map_err(|e| QuantizeError::Parse(e.to_string()))?;
    let mut ranges = Ranges::default();
    measure(&calibration, &plan.measured, &mut ranges).map_err(QuantizeError::Calibration)?;
    quantize(&model, &plan, &ranges)?
        .write_to_bytes()
        .map_err(|e| QuantizeError::Parse(e.to_string()))
}

/// The calibration photos, decoded, each also mirrored.
pub fn calibration_photos() -> Vec<RgbaImage> {
    CALIBRATION_PHOTOS
        .iter()
        .filter_map(|bytes| image::load_from_memory(bytes).ok())
        .flat_map(|image| {
            let rgba = image.to_rgba8();
            let mirrored = image::imageops::flip_horizontal(&rgba);
            [rgba, mirrored]
        })
        .collect()
}

/// Where the fast variant of `source` lives: named after the source's size
/// and mtime and the recipe, so a replaced model or a new recipe is rebuilt.
pub fn variant_path(source: &Path, dir: &Path) -> Result<PathBuf, QuantizeError> {
    let meta = fs::metadata(source).map_err(QuantizeError::Read)?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let stem = source
        .file_stem()
        .map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned());
    Ok(dir.join(format!("{stem}.int8-r{RECIPE}-{}-{mtime}.onnx", meta.len())))
}

/// Writes `bytes` as the variant, removing variants of earlier versions.
pub fn store_variant(path: &Path, bytes: &[u8]) -> Result<(), QuantizeError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| QuantizeError::Write(e.to_string()))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    if let (Some(name), Some(stem)) = (&name, name.as_ref().and_then(|n| n.split(".int8-").next()))
        && let Ok(entries) = fs::read_dir(dir)
    {
        let prefix = format!("{stem}.int8-");
        for entry in entries.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            if file.starts_with(&prefix) && &file != name {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
    write_atomically(path, bytes, Access::Shared).map_err(|e| QuantizeError::Write(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_read_from_node_names() {
        assert_eq!(block_of("/stage3d/rebnconv1/conv_s1/Conv"), Some("stage3d"));
        assert_eq!(block_of("/side1/Conv"), Some("side1"));
        assert_eq!(block_of("/conv_in/Conv"), Some("conv_in"));
        assert_eq!(block_of("/Resize_3"), None);
        assert_eq!(block_of("Sigmoid_1"), None);
    }

    #[test]
    fn percentiles_ignore_a_few_outliers() {
        let mut values: Vec<f32> = (0..100_000).map(|i| (i % 1000) as f32 / 1000.0).collect();
        values[7] = 1e6;
        values[9] = -1e6;
        let (lo, hi) = percentile_range(&mut values);
        assert!((0.0..0.01).contains(&lo), "{lo}");
        assert!((0.99..1.0).contains(&hi), "{hi}");
    }

    #[test]
    fn activation_parameters_cover_zero_and_clamp_relu_outputs_at_zero() {
        let (scale, zero) = activation_params((0.0, 2.55));
        assert_eq!(zero, 0);
        assert!((scale - 0.01).abs() < 1e-6);
        let (scale, zero) = activation_params((-1.0, 1.0));
        assert!((127..=128).contains(&zero), "{zero}");
        assert!((scale - 2.0 / 255.0).abs() < 1e-6);
        // A range that does not include 0 is widened to include it.
        assert_eq!(activation_params((0.5, 1.0)).1, 0);
    }
}
