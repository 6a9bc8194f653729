"""Run one benchmark job in this process and print its result as one JSON line.

    python benchmarks/worker.py '<job json>'

run.py starts one worker per (engine, workload, size), so imports are paid before any clock starts,
engines never share a heap, and a crash (RecursionError, segfault, out of memory) costs only
that job: run.py reads the return code and reports it.

The garbage collector stays on unless the job says otherwise, because users run with it on.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import workloads as wl


class GCTimer:
    """Adds up the time spent inside the cyclic garbage collector (all generations), except the
    collections this worker runs itself between repeats (`collect_off_clock`)."""

    def __init__(self) -> None:
        self.ns = 0
        self.collections = 0
        self.paused = False
        self._t0 = 0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if self.paused:
            return
        if phase == "start":
            self._t0 = time.perf_counter_ns()
        else:
            self.ns += time.perf_counter_ns() - self._t0
            self.collections += 1


GC_TIMER = GCTimer()


def collect_off_clock() -> None:
    GC_TIMER.paused = True
    gc.collect()
    GC_TIMER.paused = False


STAGE = {"now": "setup"}


def stage(name: str) -> None:
    # Written before each phase so that, if the process dies (segfault), run.py knows where.
    STAGE["now"] = name
    print(f"stage: {name}", file=sys.stderr, flush=True)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


# ---------------------------------------------------------------------------------------------
# engines: each gives a leaf factory and a way to read a leaf's gradient as a float
# ---------------------------------------------------------------------------------------------


def batched_unsupported(Value: Any) -> str | None:
    """None when chainrule's batched mode works, else why not (it lands after the eager engine)."""
    import numpy as np

    try:
        w = Value(3.0)
        x = Value(np.array([1.0, 2.0]))
        s = (x * w).sum()
        s.backward()
        if not (abs(float(w.grad) - 3.0) < 1e-12 and np.allclose(x.grad, [3.0, 3.0])):
            return f"batched mode gives wrong gradients: w.grad={w.grad!r}, x.grad={x.grad!r}"
    except Exception as e:
        return f"no batched mode in chainrule yet ({type(e).__name__}: {e})"
    return None


def load_engine(name: str, threads: int = 1
                ) -> tuple[Callable[[Any], Any], Callable[[Any], float], dict[str, Any]]:
    # torch gets one thread by default: the Python engines use one core, the tensors here are
    # tiny, and a second thread spin-waits badly whenever the other core is busy.
    info: dict[str, Any] = {}
    if name.startswith("chainrule"):
        import chainrule
        from chainrule.engine import Value

        info["version"] = getattr(chainrule, "__version__", "dev")
        if "batched" in name and (why := batched_unsupported(Value)):
            raise Skip(why)
        return Value, lambda v: float(v.grad), info
    if name == "micrograd":
        from importlib.metadata import version

        from micrograd.engine import Value

        info["version"] = version("micrograd")
        return Value, lambda v: float(v.grad), info
    if name == "microgpt":
        import microgpt_peer

        info["version"] = "microgpt (February 2026), its engine as benchmarks/microgpt_peer.py"
        return microgpt_peer.Value, lambda v: float(v.grad), info
    if name in ("torch-scalar", "torch-batched"):
        import torch

        info["version"] = torch.__version__
        torch.set_num_threads(threads)
        info["threads"] = torch.get_num_threads()
        f64 = torch.float64

        def leaf(x: Any) -> Any:
            return torch.tensor(x, dtype=f64, requires_grad=True)

        return leaf, lambda v: v.grad.item(), info
    raise ValueError(f"unknown engine {name!r}")


class Skip(Exception):
    """The engine cannot run this job (not a crash): reported as skipped with the reason."""


# ---------------------------------------------------------------------------------------------
# jobs
# ---------------------------------------------------------------------------------------------


def warm_up(leaf: Callable[[Any], Any]) -> None:
    # First use pays one-off costs (PyTorch starts its autograd engine): keep them off the clock.
    a, b = leaf(0.5), leaf(0.25)
    ((a * b + 1.0).relu() ** 2).backward()


