"""The local AWS test server: moto (STS, IAM, ...) with EKS access entries in front (eks.py).

    python hack/local-aws/server.py --port PORT [--host 127.0.0.1]

AWS_AUTH_TEST_EKS_RATE and AWS_AUTH_TEST_EKS_BURST size the EKS token bucket (0: no limit);
AWS_AUTH_TEST_EKS_CREATOR_ARN is the principal that creates clusters.
"""

import argparse
import os
import sys

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eks  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    state = eks.Eks(
        creator=os.environ.get("AWS_AUTH_TEST_EKS_CREATOR_ARN"),
        rate=float(os.environ.get("AWS_AUTH_TEST_EKS_RATE", "10")),
        burst=int(os.environ.get("AWS_AUTH_TEST_EKS_BURST", "20")),
    )
    app = eks.Server(DomainDispatcherApplication(create_backend_app), state)
    run_simple(args.host, args.port, app, threaded=True, use_reloader=False)


if __name__ == "__main__":
    main()
