"""An opt-in disk cache of decoded JPEG frames (config key `frame_cache`), read instead of decoding again.

Decoding a 320 x 240 JPEG is most of what loading a training clip costs (~0.3 ms a frame against ~0.01 ms
to read the decoded frame back from the page cache). With `frame_cache: <folder>` every frame is decoded
once, at its full size, and kept there as raw uint8 pixels; later clips read those. The pixels are the
full decode's exactly, so training, validation and evaluation all may use it (training then crops the full
frame instead of decoding at 1/2 or 1/4: closer to the reference's pixels too). It costs H x W x C bytes
a frame (230 KB at 320 x 240, ~10x the JPEG): meant for data sets that fit on a fast disk, ideally in the
page cache (a tmpfs such as /dev/shm works).

An entry is ``<folder>/<sha1 of the frame folder's real path>/<frame file name>.u8``: a header, the pixels,
and the header again as a trailer. The header holds the frame's shape and its JPEG's size, mtime, ctime
and inode when it was decoded; every read compares them with the JPEG's stat, so a frame that changed
(rewritten, replaced, re-extracted) is decoded again and its entry replaced. Entries are written to a
temporary of the writing process and renamed into place: a process killed mid-write leaves only its
temporary (removed when a later process opens that folder), never a partial entry; an entry of the wrong
size, or whose trailer differs from its header, is treated as missing. Deleting the folder is always safe.
"""
import hashlib
import os
import struct
import sys

import numpy as np

from core.result_path import process_alive

# magic, height, width, channels, JPEG size, mtime_ns, ctime_ns, inode
_HEADER = struct.Struct("<8sIIIqqqq")
_MAGIC = b"a3dframe"
_TEMPORARY = ".tmp"


def _fingerprint(stat):
    return stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino


class FrameCache:
    """Decoded frames under `root`; `read(path, kind, decode)` returns frame `path` from there or decodes it."""

    def __init__(self, root):
        self.root = os.path.abspath(root)
        self._folders = {}  # frame folder -> its entry folder (created and cleaned once per process)
        self._write_failed = False

    def _folder(self, video_dir):
        folder = self._folders.get(video_dir)
        if folder is None:
            key = hashlib.sha1(os.path.realpath(video_dir).encode()).hexdigest()
            folder = os.path.join(self.root, key)
            os.makedirs(folder, exist_ok=True)
            self._remove_dead_temporaries(folder)
            self._folders[video_dir] = folder
        return folder

    @staticmethod
    def _remove_dead_temporaries(folder):
        """Temporaries of processes that died while writing them (their entries were never renamed in)."""
        for name in os.listdir(folder):
            pid = name.rpartition(_TEMPORARY)[2]
            if _TEMPORARY in name and pid.isdigit() and not process_alive(int(pid)):
                try:
                    os.remove(os.path.join(folder, name))
                except FileNotFoundError:  # another process removed it first
                    pass

    def entry_path(self, path, kind):
        """Where the frame of JPEG `path` decoded as `kind` ('rgb' or 'gray') is kept."""
        video_dir, name = os.path.split(path)
        return os.path.join(self._folder(video_dir), f"{name}.{kind}.u8")

    def read(self, path, kind, decode):
        """Frame `path` (an H x W [x C] uint8 array) from its entry, or `decode(path)` it and write the entry.

        The JPEG's stat is taken before decoding: if it changes meanwhile, the entry is already stale.
        A missing JPEG raises FileNotFoundError (callers turn it into their error).
        """
        fingerprint = _fingerprint(os.stat(path))
        try:
            entry = self.entry_path(path, kind)
            frame = self._load(entry, fingerprint)
        except OSError as error:  # the cache cannot be used (a read-only or full disk, an I/O error)
            self._warn(error)
            return decode(path)
        if frame is None:
            frame = decode(path)
            self._write(entry, frame, fingerprint)
        return frame

    def _warn(self, error):
        if not self._write_failed:
            self._write_failed = True
            print(f"frame_cache {self.root}: cannot write or read there ({error}); frames that are not cached "
                  "yet are decoded each time", file=sys.stderr)

    @staticmethod
    def _load(entry, fingerprint):
        try:
            descriptor = os.open(entry, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            header = os.pread(descriptor, _HEADER.size, 0)
            if len(header) != _HEADER.size:
                return None
            magic, height, width, channels, *stored = _HEADER.unpack(header)
            n_bytes = height * width * channels
            if (magic != _MAGIC or tuple(stored) != fingerprint
                    or os.fstat(descriptor).st_size != 2 * _HEADER.size + n_bytes):
                return None
            frame = np.empty((height, width, channels), np.uint8)
            trailer = bytearray(_HEADER.size)
            if os.preadv(descriptor, [frame, trailer], _HEADER.size) != n_bytes + _HEADER.size or trailer != header:
                return None
        finally:
            os.close(descriptor)
        return frame if channels > 1 else frame[..., 0]

    def _write(self, entry, frame, fingerprint):
        """Write the entry atomically; a full disk or a read-only folder only costs the caching (said once)."""
        height, width = frame.shape[:2]
        channels = frame.shape[2] if frame.ndim == 3 else 1
        header = _HEADER.pack(_MAGIC, height, width, channels, *fingerprint)
        temporary = f"{entry}{_TEMPORARY}{os.getpid()}"
        try:
            with open(temporary, "wb") as file:
                file.write(header)
                file.write(np.ascontiguousarray(frame).data)
                file.write(header)
            os.replace(temporary, entry)
        except OSError as error:
            try:
                os.remove(temporary)
            except OSError:
                pass
            self._warn(error)
