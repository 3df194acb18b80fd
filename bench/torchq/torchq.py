"""PyTorch's own post-training int8 (oneDNN engine) beside resnetgen (bench/torchq).

Run with Debian's python3-torchvision (torch 1.13, torchvision 0.14):

    python3 torchq.py accuracy --arch A [--weights W] --calib C.npy --eval E.npy --out PREFIX
        Quantizes A, calibrated on C.npy, and writes its logits on E.npy to
        PREFIX_int8.npy and the float32 network's to PREFIX_fp32.npy; prints
        one JSON line.
    python3 torchq.py serve --arch A [--weights W] --calib C.npy --threads T [--height H --width W]
        Quantizes A, then answers one JSON command per line on stdin with
        one JSON line on stdout:
          {"run": N, "precision": "int8" | "fp32"}  N batch-1 inferences,
                                                   answers {"seconds": [t1, ...],
                                                   "batch": 1}
          {"logits": "X.npy", "out": PREFIX}       the int8 network's and the
                                                   eager float32 one's logits on
                                                   X.npy's images, written to
                                                   PREFIX_int8.npy and
                                                   PREFIX_fp32.npy; answers
                                                   {"images": N}
        Errors are answered as {"error": "..."}; stdin's end ends the process.

Networks (--arch):
  cifar-resnetN   akamaster's CIFAR-10 ResNet-N (N = 6n+2, option-A
                  shortcuts), the architecture of ../shared/data's published
                  checkpoints; --weights is such a .th (legacy or zip).
  resnet18 ... resnet152, resnet50v1 ...  torchvision's; --weights is a
                  state_dict .pth (the class count is fc's). Without
                  --weights, torch.manual_seed(0) and the constructor, exactly
                  as bench/ort's export.py: the same weights as its ONNX files.

Quantization: FX graph mode, torch.backends.quantized.engine = "onednn",
get_default_qconfig_mapping("onednn") (per-output-channel symmetric int8
weights; per-tensor uint8 activations from HistogramObserver), prepare_fx
(which fuses conv+bn(+relu) and add+relu), calibration in batches of
--calib-batch images (32) in file order, convert_fx. What PyTorch then
runs: the input quantized (uint8, affine), every conv int8 (the stem too),
quantized add_relu, the classifier int8; the CIFAR nets' option-A shortcut
(slice, channel pad) in float between a dequantize and a requantize with
its own observed scale. Inputs are .npy float32 N x 3 x H x W, already
normalised.

fp32: accuracy runs the eager float network (the oracle). serve times it
through torch.utils.mkldnn where that works (every conv in oneDNN), since
Debian's torch sends batch-1 single-thread stride-1 1x1 convolutions to
the reference BLAS it links (ResNet-50: seconds a run).

oneDNN's ISA cap (ONEDNN_MAX_CPU_ISA) is read once, when oneDNN starts:
set it in the environment of this process. serve's ready line reports the
ISA oneDNN says it uses and the implementations of its int8 convolutions.
"""

import argparse
import copy
import json
import os
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.mkldnn
import torchvision
from torch.ao.quantization import get_default_qconfig_mapping
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

CALIB_BATCH = 32
EVAL_BATCH = 250


class LambdaLayer(nn.Module):
    def __init__(self, f):
        super().__init__()
        self.f = f

    def forward(self, x):
        return self.f(x)


class BasicBlock(nn.Module):
    """akamaster/pytorch_resnet_cifar10's block, option A: the shortcut of a
    downsampling block takes every other pixel and zero-pads the channels."""

    def __init__(self, inp, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inp, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or inp != planes:
            p = planes // 4
            self.shortcut = LambdaLayer(lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, p, p), "constant", 0))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = out + self.shortcut(x)
        return F.relu(out)


