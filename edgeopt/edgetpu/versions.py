"""The newest version of each TFLite builtin that edgetpu_compiler 16 can parse.

The compiler embeds a TFLite runtime; an op version newer than that runtime fails the whole
model ("Didn't find op for builtin opcode 'CONV_2D' version '6'" ... "Model could not be
parsed"). Public reports with compiler 16.0.384591198 show versions that first shipped in
TF 2.7 and later rejected: CONV_2D v6 (TF 2.9, google-coral/edgetpu#631), QUANTIZE v3 (TF 2.7,
#879), TRANSPOSE_CONV v4 (#845), EXP v2 (google-coral/libedgetpu#71). So the table takes, per
op, the newest version whose minimum runtime is TF 2.5 or older, from TFLite's own map of op
versions to runtime versions (tensorflow/lite/tools/versioning/runtime_version.cc). Versions
that first shipped in TF 2.6 are treated as unknown too: no report shows one accepted.

A builtin op newer than that runtime fails the same way at any version ("Op builtin_code out
of range: 150. Are you using old TFLite binary with newer model?"): compiler 16 refuses GELU
(150, google-coral/edgetpu#667, #818) and DYNAMIC_UPDATE_SLICE (151, #862). Out of range means
above the embedded schema's last code, so every later code is refused too. By the same rule as
the versions, the first refused code is taken to be the first op whose minimum runtime is
TF 2.6 (runtime_version.cc): REDUCE_ALL, 140; every op up to HASHTABLE_SIZE (139) first
shipped in TF 2.5 or earlier.
"""

from __future__ import annotations

FIRST_UNKNOWN_BUILTIN = 140  # REDUCE_ALL, TF 2.6; see above

MAX_VERSION = {
    "ADD": 3, "ARG_MAX": 2, "ARG_MIN": 2, "AVERAGE_POOL_2D": 3, "BATCH_MATMUL": 4, "CAST": 1, "CONCATENATION": 3,
    "CONV_2D": 5, "DEPTH_TO_SPACE": 2, "DEPTHWISE_CONV_2D": 6, "DEQUANTIZE": 4, "EXP": 1, "EXPAND_DIMS": 1,
    "FULLY_CONNECTED": 9, "GATHER": 5, "GATHER_ND": 3, "HARD_SWISH": 1, "L2_NORMALIZATION": 2, "LEAKY_RELU": 2,
    "LOG_SOFTMAX": 2, "LOGISTIC": 3, "LSTM": 4, "MAX_POOL_2D": 3, "MAXIMUM": 4, "MEAN": 3, "MINIMUM": 4,
    "MIRROR_PAD": 2, "MUL": 4, "PACK": 3, "PAD": 3, "PADV2": 3, "PRELU": 1, "QUANTIZE": 2, "REDUCE_MAX": 3,
    "REDUCE_MIN": 3, "RELU": 3, "RELU6": 3, "RELU_N1_TO_1": 1, "RESHAPE": 1, "RESIZE_BILINEAR": 4,
    "RESIZE_NEAREST_NEIGHBOR": 4, "RSQRT": 2, "SLICE": 5, "SOFTMAX": 3, "SPACE_TO_DEPTH": 2, "SPLIT": 4,
    "SPLIT_V": 2, "SQUARED_DIFFERENCE": 2, "SQUEEZE": 2, "STRIDED_SLICE": 5, "SUB": 5, "SUM": 2, "TANH": 3,
    "TILE": 2, "TRANSPOSE": 5, "TRANSPOSE_CONV": 3, "UNPACK": 4,
}


def unknown_version(opcode: str, version: int) -> bool:
    """True when compiler 16 would refuse to parse the model because of this op version."""
    return version > MAX_VERSION.get(opcode, version)


def builtin_code(opcode: str) -> int | None:
    """The TFLite BuiltinOperator code of an op name as the reader gives it (a code it has no
    name for stays a number); None for a custom op."""
    from ai_edge_litert import schema_py_generated as schema

    return int(opcode) if opcode.isdigit() else getattr(schema.BuiltinOperator, opcode, None)


def unknown_builtin(opcode: str) -> bool:
    """True when compiler 16 would refuse to parse the model because the op is newer than it."""
    code = builtin_code(opcode)
    return code is not None and code >= FIRST_UNKNOWN_BUILTIN
