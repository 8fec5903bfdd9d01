#!/usr/bin/env python3
"""fetch_texts.py DIR — the English prose kgen measures quality on, into DIR.

Two separate texts, for `kgen perplexity` (evaluation) and for calibrating
compile-time transforms (calibration), made from the documentation in
Django's source distribution on PyPI (BSD license, its LICENSE file is
copied beside them): `pip download --no-deps --no-binary :all:` of a pinned
version, the archive checked by SHA-256, the reStructuredText pages
converted to plain prose (code, console sessions, directives and tables
dropped, inline markup reduced to its text), and each result checked by
SHA-256 before it is renamed into place. Never committed (models/ is
git-ignored). A text already present is verified and kept when it matches.

  eval.txt   docs/intro/*.txt (the tutorial and overview) and four FAQ pages
  calib.txt  docs/topics/db/*.txt (models, queries, managers, ...)
"""
import hashlib
import os
import re
import subprocess
import sys
import tarfile
import tempfile

PKG, VERSION = "Django", "5.1.4"
ARCHIVE = f"{PKG}-{VERSION}.tar.gz"
ARCHIVE_SHA256 = "de450c09e91879fa5a307f696e57c851955c910a438a35e6b4c895e86bedc82a"
ROOT = f"{PKG}-{VERSION}/"
TEXTS = {
    # name: (sha256 of the converted text, pages in order)
    "eval.txt": ("f5a47241731bb2c45978df0ac901ba8d79d3de63fd3c5af717b049e5effe8557",
                 ["docs/intro/overview.txt", "docs/intro/install.txt"] +
                 [f"docs/intro/tutorial0{i}.txt" for i in range(1, 9)] +
                 ["docs/intro/reusable-apps.txt", "docs/intro/whatsnext.txt", "docs/intro/contributing.txt"] +
                 [f"docs/faq/{p}.txt" for p in ("general", "usage", "help", "admin")]),
    "calib.txt": ("ebafd76effc31494a1d9ca793209f201c7681f7d756921227885debcf4038e48",
                  [f"docs/topics/db/{p}.txt" for p in
                       ("models", "queries", "aggregation", "managers", "transactions", "optimization")]),
}


def say(msg):
    print(f"texts: {msg}", file=sys.stderr, flush=True)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


ROLE = re.compile(r":[a-z]+(?::[a-z]+)?:`([^`<]*?)\s*(?:<[^`>]*>)?`")
LITERAL = re.compile(r"``([^`]+)``")
REF = re.compile(r"`([^`<]+?)\s*(?:<[^`>]*>)?`_{1,2}")
SUBST = re.compile(r"\|[a-z]+\|")


def inline(line):
    line = ROLE.sub(lambda m: m.group(1).lstrip("~!"), line)
    line = LITERAL.sub(r"\1", line)
    line = REF.sub(r"\1", line)
    line = SUBST.sub("", line)
    return line.replace("\\", "")


def prose(rst):
    """plain paragraphs from a reStructuredText page: headings kept as lines,
    indented blocks after '::' or a directive (code, console, notes' markup)
    and tables dropped; notes' and admonitions' own text kept"""
    out, lines = [], rst.splitlines()
    i, skip_indent = 0, None
    keep_body = ("note", "warning", "admonition", "seealso", "versionadded", "versionchanged", "tip", "important")
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if skip_indent is not None:
            if stripped and indent <= skip_indent:
                skip_indent = None
            else:
                i += 1
                continue
        if re.fullmatch(r"([=\-~^\"'`#*+])\1{2,}", stripped):  # heading under/overlines
            i += 1
            continue
        if stripped.startswith(".."):
            m = re.match(r"\.\.\s+([a-z\-]+)::(.*)", stripped)
            if m and m.group(1) in keep_body:
                title = m.group(2).strip()
                if title and m.group(1) == "admonition":
                    out.append(title)
            else:
                skip_indent = indent  # code, console, comments, targets, images: their block goes
            i += 1
            continue
        if stripped.startswith(("+--", "+==", "|")):  # grid tables, line blocks
            i += 1
            continue
        if stripped.endswith("::"):
            text = stripped[:-2].rstrip()
            if text:
                out.append(text + ":" if not text.endswith(":") else text)
            skip_indent = indent
            i += 1
            continue
        out.append(stripped)
        i += 1
    text = inline("\n".join(out))  # roles may span lines
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip() + "\n"


def fetch_archive(tmp):
    say(f"pip download {PKG}=={VERSION} (source distribution)")
    r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--quiet",
                        f"{PKG}=={VERSION}", "-d", tmp], stderr=subprocess.PIPE, text=True)
    path = os.path.join(tmp, ARCHIVE)
    if r.returncode or not os.path.exists(path):
        sys.exit(f"texts: pip download {PKG}=={VERSION} failed: {r.stderr.strip()[-2000:]}")
    with open(path, "rb") as f:
        got = sha256(f.read())
    if got != ARCHIVE_SHA256:
        sys.exit(f"texts: {ARCHIVE}: SHA-256 {got}, expected {ARCHIVE_SHA256}: refusing it")
    return path


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    want = {n: v for n, v in TEXTS.items()}
    todo = []
    for name, (digest, _) in want.items():
        path = os.path.join(out_dir, name)
        if digest and os.path.exists(path):
            with open(path, "rb") as f:
                if sha256(f.read()) == digest:
                    say(f"{path}: present, SHA-256 matches")
                    continue
            say(f"{path}: SHA-256 differs: fetching it again")
        todo.append(name)
    if not todo and os.path.exists(os.path.join(out_dir, "LICENSE.django")):
        return
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(fetch_archive(tmp)) as tar:
            def member(p):
                f = tar.extractfile(ROOT + p)
                if f is None:
                    sys.exit(f"texts: {ARCHIVE} has no file {p}")
                return f.read().decode("utf-8")
            lic = member("LICENSE").encode("utf-8")
            for name in todo:
                digest, pages = want[name]
                data = "\n".join(prose(member(p)) for p in pages).encode("utf-8")
                got = sha256(data)
                if digest and got != digest:
                    sys.exit(f"texts: {name}: converted text has SHA-256 {got}, expected {digest}")
                fd, tmp_path = tempfile.mkstemp(dir=out_dir, prefix=f".{name}.")
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp_path, os.path.join(out_dir, name))
                say(f"{os.path.join(out_dir, name)}: {len(data)} bytes from {len(pages)} pages, SHA-256 {got}")
        with open(os.path.join(out_dir, "LICENSE.django"), "wb") as f:
            f.write(lic)


if __name__ == "__main__":
    main()