def run_moons(engine: str, leaf: Any, job: dict[str, Any]) -> dict[str, Any]:
    weights, X, y, steps = job["weights"], job["X"], job["y"], job["steps"]
    if engine == "torch-batched":
        import torch

        records = wl.moons_torch(torch, weights, X, y, steps)
    elif engine in ("chainrule", "chainrule-batched"):
        import numpy as np

        from chainrule import losses

        model, params = nn_model(weights)
        batched = engine == "chainrule-batched"
        records = wl.moons_nn(leaf, model, params, losses, np.array(X) if batched else X,
                              np.array(y) if batched else y, steps, batched)
    elif engine in ("chainrule-compiled", "chainrule-compiled-eager"):
        return run_moons_compiled(engine, leaf, job)
    elif engine == "chainrule-batched-ops":
        import numpy as np

        model, params = wl.hand_built(leaf, weights)
        records = wl.moons_batched(leaf, model, params, np.array(X), np.array(y), steps)
    else:  # micrograd, chainrule-ops: the model built by hand from + and *
        model, params = wl.hand_built(leaf, weights)
        records = wl.moons_scalar(leaf, model, params, X, y, steps)
    return moons_summary(records)


def moons_summary(records: list[dict[str, float]]) -> dict[str, Any]:
    # Step 0 is a warm-up (first-touch costs); the median is over the steps after it.
    timed = [r["ns"] for r in records[1:]] or [records[0]["ns"]]
    out = {
        "step_ms": wl.median(timed) / 1e6,
        "step_ms_all": [r["ns"] / 1e6 for r in records],
        "losses": [r["loss"] for r in records],
        "accuracies": [r["acc"] for r in records],
    }
    if "nodes" in records[0]:  # a scalar engine's graph: its backward, per node
        out["nodes"] = records[0]["nodes"]
        bwd = [r["bwd_ns"] for r in records[1:]] or [records[0]["bwd_ns"]]
        out["bwd_ns_per_node"] = wl.median(bwd) / records[0]["nodes"]
    return out


def run_moons_compiled(engine: str, leaf: Any, job: dict[str, Any]) -> dict[str, Any]:
    """The demo's graph (batched, or one scalar graph per example) built once and compiled once, then
    replayed step after step."""
    prog, outputs, params, y, stats = compiled_demo(engine == "chainrule-compiled", leaf, job)
    records = wl.moons_compiled(prog, outputs, params, y, job["steps"], engine == "chainrule-compiled")
    return {**moons_summary(records), **stats}


def compiled_demo(batched: bool, leaf: Any, job: dict[str, Any]) -> tuple[Any, ...]:
    """The demo's graph built and compiled (timed apart: median of 3 compiles of the same graph)."""
    import numpy as np

    import chainrule
    from chainrule import losses

    X, y = np.array(job["X"]), np.array(job["y"])
    model, params = nn_model(job["weights"])
    if batched:
        outputs = [model([leaf(X[:, 0]), leaf(X[:, 1])])]
        scores: Any = outputs[0]
    else:
        outputs = scores = [model([leaf(a) for a in row]) for row in X.tolist()]
    total = losses.hinge(scores, y) + losses.l2(params, 1e-4)
    compile_ns = []
    for _ in range(3):
        t0 = time.perf_counter_ns()
        prog = chainrule.compile(total, outputs=outputs)
        compile_ns.append(time.perf_counter_ns() - t0)
    stats = {"compile_ms": wl.median(compile_ns) / 1e6, "instructions": len(prog),
             "nodes": prog.plan.nodes}
    return prog, outputs, params, y, stats


