"""Training data: simulator runs replayed into point-in-time rows.

Each run is `orderwatch simulate` (a stream and its labels) followed by `orderwatch
replay --export` (one CSV row per scoring moment, with the rules fallback's score in
`risk`, the token ids of the order's texts and the order's labels). Runs are written
into a work directory and reused when their files exist and are complete, so a rerun
does not simulate again; delete the directory to start over. The same binary,
seed, scenario and size always give the same rows.
"""

import csv
import hashlib
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from bundle import MAX_TOKENS, exception_classes, feature_names


class Run:
    """One simulator run: scenario, seed, number of orders and the day of the first
    order (YYYY-MM-DD, UTC midnight; the simulator first runs its 48 h warm-up)."""

    def __init__(self, scenario, seed, orders, start):
        self.scenario, self.seed, self.orders, self.start = scenario, seed, orders, start

    @property
    def name(self):
        return f"{self.scenario}-s{self.seed}-n{self.orders}-{self.start}"

    def __repr__(self):
        return f"{self.scenario} seed {self.seed} from {self.start} ({self.orders} orders)"


def _generate(binary, work, run):
    stream = os.path.join(work, run.name + ".ndjson")
    labels = os.path.join(work, run.name + ".labels.csv")
    rows = os.path.join(work, run.name + ".rows.csv")
    done = rows + ".done"
    if os.path.exists(done):
        return rows
    for p in (stream, labels, rows, done):
        if os.path.exists(p):
            os.remove(p)
    subprocess.run([binary, "simulate", "--orders", str(run.orders), "--seed", str(run.seed),
                    "--scenario", run.scenario, "--start", run.start + "T00:00:00Z", "--out", stream, "--labels", labels],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    subprocess.run([binary, "replay", "--in", stream, "--labels", labels, "--export", rows],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    os.remove(stream)  # large and no longer needed: the rows hold what training reads
    open(done, "w").close()
    return rows


def generate(binary, work, runs, jobs=2):
    """Simulate and replay the runs (jobs at a time) into a directory of work named
    after the binary's sha256, so a rebuilt binary never reuses another's rows;
    returns the rows files."""
    with open(binary, "rb") as fh:
        stamp = "rows-" + hashlib.sha256(fh.read()).hexdigest()[:16]
    if os.path.isdir(work):
        for old in os.listdir(work):  # rows of other binaries
            if old != stamp and old.startswith("rows-"):
                shutil.rmtree(os.path.join(work, old))
    work = os.path.join(work, stamp)
    os.makedirs(work, exist_ok=True)
    with ThreadPoolExecutor(max_workers=jobs) as ex:
        futures = [ex.submit(_generate, binary, work, r) for r in runs]
        out = []
        for r, f in zip(runs, futures):
            try:
                out.append(f.result())
            except subprocess.CalledProcessError as e:
                sys.stderr.write(e.stderr.decode(errors="replace"))
                raise
    return out


class Rows:
    """Exported rows as arrays, in file order.

    x float32 [n,34] features; risk float32 [n] (the rules fallback's score);
    tokens int64 [n,64]; missed int8 [n]; cls int64 [n] (index into
    exception_classes()); order int64 [n] (an order index unique across the
    loaded runs); moment int64 [n] (the row's moment, ns since the Unix epoch,
    UTC); minutes float32 [n] = x[:, minutes_to_cutoff]; run int [n].
    """

    def __init__(self, parts):
        self.x = np.concatenate([p["x"] for p in parts])
        self.risk = np.concatenate([p["risk"] for p in parts])
        self.tokens = np.concatenate([p["tokens"] for p in parts])
        self.missed = np.concatenate([p["missed"] for p in parts])
        self.cls = np.concatenate([p["cls"] for p in parts])
        self.moment = np.concatenate([p["moment"] for p in parts])
        offsets = np.cumsum([0] + [p["norders"] for p in parts])
        self.order = np.concatenate([p["order"] + off for p, off in zip(parts, offsets)])
        self.run = np.concatenate([np.full(len(p["x"]), i) for i, p in enumerate(parts)])
        self.norders = int(offsets[-1])
        self.minutes = self.x[:, 0]

    def __len__(self):
        return len(self.x)

    def subset(self, mask):
        r = object.__new__(Rows)
        for k in ("x", "risk", "tokens", "missed", "cls", "order", "moment", "run", "minutes"):
            setattr(r, k, getattr(self, k)[mask])
        r.norders = self.norders
        return r


def read_rows(path):
    """Read one exported rows file; rows without a label are dropped."""
    names = feature_names()
    classes = {c: i for i, c in enumerate(exception_classes())}
    feats, risk, toks, missed, cls, order, moment = [], [], [], [], [], [], []
    ids = {}
    with open(path, newline="") as fh:
        rd = csv.reader(fh)
        head = next(rd)
        want = ["order_id", "moment", "trigger", "event_id", *names, "risk", "tokens",
                "missed_cutoff", "minutes_late", "exception_class"]
        if head != want:
            raise SystemExit(f"{path}: columns {head}, want {want}")
        f0, f1 = 4, 4 + len(names)
        for rec in rd:
            if rec[-3] == "":
                continue
            if rec[-1] not in classes:
                raise SystemExit(f"{path}: order {rec[0]}: exception_class {rec[-1]!r} is not one of "
                                 f"{', '.join(classes)}")
            feats.append(rec[f0:f1])
            moment.append(rec[1])
            risk.append(rec[f1])
            toks.append(rec[f1 + 1])
            missed.append(rec[-3] == "1")
            cls.append(classes[rec[-1]])
            order.append(ids.setdefault(rec[0], len(ids)))
    n = len(feats)
    # Features parse straight to float32, as the Go side holds them.
    x = np.array(feats, dtype=np.float32).reshape(n, len(names))
    t = np.zeros((n, MAX_TOKENS), dtype=np.int64)
    for i, s in enumerate(toks):
        v = s.split()
        t[i, :len(v)] = np.array(v, dtype=np.int64)
    return {"x": x, "risk": np.array(risk, dtype=np.float32), "tokens": t,
            "missed": np.array(missed, dtype=np.int8), "cls": np.array(cls, dtype=np.int64),
            "order": np.array(order, dtype=np.int64), "moment": _moments(path, moment),
            "norders": len(ids)}


def _moments(path, moments):
    """RFC 3339 moments in UTC (as replay --export writes them, with Z) to int64 ns."""
    if any(not m.endswith("Z") for m in moments):
        raise SystemExit(f"{path}: a moment is not RFC 3339 in UTC (…Z): write the file with "
                         f"orderwatch replay --export")
    return np.array([m[:-1] for m in moments], dtype="datetime64[ns]").astype(np.int64)


def load(paths):
    return Rows([read_rows(p) for p in paths])
