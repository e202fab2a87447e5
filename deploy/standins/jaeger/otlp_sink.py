"""STAND-IN for jaegertracing/jaeger, for machines that cannot reach an image registry.

Not Jaeger: a sink that accepts every OTLP export and keeps only what a check needs.
  4317   OTLP/gRPC: any unary method is answered with an empty message (a valid Export*Response)
  4318   OTLP/HTTP: any POST is answered 200 with an empty body
  13133  GET/HEAD /status (the collector's health extension): 200
  16686  GET /api/services: {"data": [every service.name seen in an export]}, like Jaeger's query
         API; GET /api/stats: exports received per method
Built by scripts/build_standin_images.sh (Debian's python3-grpcio); see deploy/standins/README.md.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc

# An OTLP resource attribute is KeyValue{key=1: "service.name", value=2: AnyValue{string_value=1}}
# in protobuf: the key's bytes, then field 2 (0x12) with a length, then 0x0a and the string.
SERVICE_NAME = re.compile(rb"\x0a\x0cservice\.name\x12[\x00-\x7f]\x0a([\x00-\x7f])", re.DOTALL)

lock = threading.Lock()
services: set[str] = set()
exports: Counter[str] = Counter()


def record(method: str, payload: bytes) -> None:
    names = set()
    for match in SERVICE_NAME.finditer(payload):
        length = match.group(1)[0]
        start = match.end()
        names.add(payload[start : start + length].decode("utf-8", "replace"))
    with lock:
        exports[method] += 1
        services.update(names)


class AnyExport(grpc.GenericRpcHandler):
    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        method = handler_call_details.method

        def export(request: bytes, context: grpc.ServicerContext) -> bytes:
            record(method, request)
            return b""

        return grpc.unary_unary_rpc_method_handler(export)


class Http(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, code: int, body: bytes, kind: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        port = self.server.server_address[1]
        if port == 13133 and self.path.startswith("/status"):
            self._send(200, b'{"status":"StatusOK"}')
        elif port == 16686 and self.path.startswith("/api/services"):
            with lock:
                body = json.dumps({"data": sorted(services)}).encode()
            self._send(200, body)
        elif port == 16686 and self.path.startswith("/api/stats"):
            with lock:
                body = json.dumps(dict(exports)).encode()
            self._send(200, body)
        elif port == 16686 and self.path == "/":
            self._send(200, b"jaeger stand-in: see /api/services\n", "text/plain")
        else:
            self._send(404, b"{}")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        payload = self.rfile.read(length)
        if self.server.server_address[1] == 4318:
            record(f"http:{self.path}", payload)
            self._send(200, b"", self.headers.get("Content-Type") or "application/x-protobuf")
        else:
            self._send(404, b"{}")


def main() -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((AnyExport(),))
    server.add_insecure_port("0.0.0.0:4317")
    server.start()
    for port in (4318, 13133, 16686):
        http = ThreadingHTTPServer(("0.0.0.0", port), Http)
        threading.Thread(target=http.serve_forever, daemon=True).start()
    print("jaeger stand-in: OTLP 4317/4318, health 13133, query 16686", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
