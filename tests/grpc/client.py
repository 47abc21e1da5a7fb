"""A gRPC client on gRPC C-core (grpcio) for the cookie-diet suite.

Reads a JSON list of call groups on stdin,

    [{"method": "/ml_metadata.MetadataStoreService/GetArtifacts",
      "metadata": [["cookie", "a=b"], ["authorization", "Bearer ..."]],
      "count": 3}, ...]

makes the unary calls in order on one channel to `--target` (Envoy's
listener), and prints one JSON line per call:

    {"group": 0, "code": "OK", "details": null, "response": {...}}

`response` is the server's JSON reply (null when the call failed). A failed
call is a status, never an exception: transport errors show up as their code
(UNAVAILABLE, ...) with grpcio's details.

    .venv/bin/python tests/grpc/client.py --target 127.0.0.1:8080 < calls.json
"""

import argparse
import json
import sys

import grpc


def call(channel, method, metadata, timeout):
    stub = channel.unary_unary(method)  # raw bytes in and out
    try:
        reply = stub(b"", metadata=metadata, timeout=timeout)
    except grpc.RpcError as error:
        return {"code": error.code().name, "details": error.details(), "response": None}
    try:
        response = json.loads(reply)
    except ValueError:
        response = reply.decode(errors="replace")
    return {"code": "OK", "details": None, "response": response}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True)
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args()
    groups = json.load(sys.stdin)
    with grpc.insecure_channel(args.target) as channel:
        for index, group in enumerate(groups):
            metadata = [tuple(pair) for pair in group.get("metadata", [])]
            for _ in range(group.get("count", 1)):
                result = call(channel, group["method"], metadata, args.timeout)
                result["group"] = index
                print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
