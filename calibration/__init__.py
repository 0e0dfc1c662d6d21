"""Layer 4, build time: INT8 calibration (QDQ model, TensorRT calibration cache), the accuracy
report, ``asl-edge verify`` (an engine against ONNX Runtime FP32) and ``asl-edge evaluate`` (a
fine-tuned model against its baseline: the gate before it is published)."""
