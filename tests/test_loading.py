"""Model loading: the tiny model's shape, folders, hub ids offline, devices and dtypes."""

from __future__ import annotations

import pytest
import torch

from ldm import ldm_checkpoint
from livecli.errors import ConfigError, ModelError
from livecli.models.loading import load_denoiser, load_vae, resolve_device, resolve_dtype, resolve_model
from livecli.models.tiny import TINY_VERSION, tiny_model_dir


def test_tiny_is_shaped_like_stable_diffusion(tiny_sd):
    vae, unet, text_encoder, tokenizer = tiny_sd.vae, tiny_sd.unet, tiny_sd.text_encoder, tiny_sd.tokenizer
    with torch.no_grad():
        latents = vae.encode(torch.zeros(1, 3, 64, 64)).latent_dist.mean
    assert latents.shape == (1, 4, 8, 8)
    assert vae.config.scaling_factor == pytest.approx(0.18215)

    resolutions = {}
    with torch.no_grad():
        hooks = [
            module.register_forward_hook(lambda m, args, out, name=name: resolutions.setdefault(name, args[0].shape[1]))
            for name, module in unet.named_modules()
            if name.endswith("attn2")
        ]
        ids = tokenizer("a red car", padding="max_length", max_length=77, return_tensors="pt").input_ids
        text = text_encoder(ids)[0]
        unet(torch.zeros(1, 4, 16, 16), 10, encoder_hidden_states=text)
        for hook in hooks:
            hook.remove()
    tokens_per_layer = set(resolutions.values())  # query tokens = h·w of the layer's feature map
    assert {256, 64} <= tokens_per_layer, "cross-attention at two resolutions (16² and 8² for a 16² latent)"
    assert text.shape == (1, 77, unet.config.cross_attention_dim)
    assert tokenizer.model_max_length == 77 and text_encoder.config.max_position_embeddings == 77
    assert tiny_sd.scheduler.__class__.__name__ == "DDIMScheduler"
    assert tiny_sd.scheduler.config.beta_schedule == "scaled_linear"


def test_tiny_is_built_the_same_every_time(tiny_sd):
    from livecli.models.tiny import build_tiny_pipeline

    again = build_tiny_pipeline()
    for ours, theirs in zip(tiny_sd.unet.parameters(), again.unet.parameters(), strict=False):
        assert torch.equal(ours, theirs)


def test_tiny_loads_from_its_cached_folder():
    source = resolve_model("tiny")
    assert source.kind == "tiny" and source.revision == TINY_VERSION
    assert source.path == tiny_model_dir() and (source.path / "model_index.json").is_file()
    vae = load_vae(source, torch.device("cpu"), torch.float32)
    assert vae.config.latent_channels == 4 and not vae.training


def test_a_saved_folder_is_a_model(tmp_path, tiny_sd):
    tiny_sd.save_pretrained(tmp_path / "sd")
    source = resolve_model(str(tmp_path / "sd"))
    assert source.kind == "folder" and source.revision.startswith("local-")
    assert source.manifest_entry()["path"] == str((tmp_path / "sd").resolve())


def test_a_hub_id_in_the_cache_loads_offline_and_records_its_commit(tmp_path, tiny_sd, monkeypatch):
    import huggingface_hub.constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--someone--tiny-sd"
    tiny_sd.save_pretrained(repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    source = resolve_model("someone/tiny-sd")
    assert (source.kind, source.revision) == ("hub", commit)
    assert source.path == repo / "snapshots" / commit
    assert source.manifest_entry() == {"id": "someone/tiny-sd", "kind": "hub", "revision": commit}
    assert load_vae(source, torch.device("cpu"), torch.float32).config.latent_channels == 4


def test_hub_id_missing_from_the_cache_offline_fails_in_one_line_with_a_hint_that_works():
    with pytest.raises(ModelError) as error:  # conftest sets HF_HUB_OFFLINE=1
        resolve_model("CompVis/stable-diffusion-v1-4")
    assert "model 'CompVis/stable-diffusion-v1-4' is not in the Hugging Face cache" in error.value.message
    assert "HF_HUB_OFFLINE forbids" in error.value.message and "\n" not in error.value.message
    assert "unset HF_HUB_OFFLINE" in error.value.hint and "--model /path/to/" in error.value.hint
    assert "set HF_HUB_OFFLINE=1" not in error.value.hint  # it is set already


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing-folder/", "not found"),
        (lambda d: d / "weights.safetensors", "not found"),
        (lambda d: (d / "empty").mkdir() or d / "empty", "not a diffusers model folder"),
        (lambda d: (d / "w.txt").write_text("x") and d / "w.txt", "neither a model folder nor"),
    ],
)
def test_local_paths_that_are_not_models(tmp_path, make, message):
    with pytest.raises(ModelError, match=message):
        resolve_model(str(make(tmp_path)))


