"""Attention with a padding mask, from Hugging Face `transformers`, in full int8: token ids and
the mask stay integers, the additive mask gets ranges that keep the scores' resolution
(edgeopt/quant/masks.py), and the tflite and coral builds match the float model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from edgeopt.build import BuildRequest, build
from edgeopt.progress import Progress
from edgeopt.tflite.reader import read_tflite

QUIET = Progress(quiet=True)
SEQUENCE, VOCAB, LABELS = 16, 100, 4
SCORE_GAIN = 4.0  # on queries and keys: random weights give near-uniform attention, trained ones do not


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
