"""The baseline activation functions the paper compares against and starts its searches from.

:data:`BASELINES` are the eight of the main experiments (Sections 5-6): ELU, ReLU, SELU,
sigmoid, Softplus, Softsign, Swish and tanh. The CoAtNet experiment (Section 6, Table 3)
extends the operator set and adds its new unary operators as baselines too:
:data:`COATNET_BASELINES` (13 functions). Keys are display names, values function names.
"""

from __future__ import annotations

__all__ = ["BASELINES", "BASELINE_FUNCTIONS", "COATNET_BASELINES"]

#: The paper's eight baseline activation functions (display name -> function name).
BASELINES: dict[str, str] = {
    "ELU": "elu(x)",
    "ReLU": "relu(x)",
    "SELU": "selu(x)",
    "sigmoid": "sigmoid(x)",
    "Softplus": "softplus(x)",
    "Softsign": "softsign(x)",
    "Swish": "swish(x)",
    "tanh": "tanh(x)",
}
#: Their function names, in the same order.
BASELINE_FUNCTIONS: tuple[str, ...] = tuple(BASELINES.values())
#: Baselines of the CoAtNet experiment: the eight plus the extension operators.
COATNET_BASELINES: dict[str, str] = {
    **BASELINES,
    "ELiSH": "elish(x)",
    "GELU": "gelu(x)",
    "HardSigmoid": "hard_sigmoid(x)",
    "Leaky ReLU": "leaky_relu(x)",
    "Mish": "mish(x)",
}
