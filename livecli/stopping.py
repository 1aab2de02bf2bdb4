"""`--steps auto`: when training stops, and which step it keeps.

Every `every` steps the trainer's fixed-draw loss (`LiveTrainer.evaluate`: both objectives
at timesteps spread over the schedule, with noise of its own, so free of the per-step
sampling noise) is observed. Training stops once `patience` observations in a row have not
beaten the best loss before them by `min_gain` (relative), or at `max_steps`; the step kept
is the trained one with the lowest loss observed: step 0 (the untrained weights) is
observed as where the rule starts from, never kept, since `--steps auto` is asked to train.
"""

from __future__ import annotations

from dataclasses import dataclass, field

AUTO = "auto"
"""`--steps auto`."""


@dataclass
class EarlyStopping:
    every: int = 50
    patience: int = 3
    min_gain: float = 0.01
    max_steps: int = 1000
    history: list[tuple[int, float]] = field(default_factory=list)
    """(step, fixed-draw loss) of each observation, in order."""

    def due(self, step: int) -> bool:
        return step % self.every == 0

    def observe(self, step: int, loss: float) -> bool:
        """Note the loss at `step`; True when it is the lowest of a trained step so far (the step to keep)."""
        trained = [seen for seen in self.history if seen[0] > 0]
        new_best = step > 0 and (not trained or loss < self.best[1])
        self.history.append((step, float(loss)))
        return new_best

    @property
    def best(self) -> tuple[int, float]:
        """(step, loss) of the lowest loss observed at a trained step, the earliest of equals
        (step 0's before any step is observed)."""
        trained = [seen for seen in self.history if seen[0] > 0]
        return min(trained or self.history, key=lambda item: item[1])

    def done(self, step: int) -> bool:
        """Whether to stop after `step`: the cap is reached, or the last `patience`
        observations gained less than `min_gain` on the best before them."""
        if step >= self.max_steps:
            return True
        if len(self.history) <= self.patience:
            return False
        before = min(loss for _, loss in self.history[: -self.patience])
        recent = min(loss for _, loss in self.history[-self.patience :])
        return recent > before * (1 - self.min_gain)

    def state(self) -> dict:
        """What a checkpoint keeps to resume the rule."""
        return {"steps": [step for step, _ in self.history], "losses": [loss for _, loss in self.history]}

    def resume(self, state: dict) -> None:
        self.history = [(int(step), float(loss)) for step, loss in zip(state["steps"], state["losses"], strict=True)]

    def facts(self) -> dict:
        """What the record says of the rule and of where it stopped."""
        return {
            "every": self.every,
            "patience": self.patience,
            "min_gain": self.min_gain,
            "max_steps": self.max_steps,
            "kept_step": self.best[0],
            "stopped_at": self.history[-1][0] if self.history else 0,
            "observed_steps": [step for step, _ in self.history],
            "observed_losses": [round(loss, 6) for _, loss in self.history],
        }
