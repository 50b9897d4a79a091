"""A local S3-compatible server for the tests: moto in server mode, in its own process, on a free
port of 127.0.0.1, with authentication enforced (an IAM user whose keys the tests use; any other
keys are refused with the server's own InvalidAccessKeyId / SignatureDoesNotMatch errors).

    server = S3Server().start()          # S3Server(ssl=True): https with a self-signed certificate
    cfg = server.config("bucket-name")   # a BackupConfig for provider s3-v4-compat
    ...
    server.stop()
"""
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time

import requests
import urllib3

from support.harness import end_process, free_port

REGION = "us-east-1"


class S3Server:
    def __init__(self, ssl=False):
        self.ssl = ssl
        self.port = free_port()
        self.endpoint = f"{'https' if ssl else 'http'}://127.0.0.1:{self.port}"
        self.proc = None
        self.access_key = self.secret_key = None
        self.log = tempfile.NamedTemporaryFile(prefix="berth-s3-", suffix=".log", delete=False)

    @staticmethod
    def available():
        return all(importlib.util.find_spec(m) is not None for m in ("moto", "boto3", "flask_cors"))

    def start(self, timeout=30):
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        if self.ssl:
            cmd.append("--ssl")
        env = dict(os.environ, MOTO_ALLOW_NONEXISTENT_REGION="true")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        deadline = time.time() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto server exited with {self.proc.returncode}: {self.output()}")
            try:
                requests.get(self.endpoint + "/moto-api/", timeout=1, verify=False)
                break
            except requests.RequestException:
                if time.time() > deadline:
                    self.stop()
                    raise RuntimeError(f"moto server did not answer on {self.endpoint}: {self.output()}")
                time.sleep(0.1)
        self._setup_auth()
        return self

    def _setup_auth(self):
        # While authentication is off (moto's default), make the user the tests act as; then
        # switch enforcement on, so bad credentials fail as on a real server.
        iam = self.client(service="iam", access_key="setup", secret_key="setup")
        iam.create_user(UserName="berth")
        policy = {"Version": "2012-10-17",
                  "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        iam.put_user_policy(UserName="berth", PolicyName="all-s3", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="berth")["AccessKey"]
        self.access_key, self.secret_key = key["AccessKeyId"], key["SecretAccessKey"]
        r = requests.post(self.endpoint + "/moto-api/reset-auth", data=b"0", timeout=5, verify=False)
        r.raise_for_status()

    def client(self, service="s3", access_key=None, secret_key=None):
        # The test server's own certificate is self-signed on purpose (S3Server(ssl=True)); called
        # here, not at import, because pytest resets warning filters for each test.
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        import boto3
        from botocore.config import Config
        return boto3.session.Session().client(
            service, endpoint_url=self.endpoint, region_name=REGION, verify=False,
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"))

    def make_bucket(self, name):
        self.client().create_bucket(Bucket=name)
        return name

    def config(self, bucket, prefix="", provider="s3-v4-compat", **extra):
        cfg = {"provider": provider, "format": "tgz", "retentionSecs": 86400, "endpoint": self.endpoint,
               "region": REGION, "bucket": bucket, "prefix": prefix, "accessKeyId": self.access_key,
               "secretAccessKey": self.secret_key}
        cfg.update(extra)
        return cfg

    def output(self):
        try:
            with open(self.log.name, "rb") as f:
                return f.read()[-2000:].decode(errors="replace")
        except OSError:
            return ""

    def stop(self):
        end_process(self.proc, 5)
        self.log.close()
        try:
            os.unlink(self.log.name)
        except OSError:
            pass
