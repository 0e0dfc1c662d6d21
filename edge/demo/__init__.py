"""Layer 2, demo material: the synthetic signer, the data sets and live demos made from it, a
private Mosquitto for demos and tests, and the committed demo bundle (``bundle/``).

The synthetic gestures carry WLASL glosses as placeholder names only; they are NOT real ASL signs.
"""
