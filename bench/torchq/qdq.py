"""Writes a QDQ ONNX model from a float ONNX export and given int8 scales (bench/torchq).

Run with Debian's python3-onnx (and python3-torchvision for `toy`):

    python3 qdq.py build FLOAT.onnx SCALES.json OUT.onnx
        FLOAT.onnx: a ResNet as torch.onnx.export writes it (BatchNorm folded;
        torch >= 1.13 names nodes by module scope, /layer1/layer1.0/conv1/Conv).
        OUT.onnx: the same graph in QDQ form, which ONNX Runtime's CPU EP
        fuses into QLinearConv (and QLinearAdd, for the residual sums).
    python3 qdq.py check OPTIMIZED.onnx
        Counts the ops of a graph ORT optimised (its session option
        optimizedModelFilePath) and fails unless every convolution runs as
        QLinearConv: no float Conv, no FusedConv, no NCHWc conv left.
    python3 qdq.py toy DIR
        A toy residual network (stem, a ReLU conv, a pre-add conv and a 1x1
        projection shortcut) with seeded weights: DIR/toy.onnx, scales made
        by hand from the activations' maxima (DIR/toy.json), and an input
        DIR/toy_input.bin (float32, 1x3x16x16).
    python3 qdq.py torchvision ARCH DIR
        The same for torchvision's ARCH (resnet18 ...) with bench/ort's
        seeded weights (BatchNorm statistics measured on 4 random images):
        DIR/ARCH.onnx, DIR/ARCH.json, DIR/ARCH_input.bin (1x3x224x224).

SCALES.json — the scales are the caller's (resnetgen's calibration), not
computed here:

    {"input": {"scale": s, "zero_point": z},
     "convs": {"conv1": {"weight_scales": [one per output channel],
                         "output": {"scale": s, "signed": false}},
               "layer1.0.conv2": {..., "output": {"scale": s, "signed": true}},
               "layer2.0.downsample.0": {..., "output": {"scale": s, "signed": true}}},
     "adds": {"layer1.0": {"output": {"scale": s, "signed": false}}},
     "float": ["conv1"],                                  (optional)
     "pools": {"maxpool": {"output": {"scale": s, "signed": false}}}}  (optional)

A conv with "float_output": true keeps its output float: int8 weights and
input, but the sum after it (resnetgen's fused residual) in float up to the
add's Q — the network exactly as resnetgen rounds it, which ORT runs
unfused (for its reference run, not its speed).
"float" names convolutions left in float (no Q/DQ; a float stem's input
then needs no "input" scale); "pools" gives a max pool's output a scale of
its own, where otherwise a max pool of a quantized input keeps its
input's (resnetgen's: it pools the stem's bytes).

A conv is named by its module (as bench.ORTLayer names ORT's nodes); its
output is the tensor after its ReLU when one follows. An add is named by
its block; its output is the tensor after the block's ReLU. Weights:
q = clamp(round_half_even(w / scale[c]), -127, 127), int8, per output
channel (axis 0), zero point 0. Biases: int32, round(b / (s_in * scale[c])),
as QLinearConv adds them to the int32 accumulator. Activations, per tensor:
"signed": false is uint8 with zero point 0 (ReLU outputs) or "zero_point"
(the network input, which resnetgen quantizes asymmetrically over the
calibration images' range); "signed": true is
the int8 symmetric grid s·q, q in [-127, 127], stored as uint8 with zero
point 128 (the same values: q + 128) — ORT fuses a Conv only when its input
and output types agree (ConvNodeGroupSelector), and a block's post-ReLU input
is uint8, so its signed outputs (the projection, the pre-add conv) must be
uint8 too, and an Add only when both inputs and its output share one type.
The pre-add conv's output is quantized because ORT has no QLinearConv
with a residual input: resnetgen fuses the sum into that conv's epilogue,
ORT cannot (one rounding more than ours). MaxPool keeps its input's scale
(ORT then runs it on uint8); the global average pool and the classifier
stay float. Every consumer gets its own DequantizeLinear.
"""

