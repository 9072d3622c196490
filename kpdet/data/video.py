"""Video files frame by frame (OpenCV): RGB frames in, drawn RGB frames out.

A frame that cannot be decoded before the container's frame count is reached is an
error naming the file and the frame; the end of a stream whose count is unknown is not.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kpdet.errors import UserError

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg", ".wmv", ".webm"}


class VideoError(UserError, ValueError):
    """A video that cannot be opened, or a frame that cannot be decoded; the message names both."""


@dataclass(frozen=True)
class VideoInfo:
    path: str
    fps: float
    width: int
    height: int
    frame_count: int  # as the container states it; 0 when unknown


def _capture(path):
    import cv2

    return cv2.VideoCapture(str(path))


def open_video(path: str | os.PathLike):
    """(VideoInfo, opened cv2.VideoCapture); VideoError when it cannot be opened."""
    import cv2

    if not Path(path).is_file():
        raise VideoError(f"no video file at {path}")
    capture = _capture(path)
    if not capture.isOpened():
        raise VideoError(f"cannot open video {path} (not a video, or a codec OpenCV lacks)")
    info = VideoInfo(str(path), float(capture.get(cv2.CAP_PROP_FPS) or 0.0),
                     int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                     max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT))))
    return info, capture


def read_frames(info: VideoInfo, capture, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """uint8 RGB frames [H, W, 3] in order; a frame that fails to decode before the stated count
    raises VideoError naming it (frames are numbered from 0)."""
    import cv2

    try:
        index = 0
        while max_frames is None or index < max_frames:
            ok, frame = capture.read()
            if not ok or frame is None:
                if info.frame_count and index < info.frame_count:
                    raise VideoError(f"cannot decode frame {index} of {info.frame_count} in {info.path} "
                                     f"(corrupt or truncated video)")
                return
            if frame.shape[:2] != (info.height, info.width):
                raise VideoError(f"frame {index} of {info.path} is {frame.shape[1]}x{frame.shape[0]} px, "
                                 f"the video says {info.width}x{info.height}")
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            index += 1
    finally:
        capture.release()


class VideoSink:
    """Writes RGB frames to an mp4 (mp4v) of the given fps and size; `close` finalises the file."""

    def __init__(self, path: str | os.PathLike, fps: float, width: int, height: int):
        import cv2

        self.path = Path(path)
        fourcc = cv2.VideoWriter_fourcc(*"mp4v")
        self.writer = cv2.VideoWriter(str(path), fourcc, fps or 30.0, (width, height))
        if not self.writer.isOpened():
            raise VideoError(f"cannot write video {path} (mp4v codec unavailable?)")

    def write(self, frame: np.ndarray) -> None:
        self.writer.write(np.ascontiguousarray(frame[:, :, ::-1]))

    def close(self) -> None:
        self.writer.release()
