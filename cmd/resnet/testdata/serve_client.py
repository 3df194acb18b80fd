"""A client of `resnet serve` that is not ours: the Open Inference Protocol
(KServe v2) spoken with Debian's Python packages only (urllib, numpy,
python3-grpcio and protobuf). TestServeWithPythonClient runs it.

    /usr/bin/python3 serve_client.py tensors HTTP GRPC MODEL X.npy OUTDIR
        posts the FP32 tensors of X.npy ([N,3,H,W]) three ways and writes the
        logits each gave: rest_json.npy (JSON tensor data, two images per
        request), rest_binary.npy (the binary tensor data extension, all N
        in one request) and grpc.npy (ModelInfer with raw_input_contents, one
        image per call).

    /usr/bin/python3 serve_client.py images HTTP GRPC MODEL OUT.json FILE...
        posts the image files as a BYTES tensor with the classification
        extension (top 5) over REST (binary extension) and gRPC (raw
        contents), and writes {"rest": [[index, ...], ...], "grpc": ...}.

HTTP is host:port of the REST endpoint, GRPC host:port of the gRPC one.
gRPC's message classes come from grpc_predict_v2.proto compiled with
`protoc --python_out`; the directory holding grpc_predict_v2_pb2.py is
taken from PYTHONPATH.
"""

import json
import struct
import sys
import urllib.error
import urllib.request

import grpc
import numpy as np

import grpc_predict_v2_pb2 as pb


def rest(http, path, body=None, headers=None):
    req = urllib.request.Request("http://%s%s" % (http, path), data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        raise SystemExit("%s: HTTP %d: %s" % (path, e.code, e.read().decode()))


def check_server(http, model):
    status, _, body = rest(http, "/v2/health/ready")
    assert status == 200, status
    _, _, body = rest(http, "/v2/models/%s" % model)
    meta = json.loads(body)
    assert meta["name"] == model, meta
    return meta


def infer_json(http, model, x):
    """JSON tensor data: the tensor flattened in row-major order."""
    req = {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                       "data": x.reshape(-1).tolist()}],
           "outputs": [{"name": "logits"}]}
    _, _, body = rest(http, "/v2/models/%s/infer" % model, json.dumps(req).encode(),
                      {"Content-Type": "application/json"})
    out = json.loads(body)["outputs"][0]
    assert out["name"] == "logits" and out["datatype"] == "FP32", out
    return np.array(out["data"], dtype=np.float32).reshape(out["shape"])


def binary_request(model, datatype, shape, raw, outputs):
    """A body of the binary tensor data extension: JSON, then the raw bytes."""
    header = json.dumps({"inputs": [{"name": "input", "shape": shape, "datatype": datatype,
                                     "parameters": {"binary_data_size": len(raw)}}],
                         "outputs": outputs}).encode()
    return header + raw, {"Content-Type": "application/octet-stream",
                          "Inference-Header-Content-Length": str(len(header))}


def binary_outputs(headers, body):
    """Splits an answer of the binary extension into {name: (output, bytes)}."""
    n = int(headers.get("Inference-Header-Content-Length", len(body)))
    head = json.loads(body[:n])
    rest_of_body, got = body[n:], {}
    for out in head["outputs"]:
        size = out.get("parameters", {}).get("binary_data_size")
        assert size is not None, "output %s is not binary: %s" % (out["name"], out)
        got[out["name"]] = (out, rest_of_body[:size])
        rest_of_body = rest_of_body[size:]
    assert not rest_of_body, "%d bytes after the outputs" % len(rest_of_body)
    return got


def infer_binary(http, model, x):
    body, headers = binary_request(model, "FP32", list(x.shape), x.astype("<f4").tobytes(),
                                   [{"name": "logits", "parameters": {"binary_data": True}}])
    _, rh, rb = rest(http, "/v2/models/%s/infer" % model, body, headers)
    out, raw = binary_outputs(rh, rb)["logits"]
    return np.frombuffer(raw, dtype="<f4").reshape(out["shape"])


