"""pixel-input: the model takes raw pixels (0..255) and does its own input normalisation,
x = (p * scale - mean) / std per channel, which the pass folds into the first convs.

A device then feeds camera bytes straight in, and an int8 model's input is exactly the pixel
grid (scale 1) instead of the normalised values rounded onto one int8 grid, which with
per-channel means costs accuracy no later layer can win back.

The affine folds into each Conv reading the input: W' = W * a_c, b' = b + sum W * b_c
(a = scale / std, b = -mean / std). A zero pad of x is the mean pixel m_c = mean_c / scale in
p; when every channel has the same mean pixel the conv's padding becomes an explicit Pad with
that value, so the borders stay exact. Otherwise (or when other ops read the input) the
normalisation stays in the model as one per-channel affine, a 1x1 depthwise Conv.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir

from edgeopt.errors import UsageError
from edgeopt.passes._rewrite import add_initializer, constant_array, is_onnx_op
from edgeopt.passes.base import Pass, PassConfig, register


@dataclass
class PixelInputConfig(PassConfig):
    scale: float = 1 / 255
    mean: list[float] = field(default_factory=lambda: [0.0])
    std: list[float] = field(default_factory=lambda: [1.0])


def _image_input(graph: ir.Graph) -> ir.Value:
    images = [v for v in graph.inputs if v.shape is not None and len(v.shape) == 4 and v.dtype == ir.DataType.FLOAT]
    if len(images) != 1:
        raise UsageError(f"--pixel-input needs exactly one 4-D float image input; the model has {len(images)}",
                         hint="Drop --pixel-input, or normalise on the device.")
    return images[0]


def _foldable(node: ir.Node, image: ir.Value) -> bool:
    return (is_onnx_op(node, "Conv") and node.inputs[0] is image and node.attributes.get_int("group", 1) == 1
            and constant_array(node.inputs[1]) is not None
            and (len(node.inputs) < 3 or node.inputs[2] is None or constant_array(node.inputs[2]) is not None))


def _pads(node: ir.Node) -> list[int]:
    return list(node.attributes.get_ints("pads", (0, 0, 0, 0)))


@register
class PixelInput(Pass):
    name = "pixel-input"
    config_class = PixelInputConfig

    def apply(self, model: ir.Model) -> list[str]:
        graph = model.graph
        image = _image_input(graph)
        channels = int(image.shape[1])
        std, mean = (np.broadcast_to(np.asarray(v, np.float64), (channels,)) for v in (self.config.std, self.config.mean))
        a, b = self.config.scale / std, -mean / std
        mean_pixel = mean / self.config.scale
        convs = [use.node for use in image.uses()]
        same_border = np.allclose(mean_pixel, mean_pixel[0])
        if not (convs and all(_foldable(n, image) for n in convs)):
            return [self._affine(graph, image, a, b, "ops other than plain Convs read the input")]
        if not same_border and any(any(_pads(n)) for n in convs):
            return [self._affine(graph, image, a, b, "the channels' mean pixels differ, so a padded conv's borders "
                                                     "would not stay exact")]
        return [self._fold(graph, n, image, a, b, float(mean_pixel[0])) for n in convs]

    @staticmethod
    def _fold(graph: ir.Graph, conv: ir.Node, image: ir.Value, a: np.ndarray, b: np.ndarray, border: float) -> str:
        weight = constant_array(conv.inputs[1]).astype(np.float64)
        bias = constant_array(conv.inputs[2]) if len(conv.inputs) > 2 and conv.inputs[2] is not None else None
        bias = (np.zeros(weight.shape[0]) if bias is None else bias.astype(np.float64)) + \
            (weight * b[None, :, None, None]).sum(axis=(1, 2, 3))
        conv.replace_input_with(1, add_initializer(graph, (weight * a[None, :, None, None]).astype(np.float32),
                                                    f"{conv.name}.pixel_weight"))
        bias_value = add_initializer(graph, bias.astype(np.float32), f"{conv.name}.pixel_bias")
        if len(conv.inputs) < 3:
            conv.resize_inputs(3)
        conv.replace_input_with(2, bias_value)
        pads = _pads(conv)
        if not any(pads):
            return f"input normalisation folded into Conv '{conv.name}'"
        top, left, bottom, right = pads
        pad = ir.node("Pad", [image, add_initializer(graph, np.array([0, 0, top, left, 0, 0, bottom, right], np.int64),
                                                     f"{conv.name}.pixel_pads"),
                              add_initializer(graph, np.array(border, np.float32), f"{conv.name}.mean_pixel")],
                      {"mode": "constant"}, name=f"{conv.name}_pixel_pad")
        graph.insert_before(conv, pad)
        conv.replace_input_with(0, pad.outputs[0])
        conv.attributes["pads"] = ir.AttrInt64s("pads", [0, 0, 0, 0])
        return f"input normalisation folded into Conv '{conv.name}'; its zero padding is the mean pixel {border:g}"

    @staticmethod
    def _affine(graph: ir.Graph, image: ir.Value, a: np.ndarray, b: np.ndarray, why: str) -> str:
        channels, uses = len(a), list(image.uses())
        affine = ir.node("Conv", [image, add_initializer(graph, a.reshape(channels, 1, 1, 1).astype(np.float32),
                                                         "pixel_scale"),
                                  add_initializer(graph, b.astype(np.float32), "pixel_shift")],
                         {"group": channels}, name="pixel_normalise")
        for use in uses:
            use.node.replace_input_with(use.idx, affine.outputs[0])
        graph.insert_before(graph.node(0), affine)
        return f"input normalisation kept as a per-channel affine (1x1 depthwise Conv): {why}"
