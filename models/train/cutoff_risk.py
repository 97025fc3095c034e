#!/usr/bin/python3
"""Train the placeholder cutoff_risk model and write its bundle.

PLACEHOLDER: this model is fitted on synthetic rows drawn from the generative story
below, not on real or simulated order histories. It exists so that the pipeline has a
real ONNX model to load, validate and score from the first day. It is replaced by the
model trained on the distribution-network simulator (`orderwatch train`) once that
lands; until then its scores mean "plausible", not "calibrated".

Generative story (one row = one open order at some moment before its ship cutoff,
the label = the order missed its cutoff):

* minutes_to_cutoff: minutes left until the ship cutoff, mostly a few hours to three
  days, a few orders already slightly past it. The closer the cutoff, the likelier a
  miss; an order past its cutoff that is not packed almost surely misses.
* hours_since_created: age of the order. Older orders are more likely to be picked
  already; an old order that is still not picked is likely stuck.
* on_credit_hold / credit_holds: an order on credit hold cannot be released to the
  warehouse; a hold right now weighs heavily, past holds (count) a little.
* pricing_open: an unresolved pricing exception blocks release like a soft hold.
* allocation_changes / allocation_short: re-allocations cost time, a shortfall on
  allocation (stock missing) is a strong signal of a miss.
* picked / packed (0/1): work already done; picked and packed orders rarely miss.
  Orders on hold or short are rarely picked yet.
* integration_errors / carrier_issues: counts of errors between systems and of carrier
  problems (delays, no pick-up); each makes a miss likelier.
* customer_tier: 1 standard, 2 silver, 3 gold, 4 platinum (0 unknown), as
  features.OrderState.Build encodes it; higher tiers get expedited, so they miss
  slightly less often.
* lines, log_value (log1p of the order value): bigger orders take longer to pick and pack.

The label is Bernoulli(sigmoid(logit)) with the logit built from these effects (see
`synthesize`). The model is a StandardScaler + LogisticRegression pipeline from
scikit-learn, exported by hand with onnx.helper as

    features float32 [N,14] -> Sub(mean) -> Div(scale) -> MatMul(W[14,1]) -> Add(b)
    -> Sigmoid -> risk float32 [N,1]

The run is reproducible byte for byte: fixed seed, fixed producer fields, golden
outputs computed with numpy in float32 in the graph's order of operations.

Run with a python that has numpy, scikit-learn and onnx (Debian's /usr/bin/python3
here); it writes models/shipped/cutoff_risk/0.1.0/ next to this script by default:

    /usr/bin/python3 models/train/cutoff_risk.py [--out MODELS_DIR]
"""

import argparse
import hashlib
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

NAME = "cutoff_risk"
VERSION = "0.1.0"
FEATURE_SPEC_VERSION = "1"
RECIPE = "models/train/cutoff_risk.py"
SEED = 20260521
ROWS = 40000
OPSET = 17
IR_VERSION = 8  # onnx 1.12's default; ONNX Runtime 1.24 reads IR versions up to 11.
ACT_THRESHOLD = 0.7

