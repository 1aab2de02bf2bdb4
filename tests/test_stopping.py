"""`--steps auto`'s rule: when it stops and which step it keeps."""

from __future__ import annotations

from livecli.stopping import EarlyStopping


def run(losses: list[float], **rule) -> EarlyStopping:
    """Observe `losses` at steps 0, every, 2·every, … until the rule says stop."""
    stopping = EarlyStopping(**rule)
    for k, loss in enumerate(losses):
        step = k * stopping.every
        stopping.observe(step, loss)
        if step and stopping.done(step):
            break
    return stopping


def test_it_stops_after_patience_observations_without_a_real_gain_and_keeps_the_lowest():
    stopping = run([1.0, 0.8, 0.6, 0.5, 0.52, 0.499, 0.51, 0.3], every=10, patience=3, min_gain=0.01)
    assert stopping.history[-1][0] == 60  # 0.52, 0.499, 0.51 after 0.5: 0.2 % is no gain; 0.3 is never seen
    assert stopping.best == (50, 0.499)  # the lowest kept, though below the 1 % gain
    facts = stopping.facts()
    assert (
        facts["kept_step"] == 50
        and facts["stopped_at"] == 60
        and facts["observed_steps"] == [0, 10, 20, 30, 40, 50, 60]
    )


def test_it_goes_on_while_the_loss_falls_and_stops_at_the_cap():
    stopping = run([1.0 / (k + 1) for k in range(100)], every=50, max_steps=300)
    assert stopping.history[-1][0] == 300 and stopping.best[0] == 300


def test_a_rise_then_a_real_fall_resets_the_patience():
    stopping = run([1.0, 1.2, 1.1, 0.9, 1.0, 1.0, 1.0], every=1, patience=3, min_gain=0.05)
    assert stopping.history[-1][0] == 6 and stopping.best == (3, 0.9)


def test_observe_says_when_a_step_is_the_best_and_equals_keep_the_earliest():
    stopping = EarlyStopping()
    assert not stopping.observe(0, 1.0)  # the untrained weights: where the rule starts, never kept
    assert stopping.observe(50, 1.0) and not stopping.observe(100, 1.0) and stopping.observe(150, 0.5)
    assert stopping.best == (150, 0.5)


def test_step_0_is_never_kept_even_when_training_only_made_the_loss_worse():
    stopping = run([1.0, 1.3, 1.2, 1.25, 1.4], every=50, patience=3)
    assert stopping.history[-1][0] == 150 and stopping.best == (100, 1.2)
    assert stopping.facts()["kept_step"] == 100


def test_its_state_resumes_the_same_rule():
    first = run([1.0, 0.7, 0.697], every=10, patience=2)
    again = EarlyStopping(every=10, patience=2)
    again.resume(first.state())
    assert again.history == first.history and again.done(20) == first.done(20) is False
    again.observe(30, 0.699)
    assert again.done(30)  # 0.697 and 0.699 gained less than 1 % on 0.7
