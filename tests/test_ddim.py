"""ddim.py: DDIM inversion and sampling, exact to first order with an exact denoiser."""

from __future__ import annotations

import torch

from edits import relative_error, scheduler_config
from livecli import ddim


def test_ddim_inversion_is_exact_to_first_order_with_an_exact_denoiser():
    """For Gaussian data the optimal ε is known in closed form; with it, plain DDIM
    inversion then sampling reconstructs to 3 % at 50 steps, and the error halves each
    time the steps double (a first-order method)."""
    generator = torch.Generator().manual_seed(0)
    mean, spread = torch.randn(1, 8, 4, 8, 8, generator=generator), 0.5
    clean = mean + spread * torch.randn(1, 8, 4, 8, 8, generator=generator)
    errors = {}
    for steps in (25, 50, 100):
        schedule = ddim.ddim_schedule(scheduler_config(), steps)
        alpha_of = dict(zip(schedule.timesteps, schedule.alphas, strict=False))

        def exact(latents, timestep, index, alpha_of=alpha_of):
            alpha = alpha_of[timestep]
            return (1 - alpha) ** 0.5 * (latents - alpha**0.5 * mean) / (alpha * spread**2 + 1 - alpha)

        trajectory = ddim.invert(exact, clean, schedule)
        assert torch.equal(trajectory[-1], clean) and len(trajectory) == steps + 1
        errors[steps] = relative_error(ddim.sample(exact, trajectory[0], schedule), clean)
    assert errors[50] < 0.04
    assert 1.7 < errors[25] / errors[50] < 2.3 and 1.7 < errors[50] / errors[100] < 2.3
