"""The inflated video UNet: the 2D output for identical frames, causal frame attention with the latent
prompt, zero-initialised temporal attention and the trainable set, each against an independent computation."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from diffusers.models.attention import BasicTransformerBlock

from helpers import count_checkpointed_calls
from livecli.models.attention import FrameAttnProcessor, VideoLayout, gather_key_frames, key_frames
from livecli.models.video_unet import VideoTransformerBlock, inflate, trainable_names

T = 400


@pytest.fixture(scope="module")
def unets(tiny_sd):
    """(the 2D UNet, a freshly inflated copy), both fp32 and in eval mode."""
    unet2d = copy.deepcopy(tiny_sd.unet).eval().float()
    torch.manual_seed(0)
    return unet2d, inflate(copy.deepcopy(unet2d)).eval()


@pytest.fixture(scope="module")
def text():
    return torch.randn(1, 77, 32, generator=torch.Generator().manual_seed(1))


def test_identical_frames_give_the_2d_output(unets, text):
    """(a) The same latent as latent prompt and every frame -> the 2D UNet's output on each frame."""
    unet2d, video = unets
    z = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        expected = unet2d(z, T, encoder_hidden_states=text).sample[0]
        out = video(z.unsqueeze(1).expand(1, 6, -1, -1, -1), T, text)
    assert out.shape == (1, 6, 4, 8, 8)
    for frame in range(6):
        assert (out[0, frame] - expected).abs().max() <= 1e-5


def test_temporal_attention_is_zero_initialised_but_present(unets):
    unet2d, video = unets
    blocks = [m for m in video.modules() if isinstance(m, VideoTransformerBlock)]
    assert len(blocks) == sum(isinstance(m, BasicTransformerBlock) for m in unet2d.modules()) == 7
    for block in blocks:
        out = block.temporal.attn.to_out[0]
        assert torch.count_nonzero(out.weight) == 0 and torch.count_nonzero(out.bias) == 0
        assert torch.count_nonzero(block.temporal.attn.to_q.weight) > 0


