#!/bin/bash
# A policy plugin built outside the tree: `make install` into a DESTDIR,
# compile examples/plugin/stride.c with only the installed headers found
# through pkg-config, load it into the installed usm/usmd, and check that
# it serves faults (more pages mapped than faults taken: it prefetches).
# Also: a misspelt policy name, a bad plugin path and a bad plugin
# parameter each stop usmd with a clear message.
# timeout: 240
set -eu
. "$(dirname "$0")/lib.sh"
# lib.sh's cleanup may end on a false test; under set -e that would turn
# exit 0 or 77 into 1.
trap '_lib_cleanup || :' EXIT
need_cmd make cc pkg-config
need_prog "$TORTURE"

SRC=$(cd "$(dirname "$0")/../.." && pwd)
ROOT=$T/root                       # the DESTDIR
P=$ROOT/usr/local
# The installed binaries must find their own library and agent.
unset USM_AGENT LD_LIBRARY_PATH

# ---- the documented listing is the example ---------------------------------

# docs/policy-api.md walks through the full source of stride.c: the copy
# there must be the file, line for line.
sed -n '/^<!-- BEGIN examples\/plugin\/stride.c/,/^<!-- END examples\/plugin\/stride.c/p' \
	"$SRC/docs/policy-api.md" | sed '1,2d;$d' | sed '$d' >"$T/doc-stride.c"
if ! cmp -s "$T/doc-stride.c" "$SRC/examples/plugin/stride.c"; then
	diff -u "$SRC/examples/plugin/stride.c" "$T/doc-stride.c" | head -n 20 >&2
	fail "the listing in docs/policy-api.md differs from examples/plugin/stride.c"
fi
ok "docs/policy-api.md lists examples/plugin/stride.c verbatim"

# ---- install --------------------------------------------------------------

# A build directory of our own, so build/ is not disturbed; no make state
# of a calling make (jobserver, SAN=1, BUILD=...) leaks in.  `install` runs
# ldconfig, which must not touch this machine's cache for a DESTDIR
# install: a no-op ldconfig goes first on PATH.
mkdir -p "$T/fakebin"
printf '#!/bin/sh\nexit 0\n' >"$T/fakebin/ldconfig"
chmod +x "$T/fakebin/ldconfig"
rc=0
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u SAN -u TSAN PATH="$T/fakebin:$PATH" \
	make -C "$SRC" -j2 BUILD="$T/build" install DESTDIR="$ROOT" PREFIX=/usr/local \
	>"$T/install.log" 2>&1 || rc=$?
assert_status 0 "$rc" "make BUILD=\$T/build install DESTDIR=\$T/root PREFIX=/usr/local" "$T/install.log"
for f in bin/usm bin/usmd lib/libusm.so.1 lib/libusm.so lib/usm/libusm-agent.so \
	include/usm/usm.h include/usm/list.h lib/pkgconfig/usm.pc; do
	[ -e "$P/$f" ] || fail "make install did not install \$PREFIX/$f"
done
ok "installed: usm, usmd, libusm.so.1, the agent, the headers and usm.pc"

# ---- pkg-config under the DESTDIR -------------------------------------------

pc() {
	PKG_CONFIG_PATH=$P/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$ROOT pkg-config "$@"
}
rc=0
cflags=$(pc --cflags usm 2>"$T/pc.err") || rc=$?
assert_status 0 "$rc" "pkg-config --cflags usm (PKG_CONFIG_SYSROOT_DIR=\$T/root)" "$T/pc.err"
case " $cflags " in
*" -I$P/include "*) ok "cflags point into the DESTDIR: $cflags" ;;
*) fail "pkg-config --cflags usm gave '$cflags', expected -I$P/include" ;;
esac
libs=$(pc --libs usm)
case " $libs " in
*" -L$P/lib "*) case " $libs " in *" -lusm "*) ok "libs point into the DESTDIR: $libs" ;; esac ;;
esac
case " $libs " in
*" -L$P/lib "*" -lusm "* | *" -L$P/lib -lusm "*) ;;
*) fail "pkg-config --libs usm gave '$libs', expected -L$P/lib -lusm" ;;
esac

# ---- build the plugin ------------------------------------------------------

# The documented one-liner, with warnings as errors; the source is copied
# out of the tree so no -I of the tree can help it.
cp "$SRC/examples/plugin/stride.c" "$T/stride.c"
SO=$T/stride.so
rc=0
# shellcheck disable=SC2086
cc -shared -fPIC -Wall -Wextra -Werror $cflags "$T/stride.c" -o "$SO" >"$T/cc.log" 2>&1 || rc=$?
assert_status 0 "$rc" "cc -shared -fPIC \$(pkg-config --cflags usm) stride.c -o stride.so" "$T/cc.log"

# The example's own Makefile (pkg-config only) builds it too.
cp -r "$SRC/examples/plugin" "$T/plugin"
rm -f "$T/plugin/stride.so"
rc=0
PKG_CONFIG_PATH=$P/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$ROOT \
	make -C "$T/plugin" CFLAGS="-O2 -Wall -Wextra -Werror" >"$T/make-plugin.log" 2>&1 || rc=$?
