"""cutoff_risk: the probability that an open order misses its ship cutoff.

The model is scikit-learn's HistGradientBoostingClassifier on the 34 features of
feature spec 2, exported by hand with onnx.helper as

    features float32 [N,34] -> ai.onnx.ml TreeEnsembleRegressor (the boosted trees,
    summed, plus the baseline log-odds) -> logit [N,1] -> Sigmoid -> risk float32 [N,1]

Nothing is written into the graph but what training produced: the training runs
include warehouse outages (train.py), so what an outage does to an order still to
be picked is learnt from them like everything else.

Trees compare x <= threshold. The thresholds of scikit-learn are float64 midpoints
between feature values; ONNX Runtime compares float32 inputs with float32
thresholds, so each threshold is rounded down to the greatest float32 not above it,
which makes every float32 input take the same branch as in scikit-learn.

Monotonic constraints encode what is known about orders, not learnt from a sample:
the risk does not fall when the cutoff comes closer, a hold lasts longer, a
shortfall, an error, a carrier problem or a warehouse backlog appears, and does not
rise as the order moves to later milestones. They keep the model's answers
coherent where the simulator's data is thin (and the reason codes, which move one
feature at a time, with them).
"""

import numpy as np
import onnx
from onnx import TensorProto, helper
from sklearn.ensemble import HistGradientBoostingClassifier

from bundle import IR_VERSION, ML_OPSET, OPSET

NAME = "cutoff_risk"

# +1: the risk does not fall as the feature grows; -1: it does not rise.
MONOTONE = {
    "minutes_to_cutoff": -1,
    "milestone_rank": -1,
    "customer_tier": -1,  # higher tiers are picked first
    "expedited": -1,  # pickers take next-day orders first
    "allocation_changes": 1,
    "on_credit_hold": 1,
    "hold_minutes": 1,
    "pricing_open": 1,
    "allocation_short": 1,
    "address_changed": 1,
    "integration_errors": 1,
    "carrier_issues": 1,
    "warehouse_load_ratio": 1,
    "warehouse_outage": 1,
    "carrier_on_time": -1,
    "carrier_delay_minutes": 1,
    "customer_miss_rate": 1,
}

PARAMS = dict(learning_rate=0.08, max_iter=150, max_leaf_nodes=31, min_samples_leaf=80,
              l2_regularization=1.0, max_bins=255)

def fit(x, y, names, weight=None, seed=0, params=None):
    """Fit the classifier on float32 feature rows x and labels y."""
    p = dict(PARAMS, **(params or {}))
    clf = HistGradientBoostingClassifier(
        loss="log_loss", early_stopping=False, random_state=seed,
        monotonic_cst=[MONOTONE.get(n, 0) for n in names], **p)
    clf.fit(np.asarray(x, dtype=np.float64), y, sample_weight=weight)
    return clf


def predict(clf, x):
    """scikit-learn's probabilities for feature rows x (for checking score)."""
    return clf.predict_proba(np.asarray(x, dtype=np.float64))[:, 1]


def _trees(clf):
    return [preds[0] for preds in clf._predictors]


def _down32(t):
    """The greatest float32 that is not above the float64 t."""
    f = np.float32(t)
    if np.float64(f) > t:
        f = np.nextafter(f, np.float32(-np.inf))
    return f


