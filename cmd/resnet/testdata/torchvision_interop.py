"""Writes what TestTorchvisionInterop compares resnet against, with real torch.

Run with Debian's python3-torchvision (torch 1.13, torchvision 0.14, Pillow 9.4):

    /usr/bin/python3 torchvision_interop.py OUTDIR

OUTDIR receives, for torchvision's resnet18 and resnet50 with seeded random
parameters and BatchNorm affine parameters, and BatchNorm statistics measured
on the test inputs (no network access for the published weights; BatchNorm
must be non-trivial for the test to check its arithmetic):

    ARCH.pth             torch.save(state_dict), zip format
    ARCH_legacy.pth      torch.save(..., _use_new_zipfile_serialization=False)
    ARCH_bn.onnx         torch.onnx.export, BatchNorm kept as nodes
    ARCH_folded.onnx     torch.onnx.export, BatchNorm folded into the convs
    ARCH_bf16.safetensors  the state_dict in bfloat16, safetensors layout
    ARCH_logits.npy      model(x) in float32, x = x.npy
    ARCH_bf16_logits.npy model(x) with the bfloat16-rounded parameters

and, for the wiring of the other catalogued ImageNet networks (resnet34,
resnet101, resnet152, the v1 bottlenecks resnet50v1 … resnet152v1 and the
plain18/plain34 baselines, built from torchvision's modules), NAME.pth and
NAME_logits.npy on x2.npy (the first two images of x); and the
preprocessing cases: images written by Pillow (PNG, JPEG, grey,
small, large), for each torchvision's eval transform as NAME_tensor.npy,
the pixels Pillow decoded as NAME_pixels.npy (so decoder and resampling
differences can be told apart), and resnet50's logits on the tensors as
images_logits.npy. manifest.json lists all of it with the versions used.
"""

import json
import os
import struct
import sys

import numpy as np
import torch
import torchvision
from PIL import Image, ImageDraw
from torchvision import transforms
from torchvision.models._meta import _IMAGENET_CATEGORIES

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
torch.manual_seed(2016)
rng = np.random.default_rng(2016)


def path(name):
    return os.path.join(out, name)


def randomize_bn(model):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)


def calibrate_bn(model, batch):
    """Sets the BatchNorm statistics to those of batch (one training-mode
    pass with a cumulative average), so that activations stay O(1) through
    the depth and the logits depend on the image, as a trained network's
    do; random statistics alone leave ResNet-50's ranking almost the same
    for every input."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        model(batch)


def write_safetensors(filename, state, dtype):
    """The safetensors layout: u64 header length, JSON header, raw bytes."""
    names = sorted(k for k in state if not k.endswith("num_batches_tracked"))
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for k in names:
        t = state[k].to(dtype).contiguous()
        raw = t.view(torch.int16).numpy().tobytes() if dtype == torch.bfloat16 else t.numpy().tobytes()
        header[k] = {"dtype": {torch.bfloat16: "BF16", torch.float32: "F32"}[dtype],
                     "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(filename, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def scene(w, h):
    """A picture with edges, gradients and texture: smooth regions test the
    interpolation, edges the antialiasing, noise the rounding."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([255 * xx / (w - 1), 255 * yy / (h - 1), 128 + 100 * np.sin(xx / 7.0 + yy / 11.0)], -1)
    img += rng.normal(0, 12, img.shape)
    im = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")
    d = ImageDraw.Draw(im)
    d.ellipse([w // 5, h // 4, w // 2, 3 * h // 4], fill=(250, 30, 20))
    d.rectangle([3 * w // 5, h // 6, 4 * w // 5, h // 2], fill=(10, 200, 40))
    for i in range(0, w, 9):
        d.line([i, 0, w - i, h - 1], fill=(i % 256, 255 - i % 256, 90), width=1)
    return im


def with_alpha(im):
    """im with an alpha channel that varies over the picture, 0 to 255."""
    w, h = im.size
    yy, xx = np.mgrid[0:h, 0:w]
    im = im.copy()
    im.putalpha(Image.fromarray(((xx * 7 + yy * 3) % 256).astype(np.uint8), "L"))
    return im


images = []
cases = [
    ("landscape.png", scene(500, 375), {}),           # shorter side 375 -> 256: downscale
    ("portrait.png", scene(240, 320), {}),            # 240 -> 256: upscale, odd crop offsets
    ("small.png", scene(97, 61), {}),                 # large upscale
    ("large.png", scene(1601, 1203), {}),             # strong downscale (wide filter support)
    ("grey.png", scene(300, 260).convert("L"), {}),   # single channel, converted to RGB
    ("rgba.png", with_alpha(scene(260, 300)), {}),    # alpha: convert("RGB") drops it
    ("greyalpha.png", with_alpha(scene(300, 260).convert("L")), {}),  # LA
    ("palette.png", scene(280, 270).quantize(200), {"transparency": 3}),  # P with a transparent entry
    ("photo.jpg", scene(500, 375), {"quality": 90}),  # 4:2:0 JPEG
    ("photo444.jpg", scene(333, 250), {"quality": 95, "subsampling": 0}),  # 4:4:4 JPEG
    ("photo422.jpg", scene(401, 299), {"quality": 85, "subsampling": 1}),  # 4:2:2 JPEG, odd sizes
    ("odd420.jpg", scene(257, 193), {"quality": 75}),  # 4:2:0 with odd width and height
    ("progressive.jpg", scene(451, 338), {"quality": 88, "progressive": True}),  # progressive 4:2:0
    ("grey90.jpg", scene(300, 260).convert("L"), {"quality": 90}),  # one-component JPEG (a stem of its own: files are named by stem)
]
transform = transforms.Compose([
    transforms.Resize(256),
    transforms.CenterCrop(224),
    transforms.ToTensor(),
    transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
])
tensors = []
for name, im, opts in cases:
    im.save(path(name), **opts)
    with Image.open(path(name)) as f:
        rgb = f.convert("RGB")  # what torchvision's ImageFolder loader does
    stem = os.path.splitext(name)[0]
    np.save(path(stem + "_pixels.npy"), np.asarray(rgb).astype(np.float32))  # H, W, 3
    t = transform(rgb)
    np.save(path(stem + "_tensor.npy"), t.numpy())
    tensors.append(t)
    images.append({"file": name, "pixels": stem + "_pixels.npy", "tensor": stem + "_tensor.npy"})
x = torch.randn(3, 3, 224, 224)
np.save(path("x.npy"), x.numpy())
manifest = {
    "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__,
                 "pillow": Image.__version__, "numpy": np.__version__},
    "imagenet_classes": list(_IMAGENET_CATEGORIES),
    "weights": [],
}

models = {}
for arch in ["resnet18", "resnet50"]:
    model = getattr(torchvision.models, arch)()
    randomize_bn(model)
    calibrate_bn(model, torch.cat([x, torch.stack(tensors)]))
    model.eval()
    models[arch] = model
    files = {"pytorch_zip": arch + ".pth", "pytorch_legacy": arch + "_legacy.pth",
             "onnx_bn": arch + "_bn.onnx", "onnx_folded": arch + "_folded.onnx"}
    state = model.state_dict()
    torch.save(state, path(files["pytorch_zip"]))
    torch.save(state, path(files["pytorch_legacy"]), _use_new_zipfile_serialization=False)
    torch.onnx.export(model, x[:1], path(files["onnx_folded"]))  # eval mode: BN folded
    torch.onnx.export(model, x[:1], path(files["onnx_bn"]), training=torch.onnx.TrainingMode.PRESERVE,
                      do_constant_folding=False)
    with torch.no_grad():
        np.save(path(arch + "_logits.npy"), model(x).numpy())
    write_safetensors(path(arch + "_bf16.safetensors"), state, torch.bfloat16)
    rounded = getattr(torchvision.models, arch)()
    rounded.load_state_dict({k: v.to(torch.bfloat16).to(v.dtype) if v.is_floating_point() else v
                             for k, v in state.items()})
    rounded.eval()
    with torch.no_grad():
        np.save(path(arch + "_bf16_logits.npy"), rounded(x).numpy())
    # Each weight file with the logits torch computes from what it holds.
    manifest["weights"] += [{"arch": arch, "format": fmt, "file": f, "logits": arch + "_logits.npy"}
                            for fmt, f in files.items()]
    manifest["weights"].append({"arch": arch, "format": "safetensors_bf16", "file": arch + "_bf16.safetensors",
                                "logits": arch + "_bf16_logits.npy"})


def to_v1(model):
    """The paper's bottleneck (v1): a downsampling block strides on its
    first 1x1 convolution instead of the 3x3 (torchvision's v1.5)."""
    for stage in (model.layer2, model.layer3, model.layer4):
        stage[0].conv1.stride, stage[0].conv2.stride = (2, 2), (1, 1)
    return model


def plain_forward(self, x):
    return self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))))


