"""TFLite flatbuffers: reading any .tflite (reader), converting a lowered model (convert),
and running one on the host (interpreter). Shared by the tflite and coral targets."""
