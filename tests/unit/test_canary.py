"""Canary releases: the record, the routing rule, the limits, and starting and ending one in
both registries (the file folder and MLflow's, on the embedded store)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from tests.canary_models import CANARY_VERSION, GATED, register_twin
from tests.conftest import DATA_FILE
from training import canary, tracking
from training.canary_release import (MIN_ERRORS, MIN_SCORINGS, CanaryRelease, ReleaseError,
                                     arm_position, limit_breach, new_release)
from training.cli import main
from training.config import ConfigError, TrainingConfig
from training.gate import CHAMPION_KEPT, FAILED, GateResult
from training.registry import Registry, RegistryError
from training.workflows import promote as gate_promote

RELEASE = new_release("v2", "canary", 0.2, max_error_rate=0.01, max_latency_ms=100.0)


def test_a_release_round_trips_through_its_file_and_its_tags() -> None:
    assert CanaryRelease.from_json(RELEASE.to_json()) == RELEASE
    assert CanaryRelease.from_tags("v2", {**RELEASE.to_tags(), "other": "x"}) == RELEASE


@pytest.mark.parametrize("change, message", [
    ({"mode": "blue"}, "mode 'blue' is not one of"),
    ({"share": 0.0}, "share 0.0 must be above 0"),
    ({"share": 1.0}, "a canary that takes all traffic is a promotion"),
    ({"share": float("nan")}, "share nan is not a number"),
    ({"share": True}, "share True is not a number"),
    ({"max_error_rate": 1.0}, "max_error_rate 1.0 must be in"),
    ({"max_latency_ms": 0}, "max_latency_ms 0 must be above 0"),
])
def test_a_release_with_a_bad_field_is_refused_naming_it(change: dict, message: str) -> None:
    with pytest.raises(ReleaseError, match=message.replace("(", "\\(")):
        dataclasses.replace(RELEASE, **change)


def test_a_stored_release_missing_fields_or_not_json_is_refused() -> None:
    with pytest.raises(ReleaseError, match="lacks share, started_at"):
        CanaryRelease.from_dict({"version": "v", "mode": "canary", "max_error_rate": 0.1,
                                 "max_latency_ms": 5})
    with pytest.raises(ReleaseError, match="not JSON"):
        CanaryRelease.from_json("{")
    with pytest.raises(ReleaseError, match="canary tag share"):
        CanaryRelease.from_tags("v", {**RELEASE.to_tags(), "canary.share": "a fifth"})


def test_routing_is_deterministic_and_takes_the_share_of_distinct_ids() -> None:
    traces = [f"request-{n}" for n in range(20000)]
    assert [arm_position(t) for t in traces[:50]] == [arm_position(t) for t in traces[:50]]
    share = sum(RELEASE.routes_to_canary(trace) for trace in traces) / len(traces)
    assert 0.19 < share < 0.21  # binomial sd at n=20,000: 0.003
    assert all(0.0 <= arm_position(t) < 1.0 for t in traces)


@pytest.mark.parametrize("scorings, errors, expected", [
    (MIN_SCORINGS, MIN_ERRORS, True),          # 15 % > 1 %, enough of both
    (MIN_SCORINGS - 1, MIN_ERRORS, False),     # too few scorings to judge
    (MIN_SCORINGS, MIN_ERRORS - 1, False),     # too few failures to judge
    (300, MIN_ERRORS, False),                  # exactly 1 %: not more than the limit
    (299, MIN_ERRORS, True),                   # just over 1 %
])
def test_the_error_limit_trips_above_the_rate_with_enough_evidence(
        scorings: int, errors: int, expected: bool) -> None:
    release = dataclasses.replace(RELEASE, max_error_rate=0.01)
    assert bool(limit_breach(release, scorings, errors, [])) is expected


def test_the_latency_limit_trips_when_the_nearest_rank_p95_exceeds_it() -> None:
    fast, slow = [1.0] * MIN_SCORINGS, [500.0]
    assert limit_breach(RELEASE, 40, 0, fast * 2) == ""
    # 19 fast and 1 slow: the p95 (the 19th of 20) is fast; 18 and 2: the p95 is slow.
    assert limit_breach(RELEASE, 20, 0, fast[:19] + slow) == ""
    assert "p95 scoring time 500.0 ms over 20 scorings exceeds 100 ms" == limit_breach(
        RELEASE, 20, 0, fast[:18] + slow * 2)
    # Exactly at the limit is within it; too few scorings are no verdict.
    assert limit_breach(RELEASE, 20, 0, [100.0] * 20) == ""
    assert limit_breach(RELEASE, 19, 0, slow * (MIN_SCORINGS - 1)) == ""


@pytest.fixture
def config(tmp_path: Path, tracking_dir: Path) -> TrainingConfig:
    """Training settings on this test's folder and embedded store."""
    return TrainingConfig(data_path=DATA_FILE, registry_dir=tmp_path / "registry",
                          reports_dir=tmp_path / "reports", tracking_dir=tracking_dir)


