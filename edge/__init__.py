"""asl-edge runtime: recognizes American Sign Language words from video on the device.

Importing this package needs neither PyTorch, TensorRT, pycuda nor GStreamer.
"""

import os

__version__ = "0.1.0"

# FFmpeg inside OpenCV prints its own lines for damaged files ("moov atom not found"); errors are
# reported by asl-edge as one line each, so keep FFmpeg quiet unless the user asks otherwise.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
