"""What the costly session fixtures make, made once per mutation run instead of once per mutant.

mutmut runs the tests that cover a mutant in a fresh pytest session per mutant, so every
session fixture runs again for each of thousands of mutants: training the session's model
(~10 s on a busy machine) and creating an empty MLflow store (~2 s) were most of a mutant's
time. Under `python -m pipeline.mutation`, MUTATION_CACHE_DIR names a directory where such a
product is kept, made by a session in which no mutant is active (mutmut's clean or stats run),
together with the mutated functions its making called. A later session copies it unless the
active mutant is one of those functions: then the product could differ, and the session
makes its own, as it would without a cache. Outside a mutation run nothing is kept.

A function mutmut mutated runs as `<name>__mutmut_orig` when no mutant of it is active;
those are the calls recorded, under mutmut's names for the functions (`module.x_name`,
`module.xǁClassǁmethod`), the names MUTANT_UNDER_TEST carries with `__mutmut_<n>` added.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

# Set by `python -m pipeline.mutation` for its mutmut run; standard library only here, as the
# image's build stage runs tests/conftest.py without the pipeline package.
CACHE_DIR_VARIABLE = "MUTATION_CACHE_DIR"

MUTANT_VARIABLE = "MUTANT_UNDER_TEST"
ORIGINAL_SUFFIX = "__mutmut_orig"
MUTANT_MARK = "__mutmut_"
# What MUTANT_UNDER_TEST holds while mutmut runs the unmutated code (clean run, stats run).
NO_MUTANT = ("", "stats")
CALLS_FILE = "calls.json"
PRODUCT_DIR = "product"


def mutated_function(mutant: str) -> str:
    """mutmut's name of the function a mutant changes: `training.gate.x_run_gate__mutmut_3`
    -> `training.gate.x_run_gate`."""
    return mutant.rpartition(MUTANT_MARK)[0] or mutant


@contextmanager
def recorded_calls() -> Iterator[set[str]]:
    """The mutated functions called (in any thread) while the block runs, by mutmut's name."""
    calls: set[str] = set()

    def profile(frame: FrameType, event: str, _arg: Any) -> None:
        name = frame.f_code.co_name
        if event == "call" and name.endswith(ORIGINAL_SUFFIX):
            module = frame.f_globals.get("__name__", "")
            calls.add(f"{module}.{name[:-len(ORIGINAL_SUFFIX)]}")

    previous, previous_threads = sys.getprofile(), threading.getprofile()
    sys.setprofile(profile)
    threading.setprofile(profile)
    try:
        yield calls
    finally:
        sys.setprofile(previous)
        threading.setprofile(previous_threads)  # type: ignore[arg-type]


def reuse_or_make(name: str, target: Path, make: Callable[[Path], object],
                  environ: Mapping[str, str] = os.environ, made_from: Sequence[str] = ()
                  ) -> None:
    """Fill `target` with `make(target)`'s product, or with the mutation run's copy of it when
    the active mutant cannot change it, nor the products named in `made_from` that the
    making reads (`environ`: where the two variables are read)."""
    cache_dir = environ.get(CACHE_DIR_VARIABLE)
    mutant = environ.get(MUTANT_VARIABLE, "")
    entry = Path(cache_dir) / name if cache_dir else None
    kept = entry is not None and (entry / CALLS_FILE).is_file()
    if kept and (mutant in NO_MUTANT or not _may_change(
            mutated_function(mutant), [entry.parent / source for source in (name, *made_from)])):
        shutil.copytree(entry / PRODUCT_DIR, target, dirs_exist_ok=True)
    elif kept or not cache_dir or mutant not in NO_MUTANT:
        make(target)  # outside a run, or a product the mutant may change: never kept
    else:
        with recorded_calls() as calls:
            make(target)
        _keep(entry, target, calls)  # type: ignore[arg-type]  # cache_dir is set here


def _may_change(function: str, entries: list[Path]) -> bool:
    """Whether `function` was called making any of the kept products `entries` (True when
    one of them was not kept: nothing says it was not)."""
    for entry in entries:
        calls = entry / CALLS_FILE
        if not calls.is_file() or function in json.loads(calls.read_text()):
            return True
    return False


def _keep(entry: Path, product: Path, calls: set[str]) -> None:
    """Store a product and its calls; a session that stored it first wins the race."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{entry.name}-", dir=entry.parent))
    shutil.copytree(product, staging / PRODUCT_DIR)
    (staging / CALLS_FILE).write_text(json.dumps(sorted(calls), indent=1) + "\n")
    try:
        staging.rename(entry)
    except OSError:  # another session kept it meanwhile
        shutil.rmtree(staging, ignore_errors=True)
