#!/usr/bin/env python3
"""Writes an OCI image layout (skopeo's `oci:DIR:TAG` form) from a JSON spec on stdin, with
layers written by Python's tarfile, so tests can build what podman cannot: whiteouts, opaque
directories, hard links, and hostile entries.

Spec: {"dir": D, "tag": T, "config": {...image config "config" object...},
       "layers": [{"gzip": bool, "entries": [E...]}]}
E: {"path": P, "type": "file"|"dir"|"symlink"|"hardlink"|"char"|"fifo",
    "data": str, "link": str, "mode": int, "uid": int, "gid": int, "major": int, "minor": int,
    "xattrs": {name: value}}
A layer may instead be {"tarball": PATH} (a rootfs tar made elsewhere) or
{"naive": DEST} to extract it with tarfile's trusting extractall (the proof of an attack)."""
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile

TYPES = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
         "hardlink": tarfile.LNKTYPE, "char": tarfile.CHRTYPE, "fifo": tarfile.FIFOTYPE}


def layer_tar(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            info = tarfile.TarInfo(e["path"])
            info.type = TYPES[e.get("type", "file")]
            info.mode = e.get("mode", 0o755 if info.type == tarfile.DIRTYPE else 0o644)
            info.uid, info.gid = e.get("uid", 0), e.get("gid", 0)
            info.mtime = 1700000000
            info.linkname = e.get("link", "")
            info.devmajor, info.devminor = e.get("major", 0), e.get("minor", 0)
            if e.get("xattrs"):
                info.pax_headers = {"SCHILY.xattr." + k: v for k, v in e["xattrs"].items()}
            data = e.get("data", "").encode()
            if info.type == tarfile.REGTYPE:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return buf.getvalue()


def put(blobs, data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, digest), "wb") as f:
        f.write(data)
    return "sha256:" + digest, len(data)


def main():
    spec = json.load(sys.stdin)
    blobs = os.path.join(spec["dir"], "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)
    diff_ids, layers = [], []
    for layer in spec["layers"]:
        if "tarball" in layer:
            with open(layer["tarball"], "rb") as f:
                raw = f.read()
        else:
            raw = layer_tar(layer["entries"])
        if "naive" in layer:
            with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
                trusting = getattr(tarfile, "fully_trusted_filter", None)
                if trusting:
                    tar.extractall(layer["naive"], filter=trusting)
                else:
                    tar.extractall(layer["naive"])
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        blob = gzip.compress(raw, mtime=0) if layer.get("gzip") else raw
        media = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if layer.get("gzip") else "")
        digest, size = put(blobs, blob)
        layers.append({"mediaType": media, "digest": digest, "size": size})
    config = {"architecture": "amd64", "os": "linux", "config": spec.get("config", {}),
              "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    cdigest, csize = put(blobs, json.dumps(config).encode())
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": cdigest, "size": csize},
                "layers": layers}
    mdigest, msize = put(blobs, json.dumps(manifest).encode())
    index = {"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mdigest,
         "size": msize, "annotations": {"org.opencontainers.image.ref.name": spec["tag"]}}]}
    if "docker25" in spec:
        # Docker >= 25's `docker save`: an image index per image (with the platform), the
        # full name in io.containerd.image.name (only with "named"), and manifest.json too.
        d25 = spec["docker25"]
        nested = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                  "manifests": [dict(index["manifests"][0], annotations={},
                                     platform={"architecture": "amd64", "os": "linux"})]}
        ndigest, nsize = put(blobs, json.dumps(nested).encode())
        notes = {"org.opencontainers.image.ref.name": spec["tag"]}
        if d25.get("named"):
            notes["io.containerd.image.name"] = d25["name"]
        index = {"schemaVersion": 2, "manifests": [
            {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": ndigest,
             "size": nsize, "annotations": notes}]}
        with open(os.path.join(spec["dir"], "manifest.json"), "w") as f:
            json.dump([{"Config": "blobs/sha256/" + cdigest[7:], "RepoTags": [d25["name"]],
                        "Layers": ["blobs/sha256/" + l["digest"][7:] for l in layers]}], f)
    with open(os.path.join(spec["dir"], "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(spec["dir"], "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    print(json.dumps({"manifest": mdigest, "config": cdigest,
                      "layers": [l["digest"] for l in layers], "diff_ids": diff_ids}))


main()
