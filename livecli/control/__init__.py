"""Attention control for editing: prompt alignment, map replacement, local blend (paper §3.4)."""
