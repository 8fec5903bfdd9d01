#!/bin/sh
# check.sh DESTDIR PREFIX MODEL — make check's install test: in a tree made
# by `make install DESTDIR=... PREFIX=...`, pkg-config finds kgen, a program
# builds against its flags and runs, the man page renders without warnings.
set -eu
D=$1 P=$2 MODEL=$3
say() { echo "check-install: $*"; }
export PKG_CONFIG_SYSROOT_DIR=$D PKG_CONFIG_PATH=$D$P/lib/pkgconfig PKG_CONFIG_LIBDIR=
flags=$(pkg-config --cflags --libs kgen) || { say "pkg-config does not find kgen in $D$P"; exit 1; }
say "pkg-config --cflags --libs kgen: $flags"
[ "$(pkg-config --modversion kgen)" = "$("$D$P/bin/kgen" version | sed 's/^kgen //')" ] ||
    { say "kgen.pc's version is not the installed kgen's"; exit 1; }
# shellcheck disable=SC2086
${CC:-cc} -std=c11 -Wall -Wextra -Werror tests/install/prog.c -o "$D/prog" $flags
out=$("$D/prog" "$MODEL") || { say "the program built against the install failed: $out"; exit 1; }
say "a program built with those flags: $out"
page=$D$P/share/man/man1/kgen.1
warn=$(groff -man -Tutf8 -ww -z "$page" 2>&1) && [ -z "$warn" ] || { say "kgen.1 renders with warnings: $warn"; exit 1; }
for cmd in inspect compile run embed bench kernel kernels tune cache; do
    line=$("$D$P/bin/kgen" "$cmd" --help | head -n 1)
    groff -man -Tascii -P-cbou "$page" 2>/dev/null | grep -qF -- "$line" ||
        { say "kgen.1 lacks 'kgen $cmd --help' ($line)"; exit 1; }
done
say "kgen.1 renders and holds every command's --help"
