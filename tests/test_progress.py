"""progress.py: what long work says of itself while it runs."""

from __future__ import annotations

from types import SimpleNamespace


def test_the_windowed_estimate_leaves_out_the_first_windows_one_time_costs(monkeypatch, capsys):
    """The first window carries the warm-up: 10 s, then 1 s a window. 2 steps × 3 windows
    take 15 s; at the first window's speed the estimate said 60 s."""
    from livecli import progress

    monkeypatch.setenv("LIVE_QUIET", "0")
    clock = iter([0.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0])
    monkeypatch.setattr(progress, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    with progress.window_bar("editing (DDIM)", 12, 2, 3) as after_window:
        for _ in range(6):
            after_window()
    err = capsys.readouterr().err
    assert "editing: 12 frames × 2 steps, 3 windows a step" in err
    assert "editing: about 15 s in all, at the second window's speed" in err


def test_with_progress_events_bars_and_messages_are_json_lines(monkeypatch, capsys):
    """What `live ui` reads of its worker: a bar's events (at most one each 0.25 s, the last
    always) with the rich bar's ETA, the mean speed so far, and messages; nothing else."""
    import json

    from livecli import progress

    monkeypatch.setenv("LIVE_QUIET", "0")
    monkeypatch.setenv("LIVE_PROGRESS_EVENTS", "1")
    clock = iter([0.0, 0.0, 1.0, 1.1, 2.0, 3.0])
    monkeypatch.setattr(progress, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    with progress.bar("training", total=4) as advance:
        progress.say("train: loading tiny")
        for _ in range(4):
            advance()
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert lines == [
        {"bar": "training", "completed": 0, "total": 4, "elapsed": 0.0, "eta": None},
        {"message": "train: loading tiny"},
        {"bar": "training", "completed": 1, "total": 4, "elapsed": 1.0, "eta": 3.0},
        {"bar": "training", "completed": 3, "total": 4, "elapsed": 2.0, "eta": 0.67},  # the 2nd, at 1.1 s: too soon
        {"bar": "training", "completed": 4, "total": 4, "elapsed": 3.0, "eta": 0.0},  # the last, whatever the time
    ]
