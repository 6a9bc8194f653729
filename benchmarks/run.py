"""chainrule's benchmark suite: `make bench` (or `python benchmarks/run.py [--quick]`).

Runs six workload groups (moons, chain, wide, ops, names, compiler; see README.md) on chainrule and its
peers, each job in a fresh worker process (worker.py), prints tables with chainrule's ratio to every
peer measured in this same run, and writes every number to benchmarks/results/<time>.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WORKER = HERE / "worker.py"
# Every worker's BLAS on one thread, as PyTorch's (torch.set_num_threads(1)): NumPy's matrix products in
# chainrule's batched and compiled rows get no second core that PyTorch's don't.
ONE_THREAD = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}

# The peers compared with. torch runs batched (float64 tensors) on moons and on 0-d tensors
# (one tensor per number, like a scalar engine) everywhere else.
# On moons, `chainrule` and `chainrule-batched` are what users run (chainrule.nn.MLP and
# chainrule.losses); the `-ops` rows build the same model by hand from + and *, op for op as
# micrograd does, to show what the one-node `linear` neuron is worth (info rows).
# `chainrule-compiled` replays the batched graph through chainrule.compile, `chainrule-compiled-eager`
# the per-example graph (one scalar graph per point, compiled once): both built and compiled before the clock.
MOONS_ENGINES = ["chainrule", "chainrule-batched", "chainrule-compiled", "chainrule-compiled-eager",
                 "chainrule-ops", "chainrule-batched-ops", "micrograd", "torch-batched"]
SCALAR_ENGINES = ["chainrule", "micrograd", "torch-scalar"]
# microgpt's training step (names): its own engine and model code (benchmarks/microgpt_peer.py), the same
# model code on chainrule's Value, and chainrule's own GPT (chainrule.lm with `linear` nodes).
NAMES_ENGINES = ["microgpt", "chainrule-microgpt-code", "chainrule"]
MICROGPT_FIRST_LOSS = 3.3659669475848504  # microgpt's published first step

# The speed targets, checked against this run's numbers in the table.
TARGETS = {
    "moons_eager_x_micrograd": 20.0,
    "moons_batched_x_micrograd": 500.0,
    "compiled_replay_x_eager": 20.0,  # replaying the compiled per-example graph vs building it again
    "op_ns": 1000.0,  # + and *, GC on
    "op_ns_gc_off": 350.0,
    "pow_x_mul": 1.5,  # a**2 within 1.5x of a*b
    "backward_ns_per_node": 200.0,  # the 10^6 chain and the 10^5 wide sum, GC on
    "backward_ns_per_node_moons": 300.0,
    "bytes_per_node": 150.0,
    "chain_1e6_s": 4.0,
    "chain_1e6_s_gc_off": 1.5,
    "names_own_gpt_x_microgpt": 3.0,  # chainrule's GPT, eager, per step vs microgpt with its own engine
    "names_same_code_x_microgpt": 1.0,  # microgpt's model code on chainrule's Value: no slower
    # compiler: chainrule's compiled step ÷ PyTorch's (float64, one thread), in turn in one process
    "digits_32_x_torch": 1.0,
    "digits_128_128_x_torch": 1.2,
    "moons_compiled_x_torch": 1.0,
    "gpt_batch_x_torch": 1.0,
    "gpt_capture_compile_s": 2.0,  # one GPT batch shape: build the batched graph and compile it
    "per_name_x_microgpt": 300.0,  # the batch-32 compiled step ÷ 32 vs microgpt's one-name step, faster by
}
WORKLOADS = ["moons", "chain", "wide", "ops", "names", "compiler"]
GPT_BATCH = 32


def plan(quick: bool) -> dict[str, Any]:
    if quick:
        return {"moons_steps": 4, "chain": [10**3, 10**4, 10**5], "wide": [10**4, 10**5],
                "wide_mem": 10**4, "repeats": 3, "time_cap_s": 5.0, "ops_n": 10**4,
                "ops_repeats": 3, "backward_n": 5 * 10**3, "timeout_s": 180, "names_steps": 5,
                "names_rounds": 1, "digits_steps": 12, "gpt_steps": 30}
    return {"moons_steps": 10, "chain": [10**3, 10**4, 10**5, 10**6], "wide": [10**4, 10**5, 10**6],
            "wide_mem": 10**5, "repeats": 5, "time_cap_s": 12.0, "ops_n": 2 * 10**4,
            "ops_repeats": 7, "backward_n": 2 * 10**4, "timeout_s": 400,  # time_cap_s below
            "names_steps": 40, "names_rounds": 3, "digits_steps": 60, "gpt_steps": 200}


# ---------------------------------------------------------------------------------------------
# inputs shared by every engine: the demo's data and one draw of the initial weights
# ---------------------------------------------------------------------------------------------


def engine_state() -> str:
    """Which chainrule was measured: the commit, and whether src/ had uncommitted changes."""
    def git(*cmd: str) -> str:
        return subprocess.run(["git", *cmd], cwd=HERE, capture_output=True, text=True,
                              check=False).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = [ln.strip().split(maxsplit=1)[-1]
             for ln in git("status", "--porcelain", "--", "../src").splitlines()]
    if not dirty:
        return commit
    shown = ", ".join(dirty[:4]) + (f" and {len(dirty) - 4} more" if len(dirty) > 4 else "")
    return f"{commit} + uncommitted changes in {shown}"


def cpu() -> str:
    """The host's CPU as Linux names it, with what moves the compiled rows' ratios: AVX-512 or not and
    the last-level cache (the same code measured 0.95× PyTorch on one host and 1.26× on another)."""
    try:
        lines = Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines()
    except OSError:
        return platform.processor() or "unknown"
    first = lines[: lines.index("")] if "" in lines else lines  # the first core's lines
    fields = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in first if ":" in line)}
    try:
        l3 = Path("/sys/devices/system/cpu/cpu0/cache/index3/size").read_text(encoding="utf-8").strip()
    except OSError:
        l3 = "?"
    avx = "AVX-512" if "avx512f" in fields.get("flags", "").split() else "no AVX-512"
    return f"{fields.get('model name', 'unknown')}, {avx}, L3 {l3}"


def moons_data() -> tuple[list[list[float]], list[float], str]:
    """micrograd's demo data: np.random.seed(1337); make_moons(n_samples=100, noise=0.1)."""
    import numpy as np

    np.random.seed(1337)  # the demo seeds NumPy's global state and make_moons reads it
    try:
        from chainrule.data import make_moons  # bit-identical to scikit-learn's
        source = "chainrule.data.make_moons"
    except ImportError:
        from sklearn.datasets import make_moons
        source = "sklearn.datasets.make_moons"
    X, y = make_moons(n_samples=100, noise=0.1)
    X, y = np.asarray(X, dtype=float), np.asarray(y)
    return X.tolist(), (y * 2 - 1).astype(float).tolist(), source