def to_plain(model):
    """The plain baseline: the same layers without shortcuts (and without
    the projection convolutions, which a plain network does not have)."""
    for stage in (model.layer1, model.layer2, model.layer3, model.layer4):
        for block in stage:
            block.downsample = None
            block.forward = plain_forward.__get__(block)
    return model


# The wiring of the other catalogued ImageNet networks, one zip checkpoint
# each with torch's logits on the first two images of x: the deeper
# torchvision ResNets, the paper's v1 bottlenecks (stride moved by hand: the
# tensors are v1.5's, so -arch names the variant) and the plain baselines.
x2 = x[:2]
wiring = [("resnet34", "resnet34", None, ""), ("resnet101", "resnet101", None, ""), ("resnet152", "resnet152", None, ""),
          ("resnet50v1", "resnet50", to_v1, "resnet50v1"), ("resnet101v1", "resnet101", to_v1, "resnet101v1"),
          ("resnet152v1", "resnet152", to_v1, "resnet152v1"),
          ("plain18", "resnet18", to_plain, ""), ("plain34", "resnet34", to_plain, "")]
for name, tv, change, flag in wiring:
    model = getattr(torchvision.models, tv)()
    if change:
        model = change(model)
    randomize_bn(model)
    calibrate_bn(model, x)
    model.eval()
    torch.save(model.state_dict(), path(name + ".pth"))
    with torch.no_grad():
        np.save(path(name + "_logits.npy"), model(x2).numpy())
        # The same network in float64: the oracle for both float32 sides
        # (through 50 residual blocks float32 rounding compounds).
        np.save(path(name + "_logits64.npy"), model.double()(x2.double()).float().numpy())
    manifest["wiring"] = manifest.get("wiring", []) + [
        {"arch": name, "file": name + ".pth", "logits": name + "_logits.npy", "logits64": name + "_logits64.npy", "arch_flag": flag}]
np.save(path("x2.npy"), x2.numpy())

with torch.no_grad():
    np.save(path("images_logits.npy"), models["resnet50"](torch.stack(tensors)).numpy())
manifest["images"] = images

with open(path("manifest.json"), "w") as f:
    json.dump(manifest, f, indent=1)