def test_frames_are_causal_and_all_see_the_latent_prompt(unets, text):
    """(b) Changing frame k changes no earlier frame; changing the latent prompt changes all."""
    _, video = unets
    x = torch.randn(1, 6, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        base = video(x, T, text)
        for k in range(1, 6):
            changed = x.clone()
            changed[:, k] += torch.randn(4, 8, 8)
            out = video(changed, T, text)
            for i in range(k):
                assert torch.equal(out[:, i], base[:, i]), f"frame {k} changed frame {i}"
            assert not torch.allclose(out[:, k], base[:, k])
        prompt_changed = x.clone()
        prompt_changed[:, 0] += 1.0
        out = video(prompt_changed, T, text)
    for i in range(1, 6):
        assert (out[:, i] - base[:, i]).abs().max() > 1e-4, f"frame {i} ignores the latent prompt"


def test_frame_attention_equals_a_hand_written_softmax(unets):
    """(c) One layer's frame attention = softmax(QK^T/sqrt(d))V over [z_lp, z_1, z_{i-1}]'s tokens."""
    _, video = unets
    attn = video.unet.down_blocks[0].attentions[0].transformer_blocks[0].block.attn1
    assert isinstance(attn.processor, FrameAttnProcessor)
    frames, tokens, channels = 5, 16, attn.query_dim
    hidden = torch.randn(2 * frames, tokens, channels, generator=torch.Generator().manual_seed(4))
    with torch.inference_mode():
        out = attn(hidden, video=VideoLayout(frames))

        heads, d = attn.heads, attn.inner_dim // attn.heads
        q, k, v = attn.to_q(hidden), attn.to_k(hidden), attn.to_v(hidden)
        expected = torch.empty_like(out)
        for b in range(2):
            for i in range(frames):
                sources = [0, 0, 0] if i == 0 else [0, 1, max(i - 1, 1)]
                row = b * frames + i
                keys = torch.cat([k[b * frames + s] for s in sources])  # [3·tokens, inner]
                values = torch.cat([v[b * frames + s] for s in sources])
                per_head = []
                for h in range(heads):
                    cols = slice(h * d, (h + 1) * d)
                    weights = torch.softmax(q[row, :, cols] @ keys[:, cols].T / math.sqrt(d), dim=-1)
                    per_head.append(weights @ values[:, cols])
                expected[row] = attn.to_out[0](torch.cat(per_head, dim=-1))
    assert (out - expected).abs().max() <= 1e-5


def test_key_frames_index():
    assert key_frames(1) == [(0, 0, 0)]
    assert key_frames(4) == [(0, 0, 0), (0, 1, 1), (0, 1, 1), (0, 1, 2)]


@pytest.mark.parametrize("frames", [1, 2, 3, 6])
def test_key_frame_gather_matches_the_index(frames):
    videos = torch.randn(2, frames, 5, 3)
    expected = torch.stack(
        [torch.cat([videos[:, a], videos[:, b], videos[:, c]], dim=1) for a, b, c in key_frames(frames)], dim=1
    )
    assert torch.equal(gather_key_frames(videos), expected)


def test_temporal_attention_switches_off_per_call(unets, text):
    """Trained temporal attention changes the output; `temporal=False` bypasses it entirely."""
    _, fresh = unets
    video = copy.deepcopy(fresh)
    for block in (m for m in video.modules() if isinstance(m, VideoTransformerBlock)):
        torch.nn.init.normal_(block.temporal.attn.to_out[0].weight, std=0.2)
    x = torch.randn(1, 4, 4, 8, 8, generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        on, off, reference = video(x, T, text), video(x, T, text, temporal=False), fresh(x, T, text, temporal=False)
    assert torch.equal(off, reference)
    assert (on - off).abs().max() > 1e-4


def test_gradient_checkpointing_gives_the_same_gradients(unets, text, monkeypatch):
    _, fresh = unets
    checkpointed = count_checkpointed_calls(monkeypatch)
    grads, calls = [], []
    for checkpointing in (False, True):
        video = copy.deepcopy(fresh).train()
        if checkpointing:
            video.unet.enable_gradient_checkpointing()
        names = trainable_names(video)
        params = dict(video.unet.named_parameters())
        for name in names:
            params[name].requires_grad_(True)
        x = torch.randn(1, 4, 4, 8, 8, generator=torch.Generator().manual_seed(6))
        video(x, T, text).square().mean().backward()
        grads.append([params[name].grad.clone() for name in names])
        calls.append(len(checkpointed))
    assert calls[0] == 0 and calls[1] > 0  # checkpointing ran, and only when enabled
    for a, b in zip(*grads, strict=False):
        assert torch.allclose(a, b, atol=1e-6)


def test_trainable_set_is_tune_a_video_s(unets):
    _, video = unets
    names = trainable_names(video)
    assert names and all(".attn1.to_q." in n or ".attn2.to_q." in n or ".temporal.attn." in n for n in names)
    assert any(".attn2.to_q." in n for n in names) and any(".temporal.attn.to_out." in n for n in names)
    assert not any("to_k" in n and ".temporal." not in n for n in names)


@pytest.mark.parametrize("frames", [1, 2, 5])
def test_without_a_latent_prompt_each_frame_sees_the_first_and_previous(frames):
    videos = torch.randn(2, frames, 5, 3)
    expected = torch.stack([torch.cat([videos[:, 0], videos[:, max(i - 1, 0)]], dim=1) for i in range(frames)], dim=1)
    assert torch.equal(gather_key_frames(videos, prompt=False), expected)


def test_without_a_latent_prompt_frames_stay_causal_and_frame_one_leads(unets, text):
    """Tune-A-Video's sparse-causal attention: frame k changes no earlier frame; frame 1 changes all."""
    _, video = unets
    x = torch.randn(1, 5, 4, 8, 8, generator=torch.Generator().manual_seed(6))
    with torch.inference_mode():
        base = video(x, T, text, prompt=False)
        for k in range(5):
            changed = x.clone()
            changed[:, k] += torch.randn(4, 8, 8, generator=torch.Generator().manual_seed(k))
            out = video(changed, T, text, prompt=False)
            assert all(torch.equal(out[:, i], base[:, i]) for i in range(k))
            assert all((out[:, i] - base[:, i]).abs().max() > 1e-5 for i in range(k, 5) if k == 0 or i == k)
        single = video(x[:, :1], T, text, prompt=False)
    assert base.shape == x.shape
    # Frame 1 attends to itself only; a 1- and a 5-frame batch differ by float32 rounding
    # (1.3–1.5e-6 seen, depending on threads), so the fp32 tolerances of assert_close.
    torch.testing.assert_close(single[0, 0], base[0, 0], rtol=1.3e-6, atol=1e-5)


def test_compiled_blocks_give_the_eager_output(text):
    """`--compile`: the ResNet and feed-forward blocks under torch.compile (inductor on the
    CPU) give the eager UNet's output to float error (fusion reorders sums: ~1e-6). On a
    UNet of one level, whose blocks share few shapes, so that inductor compiles a few
    graphs (seconds) instead of one for each shape of the tiny UNet's three levels (a minute)."""
    import shutil

    from diffusers import UNet2DConditionModel

    from livecli.models.video_unet import compile_blocks

    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("torch.compile on the CPU needs a C compiler")
    torch.manual_seed(0)
    video = inflate(
        UNet2DConditionModel(
            sample_size=8,
            in_channels=4,
            out_channels=4,
            down_block_types=("CrossAttnDownBlock2D",),
            up_block_types=("CrossAttnUpBlock2D",),
            block_out_channels=(32,),
            layers_per_block=1,
            norm_num_groups=8,
            cross_attention_dim=text.shape[-1],
            attention_head_dim=8,
        )
    ).eval()
    compiled = copy.deepcopy(video)
    assert compile_blocks(compiled) == sum(
        type(m).__name__ in ("ResnetBlock2D", "FeedForward") for m in video.modules()
    )
    x = torch.randn(1, 5, 4, 8, 8, generator=torch.Generator().manual_seed(9))
    with torch.inference_mode():
        expected, out = video(x, T, text), compiled(x, T, text)
    assert not torch.equal(expected, torch.zeros_like(expected))
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)


def test_checkpointing_on_covers_the_two_highest_resolutions(tiny_sd):
    import copy

    from livecli.models.video_unet import enable_checkpointing, inflate

    video = inflate(copy.deepcopy(tiny_sd.unet))
    enable_checkpointing(video)
    flags = {
        name: module.gradient_checkpointing
        for name, module in video.unet.named_modules()
        if name in ("mid_block", *(f"{kind}.{i}" for kind in ("down_blocks", "up_blocks") for i in range(8)))
    }
    ups = len(video.unet.up_blocks)
    assert {name for name, on in flags.items() if on} == {
        "down_blocks.0", "down_blocks.1", f"up_blocks.{ups - 2}", f"up_blocks.{ups - 1}"
    }  # fmt: skip
    assert flags["mid_block"] is False
    enable_checkpointing(video, everywhere=True)
    assert all(m.gradient_checkpointing for n, m in video.unet.named_modules() if hasattr(m, "gradient_checkpointing"))
