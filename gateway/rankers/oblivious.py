"""CatBoost's oblivious trees compiled to C (gcc) for serving.

An oblivious tree of depth d asks the same d questions ``x[f] > border`` of every row, so its
leaf is a d-bit number and the whole forest is branch-free: for each tree, for each row, d
comparisons, one table lookup, one add. Generated as C over column-major float32 features
(one contiguous column per feature) and compiled with gcc, whose vectoriser turns the row
loop into AVX2 compares and gathers. CatBoost's own ``predict`` spends most of its time building a Pool
and binarising every column; this skips both.

Exactness: comparisons are float32 against CatBoost's float32 borders (as CatBoost does;
NaN compares false, CatBoost's "AsIs"), leaf values are summed in double tree by tree, then
``scale * sum + bias`` (compiled in, without FMA contraction) and the sigmoid. Scores equal ``predict(prediction_type="Probability")``
within 1e-12 (tested on whole catalogues); every load re-checks on a probe. Only numeric
models qualify (no categorical or text features); others stay on CatBoost's predictor.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from gateway.rankers.compiled import CompileUnavailable

# -mtune=haswell: GCC's Zen tuning declines AVX2 gathers and leaves the row loop scalar, which
# is much slower; the ISA stays the host's.
# -ffp-contract=off: scale * sum + bias rounds as in CatBoost, not as one fused multiply-add.
CFLAGS = ("-O3", "-march=native", "-mtune=haswell", "-fno-fast-math", "-ffp-contract=off")
GENERATOR_VERSION = 2  # part of the cache key: bump when the generated code changes
ROW_BLOCK = 256  # rows per pass over all trees: their columns and sums stay in L1/L2


class ObliviousUnsupported(CompileUnavailable):
    """The model or this machine cannot use the compiled evaluator."""


def generate_c(model_json: dict) -> str:
    info = model_json["features_info"]
    if set(info) - {"float_features"}:
        raise ObliviousUnsupported(
            f"model has non-numeric features ({', '.join(sorted(set(info) - {'float_features'}))})"
        )
    columns = {f["feature_index"]: f["flat_feature_index"] for f in info["float_features"]}
    lines = ["#include <stdint.h>", ""]
    body = []
    for t, tree in enumerate(model_json["oblivious_trees"]):
        leaves = tree["leaf_values"]
        splits = tree["splits"]
        if len(leaves) != 1 << len(splits):
            raise ObliviousUnsupported("multi-dimensional leaves are not supported")
        if any(s["split_type"] != "FloatFeature" for s in splits):
            raise ObliviousUnsupported("only float splits are supported")
        lines.append(
            f"static const double L{t}[{len(leaves)}] = {{{', '.join(repr(float(v)) for v in leaves)}}};"
        )
        bits = (
            " | ".join(
                f"((X[{columns[s['float_feature_index']]} * n + r] > {_float32_literal(s['border'])}) << {j})"
                for j, s in enumerate(splits)
            )
            or "0"
        )
        body.append(f"    for (int64_t r = lo; r < hi; r++) out[r] += L{t}[{bits}];")
    scale, biases = model_json["scale_and_bias"]
    if len(biases) != 1:
        raise ObliviousUnsupported("multi-dimensional models are not supported")
    lines += [
        "",
        "void predict(const float* restrict X, int64_t n, double* restrict out) {",
        f"  for (int64_t lo = 0; lo < n; lo += {ROW_BLOCK}) {{",
        f"    const int64_t hi = lo + {ROW_BLOCK} < n ? lo + {ROW_BLOCK} : n;",
        "    for (int64_t r = lo; r < hi; r++) out[r] = 0.0;",
        *body,
        f"    for (int64_t r = lo; r < hi; r++) out[r] = {float(scale)!r} * out[r] + {float(biases[0])!r};",
        "  }",
        "}",
        "",
    ]
    return "\n".join(lines)


def _float32_literal(value: float) -> str:
    f = np.float32(value)
    if not np.isfinite(f):
        raise ObliviousUnsupported(f"non-finite border {value}")
    return f"{float(f)!r}f"


def toolchain_id() -> str:
    """Compiler, target and CPU flags: a compiled library is reused only where all match."""
    cc = shutil.which(os.environ.get("CC", "gcc"))
    if cc is None:
        raise ObliviousUnsupported("no C compiler (gcc) on this machine")
    version = subprocess.run(
        [cc, "-dumpfullversion", "-dumpversion"], capture_output=True, text=True
    ).stdout.strip()
    machine = subprocess.run([cc, "-dumpmachine"], capture_output=True, text=True).stdout.strip()
    return f"{GENERATOR_VERSION}|{cc}|{version}|{machine}|{' '.join(CFLAGS)}|{_cpu_flags()}"


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line
    except OSError:
        pass
    return os.uname().machine


def build_library(model_file: Path, out: Path) -> None:
    """Export the model, generate C, compile it into the shared library ``out``."""
    from catboost import CatBoost

    model = CatBoost()
    model.load_model(str(model_file))
    with tempfile.TemporaryDirectory() as tmp:
        exported = Path(tmp) / "model.json"
        model.save_model(str(exported), format="json")
        source = Path(tmp) / "forest.c"
        source.write_text(generate_c(json.loads(exported.read_text())))
        cc = shutil.which(os.environ.get("CC", "gcc")) or "gcc"
        done = subprocess.run(
            [cc, *CFLAGS, "-shared", "-fPIC", "-o", str(out), str(source)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise ObliviousUnsupported(f"gcc failed: {done.stderr.strip()[:300]}")


class ObliviousForest:
    """The compiled library; ``predict`` takes the feature columns, returns probabilities."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lib = ctypes.CDLL(str(path))  # calls release the GIL
        self._lib.predict.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p]
        self._lib.predict.restype = None

    def raw(self, columns: np.ndarray) -> np.ndarray:
        """``columns``: (features, rows) float32, C-contiguous; the model's raw score."""
        columns = np.ascontiguousarray(columns, dtype=np.float32)
        out = np.empty(columns.shape[1], dtype=np.float64)
        self._lib.predict(columns.ctypes.data, columns.shape[1], out.ctypes.data)
        return out

    def predict(self, columns: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.raw(columns)))
