"""The local EKS server against boto3: what the real service documents, it must do.

    $(hack/python-env.sh python) -m unittest discover -s hack/local-aws -p 'test_*.py'
"""

import os
import sys
import threading
import time
import unittest

import boto3
import botocore
from botocore.config import Config
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import WSGIRequestHandler, make_server

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eks  # noqa: E402

ACCOUNT = eks.DEFAULT_ACCOUNT


class Quiet(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):
        pass
ADMIN = eks.POLICY_PREFIX + "AmazonEKSClusterAdminPolicy"
VIEW = eks.POLICY_PREFIX + "AmazonEKSViewPolicy"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/team/dev"
USER = f"arn:aws:iam::{ACCOUNT}:user/alice"


class LocalEks(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
        cls.state = eks.Eks(rate=0, burst=0)
        app = eks.Server(DomainDispatcherApplication(create_backend_app), cls.state)
        cls.http = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Quiet)
        threading.Thread(target=cls.http.serve_forever, daemon=True).start()
        cls.url = f"http://127.0.0.1:{cls.http.server_port}"

    @classmethod
    def tearDownClass(cls):
        cls.http.shutdown()

    def setUp(self):
        with self.state.lock:
            self.state.clusters.clear()
            self.state.rate, self.state.burst = 0, 0
            self.state.buckets.clear()
        self.eks = self.client()

    def client(self, **config):
        return boto3.client(
            "eks",
            endpoint_url=self.url,
            region_name="us-east-1",
            config=Config(retries={"max_attempts": 0, "mode": "standard"}, **config),
        )

    def cluster(self, mode="API_AND_CONFIG_MAP", name="c", bootstrap=True):
        return self.eks.create_cluster(
            name=name,
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/eks",
            resourcesVpcConfig={},
            accessConfig={
                "authenticationMode": mode,
                "bootstrapClusterCreatorAdminPermissions": bootstrap,
            },
        )["cluster"]

    def refused(self, code, call, *args, **kwargs):
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            call(*args, **kwargs)
        self.assertEqual(e.exception.response["Error"]["Code"], code, e.exception)
        return e.exception.response["Error"]["Message"]

    # -- clusters and modes ------------------------------------------------------------------

    def test_the_default_mode_is_config_map_and_access_entries_need_the_api(self):
        c = self.eks.create_cluster(
            name="old", roleArn=f"arn:aws:iam::{ACCOUNT}:role/eks", resourcesVpcConfig={}
        )["cluster"]
        self.assertEqual(c["accessConfig"]["authenticationMode"], "CONFIG_MAP")
        # The OIDC issuer the IRSA doctor reads.
        self.assertRegex(c["identity"]["oidc"]["issuer"], r"^https://oidc\.eks\.us-east-1\.amazonaws\.com/id/[0-9A-F]{32}$")
        message = self.refused(
            "InvalidRequestException", self.eks.list_access_entries, clusterName="old"
        )
        self.assertIn("API, API_AND_CONFIG_MAP", message)

    def test_modes_change_one_way_only(self):
        self.cluster("CONFIG_MAP")
        up = self.eks.update_cluster_config(
            name="c", accessConfig={"authenticationMode": "API_AND_CONFIG_MAP"}
        )["update"]
        self.assertEqual(up["type"], "AccessConfigUpdate")
        self.assertEqual(
            self.eks.describe_cluster(name="c")["cluster"]["accessConfig"]["authenticationMode"],
            "API_AND_CONFIG_MAP",
        )
        self.refused(
            "InvalidParameterException",
            self.eks.update_cluster_config,
            name="c",
            accessConfig={"authenticationMode": "CONFIG_MAP"},
        )
        self.eks.update_cluster_config(name="c", accessConfig={"authenticationMode": "API"})
        for back in ("CONFIG_MAP", "API_AND_CONFIG_MAP"):
            self.refused(
                "InvalidParameterException",
                self.eks.update_cluster_config,
                name="c",
                accessConfig={"authenticationMode": back},
            )

    def test_the_creator_gets_a_cluster_admin_entry_when_the_mode_has_the_api(self):
        self.cluster("API")
        entries = self.eks.list_access_entries(clusterName="c")["accessEntries"]
        self.assertEqual(entries, [self.state.creator])
        policies = self.eks.list_associated_access_policies(
            clusterName="c", principalArn=self.state.creator
        )["associatedAccessPolicies"]
        self.assertEqual([p["policyArn"] for p in policies], [ADMIN])
        self.cluster("API", name="bare", bootstrap=False)
        self.assertEqual(self.eks.list_access_entries(clusterName="bare")["accessEntries"], [])

    def test_an_unknown_cluster_is_not_found(self):
        self.refused("ResourceNotFoundException", self.eks.describe_cluster, name="nope")
        self.refused("ResourceNotFoundException", self.eks.list_access_entries, clusterName="nope")

    # -- access entries ------------------------------------------------------------------------

    def test_an_entry_keeps_its_role_path_and_gets_the_documented_username(self):
        self.cluster(bootstrap=False)
        e = self.eks.create_access_entry(
            clusterName="c", principalArn=ROLE, kubernetesGroups=["devs"], tags={"owner": "x"}
        )["accessEntry"]
        self.assertEqual(e["principalArn"], ROLE)
        self.assertEqual(e["type"], "STANDARD")
        # The generated username drops the path, as the session ARN does.
        self.assertEqual(e["username"], f"arn:aws:sts::{ACCOUNT}:assumed-role/dev/{{{{SessionName}}}}")
        self.assertTrue(e["accessEntryArn"].startswith(f"arn:aws:eks:us-east-1:{ACCOUNT}:access-entry/c/role/"))
        u = self.eks.create_access_entry(clusterName="c", principalArn=USER)["accessEntry"]
        self.assertEqual(u["username"], USER)
        got = self.eks.describe_access_entry(clusterName="c", principalArn=ROLE)["accessEntry"]
        self.assertEqual(got["kubernetesGroups"], ["devs"])
        self.assertEqual(
            self.eks.list_tags_for_resource(resourceArn=e["accessEntryArn"])["tags"], {"owner": "x"}
        )

    def test_one_entry_per_principal(self):
        self.cluster(bootstrap=False)
        self.eks.create_access_entry(clusterName="c", principalArn=ROLE)
        self.refused(
            "ResourceInUseException", self.eks.create_access_entry, clusterName="c", principalArn=ROLE
        )

    def test_reserved_usernames_system_groups_and_sessions_are_refused(self):
        self.cluster(bootstrap=False)
        for prefix in eks.RESERVED_USERNAME_PREFIXES:
            message = self.refused(
                "InvalidParameterException",
                self.eks.create_access_entry,
                clusterName="c",
                principalArn=ROLE,
                username=prefix + "x",
            )
            self.assertIn("can't start with", message)
        self.refused(
            "InvalidParameterException",
            self.eks.create_access_entry,
            clusterName="c",
            principalArn=ROLE,
            kubernetesGroups=["system:masters"],
        )
        self.refused(
            "InvalidParameterException",
            self.eks.create_access_entry,
            clusterName="c",
            principalArn=f"arn:aws:sts::{ACCOUNT}:assumed-role/dev/session",
        )
        for name in ("dev{{SessionName}}", "{{SessionNameRaw}}"):
            message = self.refused(
                "InvalidParameterException",
                self.eks.create_access_entry,
                clusterName="c",
                principalArn=ROLE,
                username=name,
            )
            self.assertIn("colon", message)
        self.assertEqual(self.eks.list_access_entries(clusterName="c")["accessEntries"], [])

    def test_node_types_need_roles_of_the_clusters_account_and_no_identity(self):
        self.cluster(bootstrap=False)
        node = f"arn:aws:iam::{ACCOUNT}:role/nodes"
        e = self.eks.create_access_entry(clusterName="c", principalArn=node, type="EC2_LINUX")
        self.assertEqual(e["accessEntry"]["username"], "system:node:{{EC2PrivateDNSName}}")
        for bad in (
            {"principalArn": USER, "type": "EC2_LINUX"},
            {"principalArn": "arn:aws:iam::999999999999:role/nodes", "type": "FARGATE_LINUX"},
            {"principalArn": f"arn:aws:iam::{ACCOUNT}:role/win", "type": "EC2_WINDOWS", "username": "w"},
            {"principalArn": f"arn:aws:iam::{ACCOUNT}:role/hy", "type": "HYBRID_LINUX", "kubernetesGroups": ["g"]},
        ):
            self.refused("InvalidParameterException", self.eks.create_access_entry, clusterName="c", **bad)
        # A standard entry may be in another account.
        self.eks.create_access_entry(clusterName="c", principalArn="arn:aws:iam::999999999999:role/x")
        self.refused(
            "InvalidRequestException",
            self.eks.associate_access_policy,
            clusterName="c",
            principalArn=node,
            policyArn=VIEW,
            accessScope={"type": "cluster"},
        )

    def test_update_and_delete(self):
        self.cluster(bootstrap=False)
        self.eks.create_access_entry(clusterName="c", principalArn=ROLE, kubernetesGroups=["a"])
        e = self.eks.update_access_entry(
            clusterName="c", principalArn=ROLE, kubernetesGroups=["b"], username="dev:{{SessionName}}"
        )["accessEntry"]
        self.assertEqual((e["kubernetesGroups"], e["username"]), (["b"], "dev:{{SessionName}}"))
        self.assertGreaterEqual(e["modifiedAt"], e["createdAt"])
        self.refused(
            "InvalidParameterException",
            self.eks.update_access_entry,
            clusterName="c",
            principalArn=ROLE,
            kubernetesGroups=["system:masters"],
        )
        self.eks.delete_access_entry(clusterName="c", principalArn=ROLE)
        self.refused("ResourceNotFoundException", self.eks.describe_access_entry, clusterName="c", principalArn=ROLE)
        self.refused("ResourceNotFoundException", self.eks.delete_access_entry, clusterName="c", principalArn=ROLE)

    # -- policies -----------------------------------------------------------------------------

    def test_policies_associate_by_scope_and_replace(self):
        self.cluster(bootstrap=False)
        self.eks.create_access_entry(clusterName="c", principalArn=ROLE)
        self.eks.associate_access_policy(
            clusterName="c", principalArn=ROLE, policyArn=VIEW, accessScope={"type": "cluster"}
        )
        a = self.eks.associate_access_policy(
            clusterName="c",
            principalArn=ROLE,
            policyArn=VIEW,
            accessScope={"type": "namespace", "namespaces": ["shop"]},
        )["associatedAccessPolicy"]
        self.assertEqual(a["accessScope"], {"type": "namespace", "namespaces": ["shop"]})
        listed = self.eks.list_associated_access_policies(clusterName="c", principalArn=ROLE)
        self.assertEqual(len(listed["associatedAccessPolicies"]), 1)
        self.assertEqual(
            self.eks.list_access_entries(clusterName="c", associatedPolicyArn=VIEW)["accessEntries"], [ROLE]
        )
        for scope in ({"type": "namespace"}, {"type": "cluster", "namespaces": ["x"]}):
            self.refused(
                "InvalidParameterException",
                self.eks.associate_access_policy,
                clusterName="c",
                principalArn=ROLE,
                policyArn=VIEW,
                accessScope=scope,
            )
        self.refused(
            "ResourceNotFoundException",
            self.eks.associate_access_policy,
            clusterName="c",
            principalArn=ROLE,
            policyArn=eks.POLICY_PREFIX + "NoSuchPolicy",
            accessScope={"type": "cluster"},
        )
        self.eks.disassociate_access_policy(clusterName="c", principalArn=ROLE, policyArn=VIEW)
        self.assertEqual(
            self.eks.list_associated_access_policies(clusterName="c", principalArn=ROLE)["associatedAccessPolicies"], []
        )
        names = {p["name"] for p in self.eks.list_access_policies()["accessPolicies"]}
        self.assertTrue({"AmazonEKSClusterAdminPolicy", "AmazonEKSAdminPolicy", "AmazonEKSEditPolicy", "AmazonEKSViewPolicy"} <= names)

    # -- shapes, pages, throttling -------------------------------------------------------------

    def test_requests_outside_the_model_are_refused_by_the_server(self):
        self.cluster(bootstrap=False)
        loose = self.client(parameter_validation=False)
        self.refused("InvalidParameterException", loose.create_access_entry, clusterName="c")
        self.refused(
            "InvalidParameterException",
            loose.create_access_entry,
            clusterName="c",
            principalArn=ROLE,
            kubernetesGroups=[1, 2],
        )
        self.refused("InvalidParameterException", loose.list_access_entries, clusterName="c", maxResults=500)

    def test_pages_cover_every_entry_once(self):
        self.cluster(bootstrap=False)
        made = {f"arn:aws:iam::{ACCOUNT}:role/r{i:03}" for i in range(250)}
        for arn in made:
            self.eks.create_access_entry(clusterName="c", principalArn=arn)
        seen = []
        for page in self.eks.get_paginator("list_access_entries").paginate(
            clusterName="c", PaginationConfig={"PageSize": 40}
        ):
            self.assertLessEqual(len(page["accessEntries"]), 40)
            seen += page["accessEntries"]
        self.assertEqual(sorted(seen), sorted(made))

    def test_past_the_bucket_the_answer_is_throttling(self):
        self.cluster(bootstrap=False)
        with self.state.lock:
            self.state.rate, self.state.burst = 5, 10
            self.state.buckets.clear()
        codes = []
        for _ in range(30):
            try:
                self.eks.list_access_entries(clusterName="c")
                codes.append("ok")
            except botocore.exceptions.ClientError as e:
                codes.append(e.response["Error"]["Code"])
        self.assertEqual(codes[:10], ["ok"] * 10)
        self.assertIn("ThrottlingException", codes)
        # Another operation has a bucket of its own.
        self.eks.describe_cluster(name="c")
        time.sleep(0.5)
        self.eks.list_access_entries(clusterName="c")
        # boto3's standard retry mode retries the throttled call.
        retrying = boto3.client(
            "eks",
            endpoint_url=self.url,
            region_name="us-east-1",
            config=Config(retries={"max_attempts": 10, "mode": "standard"}),
        )
        for _ in range(20):
            retrying.list_access_entries(clusterName="c")

    def test_sts_and_iam_are_still_moto(self):
        sts = boto3.client("sts", endpoint_url=self.url, region_name="us-east-1")
        self.assertIn(":sts::", sts.get_caller_identity()["Arn"])


if __name__ == "__main__":
    unittest.main()
