"""EKS access entries for the local AWS test server.

moto serves STS and IAM; its EKS knows neither access entries nor a cluster's `accessConfig`.
This module answers those EKS operations itself, in front of moto:

- CreateCluster, DescribeCluster, ListClusters, DeleteCluster and UpdateClusterConfig with
  `accessConfig` (authentication mode and the cluster creator's bootstrap entry);
- CreateAccessEntry, DescribeAccessEntry, ListAccessEntries, UpdateAccessEntry,
  DeleteAccessEntry, AssociateAccessPolicy, DisassociateAccessPolicy,
  ListAssociatedAccessPolicies, ListAccessPolicies, TagResource, UntagResource,
  ListTagsForResource.

Requests and responses are checked against botocore's EKS service model (the shapes the real
service publishes): a request that does not fit is refused as EKS would refuse it, a response that
does not fit is a defect of this server and answered with a 500. The rules are EKS's documented
ones (Amazon EKS User Guide, "Create access entries", "Set a custom username", "Change
authentication mode"): one entry per principal, no STS session ARNs, node types only for roles in
the cluster's account and without username or groups, reserved username prefixes, no `system:`
groups, authentication mode changes one way only. Each account and operation has a token bucket
(AWS_AUTH_TEST_EKS_RATE requests/s sustained, AWS_AUTH_TEST_EKS_BURST burst; 10 and 20 by
default) past which the answer is ThrottlingException, as the EKS API throttles.
"""

import datetime
import json
import re
import threading
import time
import urllib.parse
import uuid

from botocore.loaders import Loader
from botocore.model import ServiceModel
from botocore.validate import ParamValidator

DEFAULT_ACCOUNT = "111122223333"
MODES = ("CONFIG_MAP", "API_AND_CONFIG_MAP", "API")
# The one-way ladder: a mode may only move to the right.
MODE_ORDER = {m: i for i, m in enumerate(MODES)}
RESERVED_USERNAME_PREFIXES = ("system:", "eks:", "aws:", "amazon:", "iam:")
NODE_TYPES = ("EC2", "EC2_LINUX", "EC2_WINDOWS", "FARGATE_LINUX", "HYBRID_LINUX", "HYPERPOD_LINUX")
POLICY_PREFIX = "arn:aws:eks::aws:cluster-access-policy/"
ACCESS_POLICIES = (
    "AmazonEKSAdminPolicy",
    "AmazonEKSAdminViewPolicy",
    "AmazonEKSClusterAdminPolicy",
    "AmazonEKSEditPolicy",
    "AmazonEKSViewPolicy",
    "AmazonEKSAutoNodePolicy",
    "AmazonEKSBlockStoragePolicy",
    "AmazonEKSComputePolicy",
    "AmazonEKSLoadBalancingPolicy",
    "AmazonEKSNetworkingPolicy",
)
PRINCIPAL = re.compile(r"^arn:(aws|aws-cn|aws-us-gov|aws-iso|aws-iso-b):iam::(\d{12}):(role|user)/(.+)$")

ERROR_STATUS = {
    "ResourceNotFoundException": 404,
    "ResourceInUseException": 409,
    "InvalidParameterException": 400,
    "InvalidRequestException": 400,
    "ResourceLimitExceededException": 400,
    "ThrottlingException": 429,
    "ServerException": 500,
}


class EksError(Exception):
    def __init__(self, code, message, **extra):
        super().__init__(message)
        self.code = code
        self.message = message
        self.extra = extra


def now():
    return datetime.datetime.now(datetime.timezone.utc)


