"""pipeline/mutation.py: the mutant lists it reads, mutmut's results, and the sample's config."""

from __future__ import annotations

import configparser
import json
from pathlib import Path

import pytest

from pipeline import mutation

ROOT = Path(__file__).resolve().parents[2]


def test_a_listed_mutant_needs_a_reason(tmp_path: Path) -> None:
    listed = tmp_path / "list.txt"
    listed.write_text("# comment\n\napp.x_f__mutmut_1 tests/a.py tests/b.py  # why\n")
    (entry,) = mutation.read_listed(listed)
    assert (entry.name, entry.fields, entry.note) == (
        "app.x_f__mutmut_1", ("tests/a.py", "tests/b.py"), "why")
    listed.write_text("app.x_f__mutmut_2 tests/a.py\n")
    with pytest.raises(ValueError, match="list.txt:1: app.x_f__mutmut_2 needs a '# reason'"):
        mutation.read_listed(listed)


def test_the_checked_in_lists_name_mutable_modules_and_existing_tests() -> None:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    mutated = set(config["mutmut"]["only_mutate"].split())
    sample = mutation.read_listed(mutation.SAMPLE_FILE)
    equivalent = mutation.read_listed(mutation.EQUIVALENT_FILE)
    assert sample, "the CI sample is empty"
    for entry in sample + equivalent:
        module = entry.name.split(".x", 1)[0].replace(".", "/") + ".py"
        assert module in mutated, entry.name
    for entry in sample:
        assert entry.fields, entry.name
        for test in entry.fields:
            assert (ROOT / test.split("::")[0]).is_file(), test


def test_sample_config_selects_only_the_samples_modules_and_tests() -> None:
    sample = [mutation.Listed("training.gate.x_a__mutmut_1", ("tests/unit/test_gate.py",), "x"),
              mutation.Listed("app.validation.x_b__mutmut_2", ("tests/api/t.py::test_c",), "y")]
    section = mutation.sample_config(sample)["mutmut"]
    assert section["only_mutate"].split() == ["app/validation.py", "training/gate.py"]
    assert section["pytest_add_cli_args_test_selection"].split() == [
        "tests/api/t.py::test_c", "tests/unit/test_gate.py"]
    assert section["source_paths"].split() == ["training/", "app/"]


def test_results_are_read_from_mutmuts_meta_files(tmp_path: Path) -> None:
    meta = tmp_path / "mutants" / "training" / "gate.py.meta"
    meta.parent.mkdir(parents=True)
    codes = {"training.gate.x_a__mutmut_1": 1, "training.gate.x_a__mutmut_2": 0,
             "training.gate.x_a__mutmut_3": 33, "training.gate.x_a__mutmut_4": -24,
             "training.gate.x_a__mutmut_5": None}
    meta.write_text(json.dumps({"exit_code_by_key": codes}))
    assert mutation.read_results(tmp_path) == {
        "training.gate.x_a__mutmut_1": "killed", "training.gate.x_a__mutmut_2": "survived",
        "training.gate.x_a__mutmut_3": "no tests", "training.gate.x_a__mutmut_4": "timeout",
        "training.gate.x_a__mutmut_5": "not checked"}
    summary = mutation.summarise(mutation.read_results(tmp_path), {}, None)
    assert (summary["score"], summary["killed"], summary["survivors"]) == (
        0.4, 2, ["training.gate.x_a__mutmut_2", "training.gate.x_a__mutmut_3",
                 "training.gate.x_a__mutmut_5"])


@pytest.mark.parametrize("killed, meets", [(17, True), (16, False)])
def test_the_score_meets_the_target_from_exactly_the_target(killed: int, meets: bool) -> None:
    # 17 of 20 is exactly 85 %: the bar is reached, one fewer is under it.
    results = {f"training.gate.x_a__mutmut_{n}": "killed" if n < killed else "survived"
               for n in range(20)}
    results["training.gate.x_a__mutmut_99"] = "survived"  # equivalent: not judged
    summary = mutation.summarise(results, {"training.gate.x_a__mutmut_99": "same"}, None)
    assert mutation.TARGET_SCORE == 0.85
    assert (summary["score"], summary["target"], summary["meets_target"]) == (
        killed / 20, 0.85, meets)


def test_a_list_of_mutants_to_check_must_name_the_tests_that_kill_them(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    listing = tmp_path / "survivors.txt"
    listing.write_text("training.gate.x_decide__mutmut_1  # no test file named\n")
    assert mutation.main(["sample", "--list", str(listing), "--mutmut", "/bin/false"]) == 1
    assert f"{listing}: training.gate.x_decide__mutmut_1 names no test file to kill it" in \
        caplog.text


def test_mutmut_runs_with_an_emptied_cache_of_the_sessions_products(tmp_path: Path) -> None:
    """Every run starts without the products of an earlier run's code (tests/session_cache.py)
    and tells its test sessions where to keep them."""
    stale = tmp_path / mutation.CACHE_SUBDIR / "trained-model"
    stale.mkdir(parents=True)
    seen = tmp_path / "seen.txt"
    fake = tmp_path / "mutmut"
    fake.write_text("#!/bin/sh\n"
                    f'{{ echo "$*"; echo "${mutation.CACHE_DIR_VARIABLE}"; '
                    'echo "$OMP_NUM_THREADS"; '
                    f'test -e "${mutation.CACHE_DIR_VARIABLE}" && echo present || echo absent; }} '
                    f'> {seen}\n')
    fake.chmod(0o755)
    mutation.run_mutmut(str(fake), tmp_path, 2, ["training.gate.x_run_gate__mutmut_1"])
    arguments, cache, openmp_threads, present = seen.read_text().splitlines()
    assert arguments == "run --max-children 2 training.gate.x_run_gate__mutmut_1"
    assert cache == str(tmp_path / mutation.CACHE_SUBDIR)
    assert present == "absent"  # the sessions of this run make it anew
    assert openmp_threads == "1"  # no OpenMP pool to hang a forked session
