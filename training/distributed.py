"""Data-parallel training on several processes: ``torchrun`` starts one ``restore-train``
per GPU (NCCL) or per CPU worker (gloo); every rank trains on its slice of each batch and
the gradients are averaged before every optimiser step, so the weights stay identical.

    torchrun --standalone --nproc-per-node 4 -m reelrestore.training.train \\
        --config training/configs/realtime_real.toml --out runs/rt-4gpu
    torchrun --standalone --nproc-per-node 2 -m reelrestore.training.train \\
        --config training/configs/realtime_tiny.toml --data builtin --out runs/rt-2cpu device=cpu

A rank learns who it is from torchrun's environment (``WORLD_SIZE``, ``RANK``,
``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR``/``MASTER_PORT``:
:meth:`Launch.from_environment`); a plain ``restore-train`` has none of them, and
``--nproc-per-node 1`` neither makes a process group: both are the single-process run,
bit for bit. What a run of ``W`` ranks does (:func:`reelrestore.training.loop.fit`):

* **Data.** The epoch's order is the single-process one (``EpochSampler``: fixed by
  (seed, epoch)); the *global* batch is ``W x data.batch_size`` and rank ``r`` takes
  items ``[r*B, (r+1)*B)`` of every global batch (:func:`shard`), so the ranks of one
  step see together exactly the batch a single process with ``batch_size = W*B`` would
  see, each item with the same damage (a function of (seed, epoch, item) in the dataset).
  An epoch is ``len(train) // (W*B)`` steps; ``step``, ``max_steps``, ``steps_per_epoch``
  and checkpoints count global steps.
* **Gradients.** :meth:`Group.average_gradients`: one all-reduce of the flattened
  gradients of the network about to step, divided by ``W``, in one place
  (``Trainer.average_gradients``, called by every trainer right before each
  ``optimizer.step()``, before unscaling and clipping). With losses that are means over
  items this is the gradient of the global batch.
* **Decisions.** Every value a branch depends on is the mean over ranks
  (``Trainer.mean_over_ranks``): the D-skip rule's fake loss, the content schedule's
  passband error. Different decisions would make ranks call different collectives:
  diverged weights or a deadlock. Logged losses (history, progress bar) are means over
  ranks too (``Trainer.finish_batch``).
* **BatchNorm** (thesis experiments 1-8): each rank normalises with its own batch's
  statistics (SyncBatchNorm would pool them, but works on GPUs only, so the runs here do
  not use it: BN runs are a little noisier than one process with the global batch);
  the running statistics are averaged over ranks after every step
  (:meth:`Group.average_buffers`), so evaluation, validation and checkpoints see one set.
  The weights never depend on them in training mode.
* **Random streams.** The weights are initialised from ``schedule.seed`` on every rank
  and broadcast from rank 0 once (:meth:`Group.broadcast_`); then ranks other than 0
  re-seed torch from (seed, rank) (:func:`rank_seed`), so their dropout, noise and
  penalty samples differ. Checkpoints hold every rank's random states (gathered to rank
  0), so a resume with the same number of ranks continues bit for bit.
* **Files.** Only rank 0 writes (config, history, plots, checkpoints) and prints;
  validation is sharded round robin by batch (:func:`shard_batches`) and the rows are
  gathered in the single-process order (:func:`interleave`). ``fit`` ends on a barrier.

Why no ``DistributedDataParallel``: DDP hooks ``forward()`` of the module it wraps, and
expects every parameter that needs a gradient to get one in each backward. The trainers
call other methods (the thesis generator's ``analyse``/``net``/``synthesise``, the
critics' ``view``), run networks under ``no_grad``, switch ``requires_grad`` of the
discriminators off for the G step, skip D steps by rule, and take the WGAN-GP penalty's
double backward (``autograd.grad(create_graph=True)``) through the critic, which DDP
does not support. DDP's reducer either errors ("Expected to have finished reduction in
the prior iteration") or needs ``find_unused_parameters`` and still mis-handles the
skipped steps. DDP's gain (overlapping the all-reduce with the backward pass) is small
for these networks, so the all-reduce is explicit: the same mean of the ranks'
gradients, after the backward pass.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

__all__ = ["Group", "Launch", "init", "interleave", "rank_seed", "shard", "shard_batches", "shutdown"]

TORCHRUN = "torchrun --nproc-per-node N -m reelrestore.training.train ..."


# ------------------------------------------------------------------------------ launch
@dataclass(frozen=True)
class Launch:
    """Which rank this process is, from torchrun's environment."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Launch | None:
        """This process's place in a torchrun launch of several ranks; None for a plain
        run (no ``WORLD_SIZE``/``RANK``/``LOCAL_RANK``) or a launch of one process. An
        incomplete or inconsistent environment raises ValueError in one line."""
        env = os.environ if environ is None else environ
        keys = ("WORLD_SIZE", "RANK", "LOCAL_RANK")
        if not any(key in env for key in keys):
            return None
        got = " ".join(f"{k}={env.get(k)}" for k in (*keys, "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"))
        try:
            world, rank, local = (int(env[k]) for k in keys)
            local_world = int(env.get("LOCAL_WORLD_SIZE", world))
        except (KeyError, ValueError):
            raise ValueError(f"expected torchrun's environment (WORLD_SIZE, RANK, LOCAL_RANK as integers), got "
                             f"{got}; launch with {TORCHRUN}") from None
        if not (world >= 1 and 0 <= rank < world and 1 <= local_world <= world and 0 <= local < local_world):
            raise ValueError(f"expected 0 <= RANK < WORLD_SIZE and 0 <= LOCAL_RANK < LOCAL_WORLD_SIZE <= WORLD_SIZE, "
                             f"got {got}; launch with {TORCHRUN}")
        if world == 1:
            return None
        if not env.get("MASTER_ADDR") or not env.get("MASTER_PORT"):
            raise ValueError(f"expected MASTER_ADDR and MASTER_PORT for {world} ranks, got {got}; launch with "
                             f"{TORCHRUN}")
        return cls(rank, world, local, local_world)

    def device(self, setting: str) -> str:
        """This rank's device for ``schedule.device``: ``cpu`` (gloo); ``cuda`` -> one GPU
        per rank, ``cuda:LOCAL_RANK`` (NCCL), refused with fewer GPUs than ranks on the
        node; ``auto`` -> that when CUDA is there, else ``cpu``. ``cuda:N`` (every rank on
        one GPU) and other devices are refused."""
        if setting == "cpu":
            return "cpu"
        if setting.split(":")[0] not in ("auto", "cuda"):
            raise ValueError(f"expected schedule.device cpu, cuda or auto for a run of {self.world_size} ranks, "
                             f"got {setting!r}")
        if ":" in setting:
            raise ValueError(f"schedule.device={setting} would put all {self.world_size} ranks on one GPU; expected "
                             f"device=cuda (rank r trains on cuda:LOCAL_RANK) or device=cpu")
        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if setting == "auto" and gpus == 0:
            return "cpu"
        if gpus < self.local_world_size:
            raise ValueError(f"expected one GPU per rank for device={setting}: {self.local_world_size} ranks on this "
                             f"node, got {gpus} GPU(s); launch --nproc-per-node {gpus} or pass device=cpu")
        return f"cuda:{self.local_rank}"


