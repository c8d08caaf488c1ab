"""Builds the quality evaluation set: real objects with a true alpha channel
(Tux Paint's photo stamps, Debian `tuxpaint-stamps-default`) composited on real
photos (Debian `plasma-workspace-wallpapers`) at 0.3–12 MP.

Objects *and* backgrounds are split: nothing in `test/` shares an object or a
background with `dev/`. Tune on dev; report test.

    python make_set.py STAMPS_DIR PHOTOS_DIR OUT_DIR

Deterministic: the same inputs give the same files (fixed seed, no clock).
"""

import csv
import random
import sys
from pathlib import Path

import numpy as np
from PIL import Image

# (stamp path under stamps/, short name, what it tests)
DEV_OBJECTS = [
    ("animals/mammals/aquatic/otter.png", "otter", "fur"),
    ("animals/mammals/cats/lion-2.png", "lion", "fur, mane"),
    ("animals/mammals/bovines/gnu-baby.png", "gnu-calf", "fur, legs"),
    ("animals/mammals/rodents/capybara.png", "capybara", "fur"),
    ("animals/birds/albino_peahen.png", "peahen", "feathers, crest"),
    ("animals/birds/crowned_crane.png", "crane", "thin legs, crest"),
    ("animals/insects/mantis.png", "mantis", "thin legs"),
    ("medical/stethoscope.png", "stethoscope", "thin tube, holes"),
    ("household/Lightbulb.png", "lightbulb", "glass"),
    ("plants/trees/holm_oak.png", "oak", "soft foliage"),
    ("plants/thyme.png", "thyme", "thin stems"),
    ("household/tools/cementmixer.png", "cement-mixer", "hard edges, holes"),
    ("vehicles/emergency/firetruck.png", "fire-truck", "hard product edges"),
    ("food/fruit/orange_seville.png", "orange", "hard round edge"),
    ("hobbies/music/string/guitar2.png", "guitar", "strings, hard edges"),
]
TEST_OBJECTS = [
    ("animals/mammals/cats/tiger_sumatran.png", "tiger", "fur"),
    ("animals/mammals/bovines/indian_blackbuck.png", "blackbuck", "fur, thin legs, horns"),
    ("animals/mammals/rodents/squirrel.png", "squirrel", "fur, bushy tail"),
    ("animals/birds/pink_flamingo.png", "flamingo", "thin legs, feathers"),
    ("animals/fish/lobster.png", "lobster", "antennae"),
    ("animals/insects/hoverfly.png", "hoverfly", "translucent wings"),
    ("medical/syringe.png", "syringe", "translucent plastic"),
    ("seasonal/candle.png", "candle", "soft glow"),
    ("plants/trees/tree336.png", "tree", "soft foliage"),
    ("plants/trees/liberia-palm.png", "palm", "thin fronds"),
    ("vehicles/wheel_tractor.png", "tractor", "hard edges, holes"),
    ("vehicles/race/indycar.png", "race-car", "hard product edges"),
    ("plants/flowers/anemone_red.png", "anemone", "petals"),
    ("military/paratrooper.png", "paratrooper", "thin lines, canopy"),
    ("vehicles/flight/balloon360.png", "balloon", "hard round edge, ropes"),
]
DEV_BACKGROUNDS = [
    "evening-glow-2560x1600.jpg",
    "cold-ripple-2560x1600.jpg",
    "fallen-leaf-2560x1600.jpg",
    "kite-2560x1600.jpg",
    "grey-2560x1600.jpg",
    "colorful-cups-2560x1600.jpg",
]
TEST_BACKGROUNDS = [
    "by-the-water-2560x1600.jpg",
    "path-2560x1600.jpg",
    "one-stands-out-2560x1600.jpg",
    "darkest-hour-2560x1600.jpg",
    "summer-1am-2560x1600.jpg",
    "volna-5120x2880.jpg",
]
MEGAPIXELS = [0.3, 0.5, 0.8, 1.2, 2.0, 3.0, 4.5, 6.0, 8.0, 12.0]
ASPECTS = [(3, 2), (4, 3), (1, 1), (2, 3), (16, 9), (4, 5)]
PER_OBJECT = 3


