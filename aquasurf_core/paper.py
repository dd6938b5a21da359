"""What the paper reports, as data: the numbers our tables are compared with.

Bingham & Miikkulainen, "Efficient Activation Function Optimization through Surrogate
Modeling", NeurIPS 2023 (arXiv:2301.05785). Each constant names where it comes from; notebooks
and figure code read them from here rather than writing them into cells.
"""

from __future__ import annotations

__all__ = ["FIM_SECONDS_A10G", "SPACE_COUNTS"]

#: Search-space sizes, ``(functions, unique functions)`` (Section 2 and Appendix B).
SPACE_COUNTS: dict[str, tuple[int, int]] = {
    "3-node": (5_103, 2_913),
    "4-node": (1_023_516, 425_896),
}

#: Seconds to compute the FIM-eigenvalue features of one function (Appendix E, "Search
#: Implementation"; the machine is Appendix G's AWS g5.48xlarge with NVIDIA A10G GPUs).
FIM_SECONDS_A10G: dict[str, float] = {
    "all-cnn-c": 26.0,
    "resnet-56": 84.0,
    "mobilevitv2-0.5": 37.0,
}
