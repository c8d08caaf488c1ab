"""Best-quality study: more looks at each photo, and ways to merge them, scored
on the evaluation set without rebuilding the engine (#15). A development tool;
the product's best quality is `src/engine/quality.rs`.

    scripts/eval/looks-study cache dev            # model passes, once per split (~15 s/image)
    scripts/eval/looks-study merge dev            # every merge below, mean and per-image oracle
    scripts/eval/looks-study merge dev --guided   # also guided-filter refinements (slow: ~1 min/image)
    scripts/eval/looks-study merge dev --matte    # the shipped best's edge: colour line and closed-form matte
    scripts/eval/looks-study merge dev --matte all  # and matte variants that need another solve (~40 min)
    scripts/eval/looks-study cache dev --u2net PATH/u2net.onnx   # a second network's looks
    scripts/eval/looks-study cache dev --u2netp PATH/u2netp.onnx # the shipped second opinion's
    scripts/eval/looks-study merge dev --matte    # with u2p looks cached: the second-opinion variants

Looks (raw ISNet outputs at 1024², float16, under $XDG_CACHE_HOME/backgrounderase/looks/SPLIT):
  whole, whole_m   the photo squeezed to the square, and mirrored (the shipped first pass)
  whole_v          upside down
  crop, crop_m     the subject crop (shipped second pass), crop_v upside down
  lb, lb_m         letterboxed: aspect kept, edges replicated into the padding
  zo, zo_m         zoomed out: squeezed to 0.8 of the square, edges replicated around
  clb, clb_m       the subject crop letterboxed
  u2, u2_m         U²-Net (320², rembg's normalisation), when --u2net is given
  u2p, u2p_m       U²-Netp likewise, when --u2netp is given (best quality's second opinion)

Tune on dev only; the test split is for the one report at the end.
"""

import argparse
import json
import os
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_quality import Truth  # noqa: E402

Image.MAX_IMAGE_PIXELS = None
SIDE = 1024
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "backgrounderase"


# ---------------------------------------------------------------- model passes


def isnet_model():
    found = [p for p in sorted((CACHE / "derived-models").glob("isnet-imgly-medium.fp32-*.onnx")) if ".int8-" not in p.name]
    if not found:
        sys.exit("no fp32 ISNet copy: run `backgrounderase remove` on any photo once")
    return found[0]


