"""The fleet's verdict on its releases, from the kiosks' own feedback: ``asl-edge fleet report``
and ``asl-edge rollout step``.

One stage a module: ``feedback`` (the synced batches mirrored and loaded with the dataset build's
code, then judged: one row per judged sign, and the ``.sql`` counts beside it), ``stats`` (Wilson
and Newcombe intervals, McNemar's exact test), ``report`` (``report.json``) and ``page``
(``report.html`` with inline plots), ``decide`` (the rollout's rules) and ``step`` (a step
applied to the channel's signed pointer). Nothing here is imported by the kiosk's runtime.
"""