class CifarResNet(nn.Module):
    """akamaster's ResNet for CIFAR-10 (the names of its state_dict). The
    head's average pool is adaptive (the same 8x8 mean at 32x32) so that FX
    traces no shape arithmetic."""

    def __init__(self, n, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        inp, layers = 16, []
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for s in [stride] + [1] * (n - 1):
                blocks.append(BasicBlock(inp, planes, s))
                inp = planes
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.linear = nn.Linear(64, classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = torch.flatten(F.adaptive_avg_pool2d(out, 1), 1)
        return self.linear(out)


def build(arch, weights):
    """The float32 network in eval mode."""
    if arch.startswith("cifar-resnet"):
        depth = int(arch[len("cifar-resnet"):])
        if depth < 8 or (depth - 2) % 6:
            raise ValueError("%s: a CIFAR ResNet has 6n+2 layers" % arch)
        torch.manual_seed(0)
        model = CifarResNet((depth - 2) // 6)
        if weights:
            state = torch.load(weights, map_location="cpu")
            state = state.get("state_dict", state)
            model.load_state_dict({k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()})
    else:
        v1 = arch.endswith("v1")
        name = arch[:-2] if v1 else arch
        if not name.startswith("resnet") or not hasattr(torchvision.models, name):
            raise ValueError("unknown arch %r: want cifar-resnetN or a torchvision ResNet (resnet18 ... resnet152, resnet50v1 ...)" % arch)
        state = None
        if weights:
            state = torch.load(weights, map_location="cpu")
            state = state.get("state_dict", state)
            model = getattr(torchvision.models, name)(num_classes=state["fc.weight"].shape[0])
        else:
            torch.manual_seed(0)  # bench/ort/export.py's weights
            model = getattr(torchvision.models, name)()
        if v1:
            for stage in (model.layer2, model.layer3, model.layer4):
                stage[0].conv1.stride, stage[0].conv2.stride = (2, 2), (1, 1)
        if state is not None:
            model.load_state_dict(state)
    return model.eval()


def load_npy(path):
    x = np.load(path)
    if x.dtype != np.float32 or x.ndim != 4 or x.shape[1] != 3:
        raise ValueError("%s: want float32 N x 3 x H x W, have %s %s" % (path, x.dtype, x.shape))
    if x.shape[0] == 0:
        raise ValueError("%s: no images" % path)
    return torch.from_numpy(x)


def quantize(model, calib, batch):
    """PyTorch's post-training int8 of model on the oneDNN engine,
    calibrated on calib in batches of batch images (HistogramObserver
    merges batches by re-binning, so the scales depend a little on it)."""
    torch.backends.quantized.engine = "onednn"
    prepared = prepare_fx(copy.deepcopy(model), get_default_qconfig_mapping("onednn"), (calib[:1],))
    with torch.no_grad():
        for i in range(0, len(calib), batch):
            prepared(calib[i:i + batch])
    return convert_fx(prepared)


def run_all(model, x):
    with torch.no_grad():
        return torch.cat([model(x[i:i + EVAL_BATCH]) for i in range(0, len(x), EVAL_BATCH)]).numpy()


def accuracy(a):
    model = build(a.arch, a.weights)
    calib, x = load_npy(a.calib), load_npy(a.eval)
    t0 = time.perf_counter()
    q = quantize(model, calib, a.calib_batch)
    t1 = time.perf_counter()
    np.save(a.out + "_int8.npy", run_all(q, x).astype(np.float32))
    t2 = time.perf_counter()
    np.save(a.out + "_fp32.npy", run_all(model, x).astype(np.float32))
    print(json.dumps({"torch": torch.__version__, "engine": torch.backends.quantized.engine, "mode": "fx",
                      "calibration": len(calib), "calib_batch": a.calib_batch, "images": len(x),
                      "quantize_seconds": t1 - t0, "int8_seconds": t2 - t1, "fp32_seconds": time.perf_counter() - t2}))


def onednn_verbose(f):
    """Runs f with oneDNN's verbose log on and returns the lines it wrote
    (oneDNN prints them on the C stdout, file descriptor 1)."""
    sys.stdout.flush()
    with tempfile.TemporaryFile(mode="w+") as tmp:
        saved = os.dup(1)
        os.dup2(tmp.fileno(), 1)
        try:
            with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
                f()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        tmp.seek(0)
        return tmp.read().splitlines()


def fast_fp32(model, x):
    """A call running model on x the fastest way torch 1.13 offers on a
    CPU, and its name. Debian's torch links the reference BLAS, and at
    batch 1 on one thread it sends stride-1 1x1 convolutions there rather
    than to oneDNN (ResNet-50: seconds, not tens of ms);
    torch.utils.mkldnn.to_mkldnn runs every convolution in oneDNN. Where
    that fails or disagrees with the eager network (ops without an MKLDNN
    tensor kernel, e.g. the CIFAR nets' option-A shortcut), eager."""
    with torch.no_grad():
        ref = model(x)
        try:
            m = torch.utils.mkldnn.to_mkldnn(copy.deepcopy(model))
            y = m(x.to_mkldnn())
            y = y.to_dense() if y.is_mkldnn else y
            if torch.allclose(y, ref, rtol=1e-3, atol=1e-3 * ref.abs().max().item()):
                return (lambda: m(x.to_mkldnn())), "mkldnn"
        except Exception as e:  # noqa: BLE001 — any failure means: run eager
            print("fp32 stays eager: torch.utils.mkldnn: %s: %s" % (type(e).__name__, e), file=sys.stderr)
    return (lambda: model(x)), "eager"


def serve(a, out):
    torch.set_num_threads(a.threads)
    model = build(a.arch, a.weights)
    calib = load_npy(a.calib)
    q = quantize(model, calib, a.calib_batch)
    a.height, a.width = a.height or calib.shape[2], a.width or calib.shape[3]
    # A deterministic input in the range of normalised pixels, as
    # bench/ort's runner.js feeds ONNX Runtime.
    i = np.arange(3 * a.height * a.width, dtype=np.int64)
    x = torch.from_numpy((((i * 7919) % 401) / 100 - 2).astype(np.float32).reshape(1, 3, a.height, a.width))
    fp32, fp32_kind = fast_fp32(model, x)
    nets = {"int8": lambda: q(x), "fp32": fp32}
    with torch.no_grad():
        log = onednn_verbose(nets["int8"])
        for _ in range(3):
            for f in nets.values():
                f()
    isa = [l.split("isa:", 1)[1] for l in log if ",isa:" in l]
    convs = [l.split(",")[4] for l in log if ",exec," in l and ",convolution," in l and len(l.split(",")) > 4]
    out.write(json.dumps({"ready": a.arch, "torch": torch.__version__, "threads": torch.get_num_threads(),
                          "height": a.height, "width": a.width,
                          "isa": isa[0] if isa else "", "int8_conv": sorted(set(convs)), "int8_conv_count": len(convs), "fp32": fp32_kind}) + "\n")
    out.flush()
    for line in sys.stdin:
        try:
            cmd = json.loads(line)
            if "logits" in cmd:
                images = load_npy(cmd["logits"])  # not x: the timed closures read x
                np.save(cmd["out"] + "_int8.npy", run_all(q, images).astype(np.float32))
                np.save(cmd["out"] + "_fp32.npy", run_all(model, images).astype(np.float32))
                out.write(json.dumps({"images": len(images)}) + "\n")
                out.flush()
                continue
            net = nets[cmd.get("precision", "int8")]
            t = []
            with torch.no_grad():
                for _ in range(int(cmd["run"])):
                    s = time.perf_counter()
                    net()
                    t.append(time.perf_counter() - s)
            out.write(json.dumps({"seconds": t, "batch": int(x.shape[0])}) + "\n")
        except Exception as e:  # answered, not fatal: the Go side reports it
            out.write(json.dumps({"error": "%s: %s" % (type(e).__name__, e)}) + "\n")
        out.flush()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="op", required=True)
    for name in ("accuracy", "serve"):
        s = sub.add_parser(name)
        s.add_argument("--arch", required=True)
        s.add_argument("--weights", default="")
        s.add_argument("--calib", required=True)
        s.add_argument("--calib-batch", type=int, default=CALIB_BATCH, help="calibration images per forward pass")
    acc = sub.choices["accuracy"]
    acc.add_argument("--eval", required=True)
    acc.add_argument("--out", required=True)
    srv = sub.choices["serve"]
    srv.add_argument("--threads", type=int, required=True)
    srv.add_argument("--height", type=int, default=0, help="input height (default: the calibration images')")
    srv.add_argument("--width", type=int, default=0, help="input width (default: the calibration images')")
    a = p.parse_args()
    if a.op == "accuracy":
        accuracy(a)
        return
    # The protocol owns the original stdout; anything else that writes to
    # file descriptor 1 (oneDNN's verbose log, OpenMP warnings) goes to
    # stderr instead.
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    try:
        serve(a, out)
    except Exception as e:
        out.write(json.dumps({"error": "%s: %s" % (type(e).__name__, e)}) + "\n")
        out.flush()
        sys.exit(1)


if __name__ == "__main__":
    main()
