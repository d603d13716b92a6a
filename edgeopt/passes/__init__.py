"""IR -> IR passes, one module per pass, found through the registry in `base`.

Importing this package registers every pass; `manager.run_passes` runs them.
"""

from edgeopt.passes import bn_folding, constant_folding, identity_removal, transpose_cancel  # noqa: F401  (registration)
from edgeopt.passes.base import REGISTRY, Pass, PassConfig, PassReport, make_pass, register
from edgeopt.passes.manager import CLEANUP_ORDER, run_passes

__all__ = ["CLEANUP_ORDER", "REGISTRY", "Pass", "PassConfig", "PassReport", "make_pass", "register", "run_passes"]
