"""Temperature-scaled sampling: p ∝ n^τ, phases of (τ, language set), shares, and an exact resume."""

from __future__ import annotations

import math

import pytest

from encoder_recipes.data.temperature import (
    TemperaturePhase,
    TemperatureSampler,
    TemperatureSchedule,
    temperature_probabilities,
)

# Sizes of very different orders, as languages are (tokens; only ratios matter).
SIZES = {"en": 1e12, "ja": 1e11, "fi": 1e10, "zh": 1e11, "fo": 1e7}


def test_probabilities_follow_size_to_the_power_tau():
    p = temperature_probabilities({"a": 100.0, "b": 1.0}, 0.7)
    assert p["a"] == pytest.approx(100**0.7 / (100**0.7 + 1))
    assert p["b"] == pytest.approx(1 / (100**0.7 + 1))


def test_tau_one_is_proportional_and_tau_zero_uniform():
    prop = temperature_probabilities(SIZES, 1.0)
    total = sum(SIZES.values())
    assert prop == pytest.approx({k: v / total for k, v in SIZES.items()})
    assert temperature_probabilities(SIZES, 0.0) == pytest.approx({k: 0.2 for k in SIZES})


def test_lower_tau_moves_weight_to_the_small_languages():
    # mmBERT's annealing 0.7 -> 0.5 -> 0.3 (arXiv 2509.06888): each step flattens the distribution
    shares = [temperature_probabilities(SIZES, tau) for tau in (0.7, 0.5, 0.3)]
    assert shares[0]["en"] > shares[1]["en"] > shares[2]["en"]
    assert shares[0]["fo"] < shares[1]["fo"] < shares[2]["fo"]


def test_languages_outside_the_set_get_zero():
    p = temperature_probabilities(SIZES, 0.5, ["en", "ja"])
    assert p["fi"] == p["zh"] == p["fo"] == 0.0
    assert p["en"] + p["ja"] == pytest.approx(1.0)
    assert p["en"] / p["ja"] == pytest.approx(10**0.5)


def test_huge_sizes_do_not_overflow():
    p = temperature_probabilities({"a": 1e300, "b": 1e299}, 5.0)
    assert p["a"] / p["b"] == pytest.approx(1e5)


@pytest.mark.parametrize(
    ("sizes", "tau", "languages", "message"),
    [
        (SIZES, -0.1, None, "tau"),
        (SIZES, math.inf, None, "tau"),
        (SIZES, 0.5, ["en", "xx"], "no size"),
        (SIZES, 0.5, [], "empty"),
        ({"a": 0.0, "b": 1.0}, 0.5, None, "> 0"),
    ],
)
def test_probabilities_refuse_bad_input(sizes, tau, languages, message):
    with pytest.raises(ValueError, match=message):
        temperature_probabilities(sizes, tau, languages)


def mmbert_like() -> TemperatureSchedule:
    """Three phases as mmBERT's, in miniature: τ falls while the language set grows."""
    return TemperatureSchedule(SIZES, [
        TemperaturePhase(0, 0.7, ("en", "ja")),
        TemperaturePhase(100, 0.5, ("en", "ja", "zh", "fi")),
        TemperaturePhase(150, 0.3, None),
    ])


def test_schedule_picks_the_phase_of_each_step():
    schedule = mmbert_like()
    assert [schedule.phase_at(s).tau for s in (0, 99, 100, 149, 150, 10**9)] == [0.7, 0.7, 0.5, 0.5, 0.3, 0.3]
    assert schedule.probabilities(0)["zh"] == 0.0
    assert schedule.probabilities(120)["zh"] > 0.0 and schedule.probabilities(120)["fo"] == 0.0
    assert schedule.probabilities(150) == pytest.approx(temperature_probabilities(SIZES, 0.3))


@pytest.mark.parametrize(
    ("phases", "message"),
    [
        ([], "at least one"),
        ([TemperaturePhase(5, 0.7)], "step 0"),
        ([TemperaturePhase(0, 0.7), TemperaturePhase(10, 0.5), TemperaturePhase(10, 0.3)], "increase"),
        ([TemperaturePhase(0, 0.7), TemperaturePhase(10, 0.5, ("xx",))], "no size"),
    ],
)
def test_schedule_refuses_bad_phases_at_construction(phases, message):
    with pytest.raises(ValueError, match=message):
        TemperatureSchedule(SIZES, phases)


def test_sampler_shares_match_the_schedule():
    schedule = TemperatureSchedule(SIZES, [TemperaturePhase(0, 0.3)])
    sampler = TemperatureSampler(schedule, seed=0)
    n = 40_000
    for _ in range(n):
        sampler.draw(0)
    expected = schedule.probabilities(0)
    # binomial standard error is at most 0.0025 at n = 40k: 0.01 is four of them
    for name, share in sampler.shares().items():
        assert share == pytest.approx(expected[name], abs=0.01), name


def test_sampler_draws_only_the_current_language_set():
    sampler = TemperatureSampler(mmbert_like(), seed=3)
    first = {sampler.draw(step) for step in range(100) for _ in range(20)}
    assert first == {"en", "ja"}
    second = {sampler.draw(step) for step in range(100, 150) for _ in range(40)}
    assert second <= {"en", "ja", "zh", "fi"} and {"zh", "fi"} <= second
    third = {sampler.draw(150) for _ in range(5000)}
    assert "fo" in third


def draws(sampler: TemperatureSampler, steps: range, per_step: int) -> list[str]:
    return [sampler.draw(step) for step in steps for _ in range(per_step)]


def test_sampler_resumes_exactly_across_a_phase_change():
    uninterrupted = TemperatureSampler(mmbert_like(), seed=11)
    expected = draws(uninterrupted, range(0, 200), 7)

    first = TemperatureSampler(mmbert_like(), seed=11)
    head = draws(first, range(0, 97), 7)
    state = first.state_dict()
    resumed = TemperatureSampler(mmbert_like(), seed=999)  # the seed comes back from the state
    resumed.load_state_dict(state)
    tail = draws(resumed, range(97, 200), 7)

    assert head + tail == expected
    assert resumed.drawn == uninterrupted.drawn


def test_same_seed_same_draws_other_seed_other_draws():
    a = draws(TemperatureSampler(mmbert_like(), seed=1), range(160), 3)
    b = draws(TemperatureSampler(mmbert_like(), seed=1), range(160), 3)
    c = draws(TemperatureSampler(mmbert_like(), seed=2), range(160), 3)
    assert a == b and a != c


def test_state_with_unknown_sources_is_refused():
    sampler = TemperatureSampler(mmbert_like(), seed=0)
    state = sampler.state_dict()
    state["drawn"]["xx"] = 3
    with pytest.raises(ValueError, match="xx"):
        TemperatureSampler(mmbert_like(), seed=0).load_state_dict(state)
