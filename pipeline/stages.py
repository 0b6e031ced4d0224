"""The pipeline's stages: the one list that `make pipeline` runs and the Jenkinsfile mirrors.

Every stage is one make target. In Docker mode (a Docker engine answers `docker info`) the
targets are exactly the ones the Jenkinsfile calls. On a machine without an engine the image
stages run natively: the model is trained, floor-gated and model-tested on the host, the
champion/challenger gate runs against the local registry, and deploy is `make serve` (Gunicorn
behind NGINX on loopback). tests/pipeline/test_parity.py fails if the Jenkinsfile drifts away
from this list.

Gate exit statuses (`python -m training gate`/`retrain`): 0 promoted, 3 under the floor (the
build fails), 4 champion kept (the build is UNSTABLE and nothing is deployed). make reports
any failure as its own status 2, so the runner and the Jenkinsfile read the decision from
reports/gate.json, which the gate writes.
"""

from __future__ import annotations

from dataclasses import dataclass

DOCKER = "docker"
NATIVE = "native"
MODES = (DOCKER, NATIVE)

GATE_PROMOTED = 0
GATE_UNDER_FLOOR = 3
GATE_CHAMPION_KEPT = 4


@dataclass(frozen=True)
class Stage:
    """One pipeline stage and the make target it runs in each mode."""

    name: str
    docker_target: str
    # None: the stage has no native counterpart; `native_note` says why.
    native_target: str | None
    native_note: str = ""
    # RETRAIN=true: these targets run in place of the stage's own, per mode. In Docker mode
    # retraining runs from the image against the stack's registry volume, which the
    # running service follows; natively it runs against the local registry.
    docker_retrain_target: str | None = None
    native_retrain_target: str | None = None
    # The champion/challenger gate: exit status 4 means UNSTABLE, not failed.
    is_gate: bool = False
    # Runs only when the gate promoted, DEPLOY is on and the branch is the main branch.
    deploys: bool = False

    def target(self, mode: str, retrain: bool = False) -> str | None:
        """The make target this stage runs in `mode` (None: not applicable)."""
        if mode == DOCKER:
            return (self.docker_retrain_target if retrain and self.docker_retrain_target
                    else self.docker_target)
        return (self.native_retrain_target if retrain and self.native_retrain_target
                else self.native_target)


STAGES: tuple[Stage, ...] = (
    Stage("setup", "setup", "setup"),
    Stage("lint", "lint", "lint"),
    Stage("unit tests", "test-unit", "test-unit"),
    Stage("data tests", "test-data", "test-data"),
    # Docker: validation, training, floor gate and model tests run inside `docker build`.
    Stage("build image", "image", "train-floor"),
    Stage("reports from image", "reports-from-image", None,
          native_note="not applicable in native mode: the build stage wrote its model card, "
                      "gate and model-test reports straight into reports/"),
    Stage("gate", "gate-image", "gate", docker_retrain_target="retrain-image",
          native_retrain_target="retrain", is_gate=True),
    # Docker: DEPLOY_TARGET (compose, swarm, kubernetes) picks where `make deploy` goes.
    Stage("deploy", "deploy", "serve", deploys=True),
    Stage("smoke test", "smoke", "smoke", deploys=True),
)

MAIN_BRANCH = "main"


def stage_names() -> list[str]:
    """The stage names in pipeline order."""
    return [stage.name for stage in STAGES]


def all_targets() -> set[str]:
    """Every make target any stage can run, in any mode."""
    targets = set()
    for stage in STAGES:
        targets.update(t for t in (stage.docker_target, stage.native_target,
                                   stage.docker_retrain_target, stage.native_retrain_target)
                       if t)
    return targets
