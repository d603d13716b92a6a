"""Compression: passes that make a model smaller or cheaper (pruning, low-rank, depthwise
rewrites), each followed by fine-tuning from the uncompressed model, and the per-pass table.

Importing this package registers its passes beside the cleanup passes (edgeopt.passes).
"""

from edgeopt.compress import depthwise, lowrank, prune, prune_channels  # noqa: F401  (registration)
from edgeopt.compress._layers import weight_layers
from edgeopt.compress._pass import CompressionPass
from edgeopt.compress.stage import Row, compress, measure_row
from edgeopt.passes.base import make_pass

# The order a build runs them in, whatever the order of the flags: rewrites that change the
# structure first, then channel pruning, then zeros in what remains.
ORDER = ["depthwise", "lowrank", "prune-channels", "prune"]


def make_passes(requested: list[tuple[str, dict]]) -> list[CompressionPass]:
    """The requested passes, configured (bad options fail here, before any slow work), in ORDER."""
    return [make_pass(name, params) for name, params in sorted(requested, key=lambda r: ORDER.index(r[0]))]


__all__ = ["ORDER", "CompressionPass", "Row", "compress", "make_passes", "measure_row", "weight_layers"]
