"""`tunelab train --nproc N`: the same command in N processes on this machine, through torchrun (DDP).

`launch` runs `python -m torch.distributed.run --standalone --nproc_per_node N -m tunelab.cli <the other arguments>`.
Each process trains on its share of every global micro-batch (batch_size examples per process, so the global batch
is batch_size x N) and DistributedDataParallel averages the gradients; rank 0 alone writes the run record, the
checkpoints, the model and the one result on stdout. On CPU the processes talk through gloo (on CUDA, one GPU per
process: NCCL for the model, gloo for the loop's bookkeeping). OMP_NUM_THREADS defaults to cores // N so the
processes do not fight over the cores; set it (or `threads` in the config) to choose yourself. The exit code is
torchrun's: 0 when every process succeeded, 1 when any did not (a run stopped by `tunelab runs cancel` included:
its record says `cancelled` and it resumes with `tunelab train --resume RUN --nproc N`).

Several machines: call torchrun yourself on every node, with the same rendezvous and the same config, e.g.

    torchrun --nnodes 2 --node_rank 0 --nproc_per_node 8 --rdzv_backend c10d --rdzv_endpoint head:29400 \\
        -m tunelab.cli train train.yaml        # on the head node; --node_rank 1 on the other one

All nodes must see the same workspace: TUNELAB_DATABASE_URL pointing to one PostgreSQL database, and the same
TUNELAB_HOME on a shared file system (rank 0 writes checkpoints and the model there; every node reads the dataset
and the base model from it).

Only DDP is supported: every process holds the whole model and optimizer. FSDP and DeepSpeed (ZeRO) are not: the
loop does not go through accelerate's `Accelerator`, so an accelerate config with FSDP or DeepSpeed settings would
be ignored; do not launch tunelab with `accelerate launch`.
"""

from __future__ import annotations

import os
import subprocess
import sys


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def without_nproc(argv: list[str]) -> list[str]:
    """The arguments minus `--nproc N` / `--nproc=N` (the children are the processes, they launch nothing)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


def command(nproc: int, argv: list[str]) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
            "-m", "tunelab.cli", *without_nproc(argv)]


def launch(nproc: int, argv: list[str]) -> int:
    """Run the tunelab command `argv` (sys.argv[1:]) in `nproc` processes; returns torchrun's exit code."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, _cores() // nproc)))
    process = subprocess.Popen(command(nproc, argv), env=env)
    try:
        return process.wait()
    except KeyboardInterrupt:  # the terminal sent SIGINT to torchrun and the workers too: let them checkpoint
        return process.wait()
