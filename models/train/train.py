#!/usr/bin/python3
"""Train the shipped models on simulator replays and write their bundles and model cards.

    /usr/bin/python3 models/train/train.py [--bin bin/orderwatch] [--work .cache/train]
                                           [--out models/shipped]

(`make models` builds the binary and runs this.) Steps:

1. Data: `orderwatch simulate` runs of the TRAIN and EVAL plans below, each replayed
   with `orderwatch replay --export` into point-in-time rows (one per scoring moment
   of an open order: its 34 features, the rules fallback's score, the token ids of
   its texts, and the order's outcome). Evaluation uses other seeds and a scenario
   (warehouse-outage) that training never sees.
2. cutoff_risk (cutoff_risk.py): gradient-boosted trees on every training row,
   label missed_cutoff, with the "usable minutes" assumption about warehouse
   outages, exported to ONNX as a tree ensemble. The same recipe without that
   assumption is fitted too, to report what it is worth.
3. exception_class (exception_class.py): multinomial logistic regression on the
   features and the bag of tokens, label exception_class.
4. Held-out figures against baselines: for cutoff_risk the rules fallback that
   serves when no model is loaded (features/fallback.go, the `risk` column) and a
   better hand-written rule (cutoff_risk.rule_risk); for exception_class a keyword
   baseline. They go into bundle.json's metrics and are printed as the README's
   table. The run fails (exit 1, after writing) when cutoff_risk does not beat the
   best rules baseline on held-out PR-AUC.
5. Bundles: models/shipped/<name>/<version>/ with model.onnx, bundle.json (golden rows
   computed in float32 numpy with the graph's arithmetic) and, for exception_class,
   tokenizer.json.

Everything is seeded: a rerun with the same binary writes the same bytes.
"""

import argparse
import os
import sys
import time

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, f1_score, roc_auc_score

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import bundle  # noqa: E402
import cutoff_risk  # noqa: E402
import exception_class  # noqa: E402
from data import Run, generate, load  # noqa: E402

VERSION = "1.0.0"
RECIPE = "models/train/train.py"
SEED = 20261122
# The policy acts on risk >= 0.7 (actions/default_policy.yaml, high-risk-notify-cs);
# the bundle's act threshold is the same, so that the live quality metrics measure
# what the policy does.
ACT_THRESHOLD = 0.7
EARLY_MINUTES = 120  # "flagged at least 2 h before the cutoff"
CLASS_ACT_THRESHOLD = 0.5

# Simulator runs: about 6,000 orders a weekday and fewer at weekends at scale 1, so
# runs starting on different days cover every weekday. Evaluation uses other seeds,
# other days and a scenario training never sees. (While the recipe was developed,
# warehouse-outage seeds 91 and 92 served to find out what the model misses there;
# the figures reported come from seeds 93 and 94, which played no part in it.)
TRAIN = [
    Run("normal", 11, 5000, "2026-05-18"),  # Monday
    Run("normal", 12, 5000, "2026-05-23"),  # Saturday
    Run("peak", 21, 5000, "2026-05-19"),  # Tuesday
    Run("peak", 22, 5000, "2026-05-22"),  # Friday
    Run("carrier-disruption", 31, 5000, "2026-05-20"),  # Wednesday
    Run("carrier-disruption", 32, 5000, "2026-05-21"),  # Thursday
]
EVAL = [
    Run("warehouse-outage", 93, 5000, "2026-05-26"),  # Tuesday
    Run("warehouse-outage", 94, 5000, "2026-05-29"),  # Friday
]


def pct(v):
    return f"{100 * v:.1f}%"


