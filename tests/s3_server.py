"""An S3 API server on this machine for the tests and the bench: moto's standalone server (it speaks
the S3 wire protocol over HTTP), started on 127.0.0.1 on a free port, or an existing S3-compatible
service named by CALLREC_TEST_S3_ENDPOINT (MinIO, Ceph RGW) with CALLREC_TEST_S3_ACCESS_KEY_ID and
CALLREC_TEST_S3_SECRET_ACCESS_KEY."""
import os
import secrets
from dataclasses import dataclass

import boto3
from botocore.config import Config


@dataclass
class S3Server:
    endpoint_url: str
    access_key_id: str
    secret_access_key: str
    region: str = "us-east-1"

    def client(self):
        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint_url, region_name=self.region,
            aws_access_key_id=self.access_key_id, aws_secret_access_key=self.secret_access_key,
            config=Config(s3={"addressing_style": "path"}, max_pool_connections=32))

    def new_bucket(self):
        """A fresh, empty bucket (a name of its own per test: no test sees another's objects)."""
        name = f"callrec-test-{secrets.token_hex(6)}"
        self.client().create_bucket(Bucket=name)
        return name

    def config(self, bucket):
        """The CALLREC_* keys that point an app's "s3" backend at ``bucket`` on this server."""
        return {
            "CALLREC_STORAGE_BACKEND": "s3", "CALLREC_S3_BUCKET": bucket,
            "CALLREC_S3_ENDPOINT_URL": self.endpoint_url, "CALLREC_S3_REGION": self.region,
            "CALLREC_S3_ACCESS_KEY_ID": self.access_key_id,
            "CALLREC_S3_SECRET_ACCESS_KEY": self.secret_access_key, "CALLREC_S3_ADDRESSING_STYLE": "path",
        }


def start_s3_server():
    """(S3Server, stop function)."""
    endpoint = os.environ.get("CALLREC_TEST_S3_ENDPOINT")
    if endpoint:
        return S3Server(endpoint, os.environ["CALLREC_TEST_S3_ACCESS_KEY_ID"],
                        os.environ["CALLREC_TEST_S3_SECRET_ACCESS_KEY"]), lambda: None
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(os.environ.get("CALLREC_TEST_S3_PORT", "0")),
                                verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return S3Server(f"http://{host}:{port}", "testing", "testing"), server.stop
