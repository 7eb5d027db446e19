#!/usr/bin/env python3
"""Writes a single-layer OCI image archive (an OCI image layout in a tar), without Docker or a
registry, for `ctr images import`.

  oci-image.py --name REPO:TAG [--name REPO:TAG2]... --out IMAGE.tar [--entrypoint JSON]
               [--cmd JSON] [--env K=V]... [--workdir DIR] [--user U] [--port 8080/tcp] SPEC...

SPEC is one of
  /dest=SRC          the file SRC (mode kept, symlinks followed) at /dest in the image
  /dest/=SRCDIR      the directory SRCDIR, recursively, at /dest
  dir:/dest          an empty directory (mode 0755; dir:/tmp gets 1777)
  link:/dest=TARGET  a symbolic link /dest -> TARGET
Parent directories are created as needed. The layer is an uncompressed tar with every time set
to 0 and owner root, so the same inputs give the same image digest. The archive is importable by
containerd (`ctr -n k8s.io images import IMAGE.tar`, the image is named REPO:TAG through the
io.containerd.image.name annotation) and is a valid OCI layout for other tools (podman, skopeo
`oci-archive:`). Several --name give the one image several names (tags of the same digest).
"""
import argparse
import hashlib
import io
import json
import os
import sys
import tarfile


def tarinfo(name, kind, mode, size=0, linkname=""):
    ti = tarfile.TarInfo(name.lstrip("/"))
    ti.type = kind
    ti.mode = mode
    ti.size = size
    ti.linkname = linkname
    ti.mtime = 0
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = "root"
    return ti


def layer_entries(specs):
    """{path: (kind, mode, data or link target)} for every SPEC, parents included."""
    entries = {}

    def add_parents(path):
        parts = path.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/" + "/".join(parts[:i])
            entries.setdefault(d, (tarfile.DIRTYPE, 0o755, None))

    for spec in specs:
        if spec.startswith("dir:"):
            dest = spec[4:].rstrip("/")
            add_parents(dest)
            entries[dest] = (tarfile.DIRTYPE, 0o1777 if dest == "/tmp" else 0o755, None)
        elif spec.startswith("link:"):
            dest, target = spec[5:].split("=", 1)
            add_parents(dest)
            entries[dest] = (tarfile.SYMTYPE, 0o777, target)
        elif "=" in spec:
            dest, src = spec.split("=", 1)
            if dest.endswith("/"):
                dest = dest.rstrip("/")
                add_parents(dest + "/x")
                for root, dirs, files in os.walk(src):
                    rel = os.path.relpath(root, src)
                    base = dest if rel == "." else f"{dest}/{rel}"
                    entries.setdefault(base, (tarfile.DIRTYPE, 0o755, None))
                    for f in sorted(files):
                        p = os.path.join(root, f)
                        with open(p, "rb") as fh:
                            entries[f"{base}/{f}"] = (tarfile.REGTYPE, os.stat(p).st_mode & 0o7777, fh.read())
            else:
                add_parents(dest)
                with open(src, "rb") as fh:
                    entries[dest] = (tarfile.REGTYPE, os.stat(src).st_mode & 0o7777, fh.read())
        else:
            sys.exit(f"bad SPEC {spec!r} (see --help)")
    return entries


def layer_tar(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(entries):
            kind, mode, data = entries[path]
            if kind == tarfile.REGTYPE:
                tar.addfile(tarinfo(path, kind, mode, len(data)), io.BytesIO(data))
            elif kind == tarfile.SYMTYPE:
                tar.addfile(tarinfo(path, kind, mode, linkname=data))
            else:
                tar.addfile(tarinfo(path + "/", kind, mode))
    return buf.getvalue()


def blob(data):
    return "sha256:" + hashlib.sha256(data).hexdigest(), data


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", required=True, action="append",
                    help="REPO:TAG, e.g. flotilla.test/busybox:1 (repeatable: more names, same image)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--entrypoint", type=json.loads, default=None, help='JSON list, e.g. ["/pause"]')
    ap.add_argument("--cmd", type=json.loads, default=None, help="JSON list")
    ap.add_argument("--env", action="append", default=[])
    ap.add_argument("--workdir", default="")
    ap.add_argument("--user", default="")
    ap.add_argument("--port", action="append", default=[], help="exposed port, e.g. 8080/tcp")
    ap.add_argument("--arch", default="amd64")
    ap.add_argument("specs", nargs="+", metavar="SPEC")
    a = ap.parse_args()
    for name in a.name:
        _, sep, tag = name.rpartition(":")
        if not sep or "/" in tag:
            sys.exit(f"--name must be REPO:TAG, got {name!r}")

    layer_digest, layer = blob(layer_tar(layer_entries(a.specs)))
    env = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"] + a.env
    config = {"Env": env}
    if a.entrypoint is not None:
        config["Entrypoint"] = a.entrypoint
    if a.cmd is not None:
        config["Cmd"] = a.cmd
    if a.workdir:
        config["WorkingDir"] = a.workdir
    if a.user:
        config["User"] = a.user
    if a.port:
        config["ExposedPorts"] = {p: {} for p in a.port}
    config_digest, config_json = blob(json.dumps({
        "created": "1970-01-01T00:00:00Z",
        "architecture": a.arch,
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "e2e/testbed/images/oci-image.py"}],
    }, sort_keys=True, separators=(",", ":")).encode())
    manifest_digest, manifest = blob(json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": len(config_json)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": len(layer)}],
    }, sort_keys=True, separators=(",", ":")).encode())
    index = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest, "size": len(manifest),
            "platform": {"architecture": a.arch, "os": "linux"},
            "annotations": {"io.containerd.image.name": name,
                            "org.opencontainers.image.ref.name": name.rpartition(":")[2]},
        } for name in a.name],
    }, sort_keys=True, separators=(",", ":")).encode()

    tmp = a.out + ".tmp"
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as out:
        def add(name, data, mode=0o644):
            out.addfile(tarinfo(name, tarfile.REGTYPE, mode, len(data)), io.BytesIO(data))
        out.addfile(tarinfo("blobs/", tarfile.DIRTYPE, 0o755))
        out.addfile(tarinfo("blobs/sha256/", tarfile.DIRTYPE, 0o755))
        add("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        add("index.json", index)
        for digest, data in ((layer_digest, layer), (config_digest, config_json), (manifest_digest, manifest)):
            add("blobs/sha256/" + digest.split(":")[1], data)
    os.replace(tmp, a.out)
    print(f"{a.out}: {' '.join(a.name)} {manifest_digest} ({len(layer)} bytes of layer)", file=sys.stderr)


if __name__ == "__main__":
    main()