import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def module_name(node):
    """conv1, layer1.0.conv1, layer2.0.downsample.0 — or a block, layer1.0,
    for an Add — from torch's scoped node name."""
    mods = node.name.strip("/").split("/")[:-1]
    if not mods:
        return node.name
    if node.op_type == "Add":
        return mods[-1]
    return mods[1] + "." + mods[-1] if len(mods) >= 3 else mods[-1]


def qparams(spec):
    """(scale, zero point) of a uint8 tensor."""
    if spec.get("signed"):
        return float(spec["scale"]), 128
    zp = int(spec.get("zero_point", 0))
    if not 0 <= zp <= 255:
        raise ValueError("zero point %d outside uint8" % zp)
    return float(spec["scale"]), zp


def build(model, spec):
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    # torch >= 1.13 stores equal initializers once and hands copies out
    # through Identity nodes: resolve them to arrays.
    alias = {n.output[0]: n.input[0] for n in g.node if n.op_type == "Identity" and n.input[0] in inits}

    def const(name):
        return numpy_helper.to_array(inits[alias.get(name, name)])

    nodes = [n for n in g.node if not (n.op_type == "Identity" and n.output[0] in alias)]
    consumers = {}
    for n in nodes:
        for i, x in enumerate(n.input):
            consumers.setdefault(x, []).append((n, i))

    def after_relu(t):
        c = consumers.get(t, [])
        return c[0][0].output[0] if len(c) == 1 and c[0][0].op_type == "Relu" else t

    # Which tensors are quantized, with which parameters.
    q = {g.input[0].name: qparams(spec["input"])} if spec.get("input") else {}
    convs, adds = dict(spec.get("convs", {})), dict(spec.get("adds", {}))
    floats, pools = set(spec.get("float") or []), dict(spec.get("pools") or {})
    float_left = set(floats)
    if floats & set(convs):
        raise KeyError("convs both float and quantized: %s" % sorted(floats & set(convs)))
    for n in nodes:
        if n.op_type == "Conv" and module_name(n) in floats:
            float_left.discard(module_name(n))
        elif n.op_type == "Conv":
            s = convs.pop(module_name(n), None)
            if s is None:
                raise KeyError("no scales for conv %s (node %s)" % (module_name(n), n.name))
            if not s.get("float_output"):
                q[after_relu(n.output[0])] = qparams(s["output"])
        elif n.op_type == "Add":
            s = adds.pop(module_name(n), None)
            if s is None:
                raise KeyError("no scales for add %s (node %s)" % (module_name(n), n.name))
            q[after_relu(n.output[0])] = qparams(s["output"])
        elif n.op_type == "MaxPool" and module_name(n) in pools:
            q[n.output[0]] = qparams(pools.pop(module_name(n))["output"])
        elif n.op_type == "MaxPool" and n.input[0] in q:
            q[n.output[0]] = q[n.input[0]]
    if convs or adds or pools or float_left:
        raise KeyError("scales for layers the graph does not have: %s" % sorted(list(convs) + list(adds) + list(pools) + list(float_left)))

    new_inits, out_nodes = [], []

    def scalar(name, value, dtype):
        new_inits.append(numpy_helper.from_array(np.array(value, dtype=dtype), name))
        return name

    # One QuantizeLinear after each quantized tensor, one DequantizeLinear
    # before each of its consumers.
    dq_of = {}  # (tensor, consumer index, input index) -> dequantized name
    for t, (scale, zp) in q.items():
        sn, zn = scalar(t + "_scale", scale, np.float32), scalar(t + "_zero_point", zp, np.uint8)
        out_nodes.append(("after", t, helper.make_node("QuantizeLinear", [t, sn, zn], [t + "_q"], name=t + "_Q")))
        for k, (c, i) in enumerate(consumers.get(t, [])):
            d = "%s_dq%d" % (t, k)
            dq_of[(t, id(c), i)] = d
            out_nodes.append(("before", id(c), helper.make_node("DequantizeLinear", [t + "_q", sn, zn], [d], name=d)))

    result = []
    pending_after = {}
    pending_before = {}
    for where, key, node in out_nodes:
        (pending_after if where == "after" else pending_before).setdefault(key, []).append(node)
    # The graph input's Q goes first.
    result += pending_after.pop(g.input[0].name, [])
    for n in nodes:
        result += pending_before.get(id(n), [])
        ins = list(n.input)
        for i, x in enumerate(ins):
            if (x, id(n), i) in dq_of:
                ins[i] = dq_of[(x, id(n), i)]
        if n.op_type == "Conv" and module_name(n) not in floats:
            w, b = const(ins[1]), const(ins[2]) if len(ins) > 2 else None
            s = spec["convs"][module_name(n)]
            ws = np.asarray(s["weight_scales"], dtype=np.float32)
            if ws.shape != (w.shape[0],):
                raise ValueError("%s: %d weight scales for %d output channels" % (module_name(n), ws.size, w.shape[0]))
            if n.input[0] not in q:
                raise ValueError("%s: its input %s has no scale" % (module_name(n), n.input[0]))
            s_in = q[n.input[0]][0]
            base = module_name(n)
            wq = np.clip(np.round(w / ws.reshape(-1, 1, 1, 1)), -127, 127).astype(np.int8)
            new_inits += [numpy_helper.from_array(wq, base + ".weight_int8"),
                          numpy_helper.from_array(ws, base + ".weight_scale"),
                          numpy_helper.from_array(np.zeros(w.shape[0], np.int8), base + ".weight_zero_point")]
            result.append(helper.make_node("DequantizeLinear", [base + ".weight_int8", base + ".weight_scale", base + ".weight_zero_point"],
                                           [base + ".weight_dq"], name=base + ".weight_DQ", axis=0))
            ins[1] = base + ".weight_dq"
            if b is not None:
                bs = (s_in * ws.astype(np.float64)).astype(np.float32)
                bq = np.round(b.astype(np.float64) / bs).astype(np.int32)
                new_inits += [numpy_helper.from_array(bq, base + ".bias_int32"),
                              numpy_helper.from_array(bs, base + ".bias_scale"),
                              numpy_helper.from_array(np.zeros(w.shape[0], np.int32), base + ".bias_zero_point")]
                result.append(helper.make_node("DequantizeLinear", [base + ".bias_int32", base + ".bias_scale", base + ".bias_zero_point"],
                                               [base + ".bias_dq"], name=base + ".bias_DQ", axis=0))
                ins[2] = base + ".bias_dq"
        m = helper.make_node(n.op_type, ins, list(n.output), name=n.name)
        m.attribute.extend(n.attribute)
        result.append(m)
        for t in n.output:
            result += pending_after.pop(t, [])
    used = {x for n in result for x in n.input}
    keep = [t for t in g.initializer if t.name in used]
    graph = helper.make_graph(result, g.name, list(g.input), list(g.output), keep + new_inits)
    out = helper.make_model(graph, opset_imports=list(model.opset_import), producer_name="resnetgen qdq.py")
    out.ir_version = model.ir_version
    onnx.checker.check_model(out)
    return out


