"""Writing model bundles: the files of <models-dir>/<name>/<version>/ as the Go
loader (models/bundle.go) reads them.

Everything written here is deterministic: the ONNX model is serialized with
deterministic=True, floats in bundle.json are the shortest decimals that read back
to the same float32, and the JSON layout is fixed, so the same inputs give the same
bytes.
"""

import hashlib
import json
import os
import re
import shutil

import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir))
TOKENIZER = os.path.join(ROOT, "features", "tokenizer", "tokenizer.json")
FEATURE_SPEC_VERSION = "2"
MAX_TOKENS = 64  # features.MaxTokens
OPSET = 17
ML_OPSET = 3  # ai.onnx.ml: TreeEnsembleRegressor; onnx 1.12 knows up to 3
IR_VERSION = 8  # onnx 1.12's default; ONNX Runtime 1.24 reads IR versions up to 11


def _go_string_list(path, var):
    src = open(os.path.join(ROOT, path), encoding="utf-8").read()
    body = src[src.index(var):]
    body = body[:body.index("}")]
    return body


def feature_names():
    """The names of the running feature spec, in vector order (features/spec.go)."""
    body = _go_string_list("features/spec.go", "var Names")
    names = re.findall(r':\s+"([a-z_]+)",', body)
    assert len(names) == 34, names
    return names


def exception_classes():
    """features.ExceptionClasses in model output order (features/exceptions.go)."""
    src = open(os.path.join(ROOT, "features", "exceptions.go"), encoding="utf-8").read()
    consts = dict(re.findall(r'(Exception\w+)\s+= "([a-z_]+)"', src))
    body = _go_string_list("features/exceptions.go", "var ExceptionClasses")
    order = re.findall(r"(Exception\w+)", body.split("{", 1)[1])
    return [consts[c] for c in order]


def f32(v):
    """A float32 as the shortest decimal that reads back to the same float32."""
    return float(np.format_float_positional(np.float32(v), unique=True, trim="-"))


def to_json(v, indent=""):
    """JSON with two-space indentation and lists of scalars on one line."""
    inner = indent + "  "
    if isinstance(v, dict):
        items = [f"{inner}{json.dumps(k)}: {to_json(x, inner).lstrip()}" for k, x in v.items()]
        out = "{\n" + ",\n".join(items) + "\n" + indent + "}"
    elif isinstance(v, list) and any(isinstance(x, (dict, list)) for x in v):
        out = "[\n" + ",\n".join(inner + to_json(x, inner).lstrip() for x in v) + "\n" + indent + "]"
    else:
        out = json.dumps(v)
    return out if indent else out + "\n"


def sha256_file(path):
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def write(models_dir, model, bundle, text=False):
    """Write model.onnx, bundle.json (completed with sha256 and, for a text model,
    the tokenizer) and tokenizer.json into models_dir/<name>/<version>/, replacing
    what was there. Returns the directory."""
    data = model.SerializeToString(deterministic=True)
    out = os.path.join(models_dir, bundle["name"], bundle["version"])
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)
    with open(os.path.join(out, "model.onnx"), "wb") as fh:
        fh.write(data)
    b = dict(bundle)
    b["sha256"] = hashlib.sha256(data).hexdigest()
    if text:
        shutil.copyfile(TOKENIZER, os.path.join(out, "tokenizer.json"))
        b["tokenizer"] = "tokenizer.json"
        b["tokenizer_sha256"] = sha256_file(TOKENIZER)
    # Field order as in models.Bundle, for people reading the file.
    order = ["name", "version", "feature_spec_version", "role", "inputs", "outputs", "labels",
             "thresholds", "metrics", "sha256", "tokenizer", "tokenizer_sha256", "reference",
             "golden", "trained_by"]
    unknown = set(b) - set(order)
    assert not unknown, unknown
    b = {k: b[k] for k in order if k in b}
    with open(os.path.join(out, "bundle.json"), "w", encoding="utf-8") as fh:
        fh.write(to_json(b))
    return out


def golden_rows(x, out, tokens=None):
    """Golden rows of bundle.json from float32 inputs and outputs (and tokens)."""
    rows = []
    for i in range(len(x)):
        r = {"input": [f32(v) for v in x[i]]}
        if tokens is not None:
            r["tokens"] = [int(v) for v in tokens[i]]
        r["output"] = [f32(v) for v in out[i]]
        rows.append(r)
    return rows