def resize_premultiplied(rgba, size):
    """Lanczos resize in premultiplied float, so edges carry no dark fringe."""
    a = np.asarray(rgba, dtype=np.float32) / 255.0
    alpha = a[..., 3]
    out = []
    for c in range(3):
        out.append(a[..., c] * alpha)
    out.append(alpha)
    resized = [
        np.asarray(Image.fromarray(ch, mode="F").resize(size, Image.LANCZOS))
        for ch in out
    ]
    alpha = np.clip(resized[3], 0.0, 1.0)
    premult = np.stack([np.clip(ch, 0.0, 1.0) for ch in resized[:3]], axis=-1)
    premult = np.minimum(premult, alpha[..., None])
    return premult, alpha


def background_crop(photo, aspect, megapixels, rng):
    aw, ah = aspect
    width = int(round((megapixels * 1e6 * aw / ah) ** 0.5))
    height = int(round(width * ah / aw))
    pw, ph = photo.size
    # The largest crop of this aspect, at a random place.
    cw = min(pw, int(ph * aw / ah))
    ch = int(cw * ah / aw)
    x = rng.randint(0, pw - cw)
    y = rng.randint(0, ph - ch)
    crop = photo.crop((x, y, x + cw, y + ch))
    return crop.resize((width, height), Image.LANCZOS)


def composite(obj, background, rng):
    bw, bh = background.size
    ow, oh = obj.size
    fraction = rng.uniform(0.45, 0.85)
    scale = min(fraction * bh / oh, 0.9 * bw / ow)
    size = (max(1, int(ow * scale)), max(1, int(oh * scale)))
    premult, alpha = resize_premultiplied(obj, size)
    x = rng.randint(0, bw - size[0])
    y = rng.randint(0, bh - size[1])
    bg = np.asarray(background.convert("RGB"), dtype=np.float32) / 255.0
    full_alpha = np.zeros((bh, bw), dtype=np.float32)
    full_alpha[y : y + size[1], x : x + size[0]] = alpha
    full_premult = np.zeros((bh, bw, 3), dtype=np.float32)
    full_premult[y : y + size[1], x : x + size[0]] = premult
    photo = full_premult + bg * (1.0 - full_alpha[..., None])
    straight = np.where(
        full_alpha[..., None] > 1e-6,
        full_premult / np.maximum(full_alpha[..., None], 1e-6),
        0.0,
    )
    to8 = lambda v: (np.clip(v, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return to8(photo), to8(full_alpha), to8(straight)


def build(split, objects, backgrounds, stamps, photos, out, rng, writer):
    (out / split / "images").mkdir(parents=True, exist_ok=True)
    (out / split / "truth").mkdir(parents=True, exist_ok=True)
    for index, (stamp, name, tags) in enumerate(objects):
        obj = Image.open(stamps / stamp).convert("RGBA")
        for k in range(PER_OBJECT):
            bg_name = backgrounds[(index * PER_OBJECT + k) % len(backgrounds)]
            megapixels = MEGAPIXELS[(index * PER_OBJECT + k) % len(MEGAPIXELS)]
            aspect = ASPECTS[rng.randrange(len(ASPECTS))]
            background = background_crop(
                Image.open(photos / bg_name).convert("RGB"), aspect, megapixels, rng
            )
            photo, alpha, fg = composite(obj, background, rng)
            stem = f"{name}-{k + 1}-{bg_name.split('-2560')[0].split('-5120')[0]}"
            Image.fromarray(photo).save(
                out / split / "images" / f"{stem}.jpg", quality=95, subsampling=0
            )
            Image.fromarray(alpha, mode="L").save(out / split / "truth" / f"{stem}.alpha.png")
            Image.fromarray(fg).save(out / split / "truth" / f"{stem}.fg.png")
            h, w = alpha.shape
            writer.writerow([split, stem, name, tags, bg_name, w, h, f"{w * h / 1e6:.2f}"])
            print(f"{split}/{stem}: {w}x{h}", flush=True)


def main():
    stamps, photos, out = (Path(p) for p in sys.argv[1:4])
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(20261203)
    with open(out / "manifest.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["split", "image", "object", "tests", "background", "width", "height", "megapixels"])
        build("dev", DEV_OBJECTS, DEV_BACKGROUNDS, stamps, photos, out, rng, writer)
        build("test", TEST_OBJECTS, TEST_BACKGROUNDS, stamps, photos, out, rng, writer)


if __name__ == "__main__":
    main()