def check(path):
    """Op counts of ORT's optimised graph; an error unless every conv is
    QLinearConv."""
    g = onnx.load(path).graph
    ops = {}
    for n in g.node:
        key = n.op_type if n.domain in ("", "ai.onnx") else n.domain + ":" + n.op_type
        ops[key] = ops.get(key, 0) + 1
    float_convs = {k: v for k, v in ops.items() if k.split(":")[-1] in ("Conv", "FusedConv", "NchwcConv", "ConvInteger")}
    qconvs = sum(v for k, v in ops.items() if k.split(":")[-1] == "QLinearConv")
    return {"ops": ops, "qlinearconv": qconvs, "float_convs": float_convs}


def toy(out):
    import torch
    import torch.nn as nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(8, 8, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(8)
            self.conv2 = nn.Conv2d(8, 16, 3, 2, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(16)
            self.downsample = nn.Sequential(nn.Conv2d(8, 16, 1, 2, bias=False), nn.BatchNorm2d(16))
            self.relu = nn.ReLU()

        def forward(self, x):
            y = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(y)) + self.downsample(x))

    class Toy(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 8, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(8)
            self.relu = nn.ReLU()
            self.layer1 = nn.Sequential(Block())
            self.fc = nn.Linear(16, 10)

        def forward(self, x):
            x = self.layer1(self.relu(self.bn1(self.conv1(x))))
            return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))

    torch.manual_seed(3)
    m = Toy()
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.5, 0.5)
    export_with_scales(m, torch.randn(16, 3, 16, 16), out, "toy")


