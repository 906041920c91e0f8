import math

import numpy as np
import pytest

from tools.broker.scoring import ScoreWeights, rank, score_arrays, score_one
from tools.errors import InvalidInputError


@pytest.mark.parametrize(
    ("ci", "price", "util", "expected"),
    [
        (250, 50, 0.5, 0.6 * 250 / 500 + 0.3 * 50 / 100 + 0.1 * 0.5),  # 0.3 + 0.15 + 0.05
        (0, 0, 0, 0.0),
        (500, 100, 1, 1.0),
        (63.8, 152.0, 0.25, 0.07656 + 0.456 + 0.025),
        (400, -500, 0, 0.48 - 1.5),  # negative day-ahead prices lower the score
    ],
)
def test_formula_against_hand_computed_values(ci, price, util, expected):
    b = score_one(ci, price, util)
    assert b.score == pytest.approx(expected, abs=1e-12)
    assert b.carbon_term + b.price_term + b.utilization_term == pytest.approx(b.score)


def test_the_example_from_the_spec_is_exactly_one_half():
    assert score_one(250, 50, 0.5).score == 0.5


def test_weights_are_configurable():
    w = ScoreWeights(carbon=1.0, price=0.0, utilization=0.0)
    assert score_one(250, 50, 0.5, w).score == pytest.approx(0.5)
    assert score_one(100, 999, 1.0, w).score == pytest.approx(0.2)


def test_missing_price_is_charged_the_worst_known_price():
    s = score_arrays([100, 100, 100], [40, np.nan, 80], [0, 0, 0])
    assert s.price_imputed.tolist() == [False, True, False]
    assert s.price_used[1] == 80
    assert s.score[1] == pytest.approx(s.score[2])
    assert s.score[0] < s.score[1]


def test_no_price_anywhere_gives_zero_price_terms():
    s = score_arrays([100, 200], [np.nan, np.nan], [0, 0])
    assert s.price_term.tolist() == [0, 0]
    assert s.price_imputed.all()
    b = score_one(250, None, 0.5)
    assert b.price_imputed and b.price_eur_per_mwh is None
    assert b.score == pytest.approx(0.35)


@pytest.mark.parametrize(
    ("ci", "util", "match"),
    [(math.nan, 0.5, "carbon intensity"), (-1, 0.5, "carbon intensity"), (100, 1.5, "utilization")],
)
def test_bad_inputs_name_the_value(ci, util, match):
    with pytest.raises(InvalidInputError, match=match):
        score_one(ci, 10, util)


def test_all_zero_weights_are_refused():
    with pytest.raises(ValueError, match="all zero"):
        ScoreWeights(carbon=0, price=0, utilization=0)


def test_rank_orders_best_first_with_stable_ties():
    scores = np.array([0.5, 0.1, 0.3, 0.1, 0.9])
    assert rank(scores).tolist() == [1, 3, 2, 0, 4]
    assert rank(scores, top_k=3).tolist() == [1, 3, 2]


def test_vectorised_scores_match_single_scores():
    rng = np.random.default_rng(0)
    ci, price, util = rng.uniform(0, 800, 50), rng.uniform(-50, 300, 50), rng.uniform(0, 1, 50)
    s = score_arrays(ci, price, util)
    for i in range(50):
        assert s.score[i] == pytest.approx(score_one(ci[i], price[i], util[i]).score)