def graph(clf, nfeatures):
    """The ONNX model of a fitted classifier; input features [N,nfeatures], output risk [N,1]."""
    a = {k: [] for k in ("treeids", "nodeids", "featureids", "values", "modes",
                         "true", "false", "missing")}
    t_tree, t_node, t_weight = [], [], []
    for ti, tree in enumerate(_trees(clf)):
        nodes = tree.nodes
        assert not nodes["is_categorical"].any()
        for ni, nd in enumerate(nodes):
            a["treeids"].append(ti)
            a["nodeids"].append(ni)
            if nd["is_leaf"]:
                a["featureids"].append(0)
                a["values"].append(0.0)
                a["modes"].append("LEAF")
                a["true"].append(0)
                a["false"].append(0)
                a["missing"].append(0)
                t_tree.append(ti)
                t_node.append(ni)
                t_weight.append(float(np.float32(nd["value"])))
            else:
                assert np.isfinite(nd["num_threshold"])
                a["featureids"].append(int(nd["feature_idx"]))
                a["values"].append(float(_down32(nd["num_threshold"])))
                a["modes"].append("BRANCH_LEQ")
                a["true"].append(int(nd["left"]))
                a["false"].append(int(nd["right"]))
                a["missing"].append(int(nd["missing_go_to_left"]))
    base = float(np.float32(clf._baseline_prediction.ravel()[0]))
    trees = helper.make_node(
        "TreeEnsembleRegressor", ["features"], ["logit"], domain="ai.onnx.ml", name="trees",
        n_targets=1, aggregate_function="SUM", post_transform="NONE", base_values=[base],
        nodes_treeids=a["treeids"], nodes_nodeids=a["nodeids"], nodes_featureids=a["featureids"],
        nodes_values=a["values"], nodes_modes=a["modes"], nodes_truenodeids=a["true"],
        nodes_falsenodeids=a["false"], nodes_missing_value_tracks_true=a["missing"],
        target_treeids=t_tree, target_nodeids=t_node, target_ids=[0] * len(t_tree),
        target_weights=t_weight)
    sig = helper.make_node("Sigmoid", ["logit"], ["risk"], name="probability")
    g = helper.make_graph(
        [trees, sig], "cutoff_risk",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", nfeatures])],
        [helper.make_tensor_value_info("risk", TensorProto.FLOAT, ["N", 1])])
    model = helper.make_model(
        g, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", ML_OPSET)],
        producer_name="orderwatch-train", producer_version="1",
        doc_string="cutoff_risk: probability of missing the ship cutoff; gradient-boosted trees "
                   "trained on orderwatch simulator replays by models/train/train.py")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def score(clf, x):
    """The ONNX graph's arithmetic in float32: per row, the float32 leaf values summed
    tree by tree, the base added, then the sigmoid. Returns [N,1] float32."""
    x = np.asarray(x, dtype=np.float32)
    z = np.zeros(len(x), dtype=np.float32)
    rows = np.arange(len(x))
    for tree in _trees(clf):
        nodes = tree.nodes
        feat = nodes["feature_idx"].astype(np.int64)
        thr = np.array([_down32(t) if np.isfinite(t) else np.float32(0) for t in nodes["num_threshold"]],
                       dtype=np.float32)
        leaf = nodes["is_leaf"].astype(bool)
        left, right = nodes["left"].astype(np.int64), nodes["right"].astype(np.int64)
        at = np.zeros(len(x), dtype=np.int64)
        while True:
            inner = ~leaf[at]
            if not inner.any():
                break
            i = rows[inner]
            n = at[inner]
            go_left = x[i, feat[n]] <= thr[n]
            at[inner] = np.where(go_left, left[n], right[n])
        z = z + nodes["value"][at].astype(np.float32)
    z = z + np.float32(clf._baseline_prediction.ravel()[0])
    return (np.float32(1) / (np.float32(1) + np.exp(-z))).astype(np.float32).reshape(-1, 1)


# The hand-written rule: a table of miss rates by milestone and hours left, read off
# the training rows once and rounded by hand (for orders that nothing blocks, and for
# orders on a credit hold, with an open pricing exception or short of stock), then
# a few adjustments. Hours left: <0.5, <1, <2, <4, <8, <16, <24, more.
RULE_HOURS = [0.5, 1, 2, 4, 8, 16, 24]
RULE_BY_MILESTONE = [
    [1.0, 0.95, 0.25, 0.2, 0.15, 0.15, 0.12, 0.06],  # created
    [1.0, 0.9, 0.22, 0.15, 0.11, 0.11, 0.1, 0.04],  # allocated
    [1.0, 0.75, 0.27, 0.16, 0.11, 0.09, 0.08, 0.03],  # pick released
    [0.98, 0.35, 0.1, 0.1, 0.09, 0.07, 0.08, 0.01],  # picked
    [0.56, 0.11, 0.09, 0.09, 0.08, 0.07, 0.08, 0.01],  # packed
]
RULE_BLOCKED = [0.99, 0.98, 0.92, 0.66, 0.42, 0.28, 0.26, 0.15]


def rule_risk(x, f):
    """The hand-written rule above: the table's rate for the order's milestone and
    hours left (the blocked row when that is higher); at least 0.5 after a
    re-allocation; 2.5 times as high with a carrier under 95% on time; at least 0.5
    while its warehouse reports an outage; 0.99 with a carrier problem reported or
    at or past the cutoff. f maps feature names to column indices."""
    minutes = x[:, f["minutes_to_cutoff"]]
    b = np.digitize(minutes / 60.0, RULE_HOURS)
    rank = np.clip(x[:, f["milestone_rank"]], 1, 5).astype(int)
    s = np.array(RULE_BY_MILESTONE)[rank - 1, b]
    blocked = ((x[:, f["on_credit_hold"]] > 0) | (x[:, f["pricing_open"]] > 0)
               | (x[:, f["allocation_short"]] > 0))
    s = np.where(blocked, np.maximum(s, np.array(RULE_BLOCKED)[b]), s)
    s = np.where(x[:, f["allocation_changes"]] > 0, np.maximum(s, 0.5), s)
    s = np.where(x[:, f["carrier_on_time"]] < 0.95, s * 2.5, s)
    s = np.where(x[:, f["warehouse_outage"]] > 0, np.maximum(s, 0.5), s)
    s = np.where(x[:, f["carrier_issues"]] > 0, 0.99, s)
    s = np.where(minutes <= 0, 0.99, s)
    return np.clip(s, 0.0, 0.99).astype(np.float32)
