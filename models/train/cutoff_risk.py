#!/usr/bin/python3
"""Train the placeholder cutoff_risk model and write its bundle.

PLACEHOLDER: this model is fitted on synthetic rows drawn from the generative story
below, not on real or simulated order histories. It exists so that the pipeline has a
real ONNX model to load, validate and score from the first day. It is replaced by the
model trained on the distribution-network simulator (`orderwatch train`) once that
lands; until then its scores mean "plausible", not "calibrated".

Generative story (one row = one open order at some moment before its ship cutoff,
the label = the order missed its cutoff). Features are drawn in the ranges and
encodings of features.OrderState.Build (features/build.go):

* Order: channel is one of edi, portal, ecommerce, customer_service (one-hot, exactly
  one of channel_* is 1); customer_tier 1 standard, 2 silver, 3 gold, 4 platinum
  (0 unknown); expedited (service level faster than ground) is likelier for higher
  tiers; lines, log_units = ln(1 + units), log_value = ln(1 + value). Bigger orders
  take longer to pick and pack; higher tiers get looked after, so they miss slightly
  less often, an unknown tier slightly more than standard.
* Time: minutes_to_cutoff, mostly a few hours to three days (expedited orders have
  nearer cutoffs), a few orders already slightly past it; hours_since_created, the
  age of the order; local_hour (with minutes as a fraction) and local_weekday
  (Monday 0) in the warehouse's time zone, mostly business hours on weekdays. The
  closer the cutoff, the likelier a miss, and expedited orders are more sensitive to
  it; an order past its cutoff that is not packed almost surely misses. After about
  16:00 local time the warehouse's last wave has left: an order not picked yet with
  its cutoff within twelve hours then likely misses. Weekends are slightly worse.
* Blocks: on_credit_hold (customers with a history of holds are held more often),
  hold_minutes since the current hold started (longer hold, worse), credit_holds
  (holds so far, the current one included); pricing_open blocks release like a soft
  hold; allocation_changes cost time and allocation_short (stock missing) is a
  strong signal of a miss. Blocked orders are not released to the warehouse.
* Changes and errors: order_changes (customer service orders change more often) and
  address_changed (one of those changes was the address; re-labelling and re-rating
  cost time); integration_errors (EDI orders have more); carrier_issues (more with a
  carrier that performs badly); invoice_failed (rare, a weak signal).
* Progress: milestone_rank 1 created, 2 allocated, 3 pick_released, 4 picked,
  5 packed (open orders never reach 6 shipped); older orders and orders near their
  cutoff are further along, blocked orders and orders in an overloaded or failed
  warehouse less. minutes_in_milestone is the time spent in the current milestone
  (the whole age while only created). Each milestone reached makes a miss less
  likely, picked and packed much less; an order long in an early milestone is stuck.
* Warehouse (4% of rows have not reported: all three 0): warehouse_load_ratio =
  queue / capacity, around 0.7 with a long tail above 1 (more work queued than an
  hour of picking clears; worse the higher, for orders not packed yet);
  warehouse_outage (2%, strong); warehouse_pick_ratio = picks in the last hour /
  capacity, lower outside the 06:00-22:00 shift and during an outage; a warehouse
  that picks briskly helps orders not picked yet.
* Carrier (8% of rows have no performance yet: carrier_on_time 0.95, delay 0):
  carrier_on_time, mostly 0.8-1, and carrier_delay_minutes, longer for carriers that
  are less on time; low on-time and long delays make misses likelier.
* Customer (context): each customer has a latent miss propensity and hold
  propensity; customer_orders closed so far (0 for a new customer),
  customer_miss_rate = (missed + 1) / (closed + 10) (0.1 for a new customer, as
  Build smooths it), customer_holds = past holds plus this order's. The latent
  propensity, seen through the smoothed rate, drives misses.

The label is Bernoulli(sigmoid(logit)) with the logit built from these effects (see
`synthesize`). The model is a StandardScaler + LogisticRegression pipeline from
scikit-learn, exported by hand with onnx.helper as

    features float32 [N,34] -> Sub(mean) -> Div(scale) -> MatMul(W[34,1]) -> Add(b)
    -> Sigmoid -> risk float32 [N,1]

The run is reproducible byte for byte: fixed seed, fixed producer fields, golden
outputs computed with numpy in float32 in the graph's order of operations.

Run with a python that has numpy, scikit-learn and onnx (Debian's /usr/bin/python3
here); it writes models/shipped/cutoff_risk/0.2.0/ next to this script by default:

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
VERSION = "0.2.0"
FEATURE_SPEC_VERSION = "2"
RECIPE = "models/train/cutoff_risk.py"
SEED = 20260521
ROWS = 40000
OPSET = 17
IR_VERSION = 8  # onnx 1.12's default; ONNX Runtime 1.24 reads IR versions up to 11.
ACT_THRESHOLD = 0.7

# Feature spec 2 (features/spec.go), in vector order. A change there needs a new spec
# version, a new recipe run and a new bundle version.
FEATURES = [
    "minutes_to_cutoff",
    "hours_since_created",
    "milestone_rank",
    "minutes_in_milestone",
    "on_credit_hold",
    "hold_minutes",
    "credit_holds",
    "pricing_open",
    "allocation_changes",
    "allocation_short",
    "order_changes",
    "address_changed",
    "integration_errors",
    "carrier_issues",
    "invoice_failed",
    "customer_tier",
    "channel_edi",
    "channel_portal",
    "channel_ecommerce",
    "channel_customer_service",
    "expedited",
    "lines",
    "log_units",
    "log_value",
    "warehouse_load_ratio",
    "warehouse_outage",
    "warehouse_pick_ratio",
    "carrier_on_time",
    "carrier_delay_minutes",
    "customer_orders",
    "customer_miss_rate",
    "customer_holds",
    "local_hour",
    "local_weekday",
]
F = {name: i for i, name in enumerate(FEATURES)}

# Channels in the order of their one-hot features.
CHANNELS = ["channel_edi", "channel_portal", "channel_ecommerce", "channel_customer_service"]
EDI, PORTAL, ECOMMERCE, CUSTOMER_SERVICE = range(4)

# Milestone ranks (features.Milestones); open orders are at CREATED..PACKED.
CREATED, ALLOCATED, RELEASED, PICKED, PACKED = 1, 2, 3, 4, 5


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def synthesize(rng, n):
    """Return (X float32 [n,34], y int [n]) drawn from the story in the docstring."""
    x = np.zeros((n, len(FEATURES)), dtype=np.float64)

    def flag(b):
        return b.astype(np.float64)

    # Order.
    channel = rng.choice(4, p=[0.35, 0.25, 0.30, 0.10], size=n)
    tier = rng.choice([0.0, 1.0, 2.0, 3.0, 4.0], p=[0.05, 0.48, 0.28, 0.14, 0.05], size=n)
    expedited = flag(rng.random(n) < 0.12 + 0.06 * tier)
    lines = 1.0 + rng.poisson(4.0, size=n)
    units = lines * (1.0 + rng.poisson(2.5, size=n))
    log_units = np.round(np.log1p(units), 3)
    log_value = np.round(np.log1p(rng.lognormal(mean=6.5, sigma=1.0, size=n) * lines / 5.0), 3)

    # Time: most orders are hours to days from cutoff; 3% are up to an hour past it.
    minutes = rng.gamma(shape=1.5, scale=np.where(expedited > 0, 360.0, 600.0))
    past = rng.random(n) < 0.03
    minutes[past] = -rng.uniform(0.0, 60.0, size=past.sum())
    minutes = np.round(np.clip(minutes, -60.0, 4320.0))
    hours = np.round(rng.gamma(shape=2.0, scale=6.0, size=n), 1)
    age = hours * 60.0
    # Local time: 80% in business hours, the rest any time; whole minutes.
    business = rng.random(n) < 0.8
    local_hour = np.where(business, rng.uniform(7.0, 20.0, size=n), rng.uniform(0.0, 24.0, size=n))
    local_hour = np.floor(local_hour * 60.0) / 60.0
    weekday = rng.choice(7, p=[0.18, 0.18, 0.18, 0.18, 0.16, 0.07, 0.05], size=n).astype(np.float64)

    # Customer: latent miss and hold propensities, a history of closed orders.
    miss_propensity = rng.beta(2.0, 14.0, size=n)
    hold_propensity = rng.beta(1.0, 20.0, size=n)
    new_customer = rng.random(n) < 0.1
    closed = np.where(new_customer, 0.0, np.minimum(np.round(rng.lognormal(2.5, 1.3, size=n)), 5000.0))
    missed = rng.binomial(closed.astype(np.int64), miss_propensity).astype(np.float64)
    miss_rate = (missed + 1.0) / (closed + 10.0)

    # Blocks.
    on_hold = flag(rng.random(n) < 0.04 + 0.6 * hold_propensity)
    hold_minutes = on_hold * np.minimum(np.round(rng.gamma(shape=1.5, scale=80.0, size=n)), np.floor(age))
    holds_past = rng.poisson(0.06 + 0.5 * hold_propensity, size=n).astype(np.float64)
    credit_holds = holds_past + on_hold
    customer_holds = rng.binomial(closed.astype(np.int64), hold_propensity) + credit_holds
    pricing_open = flag(rng.random(n) < 0.05)
    alloc_changes = rng.poisson(0.3, size=n).astype(np.float64)
    alloc_short = flag(rng.random(n) < 0.06 + 0.04 * np.minimum(alloc_changes, 2))

    # Changes and errors.
    order_changes = rng.poisson(0.2 + 0.2 * (channel == CUSTOMER_SERVICE), size=n).astype(np.float64)
    address_changed = flag((order_changes > 0) & (rng.random(n) < 0.3))
    integration_errors = rng.poisson(0.08 + 0.14 * (channel == EDI), size=n).astype(np.float64)
    invoice_failed = flag(rng.random(n) < 0.01)

    # Warehouse context.
    wh_reported = rng.random(n) < 0.96
    load = np.round(rng.lognormal(np.log(0.7), 0.45, size=n), 3)
    outage = flag(rng.random(n) < 0.02)
    on_shift = (local_hour >= 6.0) & (local_hour < 22.0)
    pick_ratio = (np.minimum(load, 1.1) * rng.beta(8.0, 2.0, size=n)
                  * np.where(on_shift, 1.0, 0.15) * np.where(outage > 0, 0.1, 1.0))
    pick_ratio = np.round(pick_ratio, 3)
    load, outage, pick_ratio = load * wh_reported, outage * wh_reported, pick_ratio * wh_reported

    # Carrier context.
    carrier_reported = rng.random(n) < 0.92
    on_time = np.where(carrier_reported, np.round(np.clip(rng.beta(18.0, 2.0, size=n), 0.3, 1.0), 3), 0.95)
    delay = np.round(rng.gamma(shape=1.2, scale=12.0 + 120.0 * (1.0 - on_time)), 1) * carrier_reported
    carrier_issues = rng.poisson(0.05 + 0.5 * (1.0 - on_time)).astype(np.float64)

    # Warehouse progress: one stage after the other; older orders and orders near their
    # cutoff are further along, blocked orders are not released, a loaded or failed
    # warehouse is slower.
    blocked = (on_hold > 0) | (pricing_open > 0) | (alloc_short > 0)
    progress = (-0.8 + 0.12 * hours + 1.2 * (minutes < 240)
                - 0.8 * np.maximum(load - 1.0, 0.0) - 2.0 * outage)
    rank = np.full(n, float(CREATED))
    for stage, bias in ((ALLOCATED, 2.0), (RELEASED, 0.8), (PICKED, 0.0), (PACKED, -0.3)):
        advance = rng.random(n) < sigmoid(progress + bias)
        if stage >= RELEASED:
            advance &= ~blocked
        rank = np.where((rank == stage - 1) & advance, float(stage), rank)
    in_milestone = np.where(rank == CREATED, age, age * rng.beta(1.2, 2.0, size=n))
    in_milestone = np.clip(np.round(in_milestone), 0.0, 10080.0)

    x[:, F["minutes_to_cutoff"]] = minutes
    x[:, F["hours_since_created"]] = hours
    x[:, F["milestone_rank"]] = rank
    x[:, F["minutes_in_milestone"]] = in_milestone
    x[:, F["on_credit_hold"]] = on_hold
    x[:, F["hold_minutes"]] = hold_minutes
    x[:, F["credit_holds"]] = credit_holds
    x[:, F["pricing_open"]] = pricing_open
    x[:, F["allocation_changes"]] = alloc_changes
    x[:, F["allocation_short"]] = alloc_short
    x[:, F["order_changes"]] = order_changes
    x[:, F["address_changed"]] = address_changed
    x[:, F["integration_errors"]] = integration_errors
    x[:, F["carrier_issues"]] = carrier_issues
    x[:, F["invoice_failed"]] = invoice_failed
    x[:, F["customer_tier"]] = tier
    for c, name in enumerate(CHANNELS):
        x[:, F[name]] = flag(channel == c)
    x[:, F["expedited"]] = expedited
    x[:, F["lines"]] = lines
    x[:, F["log_units"]] = log_units
    x[:, F["log_value"]] = log_value
    x[:, F["warehouse_load_ratio"]] = load
    x[:, F["warehouse_outage"]] = outage
    x[:, F["warehouse_pick_ratio"]] = pick_ratio
    x[:, F["carrier_on_time"]] = on_time
    x[:, F["carrier_delay_minutes"]] = delay
    x[:, F["customer_orders"]] = closed
    x[:, F["customer_miss_rate"]] = miss_rate
    x[:, F["customer_holds"]] = customer_holds
    x[:, F["local_hour"]] = local_hour
    x[:, F["local_weekday"]] = weekday

    not_picked = flag(rank < PICKED)
    not_packed = flag(rank < PACKED)
    close = np.exp(-np.maximum(minutes, 0.0) / 300.0)
    after_last_wave = sigmoid(2.0 * (local_hour - 16.0))  # ~0 before 15:00, ~1 after 17:00
    logit = (
        -3.2
        + 3.0 * close * not_packed * (1.0 + 0.3 * expedited)  # cutoff close, expedited more so
        + 3.0 * (minutes < 0) * not_packed  # already past cutoff
        + 0.2 * expedited
        + 2.0 * on_hold + 0.003 * np.minimum(hold_minutes, 600.0) + 0.3 * holds_past
        + 0.9 * pricing_open
        + 0.25 * alloc_changes + 1.7 * alloc_short
        + 0.15 * order_changes + 0.8 * address_changed
        + 0.6 * integration_errors + 0.5 * carrier_issues + 0.3 * invoice_failed
        - 0.2 * (rank >= ALLOCATED) - 0.3 * (rank >= RELEASED)
        - 1.0 * (rank >= PICKED) - 1.2 * (rank >= PACKED)
        + 0.4 * np.log1p(in_milestone / 60.0) * not_picked  # long in an early milestone: stuck
        + 0.005 * hours * not_picked
        - 0.25 * (np.maximum(tier, 1.0) - 1.0) + 0.1 * (tier == 0)
        + 0.04 * lines + 0.1 * (log_units - 2.5) + 0.08 * (log_value - 6.5)
        + 1.2 * np.maximum(load - 1.0, 0.0) * not_packed + 0.2 * load
        + 1.5 * outage
        - 0.4 * pick_ratio * not_picked
        + 4.0 * (0.9 - on_time) + 0.006 * np.minimum(delay, 480.0)
        + 5.0 * (miss_propensity - 0.125)
        + 0.1 * np.log1p(customer_holds)
        + 1.2 * after_last_wave * not_picked * (minutes < 720) + 0.3 * after_last_wave
        + 0.25 * (weekday >= 5)
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

    # Golden rows: hand-made situations the tests name, then held-out rows. The
    # defaults are a typical open order (the tests' order() in models/model_test.go):
    # allocated, 10 hours to cutoff, standard tier, portal, a normal warehouse and
    # carrier, a customer with 20 orders closed, a Wednesday morning.
    def row(**kv):
        r = np.zeros(len(FEATURES), dtype=np.float32)
        defaults = dict(minutes_to_cutoff=600, hours_since_created=6, milestone_rank=ALLOCATED,
                        minutes_in_milestone=120, customer_tier=1, channel_portal=1, lines=4,
                        log_units=2.8, log_value=7.0, warehouse_load_ratio=0.7,
                        warehouse_pick_ratio=0.7, carrier_on_time=0.95, carrier_delay_minutes=20,
                        customer_orders=20, customer_miss_rate=0.1, local_hour=10, local_weekday=2)
        for k, v in {**defaults, **kv}.items():
            r[F[k]] = v
        return r

    golden_x = np.stack([
        # credit hold for 90 minutes, 30 min left
        row(minutes_to_cutoff=30, on_credit_hold=1, hold_minutes=90, credit_holds=1, customer_holds=1),
        # packed, 2 days left
        row(minutes_to_cutoff=2880, milestone_rank=PACKED, minutes_in_milestone=60, hours_since_created=20),
        row(minutes_to_cutoff=240, allocation_short=1, allocation_changes=2, milestone_rank=CREATED,
            minutes_in_milestone=360),
        row(integration_errors=2, carrier_issues=1, customer_tier=3, channel_portal=0, channel_edi=1),
        # overloaded warehouse with an outage
        row(warehouse_load_ratio=1.8, warehouse_outage=1, warehouse_pick_ratio=0.05),
        # late carrier
        row(carrier_on_time=0.7, carrier_delay_minutes=180, carrier_issues=1),
        # expedited, 18:30 local, 5 hours left, released but not picked
        row(minutes_to_cutoff=300, expedited=1, local_hour=18.5, milestone_rank=RELEASED),
        # address changed by a customer who often misses
        row(order_changes=1, address_changed=1, customer_orders=100, customer_miss_rate=0.4,
            channel_portal=0, channel_customer_service=1),
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
