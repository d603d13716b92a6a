"""Training on the lowered model (edgeopt.lower): distillation from the float model, with
int8 weights and activation ranges simulated for quantisation-aware training (--qat).

The lowered model is the trainable executor: its weights are tf.Variables, its activation
ranges fake-quant bounds that the TFLite converter keeps exactly. `edgeopt.train.trainer`
(TensorFlow) runs it; this package's top level stays light for the CLI.
"""

from edgeopt.train.config import TrainConfig, TrainReport

__all__ = ["TrainConfig", "TrainReport"]