def initial_weights(sizes: list[int], seed: int = 1337) -> list[list[list[float]]]:
    """Drawn as micrograd's MLP draws them after random.seed(1337): uniform(-1, 1) weights
    neuron by neuron, bias 0. weights[layer][neuron] = [w..., b]."""
    rng = random.Random(seed)
    return [[[rng.uniform(-1, 1) for _ in range(nin)] + [0.0] for _ in range(nout)]
            for nin, nout in itertools.pairwise(sizes)]


# ---------------------------------------------------------------------------------------------
# running one job
# ---------------------------------------------------------------------------------------------


def describe_exit(code: int) -> str:
    if code < 0:
        name = signal.Signals(-code).name
        if name == "SIGSEGV":
            return "segfault (SIGSEGV)"
        if name == "SIGKILL":
            return "killed (SIGKILL, likely out of memory)"
        return f"killed by {name}"
    return f"exit code {code}"


def run_job(job: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    base = {"engine": job["engine"], "workload": job["workload"], "n": job.get("n")}
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, str(WORKER), "-"], input=json.dumps(job), env=ONE_THREAD,
                              capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return {**base, "error": f"timeout after {timeout_s:.0f} s", "wall_s": timeout_s}
    wall = time.perf_counter() - t0
    stages = [ln[7:] for ln in proc.stderr.splitlines() if ln.startswith("stage: ")]
    if proc.returncode != 0:
        tail = [ln for ln in proc.stderr.splitlines() if not ln.startswith("stage: ")][-3:]
        return {**base, "error": describe_exit(proc.returncode), "stage": stages[-1] if stages
                else "startup", "stderr_tail": tail, "wall_s": wall}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return {**base, **result, "wall_s": wall}


def progress(r: dict[str, Any]) -> str:
    who = f"  {r['workload']:<17} {r['engine']:<22}" + (f"n={r['n']:<9}" if r.get("n") else " " * 11)
    if "skipped" in r:
        return who + "skipped: " + r["skipped"]
    if "error" in r:
        tail = f" — {r['stderr_tail'][-1]}" if r.get("stderr_tail") else ""
        return who + f"CRASH in {r.get('stage', '?')}: {r['error']}{tail}"
    if r["workload"] == "moons-alternating":
        return who + (f"compiled {r['compiled_step_ms']:.3f} ms/step, torch {r['torch_step_ms']:.3f} "
                      f"ms/step, in turn")
    if r["workload"] == "moons":
        compiled = (f"; compile {r['compile_ms']:.1f} ms, {r['nodes']} nodes → {r['instructions']} "
                    "instructions" if "compile_ms" in r else "")
        return who + f"{r['step_ms']:.3f} ms/step (GC {'on' if r['gc'] else 'off'}){compiled}"
    if r["workload"].startswith("digits-") or r["workload"] == "gpt-batch":
        return who + (f"compiled {r['step_ms']:.2f} ms/step, torch {r['torch_step_ms']:.2f} ms/step, in turn "
                      f"(GC {'on' if r['gc'] else 'off'}); capture+compile {r['capture_compile_ms']:.0f} ms")
    if r["workload"] == "names":
        return who + (f"{r['step_ms']:.1f} ms/step (GC {'on' if r['gc'] else 'off'}), "
                      f"first loss {r['losses'][0]!r}")
    if r["workload"] in ("chain", "wide"):
        return who + (f"fwd {r['fwd_ms']:.1f} ms, bwd {r['bwd_ms']:.1f} ms ({r['repeats']}x)"
                      + ("" if r["gc"] else " (GC off)"))
    if r["workload"] == "wide-mem":
        return who + (f"{r['traced_bytes_per_node']:.0f} B/node traced, "
                      f"{r['rss_bytes_per_node']:.0f} B/node RSS")
    ops = ", ".join(f"{k} {v:.0f}" for k, v in r["ns_per_op"].items() if v is not None)
    return who + f"ns/op: {ops}; backward {r['backward_ns_per_node']:.0f} ns/node"


# ---------------------------------------------------------------------------------------------
# the table
# ---------------------------------------------------------------------------------------------


def sci(n: int) -> str:
    e = len(str(n)) - 1
    return f"10^{e}" if n == 10**e else f"{n:,}"


def cell(x: float | None, digits: int = 1) -> str:
    if x is None:
        return "—"
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}" if x >= 1 else f"{x:.{max(digits, 2)}g}"


def ratio(peer: float | None, ours: float | None) -> str:
    if peer is None or ours is None or ours == 0:
        return "—"
    r = peer / ours
    return f"{r:,.0f}×" if r >= 100 else f"{r:.3g}×"