def early_flags(rows, score, threshold):
    """Per order: missed, and whether any row with at least EARLY_MINUTES to the
    cutoff scored at or above threshold. Returns (recall, precision, flagged, missed)."""
    n = rows.norders
    missed = np.zeros(n, dtype=bool)
    missed[rows.order] = rows.missed.astype(bool)
    seen = np.zeros(n, dtype=bool)
    seen[rows.order] = True
    flagged = np.zeros(n, dtype=bool)
    hit = (rows.minutes >= EARLY_MINUTES) & (score >= threshold)
    flagged[rows.order[hit]] = True
    missed, flagged = missed[seen], flagged[seen]
    recall = (flagged & missed).sum() / max(missed.sum(), 1)
    precision = (flagged & missed).sum() / max(flagged.sum(), 1)
    return float(recall), float(precision), int(flagged.sum()), int(missed.sum())


def risk_metrics(rows, score, threshold):
    """Row-level figures on the rows before the cutoff, order-level early flags."""
    before = rows.minutes > 0
    y, s = rows.missed[before], score[before]
    recall, precision, flagged, missed = early_flags(rows, score, threshold)
    return {
        "roc_auc": float(roc_auc_score(y, s)),
        "pr_auc": float(average_precision_score(y, s)),
        "brier": float(brier_score_loss(y, np.clip(s, 0, 1))),
        "early_recall": recall,
        "early_precision": precision,
        "orders_flagged": flagged,
        "orders_missed": missed,
    }


def class_metrics(rows, pred, nclasses):
    return {
        "macro_f1": float(f1_score(rows.cls, pred, average="macro", labels=list(range(nclasses)),
                                   zero_division=0)),
        "accuracy": float((rows.cls == pred).mean()),
    }


def r4(v):
    return round(float(v), 4)


def describe(runs):
    by = {}
    for r in runs:
        by.setdefault(r.scenario, []).append(r)
    parts = [f"{sc} seed{'s' if len(rs) > 1 else ''} " + ", ".join(f"{r.seed} from {r.start}" for r in rs)
             for sc, rs in by.items()]
    return "; ".join(parts) + f" ({sum(r.orders for r in runs):,} orders)"


def reference_row(rows, names):
    """A typical order with nothing wrong: reason codes move one feature at a time
    to it. Medians of the training rows for sizes, context and time; 0 for holds,
    errors, changes and flags; for the time left, the median of the orders that
    shipped in time, at rows at least 4 h before their cutoff; the most common
    channel; a customer miss rate at its prior."""
    f = {n: i for i, n in enumerate(names)}
    ref = np.median(rows.x, axis=0).astype(np.float32)
    for n in ("on_credit_hold", "hold_minutes", "credit_holds", "pricing_open", "allocation_changes",
              "allocation_short", "order_changes", "address_changed", "integration_errors",
              "carrier_issues", "invoice_failed", "warehouse_outage", "customer_holds"):
        ref[f[n]] = 0
    calm = (rows.missed == 0) & (rows.minutes >= 240)
    ref[f["minutes_to_cutoff"]] = np.float32(np.median(rows.minutes[calm]))
    # The most common channel, so that the reference is an order of a known channel.
    channels = [f[n] for n in ("channel_edi", "channel_portal", "channel_ecommerce", "channel_customer_service")]
    ref[channels] = 0
    ref[channels[int(np.argmax(rows.x[:, channels].sum(axis=0)))]] = 1
    ref[f["customer_miss_rate"]] = np.float32(0.1)  # the prior of a customer without misses
    return ref


# Hand-made situations for the golden rows and the Go tests (models/model_test.go's
# order(): allocated, 10 hours to cutoff, standard tier, portal, a normal warehouse
# and carrier, a customer with 20 orders closed, a Wednesday morning).
def situation(names, **kv):
    f = {n: i for i, n in enumerate(names)}
    r = np.zeros(len(names), dtype=np.float32)
    defaults = dict(minutes_to_cutoff=600, hours_since_created=6, milestone_rank=2,
                    minutes_in_milestone=120, customer_tier=1, channel_portal=1, lines=4,
                    log_units=2.8, log_value=7.0, warehouse_load_ratio=0.7,
                    warehouse_pick_ratio=0.7, carrier_on_time=0.95, carrier_delay_minutes=20,
                    customer_orders=20, customer_miss_rate=0.1, local_hour=10, local_weekday=2)
    for k, v in {**defaults, **kv}.items():
        r[f[k]] = v
    return r


