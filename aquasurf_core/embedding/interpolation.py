"""Points between functions in an embedding, for UMAP's inverse transform (paper Figure 3)."""

from __future__ import annotations

import numpy as np

__all__ = ["bilinear_grid"]


def bilinear_grid(corners: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Points interpolating bilinearly between four 2-D corners.

    ``corners`` is ``[top_left, top_right, bottom_left, bottom_right]`` (shape (4, 2)). Returns
    ``(points, uv)`` with ``points[k] = (1-u)(1-v) TL + u(1-v) TR + (1-u)v BL + uv BR`` on a
    ``steps x steps`` grid of ``(u, v)`` in [0, 1]^2, row-major with ``v`` the row.
    """
    corners = np.asarray(corners, dtype=np.float64)
    if corners.shape != (4, 2):
        raise ValueError(f"corners must have shape (4, 2), got {corners.shape}")
    if steps < 2:
        raise ValueError("steps must be at least 2")
    t = np.linspace(0.0, 1.0, steps)
    v, u = np.meshgrid(t, t, indexing="ij")
    u, v = u.ravel(), v.ravel()
    tl, tr, bl, br = corners
    points = (
        np.outer((1 - u) * (1 - v), tl)
        + np.outer(u * (1 - v), tr)
        + np.outer((1 - u) * v, bl)
        + np.outer(u * v, br)
    )
    return points, np.column_stack([u, v])
