"""An RTSP camera for tests: serves a video file, looping, at ``rtsp://127.0.0.1:PORT/cam``.

Run as its own process (``python tests/rtsp_camera.py VIDEO PORT``) so that a test can kill it
(SIGKILL: the camera drops) or freeze it (SIGSTOP: the camera stalls without an error) and start it
again on the same port. It prints ``ready`` once the server listens.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main(video: str, port: int) -> None:
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    factory = GstRtspServer.RTSPMediaFactory()
    # Motion JPEG over RTP, as many IP cameras send it: every frame stands alone. Shared, so that
    # every client sees the one running stream, as with a real camera.
    factory.set_launch(
        f'( filesrc location="{video}" ! decodebin ! videoconvert ! '
        "jpegenc quality=90 ! rtpjpegpay name=pay0 pt=26 )"
    )
    factory.set_shared(True)
    server.get_mount_points().add_factory("/cam", factory)
    if server.attach(None) == 0:
        raise SystemExit(f"cannot listen on 127.0.0.1:{port}")
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
