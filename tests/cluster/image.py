#!/usr/bin/python3
"""image.py - the project's runtime image as an OCI image archive, imported into the test
cluster's containerd (no registry, no container engine).

The image is what the Dockerfile's runtime stage makes, built the way tests/deploy/runtime_image.py
builds it: the cached debootstrap root with the stage's RUN instructions applied, plus the release
binary (built like the Dockerfile's build stage, stripped) at the stage's COPY path; the config
carries the stage's USER, ENTRYPOINT and CMD. One uncompressed layer.

The CRI plugin also needs a sandbox ("pause") image and no registry serves one here: the same
layer with `/bin/sleep infinity` as its entrypoint is tagged tpd.test/pause:1 (cluster.PAUSE_IMAGE).

Usage (library): build(ref, pause_ref, workdir) -> (archive, text); load(ctr_cmd, archive)
"""
import fcntl
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "deploy"))
import runtime_image  # noqa: E402


def _blob(out, data):
    d = hashlib.sha256(data).hexdigest()
    with open(os.path.join(out, "blobs", "sha256", d), "wb") as f:
        f.write(data)
    return "sha256:" + d, len(data)


def _layer(root, binary, dest_path, out):
    """The root (and the binary at dest_path) as one tar layer, written straight into blobs/."""
    tmp = os.path.join(out, "layer.tar")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tf:
        for name in sorted(os.listdir(root)):
            tf.add(os.path.join(root, name), arcname=name, recursive=True)
        ti = tf.gettarinfo(binary, arcname=dest_path.lstrip("/"))
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = "root"
        ti.mode = 0o755
        with open(binary, "rb") as f:
            tf.addfile(ti, f)
    h = hashlib.sha256()
    with open(tmp, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    d = h.hexdigest()
    size = os.path.getsize(tmp)
    os.rename(tmp, os.path.join(out, "blobs", "sha256", d))
    return "sha256:" + d, size


def _image(out, layer, ref, entrypoint, cmd, user):
    config = {"architecture": "amd64", "os": "linux",
              "config": {"User": user, "Entrypoint": entrypoint, "Cmd": cmd, "WorkingDir": "/",
                         "Env": ["PATH=" + runtime_image.DOCKER_PATH]},
              "rootfs": {"type": "layers", "diff_ids": [layer[0]]}}
    cdig, csize = _blob(out, json.dumps(config, sort_keys=True).encode())
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cdig, "size": csize},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer[0],
                            "size": layer[1]}]}
    mdig, msize = _blob(out, json.dumps(manifest, sort_keys=True).encode())
    return {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mdig, "size": msize,
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {"io.containerd.image.name": ref, "org.opencontainers.image.ref.name": ref}}


def build(ref, pause_ref, work):
    """Builds the archive in work/ (needs the network on a cold cache: debootstrap). Returns
    (archive path, a short description)."""
    t0 = time.monotonic()
    stage = runtime_image.Stage()
    os.makedirs(runtime_image.OUT, exist_ok=True)
    binary, origin = runtime_image.release_binary()
    os.makedirs(runtime_image.TOOLS_DIR, exist_ok=True)
    with open(os.path.join(runtime_image.TOOLS_DIR, ".rootfs.lock"), "w") as lockf:
        fcntl.flock(lockf, fcntl.LOCK_EX)
        rootfs = runtime_image.rootfs(stage)
        out = os.path.join(work, "oci")
        subprocess.run(["rm", "-rf", out], check=True)
        os.makedirs(os.path.join(out, "blobs", "sha256"))
        layer = _layer(os.path.join(rootfs, "root"), binary, stage.binary_path, out)
    manifests = [_image(out, layer, ref, stage.entrypoint, stage.cmd, stage.user),
                 _image(out, layer, pause_ref, ["/bin/sleep", "infinity"], [], "65535:65535")]
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": manifests}, f)
    with open(os.path.join(out, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    archive = os.path.join(work, "image.tar")
    with tarfile.open(archive, "w") as tf:
        for name in ("oci-layout", "index.json", "blobs"):
            tf.add(os.path.join(out, name), arcname=name)
    subprocess.run(["rm", "-rf", out], check=True)
    return archive, "%s and %s (one %.0f MB layer; binary %s) built in %.0f s" % (
        ref, pause_ref, layer[1] / 1e6, origin, time.monotonic() - t0)


def load(ctr, archive):
    """Imports the archive with ctr (a command list ending before the subcommand) and removes it."""
    r = subprocess.run(ctr + ["images", "import", archive], capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError("ctr images import failed: %s" % (r.stdout + r.stderr)[-2000:])
    os.unlink(archive)


if __name__ == "__main__":
    sys.exit(__doc__)
