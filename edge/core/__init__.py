"""Layer 0, the shared core: config, the model bundle and its manifest, preprocessing, sampling,
decoding, atomic files and errors. Imports nothing else of the project, and no hardware library."""
