"""Diffusers weights under the original CompVis LDM names of a single-file SD checkpoint.

Written from the layout of the original `ldm` modules, independently of diffusers'
(LDM -> diffusers) converter, so that loading a file written here through
`from_single_file` checks the round trip.
"""

from __future__ import annotations

import re

import torch


def ldm_vae_state_dict(vae) -> dict[str, torch.Tensor]:
    """The VAE's weights under the original (CompVis LDM) names of an SD checkpoint.

    Written from the layout of the original `ldm.modules.diffusionmodules.model` Encoder and
    Decoder: `down.i.block.j`, `up.(n-1-i).block.j`, `mid.block_1/2`, `mid.attn_1` with
    1×1-convolution q/k/v/proj_out, `nin_shortcut`, `norm_out`.
    """
    blocks = len(vae.config.block_out_channels)
    renames = [
        (r"encoder\.down_blocks\.(\d+)\.resnets\.", lambda m: f"encoder.down.{m[1]}.block."),
        (r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.", lambda m: f"encoder.down.{m[1]}.downsample."),
        (r"decoder\.up_blocks\.(\d+)\.resnets\.", lambda m: f"decoder.up.{blocks - 1 - int(m[1])}.block."),
        (r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.", lambda m: f"decoder.up.{blocks - 1 - int(m[1])}.upsample."),
        (r"mid_block\.resnets\.(\d+)\.", lambda m: f"mid.block_{int(m[1]) + 1}."),
        (r"mid_block\.attentions\.0\.", lambda m: "mid.attn_1."),
        (r"conv_shortcut", lambda m: "nin_shortcut"),
        (r"conv_norm_out", lambda m: "norm_out"),
        (r"attn_1\.group_norm", lambda m: "attn_1.norm"),
        (r"attn_1\.to_(q|k|v)\.", lambda m: f"attn_1.{m[1]}."),
        (r"attn_1\.to_out\.0\.", lambda m: "attn_1.proj_out."),
    ]
    converted = {}
    for key, value in vae.state_dict().items():
        for pattern, replace in renames:
            key = re.sub(pattern, replace, key)
        if re.search(r"attn_1\.(q|k|v|proj_out)\.weight$", key):
            value = value[:, :, None, None]
        converted["first_stage_model." + key] = value.contiguous()
    return converted


def ldm_unet_state_dict(unet) -> dict[str, torch.Tensor]:
    """The UNet under `model.diffusion_model.`: `input_blocks.n.{0 resnet, 1 attention}`,
    `middle_block.{0,1,2}`, `output_blocks.n.{0, 1, 2}`, `time_embed`, `out`; resnets with
    `in_layers`/`emb_layers`/`out_layers`/`skip_connection`."""
    per_level = unet.config.layers_per_block + 1  # resnets and a down/upsampler per level
    renames = [
        (r"^time_embedding\.linear_(\d)\.", lambda m: f"time_embed.{2 * (int(m[1]) - 1)}."),
        (r"^conv_in\.", lambda m: "input_blocks.0.0."),
        (r"^conv_norm_out\.", lambda m: "out.0."),
        (r"^conv_out\.", lambda m: "out.2."),
        (
            r"^down_blocks\.(\d+)\.resnets\.(\d+)\.",
            lambda m: f"input_blocks.{int(m[1]) * per_level + int(m[2]) + 1}.0.",
        ),
        (
            r"^down_blocks\.(\d+)\.attentions\.(\d+)\.",
            lambda m: f"input_blocks.{int(m[1]) * per_level + int(m[2]) + 1}.1.",
        ),
        (
            r"^down_blocks\.(\d+)\.downsamplers\.0\.conv\.",
            lambda m: f"input_blocks.{(int(m[1]) + 1) * per_level}.0.op.",
        ),
        (r"^mid_block\.resnets\.(\d+)\.", lambda m: f"middle_block.{2 * int(m[1])}."),
        (r"^mid_block\.attentions\.0\.", lambda m: "middle_block.1."),
        (r"^up_blocks\.(\d+)\.resnets\.(\d+)\.", lambda m: f"output_blocks.{int(m[1]) * per_level + int(m[2])}.0."),
        (r"^up_blocks\.(\d+)\.attentions\.(\d+)\.", lambda m: f"output_blocks.{int(m[1]) * per_level + int(m[2])}.1."),
    ]
    resnet_renames = [
        (r"\.norm1\.", lambda m: ".in_layers.0."),
        (r"\.conv1\.", lambda m: ".in_layers.2."),
        (r"\.time_emb_proj\.", lambda m: ".emb_layers.1."),
        (r"\.norm2\.", lambda m: ".out_layers.0."),
        (r"\.conv2\.", lambda m: ".out_layers.3."),
        (r"\.conv_shortcut\.", lambda m: ".skip_connection."),
    ]
    has_attention = {
        int(name.split(".")[1]) for name, _ in unet.named_modules() if re.match(r"up_blocks\.\d+\.attentions$", name)
    }
    converted = {}
    for key, value in unet.state_dict().items():
        upsampler = re.match(r"^up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", key)
        if upsampler:
            level = int(upsampler[1])
            block, layer = level * per_level + per_level - 1, 2 if level in has_attention else 1
            key = f"output_blocks.{block}.{layer}.conv.{upsampler[2]}"
        else:
            for pattern, replace in resnet_renames if "resnets." in key else []:
                key = re.sub(pattern, replace, key)
            for pattern, replace in renames:
                key = re.sub(pattern, replace, key)
        converted["model.diffusion_model." + key] = value.contiguous()
    return converted


def ldm_text_state_dict(text_encoder) -> dict[str, torch.Tensor]:
    """The CLIP text encoder under `cond_stage_model.transformer.text_model.` (HF's names below that;
    recent transformers drop the `text_model.` level from the state dict, checkpoints have it)."""
    return {
        "cond_stage_model.transformer.text_model." + key.removeprefix("text_model."): value.contiguous()
        for key, value in text_encoder.state_dict().items()
    }


def ldm_checkpoint(pipeline) -> dict[str, torch.Tensor]:
    return {
        **ldm_vae_state_dict(pipeline.vae),
        **ldm_unet_state_dict(pipeline.unet),
        **ldm_text_state_dict(pipeline.text_encoder),
    }