class Model:
    """botocore's EKS model: routes, request parsing, shape validation."""

    def __init__(self):
        self.model = ServiceModel(Loader().load_service_model("eks", "service-2"))
        self.routes = []
        for name in self.model.operation_names:
            op = self.model.operation_model(name)
            uri = op.http["requestUri"].split("?")[0]
            pattern = re.sub(r"\{(\w+)\+\}", r"(?P<\1>.+)", uri)
            pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
            self.routes.append((op.http["method"], re.compile("^" + pattern + "$"), op))
        self.validator = ParamValidator()

    def route(self, method, path):
        # The most specific route first: literal segments beat labels.
        found = [
            (op, m.groupdict())
            for (meth, rx, op) in self.routes
            if meth == method and (m := rx.match(path))
        ]
        if not found:
            return None, None
        found.sort(key=lambda f: sum(len(v) for v in f[1].values()))
        return found[0]

    def parse(self, op, labels, query, body):
        """The operation's parameters from the URI labels, query string and JSON body."""
        shape = op.input_shape
        params = {}
        if shape is None:
            return params
        for name, member in shape.members.items():
            where = member.serialization.get("location")
            wire = member.serialization.get("name", name)
            if where == "uri":
                if wire in labels:
                    params[name] = urllib.parse.unquote(labels[wire])
            elif where == "querystring":
                if wire in query:
                    values = query[wire]
                    if member.type_name == "list":
                        params[name] = values
                    elif member.type_name == "integer":
                        try:
                            params[name] = int(values[0])
                        except ValueError:
                            raise EksError(
                                "InvalidParameterException", f"{wire} must be an integer"
                            ) from None
                    else:
                        params[name] = values[0]
            elif where is None and name in body:
                params[name] = body[name]
        unknown = set(body) - {n for n, m in shape.members.items() if "location" not in m.serialization}
        if unknown:
            raise EksError(
                "InvalidParameterException", f"unknown field(s) in the request: {sorted(unknown)}"
            )
        return params

    def check_request(self, op, params):
        report = self.validator.validate(params, op.input_shape)
        if report.has_errors():
            raise EksError("InvalidParameterException", report.generate_report())

    def check_response(self, op, out):
        if op.output_shape is None:
            return
        report = self.validator.validate(out, op.output_shape)
        if report.has_errors():
            raise EksError(
                "ServerException",
                f"the local EKS server answered outside the {op.name} model: "
                + report.generate_report(),
            )


