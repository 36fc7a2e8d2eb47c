#!/usr/bin/env bash
# deploy.sh: replace edge-agent on running gateways over ssh, safely.
#
# For each HOST, in order: pick the binary for the target (the architecture of
# the edge-agent it runs now), scp it beside the old one as BIN.new, check its
# SHA-256, that it runs there (`version`) and accepts the live config (`config
# check`), keep the old one as BIN.prev, swap by rename(2), restart the
# service and wait until `status -json` says the new version is connected and
# healthy (state ok or backlog), and still is a few seconds later. If it is
# not within --timeout, the target puts BIN.prev back and restarts by itself:
# that step runs on the target, so a dropped ssh connection does not stop it.
#
# Nothing waits forever: every command run on the target (version, config
# check, status) is killed after --check-timeout seconds and counts as a
# failed check, ssh gives up on a dead connection (ConnectTimeout,
# ServerAliveInterval), and each ssh call has an overall bound here.
#
# Prints one line per host on stdout: "HOST: ok …", "HOST: rolled back: …",
# "HOST: failed: …" (nothing changed) or "HOST: skipped …". Exit 0 when every
# host is ok, 1 otherwise, 2 on a usage error. docs/deploying.md.
set -euo pipefail

prog=${0##*/}
here=$(cd "$(dirname "$0")" && pwd)

usage() {
	cat <<EOF
usage: $prog [options] HOST...

HOST is anything ssh takes: gw-17, pi@10.0.0.17, an alias from ~/.ssh/config.

  -b, --binary FILE    deploy FILE to every host (default: from --dist, by the
                       architecture of the edge-agent each host runs now; not
                       checked against SHA256SUMS: you name the file)
  -d, --dist DIR       output of 'make dist' with SHA256SUMS (default: $here/../dist);
                       its binaries are checked against SHA256SUMS, a missing one
                       is an error
      --no-verify      deploy from --dist without SHA256SUMS (unchecked)
      --arm VARIANT    32-bit ARM build: armv6 (every Pi) or armv7 (Pi 2 and later
                       only; dies with SIGILL on a Pi Zero or Pi 1); default: the
                       one the host runs now
  -o OPTION            ssh/scp option, repeatable (-o Port=2222); ssh and scp run
                       with -o ConnectTimeout=10 -o ServerAliveInterval=10
                       -o ServerAliveCountMax=3 unless given here
  -i FILE, -F FILE, -J HOST
                       identity file, ssh config file, jump host (passed to ssh and scp)
      --sudo           run the steps on the target through 'sudo -n' (log in as pi,
                       not root); needs password-less sudo there
      --remote-bin PATH  the binary on the target (default /usr/local/bin/edge-agent)
      --config PATH    the live config on the target (default /etc/edge-agent/config.toml)
      --restart CMD    how to restart the agent on the target, run by sh there
                       (default: systemctl restart edge-agent)
      --timeout SEC    for the new agent to be connected and healthy (default 60)
      --settle SEC     it must still be healthy this long after (default 5)
      --check-timeout SEC
                       each command on the target (version, config check,
                       status) gets this long, then it is killed and the check
                       fails (default 10)
      --keep-going     go on with the next host after a failure (default: stop,
                       the remaining hosts are skipped)
  -v, --verbose        the steps on each target, on stderr
  -h, --help
EOF
}

die_usage() {
	echo "$prog: $*" >&2
	echo "run '$prog --help' for the options" >&2
	exit 2
}

binary="" dist="$here/../dist" arm="" sudo="" verbose="" keep_going="" verify=1
remote_bin=/usr/local/bin/edge-agent remote_cfg=/etc/edge-agent/config.toml
restart="systemctl restart edge-agent" timeout=60 settle=5 check_timeout=10
ssh_opts=() hosts=()

need_arg() { [ $# -ge 2 ] || die_usage "$1 needs a value"; }
while [ $# -gt 0 ]; do
	case $1 in
	-b | --binary) need_arg "$@"; binary=$2; shift 2 ;;
	-d | --dist) need_arg "$@"; dist=$2; shift 2 ;;
	--arm) need_arg "$@"; arm=$2; shift 2 ;;
	-o | -i | -F | -J) need_arg "$@"; ssh_opts+=("$1" "$2"); shift 2 ;;
	--sudo) sudo=1; shift ;;
	--remote-bin) need_arg "$@"; remote_bin=$2; shift 2 ;;
	--config) need_arg "$@"; remote_cfg=$2; shift 2 ;;
	--restart) need_arg "$@"; restart=$2; shift 2 ;;
	--timeout) need_arg "$@"; timeout=$2; shift 2 ;;
	--settle) need_arg "$@"; settle=$2; shift 2 ;;
	--check-timeout) need_arg "$@"; check_timeout=$2; shift 2 ;;
	--no-verify) verify=""; shift ;;
	--keep-going) keep_going=1; shift ;;
	-v | --verbose) verbose=1; shift ;;
	-h | --help) usage; exit 0 ;;
	--) shift; hosts+=("$@"); break ;;
	-*) die_usage "unknown option $1" ;;
	*) hosts+=("$1"); shift ;;
	esac
