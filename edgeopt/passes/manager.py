"""Runs the cleanup passes, then the requested ones, measuring each."""

from __future__ import annotations

import onnx_ir as ir

from edgeopt.ir import infer_shapes
from edgeopt.ir.analysis import analyze
from edgeopt.passes.base import Pass, PassReport, make_pass

# Order matters: folding first exposes constant BN/Conv inputs and static shapes;
# removing identities exposes adjacent transposes; pads fold once their pads are constants;
# a Softmax NaN guard is judged once its input cone is folded; Reshape/Transpose chains
# collapse once transpose pairs have cancelled; attention's head split/merge is read off the
# collapsed chains.
CLEANUP_ORDER = ["fold-constants", "remove-identity", "gather-to-reshape",
                 "drop-softmax-nan-guard", "fold-batchnorm", "fold-pads",
                 "cancel-transposes", "collapse-reshape-chains", "fold-head-transposes"]


def run_passes(model: ir.Model, requested: list[Pass] | None = None, cleanup: bool = True,
               int8: bool = False) -> tuple[ir.Model, list[PassReport]]:
    """The cleanup passes (for an int8 build, those not `float_only`), then `requested`."""
    chosen = [make_pass(name) for name in CLEANUP_ORDER] if cleanup else []
    passes = [p for p in chosen if not (int8 and p.float_only)] + list(requested or [])
    reports = []
    before = analyze(model)
    for p in passes:
        changes = p.apply(model)
        model = infer_shapes(model)
        after = analyze(model)
        reports.append(PassReport(
            name=p.name, config=vars(p.config), changes=changes,
            params_before=before.params, params_after=after.params,
            macs_before=before.macs, macs_after=after.macs,
        ))
        before = after
    return model, reports
