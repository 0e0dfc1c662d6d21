"""Layer 3, build time: WLASL checkpoint to a verified ONNX bundle (PyTorch), the demo model's
training, and TensorRT engine builds (``convert.tensorrt``, on the Jetson)."""
