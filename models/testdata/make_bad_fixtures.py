"""Writes the bundles of models that validate but misbehave, for the tests of the
model output checks and of the validation limits (issue 9, findings 3 and 7; issue
21: the sweep of extreme inputs).

Each bundle passes every static check (sha256, spec, tensor names and shapes) and,
but for `expand`, its golden rows: the golden rows all have minutes_to_cutoff >= 0.

The first four are bad only for orders 5 to 600 minutes past their cutoff
(-600 < minutes_to_cutoff < -5): a band the sweep of extreme inputs (models.Check:
a day past the cutoff, a minute past, at it, a week before) does not try, as a
model that fails in production for inputs nobody tried. They test the checks of
the outputs while a version serves.

- risk_nan/cutoff_risk/1.1.0:     risk 0.25, NaN for rows in the band
- risk_inf/cutoff_risk/1.1.0:     risk 0.25, +Inf for rows in the band
- risk_high/cutoff_risk/1.1.0:    risk 0.25, 7.0 (out of [0, 1]) in the band
- class_nan/exception_class/1.1.0: uniform probabilities (1/9), NaN in the band;
                                  no tokens input
- sweep_nan/cutoff_risk/1.1.0:    risk 0.25, NaN for any row past the cutoff
                                  (minutes_to_cutoff < 0): the sweep refuses it
- sweep_high/cutoff_risk/1.1.0:   risk 0.25, 7.0 for any row past the cutoff
- slow/cutoff_risk/1.1.0:         risk 0.25 after a Loop of SLOW_STEPS additions: a
                                  run that takes about an hour unless terminated
- slow_batch/cutoff_risk/1.1.0:   risk 0.25, fast for batches of fewer than 1,000
                                  rows; from 1,000 rows on the same Loop as slow: its
                                  golden rows, alone, pass, a full batch does not
- expand/cutoff_risk/1.1.0:       broadcasts its [N, 34] input to [EXPAND, N, 34]
                                  and takes its maximum back to [N, 1]: a few hundred
                                  bytes that allocate EXPAND*N*34*4 bytes per run
                                  (2.5 GB for the 5 golden rows)
- expand_batch/cutoff_risk/1.1.0: the same with EXPAND_BATCH: its golden rows fit
                                  in memory, a full batch of 1,024 rows does not

Run from the repository root with Debian's python (python3-onnx):
/usr/bin/python3 models/testdata/make_bad_fixtures.py
"""
import hashlib
import json
import os
import re

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "models", "testdata", "bad")
CLASSES = ["none", "credit", "pricing", "inventory", "address", "edi_mapping", "carrier", "warehouse_capacity", "invoicing"]
VERSION = "1.1.0"
GOLDEN_ROWS = 5
EXPAND = 3_700_000  # x 5 rows x 34 floats x 4 bytes = 2.5 GB
EXPAND_BATCH = 2_000  # 1.4 MB for the 5 golden rows, 278 MB for a batch of 1,024
SLOW_STEPS = 2_000_000_000  # ~50 min unless terminated


def spec_names():
    src = open(os.path.join(ROOT, "features", "spec.go")).read()
    body = src[src.index("var Names"):]
    return re.findall(r':\s+"([a-z_]+)",', body)


def save(model):
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def past_cutoff_model(names, width, good, bad, band=False):
    """out[i] = good (a row of width values) unless minutes_to_cutoff < 0, then bad;
    with band, only when -600 < minutes_to_cutoff < -5."""
    nf = len(names)
    minutes = names.index("minutes_to_cutoff")
    out = "risk" if width == 1 else "probabilities"
    if band:
        past = [
            helper.make_node("Less", ["minutes", "band_hi"], ["below"]),  # [N, 1]
            helper.make_node("Greater", ["minutes", "band_lo"], ["above"]),
            helper.make_node("And", ["below", "above"], ["past"]),
        ]
    else:
        past = [helper.make_node("Less", ["minutes", "zero"], ["past"])]  # [N, 1]
    graph = helper.make_graph(
        [helper.make_node("Gather", ["features", "col"], ["minutes"], axis=1)]  # [N, 1]
        + past
        + [helper.make_node("Where", ["past", "bad", "good"], [out])],  # [N, width]
        "past_cutoff_fixture",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", nf])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["N", width])],
        [
            numpy_helper.from_array(np.array([minutes], dtype=np.int64), "col"),
            numpy_helper.from_array(np.array([0], dtype=np.float32), "zero"),
            numpy_helper.from_array(np.array([-5], dtype=np.float32), "band_hi"),
            numpy_helper.from_array(np.array([-600], dtype=np.float32), "band_lo"),
            numpy_helper.from_array(np.full((1, width), bad, dtype=np.float32), "bad"),
            numpy_helper.from_array(np.asarray(good, dtype=np.float32).reshape(1, width), "good"),
        ],
    )
    return save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="orderwatch-fixture"))


def expand_model(names, expand):
    nf = len(names)
    graph = helper.make_graph(
        [
            helper.make_node("Expand", ["features", "shape"], ["big"]),  # [EXPAND, N, nf]
            helper.make_node("ReduceMax", ["big"], ["m"], axes=[0, 2], keepdims=0),  # [N]
            helper.make_node("Unsqueeze", ["m", "ax"], ["risk"]),  # [N, 1]
        ],
        "e",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", nf])],
        [helper.make_tensor_value_info("risk", TensorProto.FLOAT, ["N", 1])],
        [
            numpy_helper.from_array(np.array([expand, 1, 1], dtype=np.int64), "shape"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "ax"),
        ],
    )
    return save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))


