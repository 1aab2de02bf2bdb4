"""resources.py: the memory a stage will need, estimated before it runs."""

from __future__ import annotations


def test_estimated_training_memory_orders_the_modes():
    from livecli import resources

    needed = resources.training_bytes(frames=9, positions=32 * 32, channels=320, element=4, trainable=74_000_000)
    assert needed["off"] > needed["on"] > needed["all"] > 74_000_000 * 12
    # SD at 256 px, 8 frames + latent prompt: ~5.9 GB of activations, as measured
    assert 5.2 < (needed["off"] - 74_000_000 * 12) / resources.GB < 6.0  # GiB
