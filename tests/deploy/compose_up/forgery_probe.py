"""Runs INSIDE Project's container of the compose stack (piped to the image's ``python -``): sends
forged service tokens to the other services' mTLS ports with Project's real client certificate,
so that only the token's signature can be what refuses them.

Reads the plan, a JSON list of ``{"target", "path", "client_streaming", "metadata"}``, from the
file named by its first argument (bind-mounted by the test), and prints one JSON list: each call's
gRPC status code name (``OK`` when it was not refused).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc

OWN = Path("/var/lib/zoptal/identity")
TIMEOUT = 10.0


def _identity(value: bytes) -> bytes:
    return value


def _one_empty_message() -> Iterator[bytes]:
    yield b""


def main() -> None:
    plan = json.loads(Path(sys.argv[1]).read_text())
    credentials = grpc.ssl_channel_credentials(
        root_certificates=(OWN / "tls" / "ca.crt").read_bytes(),
        private_key=(OWN / "tls" / "tls.key").read_bytes(),
        certificate_chain=(OWN / "tls" / "tls.crt").read_bytes(),
    )
    channels: dict[str, grpc.Channel] = {}
    codes = []
    for call in plan:
        channel = channels.get(call["target"])
        if channel is None:
            channel = channels[call["target"]] = grpc.secure_channel(call["target"], credentials)
        metadata = tuple((key, value) for key, value in call["metadata"])
        try:
            # An empty message is every request type's default: the auth layer answers first.
            if call["client_streaming"]:
                channel.stream_unary(call["path"], _identity, _identity)(
                    _one_empty_message(), metadata=metadata, timeout=TIMEOUT
                )
            else:
                channel.unary_unary(call["path"], _identity, _identity)(
                    b"", metadata=metadata, timeout=TIMEOUT
                )
            codes.append("OK")
        except grpc.RpcError as error:
            codes.append(error.code().name)
    for channel in channels.values():
        channel.close()
    print(json.dumps(codes))


if __name__ == "__main__":
    main()
