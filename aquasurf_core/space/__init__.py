"""Stage 1 -- the search space (paper Section 2, Appendix B): operators, function names and
their parser, activation-function modules, schemas, the fixed inputs that define when two
functions are the same, vectorised evaluation with de-duplication, and persisted spaces.

* :mod:`~aquasurf_core.space.operators` -- the PANGAEA operator table.
* :mod:`~aquasurf_core.space.names` -- the grammar of names, :func:`parse`, :class:`Node`.
* :mod:`~aquasurf_core.space.activation` -- :class:`ActivationFunction` (``nn.Module``).
* :mod:`~aquasurf_core.space.baselines` -- the paper's baseline functions.
* :mod:`~aquasurf_core.space.schemas` -- enumerating schemas such as
  ``binary(unary(x),unary(x))``.
* :mod:`~aquasurf_core.space.inputs` -- the 1,000 normal inputs and the 80-point grid.
* :mod:`~aquasurf_core.space.evaluation` -- evaluation and de-duplication of whole spaces.
* :mod:`~aquasurf_core.space.store` -- persisted spaces (Parquet + NumPy + manifest).
"""

from aquasurf_core.space.activation import ActivationFunction, gaussian_moments
from aquasurf_core.space.baselines import BASELINE_FUNCTIONS, BASELINES, COATNET_BASELINES
from aquasurf_core.space.evaluation import (
    canonical_bits,
    evaluate_functions,
    evaluate_space,
    find_rows_by_outputs,
)
from aquasurf_core.space.inputs import linspace_inputs, normal_inputs
from aquasurf_core.space.names import InvalidFunctionName, Node, canonical_name, parse
from aquasurf_core.space.operators import OPERATORS, Operator
from aquasurf_core.space.schemas import (
    FOUR_NODE_SCHEMAS,
    THREE_NODE_SCHEMA,
    InvalidSchema,
    count_functions,
    count_schema,
    iter_names,
    schema_of,
)
from aquasurf_core.space.store import SpaceStore, SpaceStoreError, build_space, load_space

__all__ = [
    "BASELINES",
    "BASELINE_FUNCTIONS",
    "COATNET_BASELINES",
    "FOUR_NODE_SCHEMAS",
    "OPERATORS",
    "THREE_NODE_SCHEMA",
    "ActivationFunction",
    "InvalidFunctionName",
    "InvalidSchema",
    "Node",
    "Operator",
    "SpaceStore",
    "SpaceStoreError",
    "build_space",
    "canonical_bits",
    "canonical_name",
    "count_functions",
    "count_schema",
    "evaluate_functions",
    "evaluate_space",
    "find_rows_by_outputs",
    "gaussian_moments",
    "iter_names",
    "linspace_inputs",
    "load_space",
    "normal_inputs",
    "parse",
    "schema_of",
]