done
[ ${#hosts[@]} -gt 0 ] || die_usage "no HOST given"
case $arm in "" | armv6 | armv7) ;; *) die_usage "--arm is armv6 or armv7, not $arm" ;; esac
for n in "$timeout" "$settle" "$check_timeout"; do
	case $n in '' | *[!0-9]*) die_usage "--timeout, --settle and --check-timeout take whole seconds, not '$n'" ;; esac
done
[ "$check_timeout" -gt 0 ] || die_usage "--check-timeout must be at least 1"
if [ -n "$binary" ]; then
	[ -f "$binary" ] || die_usage "no such binary: $binary"
fi
case $remote_bin in */* | .*) ;; *) die_usage "--remote-bin must be a path, not '$remote_bin'" ;; esac

# q quotes one word for the remote POSIX shell.
q() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }

sha256() { sha256sum "$1" | cut -d' ' -f1; }

# binary_for ARCH prints the path of the binary to deploy, checked against
# SHA256SUMS, or fails with the reason.
binary_for() {
	if [ -n "$binary" ]; then
		printf '%s\n' "$binary"
		return
	fi
	local f="$dist/edge-agent-linux-$1"
	if [ ! -f "$f" ]; then
		echo "no $f (run make dist, or pass -b FILE)"
		return 1
	fi
	if [ -n "$verify" ]; then
		if [ ! -f "$dist/SHA256SUMS" ]; then
			echo "no $dist/SHA256SUMS to check $f against: run make dist (it writes dist/SHA256SUMS beside the binaries), copy the release's SHA256SUMS there, or pass --no-verify to deploy it unchecked"
			return 1
		fi
		local want
		want=$(awk -v n="edge-agent-linux-$1" '$2 == n || $2 == "*" n { print $1 }' "$dist/SHA256SUMS")
		if [ -z "$want" ]; then
			echo "$dist/SHA256SUMS has no line for edge-agent-linux-$1: run make dist again (or pass --no-verify)"
			return 1
		fi
		if [ "$want" != "$(sha256 "$f")" ]; then
			echo "$f does not match $dist/SHA256SUMS: a damaged or mixed-up dist; run make dist again"
			return 1
		fi
	fi
	printf '%s\n' "$f"
}

# The probe, run on the target as the login user: what runs there now.
# shellcheck disable=SC2016 # expanded by the remote shell
probe_script='
bin=$1 check_timeout=$2
echo "uname $(uname -m)"
if [ -x "$bin" ]; then
	echo "sha256 $(sha256sum "$bin" | cut -d" " -f1)"
	# A version that does not answer in time is "hung" (timeout says 124).
	rc=0
	if command -v timeout >/dev/null 2>&1; then
		v=$(timeout "$check_timeout" "$bin" version </dev/null 2>&1) || rc=$?
	else
		v=$("$bin" version </dev/null 2>&1) || rc=$?
	fi
	[ $rc != 124 ] || v=hung
	echo "version $(printf "%s" "$v" | head -n 1)"
	# A 32-bit build says GOARM in its build info.
	echo "goarm7 $(grep -c "$(printf "build\tGOARM=7")" "$bin")"
fi
'

# The transaction, run on the target (as root with --sudo). It prints
# progress on stderr and one "RESULT ok|rolledback|failed TEXT" line last.
# shellcheck disable=SC2016 # expanded by the remote shell
apply_script='
set -u
# A dropped connection must not stop this half-way: it rolls back by itself.
trap "" HUP PIPE
bin=$1 cfg=$2 sum=$3 upload=$4 timeout=$5 settle=$6 restart=$7 check_timeout=$8
new=$bin.new prev=$bin.prev
say() { printf "%s\n" "$*" >&2; }
result() { printf "RESULT %s\n" "$*"; exit 0; }
fail() { rm -f "$new" "$upload"; result "failed $* (nothing changed)"; }
first() { printf "%s" "$1" | head -n 1; }
# bounded SEC CMD...: CMD, killed with what it started after SEC seconds
# (status 124), so no check waits forever (where the target has timeout(1),
# as Pi OS has).
if command -v timeout >/dev/null 2>&1; then
	bounded() { timeout "$@"; }
else
	bounded() { shift; "$@"; }
fi

if [ "$upload" != "$new" ]; then
	mv -f "$upload" "$new" || fail "cannot move the upload to $new"
fi
[ "$(id -u)" != 0 ] || chown 0:0 "$new" 2>/dev/null || true
chmod 0755 "$new" || fail "cannot chmod $new"

got=$(sha256sum "$new" | cut -d" " -f1)
[ "$got" = "$sum" ] || fail "SHA-256 of $new on the target is $got, want $sum"
say "checksum ok"

rc=0
out=$(bounded "$check_timeout" "$new" version </dev/null 2>&1) || rc=$?
[ $rc != 124 ] || fail "the new binary did not answer version within ${check_timeout}s"
[ $rc = 0 ] || fail "the new binary does not run on this target: $(first "$out")"
case $out in "edge-agent "*) ;; *) fail "the new binary does not look like edge-agent: $(first "$out")" ;; esac
newv=$(printf "%s" "$out" | awk "NR == 1 { print \$2 }")
rc=0
out=$(bounded "$check_timeout" "$new" config check -config "$cfg" </dev/null 2>&1) || rc=$?
[ $rc != 124 ] || fail "the new binary did not finish config check within ${check_timeout}s"
[ $rc = 0 ] || fail "the new binary rejects the live config $cfg: $(first "$out")"
oldv=$(bounded "$check_timeout" "$bin" version </dev/null 2>/dev/null | awk "NR == 1 { print \$2 }")
say "new $newv runs here and accepts $cfg; replacing ${oldv:-?}"

# last: why the agent is not healthy yet, for the report.
last=""
healthy() { # healthy VERSION
	rc=0
	st=$(bounded "$check_timeout" "$bin" status -json -config "$cfg" </dev/null 2>&1) || rc=$?
	if [ $rc = 124 ]; then
		last="status did not answer within ${check_timeout}s"
		return 1
	elif [ $rc != 0 ]; then
		last="status: $(first "$st")"
		return 1
	fi
	v=$(printf "%s" "$st" | sed -n "s/.*\"version\" *: *\"\([^\"]*\)\".*/\1/p")
	state=$(printf "%s" "$st" | sed -n "s/.*\"state\" *: *\"\([^\"]*\)\".*/\1/p")
	lerr=$(printf "%s" "$st" | sed -n "s/.*\"last_error\" *: *\"\([^\"]*\)\".*/\1/p")
	if [ "$v" != "$1" ]; then
		last="version ${v:-?} answers, not $1"
		return 1
	fi
	if ! printf "%s" "$st" | grep -q "\"connected\" *: *true"; then
		last="not connected (state ${state:-?}${lerr:+: $lerr})"
		return 1
	fi
	case $state in
	ok | backlog) return 0 ;;
	*) last="state ${state:-?}${lerr:+: $lerr}"; return 1 ;;
	esac
}

