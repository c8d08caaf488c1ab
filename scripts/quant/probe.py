"""Per-block int8 sensitivity of an ISNet graph (issue #19's first step).

Calibrates activation ranges once, streaming one photo at a time (a
histogram per tensor, so memory does not grow with the number of photos),
then builds QDQ variants that quantize one block at a time and measures how
far each one's mask moves from the float model's on held-out dev photos.
Then quantizes everything except the k most sensitive blocks, for growing k,
and reports mask error and time per run.

Calibration and measurement photos both come from the evaluation set's dev
split (disjoint lists); the test split is never read.

    scripts/quant/probe.py MODEL.onnx EVAL_SET_DIR OUT_DIR [--method percentile]
"""

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantType, create_calibrator
from onnxruntime.quantization.qdq_quantizer import QDQQuantizer
from onnxruntime.quantization.onnx_model import ONNXModel
from PIL import Image

SIDE = 1024


def preprocess(path):
    """As the app does for ISNet: antialiased resize to 1024², (x - 128) / 256."""
    image = Image.open(path).convert("RGB").resize((SIDE, SIDE), Image.Resampling.BILINEAR, reducing_gap=None)
    x = (np.asarray(image, dtype=np.float32) - 128.0) / 256.0
    return x.transpose(2, 0, 1)[None].copy()


class OneAtATime(CalibrationDataReader):
    def __init__(self, tensor):
        self.items = [{"input": tensor}]

    def get_next(self):
        return self.items.pop() if self.items else None


def block_of(node_name):
    m = re.match(r"/(stage\d+d?|side\d|conv_in|outconv)", node_name)
    return m.group(1) if m else "other"


def session(path, threads=2):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run(sess, x):
    return sess.run([sess.get_outputs()[0].name], {"input": x})[0][0, 0]


def quantize(model_path, ranges, exclude, out_path):
    model = onnx.load(str(model_path))
    quantizer = QDQQuantizer(
        model,
        per_channel=True,
        reduce_range=False,
        weight_qType=QuantType.QInt8,
        activation_qType=QuantType.QUInt8,
        tensors_range=ranges,
        nodes_to_quantize=[],
        nodes_to_exclude=exclude,
        op_types_to_quantize=["Conv", "MaxPool", "Concat", "Resize", "Add", "Relu"],
        extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
    )
    quantizer.quantize_model()
    quantizer.model.save_model_to_file(str(out_path))


def mask_error(sess, inputs, reference):
    errors, disagree = [], []
    times = []
    for x, ref in zip(inputs, reference):
        t = time.perf_counter()
        out = run(sess, x)
        times.append(time.perf_counter() - t)
        errors.append(float(np.abs(out - ref).mean()))
        disagree.append(float(((out > 0.5) != (ref > 0.5)).mean()))
    return float(np.mean(errors)), float(np.mean(disagree)), float(np.median(times))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("eval_set")
    parser.add_argument("out")
    parser.add_argument("--method", default="percentile", choices=["minmax", "percentile", "entropy"])
    parser.add_argument("--calibration", type=int, default=8)
    parser.add_argument("--measure", type=int, default=10)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    dev = sorted((Path(args.eval_set) / "dev" / "images").glob("*"))
    # Every fourth for calibration, the rest for measuring: disjoint, and
    # spread over objects and backgrounds.
    calibration = dev[::4][: args.calibration]
    measure = [p for p in dev if p not in calibration][:: max(1, len(dev) // (args.measure + 1))][: args.measure]
    print(f"calibration {len(calibration)} photos, measuring on {len(measure)}", flush=True)

    model = onnx.load(args.model)
    conv_blocks = {}
    for node in model.graph.node:
        conv_blocks.setdefault(block_of(node.name), []).append(node.name)
    blocks = sorted(b for b in conv_blocks if b != "other")
    print("blocks:", blocks, flush=True)

    ranges_file = out / f"ranges-{args.method}.json"
    if ranges_file.exists():
        from onnxruntime.quantization.calibrate import TensorData, TensorsData

        raw = json.loads(ranges_file.read_text())
        ranges = TensorsData(
            CalibrationMethod.MinMax,
            {k: TensorData(lowest=np.float32(v[0]), highest=np.float32(v[1])) for k, v in raw.items()},
        )
    else:
        method = {
            "minmax": CalibrationMethod.MinMax,
            "percentile": CalibrationMethod.Percentile,
            "entropy": CalibrationMethod.Entropy,
        }[args.method]
        extra = {"symmetric": False} if args.method == "minmax" else {}
        if args.method == "percentile":
            extra = {"percentile": 99.99, "num_bins": 2048, "symmetric": False}
        t = time.perf_counter()
        calibrator = create_calibrator(
            args.model,
            None,
            augmented_model_path=str(out / "augmented.onnx"),
            calibrate_method=method,
            extra_options=extra,
        )
        for path in calibration:
            # One photo per call: histograms merge, nothing piles up.
            calibrator.collect_data(OneAtATime(preprocess(path)))
            print(f"  calibrated on {path.name}", flush=True)
        ranges = calibrator.compute_data()
        print(f"calibration: {time.perf_counter() - t:.0f} s", flush=True)
        ranges_file.write_text(
            json.dumps({k: [float(v.range_value[0]), float(v.range_value[1])] for k, v in ranges.data.items()})
        )
        os.remove(out / "augmented.onnx")

    inputs = [preprocess(p) for p in measure]
    float_sess = session(args.model)
    reference = [run(float_sess, x) for x in inputs]
    _, _, float_time = mask_error(float_sess, inputs, reference)
    del float_sess
    print(f"float: {float_time:.3f} s per run", flush=True)

    results = {"float_time": float_time, "single": {}, "all_but": {}}
    all_nodes = [n.name for n in model.graph.node]
    variant = out / "variant.onnx"
    for block in blocks:
        exclude = [n for n in all_nodes if block_of(n) != block]
        quantize(args.model, ranges, exclude, variant)
        err, dis, t = mask_error(session(variant), inputs, reference)
        results["single"][block] = {"mae": err, "disagree": dis, "time": t}
        print(f"only {block:10} mae {err:.5f}  disagree {dis:.5f}  {t:.3f} s", flush=True)

    order = sorted(blocks, key=lambda b: -results["single"][b]["mae"])
    for k in range(0, len(order) + 1):
        kept = order[:k]
        exclude = [n for n in all_nodes if block_of(n) in kept or block_of(n) == "other"]
        quantize(args.model, ranges, exclude, variant)
        err, dis, t = mask_error(session(variant), inputs, reference)
        results["all_but"][",".join(kept)] = {"mae": err, "disagree": dis, "time": t}
        print(f"float {k:2} ({','.join(kept) or '-'}): mae {err:.5f}  disagree {dis:.5f}  {t:.3f} s", flush=True)
        (out / f"results-{args.method}.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    sys.exit(main())