def session(path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    s = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    return lambda x: s.run(None, {name: x})[0][0, 0]


def isnet_input(pixels):
    return ((pixels - 128.0) / 256.0).transpose(2, 0, 1)[None].astype(np.float32).copy()


def squeezed(img):
    return isnet_input(np.asarray(img.resize((SIDE, SIDE), Image.LANCZOS), dtype=np.float32))


def padded(img, w, h):
    """`img` at w×h in the middle of the square, its edge pixels repeated around it."""
    small = np.asarray(img.resize((w, h), Image.LANCZOS), dtype=np.float32)
    px, py = (SIDE - w) // 2, (SIDE - h) // 2
    pad = np.pad(small, ((py, SIDE - h - py), (px, SIDE - w - px), (0, 0)), mode="edge")
    return isnet_input(pad), (px, py, w, h)


def both_ways(run, x):
    """The answer for `x` and for its mirror image (mirrored back)."""
    return run(x), run(x[..., ::-1].copy())[:, ::-1]


def subject_crop(alpha, width, height):
    """As `quality::subject_crop`: the subject's box plus a tenth of its longer side and 16 px."""
    ys, xs = np.where(alpha >= 0.5)
    if len(xs) == 0:
        return None
    sx, sy = width / alpha.shape[1], height / alpha.shape[0]
    fx0, fx1, fy0, fy1 = xs.min() * sx, (xs.max() + 1) * sx, ys.min() * sy, (ys.max() + 1) * sy
    m = 0.1 * max(fx1 - fx0, fy1 - fy0) + 16
    r = [int(max(0, np.floor(fx0 - m))), int(max(0, np.floor(fy0 - m))),
         int(min(width, np.ceil(fx1 + m))), int(min(height, np.ceil(fy1 + m)))]
    zoom = max(width / (r[2] - r[0]), height / (r[3] - r[1]))
    return r if zoom >= 1.05 else None


def cache_looks(split_dir, out, u2net, u2netp=None):
    out.mkdir(parents=True, exist_ok=True)
    run = session(isnet_model())
    run_u2 = session(u2net) if u2net else None
    run_u2p = session(u2netp) if u2netp else None
    for path in sorted((split_dir / "images").glob("*")):
        target = out / f"{path.stem}.npz"
        if target.exists() and not (u2net or u2netp):
            continue
        started = time.monotonic()
        img = Image.open(path).convert("RGB")
        width, height = img.size
        looks = dict(np.load(target)) if target.exists() else {}
        meta = json.loads(str(looks.pop("meta"))) if looks else {}
        if not meta:
            x = squeezed(img)
            looks["whole"], looks["whole_m"] = both_ways(run, x)
            looks["whole_v"] = run(x[:, :, ::-1, :].copy())[::-1, :]
            rect = subject_crop((looks["whole"] + looks["whole_m"]) / 2, width, height)
            s = SIDE / max(width, height)
            x, (px, py, w, h) = padded(img, max(1, round(width * s)), max(1, round(height * s)))
            lb, lb_m = both_ways(run, x)
            looks["lb"], looks["lb_m"] = lb[py:py + h, px:px + w], lb_m[py:py + h, px:px + w]
            z = round(0.8 * SIDE)
            x, (px, py, w, h) = padded(img, z, z)
            zo, zo_m = both_ways(run, x)
            looks["zo"], looks["zo_m"] = zo[py:py + h, px:px + w], zo_m[py:py + h, px:px + w]
            if rect:
                crop = img.crop(tuple(rect))
                x = squeezed(crop)
                looks["crop"], looks["crop_m"] = both_ways(run, x)
                looks["crop_v"] = run(x[:, :, ::-1, :].copy())[::-1, :]
                cw, ch = crop.size
                s = SIDE / max(cw, ch)
                x, (px, py, w, h) = padded(crop, max(1, round(cw * s)), max(1, round(ch * s)))
                c, c_m = both_ways(run, x)
                looks["clb"], looks["clb_m"] = c[py:py + h, px:px + w], c_m[py:py + h, px:px + w]
            meta = {"W": width, "H": height, "rect": rect}
        if run_u2 and "u2" not in looks:
            looks["u2"], looks["u2_m"] = u2net_looks(run_u2, img)
        if run_u2p and "u2p" not in looks:
            looks["u2p"], looks["u2p_m"] = u2net_looks(run_u2p, img)
        np.savez_compressed(target, meta=json.dumps(meta), **{k: np.asarray(v, np.float16) for k, v in looks.items()})
        print(f"{path.stem} {width}x{height} {time.monotonic() - started:.1f}s", flush=True)


def u2net_looks(run, img):
    """rembg's U²-Net input: 320², scaled by the maximum, ImageNet mean and std; output min-max stretched."""
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])

    def once(im):
        a = np.asarray(im.resize((320, 320), Image.LANCZOS), dtype=np.float64)
        a = a / max(a.max(), 1e-6)
        y = run(((a - mean) / std).transpose(2, 0, 1)[None].astype(np.float32))
        return (y - y.min()) / max(y.max() - y.min(), 1e-6)

    return once(img), once(img.transpose(Image.FLIP_LEFT_RIGHT))[:, ::-1]


# ---------------------------------------------------------------- merges


def up(a, w, h):
    """Model resolution to photo pixels, as the engine does (Catmull-Rom)."""
    return np.clip(np.asarray(Image.fromarray(a.astype(np.float32), "F").resize((w, h), Image.BICUBIC)), 0, 1)


def box(a, r):
    return ndimage.uniform_filter(a, size=2 * int(r) + 1, mode="nearest")


def near_edge_blend(mask, closer, rect, width, height, wmax=0.5, k=4):
    """As `postprocess`: the closer look counts near the first mask's edge only."""
    if rect is None:
        return mask
    radius = max(2, round(k * max(width, height) / SIDE))
    x0, y0, x1, y1 = rect
    mask = mask.copy()
    sub = mask[y0:y1, x0:x1]
    c = box((sub >= 0.5).astype(np.float32), 2 * radius)
    w = np.clip(4 * np.minimum(c, 1 - c), 0, 1) * wmax
    mask[y0:y1, x0:x1] = sub + (closer - sub) * w
    return mask


def guided(guide, p, r, eps):
    """He et al.'s guided filter, grey guide."""
    mi, mp = box(guide, r), box(p, r)
    a = (box(guide * p, r) - mi * mp) / (box(guide * guide, r) - mi * mi + eps)
    b = mp - a * mi
    return box(a, r) * guide + box(b, r)