class Bucket:
    """A token bucket: `rate` tokens a second, at most `burst`."""

    def __init__(self, rate, burst):
        self.rate, self.burst = rate, burst
        self.tokens = float(burst)
        self.at = time.monotonic()

    def take(self):
        t = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (t - self.at) * self.rate)
        self.at = t
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class Eks:
    """The state of the clusters and their access entries, and the operations on them."""

    def __init__(self, account=DEFAULT_ACCOUNT, creator=None, rate=10.0, burst=20):
        self.account = account
        self.creator = creator or f"arn:aws:iam::{account}:role/cluster-creator"
        self.rate, self.burst = rate, burst
        self.lock = threading.Lock()
        self.clusters = {}
        self.buckets = {}
        self.calls = {}
        self.throttled = {}
        self.window = {}

    # -- bookkeeping ---------------------------------------------------------------------------

    def admit(self, operation):
        """Counts the call and answers ThrottlingException past the operation's bucket."""
        with self.lock:
            self.calls[operation] = self.calls.get(operation, 0) + 1
            if self.rate > 0:
                b = self.buckets.setdefault(operation, Bucket(self.rate, self.burst))
                if not b.take():
                    self.throttled[operation] = self.throttled.get(operation, 0) + 1
                    raise EksError("ThrottlingException", "Rate exceeded")
            # When the admitted calls of each operation began and ended: their rate.
            t = time.monotonic()
            first, _ = self.window.get(operation, (t, t))
            self.window[operation] = (first, t)

    def stats(self):
        with self.lock:
            return {
                "calls": dict(self.calls),
                "throttled": dict(self.throttled),
                "seconds": {op: round(b - a, 3) for op, (a, b) in self.window.items()},
            }

    def reset_stats(self):
        with self.lock:
            self.calls.clear()
            self.throttled.clear()
            self.window.clear()
            self.buckets.clear()

    def cluster(self, name):
        c = self.clusters.get(name)
        if c is None:
            raise EksError("ResourceNotFoundException", f"No cluster found for name: {name}.", clusterName=name)
        return c

    def api_mode(self, c):
        mode = c["accessConfig"]["authenticationMode"]
        if mode not in ("API", "API_AND_CONFIG_MAP"):
            raise EksError(
                "InvalidRequestException",
                "The cluster's authentication mode must be set to one of [API, API_AND_CONFIG_MAP] "
                "to perform this operation.",
                clusterName=c["name"],
            )

    def entry(self, c, principal):
        e = c["entries"].get(principal)
        if e is None:
            raise EksError(
                "ResourceNotFoundException",
                f"The specified principalArn could not be found. You can view your available "
                f"access entries with 'list-access-entries'.",
                clusterName=c["name"],
            )
        return e

    # -- clusters ------------------------------------------------------------------------------

    def CreateCluster(self, p, region):
        name = p["name"]
        if name in self.clusters:
            raise EksError("ResourceInUseException", f"Cluster already exists with name: {name}", clusterName=name)
        access = p.get("accessConfig", {})
        mode = access.get("authenticationMode", "CONFIG_MAP")
        bootstrap = access.get("bootstrapClusterCreatorAdminPermissions", True)
        arn = f"arn:aws:eks:{region}:{self.account}:cluster/{name}"
        c = {
            "name": name,
            "arn": arn,
            "region": region,
            "createdAt": now(),
            "version": p.get("version", "1.37"),
            "roleArn": p["roleArn"],
            "status": "ACTIVE",
            "endpoint": f"https://{uuid.uuid4().hex.upper()}.gr7.{region}.eks.amazonaws.com",
            "identity": {
                "oidc": {"issuer": f"https://oidc.eks.{region}.amazonaws.com/id/{uuid.uuid4().hex.upper()}"}
            },
            "tags": dict(p.get("tags", {})),
            "accessConfig": {
                "authenticationMode": mode,
                "bootstrapClusterCreatorAdminPermissions": bootstrap,
            },
            "entries": {},
            "updates": [],
        }
        self.clusters[name] = c
        # The creator's admin entry is made at creation when the mode has the API.
        if bootstrap and mode != "CONFIG_MAP":
            self.add_entry(c, self.creator, "STANDARD", None, [], {})
            self.associate(c, self.creator, POLICY_PREFIX + "AmazonEKSClusterAdminPolicy", {"type": "cluster"})
        return {"cluster": self.describe(c)}

    def describe(self, c):
        return {
            k: c[k]
            for k in ("name", "arn", "createdAt", "version", "roleArn", "status", "endpoint", "identity", "tags")
        } | {
            "accessConfig": dict(c["accessConfig"]),
            "resourcesVpcConfig": {"subnetIds": [], "securityGroupIds": []},
            "platformVersion": "eks.1",
        }

    def DescribeCluster(self, p, region):
        return {"cluster": self.describe(self.cluster(p["name"]))}

    def ListClusters(self, p, region):
        names = sorted(self.clusters)
        page, token = paginate(names, p)
        return {"clusters": page} | ({"nextToken": token} if token else {})

    def DeleteCluster(self, p, region):
        c = self.cluster(p["name"])
        del self.clusters[p["name"]]
        return {"cluster": self.describe(c) | {"status": "DELETING"}}

    def UpdateClusterConfig(self, p, region):
        c = self.cluster(p["name"])
        access = p.get("accessConfig")
        if access is None or "authenticationMode" not in access:
            raise EksError(
                "InvalidParameterException",
                "only accessConfig.authenticationMode updates are served here",
                clusterName=c["name"],
            )
        old = c["accessConfig"]["authenticationMode"]
        new = access["authenticationMode"]
        if new == old:
            raise EksError(
                "InvalidParameterException",
                f"Unsupported authentication mode update: the cluster is already in {old}",
                clusterName=c["name"],
            )
        if MODE_ORDER[new] < MODE_ORDER[old]:
            raise EksError(
                "InvalidParameterException",
                f"Unsupported authentication mode update from {old} to {new}",
                clusterName=c["name"],
            )
        c["accessConfig"]["authenticationMode"] = new
        update = {
            "id": str(uuid.uuid4()),
            "status": "Successful",
            "type": "AccessConfigUpdate",
            "params": [{"type": "AuthenticationMode", "value": new}],
            "createdAt": now(),
            "errors": [],
        }
        c["updates"].append(update)
        return {"update": update}

    # -- access entries ------------------------------------------------------------------------

    def check_principal(self, c, principal, kind):
        m = PRINCIPAL.match(principal)
        if not m:
            if ":sts::" in principal:
                raise EksError(
                    "InvalidParameterException",
                    "The principalArn parameter can't be an STS session ARN: use the IAM role's ARN",
                    clusterName=c["name"],
                )
            raise EksError(
                "InvalidParameterException",
                f"The principalArn parameter format is not valid: {principal}",
                clusterName=c["name"],
            )
        if kind in NODE_TYPES:
            if m.group(3) != "role":
                raise EksError(
                    "InvalidParameterException",
                    f"The principalArn of an access entry of type {kind} must be an IAM role",
                    clusterName=c["name"],
                )
            if m.group(2) != self.account:
                raise EksError(
                    "InvalidParameterException",
                    f"The principalArn of an access entry of type {kind} must be in the "
                    f"cluster's account {self.account}",
                    clusterName=c["name"],
                )

    def check_identity(self, c, kind, username, groups):
        if kind in NODE_TYPES and (username is not None or groups):
            raise EksError(
                "InvalidParameterException",
                f"username and kubernetesGroups can't be set on an access entry of type {kind}",
                clusterName=c["name"],
            )
        if username is not None:
            if any(username.startswith(x) for x in RESERVED_USERNAME_PREFIXES):
                raise EksError(
                    "InvalidParameterException",
                    f"The username can't start with {', '.join(RESERVED_USERNAME_PREFIXES)}",
                    clusterName=c["name"],
                )
            # "Set a custom username": a colon must come before {{SessionName}}/{{SessionNameRaw}}.
            at = username.find("{{SessionName")
            if at >= 0 and ":" not in username[:at]:
                raise EksError(
                    "InvalidParameterException",
                    "The username must include a colon before {{SessionName}} or {{SessionNameRaw}}",
                    clusterName=c["name"],
                )
        for g in groups:
            if g.startswith("system:"):
                raise EksError(
                    "InvalidParameterException",
                    f"kubernetesGroups can't start with system: ({g})",
                    clusterName=c["name"],
                )

    def default_username(self, principal, kind):
        if kind in ("EC2_LINUX", "EC2_WINDOWS", "EC2"):
            return "system:node:{{EC2PrivateDNSName}}"
        if kind in ("FARGATE_LINUX", "HYBRID_LINUX", "HYPERPOD_LINUX"):
            return "system:node:{{SessionName}}"
        m = PRINCIPAL.match(principal)
        if m.group(3) == "user":
            return principal
        # The role's name without its path, as the session ARN names it.
        name = m.group(4).rsplit("/", 1)[-1]
        return f"arn:{m.group(1)}:sts::{m.group(2)}:assumed-role/{name}/{{{{SessionName}}}}"

    def add_entry(self, c, principal, kind, username, groups, tags):
        entry_id = uuid.uuid4()
        m = PRINCIPAL.match(principal)
        kind_path = f"{m.group(3)}/{m.group(2)}/{m.group(4).rsplit('/', 1)[-1]}"
        t = now()
        e = {
            "clusterName": c["name"],
            "principalArn": principal,
            "kubernetesGroups": list(groups),
            "accessEntryArn": f"arn:aws:eks:{c['region']}:{self.account}:access-entry/{c['name']}/{kind_path}/{entry_id}",
            "createdAt": t,
            "modifiedAt": t,
            "tags": dict(tags),
            "username": username if username is not None else self.default_username(principal, kind),
            "type": kind,
            "policies": {},
        }
        c["entries"][principal] = e
        return e

    @staticmethod
    def show(e):
        return {k: v for k, v in e.items() if k != "policies"}

    def CreateAccessEntry(self, p, region):
        c = self.cluster(p["clusterName"])
        self.api_mode(c)
        principal = p["principalArn"]
        kind = p.get("type", "STANDARD")
        self.check_principal(c, principal, kind)
        groups = p.get("kubernetesGroups", [])
        self.check_identity(c, kind, p.get("username"), groups)
        if principal in c["entries"]:
            raise EksError(
                "ResourceInUseException",
                "The specified access entry resource is already in use on this cluster.",
                clusterName=c["name"],
            )
        e = self.add_entry(c, principal, kind, p.get("username"), groups, p.get("tags", {}))
        return {"accessEntry": self.show(e)}

    def DescribeAccessEntry(self, p, region):
        c = self.cluster(p["clusterName"])
        self.api_mode(c)
        return {"accessEntry": self.show(self.entry(c, p["principalArn"]))}

    def ListAccessEntries(self, p, region):
        c = self.cluster(p["clusterName"])
        self.api_mode(c)
        arns = sorted(c["entries"])
        if "associatedPolicyArn" in p:
            arns = [a for a in arns if p["associatedPolicyArn"] in c["entries"][a]["policies"]]
        page, token = paginate(arns, p)
        return {"accessEntries": page} | ({"nextToken": token} if token else {})

    def UpdateAccessEntry(self, p, region):
        c = self.cluster(p["clusterName"])
        self.api_mode(c)
        e = self.entry(c, p["principalArn"])
        groups = p.get("kubernetesGroups", e["kubernetesGroups"])
        self.check_identity(c, e["type"], p.get("username"), p.get("kubernetesGroups", []))
        if "username" in p:
            e["username"] = p["username"]
        e["kubernetesGroups"] = list(groups)
        e["modifiedAt"] = now()
        return {"accessEntry": self.show(e)}

    def DeleteAccessEntry(self, p, region):
        c = self.cluster(p["clusterName"])
        self.api_mode(c)
        self.entry(c, p["principalArn"])
        del c["entries"][p["principalArn"]]
        return {}

    # -- access policies -----------------------------------------------------------------------

    def ListAccessPolicies(self, p, region):
        policies = [{"name": n, "arn": POLICY_PREFIX + n} for n in sorted(ACCESS_POLICIES)]
        page, token = paginate(policies, p)
        return {"accessPolicies": page} | ({"nextToken": token} if token else {})

    def associate(self, c, principal, policy, scope):
        e = self.entry(c, principal)
        if policy not in {POLICY_PREFIX + n for n in ACCESS_POLICIES}:
            raise EksError(
                "ResourceNotFoundException",
                f"The specified policyArn could not be found: {policy}",
                clusterName=c["name"],
            )
        if e["type"] != "STANDARD":
            raise EksError(
                "InvalidRequestException",
                f"Access policies can only be associated with STANDARD access entries, not {e['type']}",
                clusterName=c["name"],
            )
        kind = scope.get("type")
        namespaces = scope.get("namespaces", [])
        if kind == "cluster" and namespaces:
            raise EksError(
                "InvalidParameterException",
                "accessScope of type cluster can't list namespaces",
                clusterName=c["name"],
            )
        if kind == "namespace" and not namespaces:
            raise EksError(
                "InvalidParameterException",
                "accessScope of type namespace needs at least one namespace",
                clusterName=c["name"],
            )
        t = now()
        old = e["policies"].get(policy)
        e["policies"][policy] = {
            "policyArn": policy,
            "accessScope": {"type": kind, "namespaces": list(namespaces)},
            "associatedAt": old["associatedAt"] if old else t,
            "modifiedAt": t,
        }
        return e["policies"][policy]

    def AssociateAccessPolicy(self, p, region):
        c = self.cluster(p["clusterName"])
        self.api_mode(c)
        a = self.associate(c, p["principalArn"], p["policyArn"], p["accessScope"])
        return {"clusterName": c["name"], "principalArn": p["principalArn"], "associatedAccessPolicy": a}

    def DisassociateAccessPolicy(self, p, region):
        c = self.cluster(p["clusterName"])
        self.api_mode(c)
        e = self.entry(c, p["principalArn"])
        if e["policies"].pop(p["policyArn"], None) is None:
            raise EksError(
                "ResourceNotFoundException",
                f"The specified policyArn is not associated: {p['policyArn']}",
                clusterName=c["name"],
            )
        return {}

    def ListAssociatedAccessPolicies(self, p, region):
        c = self.cluster(p["clusterName"])
        self.api_mode(c)
        e = self.entry(c, p["principalArn"])
        page, token = paginate([e["policies"][k] for k in sorted(e["policies"])], p)
        out = {"clusterName": c["name"], "principalArn": e["principalArn"], "associatedAccessPolicies": page}
        return out | ({"nextToken": token} if token else {})

    # -- tags ----------------------------------------------------------------------------------

    def tagged(self, arn):
        for c in self.clusters.values():
            if c["arn"] == arn:
                return c
            for e in c["entries"].values():
                if e["accessEntryArn"] == arn:
                    return e
        raise EksError("ResourceNotFoundException", f"Resource not found: {arn}")

    def TagResource(self, p, region):
        self.tagged(p["resourceArn"])["tags"].update(p["tags"])
        return {}

    def UntagResource(self, p, region):
        tags = self.tagged(p["resourceArn"])["tags"]
        for k in p["tagKeys"]:
            tags.pop(k, None)
        return {}

    def ListTagsForResource(self, p, region):
        return {"tags": dict(self.tagged(p["resourceArn"])["tags"])}