# wait_healthy VERSION: within timeout, then still after settle.
wait_healthy() {
	end=$(($(date +%s) + timeout))
	until healthy "$1"; do
		[ "$(date +%s)" -lt "$end" ] || return 1
		sleep 1
	done
	say "$1 connected and healthy; settling ${settle}s"
	sleep "$settle"
	healthy "$1"
}

do_restart() {
	bounded "$timeout" sh -c "$restart" </dev/null >&2 2>&1
}

# Keep the old binary (a hard link costs no space), then swap atomically.
ln -f "$bin" "$prev" 2>/dev/null || cp -p "$bin" "$prev" || fail "cannot keep the old binary as $prev"
mv -f "$new" "$bin" || fail "cannot rename $new to $bin"
say "swapped; restarting: $restart"
start=$(date +%s)
if ! do_restart; then
	why="restart failed ($restart)"
elif wait_healthy "$newv"; then
	result "ok $newv connected and healthy after $(($(date +%s) - start))s (was ${oldv:-?}; previous kept as $prev)"
else
	why="$newv not connected and healthy within ${timeout}s: $last"
fi

say "$why; rolling back to ${oldv:-?}"
ln -f "$prev" "$bin.rollback" 2>/dev/null || cp -p "$prev" "$bin.rollback"
mv -f "$bin.rollback" "$bin"
if ! do_restart; then
	result "rolledback $why; ${oldv:-?} put back, but restarting it failed too: see the service on the target"
