"""A sha256 whose running state can be saved between runs, so a resumed copy still checks the
whole file against the hub's published digest without downloading it again.

Why: a file is uploaded in parts; when a copy stops half-way, the parts already in S3 stay, and
the next run downloads from the first missing byte. The file's sha256 must still cover every
byte, but S3 cannot hand back the bytes of an unfinished multipart upload, and ``hashlib``
objects cannot be saved. SHA-256 itself can: after each 64-byte block its whole state is the
eight 32-bit chaining words ``H0..H7`` plus the message length (FIPS 180-4, section 6.2). Parts
are whole MiB, so at every part boundary no partial block is pending, and :class:`Sha256State`
(``h`` as 64 hex digits, ``length`` in bytes) is the complete state. The copy stores it in the
part's record beside the upload and restores it on resume.

How: OpenSSL's ``SHA256_CTX`` (``include/openssl/sha.h``: ``h[8]``, ``Nl``, ``Nh`` (the bit
length), ``data[16]``, ``num``, ``md_len``, all 32-bit) is read and written through ``ctypes``,
and ``SHA256_Update`` does the hashing: the same OpenSSL code (SHA-NI where the CPU has it) that
``hashlib`` runs, called with the GIL released. The library is the ``libcrypto`` that Python's
own ``_hashlib`` loaded (Linux, as in Lambda), else the one the dynamic loader finds. Where
none offers ``SHA256_Init`` (an OpenSSL built without its deprecated API), :data:`RESUMABLE` is
False: hashing falls back to ``hashlib``, :meth:`ResumableSha256.state` returns ``None``, and an
interrupted file restarts from byte 0 (still verified).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
from dataclasses import dataclass
from pathlib import Path

BLOCK = 64  # bytes per SHA-256 block


@dataclass(frozen=True)
class Sha256State:
    """SHA-256 state after ``length`` bytes (a multiple of 64): chaining words as 64 hex digits."""

    h: str
    length: int

    def __post_init__(self) -> None:
        if len(self.h) != 64 or self.length < 0 or self.length % BLOCK:
            raise ValueError(f"not a SHA-256 state at a block boundary: {self}")
        int(self.h, 16)  # ValueError if not hex


class _Ctx(ctypes.Structure):
    _fields_ = [
        ("h", ctypes.c_uint32 * 8),
        ("Nl", ctypes.c_uint32),
        ("Nh", ctypes.c_uint32),
        ("data", ctypes.c_uint32 * 16),
        ("num", ctypes.c_uint32),
        ("md_len", ctypes.c_uint32),
    ]


def _candidates() -> list[str]:
    found = []
    try:
        import _hashlib  # noqa: F401 - loads the libcrypto Python itself uses

        maps = Path("/proc/self/maps").read_text()
        found += sorted({line.split()[-1] for line in maps.splitlines() if "libcrypto" in line.split()[-1]})
    except (ImportError, OSError, IndexError):
        pass
    name = ctypes.util.find_library("crypto")
    if name:
        found.append(name)
    return found + ["libcrypto.so.3", "libcrypto.so.1.1", "libcrypto.dylib"]


def _load() -> ctypes.CDLL | None:
    for name in _candidates():
        try:
            lib = ctypes.CDLL(name)
            init, update, final = lib.SHA256_Init, lib.SHA256_Update, lib.SHA256_Final
        except (OSError, AttributeError):
            continue
        init.argtypes = [ctypes.POINTER(_Ctx)]
        update.argtypes = [ctypes.POINTER(_Ctx), ctypes.c_void_p, ctypes.c_size_t]
        final.argtypes = [ctypes.c_char_p, ctypes.POINTER(_Ctx)]
        for fn in (init, update, final):
            fn.restype = ctypes.c_int
        if _self_test(lib):
            return lib
    return None


def _self_test(lib: ctypes.CDLL) -> bool:
    ctx = _Ctx()
    lib.SHA256_Init(ctypes.byref(ctx))
    data = bytes(range(256)) * 3
    lib.SHA256_Update(ctypes.byref(ctx), data, len(data))
    out = ctypes.create_string_buffer(32)
    lib.SHA256_Final(out, ctypes.byref(ctx))
    return out.raw == hashlib.sha256(data).digest() and ctypes.sizeof(_Ctx) == 112


_LIB = _load()
RESUMABLE = _LIB is not None  # False: state() returns None and interrupted files restart


class ResumableSha256:
    """sha256 that can start from a :class:`Sha256State` and report its state at block boundaries.

    ``update`` takes ``bytes``, ``bytearray`` or a writable ``memoryview``.
    """

    def __init__(self, state: Sha256State | None = None) -> None:
        self.length = 0
        self._ctx: _Ctx | None = None
        self._fallback = None
        if _LIB is None:
            if state is not None and state.length:
                raise ValueError("resuming a sha256 needs OpenSSL's SHA256 functions, not found")
            self._fallback = hashlib.sha256()
            return
        self._ctx = _Ctx()
        _LIB.SHA256_Init(ctypes.byref(self._ctx))
        if state is not None and state.length:
            words = bytes.fromhex(state.h)
            for i in range(8):
                self._ctx.h[i] = int.from_bytes(words[4 * i:4 * i + 4], "big")
            bits = state.length * 8
            self._ctx.Nl, self._ctx.Nh = bits & 0xFFFFFFFF, bits >> 32
            self.length = state.length

    def update(self, data: bytes | bytearray | memoryview) -> None:
        """Hash ``data`` (the GIL is released while OpenSSL runs)."""
        n = len(data)
        if self._fallback is not None:
            self._fallback.update(data)
        elif n:
            if isinstance(data, bytes):
                _LIB.SHA256_Update(ctypes.byref(self._ctx), data, n)  # type: ignore[union-attr]
            else:
                buf = (ctypes.c_char * n).from_buffer(data)
                _LIB.SHA256_Update(ctypes.byref(self._ctx), buf, n)  # type: ignore[union-attr]
        self.length += n

    def state(self) -> Sha256State | None:
        """The state to save (``None`` without OpenSSL). Raises ``ValueError`` mid-block."""
        if self._ctx is None:
            return None
        if self.length % BLOCK:
            raise ValueError(f"sha256 state is only saved at a 64-byte boundary, not after {self.length} bytes")
        h = b"".join(int(w).to_bytes(4, "big") for w in self._ctx.h)
        return Sha256State(h.hex(), self.length)

    def hexdigest(self) -> str:
        """The digest of everything hashed so far (the object can keep hashing)."""
        if self._fallback is not None:
            return self._fallback.hexdigest()
        ctx = _Ctx()
        ctypes.memmove(ctypes.byref(ctx), ctypes.byref(self._ctx), ctypes.sizeof(_Ctx))  # Final pads its ctx
        out = ctypes.create_string_buffer(32)
        _LIB.SHA256_Final(out, ctypes.byref(ctx))  # type: ignore[union-attr]
        return out.raw.hex()
