"""Send a DICOM series to a PACS with C-STORE (pynetdicom) and say what the peer accepted.

    >>> peer = parse_peer("ORTHANC@localhost:4242")
    >>> peer.aet, peer.host, peer.port
    ('ORTHANC', 'localhost', 4242)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Peer", "SendReport", "parse_peer", "send_series"]

CALLING_AET = "DPNSL"
_PEER = re.compile(r"^(?P<aet>[^@]{1,16})@(?P<host>[^:@]+):(?P<port>\d{1,5})$")


@dataclass(frozen=True)
class Peer:
    """A DICOM node: its application entity title, host and port."""

    aet: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.aet}@{self.host}:{self.port}"


def parse_peer(text: str) -> Peer:
    """``AET@host:port`` -> :class:`Peer`.

    Raises:
        ValueError: not of that form (the message shows one), or a port outside 1..65535.
    """
    match = _PEER.match(text.strip())
    if match is None:
        raise ValueError(f"`--send` must be AET@host:port such as ORTHANC@pacs.example.org:4242 (an AE title of at "
                         f"most 16 characters), got {text!r}")
    port = int(match["port"])
    if not 0 < port < 65536:
        raise ValueError(f"`--send` port must be in 1..65535, got {port}")
    return Peer(match["aet"], match["host"], port)


@dataclass(frozen=True)
class SendReport:
    """What the peer answered: instances stored (status 0x0000 or a warning 0xB...) and the failures."""

    peer: Peer
    sent: int
    stored: int
    failures: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return self.stored == self.sent and not self.failures

    def text(self) -> str:
        line = f"sent to {self.peer}: {self.stored} of {self.sent} instance(s) stored"
        if self.failures:
            shown = "; ".join(self.failures[:3]) + ("; ..." if len(self.failures) > 3 else "")
            line += f", {len(self.failures)} refused ({shown})"
        return line


def send_series(files: Sequence[str | Path], peer: Peer, *, calling_aet: str = CALLING_AET,
                timeout: float = 30.0) -> SendReport:
    """C-STORE every file of ``files`` to ``peer`` over one association.

    Raises:
        ConnectionError: no association (peer down, wrong AE title or port, refused): the message names the peer
            and what to check.
    """
    from pydicom import dcmread
    from pynetdicom import AE
    from pynetdicom.presentation import build_context

    datasets = [dcmread(str(f)) for f in files]
    ae = AE(ae_title=calling_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    for sop_class in sorted({ds.SOPClassUID for ds in datasets}):
        ae.requested_contexts.append(build_context(sop_class))  # explicit and implicit VR little endian
    assoc = ae.associate(peer.host, peer.port, ae_title=peer.aet)
    if not assoc.is_established:
        raise ConnectionError(f"no DICOM association with {peer} (is the PACS running, and are its AE title and "
                              "port right? does it accept this calling AE title, " + repr(calling_aet) + "?)")
    stored, failures = 0, []
    try:
        for path, ds in zip(files, datasets, strict=True):
            status = assoc.send_c_store(ds)
            code = getattr(status, "Status", None)
            if code is not None and (code == 0x0000 or (code & 0xF000) == 0xB000):
                stored += 1
            else:
                failures.append(f"{Path(path).name}: " + ("no answer" if code is None else f"status 0x{code:04X}"))
    finally:
        assoc.release()
    return SendReport(peer, len(datasets), stored, tuple(failures))
