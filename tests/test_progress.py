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
