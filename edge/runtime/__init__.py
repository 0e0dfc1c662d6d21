"""Layer 1, the runtime on the kiosk: capture, segmentation, backends (ONNX Runtime, TensorRT),
the store, MQTT, sync and the daemon. Imports only ``edge.core``, except that an engine missing on
the device is built through the one function ``backends.select.build_engine_on_device``."""
