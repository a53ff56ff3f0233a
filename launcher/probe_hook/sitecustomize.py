"""The memory probe for any Python job that trains from a ``torch.utils.data.DataLoader``.

The runner puts this folder first on a probed job's ``PYTHONPATH`` (a ``train.sh`` that execs Python passes it
on), so Python imports this module at start-up, before the job's own code. It imports nothing heavy: it waits
for ``torch.utils.data.dataloader`` to be imported by the job, then bounds every DataLoader iterator to
``GPUPAIR_PROBE_BATCHES`` batches (the iterator ends early, as if the data were shorter: the job's own epoch and
evaluation loops finish by themselves) and appends small events to the file ``GPUPAIR_PROBE_EVENTS``:

``start <role> <iterator id>``   an iterator yielded its first batch
``step <role> <iterator id>``    it was asked for its next batch: the job finished a step on the one before
``bounded <role> <id> <n>``      the probe ended it after n batches
``end <role> <id> <n>``          its data ran out after n batches
``gate <where> <open|held>``     the job reached its first use of the GPU (``cuda``) or its first batch (``data``)
``optimizer-hooked``             the job imported torch's optimizers: it will say when one steps
``optimizer-step``               an optimizer finished its first step (any training loop, DataLoader or not)
``imported <m1>,<m2>,...``       with it: the libraries the job imported between its gate and that step
``preimported <n> <failed>``     a held job imported, while it waited, what its program imports after its gate

A job started ahead of its trial (``GPUPAIR_HOLD_FILE`` names a file that does not exist yet: launcher/held_start)
waits at that gate, before it holds any GPU memory, until the runner creates the file. Its imports and set-up are
then done by the time its trial needs it. A job started at once names a file that exists, and passes.
Many programs import libraries only after their first GPU use: torch itself imports ``torch._dynamo`` when the
first optimizer is made (seconds on a GPU host), and training code often imports torchvision, timm or
transformers inside the function that builds its model. The runner learns them from a job of the same program
(the ``imported`` event) and, while a held job waits, writes them to ``<hold file>.imports``; the job imports
them then, and its trial does not wait for them. Only libraries are learned, never the job's own modules (those
under its working directory), whose import could depend on what the job does before it.

``role`` is ``eval`` for an iterator that started with gradients off (``torch.no_grad``, ``inference_mode``:
an evaluation pass), else ``train``. An evaluation iterator, once done, holds on for ``GPUPAIR_PROBE_DWELL_S``
seconds before it ends: a bounded evaluation pass can be shorter than the runner's sampling interval (and its
process-tree walk, which finds new DataLoader workers), and what it holds must be in the peak. Each event is
one short ``O_APPEND`` write, so the job's processes (a DataLoader's workers, a launcher and its child) never
interleave within a line.

Nothing here may break the job: any failure leaves the DataLoader as it was and writes ``hook-failed``, and the
runner then falls back to its plateau rule. A ``sitecustomize`` of the job's own further down the path still
runs (after this one).
"""

from __future__ import annotations

import os
import sys

EVENTS_VAR = "GPUPAIR_PROBE_EVENTS"
BATCHES_VAR = "GPUPAIR_PROBE_BATCHES"
DWELL_VAR = "GPUPAIR_PROBE_DWELL_S"
HOLD_VAR = "GPUPAIR_HOLD_FILE"
_DATALOADER = "torch.utils.data.dataloader"
_CUDA = "torch.cuda"
_OPTIMIZER = "torch.optim.optimizer"
_HOLD_POLL_S = 0.01
IMPORTS_SUFFIX = ".imports"
_MAX_EVENT = 3500  # one short O_APPEND write per event
_released = False
_waiting = False  # the job waits at its gate (an import made meanwhile may reach the gate again)
_at_gate: set[str] | None = None  # sys.modules when the job reached its gate


def _event(text: str) -> None:
    path = os.environ.get(EVENTS_VAR)
    if not path:
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{text} pid={os.getpid()}\n".encode())
        finally:
            os.close(fd)
    except OSError:
        pass


def _batches() -> int:
    try:
        return max(0, int(os.environ.get(BATCHES_VAR, "0")))
    except ValueError:
        return 0


def _dwell() -> float:
    try:
        return min(10.0, max(0.0, float(os.environ.get(DWELL_VAR, "0"))))
    except ValueError:
        return 0.0


def _patch(module) -> None:
    """Bound ``_BaseDataLoaderIter.__next__``: every kind of iterator (one process or worker processes) passes
    through it, and ``_num_yielded`` (the batches of this epoch; reset for a persistent iterator's next epoch)
    counts for us."""
    import torch

    base = module._BaseDataLoaderIter
    original = base.__next__
    limit, dwell = _batches(), _dwell()

    def __next__(self):
        n = getattr(self, "_num_yielded", 0)
        role = getattr(self, "_gpupair_role", None)
        if n == 0 or role is None:
            role = "train" if torch.is_grad_enabled() and not torch.is_inference_mode_enabled() else "eval"
            self._gpupair_role = role
        if n == 0:
            _gate("data")
        if limit and n >= limit:
            _event(f"bounded {role} {id(self):x} {n}")
            _hold(role, dwell)
            raise StopIteration
        try:
            batch = original(self)
        except StopIteration:
            _event(f"end {role} {id(self):x} {n}")
            _hold(role, dwell)
            raise
        if n == 0:
            _event(f"start {role} {id(self):x}")
        else:  # one per batch: a job that stops asking for batches is seen to stall (the runner's stall rule)
            _event(f"step {role} {id(self):x}")
        return batch

    __next__.__wrapped__ = original
    base.__next__ = __next__
    _event(f"hooked limit={limit}")


