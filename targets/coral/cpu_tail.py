"""Chain the Edge TPU model and the CPU tail that `edgeopt build --edgetpu-fix` cut off it.

The manifest's artefact.edgetpu.cpu_tail lists the head's outputs (the model's own plus the
values the tail reads), the tail's inputs and outputs. Each spec's `perm` says how its device
layout is laid out against the model's (ONNX) layout, so values are re-laid between the two
models; both run functions take and return float arrays. Imports numpy only.
"""

import numpy as np


def to_model_layout(array, spec):
    return np.transpose(array, np.argsort(spec["perm"])) if spec.get("perm") else array


def to_device_layout(array, spec):
    return np.ascontiguousarray(np.transpose(array, spec["perm"])) if spec.get("perm") else array


def chain(run_head, run_tail, tail, outputs):
    """run(feeds) for head then tail; `tail` is the manifest's cpu_tail entry, `outputs` the
    manifest's outputs (the model's, in order)."""

    def run(feeds):
        values = {s["name"]: to_model_layout(y, s) for s, y in zip(tail["head_outputs"], run_head(feeds))}
        tail_feeds = {s["name"]: to_device_layout(values[s["name"]], s) for s in tail["inputs"]}
        values.update({s["name"]: to_model_layout(y, s) for s, y in zip(tail["outputs"], run_tail(tail_feeds))})
        return [to_device_layout(values[s["name"]], s) for s in outputs]

    return run