# Feature spec 1 (features/spec.go), in vector order. A change there needs a new spec
# version, a new recipe run and a new bundle version.
FEATURES = [
    "minutes_to_cutoff",
    "hours_since_created",
    "on_credit_hold",
    "credit_holds",
    "pricing_open",
    "allocation_changes",
    "allocation_short",
    "picked",
    "packed",
    "integration_errors",
    "carrier_issues",
    "customer_tier",
    "lines",
    "log_value",
]
F = {name: i for i, name in enumerate(FEATURES)}


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def synthesize(rng, n):
    """Return (X float32 [n,14], y int [n]) drawn from the story in the docstring."""
    x = np.zeros((n, len(FEATURES)), dtype=np.float64)

    # Time: most orders are hours to days from cutoff; 3% are up to an hour past it.
    minutes = rng.gamma(shape=1.5, scale=600.0, size=n)
    past = rng.random(n) < 0.03
    minutes[past] = -rng.uniform(0.0, 60.0, size=past.sum())
    minutes = np.round(np.clip(minutes, -60.0, 4320.0))
    hours = np.round(rng.gamma(shape=2.0, scale=6.0, size=n), 1)

    holds_past = rng.poisson(0.08, size=n)
    on_hold = (rng.random(n) < 0.07).astype(np.float64)
    credit_holds = holds_past + on_hold
    pricing_open = (rng.random(n) < 0.05).astype(np.float64)
    alloc_changes = rng.poisson(0.3, size=n).astype(np.float64)
    alloc_short = (rng.random(n) < 0.06 + 0.04 * np.minimum(alloc_changes, 2)).astype(np.float64)
    integration_errors = rng.poisson(0.12, size=n).astype(np.float64)
    carrier_issues = rng.poisson(0.1, size=n).astype(np.float64)
    tier = rng.choice([1.0, 2.0, 3.0, 4.0], p=[0.5, 0.3, 0.15, 0.05], size=n)
    lines = 1.0 + rng.poisson(4.0, size=n)
    log_value = np.round(np.log1p(rng.lognormal(mean=6.5, sigma=1.0, size=n) * lines / 5.0), 3)

    # Warehouse progress: older orders are further along, blocked ones are not released.
    p_pick = sigmoid(-1.5 + 0.12 * hours + 1.2 * (minutes < 240)
                     - 3.0 * on_hold - 2.0 * pricing_open - 2.0 * alloc_short)
    picked = (rng.random(n) < p_pick).astype(np.float64)
    packed = picked * (rng.random(n) < 0.55)

    x[:, F["minutes_to_cutoff"]] = minutes
    x[:, F["hours_since_created"]] = hours
    x[:, F["on_credit_hold"]] = on_hold
    x[:, F["credit_holds"]] = credit_holds
    x[:, F["pricing_open"]] = pricing_open
    x[:, F["allocation_changes"]] = alloc_changes
    x[:, F["allocation_short"]] = alloc_short
    x[:, F["picked"]] = picked
    x[:, F["packed"]] = packed
    x[:, F["integration_errors"]] = integration_errors
    x[:, F["carrier_issues"]] = carrier_issues
    x[:, F["customer_tier"]] = tier
    x[:, F["lines"]] = lines
    x[:, F["log_value"]] = log_value

    not_packed = 1.0 - packed
    logit = (
        -2.3
        + 2.6 * np.exp(-np.maximum(minutes, 0.0) / 300.0) * not_packed  # cutoff close
        + 3.0 * (minutes < 0) * not_packed  # already past cutoff
        + 2.2 * on_hold + 0.3 * holds_past
        + 0.9 * pricing_open
        + 0.25 * alloc_changes + 1.7 * alloc_short
        - 1.2 * picked - 1.4 * packed
        + 0.7 * integration_errors + 0.6 * carrier_issues
        - 0.25 * (tier - 1.0)
        + 0.04 * lines + 0.08 * (log_value - 6.5)
        + 0.015 * hours * (1.0 - picked)  # old and still not picked: stuck
    )
    y = (rng.random(n) < sigmoid(logit)).astype(np.int64)
    return x.astype(np.float32), y


def build_graph(mean, scale, coef, intercept):
    """ONNX graph of StandardScaler + LogisticRegression, all float32."""
    inits = [
        numpy_helper.from_array(mean.astype(np.float32), "mean"),
        numpy_helper.from_array(scale.astype(np.float32), "scale"),
        numpy_helper.from_array(coef.astype(np.float32).reshape(len(FEATURES), 1), "W"),
        numpy_helper.from_array(intercept.astype(np.float32).reshape(1), "b"),
    ]
    nodes = [
        helper.make_node("Sub", ["features", "mean"], ["centered"], name="center"),
        helper.make_node("Div", ["centered", "scale"], ["scaled"], name="scale"),
        helper.make_node("MatMul", ["scaled", "W"], ["linear"], name="weights"),
        helper.make_node("Add", ["linear", "b"], ["logit"], name="bias"),
        helper.make_node("Sigmoid", ["logit"], ["risk"], name="sigmoid"),
    ]
    graph = helper.make_graph(
        nodes,
        NAME,
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", len(FEATURES)])],
        [helper.make_tensor_value_info("risk", TensorProto.FLOAT, ["N", 1])],
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="orderwatch " + RECIPE,
        producer_version=VERSION,
        doc_string="placeholder cutoff risk model trained on synthetic data",
    )
    model.ir_version = IR_VERSION
    model.model_version = 1
    onnx.checker.check_model(model, full_check=True)
    return model