def paginate(items, p):
    """A page of `maxResults` (1 to 100) from `nextToken` (an offset this server handed out)."""
    size = p.get("maxResults", 100)
    if not 1 <= size <= 100:
        raise EksError("InvalidParameterException", "maxResults must be between 1 and 100")
    start = 0
    if "nextToken" in p:
        try:
            start = int(p["nextToken"])
        except ValueError:
            raise EksError("InvalidParameterException", "The nextToken is not valid") from None
    end = start + size
    return items[start:end], (str(end) if end < len(items) else None)


def encode(value):
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    raise TypeError(f"not JSON: {type(value)}")


class Server:
    """WSGI: the EKS operations above, everything else to `fallback` (moto)."""

    def __init__(self, fallback, eks, model=None):
        self.fallback = fallback
        self.eks = eks
        self.model = model or Model()

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_local_eks/"):
            return self.control(path, environ, start_response)
        auth = environ.get("HTTP_AUTHORIZATION", "")
        scope = re.search(r"Credential=[^/]+/\d+/([^/]+)/([^/]+)/", auth)
        if not scope or scope.group(2) != "eks":
            return self.fallback(environ, start_response)
        # Labels are matched on the raw path: a role path's `/` arrives as `%2F` in a label.
        raw = (environ.get("RAW_URI") or environ.get("REQUEST_URI") or path).split("?")[0]
        op, labels = self.model.route(environ["REQUEST_METHOD"], raw)
        if op is None or not hasattr(self.eks, op.name):
            return self.fallback(environ, start_response)
        try:
            body = self.read_body(environ)
            query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
            params = self.model.parse(op, labels, query, body)
            self.model.check_request(op, params)
            self.eks.admit(op.name)
            with self.eks.lock:
                out = getattr(self.eks, op.name)(params, scope.group(1))
            self.model.check_response(op, out)
            return reply(start_response, 200, out)
        except EksError as e:
            return reply(
                start_response,
                ERROR_STATUS.get(e.code, 400),
                {"message": e.message} | e.extra,
                {"x-amzn-ErrorType": e.code},
            )

    @staticmethod
    def read_body(environ):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except ValueError as e:
            raise EksError("InvalidParameterException", f"the request body is not JSON: {e}") from None
        if not isinstance(body, dict):
            raise EksError("InvalidParameterException", "the request body must be a JSON object")
        return body

    def control(self, path, environ, start_response):
        """Test hooks: call counts (`GET /_local_eks/stats`), reset, and the bucket's size."""
        if path == "/_local_eks/stats":
            return reply(start_response, 200, self.eks.stats())
        if path == "/_local_eks/reset-stats" and environ["REQUEST_METHOD"] == "POST":
            self.eks.reset_stats()
            return reply(start_response, 200, {})
        if path == "/_local_eks/throttle" and environ["REQUEST_METHOD"] == "POST":
            body = self.read_body(environ)
            with self.eks.lock:
                self.eks.rate = float(body.get("rate", self.eks.rate))
                self.eks.burst = int(body.get("burst", self.eks.burst))
                self.eks.buckets.clear()
            return reply(start_response, 200, {"rate": self.eks.rate, "burst": self.eks.burst})
        return reply(start_response, 404, {"message": f"no such hook: {path}"})


def reply(start_response, status, body, headers=None):
    data = json.dumps(body, default=encode).encode()
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 409: "Conflict", 429: "Too Many Requests"}
    start_response(
        f"{status} {reason.get(status, 'Error')}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
        + list((headers or {}).items()),
    )
    return [data]
