"""Writes a small text-model bundle for the models package's tests.

The bundle follows the exception_class contract: input `features` float32 [N,34]
(feature spec 2), input `tokens` int64 [N,64] (ids of features/tokenizer/
tokenizer.json, copied into the bundle), output `probabilities` float32 [N,9] over
features.ExceptionClasses. The weights are random (seeded): the fixture tests
loading, validation and scoring, not prediction. Run from the repository root with
Debian's python: /usr/bin/python3 models/testdata/make_text_fixture.py
"""
import hashlib
import json
import os
import re
import shutil

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "models", "testdata", "text", "exception_class", "0.0.1")
CLASSES = ["none", "credit", "pricing", "inventory", "address", "edi_mapping", "carrier", "warehouse_capacity", "invoicing"]
MAX_TOKENS = 64


def spec_names():
    src = open(os.path.join(ROOT, "features", "spec.go")).read()
    body = src[src.index("var Names"):]
    return re.findall(r':\s+"([a-z_]+)",', body)


def main():
    names = spec_names()
    tok_path = os.path.join(ROOT, "features", "tokenizer", "tokenizer.json")
    vocab = len(json.load(open(tok_path))["model"]["vocab"])
    rng = np.random.default_rng(7)
    nf, nc = len(names), len(CLASSES)
    w_f = (rng.standard_normal((nf, nc)) * 0.05).astype(np.float32)
    emb = (rng.standard_normal((vocab, nc)) * 0.2).astype(np.float32)
    emb[0] = 0  # [PAD] contributes nothing
    bias = np.zeros(nc, dtype=np.float32)

    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["emb", "tokens"], ["tok_emb"], axis=0),
            helper.make_node("ReduceSum", ["tok_emb", "axes"], ["tok_sum"], keepdims=0),
            helper.make_node("MatMul", ["features", "w_f"], ["feat_logits"]),
            helper.make_node("Add", ["feat_logits", "tok_sum"], ["logits0"]),
            helper.make_node("Add", ["logits0", "bias"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        ],
        "exception_class_fixture",
        [
            helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", nf]),
            helper.make_tensor_value_info("tokens", TensorProto.INT64, ["N", MAX_TOKENS]),
        ],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", nc])],
        [
            numpy_helper.from_array(emb, "emb"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "axes"),
            numpy_helper.from_array(w_f, "w_f"),
            numpy_helper.from_array(bias, "bias"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="orderwatch-fixture")
    model.ir_version = 8
    onnx.checker.check_model(model)
    data = model.SerializeToString()

    def score(x, t):
        logits = x @ w_f + emb[t].sum(axis=1) + bias
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    x = rng.uniform(0, 3, size=(3, nf)).astype(np.float32)
    t = np.zeros((3, MAX_TOKENS), dtype=np.int64)
    t[0, :5] = [5, 17, 200, 3, 9]
    t[1, :3] = [vocab - 1, 44, 2]
    golden = [{"input": [float(v) for v in x[i]], "tokens": [int(v) for v in t[i]],
               "output": [float(v) for v in score(x[i:i + 1], t[i:i + 1])[0]]} for i in range(3)]

    os.makedirs(OUT, exist_ok=True)
    open(os.path.join(OUT, "model.onnx"), "wb").write(data)
    shutil.copyfile(tok_path, os.path.join(OUT, "tokenizer.json"))
    bundle = {
        "name": "exception_class", "version": "0.0.1", "feature_spec_version": "2", "role": "active",
        "inputs": [
            {"name": "features", "dtype": "float32", "shape": [-1, nf], "features": names},
            {"name": "tokens", "dtype": "int64", "shape": [-1, MAX_TOKENS], "tokens": True},
        ],
        "outputs": [{"name": "probabilities", "dtype": "float32", "shape": [-1, nc]}],
        "labels": CLASSES,
        "thresholds": {"act": 0.5},
        "metrics": {"data": "random weights: a test fixture, not a model"},
        "sha256": hashlib.sha256(data).hexdigest(),
        "tokenizer": "tokenizer.json",
        "tokenizer_sha256": hashlib.sha256(open(tok_path, "rb").read()).hexdigest(),
        "golden": golden,
        "trained_by": "models/testdata/make_text_fixture.py",
    }
    with open(os.path.join(OUT, "bundle.json"), "w") as f:
        json.dump(bundle, f, indent=1)
        f.write("\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