def torchvision_net(arch, out):
    """torchvision's ARCH with bench/ort's seeded weights (export.py),
    BatchNorm statistics measured on random inputs so activations stay
    O(1), exported with max-based scales."""
    import torch
    import torchvision

    torch.manual_seed(0)
    m = getattr(torchvision.models, arch)()
    export_with_scales(m, torch.randn(4, 3, 224, 224), out, arch)


def export_with_scales(m, x, out, name):
    """Measures m's BatchNorm statistics on x, exports it (eval mode,
    BatchNorm folded) to OUT/NAME.onnx with x[:1] as OUT/NAME_input.bin,
    and writes hand-made scales to OUT/NAME.json: each activation's maximum
    over x / 255 (unsigned) or max |.| / 127 (signed); each conv's weights
    max |w| per output channel / 127, from the folded weights. A conv's
    activation is its BatchNorm's output (ReLU'd when a ReLU follows in the
    graph); a block's sum is the block's output."""
    import torch
    import torch.nn as nn

    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.reset_running_stats()
            mod.momentum = None
    m.train()
    with torch.no_grad():
        m(x)
    m.eval()
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, name + ".onnx")
    torch.onnx.export(m, x[:1], path, input_names=["input"], output_names=["logits"])
    x[:1].numpy().astype("<f4").tofile(os.path.join(out, name + "_input.bin"))

    acts, hooks = {}, []
    for n, mod in m.named_modules():
        if isinstance(mod, nn.BatchNorm2d) or n.count(".") == 1 and n.startswith("layer"):
            hooks.append(mod.register_forward_hook(lambda mod, inp, o, n=n: acts.__setitem__(n, o.detach())))
    with torch.no_grad():
        m(x)
    for h in hooks:
        h.remove()

    def bn_of(conv):
        head, _, last = conv.rpartition(".")
        bn = str(int(last) + 1) if last.isdigit() else last.replace("conv", "bn")
        return head + "." + bn if head else bn

    g = onnx.load(path).graph
    inits = {t.name: t for t in g.initializer}
    alias = {n.output[0]: n.input[0] for n in g.node if n.op_type == "Identity"}
    consumers = {}
    for n in g.node:
        for t in n.input:
            consumers.setdefault(t, []).append(n)
    spec = {"input": {"scale": float(x.abs().max()) / 127, "signed": True}, "convs": {}, "adds": {}}
    for n in g.node:
        if n.op_type == "Conv":
            c = consumers.get(n.output[0], [])
            relu = len(c) == 1 and c[0].op_type == "Relu"
            v = acts[bn_of(module_name(n))]
            w = numpy_helper.to_array(inits[alias.get(n.input[1], n.input[1])])
            spec["convs"][module_name(n)] = {
                "weight_scales": (np.abs(w).reshape(w.shape[0], -1).max(1) / 127).tolist(),
                "output": {"scale": float(v.clamp(min=0).max()) / 255, "signed": False} if relu
                else {"scale": float(v.abs().max()) / 127, "signed": True}}
        elif n.op_type == "Add":
            spec["adds"][module_name(n)] = {"output": {"scale": float(acts[module_name(n)].max()) / 255, "signed": False}}
    with open(os.path.join(out, name + ".json"), "w") as f:
        json.dump(spec, f, indent=1)


def main():
    op = sys.argv[1] if len(sys.argv) > 1 else ""
    if op == "build" and len(sys.argv) == 5:
        with open(sys.argv[3]) as f:
            spec = json.load(f)
        onnx.save(build(onnx.load(sys.argv[2]), spec), sys.argv[4])
    elif op == "check" and len(sys.argv) == 3:
        r = check(sys.argv[2])
        print(json.dumps(r))
        if r["float_convs"] or r["qlinearconv"] == 0:
            sys.exit("not every conv fused to QLinearConv: %s" % r["ops"])
    elif op == "toy" and len(sys.argv) == 3:
        toy(sys.argv[2])
    elif op == "torchvision" and len(sys.argv) == 4:
        torchvision_net(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
