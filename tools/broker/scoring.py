"""Score compute nodes: `0.6·CI/500 + 0.3·price/100 + 0.1·utilization`, lower is better.

CI is in gCO2/kWh, price in €/MWh (day-ahead, may be negative), utilisation in [0, 1]. Weights are
configurable; the normalisers (500 g/kWh, 100 €/MWh) are fixed so scores stay comparable over time.

Missing price rule: a candidate without a price is charged the highest known price among the
candidates it is ranked with, so hiding a price can never win on price; when no candidate has a
price, the price term is 0 for all of them and the ranking rests on carbon and utilisation. Either
way the breakdown says `price_imputed=True`. A missing carbon intensity is not imputed: such a node
cannot be scored (the broker rejects it with that reason).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tools.errors import InvalidInputError

CI_NORM_G_PER_KWH = 500.0
PRICE_NORM_EUR_PER_MWH = 100.0
SCORE_DECIMALS = 12

FloatArray = npt.NDArray[np.float64]


class ScoreWeights(BaseModel):
    """Weights of the three score terms; non-negative, at least one positive."""

    model_config = ConfigDict(frozen=True)

    carbon: float = Field(0.6, ge=0)
    price: float = Field(0.3, ge=0)
    utilization: float = Field(0.1, ge=0)

    @model_validator(mode="after")
    def _not_all_zero(self) -> ScoreWeights:
        if self.carbon + self.price + self.utilization <= 0:
            raise ValueError("score weights are all zero; give at least one a positive weight")
        return self


DEFAULT_WEIGHTS = ScoreWeights()


class ScoreBreakdown(BaseModel):
    """One candidate's score and how it was made."""

    score: float
    carbon_term: float
    price_term: float
    utilization_term: float
    carbon_intensity: float
    """gCO2/kWh used."""
    price_eur_per_mwh: float | None
    """€/MWh used (the imputed value when `price_imputed`); None when no price was known at all."""
    price_imputed: bool
    utilization: float


@dataclass(frozen=True)
class ScoreArrays:
    """Vectorised scores and terms for many candidates (index-aligned with the inputs)."""

    score: FloatArray
    carbon_term: FloatArray
    price_term: FloatArray
    utilization_term: FloatArray
    price_used: FloatArray
    """Price each candidate was charged (NaN when no candidate had a price)."""
    price_imputed: npt.NDArray[np.bool_]

    def breakdown(self, i: int, ci: FloatArray, utilization: FloatArray) -> ScoreBreakdown:
        """Return candidate `i` as a `ScoreBreakdown`."""
        price = float(self.price_used[i])
        # Round away binary noise (0.3 + 0.15 + 0.05 is 0.49999999999999994 in floats) so exact
        # inputs report exact scores; 12 decimals is far below any difference that matters.
        return ScoreBreakdown(
            score=round(float(self.score[i]), SCORE_DECIMALS),
            carbon_term=round(float(self.carbon_term[i]), SCORE_DECIMALS),
            price_term=round(float(self.price_term[i]), SCORE_DECIMALS),
            utilization_term=round(float(self.utilization_term[i]), SCORE_DECIMALS),
            carbon_intensity=float(ci[i]),
            price_eur_per_mwh=None if np.isnan(price) else price,
            price_imputed=bool(self.price_imputed[i]),
            utilization=float(utilization[i]),
        )


def _as_array(name: str, values: npt.ArrayLike) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise InvalidInputError(f"{name} must be a 1-D sequence, got shape {arr.shape!r}")
    return arr


def score_arrays(
    carbon_intensity: npt.ArrayLike,
    price_eur_per_mwh: npt.ArrayLike,
    utilization: npt.ArrayLike,
    weights: ScoreWeights = DEFAULT_WEIGHTS,
) -> ScoreArrays:
    """Score many candidates at once; NaN prices follow the module's missing-price rule.

    Raises:
        InvalidInputError: A carbon intensity is missing or negative, a utilisation is outside
            [0, 1], or the arrays differ in length.
    """
    ci = _as_array("carbon_intensity", carbon_intensity)
    price = _as_array("price_eur_per_mwh", price_eur_per_mwh)
    util = _as_array("utilization", utilization)
    if not (ci.shape == price.shape == util.shape):
        raise InvalidInputError(
            f"arrays differ in length: carbon {ci.shape}, price {price.shape}, util {util.shape}"
        )
    if ci.size and (np.isnan(ci).any() or ci.min() < 0):
        bad = float(ci[np.isnan(ci) | (ci < 0)][0])
        raise InvalidInputError(f"carbon intensity {bad!r} g/kWh: give a value >= 0")
    if util.size and (np.isnan(util).any() or util.min() < 0 or util.max() > 1):
        bad = float(util[np.isnan(util) | (util < 0) | (util > 1)][0])
        raise InvalidInputError(f"utilization {bad!r}: give a fraction between 0 and 1")

    missing = np.isnan(price)
    if missing.any():
        known = price[~missing]
        fill = known.max() if known.size else np.nan
        price_used = np.where(missing, fill, price)
    else:
        price_used = price
    carbon_term = (weights.carbon / CI_NORM_G_PER_KWH) * ci
    price_term = (weights.price / PRICE_NORM_EUR_PER_MWH) * price_used
    if missing.all() and price.size:
        price_term = np.zeros_like(ci)
    util_term = weights.utilization * util
    return ScoreArrays(
        score=carbon_term + price_term + util_term,
        carbon_term=carbon_term,
        price_term=price_term,
        utilization_term=util_term,
        price_used=price_used,
        price_imputed=missing,
    )


def score_one(
    carbon_intensity: float,
    price_eur_per_mwh: float | None,
    utilization: float,
    weights: ScoreWeights = DEFAULT_WEIGHTS,
) -> ScoreBreakdown:
    """Score a single candidate (a missing price gives a zero price term, flagged imputed)."""
    ci = np.array([carbon_intensity], dtype=np.float64)
    util = np.array([utilization], dtype=np.float64)
    price = np.array([np.nan if price_eur_per_mwh is None else price_eur_per_mwh])
    return score_arrays(ci, price, util, weights).breakdown(0, ci, util)


def rank(scores: FloatArray, top_k: int | None = None) -> npt.NDArray[np.intp]:
    """Return candidate indices best first (ties by input order); only the best `top_k` if given."""
    n = scores.shape[0]
    if top_k is None or top_k >= n:
        return np.argsort(scores, kind="stable")
    if top_k <= 0:
        raise InvalidInputError(f"top_k {top_k!r}: ask for at least 1 candidate")
    part = np.argpartition(scores, top_k - 1)[:top_k]
    # Stable order among the kept ones: sort by (score, index).
    best: npt.NDArray[np.intp] = part[np.lexsort((part, scores[part]))]
    return best
