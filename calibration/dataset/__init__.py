"""``asl-edge dataset build``: the kiosks' synced feedback and consented clips as a versioned data
set that ``finetune`` and ``evaluate`` read.

One stage a module: ``bucket`` (list what the kiosks synced under the prefix and mirror it into
``DIR/.cache``), ``revocations`` (withdrawn prediction and device ids), ``query`` (DuckDB over the
mirrored CSV batches, running the ``.sql`` files beside this module), ``videos`` (a clip decodes and
its frames are sane), ``split`` (train/val/test by a hash of the prediction id, or by day) and
``build`` (the whole build, and the directory it writes: ``videos/``, ``labels.txt``,
``split.json``, ``manifest.json``). Nothing here is imported by the kiosk's runtime.
"""
