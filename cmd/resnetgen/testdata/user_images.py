"""Writes what a user brings to resnetgen -labels -main, with real torch.

Run with Debian's python3-torchvision (torch 1.13, torchvision 0.14):

    /usr/bin/python3 user_images.py OUTDIR

OUTDIR receives:

    flowers.pth    torchvision resnet18(num_classes=5), its state_dict (torch.save zip)
    a.jpg, b.png   two images of odd sizes, written by Pillow (JPEG: quality 90, 4:2:0)
    want.json      for each image, torchvision's eval transform at 200x300 (Resize(343),
                   CenterCrop((200, 300)), ToTensor(), Normalize(ImageNet's mean and std))
                   on the file opened by PIL and converted to RGB, the network's logits,
                   and the softmax of the float32 logits computed in float64:
                   {"a.jpg": {"logits": [...], "probabilities": [...]}, ...}

Parameters are seeded random (no network access for published weights);
BatchNorm statistics are measured on the two images and a few random inputs,
so that the logits depend on the image, as a trained network's do.
"""

import json
import os
import sys

import numpy as np
import torch
import torchvision
from PIL import Image
from torchvision import transforms

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
torch.manual_seed(5)
rng = np.random.default_rng(5)


def path(name):
    return os.path.join(out, name)


def picture(w, h, phase):
    """A smooth scene with edges and a little noise: something a JPEG encoder has work on."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 128 + 100 * np.sin(x / (17 + phase) + y / 29)
    g = 128 + 90 * np.cos(y / (13 + phase) - x / 41)
    b = np.where((x // 37 + y // 23 + phase) % 2 == 0, 200.0, 40.0)
    img = np.stack([r, g, b], axis=-1) + rng.normal(0, 6, (h, w, 3))
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


picture(517, 389, 0).save(path("a.jpg"), quality=90)
Image.fromarray(255 - np.asarray(picture(263, 411, 3))[:, ::-1]).save(path("b.png"))

tf = transforms.Compose([
    transforms.Resize(343),
    transforms.CenterCrop((200, 300)),
    transforms.ToTensor(),
    transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
])
names = ["a.jpg", "b.png"]
x = torch.stack([tf(Image.open(path(n)).convert("RGB")) for n in names])

model = torchvision.models.resnet18(num_classes=5)
with torch.no_grad():
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.5, 0.5)
            m.reset_running_stats()
            m.momentum = None
    model.train()
    model(torch.cat([x, torch.randn(6, 3, 200, 300)]))
    model.eval()
    model.fc.weight.mul_(8)  # logits that differ between the images
    logits = model(x)
torch.save(model.state_dict(), path("flowers.pth"))

want = {}
for n, row in zip(names, logits.numpy().astype(np.float32)):
    l64 = row.astype(np.float64)
    p = np.exp(l64 - l64.max())
    want[n] = {"logits": [float(v) for v in row], "probabilities": [float(v) for v in p / p.sum()]}
with open(path("want.json"), "w") as f:
    json.dump(want, f, indent=1)