def bytes_elements(raw):
    """BYTES in the binary layout: each element a 4-byte little-endian length, then its bytes."""
    items = []
    while raw:
        (n,) = struct.unpack("<I", raw[:4])
        items.append(raw[4:4 + n])
        raw = raw[4 + n:]
    return items


def bytes_tensor(items):
    return b"".join(struct.pack("<I", len(b)) + b for b in items)


def top_indices(strings, k):
    """Triton's classification strings, "score:index:label", to the indices."""
    rows = []
    for i in range(0, len(strings), k):
        rows.append([int(s.decode().split(":")[1]) for s in strings[i:i + k]])
    return rows


def grpc_stub(grpc_addr, method, req_type, resp_type):
    channel = grpc.insecure_channel(grpc_addr)
    return channel, channel.unary_unary("/inference.GRPCInferenceService/" + method,
                                        request_serializer=req_type.SerializeToString,
                                        response_deserializer=resp_type.FromString)


def tensors(http, grpc_addr, model, x_path, outdir):
    x = np.load(x_path).astype(np.float32)
    meta = check_server(http, model)
    assert meta["inputs"][0]["datatype"] == "FP32", meta
    np.save(outdir + "/rest_json.npy", np.concatenate([infer_json(http, model, x[i:i + 2])
                                                       for i in range(0, len(x), 2)]))
    np.save(outdir + "/rest_binary.npy", infer_binary(http, model, x))
    channel, infer = grpc_stub(grpc_addr, "ModelInfer", pb.ModelInferRequest, pb.ModelInferResponse)
    live = channel.unary_unary("/inference.GRPCInferenceService/ServerLive",
                               request_serializer=pb.ServerLiveRequest.SerializeToString,
                               response_deserializer=pb.ServerLiveResponse.FromString)
    assert live(pb.ServerLiveRequest()).live
    rows = []
    for img in x:
        req = pb.ModelInferRequest(model_name=model)
        t = req.inputs.add(name="input", datatype="FP32", shape=[1] + list(img.shape))
        req.raw_input_contents.append(img.astype("<f4").tobytes())
        resp = infer(req)
        assert resp.outputs[0].name == "logits" and resp.outputs[0].datatype == "FP32", resp.outputs
        rows.append(np.frombuffer(resp.raw_output_contents[0], dtype="<f4"))
    np.save(outdir + "/grpc.npy", np.stack(rows))
    channel.close()


def images(http, grpc_addr, model, out_path, files):
    data = [open(f, "rb").read() for f in files]
    check_server(http, model)
    body, headers = binary_request(model, "BYTES", [len(data)], bytes_tensor(data),
                                   [{"name": "logits", "parameters": {"classification": 5, "binary_data": True}}])
    _, rh, rb = rest(http, "/v2/models/%s/infer" % model, body, headers)
    out, raw = binary_outputs(rh, rb)["logits"]
    assert out["datatype"] == "BYTES" and out["shape"] == [len(data), 5], out
    result = {"rest": top_indices(bytes_elements(raw), 5)}

    channel, infer = grpc_stub(grpc_addr, "ModelInfer", pb.ModelInferRequest, pb.ModelInferResponse)
    req = pb.ModelInferRequest(model_name=model)
    req.inputs.add(name="input", datatype="BYTES", shape=[len(data)])
    req.raw_input_contents.append(bytes_tensor(data))
    o = req.outputs.add(name="logits")
    o.parameters["classification"].int64_param = 5
    resp = infer(req)
    assert list(resp.outputs[0].shape) == [len(data), 5], resp.outputs
    result["grpc"] = top_indices(bytes_elements(resp.raw_output_contents[0]), 5)
    channel.close()
    with open(out_path, "w") as f:
        json.dump(result, f)


def main(argv):
    if len(argv) >= 7 and argv[1] == "tensors":
        tensors(*argv[2:7])
    elif len(argv) >= 7 and argv[1] == "images":
        images(argv[2], argv[3], argv[4], argv[5], argv[6:])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
