"""Layer 4, build time: INT8 calibration (QDQ model, TensorRT calibration cache), the accuracy
report, and ``asl-edge verify`` (an engine against ONNX Runtime FP32)."""
