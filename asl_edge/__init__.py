"""The top layer: the ``asl-edge`` command, which registers the commands of every layer below it
(``edge.runtime``, ``edge.demo``, ``convert``, ``calibration``). Nothing imports this package."""
