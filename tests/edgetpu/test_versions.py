"""The op-version table of edgetpu_compiler 16: every entry's newest known version passes and
the next one fails, the versions public reports show refused are refused, and on real
converter-made models an op at its newest known version compiles while one version more
fails the parse with the compiler's own words. Builtins newer than the compiler (GELU) fail
the parse at any version."""

from __future__ import annotations

import pytest
import tensorflow as tf

from edgeopt.edgetpu import analyse
from edgeopt.edgetpu.versions import MAX_VERSION, builtin_code, unknown_builtin, unknown_version
from edgeopt.tflite.reader import read_tflite
from edgetpu.test_rules import CASES
from edgetpu.tflite_models import set_version, tflite


@pytest.mark.parametrize("opcode, newest", sorted(MAX_VERSION.items()))
def test_each_entry_knows_its_versions_up_to_the_newest(opcode, newest):
    assert [unknown_version(opcode, v) for v in range(1, newest + 3)] == [False] * newest + [True, True]


@pytest.mark.parametrize("opcode, version", [("CONV_2D", 6), ("QUANTIZE", 3), ("TRANSPOSE_CONV", 4), ("EXP", 2)])
def test_the_versions_reported_refused_are_unknown(opcode, version):
    """google-coral/edgetpu#631, #879, #845; google-coral/libedgetpu#71."""
    assert unknown_version(opcode, version) and not unknown_version(opcode, version - 1)


def test_an_op_outside_the_table_is_not_refused_for_its_version():
    assert "SQUARE" not in MAX_VERSION and not unknown_version("SQUARE", 99)  # its own rule decides (no kernel)


@pytest.mark.parametrize("opcode, code, refused", [
    ("HASHTABLE_SIZE", 139, False),  # the last op of TF 2.5
    ("REDUCE_ALL", 140, True),  # the first of TF 2.6
    ("GELU", 150, True),  # google-coral/edgetpu#667, #818
    ("DYNAMIC_UPDATE_SLICE", 151, True),  # google-coral/edgetpu#862
    ("STABLEHLO_COMPOSITE", 206, True),
    ("207", 207, True),  # a code the installed schema has no name for yet
    ("SQUARE", 92, False),
    ("TFLite_Detection_PostProcess", None, False),  # a custom op
])
def test_builtins_newer_than_the_compiler_are_refused_at_any_version(opcode, code, refused):
    assert builtin_code(opcode) == code
    assert unknown_builtin(opcode) is refused


def test_a_real_gelu_model_fails_the_parse_in_the_compilers_words():
    report = analyse(read_tflite(tflite(lambda x: tf.nn.gelu(x))))
    assert report.errors == ["Op builtin_code out of range: 150. Are you using old TFLite binary with newer model?",
                             "Model could not be parsed"]
    assert report.mapped == 0


# one real model per op: the mapped cases of the rules table
MODELS = {}
for _, fn, shape, opcode, status, _reason in CASES:
    MODELS.setdefault(opcode, (fn, shape))


@pytest.mark.parametrize("opcode", sorted(MODELS))
def test_a_real_model_compiles_at_the_newest_known_version_and_not_one_later(opcode):
    fn, shape = MODELS[opcode]
    data = tflite(fn, shape=shape)
    written = {op.opcode: op.version for op in read_tflite(data).operators}
    assert all(not unknown_version(op, v) for op, v in written.items()), written  # today's converter: all known
    newest = MAX_VERSION[opcode]
    assert analyse(read_tflite(set_version(data, opcode, newest))).compiles
    report = analyse(read_tflite(set_version(data, opcode, newest + 1)))
    assert report.errors[:2] == [f"Didn't find op for builtin opcode '{opcode}' version '{newest + 1}'",
                                 "Model could not be parsed"]
    assert report.mapped == 0