def init(launch: Launch, device: str | torch.device, timeout: timedelta | None = None) -> None:
    """Join the process group of ``launch`` (rendezvous at MASTER_ADDR:MASTER_PORT): gloo
    for a CPU run; for a CUDA run NCCL for CUDA tensors (and gloo for the few CPU
    objects gathered), with this rank's GPU made the current one."""
    device = torch.device(device)
    kwargs: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
    backend = "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
        backend = "cpu:gloo,cuda:nccl"
        kwargs["device_id"] = device
    dist.init_process_group(backend, init_method="env://", rank=launch.rank, world_size=launch.world_size, **kwargs)


def shutdown() -> None:
    """Leave the process group (nothing when none was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


# -------------------------------------------------------------------------------- group
class Group:
    """The collectives a trainer needs, over the default process group. Every rank must
    call each of them, in the same order."""

    def __init__(self, rank: int, world_size: int, device: torch.device) -> None:
        self.rank, self.world_size, self.device = rank, world_size, device

    @classmethod
    def current(cls, device: str | torch.device) -> Group | None:
        """The initialised default process group as a trainer on ``device`` sees it; None
        when there is none or it has one rank (the single-process run)."""
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return None
        device = torch.device(device)
        return cls(dist.get_rank(), dist.get_world_size(), device if device.type == "cuda" else torch.device("cpu"))

    def mean(self, values: Sequence[float | torch.Tensor]) -> list[float]:
        """Each value's mean over the ranks, in float64: one all-reduce."""
        t = torch.stack([torch.as_tensor(v).detach().reshape(()).to(self.device, torch.float64) for v in values]) \
            if values else torch.zeros(0, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return (t / self.world_size).tolist()

    def average_gradients(self, params: Iterable[torch.nn.Parameter]) -> None:
        """Replace every gradient by its mean over the ranks: one all-reduce of the
        flattened gradients per dtype. Parameters without a gradient keep none (the same
        ones on every rank: the ranks run the same graph)."""
        self._average([p.grad for p in params if p.grad is not None])

    def average_buffers(self, modules: Iterable[torch.nn.Module]) -> None:
        """Average BatchNorm running statistics over the ranks (they saw different batches)."""
        stats = [buf for module in modules for m in module.modules()
                 if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.running_mean is not None
                 for buf in (m.running_mean, m.running_var)]
        self._average(stats)

    def _average(self, tensors: list[torch.Tensor]) -> None:
        for flat, group in _flat_by_dtype(tensors):
            dist.all_reduce(flat)
            flat.div_(self.world_size)
            _unflatten(flat, group)

    def broadcast_(self, tensors: Iterable[torch.Tensor], src: int = 0) -> None:
        """Overwrite ``tensors`` on every rank with rank ``src``'s, in place."""
        for flat, group in _flat_by_dtype([t for t in tensors if t.numel()]):
            dist.broadcast(flat, src)
            _unflatten(flat, group)

    def all_gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` (picklable), in rank order, on every rank."""
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        dist.barrier()


def _flat_by_dtype(tensors: list[torch.Tensor]) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
    groups: dict[tuple[torch.dtype, torch.device], list[torch.Tensor]] = {}
    for t in tensors:
        groups.setdefault((t.dtype, t.device), []).append(t)
    return [(torch.cat([t.detach().reshape(-1) for t in group]), group) for group in groups.values()]


def _unflatten(flat: torch.Tensor, group: list[torch.Tensor]) -> None:
    offset = 0
    with torch.no_grad():
        for t in group:
            t.copy_(flat[offset:offset + t.numel()].view_as(t))
            offset += t.numel()


# ----------------------------------------------------------------------- data sharding
def shard(order: Sequence[int], batch_size: int, rank: int, world_size: int) -> list[int]:
    """Rank ``rank``'s items of ``order`` cut into global batches of ``world_size *
    batch_size``: items ``[rank*B, (rank+1)*B)`` of each full global batch (a partial last
    one is dropped, so every rank takes as many batches)."""
    g = batch_size * world_size
    lo = rank * batch_size
    return [i for start in range(0, len(order) - g + 1, g) for i in order[start + lo:start + lo + batch_size]]


def shard_batches(n_items: int, batch_size: int, max_batches: int | None, rank: int,
                  world_size: int) -> list[list[int]]:
    """Validation batches (consecutive items, the last one partial, at most
    ``max_batches``) of rank ``rank``: batch ``b`` goes to rank ``b % world_size``."""
    n = -(-n_items // batch_size)
    n = n if max_batches is None else min(n, max_batches)
    return [list(range(b * batch_size, min((b + 1) * batch_size, n_items))) for b in range(rank, n, world_size)]


def interleave(per_rank: Sequence[Sequence[Any]]) -> list[Any]:
    """Inverse of the round robin of :func:`shard_batches`: the ranks' per-batch results
    back in batch order."""
    total = sum(len(items) for items in per_rank)
    world = len(per_rank)
    return [per_rank[b % world][b // world] for b in range(total)]


def rank_seed(seed: int, rank: int, step: int = 0) -> int:
    """torch's seed for rank ``rank`` (> 0) of a run seeded with ``seed``, from ``step``."""
    digest = hashlib.sha256(f"reelrestore-rank:{seed}:{rank}:{step}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1
