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

``role`` is ``eval`` for an iterator that started with gradients off (``torch.no_grad``, ``inference_mode``:
an evaluation pass), else ``train``. An evaluation iterator, once done, holds on for ``GPUPAIR_PROBE_DWELL_S``
seconds before it ends: a bounded evaluation pass can be shorter than the runner's sampling interval (and its
process-tree walk, which finds new DataLoader workers), and what it holds must be in the peak. Each event is one short ``O_APPEND`` write, so the job's processes
(a DataLoader's workers, a launcher and its child) never interleave within a line.

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
_TARGET = "torch.utils.data.dataloader"


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


def _hold(role: str, dwell: float) -> None:
    if role == "eval" and dwell > 0:
        import time

        time.sleep(dwell)


class _Finder:
    """A meta-path finder that only watches for the DataLoader's module and patches it once it is executed."""

    def find_spec(self, name, path=None, target=None):
        if name != _TARGET:
            return None
        sys.meta_path.remove(self)
        try:
            import importlib.util

            spec = importlib.util.find_spec(name)
        except Exception:
            return None
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader = spec.loader
        exec_module = loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            try:
                _patch(module)
            except Exception as exc:  # the job runs unbounded; the runner falls back to its plateau rule
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


if os.environ.get(EVENTS_VAR):
    try:
        if _TARGET in sys.modules:
            _patch(sys.modules[_TARGET])
        else:
            sys.meta_path.insert(0, _Finder())
    except Exception as exc:
        _event(f"hook-failed {type(exc).__name__}")
_chain_user_sitecustomize()