def run_moons_alternating(leaf: Any, job: dict[str, Any]) -> dict[str, Any]:
    """The compiled batched step and PyTorch's, in turn in one process: the load of a shared machine
    then falls on both alike (separate jobs run minutes apart, under whatever load there was)."""
    import torch

    torch.set_num_threads(1)
    prog, outputs, params, y, _ = compiled_demo(True, leaf, job)
    ours = wl.compiled_stepper(prog, outputs, params, y, True)
    theirs = wl.torch_stepper(torch, job["weights"], job["X"], job["y"])
    pairs = [(ours(k)["ns"], theirs(k)["ns"]) for k in range(job["steps"])]
    compiled, torch_ns = (wl.median([p[i] for p in pairs[1:]]) for i in (0, 1))  # step 0: warm-up
    return {"compiled_step_ms": compiled / 1e6, "torch_step_ms": torch_ns / 1e6,
            "ratio": torch_ns / compiled}


def nn_model(weights: list[list[list[float]]]) -> tuple[Any, list[Any]]:
    """chainrule.nn.MLP, the model users build, set to the shared weights."""
    import random

    from chainrule.nn import MLP

    model = MLP(2, [len(layer) for layer in weights], activation="relu",
                output_activation="linear", bias_init="zero", rng=random.Random(0))
    params = model.parameters()
    flat = [x for layer in weights for neuron in layer for x in neuron]  # micrograd's order
    if len(params) != len(flat):
        raise Skip(f"chainrule.nn.MLP has {len(params)} parameters, expected {len(flat)}")
    for p, x in zip(params, flat, strict=True):
        p.data = x
    return model, params


def names_steps(engine: str, steps: int, collect: bool) -> tuple[list[float], list[float], float]:
    """One names job's steps from a fresh model: (losses, each step's ns, resident bytes grown per step
    after the first; the first step's high-water mark, one graph, is not growth). With `collect`, each
    step is followed by a `gc.collect(0)` timed as part of it: with the collector off every object a step
    made is still in the youngest generation, so that collection frees what the step left as garbage
    (microgpt's graph, a reference cycle) and reads little else (chainrule's graph is already freed by
    refcount, inside the step)."""
    from chainrule.data import names

    if engine == "chainrule":
        from chainrule import makemore

        model, tok, docs, opt, _ = makemore.microgpt(steps)
        collect_ns: list[int] = []
        rss_first = [0]

        def after_step(step: int, loss: float, seconds: float) -> None:
            if step == 0:
                rss_first[0] = rss_bytes()
            if collect:
                t0 = time.perf_counter_ns()
                gc.collect(0)
                collect_ns.append(time.perf_counter_ns() - t0)

        history = makemore.train(model, docs, tok, steps=steps, optimizer=opt, on_step=after_step)
        losses = history.loss
        ns = [s * 1e9 + c for s, c in zip(history.seconds, collect_ns or [0] * steps, strict=True)]
    else:
        import microgpt_peer as mp

        from chainrule.engine import Value

        peer = mp.Model(mp.Value if engine == "microgpt" else Value, names())
        rss_first = [0]
        losses, ns = [], []
        for k in range(steps):
            t0 = time.perf_counter_ns()
            losses.append(mp.train_step(peer, k, steps))
            if collect:
                gc.collect(0)
            ns.append(time.perf_counter_ns() - t0)
            if k == 0:
                rss_first[0] = rss_bytes()
    return losses, ns, (rss_bytes() - rss_first[0]) / max(1, steps - 1)


