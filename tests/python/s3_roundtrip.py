#!/usr/bin/env python3
"""Write a cache to S3 and read it back: `distillery extract` to an s3:// URI on a local S3
server (moto), then every table read from the bucket with pylance must equal the same
table of a cache made locally from the same pipeline, and `distillery inspect` must read
the cache through the URI. Then two shards extracted to the bucket and joined there by
`distillery commit` must hold the same views as the local cache.

usage: s3_roundtrip.py DISTILLERY_BINARY PIPELINE_TOML LOCAL_CACHE
Prints one JSON object with what it compared; exits non-zero on any difference.
"""

import json
import os
import subprocess
import sys

import boto3
import lance
from moto.server import ThreadedMotoServer

BUCKET = "caches"


def main(binary: str, pipeline: str, local_cache: str) -> None:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        credentials = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **credentials).create_bucket(
            Bucket=BUCKET
        )
        # How distillery (through Lance's object store) is pointed at a store: the
        # environment, as for any S3-compatible service.
        env = dict(
            os.environ,
            AWS_ENDPOINT=endpoint,
            AWS_ALLOW_HTTP="true",
            AWS_ACCESS_KEY_ID="test",
            AWS_SECRET_ACCESS_KEY="test",
            AWS_REGION="us-east-1",
        )
        uri = f"s3://{BUCKET}/cache"
        run = lambda *args: subprocess.run([binary, *args], env=env, check=True, capture_output=True, text=True)
        run("extract", "--pipeline", pipeline, "--output", uri)
        inspected = run("inspect", "--cache", uri).stdout

        options = {"aws_endpoint": endpoint, "allow_http": "true", "aws_region": "us-east-1", **credentials}
        manifest = json.loads(
            boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **credentials)
            .get_object(Bucket=BUCKET, Key="cache/manifest.json")["Body"]
            .read()
        )
        local = json.load(open(os.path.join(local_cache, "manifest.json")))
        assert (manifest["images"], manifest["rows"]) == (local["images"], local["rows"]), manifest
        tables = [manifest["images_table"]] + [t["table"] for t in manifest["teachers"]]
        compared = []
        for table in tables:
            remote = lance.dataset(f"{uri}/{table}", storage_options=options).to_table()
            here = lance.dataset(os.path.join(local_cache, table)).to_table()
            assert remote.equals(here, check_metadata=True), table
            compared.append({"table": table, "rows": remote.num_rows})
        for t in manifest["teachers"]:
            assert f"teacher {t['name']}" in inspected, inspected

        # Shards on the store, joined there: the data files are copied by the store.
        sharded = f"s3://{BUCKET}/sharded"
        for k in range(2):
            run("extract", "--pipeline", pipeline, "--output", sharded, "--shard", f"{k}/2")
        said = run("commit", "--output", sharded).stdout
        assert "0 hard-linked" in said and "2 shards joined" in said, said
        for table in tables:
            remote = lance.dataset(f"{sharded}/{table}", storage_options=options).to_table()
            here = lance.dataset(os.path.join(local_cache, table)).to_table()
            # Features went through other batches at the shard boundary: compare the views.
            columns = [c for c in here.column_names if c not in ("summary", "patch_tokens")]
            assert remote.select(columns).equals(here.select(columns)), table
            compared.append({"table": f"sharded/{table}", "rows": remote.num_rows})
        print(json.dumps({"uri": uri, "compared": compared}))
    finally:
        server.stop()


if __name__ == "__main__":
    main(*sys.argv[1:4])
