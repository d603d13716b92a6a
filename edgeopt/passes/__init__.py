"""IR -> IR passes, one module per pass, found through the registry in `base`.

Importing this package registers every pass; `manager.run_passes` runs them.
"""

from edgeopt.passes import (  # noqa: F401  (registration)
    bn_folding, constant_folding, edgetpu_activations, gather_to_reshape, head_transposes, identity_removal, pad_folding,
    pixel_input, reshape_chains, softmax_nan_guard, split_fully_connected, transpose_cancel)
from edgeopt.passes.base import REGISTRY, Pass, PassConfig, PassReport, make_pass, register
from edgeopt.passes.manager import CLEANUP_ORDER, run_passes

__all__ = ["CLEANUP_ORDER", "REGISTRY", "Pass", "PassConfig", "PassReport", "make_pass", "register", "run_passes"]
