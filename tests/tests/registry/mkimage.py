#!/usr/bin/env python3
"""Builds OCI image layouts from real layer tarballs, for the registry tests to push with skopeo.

  mkimage.py image DIR TAG [--arch A] [--variant V] [--cmd JSON] [--env K=V]... [--workdir W]
                           LAYER.tar[:gzip|:zstd]...
      adds an image (config, compressed layers, manifest) to the layout DIR under TAG
  mkimage.py index DIR TAG TAG1 TAG2...
      adds an image index of the images TAG1, TAG2... (their platforms) under TAG
"""
import argparse
import gzip
import hashlib
import json
import os
import subprocess
import sys

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def put_blob(layout, data):
    digest = hashlib.sha256(data).hexdigest()
    path = os.path.join(layout, "blobs", "sha256", digest)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + digest, "size": len(data)}


def load_index(layout):
    os.makedirs(layout, exist_ok=True)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    path = os.path.join(layout, "index.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}


def save_index(layout, index, desc, tag):
    desc["annotations"] = {"org.opencontainers.image.ref.name": tag}
    index["manifests"] = [
        m for m in index["manifests"]
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") != tag
    ] + [desc]
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump(index, f)


def compress(raw, how):
    if how == "zstd":
        out = subprocess.run(["zstd", "-q", "-c"], input=raw, stdout=subprocess.PIPE, check=True)
        return out.stdout, "application/vnd.oci.image.layer.v1.tar+zstd"
    return gzip.compress(raw, mtime=0), "application/vnd.oci.image.layer.v1.tar+gzip"


def image(args):
    index = load_index(args.dir)
    layers, diff_ids = [], []
    for spec in args.layers:
        path, _, how = spec.partition(":")
        with open(path, "rb") as f:
            raw = f.read()
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        data, media_type = compress(raw, how or "gzip")
        layers.append(dict(mediaType=media_type, **put_blob(args.dir, data)))
    config = {
        "architecture": args.arch,
        "os": "linux",
        "config": {"Env": args.env, "Cmd": json.loads(args.cmd), "WorkingDir": args.workdir},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    if args.variant:
        config["variant"] = args.variant
    config_desc = dict(mediaType="application/vnd.oci.image.config.v1+json",
                       **put_blob(args.dir, json.dumps(config).encode()))
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config_desc,
                "layers": layers}
    desc = dict(mediaType=OCI_MANIFEST, **put_blob(args.dir, json.dumps(manifest).encode()))
    platform = {"os": "linux", "architecture": args.arch}
    if args.variant:
        platform["variant"] = args.variant
    desc["platform"] = platform
    save_index(args.dir, index, desc, args.tag)


def make_index(args):
    index = load_index(args.dir)
    by_tag = {m.get("annotations", {}).get("org.opencontainers.image.ref.name"): m
              for m in index["manifests"]}
    entries = []
    for tag in args.tags:
        m = dict(by_tag[tag])
        m.pop("annotations", None)
        entries.append(m)
    body = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
    desc = dict(mediaType=OCI_INDEX, **put_blob(args.dir, json.dumps(body).encode()))
    save_index(args.dir, index, desc, args.tag)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="what", required=True)
    i = sub.add_parser("image")
    i.add_argument("dir")
    i.add_argument("tag")
    i.add_argument("--arch", default="amd64")
    i.add_argument("--variant")
    i.add_argument("--cmd", default='["/bin/sh"]')
    i.add_argument("--env", action="append", default=[])
    i.add_argument("--workdir", default="/")
    i.add_argument("layers", nargs="+")
    x = sub.add_parser("index")
    x.add_argument("dir")
    x.add_argument("tag")
    x.add_argument("tags", nargs="+")
    args = p.parse_args()
    image(args) if args.what == "image" else make_index(args)


if __name__ == "__main__":
    sys.exit(main())
