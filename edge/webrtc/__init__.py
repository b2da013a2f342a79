"""The edge's WebRTC peer (aiortc): camera and microphone out, the worker's video and audio
onto the device's display, captions and device commands over data channels.

See docs/telepresence.md for the signaling and data-channel messages.
"""

from __future__ import annotations

from edge.webrtc.channels import Caption, CaptionText, CommandResultMsg
from edge.webrtc.display import Display, MediaStats, RecordingDisplay, make_display
from edge.webrtc.media import (
    LocalMedia,
    MediaSourceError,
    TestPatternTrack,
    ToneTrack,
    open_local_media,
    read_frame_counter,
)
from edge.webrtc.peer import MediaPeer, PeerClosedError, PeerError
from edge.webrtc.signaling import MemorySignaler, Signaler, SignalingClosed, parse_signal

__all__ = [
    "Caption", "CaptionText", "CommandResultMsg", "Display", "LocalMedia", "MediaPeer",
    "MediaSourceError", "MediaStats", "MemorySignaler", "PeerClosedError", "PeerError",
    "RecordingDisplay", "Signaler", "SignalingClosed", "TestPatternTrack", "ToneTrack",
    "make_display", "open_local_media", "parse_signal", "read_frame_counter",
]
