"""Simulated labelled batches with a controlled kind and amount of drift, for demos and tests.

Every row is a real applicant from the data set, resampled, with `amount` and `age` jittered
slightly so that no row repeats an existing one; nothing here is new real-world data. Kinds:

- `none`: a plain random sample (no drift).
- `covariate`: applicants with longer, larger credits are over-sampled (`amount` 0-1 sets how
  strongly), shifting `duration` and `amount` while the label mechanism stays the same.
- `label`: the share of bad credits rises from 30 % by `amount` x 30 points.
- `new_category`: a share `amount` of rows get a `purpose` label the schema does not know;
  such a batch fails validation and is quarantined.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.schema import POSITIVE_LABEL, TARGET, column

KINDS = ("none", "covariate", "label", "new_category")
UNKNOWN_PURPOSE = "cryptocurrency"


def simulate_batch(frame: pd.DataFrame, kind: str, amount: float, rows: int, seed: int
                   ) -> pd.DataFrame:
    """Draw `rows` labelled rows from `frame` with the requested drift."""
    if kind not in KINDS:
        raise ValueError(f"unknown drift kind {kind!r}; choose one of {', '.join(KINDS)}")
    if not 0.0 <= amount <= 1.0:
        raise ValueError(f"drift amount must be between 0 and 1, not {amount}")
    generator = np.random.default_rng(seed)
    if kind == "covariate":
        size = (frame["duration"].rank(pct=True) + frame["amount"].rank(pct=True)).to_numpy()
        weights = np.exp(8.0 * amount * size)  # amount 1: the largest credits ~e^16 likelier
        picked = generator.choice(len(frame), size=rows, replace=True, p=weights / weights.sum())
        return jitter(frame.iloc[picked], generator)
    if kind == "label":
        bad_share = min(0.3 + 0.3 * amount, 1.0)
        bad = frame[frame[TARGET] == POSITIVE_LABEL]
        good = frame[frame[TARGET] != POSITIVE_LABEL]
        n_bad = int(round(rows * bad_share))
        parts = [bad.iloc[generator.choice(len(bad), n_bad, replace=True)],
                 good.iloc[generator.choice(len(good), rows - n_bad, replace=True)]]
        return jitter(pd.concat(parts).sample(frac=1.0, random_state=seed), generator)
    batch = jitter(frame.iloc[generator.choice(len(frame), size=rows, replace=True)], generator)
    if kind == "new_category":
        changed = generator.random(rows) < amount
        batch.loc[changed, "purpose"] = UNKNOWN_PURPOSE
    return batch


def jitter(rows: pd.DataFrame, generator: np.random.Generator) -> pd.DataFrame:
    """Perturb amount (+/-10 %) and age (+/-2 years) within the schema's bounds, so that
    resampled applicants are new rows rather than duplicates."""
    result = rows.reset_index(drop=True).copy()
    factor = generator.uniform(0.9, 1.1, len(result))
    result["amount"] = (result["amount"].astype(float) * factor).round().astype("int64")
    result["age"] = result["age"].astype("int64") + generator.integers(-2, 3, len(result))
    for name in ("amount", "age"):
        spec = column(name)
        result[name] = result[name].clip(spec.minimum, spec.maximum)
    return result
