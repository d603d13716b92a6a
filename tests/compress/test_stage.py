"""The compression stage in a build: pruning's zeros survive fine-tuning, --qat and int8
conversion into the .tflite; the per-pass table; bad flags are clear errors with no output."""

from __future__ import annotations

import numpy as np
import pytest

import onnx_ir as ir

from edgeopt.build import BuildRequest, build
from edgeopt.cli import main
from edgeopt.compress.stage import _held_out
from edgeopt.data import Dataset
from edgeopt.ir import ort_session, to_bytes
from edgeopt.passes._rewrite import constant_array, replace_constant_input
from edgeopt.progress import Progress
from edgeopt.train import TrainConfig


@pytest.fixture(scope="module")
def pruned_qat(digits, tmp_path_factory):
    out = tmp_path_factory.mktemp("pruned")
    return build(BuildRequest(digits["model"], target="tflite", quant="int8", calib=str(digits["calib"]),
                              eval=str(digits["eval"]), out=out, compression=[("prune", {"sparsity": 0.5})],
                              fine_tuning=TrainConfig(steps=30, learning_rate=1e-3),
                              training=TrainConfig(steps=20, qat=True)), Progress(quiet=True))


def test_pruned_zeros_survive_qat_into_the_int8_tflite(pruned_qat):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=pruned_qat.artefact.files["model.tflite"])
    interpreter.allocate_tensors()
    kernels = {tuple(d["shape"]): interpreter.get_tensor(d["index"]) for d in interpreter.get_tensor_details()
               if d["dtype"] == np.int8 and len(d["shape"]) == 4 and d["quantization_parameters"]["scales"].size > 1}
    zeros = {k.size: float(np.mean(k == 0)) for k in kernels.values()}
    # the digits CNN's three convs (OHWI): the first (144 weights) kept dense, the other two pruned by half
    assert sorted(zeros) == [144, 4608, 9216]
    assert zeros[144] < 0.2 and zeros[4608] >= 0.5 and zeros[9216] >= 0.5


def test_the_table_has_a_row_per_step(pruned_qat):
    rows = pruned_qat.manifest["compression"]
    assert [r["step"] for r in rows] == ["source", "--prune 0.5", "tflite int8"]
    source, pruned, artefact = rows
    assert pruned["fine_tuning"]["steps"] == 30 and pruned["fine_tuning"]["not_written_back"] == []
    assert pruned["fine_tuning"]["held_out"] == 25 and pruned["fine_tuning"]["samples"] == 175  # 1/8 of 200 held out
    assert pruned["nonzero_params"] == source["nonzero_params"] - (4608 + 9216) // 2  # the two middle convs
    assert pruned["gzip_bytes"] < 0.8 * source["gzip_bytes"]
    assert artefact["label_accuracy"] >= source["label_accuracy"] - 0.03
    assert "latency_ms" not in source  # the manifest is byte-reproducible; the report has it
    assert all(r["latency_ms"] > 0 for r in pruned_qat.compression)
    assert pruned_qat.manifest["artefact"]["training"]["qat"]


def test_qat_after_compression_distils_from_the_model_before_it(digits, tmp_path):
    """QAT is the fine-tuning here: it wins back what pruning cost, not only what int8 costs,
    so the int8 model ends closer to the source than the pruned float model it started from."""
    with np.load(digits["calib"]) as calib:  # no labels: the teacher is all QAT learns from
        np.savez(tmp_path / "unlabelled.npz", **{k: calib[k] for k in calib.files if k != "y"})
    result = build(BuildRequest(digits["model"], target="tflite", quant="int8", calib=str(digits["calib"]),
                                eval=str(digits["eval"]), out=tmp_path / "out", train_data=str(tmp_path / "unlabelled.npz"),
                                compression=[("prune", {"sparsity": 0.7, "refit": False})],
                                training=TrainConfig(steps=100, qat=True, augment=False, learning_rate=1e-3)),
                   Progress(quiet=True))
    source, pruned, artefact = result.manifest["compression"]
    assert artefact["sqnr_db"] > pruned["sqnr_db"] + 0.5  # 11.8 against 10.7 dB; from the pruned model: 10.7


def test_fine_tuning_that_makes_the_model_worse_on_held_out_samples_is_undone(digits, tmp_path):
    def row(out, fine_tuning):
        return build(BuildRequest(digits["model"], target="onnx", calib=str(digits["calib"]), eval=str(digits["eval"]),
                                  out=tmp_path / out, compression=[("prune", {"sparsity": 0.5})], fine_tuning=fine_tuning),
                     Progress(quiet=True)).manifest["compression"][1]
    wrecked = row("wrecked", TrainConfig(steps=5, learning_rate=3.0))  # each step moves a weight by 3x its size
    one_shot = row("one-shot", None)
    tuned = wrecked["fine_tuning"]
    start, end = tuned["held_out_sqnr_db"]
    assert tuned["kept"] is False and end < start - 3 and tuned["steps"] == 5  # a bool JSON can write
    start, end = tuned["held_out_label_accuracy"]  # the digits have labels: they decide first
    assert end < start - 0.1
    assert (wrecked["sqnr_db"], wrecked["top1_agreement"]) == (one_shot["sqnr_db"], one_shot["top1_agreement"])


