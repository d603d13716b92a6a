"""Quantization choices made on the lowered TF model: activation ranges (calibration) and
empirical bias correction. The TFLite converter then quantizes with them."""