def slow_model(names, only_from=None):
    """Risk 0.25 after a Loop of SLOW_STEPS additions; with only_from, the Loop
    runs SLOW_STEPS times only for batches of at least only_from rows, else once."""
    nf = len(names)
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Add", ["x_in", "one"], ["x_out"]),
        ],
        "step",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("x_in", TensorProto.FLOAT, [1]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("x_out", TensorProto.FLOAT, [1]),
        ],
        [numpy_helper.from_array(np.array([1], dtype=np.float32), "one")],
    )
    steps = []
    if only_from is not None:
        steps = [
            helper.make_node("Shape", ["features"], ["shape"]),
            helper.make_node("Gather", ["shape", "zero_i"], ["n"]),  # scalar N
            helper.make_node("GreaterOrEqual", ["n", "only_from"], ["big"]),
            helper.make_node("Cast", ["big"], ["big_i"], to=TensorProto.INT64),
            helper.make_node("Mul", ["big_i", "steps"], ["many"]),
            helper.make_node("Add", ["many", "one_i"], ["trips"]),
        ]
    graph = helper.make_graph(
        steps + [
            helper.make_node("Loop", ["trips" if only_from is not None else "steps", "true", "x0"], ["x"], body=body),
            helper.make_node("Mul", ["x", "zero"], ["x_zero"]),  # [1]
            helper.make_node("ReduceSum", ["features", "cols"], ["s"], keepdims=1),  # [N, 1]
            helper.make_node("Mul", ["s", "zero"], ["s_zero"]),
            helper.make_node("Add", ["s_zero", "x_zero"], ["z"]),
            helper.make_node("Add", ["z", "quarter"], ["risk"]),
        ],
        "slow_fixture",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", nf])],
        [helper.make_tensor_value_info("risk", TensorProto.FLOAT, ["N", 1])],
        [
            numpy_helper.from_array(np.array(SLOW_STEPS, dtype=np.int64), "steps"),
            numpy_helper.from_array(np.array(True), "true"),
            numpy_helper.from_array(np.array([0], dtype=np.float32), "x0"),
            numpy_helper.from_array(np.array([0], dtype=np.float32), "zero"),
            numpy_helper.from_array(np.array([0.25], dtype=np.float32), "quarter"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "cols"),
        ] + ([
            numpy_helper.from_array(np.array(0, dtype=np.int64), "zero_i"),
            numpy_helper.from_array(np.array(1, dtype=np.int64), "one_i"),
            numpy_helper.from_array(np.array(only_from, dtype=np.int64), "only_from"),
        ] if only_from is not None else []),
    )
    return save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="orderwatch-fixture"))


def write(fixture, name, data, names, width, golden_out, labels=None):
    out = os.path.join(OUT, fixture, name, VERSION)
    os.makedirs(out, exist_ok=True)
    open(os.path.join(out, "model.onnx"), "wb").write(data)
    rng = np.random.default_rng(3)
    golden = []
    for i in range(GOLDEN_ROWS):
        row = rng.uniform(0, 3, size=len(names)).astype(np.float32)
        row[names.index("minutes_to_cutoff")] = 30.0 * (i + 1)
        golden.append({"input": [float(v) for v in row], "output": [float(v) for v in golden_out(row)]})
    bundle = {
        "name": name, "version": VERSION, "feature_spec_version": "2", "role": "active",
        "inputs": [{"name": "features", "dtype": "float32", "shape": [-1, len(names)], "features": names}],
        "outputs": [{"name": "risk" if width == 1 else "probabilities", "dtype": "float32", "shape": [-1, width]}],
        "thresholds": {"act": 0.7},
        "metrics": {"data": "a test fixture that misbehaves, not a model"},
        "sha256": hashlib.sha256(data).hexdigest(),
        "golden": golden,
        "trained_by": "models/testdata/make_bad_fixtures.py",
    }
    if labels:
        bundle["labels"] = labels
    with open(os.path.join(out, "bundle.json"), "w") as f:
        json.dump(bundle, f, indent=1)
        f.write("\n")
    print("wrote", out, len(data), "bytes of model.onnx")


def main():
    names = spec_names()
    for fixture, bad in (("risk_nan", np.nan), ("risk_inf", np.inf), ("risk_high", 7.0)):
        write(fixture, "cutoff_risk", past_cutoff_model(names, 1, [0.25], bad, band=True), names, 1, lambda r: [0.25])
    for fixture, bad in (("sweep_nan", np.nan), ("sweep_high", 7.0)):
        write(fixture, "cutoff_risk", past_cutoff_model(names, 1, [0.25], bad), names, 1, lambda r: [0.25])
    uniform = [1.0 / len(CLASSES)] * len(CLASSES)
    write("class_nan", "exception_class", past_cutoff_model(names, len(CLASSES), uniform, np.nan, band=True), names,
          len(CLASSES), lambda r: np.asarray(uniform, dtype=np.float32), labels=CLASSES)
    write("slow", "cutoff_risk", slow_model(names), names, 1, lambda r: [0.25])
    write("slow_batch", "cutoff_risk", slow_model(names, only_from=1000), names, 1, lambda r: [0.25])
    write("expand", "cutoff_risk", expand_model(names, EXPAND), names, 1, lambda r: [float(np.max(r))])
    write("expand_batch", "cutoff_risk", expand_model(names, EXPAND_BATCH), names, 1, lambda r: [float(np.max(r))])


if __name__ == "__main__":
    main()