def situations(names):
    s = lambda **kv: situation(names, **kv)  # noqa: E731
    return np.stack([
        s(minutes_to_cutoff=30, on_credit_hold=1, hold_minutes=90, credit_holds=1, customer_holds=1),
        s(minutes_to_cutoff=2880, milestone_rank=5, minutes_in_milestone=60, hours_since_created=20),
        s(minutes_to_cutoff=240, allocation_short=1, allocation_changes=2, milestone_rank=1,
          minutes_in_milestone=360),
        s(integration_errors=2, carrier_issues=1, customer_tier=3, channel_portal=0, channel_edi=1),
        s(warehouse_load_ratio=1.8, warehouse_outage=1, warehouse_pick_ratio=0.05),
        s(carrier_on_time=0.7, carrier_delay_minutes=180, carrier_issues=1),
        s(minutes_to_cutoff=300, expedited=1, local_hour=18.5, milestone_rank=3),
        s(order_changes=1, address_changed=1, customer_orders=100, customer_miss_rate=0.4,
          channel_portal=0, channel_customer_service=1),
    ])


def pick_examples(rows, by, k, rng):
    """Indices of k rows, spread over the values of by (one per value, in turn)."""
    out = []
    values = np.unique(by)
    while len(out) < k:
        for v in values:
            cand = np.flatnonzero(by == v)
            if len(cand) and len(out) < k:
                out.append(int(rng.choice(cand)))
    return np.array(sorted(out))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=os.path.join(bundle.ROOT, "bin", "orderwatch"))
    ap.add_argument("--work", default=os.path.join(bundle.ROOT, ".cache", "train"),
                    help="directory for the simulator runs and replayed rows (reused)")
    ap.add_argument("--out", default=os.path.join(bundle.ROOT, "models", "shipped"),
                    help="models dir to write <name>/<version>/ into")
    args = ap.parse_args()
    t0 = time.time()
    names = bundle.feature_names()
    classes = bundle.exception_classes()
    f = {n: i for i, n in enumerate(names)}

    paths = generate(args.bin, args.work, TRAIN + EVAL)
    train = load(paths[:len(TRAIN)])
    held = load(paths[len(TRAIN):])
    t_data = time.time() - t0
    print(f"data: {len(train)} training rows of {train.norders} orders, {len(held)} held-out rows "
          f"of {held.norders} orders ({t_data:.0f}s)", file=sys.stderr)

    # cutoff_risk ---------------------------------------------------------------
    clf = cutoff_risk.fit(train.x, train.missed, names, seed=SEED)
    risk_model = cutoff_risk.graph(clf, len(names))
    p_held = cutoff_risk.score(clf, held.x)[:, 0]
    p_check = cutoff_risk.predict(clf, held.x)
    assert np.abs(p_held - p_check).max() < 1e-4, np.abs(p_held - p_check).max()

    m_model = risk_metrics(held, p_held, ACT_THRESHOLD)
    # What the outage assumption is worth: the same recipe without it.
    raw = cutoff_risk.fit(train.x, train.missed, names, seed=SEED, assume_outage=False)
    m_raw = risk_metrics(held, cutoff_risk.predict(raw, held.x, assume_outage=False), ACT_THRESHOLD)
    m_fallback = risk_metrics(held, held.risk, ACT_THRESHOLD)
    m_rule = risk_metrics(held, cutoff_risk.rule_risk(held.x, f), ACT_THRESHOLD)
    # The best hand-written baseline is the one with the higher held-out PR-AUC.
    best_name, m_best = max((("rules fallback", m_fallback), ("hand-written rule", m_rule)),
                            key=lambda kv: kv[1]["pr_auc"])
    before = held.minutes > 0
    t_risk = time.time() - t0 - t_data

    # exception_class ---------------------------------------------------------------
    cm = exception_class.fit(train.x, train.tokens, train.cls, len(classes), seed=SEED)
    class_model = exception_class.graph(cm, len(names), len(classes))
    q_held = exception_class.score(cm, held.x, held.tokens)
    c_model = class_metrics(held, q_held.argmax(axis=1), len(classes))
    c_keywords = class_metrics(held, exception_class.Keywords(classes).predict(held.tokens), len(classes))

    # Bundles -------------------------------------------------------------------------
    ref = reference_row(train, names)
    rng = np.random.default_rng(SEED)
    data_train, data_eval = describe(TRAIN), describe(EVAL)

    gx = np.concatenate([situations(names), held.x[pick_examples(held, held.missed, 4, rng)]])
    risk_bundle = {
        "name": cutoff_risk.NAME, "version": VERSION, "feature_spec_version": bundle.FEATURE_SPEC_VERSION,
        "role": "active",
        "inputs": [{"name": "features", "dtype": "float32", "shape": [-1, len(names)], "features": names}],
        "outputs": [{"name": "risk", "dtype": "float32", "shape": [-1, 1]}],
        "thresholds": {"act": ACT_THRESHOLD},
        "metrics": {
            "evaluated_on": f"held out: {data_eval}; scenario and seeds not used for training",
            "trained_on": data_train,
            "rows_train": len(train), "rows_eval_before_cutoff": int(before.sum()),
            "orders_eval": held.norders, "orders_eval_missed": m_model["orders_missed"],
            "miss_rate_eval_rows": r4(held.missed[before].mean()),
            "roc_auc": r4(m_model["roc_auc"]), "pr_auc": r4(m_model["pr_auc"]), "brier": r4(m_model["brier"]),
            "baseline": best_name,
            "baseline_roc_auc": r4(m_best["roc_auc"]), "baseline_pr_auc": r4(m_best["pr_auc"]),
            "baseline_brier": r4(m_best["brier"]),
            "rules_fallback_roc_auc": r4(m_fallback["roc_auc"]), "rules_fallback_pr_auc": r4(m_fallback["pr_auc"]),
            "rules_fallback_brier": r4(m_fallback["brier"]),
            "without_outage_assumption_roc_auc": r4(m_raw["roc_auc"]),
            "without_outage_assumption_pr_auc": r4(m_raw["pr_auc"]),
            "without_outage_assumption_brier": r4(m_raw["brier"]),
            "misses_flagged_2h_early": r4(m_model["early_recall"]),
            "precision_flagged_2h_early": r4(m_model["early_precision"]),
            "baseline_misses_flagged_2h_early": r4(m_best["early_recall"]),
            "baseline_precision_flagged_2h_early": r4(m_best["early_precision"]),
            "note": "row figures on every scoring moment before the cutoff; flagged 2h early: an order "
                    "counts when any of its rows at least 120 min before the cutoff scores at or above "
                    "thresholds.act",
        },
        "reference": [bundle.f32(v) for v in ref],
        "golden": bundle.golden_rows(gx, cutoff_risk.score(clf, gx)),
        "trained_by": RECIPE,
    }
    risk_dir = bundle.write(args.out, risk_model, risk_bundle)

    gi = pick_examples(held, held.cls, 9, rng)
    gxc, gtc = held.x[gi], held.tokens[gi]
    class_bundle = {
        "name": exception_class.NAME, "version": VERSION, "feature_spec_version": bundle.FEATURE_SPEC_VERSION,
        "role": "active",
        "inputs": [{"name": "features", "dtype": "float32", "shape": [-1, len(names)], "features": names},
                   {"name": "tokens", "dtype": "int64", "shape": [-1, bundle.MAX_TOKENS], "tokens": True}],
        "outputs": [{"name": "probabilities", "dtype": "float32", "shape": [-1, len(classes)]}],
        "labels": classes,
        "thresholds": {"act": CLASS_ACT_THRESHOLD},
        "metrics": {
            "evaluated_on": f"held out: {data_eval}; scenario and seeds not used for training",
            "trained_on": data_train,
            "rows_train": len(train), "rows_eval": len(held),
            "macro_f1": r4(c_model["macro_f1"]), "accuracy": r4(c_model["accuracy"]),
            "baseline": "keywords",
            "baseline_macro_f1": r4(c_keywords["macro_f1"]), "baseline_accuracy": r4(c_keywords["accuracy"]),
            "note": "every scoring moment of the held-out orders, against the order's final exception "
                    "class; the class is the most probable one",
        },
        "reference": [bundle.f32(v) for v in ref],
        "golden": bundle.golden_rows(gxc, exception_class.score(cm, gxc, gtc), gtc),
        "trained_by": RECIPE,
    }
    class_dir = bundle.write(args.out, class_model, class_bundle, text=True)

    # Model card, as the README shows it ---------------------------------------------
    mm, mb = m_model, m_best
    print(f"Held out: {data_eval}; trained on {data_train}.")
    print(f"cutoff_risk {VERSION}: {int(before.sum())} scoring moments before the cutoff of "
          f"{held.norders} orders, {mm['orders_missed']} of which missed "
          f"(rows: {pct(held.missed[before].mean())} positive).")
    print()
    print(f"| cutoff_risk {VERSION} | model | best rules baseline ({best_name}) | rules fallback |")
    print("|---|---|---|---|")
    print(f"| ROC-AUC | {mm['roc_auc']:.3f} | {mb['roc_auc']:.3f} | {m_fallback['roc_auc']:.3f} |")
    print(f"| PR-AUC (average precision) | {mm['pr_auc']:.3f} | {mb['pr_auc']:.3f} | {m_fallback['pr_auc']:.3f} |")
    print(f"| Brier score (lower is better) | {mm['brier']:.4f} | {mb['brier']:.4f} | {m_fallback['brier']:.4f} |")
    print(f"| misses flagged ≥ 2 h before the cutoff at risk ≥ {ACT_THRESHOLD} | {pct(mm['early_recall'])} | "
          f"{pct(mb['early_recall'])} | {pct(m_fallback['early_recall'])} |")
    print(f"| precision of those flags (orders flagged ≥ 2 h early that missed) | {pct(mm['early_precision'])} "
          f"({mm['orders_flagged']} flagged) | {pct(mb['early_precision'])} ({mb['orders_flagged']} flagged) | "
          f"{pct(m_fallback['early_precision'])} ({m_fallback['orders_flagged']} flagged) |")
    print()
    print(f"Without its outage assumption (the same recipe on the raw minutes_to_cutoff), cutoff_risk scores "
          f"ROC-AUC {m_raw['roc_auc']:.3f}, PR-AUC {m_raw['pr_auc']:.3f}, Brier {m_raw['brier']:.4f}.")
    print()
    print(f"| exception_class {VERSION} | model | keyword baseline |")
    print("|---|---|---|")
    print(f"| macro-F1 over the {len(classes)} classes, every scoring moment | {c_model['macro_f1']:.3f} | "
          f"{c_keywords['macro_f1']:.3f} |")
    print(f"| accuracy | {c_model['accuracy']:.3f} | {c_keywords['accuracy']:.3f} |")
    print()
    print(f"wrote {os.path.relpath(risk_dir, bundle.ROOT)} and {os.path.relpath(class_dir, bundle.ROOT)} "
          f"in {time.time() - t0:.0f}s (data {t_data:.0f}s, cutoff_risk {t_risk:.0f}s)", file=sys.stderr)
    if mm["pr_auc"] <= mb["pr_auc"]:
        print("cutoff_risk does not beat the rules baseline on held-out PR-AUC", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