assert_status 0 "$rc" "make -C examples/plugin (a copy)" "$T/make-plugin.log"
[ -f "$T/plugin/stride.so" ] || fail "examples/plugin/Makefile did not produce stride.so"

# Every usm_* symbol the plugin needs is exported by the installed library.
if command -v nm >/dev/null 2>&1; then
	nm -D --defined-only "$P/lib/libusm.so.1" | awk '{print $NF}' | sort -u >"$T/lib.syms"
	nm -D --undefined-only "$SO" | awk '{print $NF}' | grep '^usm_' | sort -u >"$T/plugin.syms"
	missing=$(comm -23 "$T/plugin.syms" "$T/lib.syms" | tr '\n' ' ')
	[ -z "$missing" ] || fail "libusm.so.1 does not export what stride.so uses: $missing"
	ok "libusm.so.1 exports all $(wc -l <"$T/plugin.syms") usm_* symbols stride.so uses"
fi

# ---- run a program under it ------------------------------------------------

rc=0
timeout -k 5 60 "$P/bin/usm" run -p "$SO" -P stride --stats-json "$T/s.json" -- \
	"$TORTURE" mmap malloc >"$T/out" 2>"$T/err" || rc=$?
if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
	show "$T/out" "$T/err"
	fail "usm run -p stride.so -P stride -- usm_torture mmap malloc did not finish in 60 s" \
		"(a fault left unresolved: e.g. a run past the end of a mapping not clipped)"
fi
assert_status 0 "$rc" "usm run -p stride.so -P stride -- usm_torture mmap malloc" "$T/out" "$T/err"
assert_grep "$T/out" '^torture: mmap: OK ' "torture mmap passed"
assert_grep "$T/out" '^torture: malloc: OK ' "torture malloc passed"
assert_no_grep "$T/err" 'usm-agent| error: ' "no agent or policy complaint"

json_summary "$T/s.json"
json_check "$T/s.json" "len(procs(comm='usm_torture')) == 1" "usm_torture attached once"
json_check "$T/s.json" "procs(comm='usm_torture')[0]['policy'] == 'stride'" "usm_torture ran under policy stride"
json_check "$T/s.json" "procs(comm='usm_torture')[0]['faults'] > 0" "usm_torture took faults"
log "pages per fault: $(json_eval "$T/s.json" "procs(comm='usm_torture')[0]['pages_mapped'] / procs(comm='usm_torture')[0]['faults']")"
json_check "$T/s.json" "procs(comm='usm_torture')[0]['pages_mapped'] > procs(comm='usm_torture')[0]['faults']" \
	"pages_mapped > faults: the stride prefetch worked"
json_check "$T/s.json" "d['frames_in_use'] == 0" "every frame returned to the pool"

# The same .so, unchanged, in the in-process host.
rc=0
timeout -k 5 60 "$P/bin/usm" run --inline -p "$SO" -P stride --stats-json "$T/si.json" -- \
	"$TORTURE" mmap malloc >"$T/out" 2>"$T/err" || rc=$?
assert_status 0 "$rc" "usm run --inline -p stride.so -P stride -- usm_torture mmap malloc" "$T/out" "$T/err"
assert_grep "$T/out" '^torture: malloc: OK ' "inline: torture mmap and malloc passed"
json_check "$T/si.json" "procs(comm='usm_torture')[0]['policy'] == 'stride' and procs(comm='usm_torture')[0]['inline']" \
	"inline: usm_torture ran under policy stride in the process"
json_check "$T/si.json" "procs(comm='usm_torture')[0]['pages_mapped'] > procs(comm='usm_torture')[0]['faults']" \
	"inline: pages_mapped > faults: the plugin's prefetch ran in the process"

# ---- configuration errors ----------------------------------------------------

# usmd_fails NAME WHAT PATTERN ARGS...: usmd ARGS must exit non-zero at once
# with a line matching PATTERN, leaving no socket behind.
usmd_fails() {
	local name=$1 what=$2 pat=$3 rc=0
	shift 3
	timeout -k 5 20 "$P/bin/usmd" -i "$name" "$@" >"$T/$name.out" 2>&1 || rc=$?
	if [ "$rc" = 0 ] || [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		show "$T/$name.out"
		fail "$what: usmd $* should fail at start-up (exit status $rc)"
	fi
	assert_grep "$T/$name.out" "$pat" "$what: usmd exits $rc saying so"
	[ ! -e "$USM_RUNTIME_DIR/$name.sock" ] || fail "$what: usmd left $name.sock behind"
}

usmd_fails typo "policy name typo" \
	"unknown policy 'strdie' \\(registered: .*stride" -p "$SO" -o 'policy strdie'

printf 'memory 64\nplugin %s\npolicy strdie\n' "$SO" >"$T/typo.cfg"
usmd_fails typocfg "policy name typo in a config file with a plugin line" \
	"typo\\.cfg:3: unknown policy 'strdie'" -c "$T/typo.cfg"

usmd_fails noplugin "missing plugin" \
	"plugin $T/nonexistent\\.so: cannot load" -p "$T/nonexistent.so"

usmd_fails badparam "bad plugin parameter" \
	"stride\\.max_pages must be 1 to 512, got 0" -p "$SO" -o 'set stride.max_pages 0'

exit 0