elif wait_healthy "$oldv"; then
	result "rolledback $why; ${oldv:-?} running again, connected and healthy"
fi
result "rolledback $why; ${oldv:-?} put back but not healthy either: $last"
'

# ssh and scp give up on a host that does not answer or a connection that
# died; after the operator's -o, so theirs win (ssh takes an option's first
# value).
ssh_defaults=(-o ConnectTimeout=10 -o ServerAliveInterval=10 -o ServerAliveCountMax=3)

# within SEC CMD... runs CMD here, stopped after SEC seconds (status 124):
# what ssh runs on the target is bounded there, this bounds the rest.
# --foreground leaves ^C to reach ssh.
within() {
	local sec=$1
	shift
	if command -v timeout >/dev/null; then
		timeout --foreground -k 10 "$sec" "$@"
	else
		"$@"
	fi
}

# remote SEC HOST CMD... runs a command line on HOST, for at most SEC seconds
# (stdin closed: the loop's stdin is not ssh's).
remote() {
	local sec=$1 host=$2
	shift 2
	within "$sec" ssh -n -o BatchMode=yes "${ssh_opts[@]}" "${ssh_defaults[@]}" "$host" "$@"
}

# The longest the probe and the transaction may take on a target: every
# step there is bounded (checks by --check-timeout, each restart and each
# wait by --timeout), plus time to connect and copy.
probe_budget=$((check_timeout + 120))
apply_budget=$((7 * check_timeout + 4 * timeout + 2 * settle + 120))

