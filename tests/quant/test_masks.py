"""Attention with a padding mask, from Hugging Face `transformers`, in full int8: token ids and
the mask stay integers, the additive mask gets ranges that keep the scores' resolution
(edgeopt/quant/masks.py), and the tflite and coral builds match the float model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx_ir as ir
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from edgeopt.build import BuildRequest, build
from edgeopt.ir import infer_shapes
from edgeopt.lower import lower
from edgeopt.quant.masks import mask_ranges
from edgeopt.progress import Progress
from edgeopt.tflite.reader import read_tflite

QUIET = Progress(quiet=True)
SEQUENCE, VOCAB, LABELS = 16, 100, 4
SCORE_GAIN = 4.0  # on queries and keys: random weights give near-uniform attention, trained ones do not


def _masked_softmax(fill: float) -> ir.Model:
    """scores [1, 2, 4, 4] + Where(mask [1, 1, 1, 4], 0, fill) -> Softmax."""
    nodes = [helper.make_node("Where", ["mask", "zero", "fill"], ["bias"], name="mask_bias"),
             helper.make_node("Add", ["scores", "bias"], ["masked"], name="add_mask"),
             helper.make_node("Softmax", ["masked"], ["probs"], name="softmax", axis=-1)]
    graph = helper.make_graph(
        nodes, "masked",
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 2, 4, 4]),
         helper.make_tensor_value_info("mask", TensorProto.BOOL, [1, 1, 1, 4])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 2, 4, 4])],
        [numpy_helper.from_array(np.array(0, np.float32), "zero"),
         numpy_helper.from_array(np.array(fill, np.float32), "fill")])
    return infer_shapes(ir.from_proto(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])))


def test_mask_ranges_cover_the_kept_scores_and_push_masked_ones_below_them():
    rng = np.random.default_rng(0)
    feeds = [{"scores": rng.uniform(-3, 2, (1, 2, 4, 4)).astype(np.float32),
              "mask": np.array([True, True, False, i % 2 == 0]).reshape(1, 1, 1, 4)} for i in range(4)]
    model = _masked_softmax(float(np.finfo(np.float32).min))

    ranges = {key.split(":", 1)[1]: bounds for key, bounds in mask_ranges(model, lower(model), feeds).items()}

    kept = np.concatenate([f["scores"][..., f["mask"][0, 0, 0]].ravel() for f in feeds])
    margin = np.log(512 * 4)
    assert ranges["masked"] == pytest.approx((kept.min() - margin, kept.max()))
    assert ranges["bias"] == pytest.approx((kept.min() - kept.max() - margin, 0.0))


def test_a_small_additive_constant_is_no_mask():
    model = _masked_softmax(-100.0)
    feeds = [{"scores": np.zeros((1, 2, 4, 4), np.float32), "mask": np.ones((1, 1, 1, 4), bool)}]
    assert mask_ranges(model, lower(model), feeds) == {}


def _tiny_distilbert() -> torch.nn.Module:
    import transformers

    torch.manual_seed(0)
    config = transformers.DistilBertConfig(vocab_size=VOCAB, dim=32, n_layers=2, n_heads=2, hidden_dim=64,
                                           max_position_embeddings=SEQUENCE, num_labels=LABELS)
    model = transformers.DistilBertForSequenceClassification(config).eval()
    with torch.no_grad():
        for layer in model.distilbert.transformer.layer:
            layer.attention.q_lin.weight.mul_(SCORE_GAIN)
            layer.attention.k_lin.weight.mul_(SCORE_GAIN)

    class Logits(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            return self.model(input_ids=input_ids, attention_mask=attention_mask).logits

    return Logits().eval()


def _tokens(count: int, seed: int) -> dict[str, np.ndarray]:
    """Random ids, each sample padded after a random length (at least a quarter of the sequence)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(SEQUENCE // 4, SEQUENCE + 1, count)
    mask = (np.arange(SEQUENCE)[None] < lengths[:, None]).astype(np.int64)
    return {"input_ids": rng.integers(1, VOCAB, (count, SEQUENCE)) * mask, "attention_mask": mask}


@pytest.fixture(scope="module")
def distilbert(tmp_path_factory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("distilbert")
    module = _tiny_distilbert()
    example = tuple(torch.from_numpy(v) for v in _tokens(1, 0).values())
    torch.export.save(torch.export.export(module, example), work / "distilbert.pt2")
    for name, count, seed in (("calib", 64, 1), ("eval", 64, 2)):
        np.savez(work / f"{name}.npz", **_tokens(count, seed))
    return {"model": work / "distilbert.pt2", "calib": work / "calib.npz", "eval": work / "eval.npz"}


def _build(paths: dict, target: str, out: Path):
    quant = {"quant": "int8"} if target == "tflite" else {}
    return build(BuildRequest(model=paths["model"], target=target, calib=str(paths["calib"]),
                              eval=str(paths["eval"]), out=out, **quant), QUIET)


def _softmax_input_scales(data: bytes) -> list[float]:
    model = read_tflite(data)
    return [model.tensor(op.inputs[0]).scale[0] for op in model.operators if op.opcode == "SOFTMAX"]


def test_masked_attention_in_int8_keeps_integer_inputs_and_matches_float(distilbert, tmp_path):
    result = _build(distilbert, "tflite", tmp_path)

    model = read_tflite(result.artefact.files["model.tflite"])
    assert sorted(model.tensor(i).dtype for i in model.inputs) == ["INT64", "INT64"]  # ids and mask, not int8
    assert [spec["dtype"] for spec in result.artefact.inputs] == ["int64", "int64"]
    # scores keep their resolution: a step of a few hundredths, not the 1.3e36 that -3.4e38 in range gives
    assert all(scale < 0.1 for scale in _softmax_input_scales(result.artefact.files["model.tflite"]))
    assert result.fidelity.top1_agreement >= 0.95 and result.fidelity.sqnr_db >= 20  # measured: 0.98, 24.4 dB


def test_masked_attention_builds_for_coral_and_the_analysis_names_what_stops_the_edge_tpu(distilbert, tmp_path):
    result = _build(distilbert, "coral", tmp_path)

    analysis = json.loads(result.artefact.files["edgetpu_analysis.json"])
    ops = analysis["ops"]
    # the token ids' CAST comes first and has no Edge TPU kernel: the log says so, op by op
    assert ops[0]["op"] == "CAST" and "has no Edge TPU kernel" in ops[0]["reason"]
    end = ops[analysis["partition"]]
    assert end["status"] != "Mapped to Edge TPU" and end["reason"]
    assert all(op["reason"] for op in ops if op["op"] in ("BATCH_MATMUL", "SOFTMAX"))
    assert analysis["summary"]["edgetpu_ops"] < len(ops) // 10
    model = read_tflite(result.artefact.files["model.tflite"])
    assert sorted(model.tensor(i).dtype for i in model.inputs) == ["INT64", "INT64"]
    assert result.fidelity.top1_agreement >= 0.9 and result.fidelity.sqnr_db >= 20