def score_numpy(x, mean, scale, coef, intercept):
    """The graph's arithmetic in float32, in the graph's order."""
    m, s = mean.astype(np.float32), scale.astype(np.float32)
    w = coef.astype(np.float32).reshape(len(FEATURES), 1)
    b = intercept.astype(np.float32).reshape(1)
    z = ((x.astype(np.float32) - m) / s) @ w + b
    return (np.float32(1.0) / (np.float32(1.0) + np.exp(-z))).astype(np.float32)


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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shipped = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "shipped")
    ap.add_argument("--out", default=os.path.normpath(shipped),
                    help="models dir to write <name>/<version>/ into (default: models/shipped)")
    args = ap.parse_args()

    rng = np.random.default_rng(SEED)
    x, y = synthesize(rng, ROWS)
    split = int(ROWS * 0.8)
    x_train, y_train, x_test, y_test = x[:split], y[:split], x[split:], y[split:]

    scaler = StandardScaler().fit(x_train.astype(np.float64))
    clf = LogisticRegression(C=1.0, max_iter=1000)
    clf.fit(scaler.transform(x_train.astype(np.float64)), y_train)

    mean, scale = scaler.mean_, scaler.scale_
    coef, intercept = clf.coef_[0], clf.intercept_
    model = build_graph(mean, scale, coef, intercept)

    p_test = score_numpy(x_test, mean, scale, coef, intercept)[:, 0]
    auc = roc_auc_score(y_test, p_test)

    # Golden rows: hand-made situations the tests name, then held-out rows.
    def row(**kv):
        r = np.zeros(len(FEATURES), dtype=np.float32)
        defaults = dict(hours_since_created=6, lines=4, log_value=7.0)
        for k, v in {**defaults, **kv}.items():
            r[F[k]] = v
        return r

    golden_x = np.stack([
        row(minutes_to_cutoff=30, on_credit_hold=1, credit_holds=1),  # hold, 30 min left
        row(minutes_to_cutoff=2880, picked=1, packed=1, hours_since_created=20),  # packed, 2 days
        row(minutes_to_cutoff=240, allocation_short=1, allocation_changes=2),
        row(minutes_to_cutoff=600, integration_errors=2, carrier_issues=1, customer_tier=3),
        *x_test[:4],
    ])
    golden_y = score_numpy(golden_x, mean, scale, coef, intercept)
    golden = [
        {"input": [f32(v) for v in gx], "output": [f32(v) for v in gy]}
        for gx, gy in zip(golden_x, golden_y)
    ]

    data = model.SerializeToString(deterministic=True)
    digest = hashlib.sha256(data).hexdigest()
    bundle = {
        "name": NAME,
        "version": VERSION,
        "feature_spec_version": FEATURE_SPEC_VERSION,
        "role": "active",
        "inputs": [{"name": "features", "dtype": "float32", "shape": [-1, len(FEATURES)],
                    "features": FEATURES}],
        "outputs": [{"name": "risk", "dtype": "float32", "shape": [-1, 1]}],
        "thresholds": {"act": ACT_THRESHOLD},
        "metrics": {"roc_auc": round(float(auc), 4), "data": "synthetic placeholder",
                    "rows_train": split, "rows_test": ROWS - split,
                    "positive_rate": round(float(y.mean()), 4)},
        "sha256": digest,
        "golden": golden,
        "trained_by": RECIPE,
    }

    out = os.path.join(args.out, NAME, VERSION)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "model.onnx"), "wb") as fh:
        fh.write(data)
    with open(os.path.join(out, "bundle.json"), "w", encoding="utf-8") as fh:
        fh.write(to_json(bundle))

    print(f"{NAME} {VERSION}: held-out ROC-AUC {auc:.4f} (synthetic), "
          f"positive rate {y.mean():.3f}, wrote {out} (model.onnx sha256 {digest})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