# deploy_one HOST prints HOST's result line; returns 0 only when ok.
deploy_one() {
	local host=$1 log="$tmp/ssh.log" out rc=0
	local started=$SECONDS

	if ! out=$(remote "$probe_budget" "$host" "sh -c $(q "$probe_script") probe $(q "$remote_bin") $(q "$check_timeout")" 2>"$log"); then
		if [ -s "$log" ]; then
			echo "$host: failed: ssh: $(tail -n 1 "$log") (nothing changed)"
		else
			echo "$host: failed: ssh: no answer within ${probe_budget}s (nothing changed)"
		fi
		return 1
	fi
	local mach cur_sha cur_ver arch arm32=$arm
	mach=$(sed -n 's/^uname //p' <<<"$out")
	if [ -z "$arm32" ]; then
		arm32=armv6
		[ "$(sed -n 's/^goarm7 //p' <<<"$out")" = 0 ] || arm32=armv7
	fi
	cur_sha=$(sed -n 's/^sha256 //p' <<<"$out")
	cur_ver=$(sed -n 's/^version //p' <<<"$out")
	if [ -z "$cur_ver" ]; then
		echo "$host: failed: no edge-agent at $remote_bin (install it first: scripts/install-image.sh) (nothing changed)"
		return 1
	fi
	if [ "$cur_ver" = hung ]; then
		echo "$host: failed: '$remote_bin version' did not answer within ${check_timeout}s (nothing changed)"
		return 1
	fi
	# The architecture of the agent it runs now ("… linux/arm64)"), so a
	# 32-bit userland on a 64-bit kernel keeps a 32-bit agent.
	case $cur_ver in
	*linux/arm\)) arch=$arm32 ;;
	*linux/arm64\)) arch=arm64 ;;
	*linux/amd64\)) arch=amd64 ;;
	*) arch="" ;;
	esac
	local bin
	if [ -z "$arch" ] && [ -z "$binary" ]; then
		echo "$host: failed: cannot tell the architecture from '$cur_ver' ($mach); pass -b FILE (nothing changed)"
		return 1
	fi
	if ! bin=$(binary_for "$arch"); then
		echo "$host: failed: $bin (nothing changed)"
		return 1
	fi
	local sum
	sum=$(sha256 "$bin")
	if [ "$sum" = "$cur_sha" ]; then
		echo "$host: ok: already runs this binary, $cur_ver; nothing to do"
		return 0
	fi
	[ -z "$verbose" ] || echo "$host: $mach, running ${cur_ver#edge-agent }; sending $bin" >&2

	# Beside the old one, unless only root may write there: then through
	# the login user's home and moved beside it as root.
	local upload="$remote_bin.new"
	[ -z "$sudo" ] || upload=".edge-agent.upload"
	if ! scp -q -o BatchMode=yes "${ssh_opts[@]}" "${ssh_defaults[@]}" "$bin" "$host:$upload" 2>"$log"; then
		echo "$host: failed: scp: $(sed 's/^scp: //' "$log" | tail -n 3 | paste -sd ';' - | sed 's/;/; /g') (nothing changed)"
		return 1
	fi

	local cmd
	cmd="sh -c $(q "$apply_script") apply $(q "$remote_bin") $(q "$remote_cfg") $(q "$sum") $(q "$upload") $(q "$timeout") $(q "$settle") $(q "$restart") $(q "$check_timeout")"
	[ -z "$sudo" ] || cmd="sudo -n $cmd"
	: >"$log"
	if [ -n "$verbose" ]; then
		out=$(remote "$apply_budget" "$host" "$cmd" 2> >(while IFS= read -r l; do printf '%s: %s\n' "$host" "$l"; done >&2)) || rc=$?
	else
		out=$(remote "$apply_budget" "$host" "$cmd" 2>"$log") || rc=$?
	fi
	local res
	res=$(sed -n 's/^RESULT //p' <<<"$out" | tail -n 1)
	local took=$((SECONDS - started))
	case $res in
	ok\ *) echo "$host: ok: ${res#ok } [${took}s]"; return 0 ;;
	rolledback\ *) echo "$host: rolled back: ${res#rolledback } [${took}s]" ;;
	failed\ *) echo "$host: failed: ${res#failed }" ;;
	*)
		local why
		why=$(tail -n 1 "$log" 2>/dev/null || true)
		[ "$rc" != 124 ] || why="no answer within ${apply_budget}s, ssh stopped"
		echo "$host: failed: no result from the target (ssh exit $rc${why:+: $why}); if the new agent was unhealthy the target rolls back by itself" ;;
	esac
	return 1
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

status=0 stop=""
for host in "${hosts[@]}"; do
	if [ -n "$stop" ]; then
		echo "$host: skipped: an earlier host failed (--keep-going goes on)"
		continue
	fi
	if ! deploy_one "$host"; then
		status=1
		[ -n "$keep_going" ] || stop=1
	fi
done
exit $status
