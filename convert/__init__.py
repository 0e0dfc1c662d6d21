"""Layer 3, build time: WLASL checkpoint to a verified ONNX bundle (PyTorch), fine-tuning a bundle's
model on field data (``asl-edge finetune``), the labelled clip sources every build-time tool reads
(``convert.sources``, no PyTorch), and the demo model's training."""