@pytest.fixture(params=["folder", "mlflow"])
def registry(request: pytest.FixtureRequest, config: TrainingConfig,
             trained_model_dir: Path) -> canary.CanaryRegistry:
    """A registry of record with production and a gated twin of it."""
    config = dataclasses.replace(config, tracking="off" if request.param == "folder" else "on")
    registry = tracking.open_registry(config)
    production = registry.register(trained_model_dir, card_updates=GATED)
    registry.promote(production, reason="test")
    registry.register(trained_model_dir, version=CANARY_VERSION, card_updates=GATED)
    return registry


def test_start_then_abort_leaves_production_and_records_both(
        registry: canary.CanaryRegistry, config: TrainingConfig) -> None:
    production = registry.production_version()
    started = canary.start(registry, CANARY_VERSION, config, share=0.3)
    assert registry.canary_release() == started
    assert Registry(config.registry_dir).canary_release() == started  # the cache follows
    assert canary.status(registry)["canary"]["share"] == 0.3
    assert canary.abort(registry, "test abort") == CANARY_VERSION
    assert registry.canary_release() is None
    assert Registry(config.registry_dir).canary_release() is None
    assert registry.production_version() == production


def test_promote_makes_the_canary_production_and_ends_the_release(
        registry: canary.CanaryRegistry, config: TrainingConfig) -> None:
    canary.start(registry, CANARY_VERSION, config, mode="shadow")
    assert canary.promote(registry, "it held up") == CANARY_VERSION
    assert registry.production_version() == CANARY_VERSION
    assert registry.canary_release() is None
    assert registry.history()[-1]["version"] == CANARY_VERSION


def test_only_a_gated_version_over_the_floor_may_be_a_canary(
        config: TrainingConfig, trained_model_dir: Path) -> None:
    registry = Registry(config.registry_dir)
    registry.promote(registry.register(trained_model_dir, card_updates=GATED), reason="test")
    registry.register(trained_model_dir, version="ungated")
    registry.register(trained_model_dir, version="failed", card_updates={
        "gate": {"decision": FAILED}})
    kept = registry.register(trained_model_dir, version="kept", card_updates={
        "gate": {"decision": CHAMPION_KEPT}})
    with pytest.raises(RegistryError, match="ungated may not run as a canary: it was not gated"):
        canary.start(registry, "ungated", config)
    with pytest.raises(RegistryError, match="gate decision 'failed'"):
        canary.start(registry, "failed", config)
    auc = registry.card(kept)["metrics"]["roc_auc"]
    with pytest.raises(RegistryError, match=f"holdout roc_auc {auc} is under the floor"):
        canary.start(registry, kept, dataclasses.replace(config, floor_roc_auc=auc + 1e-9))
    # Exactly on the floor is over it.
    assert canary.start(registry, kept, dataclasses.replace(config, floor_roc_auc=auc))


def test_a_canary_needs_production_another_version_and_no_running_release(
        config: TrainingConfig, trained_model_dir: Path) -> None:
    registry = Registry(config.registry_dir)
    first = registry.register(trained_model_dir, card_updates=GATED)
    with pytest.raises(RegistryError, match="no production model to run a canary beside"):
        canary.start(registry, first, config)
    registry.promote(first, reason="test")
    with pytest.raises(RegistryError, match="already serves as production"):
        canary.start(registry, first, config)
    register_twin(registry, trained_model_dir)
    canary.start(registry, CANARY_VERSION, config)
    with pytest.raises(RegistryError, match=f"canary {CANARY_VERSION} is running"):
        canary.start(registry, CANARY_VERSION, config)
    with pytest.raises(RegistryError, match="mode 'blue'"):
        canary.start(registry, CANARY_VERSION, config, mode="blue")


