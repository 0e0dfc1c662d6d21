"""Demo material for asl-edge: a synthetic signer and the data sets rendered from it.

The synthetic gestures carry WLASL glosses as placeholder names only; they are NOT real ASL signs.
"""