def run_names(engine: str, job: dict[str, Any]) -> dict[str, Any]:
    """microgpt's training steps, one name each, from its seed: `microgpt` is its engine and model code,
    `chainrule-microgpt-code` the same model code on chainrule's Value, `chainrule` chainrule's own GPT
    (chainrule.lm, one `linear` node per output) trained by chainrule.makemore.train. Every step is timed
    whole (loss, backward, Adam); the rate decays over `steps`, so all three take the same steps.

    With the collector off, microgpt's engine never frees a graph (its backward's recursive closure is a
    reference cycle that holds it), so its GC-off step does no freeing at all and its memory grows every
    step. A GC-off job therefore also reports the memory grown per step, and runs the steps a second time,
    from a fresh model, each followed by the collection that frees its garbage (`names_steps`): the GC-off
    step of a run that does not grow."""
    steps = job["steps"]
    losses, ns, grown = names_steps(engine, steps, collect=False)
    freed: dict[str, Any] = {}
    if not gc.isenabled():
        GC_TIMER.paused = True  # these collections are part of the steps timed, not the collector's share
        try:
            gc.collect()  # the first run's garbage, off the clock
            _, freed_ns, _ = names_steps(engine, steps, collect=True)
        finally:
            GC_TIMER.paused = False
        timed_freed = freed_ns[1:] or freed_ns
        freed = {"grown_mb_per_step": grown / 2**20,
                 "freed_step_ms": sum(timed_freed) / len(timed_freed) / 1e6,
                 "freed_step_ms_all": [t / 1e6 for t in freed_ns]}
    timed = ns[1:] or ns  # step 0 is a warm-up
    # The mean, not the median: with the collector on, each step pays one or two of its full passes over
    # the graph being built (~35 ms each of a ~150 ms step), so step times have two humps and their
    # median jumps between them from run to run. The mean is the throughput, what a training run takes.
    return {"step_ms": sum(timed) / len(timed) / 1e6, "step_ms_median": wl.median(timed) / 1e6,
            "step_ms_all": [t / 1e6 for t in ns], "losses": losses, **freed}


def rel_diffs(ours: list[float], theirs: list[float]) -> list[float]:
    return [abs(a - b) / max(abs(b), 1e-300) for a, b in zip(ours, theirs, strict=False)]


def run_digits(job: dict[str, Any]) -> dict[str, Any]:
    """The digits MLP (64 → job['hidden'] → 10), chainrule compiled and PyTorch in turn (workloads.
    digits_in_turn). Step 0 of each is a warm-up the medians leave out; chainrule's step 0 captures and
    compiles the graph (and runs it once): reported as capture_compile_ms."""
    import torch

    torch.set_num_threads(1)
    stage("train, in turn")
    r = wl.digits_in_turn(torch, job["hidden"], job["steps"])
    ours, theirs = r["ours_ns"], r["torch_ns"]
    step, torch_step = wl.median(ours[1:]) / 1e6, wl.median(theirs[1:]) / 1e6
    first = rel_diffs(r["ours_losses"][:5], r["torch_losses"][:5])
    stage("matrix products alone")
    floor = wl.blas_floor(torch, job["hidden"])
    return {"step_ms": step, "torch_step_ms": torch_step, "ratio": step / torch_step,
            "blas_numpy_ms": floor["numpy_ms"], "blas_torch_ms": floor["torch_ms"],
            "capture_compile_ms": ours[0] / 1e6, "torch_first_step_ms": theirs[0] / 1e6,
            "step_ms_all": [t / 1e6 for t in ours], "torch_step_ms_all": [t / 1e6 for t in theirs],
            "losses": r["ours_losses"], "torch_losses": r["torch_losses"],
            "loss_rel_diff_first5": max(first), "weights_copied_exactly": r["weights_copied_exactly"],
            "parameters": r["parameters"], "steps": job["steps"]}


def run_gpt_batch(job: dict[str, Any]) -> dict[str, Any]:
    """microgpt's GPT on batches of job['batch'] names, chainrule compiled and PyTorch in turn (workloads.
    gpt_in_turn). Medians over every step (chainrule's steps of a new padded length include its capture
    and compile) and over the steps after the first 20."""
    import torch

    torch.set_num_threads(1)
    stage("train, in turn")
    r = wl.gpt_in_turn(torch, job["steps"], job["batch"])
    ours, theirs = r["ours_ns"], r["torch_ns"]
    late = 20 if len(ours) > 20 else 1
    step, torch_step = wl.median(ours) / 1e6, wl.median(theirs) / 1e6
    step_late, torch_late = wl.median(ours[late:]) / 1e6, wl.median(theirs[late:]) / 1e6
    diffs = rel_diffs(r["ours_losses"], r["torch_losses"])
    new_shape = [t for t, new in zip(ours, r["new_shape"], strict=True) if new]
    return {"step_ms": step, "torch_step_ms": torch_step, "ratio": step / torch_step,
            "late_from": late, "step_ms_late": step_late, "torch_step_ms_late": torch_late,
            "ratio_late": step_late / torch_late,
            "capture_ms": r["capture_ns"] / 1e6, "compile_ms": r["compile_ns"] / 1e6,
            "capture_compile_ms": r["capture_compile_ns"] / 1e6, "capture_positions": r["capture_rows"],
            "instructions": r["instructions"], "nodes": r["nodes"],
            "shapes": len(new_shape), "new_shape_step_ms": wl.median(new_shape) / 1e6,
            "step_ms_all": [t / 1e6 for t in ours], "torch_step_ms_all": [t / 1e6 for t in theirs],
            "losses": r["ours_losses"], "torch_losses": r["torch_losses"],
            "loss_rel_diff_step0": diffs[0], "loss_rel_diff_max": max(diffs),
            "parameters": r["parameters"], "steps": job["steps"], "batch": job["batch"]}


