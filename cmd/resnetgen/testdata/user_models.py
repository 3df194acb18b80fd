"""Writes the networks a user brings to resnetgen, with real torch.

Run with Debian's python3-torchvision (torch 1.13, torchvision 0.14):

    /usr/bin/python3 user_models.py OUTDIR

OUTDIR receives, for each case, the checkpoint torch writes, an input batch
and torch's logits on it (float32 .npy):

    pets.pth, pets_x.npy, pets_logits.npy
        torchvision resnet50(num_classes=37), torch.save zip, 2 images of 256x256
    flowers.onnx, flowers_x.npy, flowers_logits.npy
        torchvision resnet18(num_classes=10), torch.onnx.export (BatchNorm
        folded, the exporter's default) at a fixed 1x3x192x160 input, 2 images
        of 192x160 (height 192, width 160)

Parameters are seeded random (no network access for published weights);
BatchNorm statistics are measured on the inputs so activations stay O(1)
and the logits depend on the image, as a trained network's do.
"""

import os
import sys

import numpy as np
import torch
import torchvision

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
torch.manual_seed(37)


def path(name):
    return os.path.join(out, name)


def prepare(model, x):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
                m.reset_running_stats()
                m.momentum = None
    model.train()
    with torch.no_grad():
        model(x)
    model.eval()


def case(name, model, h, w):
    x = torch.randn(2, 3, h, w)
    prepare(model, x)
    with torch.no_grad():
        logits = model(x)
    np.save(path(name + "_x.npy"), x.numpy().astype(np.float32))
    np.save(path(name + "_logits.npy"), logits.numpy().astype(np.float32))
    return x


pets = torchvision.models.resnet50(num_classes=37)
case("pets", pets, 256, 256)
torch.save(pets.state_dict(), path("pets.pth"))

flowers = torchvision.models.resnet18(num_classes=10)
case("flowers", flowers, 192, 160)
torch.onnx.export(flowers, torch.randn(1, 3, 192, 160), path("flowers.onnx"), input_names=["input"], output_names=["logits"])
