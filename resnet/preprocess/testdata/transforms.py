"""torchvision's evaluation transform on image files, for
resnet/preprocess's TestTransformMatchesTorchvision.

Usage: transforms.py DIR

DIR/spec.json (written by the Go test) lists image files already in DIR
and transforms: {"files": [name, ...], "transforms": [{"name", "height",
"width", "resize", "mean", "std"}, ...]}. This script adds image files of
kinds Pillow writes (and Go's encoders do not), then, for every file, opens
it with PIL and converts it to RGB as torchvision's ImageFolder loader does,
and writes

  NAME.rgb.npy                the decoded pixels, H x W x 3
  NAME.TRANSFORM.pixels.npy   after Resize and CenterCrop, H x W x 3
  NAME.TRANSFORM.tensor.npy   after the whole transform, 3 x H x W

(all float32; pixels hold 0..255) and DIR/manifest.json listing them with
the versions used. A file Pillow writes that resnet/preprocess decodes with
other arithmetic than Pillow's is marked "exact": false.
"""

import json
import os
import sys

import numpy as np
import PIL
import torch
import torchvision
from PIL import Image
from torchvision import transforms

out = sys.argv[1]
spec = json.load(open(os.path.join(out, "spec.json")))


def path(name):
    return os.path.join(out, name)


def scene(w, h, seed):
    """Gradients, hard edges and noise: smooth regions test the
    interpolation, edges the antialiasing, noise the rounding."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([255 * xx / max(w - 1, 1), 255 * yy / max(h - 1, 1),
                    128 + 100 * np.sin(xx / 7.0 + yy / 11.0)], -1)
    img += rng.normal(0, 12, img.shape)
    img[(xx - w / 3) ** 2 / (w / 6 + 1) ** 2 + (yy - h / 2) ** 2 / (h / 4 + 1) ** 2 < 1] = (250, 30, 20)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def with_alpha(im):
    w, h = im.size
    yy, xx = np.mgrid[0:h, 0:w]
    im = im.copy()
    im.putalpha(Image.fromarray(((xx * 7 + yy * 3) % 256).astype(np.uint8), "L"))
    return im


# name, image, save options, whether our decoding is Pillow's to the bit
made = [
    ("pil-palette-trns.png", scene(129, 67, 1).quantize(200), {"transparency": 3}, True),
    ("pil-greyalpha.png", with_alpha(scene(67, 129, 2).convert("L")), {}, True),
    ("pil-1bit.png", scene(75, 53, 3).convert("1"), {}, True),
    ("pil-444.jpg", scene(333, 251, 4), {"quality": 95, "subsampling": 0}, True),
    ("pil-422.jpg", scene(301, 199, 5), {"quality": 85, "subsampling": 1}, True),
    ("pil-420-progressive.jpg", scene(451, 339, 6), {"quality": 88, "progressive": True}, True),
    ("pil-grey.jpg", scene(97, 203, 7).convert("L"), {"quality": 90}, True),
    # CMYK: resnet/jpeg leaves it to image/jpeg (Go's IDCT and CMYK → RGB).
    ("pil-cmyk.jpg", scene(211, 149, 8).convert("CMYK"), {"quality": 90}, False),
]
files = [{"file": f, "exact": True} for f in spec["files"]]
for name, im, opts, exact in made:
    im.save(path(name), **opts)
    files.append({"file": name, "exact": exact})

tfs = []
for t in spec["transforms"]:
    steps = [transforms.Resize(t["resize"])] if t["resize"] else []
    steps.append(transforms.CenterCrop((t["height"], t["width"])))
    tfs.append((t["name"],
                transforms.Compose(steps),
                transforms.Compose(steps + [transforms.ToTensor(), transforms.Normalize(mean=t["mean"], std=t["std"])])))

for f in files:
    with Image.open(path(f["file"])) as im:
        rgb = im.convert("RGB")  # torchvision's ImageFolder loader
    f["size"] = list(rgb.size)
    f["rgb"] = f["file"] + ".rgb.npy"
    np.save(path(f["rgb"]), np.asarray(rgb).astype(np.float32))
    f["cases"] = []
    for name, crop, whole in tfs:
        c = {"transform": name, "pixels": "%s.%s.pixels.npy" % (f["file"], name),
             "tensor": "%s.%s.tensor.npy" % (f["file"], name)}
        np.save(path(c["pixels"]), np.asarray(crop(rgb)).astype(np.float32))
        np.save(path(c["tensor"]), whole(rgb).numpy())
        f["cases"].append(c)

json.dump({"versions": {"torch": torch.__version__, "torchvision": torchvision.__version__,
                        "pillow": PIL.__version__, "numpy": np.__version__},
           "files": files}, open(path("manifest.json"), "w"), indent=1)