def test_a_broken_single_file_checkpoint_fails_cleanly(tmp_path):
    broken = tmp_path / "model.safetensors"
    broken.write_bytes(b"\x00" * 64)
    source = resolve_model(str(broken))
    assert source.kind == "file"
    with pytest.raises(ModelError, match="cannot load the vae from the checkpoint"):
        load_vae(source, torch.device("cpu"), torch.float32)


def test_a_single_file_checkpoint_loads_through_from_single_file(tmp_path, tiny_sd):
    from safetensors.torch import save_file

    tiny_sd.save_pretrained(tmp_path / "configs")
    save_file(ldm_checkpoint(tiny_sd), tmp_path / "tiny.safetensors")
    source = resolve_model(str(tmp_path / "tiny.safetensors"), config=str(tmp_path / "configs"))
    assert source.kind == "file" and source.config == str((tmp_path / "configs").resolve())
    vae = load_vae(source, torch.device("cpu"), torch.float32)
    pixels = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.equal(vae.encode(pixels).latent_dist.mean, tiny_sd.vae.encode(pixels).latent_dist.mean)

    # What training loads comes from the same file: every weight equal to the folder model's.
    models = load_denoiser(source, torch.device("cpu"), torch.float32)
    for loaded, original in ((models.unet, tiny_sd.unet), (models.text_encoder, tiny_sd.text_encoder)):
        expected = original.state_dict()
        assert loaded.state_dict().keys() == expected.keys()
        for name, tensor in loaded.state_dict().items():
            assert torch.equal(tensor, expected[name]), name
    assert models.tokenizer.get_vocab() == tiny_sd.tokenizer.get_vocab()
    assert models.noise_scheduler.config.beta_schedule == tiny_sd.scheduler.config.beta_schedule


def test_a_folder_with_broken_weights_fails_cleanly(tmp_path, tiny_sd):
    tiny_sd.save_pretrained(tmp_path / "sd")
    (tmp_path / "sd" / "vae" / "diffusion_pytorch_model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelError, match="cannot load the VAE"):
        load_vae(resolve_model(str(tmp_path / "sd")), torch.device("cpu"), torch.float32)


def test_devices_and_dtypes():
    cpu = torch.device("cpu")
    assert resolve_dtype("auto", cpu) == torch.float32
    assert resolve_dtype("bf16", cpu) == torch.bfloat16
    assert resolve_dtype("auto", torch.device("cuda")) == torch.float16
    with pytest.raises(ConfigError, match="fp16 needs a GPU"):
        resolve_dtype("fp16", cpu)
    if not torch.cuda.is_available():
        assert resolve_device("auto").type in ("cpu", "mps")
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            resolve_device("cuda")
    assert resolve_device("cpu") == cpu


def test_paths_and_hub_ids_are_told_apart(tmp_path):
    for ref in ("./sd", "/models/sd", "models/sd/v1", "~/sd", "model.ckpt"):
        with pytest.raises(ModelError, match="not found"):
            resolve_model(ref)
    with pytest.raises(ModelError, match="Hugging Face"):
        resolve_model("runwayml/stable-diffusion-v1-5")