def merge_rounds(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The names jobs of every round as one result per engine and GC setting: the mean of all their timed
    steps (step 0 of each process is a warm-up), each round's own mean kept in `round_ms`."""
    merged: dict[tuple[str, bool], dict[str, Any]] = {}
    out = []
    for r in results:
        key = (r["engine"], r.get("gc", True))
        if r["workload"] != "names" or "step_ms_all" not in r:
            out.append(r)
        elif key not in merged:
            merged[key] = first = {**r, "round_ms": [r["step_ms"]], "timed_ms": r["step_ms_all"][1:]}
            out.append(first)
        else:
            first = merged[key]
            first["round_ms"].append(r["step_ms"])
            first["timed_ms"] += r["step_ms_all"][1:]
            first["rounds_differ"] = first.get("rounds_differ", False) or r["losses"] != first["losses"]
            first.setdefault("later_rounds", []).append(r)
    for r in merged.values():
        rounds = [r, *r.pop("later_rounds", [])]
        if all("freed_step_ms_all" in each for each in rounds):  # GC off only
            freed = [t for each in rounds for t in each["freed_step_ms_all"][1:]]
            r["freed_step_ms"] = statistics.fmean(freed)  # as step_ms: every timed step of every round
            r["grown_mb_per_step"] = statistics.fmean(each["grown_mb_per_step"] for each in rounds)
        r["step_ms"] = sum(r["timed_ms"]) / len(r["timed_ms"])
        r["step_ms_median"] = statistics.median(r.pop("timed_ms"))
    return out


class Results:
    def __init__(self, results: list[dict[str, Any]]) -> None:
        self.results = results

    def get(self, engine: str, workload: str, n: int | None = None,
            gc: bool = True) -> dict[str, Any] | None:
        for r in self.results:
            if (r["engine"], r["workload"]) == (engine, workload) and \
                    n in (None, r.get("n")) and r.get("gc", True) == gc:
                return r
        return None

    def num(self, engine: str, workload: str, key: str, n: int | None = None,
            gc: bool = True) -> float | str | None:
        """The number, or why there is none (a crash), or None (not run)."""
        r = self.get(engine, workload, n, gc)
        if r is None:
            return None
        if "error" in r:
            return r["error"].split(":")[0].split(" (")[0]  # the error's name, details in the JSON
        if "skipped" in r:
            return "skipped"
        v = r
        for part in key.split("."):
            v = v.get(part) if isinstance(v, dict) else None
        return v


def table_rows(R: Results, p: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def row(label: str, ours: Any, mg: Any, th: Any, target: str = "", met: bool | None = None,
            digits: int = 1, ratios: bool = True) -> None:
        if ours is None and mg is None and th is None:
            return  # workload not run (--only)
        rows.append({"workload": label, "chainrule": ours, "micrograd": mg, "torch": th,
                     "x_micrograd": ratio(*(v if isinstance(v, float | int) else None
                                            for v in (mg, ours))),
                     "x_torch": ratio(*(v if isinstance(v, float | int) else None
                                        for v in (th, ours))),
                     **({} if ratios else {"x_micrograd": "", "x_torch": ""}),
                     "target": target + ("" if met is None else (" met" if met else " MISSED")),
                     "digits": digits})

    def met_ratio(peer: Any, ours: Any, goal: float) -> bool | None:
        if isinstance(peer, float) and isinstance(ours, float):
            return peer / ours >= goal
        return None

    def met_below(ours: Any, goal: Any) -> bool | None:
        return ours <= goal if isinstance(ours, float) and isinstance(goal, float | int) else None

    def info(engine: str, workload: str, key: str) -> Any:
        r = R.get(engine, workload)
        return r.get(key, "?") if r else "?"

    mg_step = R.num("micrograd", "moons", "step_ms")
    eager = R.num("chainrule", "moons", "step_ms")
    batched = R.num("chainrule-batched", "moons", "step_ms")
    row("moons step, ms (torch batched f64)", eager, mg_step, R.num("torch-batched", "moons",
        "step_ms"), "≥20× micrograd", met_ratio(mg_step, eager, 20), digits=2)
    row("moons step batched, ms", batched, mg_step, R.num("torch-batched", "moons", "step_ms"),
        "≥500× micrograd", met_ratio(mg_step, batched, 500), digits=2)
    torch_step = R.num("torch-batched", "moons", "step_ms")
    compiled = R.num("chainrule-compiled", "moons", "step_ms")
    row("moons step compiled (batched graph), ms", compiled, mg_step, torch_step, "≤ torch",
        met_below(compiled, torch_step), digits=3)
    replay = R.num("chainrule-compiled-eager", "moons", "step_ms")
    x_eager = eager / replay if isinstance(eager, float) and isinstance(replay, float) else None
    alt = R.get("chainrule-compiled", "moons-alternating")
    if alt and "ratio" in alt:
        row("  compiled (batched) and torch in turn, one process, ms", alt["compiled_step_ms"], None,
            alt["torch_step_ms"], "≤ torch", alt["compiled_step_ms"] <= alt["torch_step_ms"], digits=3)
    row("moons step compiled (per-example graph), ms", replay, mg_step, torch_step,
        f"≥20× eager rebuild ({x_eager:.0f}×)" if x_eager else "≥20× eager rebuild",
        met_ratio(eager, replay, TARGETS["compiled_replay_x_eager"]), digits=3)
    for engine, graph in (("chainrule-compiled", "batched"), ("chainrule-compiled-eager", "per-example")):
        row(f"  compile {graph} graph ({info(engine, 'moons', 'nodes')} nodes → "
            f"{info(engine, 'moons', 'instructions')} instructions), ms [info]",
            R.num(engine, "moons", "compile_ms"), None, None, digits=2)
    row("  eager, model from + and * [info]", R.num("chainrule-ops", "moons", "step_ms"), mg_step,
        R.num("torch-batched", "moons", "step_ms"), digits=2)
    row("  batched, model from + and * [info]", R.num("chainrule-batched-ops", "moons", "step_ms"),
        mg_step, R.num("torch-batched", "moons", "step_ms"), digits=2)
    row("  eager, GC off [info]", R.num("chainrule", "moons", "step_ms", gc=False),
        R.num("micrograd", "moons", "step_ms", gc=False), None, digits=2)
    share = {e: R.num(e, "moons", "gc_share") for e in ("chainrule", "micrograd", "torch-batched")}
    row("  eager time in GC, % [info]", *(s * 100 if isinstance(s, float) else s
                                    for s in share.values()), digits=1, ratios=False)
    for n in p["chain"]:
        ours = R.num("chainrule", "chain", "total_ms", n)
        ours_s = ours / 1000 if isinstance(ours, float) else ours
        mg = R.num("micrograd", "chain", "total_ms", n)
        th = R.num("torch-scalar", "chain", "total_ms", n)
        target, met = ("", None)
        if n == 10**6:
            target, met = "< 4 s", met_below(ours_s, TARGETS["chain_1e6_s"])
        row(f"chain {sci(n)} fwd+bwd, s", ours_s, mg / 1000 if isinstance(mg, float) else mg,
            th / 1000 if isinstance(th, float) else th, target, met, digits=3)
    big_chain = p["chain"][-1]
    ours, mg = (R.num(e, "chain", "total_ms", big_chain, gc=False) for e in ("chainrule", "micrograd"))
    ours_s = ours / 1000 if isinstance(ours, float) else ours
    row(f"chain {sci(big_chain)} fwd+bwd, s, GC off", ours_s, mg / 1000 if isinstance(mg, float) else mg,
        None, "< 1.5 s" if big_chain == 10**6 else "",
        met_below(ours_s, TARGETS["chain_1e6_s_gc_off"]) if big_chain == 10**6 else None, digits=3)
    for n in p["wide"]:
        for part in ("fwd", "bwd"):
            row(f"wide {sci(n)} {part}, ms", R.num("chainrule", "wide", f"{part}_ms", n),
                R.num("micrograd", "wide", f"{part}_ms", n),
                R.num("torch-scalar", "wide", f"{part}_ms", n))
    n = p["wide_mem"]
    row(f"bytes/node (wide {sci(n)}, traced; torch RSS)",
        R.num("chainrule", "wide-mem", "traced_bytes_per_node", n),
        R.num("micrograd", "wide-mem", "traced_bytes_per_node", n),
        R.num("torch-scalar", "wide-mem", "rss_bytes_per_node", n), "≤150 B",
        met_below(R.num("chainrule", "wide-mem", "traced_bytes_per_node", n), 150), digits=0)
    row(f"  bytes/node RSS (wide {sci(n)}) [info]",
        *(R.num(e, "wide-mem", "rss_bytes_per_node", n) for e in SCALAR_ENGINES), digits=0)
    big = p["wide"][-1]
    row(f"  peak RSS wide {sci(big)}, MB [info]",
        *(R.num(e, "wide", "peak_rss_above_start_mb", big) for e in SCALAR_ENGINES), digits=0)
    for table, gc_note in (("ns_per_op", ""), ("ns_per_op_gc_off", ", GC off")):
        mul = R.num("chainrule", "ops", f"{table}.*")
        for op in ("+", "*", "**", "relu", "tanh", "exp"):
            if gc_note and op not in ("+", "*", "**"):
                continue
            ours = R.num("chainrule", "ops", f"{table}.{op}")
            goal = TARGETS["op_ns_gc_off" if gc_note else "op_ns"]
            target, met = (f"≤{goal:,.0f} ns", met_below(ours, goal)) if op in ("+", "*") else ("", None)
            if op == "**":  # a**2, a constant exponent: within 1.5x of a*b
                target = f"≤{TARGETS['pow_x_mul']}× *"
                met = met_below(ours, TARGETS["pow_x_mul"] * mul) if isinstance(mul, float) else None
            row(f"op {op}, ns{gc_note}", ours, R.num("micrograd", "ops", f"{table}.{op}"),
                R.num("torch-scalar", "ops", f"{table}.{op}"), target, met, digits=0)
    # Backward alone, per node of the maths (leaves included), on four graphs; GC on, then off.
    big_wide = p["wide_mem"]
    for gc in (True, False):
        note = "" if gc else ", GC off"
        for workload, n, name in (("chain", big_chain, "chain"), ("wide", big_wide, "wide sum")):
            ours = R.num("chainrule", workload, "bwd_ns_per_node", n, gc=gc)
            row(f"backward ns/node, {name} {sci(n)}{note}", ours,
                R.num("micrograd", workload, "bwd_ns_per_node", n, gc=gc),
                R.num("torch-scalar", workload, "bwd_ns_per_node", n) if gc else None,
                "≤200 ns" if gc else "", met_below(ours, TARGETS["backward_ns_per_node"]) if gc else None,
                digits=0)
        ours = R.num("chainrule", "moons", "bwd_ns_per_node", gc=gc)
        row(f"backward ns/node, moons graph{note} (micrograd: its own graph)", ours,
            R.num("micrograd", "moons", "bwd_ns_per_node", gc=gc), None, "≤300 ns" if gc else "",
            met_below(ours, TARGETS["backward_ns_per_node_moons"]) if gc else None, digits=0)
    ours = R.num("chainrule", "ops", "backward_ns_per_node")
    row("backward ns/node, Σ relu(a·b + c)**2", ours, R.num("micrograd", "ops", "backward_ns_per_node"),
        R.num("torch-scalar", "ops", "backward_ns_per_node"), digits=0)
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    head = ["workload", "chainrule", "micrograd", "torch", "× vs micrograd", "× vs torch", "target"]
    body = []
    for r in rows:
        vals = [r["chainrule"], r["micrograd"], r["torch"]]
        shown = [cell(v, r["digits"]) if isinstance(v, float | int) or v is None else str(v)
                 for v in vals]
        body.append([r["workload"], *shown, r["x_micrograd"], r["x_torch"], r["target"]])
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    lines = []
    for i, line in enumerate([head, *body]):
        lines.append("  ".join(c.ljust(w) if j == 0 or j == 6 else c.rjust(w)
                               for j, (c, w) in enumerate(zip(line, widths, strict=True))).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_markdown(rows: list[dict[str, Any]]) -> str:
    head = ["workload", "chainrule", "micrograd 0.1.0", "torch 2.13", "× vs micrograd",
            "× vs torch", "target"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        vals = [cell(v, r["digits"]) if isinstance(v, float | int) or v is None else str(v)
                for v in (r["chainrule"], r["micrograd"], r["torch"])]
        cells = [r["workload"].strip(), *vals, r["x_micrograd"], r["x_torch"], r["target"]]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------


def agreement(R: Results) -> tuple[list[str], dict[str, Any]]:
    """Every engine's moons losses against micrograd's (or chainrule's when micrograd is absent)."""
    runs = {e: R.get(e, "moons") for e in MOONS_ENGINES}
    ok_runs = {e: r for e, r in runs.items() if r and "losses" in r}
    ref_name = "micrograd" if "micrograd" in ok_runs else next(iter(ok_runs), None)
    lines, out = [], {}
    if ref_name is None:
        return ["moons: no engine produced losses"], {}
    ref = ok_runs[ref_name]["losses"]
    lines.append(f"moons losses, {len(ref)} steps from the same weights; reference {ref_name}: "
                 f"step 0 loss {ref[0]:.4f}, accuracy {ok_runs[ref_name]['accuracies'][0]:.0%} "
                 "(micrograd's published log: 0.8958 at 50%)")
    for e, r in ok_runs.items():
        if e == ref_name:
            continue
        diff = max(abs(a - b) for a, b in zip(r["losses"], ref, strict=True))
        ok = diff <= 1e-12
        out[e] = {"max_abs_diff": diff, "ok": ok}
        lines.append(f"  {e:<22} max |loss - {ref_name}| = {diff:.1e}  "
                     f"{'agrees (≤ 1e-12)' if ok else 'DISAGREES (> 1e-12)'}")
    return lines, out


def names_rows(R: Results) -> list[dict[str, Any]]:
    """microgpt's step per engine, GC on and off, each as a ratio to microgpt with its own engine."""
    rows = []
    goals = {"chainrule": TARGETS["names_own_gpt_x_microgpt"],
             "chainrule-microgpt-code": TARGETS["names_same_code_x_microgpt"]}
    for e in NAMES_ENGINES:
        row: dict[str, Any] = {"engine": e}
        for gc in (True, False):
            ours, peer = R.num(e, "names", "step_ms", gc=gc), R.num("microgpt", "names", "step_ms", gc=gc)
            key = "gc_on" if gc else "gc_off"
            row[f"{key}_ms"] = ours
            row[f"{key}_x"] = peer / ours if isinstance(peer, float) and isinstance(ours, float) else None
        # GC off, each step charged with freeing its graph (microgpt's graphs wait for a collection)
        ours, peer = (freed_step_ms(R, engine) for engine in (e, "microgpt"))
        row["gc_off_freed_ms"] = ours
        row["grown_mb_per_step"] = R.num(e, "names", "grown_mb_per_step", gc=False)
        row["gc_off_freed_x"] = peer / ours if ours and peer else None
        if e in goals:
            row["target"] = f"≥{goals[e]:g}× microgpt"
            row["met"] = row["gc_on_x"] is not None and row["gc_on_x"] >= goals[e]
        rows.append(row)
    return rows


def freed_step_ms(R: Results, engine: str) -> float | None:
    """The GC-off step followed by the collection that frees its garbage (worker.run_names)."""
    step = R.num(engine, "names", "freed_step_ms", gc=False)
    return step if isinstance(step, float) else None


def format_names(rows: list[dict[str, Any]]) -> str:
    lines = ["microgpt's training step, one name (ms, mean of the steps after the first; × = microgpt's "
             "own engine ÷ this row). freed: the GC-off step followed by the gc.collect(0) that frees "
             "its garbage; MB/step: resident memory a GC-off step grows by",
             f"  {'engine':<25}{'GC on':>9}{'×':>8}{'GC off':>9}{'×':>8}{'freed':>9}{'×':>8}{'MB/step':>9}"
             "  target"]
    for r in rows:
        def fmt(x: Any, spec: str) -> str:
            return format(x, spec) if isinstance(x, float) else str(x or "—")
        target = f"{r['target']} {'met' if r['met'] else 'MISSED'} (GC on)" if "target" in r else ""
        grown = r["grown_mb_per_step"]  # resident memory moves by a page or so either way: no growth is 0
        grown = max(grown, 0.0) if isinstance(grown, float) else grown
        lines.append(f"  {r['engine']:<25}{fmt(r['gc_on_ms'], '9.1f'):>9}{fmt(r['gc_on_x'], '7.2f'):>7}×"
                     f"{fmt(r['gc_off_ms'], '9.1f'):>9}{fmt(r['gc_off_x'], '7.2f'):>7}×"
                     f"{fmt(r['gc_off_freed_ms'], '9.1f'):>9}{fmt(r['gc_off_freed_x'], '7.2f'):>7}×"
                     f"{fmt(grown, '9.1f'):>9}  {target}")
    return "\n".join(lines)


def names_agreement(R: Results) -> tuple[list[str], dict[str, Any]]:
    """Every engine's losses against microgpt's, and microgpt's first loss against its published one."""
    runs = {e: r for e in NAMES_ENGINES if (r := R.get(e, "names")) and "losses" in r}
    if "microgpt" not in runs:
        return ["names: microgpt produced no losses"], {}
    ref = runs["microgpt"]["losses"]
    first_ok = ref[0] == MICROGPT_FIRST_LOSS
    lines = [f"names losses, {len(ref)} steps: microgpt's first is {ref[0]!r} "
             f"({'its published figure' if first_ok else f'NOT its published {MICROGPT_FIRST_LOSS!r}'})"]
    out: dict[str, Any] = {"microgpt_first_loss_ok": first_ok}
    for e, r in runs.items():
        if r.get("rounds_differ"):  # each round is a fresh process from the same seed
            out[f"{e}_rounds"] = {"ok": False}
            lines.append(f"  {e:<25} rounds DISAGREE: the same seed gave other losses")
        if e == "microgpt":
            continue
        diff = max(abs(a - b) for a, b in zip(r["losses"], ref, strict=True))
        out[e] = {"max_abs_diff": diff, "ok": diff <= 1e-12}
        lines.append(f"  {e:<25} max |loss - microgpt| = {diff:.1e}  "
                     f"{'agrees (≤ 1e-12)' if diff <= 1e-12 else 'DISAGREES (> 1e-12)'}")
    return lines, out


DIGITS = {"digits-32": ("digits 64→32→10", "digits_32_x_torch"),
          "digits-128-128": ("digits 64→128→128→10", "digits_128_128_x_torch")}

# The compiler issue's "today" column, measured when it was filed (the bare step, or fit's), beside
# each row's figures now.
FILED = {"digits-32": "2.0× slower", "digits-128-128": "2.9× slower", "moons": "0.34 vs 0.53 ms",
         "gpt": "not possible (torch 2.8 ms)", "per-name": "not possible", "capture": "—"}


def compiler_rows(R: Results) -> list[dict[str, Any]]:
    """chainrule's compiled training step against PyTorch's (float64, one thread), both measured in turn in
    one process: ms per step and the ratio chainrule ÷ PyTorch (below 1, chainrule is faster). A row's
    `torch_ms` is its `peer`'s: PyTorch's, except microgpt's in the per-name row."""
    rows: list[dict[str, Any]] = []

    def num(r: dict[str, Any] | None, key: str) -> float | str | None:
        if r is None:
            return None
        if "error" in r or "skipped" in r:
            return str(r.get("error") or "skipped").split(":")[0].split(" (")[0]
        v = r.get(key)
        return float(v) if isinstance(v, int | float) else None

    def row(label: str, ours: Any, theirs: Any, goal: float | None = None, *, ratio_text: str | None = None,
            target: str | None = None, met: bool | None = None, peer: str = "torch", filed: str = "") -> None:
        both = isinstance(ours, float) and isinstance(theirs, float) and theirs > 0
        x = ours / theirs if both else None
        if goal is not None and met is None and x is not None:
            met = x <= goal
        rows.append({"workload": label, "chainrule_ms": ours, "torch_ms": theirs, "peer": peer, "ratio": x,
                     "ratio_text": ratio_text if ratio_text is not None else (f"{x:.3g}×" if x else "—"),
                     "filed": filed,
                     "target": target if target is not None else (f"≤ {goal:g}×" if goal else ""),
                     "met": met})

    for workload, (label, goal) in DIGITS.items():
        r = R.get("chainrule-compiled", workload)
        if r is None:
            continue
        row(f"{label} step, full batch 1,797, tanh, ce, SGD", num(r, "step_ms"), num(r, "torch_step_ms"),
            TARGETS[goal], filed=FILED[workload])
        row(f"  {label}: its matrix products alone, NumPy's BLAS vs PyTorch's (the floor) [info]",
            num(r, "blas_numpy_ms"), num(r, "blas_torch_ms"))
        row(f"  {label} capture+compile (fit's step 0, one run included) [info]",
            num(r, "capture_compile_ms"), None, ratio_text="")
    alt = R.get("chainrule-compiled", "moons-alternating")
    if alt is not None:
        row("moons compiled step (micrograd's demo, batched graph)", num(alt, "compiled_step_ms"),
            num(alt, "torch_step_ms"), TARGETS["moons_compiled_x_torch"], filed=FILED["moons"])
    gpt = R.get("chainrule-compiled", "gpt-batch")
    if gpt is not None:
        ok = "error" not in gpt and "skipped" not in gpt
        row(f"GPT batch {GPT_BATCH}, block 16, Adam: step, median of all {gpt.get('steps', '?')}",
            num(gpt, "step_ms"), num(gpt, "torch_step_ms"), TARGETS["gpt_batch_x_torch"], filed=FILED["gpt"])
        row(f"  GPT: steps after the first {gpt.get('late_from', 20)} [info]", num(gpt, "step_ms_late"),
            num(gpt, "torch_step_ms_late"), ratio_text=f"{gpt['ratio_late']:.3g}×" if ok else "—")
        off = R.get("chainrule-compiled", "gpt-batch", gc=False)
        if off is not None:
            ok_off = "error" not in off and "skipped" not in off
            row("  GPT: step, GC off [info]", num(off, "step_ms"), num(off, "torch_step_ms"),
                ratio_text=f"{off['ratio']:.3g}×" if ok_off else "—")
        cc = num(gpt, "capture_compile_ms")
        shape = (f"{gpt['capture_positions']} positions, {gpt['nodes']:,} nodes → {gpt['instructions']} "
                 "instructions" if ok else "")
        row(f"GPT capture+compile of one batch shape ({shape})", cc, None, ratio_text="",
            filed=FILED["capture"], target=f"≤ {TARGETS['gpt_capture_compile_s']:g} s",
            met=cc / 1000 <= TARGETS["gpt_capture_compile_s"] if isinstance(cc, float) else None)
        row(f"  GPT: first step of a new padded length, median of {gpt.get('shapes', '?')} [info]",
            num(gpt, "new_shape_step_ms"), None, ratio_text="")
        per_name = num(gpt, "step_ms")
        per_name = per_name / GPT_BATCH if isinstance(per_name, float) else per_name
        mg = R.num("microgpt", "names", "step_ms")
        faster = mg / per_name if isinstance(mg, float) and isinstance(per_name, float) else None
        goal = TARGETS["per_name_x_microgpt"]
        row(f"per name: GPT batch step ÷ {GPT_BATCH}; peer column: microgpt's own engine, one name"
            + ("" if mg is not None else " (run --only names too)"), per_name, mg,
            ratio_text=f"{faster:,.0f}× faster" if faster else "—", target=f"≥ {goal:g}× faster",
            met=faster >= goal if faster else None, peer="microgpt", filed=FILED["per-name"])
        rows[-1]["ratio"] = per_name / mg if faster and isinstance(mg, float) else None
    return rows


def _compiler_cells(r: dict[str, Any]) -> list[str]:
    def ms(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"
        return str(v or "—")

    met = "" if r["met"] is None else ("met" if r["met"] else "MISSED")
    return [r["workload"], ms(r["chainrule_ms"]), ms(r["torch_ms"]), r["ratio_text"], r.get("filed", ""),
            r["target"], met]


COMPILER_HEAD = ["workload", "chainrule ms", "torch ms", "ratio (chainrule ÷ torch)", "when filed", "target",
                 "met"]


def format_compiler(rows: list[dict[str, Any]]) -> str:
    body = [_compiler_cells(r) for r in rows]
    widths = [max(len(x[i]) for x in [COMPILER_HEAD, *body]) for i in range(len(COMPILER_HEAD))]
    lines = ["chainrule compiled vs PyTorch float64 (1 thread), in turn in one process, GC on unless marked"]
    for i, line in enumerate([COMPILER_HEAD, *body]):
        lines.append("  ".join(c.ljust(w) if j in (0, 4, 5, 6) else c.rjust(w)
                               for j, (c, w) in enumerate(zip(line, widths, strict=True))).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_compiler_markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(COMPILER_HEAD) + " |", "|" + "---|" * len(COMPILER_HEAD)]
    for r in rows:
        cells = _compiler_cells(r)
        cells[0] = cells[0].strip()
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def compiler_agreement(R: Results) -> tuple[list[str], dict[str, Any]]:
    """chainrule's losses against PyTorch's: the digits' first 5 steps, the GPT's step 0, to 1e-9 relative."""
    lines, out = [], {}
    for workload, gc in (("digits-32", True), ("digits-128-128", True), ("gpt-batch", True),
                         ("gpt-batch", False)):
        r = R.get("chainrule-compiled", workload, gc=gc)
        if r is None:
            continue
        name = (DIGITS[workload][0] if workload in DIGITS else f"GPT batch {GPT_BATCH}") + (
            "" if gc else " (GC off)")
        key = workload + ("" if gc else "-gc-off")
        if "losses" not in r:
            lines.append(f"{name}: no losses ({r.get('error') or r.get('skipped')})")
            continue
        if workload in DIGITS:
            diff, copied = r["loss_rel_diff_first5"], r["weights_copied_exactly"]
            ok = diff <= 1e-9 and copied
            what = "losses of the first 5 steps"
            extra = ("; to_torch copied every weight exactly" if copied
                     else "; to_torch did NOT copy the weights exactly")
        else:
            diff, copied = r["loss_rel_diff_step0"], True
            ok = diff <= 1e-9
            what = f"step 0 loss ({r['losses'][0]:.6f})"
            extra = f"; over all {len(r['losses'])} steps at most {r['loss_rel_diff_max']:.1e}"
        out[key] = {"max_rel_diff": diff, "weights_copied_exactly": copied, "ok": ok}
        lines.append(f"{name}: {what}, chainrule compiled vs PyTorch: max relative difference {diff:.1e}  "
                     f"{'agrees (≤ 1e-9)' if ok else 'DISAGREES (> 1e-9)'}{extra}")
    return lines, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="fewer sizes and repeats (about a minute and a half; for CI or a check)")
    ap.add_argument("--only", choices=WORKLOADS, action="append",
                    help="run only these workloads (repeatable)")
    ap.add_argument("--results-dir", type=Path, default=HERE / "results")
    ap.add_argument("--no-save", action="store_true", help="do not write the JSON results")
    ap.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    args = ap.parse_args()
    p = plan(args.quick)
    only = set(args.only or WORKLOADS)

    started = datetime.now(UTC)
    X, y, data_source = moons_data()
    weights = initial_weights([2, 16, 16, 1])
    meta = {"date": started.strftime("%Y-%m-%d %H:%M UTC"), "python": platform.python_version(),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores", "cpu": cpu(),
            "quick": args.quick, "gc": "on (as users run it) unless marked GC off",
            "moons_data": data_source, "plan": p, "chainrule": engine_state(), "torch_threads": 1,
            "load_average_at_start": os.getloadavg()}
    print(f"chainrule benchmarks — {meta['date']}, Python {meta['python']}, {meta['machine']}, "
          f"GC on{' , --quick' if args.quick else ''}")
    print(f"chainrule at {meta['chainrule']}; CPU: {meta['cpu']}")
    print(f"each job in its own process, import time excluded; torch and BLAS on 1 thread; "
          f"moons data from {data_source}")
    if os.getloadavg()[0] > 0.5:
        print(f"note: load average {os.getloadavg()[0]:.2f} at start: other work on this machine "
              "skews timings (2 cores)")

    jobs: list[dict[str, Any]] = []
    common = {"repeats": p["repeats"], "time_cap_s": p["time_cap_s"]}
    moons = {"workload": "moons", "weights": weights, "X": X, "y": y, "steps": p["moons_steps"]}
    # The compiled moons step and PyTorch's in turn, in one process: a ratio that a shared machine's load
    # (which moves between jobs) cannot tilt. 100 steps: the demo's whole run. In moons and compiler.
    alternating = {**moons, "workload": "moons-alternating", "engine": "chainrule-compiled",
                   "steps": 20 if args.quick else 100}
    if "moons" in only:
        jobs += [{**moons, "engine": e} for e in MOONS_ENGINES]
        # With the GC off, for the profile story only (users run with it on).
        jobs += [{**moons, "engine": e, "gc": False} for e in ("chainrule", "micrograd")]
        jobs += [alternating]
    # GC off: the engines' own work, for the Python engines (an application may turn the collector off;
    # the library never does). The largest chain, and the wide sum at its bytes-per-node size.
    if "chain" in only:
        jobs += [{"workload": "chain", "engine": e, "n": n, **common}
                 for e in SCALAR_ENGINES for n in p["chain"]]
        jobs += [{"workload": "chain", "engine": e, "n": p["chain"][-1], "gc": False, **common}
                 for e in ("chainrule", "micrograd")]
    if "wide" in only:
        jobs += [{"workload": "wide", "engine": e, "n": n, **common}
                 for e in SCALAR_ENGINES for n in p["wide"]]
        jobs += [{"workload": "wide", "engine": e, "n": p["wide_mem"], "gc": False, **common}
                 for e in ("chainrule", "micrograd")]
        jobs += [{"workload": "wide-mem", "engine": e, "n": p["wide_mem"]} for e in SCALAR_ENGINES]
    if "ops" in only:
        jobs += [{"workload": "ops", "engine": e, "n": p["ops_n"], "repeats": p["ops_repeats"],
                  "backward_n": p["backward_n"]} for e in SCALAR_ENGINES]
    if "names" in only:  # GC on (as users run) and off, each engine in its own process, in rounds: one
        # job per engine in turn, so that a minute of another tenant's load does not fall on one engine
        jobs += [{"workload": "names", "engine": e, "steps": p["names_steps"], "gc": gc, "round": k}
                 for k in range(p["names_rounds"]) for gc in (True, False) for e in NAMES_ENGINES]
    if "compiler" in only:  # chainrule compiled and PyTorch in turn, each job in one process; GC on (as
        # users run), and the GPT once more with it off
        if "moons" not in only:
            jobs += [alternating]
        jobs += [{"workload": f"digits-{'-'.join(map(str, hidden))}", "engine": "chainrule-compiled",
                  "hidden": hidden, "steps": p["digits_steps"]} for hidden in ([32], [128, 128])]
        jobs += [{"workload": "gpt-batch", "engine": "chainrule-compiled", "batch": GPT_BATCH,
                  "steps": p["gpt_steps"], "gc": gc} for gc in (True, False)]
    for job in jobs:
        # micrograd's backward recurses once per graph level. Users hit RecursionError (the chain
        # workload shows it at the default limit); for the wide sum and the ops graph we raise the
        # limit so there is a micrograd time to compare against, as published peer figures do.
        if job["engine"] == "micrograd" and job["workload"] in ("wide", "wide-mem", "ops"):
            job["recursion_limit"] = 10 * max(job.get("n", 0), job.get("backward_n", 0)) + 10**4

    results: list[dict[str, Any]] = []
    crashed: dict[tuple[str, str], dict[str, Any]] = {}
    for job in jobs:
        key = (job["engine"], job["workload"])
        if key in crashed and "RecursionError" in crashed[key]["error"]:
            # Deterministic: a deeper graph recurses deeper. Say so instead of burning minutes.
            r = {"engine": job["engine"], "workload": job["workload"], "n": job.get("n"),
                 "error": f"{crashed[key]['error'].split(':')[0]} (not run: already at "
                          f"n={sci(crashed[key]['n'])})", "stage": crashed[key]["stage"]}
        else:
            r = run_job(job, p["timeout_s"])
        if "error" in r and key not in crashed:
            crashed[key] = r
        r.setdefault("gc", job.get("gc", True))
        results.append(r)
        print(progress(r), flush=True)

    R = Results(merge_rounds(results))
    agree_lines, agree = agreement(R) if "moons" in only else ([], {})
    # The main table's workloads (`--only compiler` alone shows its moons row in its own table only).
    rows = table_rows(R, p) if only & {"moons", "chain", "wide", "ops"} else []
    names_lines, names_agree = names_agreement(R) if "names" in only else ([], {})
    names_table = names_rows(R) if "names" in only else []
    compiler_lines, compiler_agree = compiler_agreement(R) if "compiler" in only else ([], {})
    compiler_table = compiler_rows(R) if "compiler" in only else []
    print()
    for line in agree_lines + names_lines + compiler_lines:
        print(line)
    tables = [format_table(rows)] if rows else []
    tables += [format_names(names_table)] if names_table else []
    tables += [format_compiler(compiler_table)] if compiler_table else []
    print("\n" + "\n\n".join(tables))
    if rows:
        print("\n× = peer's figure ÷ chainrule's, both from this run: above 1, chainrule is faster or "
              "smaller.\nGC on everywhere except [GC off] rows. micrograd runs wide/ops with a raised "
              "recursion limit\n(its recursive topological sort fails past ~1000 levels at the default "
              "limit, as the chain rows show).")
    meta["load_average_at_end"] = os.getloadavg()
    if args.markdown and rows:
        print("\n" + format_markdown(rows))
        if compiler_table:
            print("\n" + format_compiler_markdown(compiler_table))
    if not args.no_save:
        args.results_dir.mkdir(parents=True, exist_ok=True)
        name = started.strftime("%Y%m%d-%H%M") + ("-quick" if args.quick else "") + ".json"
        path = args.results_dir / name
        table = [{k: v for k, v in r.items() if k != "digits"} for r in rows]
        path.write_text(json.dumps({"meta": meta, "agreement": agree, "table": table,
                                    "names_agreement": names_agree, "names_table": names_table,
                                    "compiler_agreement": compiler_agree, "compiler_table": compiler_table,
                                    "jobs": results}, indent=1, default=str) + "\n")
        print(f"results written to {path}")
    failed_agreement = any(not a["ok"] for a in agree.values()) or any(
        not a["ok"] for k, a in names_agree.items() if isinstance(a, dict)) or (
        names_agree.get("microgpt_first_loss_ok") is False) or any(
        not a["ok"] for a in compiler_agree.values())
    return 1 if failed_agreement else 0


if __name__ == "__main__":
    sys.exit(main())