def test_an_unreadable_canary_file_is_an_error_naming_it(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    (tmp_path / "canary").write_text(json.dumps({**json.loads(RELEASE.to_json()),
                                                 "version": "../etc"}))
    with pytest.raises(RegistryError, match="invalid version name '../etc'"):
        registry.canary_release()
    (tmp_path / "canary").write_text("[]")
    with pytest.raises(RegistryError, match="a canary release is a JSON object"):
        registry.canary_release()
    (tmp_path / "canary").write_bytes(b'{"version": "\xff"}')
    with pytest.raises(RegistryError) as undecodable:
        registry.canary_release()
    assert str(undecodable.value).startswith(f"{tmp_path / 'canary'}: 'utf-8' codec can't decode")
    (tmp_path / "canary").unlink()
    (tmp_path / "canary").mkdir()
    with pytest.raises(RegistryError) as unreadable:
        registry.canary_release()
    assert str(unreadable.value) == f"{tmp_path / 'canary'}: [Errno 21] Is a directory: " \
                                    f"'{tmp_path / 'canary'}'"


def test_the_gate_releases_a_passed_challenger_as_canary_under_promotion_canary(
        config: TrainingConfig, trained_model_dir: Path) -> None:
    registry = Registry(config.registry_dir)
    champion = registry.register(trained_model_dir, card_updates=GATED)
    registry.promote(champion, reason="test")
    register_twin(registry, trained_model_dir)
    result = GateResult("promoted", ["holds up", "by a margin"], checks=[],
                        challenger={"version": CANARY_VERSION})
    gate_promote(registry, CANARY_VERSION, champion, result,
                 dataclasses.replace(config, promotion="canary", canary_share=0.25))
    assert registry.production_version() == champion
    release = registry.canary_release()
    assert (release.share, release.reason) == (0.25, "holds up; by a margin")
    assert "released as canary on 25% of requests" in result.reasons[-1]
    assert result.promotion == "canary"
    # Without a champion there is nothing to compare with: the first model is promoted.
    fresh = Registry(config.registry_dir.parent / "fresh")
    first = fresh.register(trained_model_dir, card_updates=GATED)
    result.reasons = ["no production model yet", "floor passed"]
    gate_promote(fresh, first, None, result, dataclasses.replace(config, promotion="canary"))
    assert fresh.production_version() == first and fresh.canary_release() is None
    assert fresh.history()[-1]["reason"] == "no production model yet; floor passed"
    assert result.promotion == "direct"


def test_an_unknown_promotion_is_refused_before_anything_changes(
        config: TrainingConfig) -> None:
    with pytest.raises(ConfigError, match="TRAINING_PROMOTION='blue' is not one of"):
        canary.promotion_mode(dataclasses.replace(config, promotion="blue"))


def test_the_cli_starts_reports_and_ends_a_canary(
        config: TrainingConfig, trained_model_dir: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("MODEL_REGISTRY", str(config.registry_dir))
    monkeypatch.setenv("REPORTS_DIR", str(config.reports_dir))
    monkeypatch.setenv("TRAINING_TRACKING", "off")
    registry = Registry(config.registry_dir)
    registry.promote(registry.register(trained_model_dir, card_updates=GATED), reason="t")
    register_twin(registry, trained_model_dir)
    assert main(["canary", CANARY_VERSION, "--share", "0.15"]) == 0
    assert main(["canary-status"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["canary"]["version"] == CANARY_VERSION and status["canary"]["share"] == 0.15
    assert main(["list"]) == 0
    assert f"c {CANARY_VERSION}" in capsys.readouterr().out
    assert main(["canary", CANARY_VERSION, "--share", "2"]) == 1  # one runs already
    assert main(["canary-abort", "--reason", "enough"]) == 0
    assert main(["canary-abort"]) == 1
    assert "no canary release is running" in caplog.text
    assert registry.history()[-1]["action"] == "canary-abort"
