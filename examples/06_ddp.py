"""Past one machine: the demo's MLP, exported to PyTorch and trained with DistributedDataParallel.

`chainrule.to_torch` turns the moons MLP into an `nn.Sequential`. Two CPU processes (gloo backend,
localhost) each train a copy on their half of the points with DistributedDataParallel (DDP), which
averages the processes' gradients during every backward. `chainrule.from_torch` brings the weights
back, and chainrule scores them. The same script with more processes per machine, more machines
(`init_method` pointing at one of them) and `backend="nccl"` on GPUs is how PyTorch scales out.

Run it as a script: `torch.multiprocessing.spawn` starts fresh Python processes that import this file
to find `train`, so the part that starts them sits under `if __name__ == "__main__"`.
CHAINRULE_DDP_STEPS sets the number of SGD steps (default 100, the demo's schedule).
"""

# %%
import os
import random
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from chainrule import Value, from_torch, to_torch
from chainrule.data import make_moons
from chainrule.losses import hinge, l2
from chainrule.nn import MLP

OUT = Path(os.environ.get("CHAINRULE_OUT", "chainrule-out/examples"))
STEPS = int(os.environ.get("CHAINRULE_DDP_STEPS", "100"))
WORLD_SIZE = 2  # processes; each one takes 1/WORLD_SIZE of the points
ALPHA = 1e-4  # the L2 penalty's weight, as in the demo

# %% the demo's data and model (seeded generators, not global seeds: the same numbers as `chainrule demo`)
X, y = make_moons(n_samples=100, noise=0.1, random_state=1337)
y = y * 2 - 1
model = MLP(2, [16, 16, 1], "relu", "linear", bias_init="zero", rng=random.Random(1337))


def chainrule_loss(model):
    """The demo's full-batch loss, hinge + L2, and accuracy, in chainrule."""
    scores = model([Value(X[:, 0]), Value(X[:, 1])])
    accuracy = np.mean((y > 0) == (scores.data > 0))
    return hinge(scores, y) + l2(model.parameters(), ALPHA), accuracy


# %% one process's training loop
# DDP averages the processes' gradients: (g_0 + g_1) / 2. For that to be the full batch's gradient,
# - each process takes the MEAN hinge over its half, and the halves are equal: the average of two
#   half-means is the mean over all points;
# - each process adds the WHOLE L2 penalty α·Σp², not half of it: every process holds every weight,
#   so both contribute 2αp and their average is 2αp, as in the full-batch loss.


def train(rank, world_size, store, model, X, y, steps, out):
    torch.set_num_threads(1)  # one core per process
    # NOTE: export here, in each process. A torch tensor handed to spawn's processes is moved to
    # shared memory, so both processes would step ONE set of weights: two updates per step, racing.
    net = to_torch(model)
    # The processes meet through a file (a FileStore), not a TCP store served by rank 0: when rank 0 is
    # done first, no server disappears under the other process (which then aborts at exit, SIGABRT).
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world_size,
                            timeout=timedelta(seconds=60))
    ddp = DistributedDataParallel(net)  # copies rank 0's weights to every process, hooks into backward
    assert len(X) % world_size == 0, "DDP's average is the full-batch gradient only for equal shares"
    share = len(X) // world_size
    xs = torch.tensor(X[rank * share:(rank + 1) * share])
    ys = torch.tensor(y[rank * share:(rank + 1) * share], dtype=torch.float64)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=1.0)
    for k in range(steps):
        scores = ddp(xs).squeeze(1)
        data_loss = torch.relu(1 - ys * scores).mean()  # chainrule.losses.hinge
        reg_loss = ALPHA * sum((p * p).sum() for p in net.parameters())  # chainrule.losses.l2
        optimizer.zero_grad()
        (data_loss + reg_loss).backward()  # DDP's all-reduce runs in here: every .grad is the average
        if k == 0 and rank == 0:
            torch.save({name: p.grad for name, p in net.named_parameters()}, out / "06_ddp_step0_grads.pt")
        optimizer.param_groups[0]["lr"] = 1.0 - 0.9 * k / steps  # the demo's decay
        optimizer.step()
    if rank == 0:
        torch.save(net.state_dict(), out / "06_ddp_model.pt")
    # Both processes leave together: one tearing gloo down while the other still holds its connection
    # aborts the other (SIGABRT, "terminate called without an active exception").
    dist.barrier()
    dist.destroy_process_group()


# %% run: chainrule's reference gradient, two processes, the weights back into chainrule
if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    print(model)
    loss, accuracy = chainrule_loss(model)
    model.zero_grad()
    loss.backward()
    reference = {name: p.grad for name, p in model.named_parameters()}
    print(f"step 0 in chainrule: loss {loss.data:.4f}, accuracy {accuracy:.0%}")

    # Where the processes meet: a file that must not exist yet (gloo's pairs then talk over localhost).
    store = (OUT / f"06_ddp_store-{os.getpid()}").resolve()
    store.unlink(missing_ok=True)
    try:
        mp.spawn(train, args=(WORLD_SIZE, store, model, X, y, STEPS, OUT), nprocs=WORLD_SIZE)
    finally:
        store.unlink(missing_ok=True)

    # The gradients have the weights' shapes, so from_torch gives them chainrule's parameter names.
    net = to_torch(model)
    net.load_state_dict(torch.load(OUT / "06_ddp_step0_grads.pt"))
    averaged = from_torch(net).state_dict()
    gap = max(abs(averaged[name] - g) for name, g in reference.items())
    print(f"step 0: DDP's averaged gradient vs chainrule's full-batch gradient, max difference {gap:.1e}")
    assert gap < 1e-10

    net.load_state_dict(torch.load(OUT / "06_ddp_model.pt"))
    trained = from_torch(net)
    loss, accuracy = chainrule_loss(trained)
    print(f"after {STEPS} steps on {WORLD_SIZE} processes, scored by chainrule: "
          f"loss {loss.data:.4f}, accuracy {accuracy:.0%}")
    if STEPS >= 100:  # the demo's run: full-batch SGD on the moons reaches 100% by step 100
        assert accuracy == 1.0
