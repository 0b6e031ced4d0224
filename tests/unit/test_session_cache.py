"""A mutation run's session products are reused only where the active mutant cannot change
them (tests/session_cache.py); outside a mutation run nothing is kept."""

from __future__ import annotations

from pathlib import Path

from tests import session_cache
from tests.session_cache import (CACHE_DIR_VARIABLE, MUTANT_VARIABLE, mutated_function,
                                 recorded_calls, reuse_or_make)

# Stand-ins for mutmut's renamed originals: the names a mutated module's functions run under.
THIS = __name__


def x_scale__mutmut_orig(value: int) -> int:
    return 2 * x_offset__mutmut_orig(value)


def x_offset__mutmut_orig(value: int) -> int:
    return value + 1


def x_unused__mutmut_orig() -> None:
    raise AssertionError("never called")


class Maker:
    """Writes a product whose making calls two 'mutated' functions; counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, target: Path) -> None:
        self.calls += 1
        target.mkdir(parents=True, exist_ok=True)
        (target / "value.txt").write_text(f"{x_scale__mutmut_orig(20)} made {self.calls}")


def test_mutated_function_names_the_function_a_mutant_changes() -> None:
    assert mutated_function("training.gate.x_run_gate__mutmut_3") == "training.gate.x_run_gate"
    assert (mutated_function("training.registry.xǁRegistryǁpromote__mutmut_12")
            == "training.registry.xǁRegistryǁpromote")
    assert mutated_function("training.gate.x_run_gate") == "training.gate.x_run_gate"


def test_calls_in_the_block_and_its_threads_are_recorded_by_mutmuts_names() -> None:
    import threading

    with recorded_calls() as calls:
        thread = threading.Thread(target=x_offset__mutmut_orig, args=(1,))
        thread.start()
        thread.join()
        x_scale__mutmut_orig(1)
    x_unused = f"{THIS}.x_unused"
    assert calls == {f"{THIS}.x_scale", f"{THIS}.x_offset"} and x_unused not in calls


def test_without_a_mutation_run_every_session_makes_its_own(tmp_path: Path) -> None:
    maker = Maker()
    for index in range(2):
        reuse_or_make("product", tmp_path / f"out{index}", maker, environ={})
    assert maker.calls == 2
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out0", "out1"]


def test_the_clean_run_keeps_its_product_and_a_mutant_elsewhere_reuses_it(tmp_path: Path) -> None:
    maker, cache = Maker(), tmp_path / "cache"
    clean = {CACHE_DIR_VARIABLE: str(cache), MUTANT_VARIABLE: ""}
    reuse_or_make("product", tmp_path / "clean", maker, environ=clean)
    assert (cache / "product" / "product" / "value.txt").read_text() == "42 made 1"
    elsewhere = {CACHE_DIR_VARIABLE: str(cache),
                 MUTANT_VARIABLE: f"{THIS}.x_unused__mutmut_4"}
    reuse_or_make("product", tmp_path / "reused", maker, environ=elsewhere)
    assert maker.calls == 1
    assert (tmp_path / "reused" / "value.txt").read_text() == "42 made 1"


def test_a_mutant_of_a_function_the_making_called_makes_its_own_and_keeps_nothing(
        tmp_path: Path) -> None:
    maker, cache = Maker(), tmp_path / "cache"
    reuse_or_make("product", tmp_path / "clean", maker,
                  environ={CACHE_DIR_VARIABLE: str(cache), MUTANT_VARIABLE: "stats"})
    for index, function in enumerate(("x_scale", "x_offset"), start=2):
        mutant = {CACHE_DIR_VARIABLE: str(cache), MUTANT_VARIABLE: f"{THIS}.{function}__mutmut_1"}
        reuse_or_make("product", tmp_path / function, maker, environ=mutant)
        assert maker.calls == index
        assert (tmp_path / function / "value.txt").read_text() == f"42 made {index}"
    assert (cache / "product" / "product" / "value.txt").read_text() == "42 made 1"


def test_a_mutants_product_is_never_kept_for_the_others(tmp_path: Path) -> None:
    maker, cache = Maker(), tmp_path / "cache"
    mutant = {CACHE_DIR_VARIABLE: str(cache), MUTANT_VARIABLE: f"{THIS}.x_unused__mutmut_1"}
    reuse_or_make("product", tmp_path / "mutant", maker, environ=mutant)
    assert maker.calls == 1 and not cache.exists()


def test_the_first_session_to_keep_a_product_wins(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first, second = tmp_path / "first", tmp_path / "second"
    for directory, text in ((first, "first"), (second, "second")):
        directory.mkdir()
        (directory / "value.txt").write_text(text)
    session_cache._keep(cache / "product", first, {"a.x_f"})
    session_cache._keep(cache / "product", second, {"b.x_g"})
    assert (cache / "product" / "product" / "value.txt").read_text() == "first"
    assert (cache / "product" / "calls.json").read_text().split() == ["[", '"a.x_f"', "]"]
    assert [path.name for path in cache.iterdir()] == ["product"]  # no staging left behind


def test_a_product_made_from_another_is_made_again_when_a_mutant_may_change_either(
        tmp_path: Path) -> None:
    """The promoted registry is made from the trained model: a mutant of training changes it
    as surely as a mutant of promotion does."""
    cache = tmp_path / "cache"
    clean = {CACHE_DIR_VARIABLE: str(cache), MUTANT_VARIABLE: ""}
    source, derived = Maker(), Maker()
    reuse_or_make("source", tmp_path / "source", source, environ=clean)
    session_cache._keep(cache / "derived", tmp_path / "source", {f"{THIS}.x_promote"})
    for function, made in (("x_offset", 1), ("x_promote", 2), ("x_unused", 2)):
        mutant = {CACHE_DIR_VARIABLE: str(cache), MUTANT_VARIABLE: f"{THIS}.{function}__mutmut_2"}
        reuse_or_make("derived", tmp_path / function, derived, environ=mutant,
                      made_from=("source",))
        assert derived.calls == made, function  # made, made, then the kept copy reused
    missing = {CACHE_DIR_VARIABLE: str(cache), MUTANT_VARIABLE: f"{THIS}.x_unused__mutmut_2"}
    reuse_or_make("derived", tmp_path / "unknown", derived, environ=missing,
                  made_from=("never-kept",))
    assert derived.calls == 3  # nothing says the unkept product does not call it: made again
