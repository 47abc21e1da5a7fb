"""A gRPC server on gRPC C-core (grpcio) for the cookie-diet suite.

Serves `/ml_metadata.MetadataStoreService/GetArtifacts` and `/other.Service/Echo`
with one generic handler on raw bytes (no protoc): the reply is a JSON summary
of the invocation metadata it received. Default server options, so the default
metadata limits of gRPC C-core apply (`grpc.max_metadata_size` 8 KiB soft,
`grpc.absolute_max_metadata_size` 16 KiB hard), as in ml-metadata's server.

Binds 127.0.0.1:0 and prints `PORT <n>` on stdout; runs until stdin closes
(the test process holds the pipe, so the server cannot outlive it).

    .venv/bin/python tests/grpc/server.py
"""

import json
import sys
from concurrent import futures

import grpc

# Cookie values longer than this are summarized (length only), not echoed.
ECHO_VALUE_LIMIT = 4096


def summarize(method, request, context):
    metadata = list(context.invocation_metadata())
    cookies = [value for key, value in metadata if key == "cookie"]
    names = []
    for header in cookies:
        for pair in header.split(";"):
            pair = pair.strip()
            if pair:
                names.append(pair.split("=", 1)[0].strip())
    summary = {
        "method": method,
        "cookie_headers": len(cookies),
        "cookie_bytes": sum(len(header) for header in cookies),
        "cookie_names": names,
        "cookies": [header if len(header) <= ECHO_VALUE_LIMIT else None for header in cookies],
        "kubeflow_userid": next((v for k, v in metadata if k == "kubeflow-userid"), None),
        "authorization": any(k == "authorization" for k, _ in metadata),
        "metadata_keys": [key for key, _ in metadata],
        "request_bytes": len(request),
    }
    return json.dumps(summary).encode()


def handler(method):
    return grpc.unary_unary_rpc_method_handler(
        lambda request, context: summarize(method, request, context)
    )


def main():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "ml_metadata.MetadataStoreService",
                {"GetArtifacts": handler("/ml_metadata.MetadataStoreService/GetArtifacts")},
            ),
            grpc.method_handlers_generic_handler(
                "other.Service", {"Echo": handler("/other.Service/Echo")}
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"PORT {port}", flush=True)
    sys.stdin.read()  # until the parent closes the pipe (or dies)
    server.stop(grace=None)


if __name__ == "__main__":
    main()