def repeat(job: dict[str, Any], once: Callable[[], dict[str, Any]]) -> list[dict[str, Any]]:
    """Up to job['repeats'] runs, stopping early once job['time_cap_s'] is used (at least one).
    Between runs the graph is dropped and collected off the clock so each run starts clean."""
    runs: list[dict[str, Any]] = []
    t_start = time.perf_counter()
    for _ in range(job["repeats"]):
        r = once()
        del r["graph"]
        collect_off_clock()
        runs.append(r)
        if time.perf_counter() - t_start > job["time_cap_s"]:
            break
    return runs


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    fwd = [r["fwd_ns"] for r in runs]
    bwd = [r["bwd_ns"] for r in runs]
    out = {
        "repeats": len(runs),
        "fwd_ms": wl.median(fwd) / 1e6,
        "bwd_ms": wl.median(bwd) / 1e6,
        "total_ms": wl.median([f + b for f, b in zip(fwd, bwd, strict=True)]) / 1e6,
    }
    for key in ("grad_rel_err", "grads_ok"):
        if key in runs[0]:
            out[key] = max(r[key] for r in runs) if key == "grad_rel_err" else all(
                r[key] for r in runs)
    return out


def run_chain(leaf: Any, grad: Any, job: dict[str, Any]) -> dict[str, Any]:
    out = summarize(repeat(job, lambda: wl.chain(leaf, grad, job["n"], stage)))
    out["nodes"] = wl.chain_nodes(job["n"])
    out["bwd_ns_per_node"] = out["bwd_ms"] * 1e6 / out["nodes"]
    return out


def run_wide(leaf: Any, grad: Any, job: dict[str, Any]) -> dict[str, Any]:
    A, B = wl.wide_inputs(job["n"])
    out = summarize(repeat(job, lambda: wl.wide(leaf, grad, A, B, stage)))
    out["nodes"] = wl.wide_nodes(job["n"])
    out["bwd_ns_per_node"] = out["bwd_ms"] * 1e6 / out["nodes"]
    return out


def run_wide_mem(leaf: Any, job: dict[str, Any]) -> dict[str, Any]:
    """Bytes per node of the wide graph, measured twice in a run that times nothing:
    resident memory (sees C/C++ allocations too, e.g. PyTorch's) on a fresh heap, then
    tracemalloc (exact Python-heap bytes, blind to PyTorch's C++ allocator)."""
    n = job["n"]
    nodes = wl.wide_nodes(n)
    A, B = wl.wide_inputs(n)
    gc.collect()
    rss0 = rss_bytes()
    graph = wl.build_wide(leaf, A, B)
    rss1 = rss_bytes()
    graph[2].backward()
    rss2 = rss_bytes()
    del graph
    gc.collect()

    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    graph = wl.build_wide(leaf, A, B)
    after_fwd = tracemalloc.get_traced_memory()[0] - base
    graph[2].backward()
    after_bwd, peak = (m - base for m in tracemalloc.get_traced_memory())
    tracemalloc.stop()
    return {
        "nodes": nodes,
        "rss_bytes_per_node": (rss1 - rss0) / nodes,
        "rss_bytes_per_node_after_bwd": (rss2 - rss0) / nodes,
        "traced_bytes_per_node": after_fwd / nodes,
        "traced_bytes_per_node_after_bwd": after_bwd / nodes,
        "traced_peak_bytes_per_node": peak / nodes,
    }


