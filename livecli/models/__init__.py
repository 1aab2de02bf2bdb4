"""Model loading (hub id, folder, single file, tiny) and, later, inflation and attention processors."""
