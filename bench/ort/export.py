"""Exports torchvision ResNets to ONNX for bench/ort, with real torch.

    /usr/bin/python3 export.py OUTDIR ARCH…   (Debian's python3-torchvision)

OUTDIR/ARCH.onnx: torchvision's ARCH (resnet18 … resnet152; resnet50v1 …
for the v1 bottleneck, the stride moved to the first 1x1) with seeded
random weights, exported by torch.onnx.export in eval mode (BatchNorm
folded into the convolutions, as ONNX Runtime would fuse it anyway) at
1x3x224x224 with a dynamic batch axis. ONNX Runtime and resnetgen then run
the same weights from the same file.
"""

import os
import sys

import torch
import torchvision

out = sys.argv[1]
for arch in sys.argv[2:]:
    torch.manual_seed(0)
    v1 = arch.endswith("v1")
    model = getattr(torchvision.models, arch[:-2] if v1 else arch)()
    if v1:
        for stage in (model.layer2, model.layer3, model.layer4):
            stage[0].conv1.stride, stage[0].conv2.stride = (2, 2), (1, 1)
    model.eval()
    tmp = os.path.join(out, arch + ".onnx.tmp")
    torch.onnx.export(model, torch.randn(1, 3, 224, 224), tmp, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "n"}, "logits": {0: "n"}})
    os.replace(tmp, os.path.join(out, arch + ".onnx"))
