"""The models: loading (hub id, folder, single file, tiny, shapes), the inflated video UNet,
attention processors, the text encoder with the learned token, the trained weights' deltas."""