def _gate(where: str) -> None:
    """Wait here, before the job's first GPU use or first batch, until the runner releases it (once per process).
    A held job imports meanwhile what the runner lists for it; if one of those imports uses the GPU, it waits
    here too, until the release."""
    global _released, _waiting, _at_gate
    if _released or not os.environ.get(HOLD_VAR):
        return
    go = os.environ[HOLD_VAR]
    nested = _waiting
    if os.path.exists(go):
        _event(f"gate {where} open")
    else:
        import time

        _waiting = True
        if not nested:
            _event(f"gate {where} held")
        imports = "" if nested else go + IMPORTS_SUFFIX
        while not os.path.exists(go):
            if imports and os.path.exists(imports):
                _preimport(imports)
                imports = ""
            time.sleep(_HOLD_POLL_S)
    if nested:  # the outer wait releases the job
        return
    _released = True
    _at_gate = set(sys.modules)


def _preimport(listing: str) -> None:
    """Import the libraries the runner listed, while the job waits at its gate (each once; a failure is the
    job's own to meet later, as it would have)."""
    import importlib

    try:
        with open(listing, encoding="utf-8") as fh:
            names = [n for n in fh.read().split() if n]
    except OSError:
        return
    failed = 0
    for name in names:
        try:
            importlib.import_module(name)
        except BaseException:  # noqa: BLE001 - a library that fails to import here fails in the job later
            failed += 1
    _event(f"preimported {len(names)} {failed}")


def _imported_since_gate() -> list[str]:
    """The libraries imported since the gate, in the order they were imported (``sys.modules`` keeps it), as the
    fewest names that import them all (a package's submodules come with it): not the job's own modules (under
    its working directory), not ``__main__``, not modules made without the import system (no ``__spec__``)."""
    if _at_gate is None:
        return []
    here = os.path.realpath(os.getcwd()) + os.sep
    new = {}
    for name, module in list(sys.modules.items()):
        if name in _at_gate or name == "__main__" or getattr(module, "__spec__", None) is None:
            continue
        path = getattr(module, "__file__", None) or ""
        if path and os.path.realpath(path).startswith(here):
            continue
        new[name] = None
    return [n for n in new if n.rpartition(".")[0] not in new]


def _patch_cuda(module) -> None:
    """Gate ``torch.cuda._lazy_init``: every path that creates the job's CUDA context (a tensor moved to the GPU,
    ``set_device``, the device's properties) calls it by this name, so a held job holds no GPU memory."""
    original = module._lazy_init

    def _lazy_init():
        _gate("cuda")
        module._lazy_init = original
        return original()

    _lazy_init.__wrapped__ = original
    module._lazy_init = _lazy_init


def _patch_optimizer(module) -> None:
    """Say when the job's first optimizer step is done, through torch's global step hook: from then on the job
    holds its model, its optimizer's state and a step's activations, whatever loop it trains in."""
    register = getattr(module, "register_optimizer_step_post_hook", None)  # torch >= 2.0
    if register is None:
        return
    seen = []

    def after_step(optimizer, args, kwargs):
        if not seen:
            seen.append(True)
            _event("optimizer-step")
            text = ",".join(_imported_since_gate())
            if len(text) > _MAX_EVENT:  # whole names only
                text = text[:_MAX_EVENT].rpartition(",")[0]
            if text:
                _event(f"imported {text}")

    register(after_step)
    _event("optimizer-hooked")


def _hold(role: str, dwell: float) -> None:
    if role == "eval" and dwell > 0:
        import time

        time.sleep(dwell)


class _Finder:
    """A meta-path finder that only watches for the modules it patches, and patches each once it is executed."""

    def __init__(self, patches) -> None:
        self.patches = dict(patches)

    def find_spec(self, name, path=None, target=None):
        patch = self.patches.pop(name, None)
        if patch is None:
            return None
        sys.meta_path.remove(self)
        try:
            import importlib.util

            spec = importlib.util.find_spec(name)
        except Exception:
            return None
        finally:
            if self.patches:
                sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader = spec.loader
        exec_module = loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            try:
                patch(module)
            except Exception as exc:  # the job runs unbounded (the plateau rule), or is never held
                _event(f"hook-failed {type(exc).__name__}")

        try:
            loader.exec_module = exec_and_patch
        except Exception:
            return spec
        return spec


def _chain_user_sitecustomize() -> None:
    """Run the ``sitecustomize`` that Python would have found without us (a job's or the distribution's)."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        import importlib.machinery
        import importlib.util

        rest = [p for p in sys.path if os.path.abspath(p or ".") != here]
        spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
        if spec is None or spec.loader is None:
            return
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except Exception as exc:
        print(f"sitecustomize: {type(exc).__name__}: {exc}", file=sys.stderr)


def _install() -> None:
    patches = {_DATALOADER: _patch, _OPTIMIZER: _patch_optimizer}
    if os.environ.get(HOLD_VAR):
        patches[_CUDA] = _patch_cuda
    for name in [n for n in patches if n in sys.modules]:
        patches.pop(name)(sys.modules[name])
    if patches:
        sys.meta_path.insert(0, _Finder(patches))


if os.environ.get(EVENTS_VAR):
    try:
        _install()
    except Exception as exc:
        _event(f"hook-failed {type(exc).__name__}")
_chain_user_sitecustomize()