def sure_colours(a, photo, r, spread=False):
    """Mean colours of the sure subject and sure background within r, their
    squared distance, and where both are near (as `quality::matte_edge_tile`);
    with `spread`, also each side's colour variance (summed over RGB)."""
    sf = (a > 242 / 255).astype(np.float32)
    sb = (a < 13 / 255).astype(np.float32)
    nf, nb = box(sf, r), box(sb, r)

    def mean(v, s, n):
        return np.stack([box(v[..., c] * s, r) for c in range(3)], -1) / np.maximum(n, 1e-6)[..., None]

    fg, bg = mean(photo, sf, nf), mean(photo, sb, nb)
    contrast = ((fg - bg) ** 2).sum(-1)
    near = (nf > 0.02) & (nb > 0.02)
    if not spread:
        return fg, bg, contrast, near
    var_fg = np.clip(mean(photo**2, sf, nf) - fg**2, 0, None).sum(-1)
    var_bg = np.clip(mean(photo**2, sb, nb) - bg**2, 0, None).sum(-1)
    return fg, bg, contrast, near, var_fg, var_bg


def unsure(a):
    return (a >= 6 / 255) & (a <= 249 / 255)


def colour_line(a, photo, r, share=0.5, tau=0.05):
    """The previous best's colour edge: I = αF + (1 − α)B solved for α, half of it averaged in."""
    fg, bg, contrast, near = sure_colours(a, photo, r)
    estimate = np.clip(((photo - bg) * (fg - bg)).sum(-1) / (contrast + 1e-6), 0, 1)
    w = share * np.clip(contrast / tau, 0, 1) * near * unsure(a)
    return a + w * (estimate - a)


def closed_form(a, photo, width, height, grow=1, epsilon=1e-7, sure=13):
    """pymatting's closed-form matte of the photo at the model's side, trimap
    from `a` (sure below `sure` and above 255 − `sure`, of 255)."""
    from pymatting import estimate_alpha_cf
    import contextlib
    import io

    s = min(1.0, SIDE / max(width, height))
    w, h = max(1, round(width * s)), max(1, round(height * s))
    small = np.asarray(Image.fromarray(np.uint8(np.round(photo * 255))).resize((w, h), Image.LANCZOS), dtype=np.float64) / 255
    aw = np.clip(np.asarray(Image.fromarray(a.astype(np.float32), "F").resize((w, h), Image.BILINEAR)), 0, 1)
    tri = np.where(aw > (255 - sure) / 255, 1.0, np.where(aw < sure / 255, 0.0, 0.5))
    if grow:
        tri[ndimage.binary_dilation(tri == 0.5, iterations=grow)] = 0.5
    if not (tri == 1).any() or not (tri == 0).any() or not (tri == 0.5).any():
        return a
    with contextlib.redirect_stdout(io.StringIO()):
        matte = estimate_alpha_cf(small, tri, laplacian_kwargs={"epsilon": epsilon})
    return up(matte, width, height)


def matte_edge(a, photo, matte, r, tau=0.05, share=1.0, spread=0.0, cap=None):
    """The shipped best's edge: `matte` (`closed_form`) where the sure colours
    differ. Variants tried on dev: `spread` > 0 asks for more contrast where
    the sides' colours vary (a Fisher-like gate against busy backgrounds);
    `cap` limits how far the matte may move the mask."""
    if spread:
        _, _, contrast, near, var_fg, var_bg = sure_colours(a, photo, r, spread=True)
        tau = tau + spread * (var_fg + var_bg)
    else:
        _, _, contrast, near = sure_colours(a, photo, r)
    w = share * np.clip(contrast / tau, 0, 1) * near * unsure(a)
    step = w * (matte - a)
    return a + (step if cap is None else np.clip(step, -cap, cap))


def second_opinion_regions(first, second, min_share=0.01, margin=0.0):
    """As `second_opinion::regions_to_take`: at 1024², the regions (after a
    2-pixel opening) where the two disagree about ½, of at least `min_share`
    of the frame, where `second` is surer (mean |2a − 1|) by more than
    `margin`; grown by 2 pixels."""
    disagree = ndimage.binary_opening((first >= 0.5) != (second >= 0.5), iterations=2)
    labels, n = ndimage.label(disagree)
    take = np.zeros(first.shape, bool)
    for k in range(1, n + 1):
        region = labels == k
        if region.mean() < min_share:
            continue
        if np.abs(2 * second[region] - 1).mean() > np.abs(2 * first[region] - 1).mean() + margin:
            take |= region
    return ndimage.binary_dilation(take, iterations=2)


def where_unsure(base, q, r):
    m = box(base, r)
    return np.where((m > 0.01) & (m < 0.99), np.clip(q, 0, 1), base)


