"""Everything TensorRT, in one place, and the only modules that import ``tensorrt`` or ``pycuda``:
running an engine (``backend``, with ``cuda`` for device memory), the sidecars that tie an engine
to its device and ONNX file (``engines``, plain Python), building an engine on the device
(``build``: ``asl-edge build`` and ``[model] build_if_missing``) and the legacy INT8 entropy
calibrator (``calibrator``, which subclasses a TensorRT class and so is imported only by ``build``
and ``asl-edge calibrate`` where TensorRT is installed). The others import TensorRT inside their
functions, so the package imports without it."""