def test_the_check_ranks_label_accuracy_before_sqnr(conv_net):
    """A teacher that gets some labels wrong; a model that gets them all right with logits 4x
    as sharp (far from the teacher by SQNR) is still the better one."""
    model = conv_net()
    x = np.random.default_rng(0).uniform(-1, 1, (32, 3, 8, 8)).astype(np.float32)
    logits = np.concatenate([ort_session(to_bytes(model)).run(None, {"image": s[None]})[0] for s in x])
    data = Dataset({"image": x}, logits.argmax(1), "noise labelled by the model")
    margin = logits.max(1) - logits[:, 0]
    nudge = np.eye(5)[0] * np.median(margin[margin > 0])  # class 0 wins about half the samples it lost
    sharp, teacher = (ir.from_proto(ir.to_proto(model)) for _ in range(2))
    for copy, change in ((sharp, lambda w, b: (4 * w, 4 * b)), (teacher, lambda w, b: (w, b + nudge))):
        node = next(n for n in copy.graph if n.name == "classifier")
        weight, bias = change(constant_array(node.inputs[1]), constant_array(node.inputs[2]))
        replace_constant_input(node, 1, weight.astype(np.float32), "classifier_w")
        replace_constant_input(node, 2, bias.astype(np.float32), "classifier_b")
    session = ort_session(to_bytes(teacher))
    run = lambda feed: session.run(None, feed)  # noqa: E731
    sharp_score, teacher_score = (_held_out(to_bytes(m), run, data, 1) for m in (sharp, teacher))
    assert sharp_score[0] == 1.0 > teacher_score[0]  # every label right against some wrong
    assert sharp_score[1] < 10 < teacher_score[1]  # and far from the teacher's logits
    assert sharp_score > teacher_score
    assert len(_held_out(to_bytes(sharp), run, Dataset({"image": x}, None, "unlabelled"), 1)) == 1


def test_without_fine_tuning_pruning_is_one_shot(digits, tmp_path):
    result = build(BuildRequest(digits["model"], target="onnx", eval=str(digits["eval"]), out=tmp_path,
                                compression=[("prune", {"sparsity": 0.3, "exclude": []})]), Progress(quiet=True))
    rows = result.manifest["compression"]
    assert [r["fine_tuning"] for r in rows] == [None, None, None]
    prune = next(p for p in result.manifest["passes"] if p["name"] == "prune")
    assert prune["changes"] == [  # round(0.3 x 144) = 43 zeros: 29.9%
        "Conv 'node_Conv_24': 29.9% of its 144 weights zero", "Conv 'node_Conv_25': 30.0% of its 4608 weights zero",
        "Conv 'node_Conv_26': 30.0% of its 9216 weights zero", "Gemm 'node_linear': 30.0% of its 5120 weights zero"]


@pytest.mark.parametrize("flags, fragment", [
    (["--prune", "0.5"], "fine-tunes the compressed model, on data it has none of"),
    (["--prune", "1.5", "--no-fine-tune"], "--prune 1.5: give a share in [0, 1)"),
    (["--no-fine-tune"], "--no-fine-tune is for the compression passes"),
    (["--prune-exclude", "fc"], "--prune-exclude is for --prune"),
    (["--no-refit"], "--no-refit is for the compression passes"),
    (["--train-steps", "5"], "--train-* and --no-augment are for --qat and compression fine-tuning"),
    (["--prune", "0.5", "--no-fine-tune", "--prune-exclude", "nope"], "no Conv/Gemm/MatMul layer with a constant "
                                                                      "weight is named nope"),
], ids=["no-data", "ratio", "no-fine-tune-alone", "exclude-alone", "no-refit-alone", "train-steps-alone",
     "unknown-layer"])
def test_bad_compression_flags_are_usage_errors(capsys, tmp_path, digits, flags, fragment):
    with pytest.raises(SystemExit) as done:
        main(["build", str(digits["model"]), "--eval", str(digits["eval"]), "--out", str(tmp_path), *flags])
    assert done.value.code == 2 and fragment in " ".join(capsys.readouterr().err.split())
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("compression, params_below", [
    ([("depthwise", {})], 0.5), ([("lowrank", {"energy": 0.7})], 0.8), ([("prune-channels", {"ratio": 0.5})], 0.5)],
    ids=["depthwise", "lowrank", "prune-channels"])
def test_every_rewrite_compiles_to_int8_and_matches_its_ir(digits, tmp_path, compression, params_below):
    """Without fine-tuning: the rewritten IR lowers and converts; the int8 artefact tracks the IR row."""
    result = build(BuildRequest(digits["model"], target="tflite", quant="int8", calib=str(digits["calib"]),
                                eval=str(digits["eval"]), out=tmp_path, compression=compression), Progress(quiet=True))
    source, rewritten, artefact = result.manifest["compression"]
    assert rewritten["params"] < params_below * source["params"] and rewritten["macs"] < source["macs"]
    assert artefact["params"] == rewritten["params"]
    assert abs(artefact["top1_agreement"] - rewritten["top1_agreement"]) <= 0.05


def test_a_pass_with_nothing_to_act_on_says_so_and_the_build_goes_on(capsys, tmp_path, digits):
    """Full-rank factors would add MACs on every layer: lowrank leaves the model as it is."""
    with pytest.raises(SystemExit) as done:
        main(["build", str(digits["model"]), "--eval", str(digits["eval"]), "--out", str(tmp_path), "--lowrank", "1.0",
              "--no-fine-tune"])
    assert done.value.code == 0
    said = " ".join(capsys.readouterr().err.split())
    assert "lowrank: found nothing to act on; the model is unchanged" in said
    assert any(tmp_path.glob("*.tar.gz"))