def merges(d, width, height, rect, photo, with_guided, with_matte=False):
    out = {"standard": up(d["whole"], width, height)}
    sq = up((d["whole"] + d["whole_m"]) / 2, width, height)
    lb = up((d["lb"] + d["lb_m"]) / 2, width, height)
    zo = up((d["zo"] + d["zo_m"]) / 2, width, height)
    vf = up((d["whole"] + d["whole_m"] + d["whole_v"]) / 3, width, height)
    c_sq = c_lb = c_v = None
    if rect:
        cw, ch = rect[2] - rect[0], rect[3] - rect[1]
        c_sq = up((d["crop"] + d["crop_m"]) / 2, cw, ch)
        c_lb = (c_sq + up((d["clb"] + d["clb_m"]) / 2, cw, ch)) / 2
        c_v = up((d["crop"] + d["crop_m"] + d["crop_v"]) / 3, cw, ch)

    def blend(base, closer, **kw):
        return near_edge_blend(base, closer, rect, width, height, **kw)

    out["mirror"] = sq
    out["shipped passes (mirror + subject)"] = shipped = blend(sq, c_sq)
    out["+ upside down"] = blend(vf, c_v)
    out["+ letterbox"] = blend((sq + lb) / 2, c_sq)
    out["+ letterbox, crop letterbox"] = blend((sq + lb) / 2, c_lb)
    out["+ letterbox, crop letterbox, w.7 k6"] = blend((sq + lb) / 2, c_lb, wmax=0.7, k=6)
    out["+ zoom-out"] = blend((sq + zo) / 2, c_sq)
    out["+ letterbox + zoom-out"] = blend((sq + lb + zo) / 3, c_sq)
    whole_crop = sq.copy()
    if rect:
        whole_crop[rect[1]:rect[3], rect[0]:rect[2]] = c_sq
    out["subject over the whole crop"] = whole_crop
    if "u2" in d:
        u2_low = up((d["u2"] + d["u2_m"]) / 2, SIDE, SIDE)
        sq_low = (d["whole"] + d["whole_m"]) / 2
        for w in (0.25, 0.5):
            out[f"+ U2-Net averaged ({w})"] = blend(up((1 - w) * sq_low + w * u2_low, width, height), c_sq)
        corr = ndimage.gaussian_filter(u2_low - sq_low, 12)
        out["+ U2-Net low frequencies (0.5, sigma 12)"] = blend(up(np.clip(sq_low + 0.5 * corr, 0, 1), width, height), c_sq)
    if with_matte:
        def model_px(k):
            return max(3, round(k * max(width, height) / SIDE))
        out["shipped + colour line (r2, half)"] = colour_line(shipped, photo, model_px(2))
        matte = closed_form(shipped, photo, width, height)
        for k in (2, 4):
            for tau in (0.05, 0.2):
                for share in (0.5, 1.0):
                    out[f"shipped + matte (r{k}, tau {tau:g}, share {share:g})"] = matte_edge(
                        shipped, photo, matte, model_px(k), tau, share)
        # Later variants, around the shipped r4, tau 0.05, share 1.
        r4 = model_px(4)
        first = (d["whole"] + d["whole_m"]) / 2
        for key, name in (("u2p", "U2-Netp"), ("u2", "U2-Net")):
            if key not in d:
                continue
            second = up((d[key] + d[f"{key}_m"]) / 2, SIDE, SIDE)
            answer = up(second, width, height)
            for share, margin in ((0.002, 0), (0.005, 0), (0.01, 0), (0.005, 0.1)):
                take = second_opinion_regions(first, second, share, margin)
                if not take.any():
                    out[f"  second opinion {name} {share:g} m{margin:g}"] = out["shipped + matte (r4, tau 0.05, share 1)"]
                    continue
                t = up(take.astype(np.float32), width, height)
                base = shipped + t * (answer - shipped)
                out[f"  second opinion {name} {share:g} m{margin:g}"] = matte_edge(
                    base, photo, closed_form(base, photo, width, height), r4)
        for spread in (0.5, 2):
            out[f"  colour spread gate x{spread:g}"] = matte_edge(shipped, photo, matte, r4, spread=spread)
        for cap in (0.2, 0.3):
            out[f"  step capped at {cap:g}"] = matte_edge(shipped, photo, matte, r4, cap=cap)
        if with_matte == "all":
            for eps in (1e-6, 1e-5):
                out[f"  epsilon {eps:g}"] = matte_edge(
                    shipped, photo, closed_form(shipped, photo, width, height, epsilon=eps), r4)
            for sure in (5, 25):
                out[f"  sure below {sure} / above {255 - sure}"] = matte_edge(
                    shipped, photo, closed_form(shipped, photo, width, height, sure=sure), r4)
            others = {"+ letterbox + zoom-out": out["+ letterbox + zoom-out"]}
            if "u2" in d:
                others["+ U2-Net averaged (0.25)"] = out["+ U2-Net averaged (0.25)"]
            for name, base in others.items():
                out[f"{name} + matte"] = matte_edge(base, photo, closed_form(base, photo, width, height), r4)
    if with_guided:
        grey = photo @ np.array([0.299, 0.587, 0.114], np.float32)
        for c in (0.5, 1, 2):
            r = max(1, round(c * max(width, height) / SIDE))
            for eps in (1e-3, 1e-2):
                out[f"shipped + guided r={c}x eps={eps:g}"] = where_unsure(shipped, guided(grey, shipped, r, eps), r)
    return out