def run_ops(leaf: Any, job: dict[str, Any]) -> dict[str, Any]:
    n, repeats = job["n"], job["repeats"]
    loop_ns = wl.median([wl.time_loop(n) for _ in range(repeats)])
    ns_per_op: dict[str, float | None] = {}
    gc_off: dict[str, float | None] = {}  # the engine's own work, without the collector's share
    for op in wl.OPS:
        if not wl.op_supported(leaf, op):
            ns_per_op[op] = gc_off[op] = None
            continue
        for table, collector_on in ((ns_per_op, True), (gc_off, False)):
            samples = []
            for _ in range(repeats):
                if not collector_on:
                    gc.disable()
                ns, graph = wl.time_op(leaf, op, n)
                gc.enable()
                del graph
                collect_off_clock()
                samples.append(ns)
            table[op] = (wl.median(samples) - loop_ns) / n
    bn = job["backward_n"]
    bwd = []
    for _ in range(repeats):
        leaves, s = wl.build_backward_graph(leaf, bn)
        t0 = time.perf_counter_ns()
        s.backward()
        bwd.append(time.perf_counter_ns() - t0)
        del leaves, s
        collect_off_clock()
    return {
        "ns_per_op": ns_per_op,
        "ns_per_op_gc_off": gc_off,
        "loop_overhead_ns": loop_ns / n,
        "backward_ns_per_node": wl.median(bwd) / wl.backward_nodes(bn),
        "backward_graph_nodes": wl.backward_nodes(bn),
    }


def main() -> None:
    job = json.loads(sys.argv[1]) if sys.argv[1] != "-" else json.load(sys.stdin)
    engine, workload = job["engine"], job["workload"]
    result: dict[str, Any] = {"engine": engine, "workload": workload}
    stage("setup")
    if job.get("recursion_limit"):
        sys.setrecursionlimit(job["recursion_limit"])
    try:
        leaf, grad, info = load_engine(engine, job.get("torch_threads", 1))
        result["engine_info"] = info
        warm_up(leaf)
    except Skip as e:
        result["skipped"] = str(e)
        print(json.dumps(result))
        return
    if job.get("gc", True):
        gc.enable()
    else:
        gc.disable()
    gc.callbacks.append(GC_TIMER)
    rss_start = rss_bytes()
    t0 = time.perf_counter_ns()
    try:
        if workload == "moons":
            result.update(run_moons(engine, leaf, job))
        elif workload == "moons-alternating":
            result.update(run_moons_alternating(leaf, job))
        elif workload == "chain":
            result.update(run_chain(leaf, grad, job))
        elif workload == "wide":
            result.update(run_wide(leaf, grad, job))
        elif workload == "wide-mem":
            result.update(run_wide_mem(leaf, job))
        elif workload == "ops":
            result.update(run_ops(leaf, job))
        elif workload == "names":
            result.update(run_names(engine, job))
        elif workload.startswith("digits-"):
            result.update(run_digits(job))
        elif workload == "gpt-batch":
            result.update(run_gpt_batch(job))
        else:
            raise ValueError(f"unknown workload {workload!r}")
    except Skip as e:
        result["skipped"] = str(e)
    except (RecursionError, MemoryError) as e:
        # An engine's failure, not the benchmark's: report it as the result.
        result["error"] = f"{type(e).__name__}: {e}"
        result["stage"] = STAGE["now"]
    wall_ns = time.perf_counter_ns() - t0
    gc.callbacks.remove(GC_TIMER)
    result["gc"] = job.get("gc", True)
    result["gc_share"] = GC_TIMER.ns / wall_ns if wall_ns else 0.0
    result["gc_collections"] = GC_TIMER.collections
    result["peak_rss_above_start_mb"] = max(0, peak_rss_bytes() - rss_start) / 2**20
    print(json.dumps(result))


if __name__ == "__main__":
    main()