def score_one(job):
    split_dir, looks_dir, stem, with_guided, with_matte = job
    d = np.load(looks_dir / f"{stem}.npz")
    meta = json.loads(str(d["meta"]))
    d = {k: d[k].astype(np.float32) for k in d.files if k != "meta"}
    truth = Truth(split_dir.parent, split_dir.name, stem)
    photo = np.asarray(Image.open(split_dir / "images" / f"{stem}.jpg").convert("RGB"), dtype=np.float32) / 255
    found = merges(d, meta["W"], meta["H"], meta["rect"], photo, with_guided, with_matte)
    return stem, {n: truth.score(np.round(a * 255) / 255, photo) for n, a in found.items()}


def report(rows, split):
    names, stems = list(rows), sorted(rows["standard"])
    base = np.mean([rows["standard"][s]["bmae"] for s in stems])
    print(f"{split} split, {len(stems)} images; boundary MAE change against the standard pass; "
          f"wins: images with a lower boundary MAE than the shipped passes (before the edge step)")
    print(f"{'merge':44} {'IoU':>7} {'bMAE':>7} {'change':>7} {'recomp':>7} {'wins':>5}")
    for n in names:
        mean = {k: np.mean([rows[n][s][k] for s in stems]) for k in ("iou", "bmae", "recomp")}
        wins = sum(rows[n][s]["bmae"] < rows["shipped passes (mirror + subject)"][s]["bmae"] for s in stems)
        print(f"{n:44} {mean['iou']:7.4f} {mean['bmae']:7.4f} {mean['bmae'] / base - 1:+7.1%} {mean['recomp']:7.4f} {wins:5}")
    oracle = np.mean([min(rows[n][s]["bmae"] for n in names) for s in stems])
    print(f"{'oracle: the best merge for each image':44} {'':7} {oracle:7.4f} {oracle / base - 1:+7.1%}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["cache", "merge"])
    parser.add_argument("split", choices=["dev", "test"])
    parser.add_argument("--set", type=Path, default=CACHE / "eval-set")
    parser.add_argument("--u2net", type=Path, help="U²-Net ONNX file (rembg's u2net.onnx) for its looks")
    parser.add_argument("--u2netp", type=Path, help="U²-Netp ONNX file (best quality's second opinion) for its looks")
    parser.add_argument("--guided", action="store_true", help="also score guided-filter refinements")
    parser.add_argument("--matte", nargs="?", const="shipped", choices=["shipped", "all"],
                        help="also score the colour-line and matte edges (pymatting); "
                        "`--matte all` also solves the matte again for other epsilons, trimaps and merges (slow)")
    parser.add_argument("--json", type=Path, help="write every score here")
    args = parser.parse_args()
    split_dir = args.set / args.split
    looks_dir = CACHE / "looks" / args.split
    if args.action == "cache":
        cache_looks(split_dir, looks_dir, args.u2net, args.u2netp)
        return
    stems = sorted(p.stem for p in looks_dir.glob("*.npz"))
    if not stems:
        sys.exit(f"no cached looks: run `looks-study cache {args.split}` first ({looks_dir})")
    rows = {}
    with Pool(min(2, os.cpu_count() or 1)) as pool:
        for stem, scores in pool.imap_unordered(score_one, [(split_dir, looks_dir, s, args.guided, args.matte) for s in stems]):
            for name, s in scores.items():
                rows.setdefault(name, {})[stem] = s
    report(rows, args.split)
    if args.json:
        args.json.write_text(json.dumps(rows))


if __name__ == "__main__":
    main()
