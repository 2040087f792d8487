#!/usr/bin/env bash
# examples/demo.sh: the dbnl-gateway quick start.
#
# Builds bin/dbnl-gateway and bin/platform (a stand-in dbnl API), starts
# both on 127.0.0.1, mints a demo token and walks through what the gateway
# does with curl: an allowed request, forged identity headers, bad and
# missing tokens, a disabled user, and a role change taking effect within
# the permissions TTL. Then it keeps both servers running until Ctrl-C
# (or, with --once or DEMO_ONCE=1, stops them and exits: non-zero if any
# step did not answer as expected).
#
# Environment (all optional):
#   DBNL_PAT_SECRET     HMAC secret; a fixed DEMO-ONLY value when unset
#   DBNL_PLATFORM_ADDR  platform address        (default 127.0.0.1:9080)
#   DBNL_GATEWAY_HOST   gateway host            (default 127.0.0.1)
#   DBNL_GATEWAY_PORT   gateway port            (default 8080)
#   DBNL_ADMIN_ADDR     Caddy admin address     (default 127.0.0.1:2019)
#   DEMO_ONCE=1         same as --once
#
# Needs go, curl and bash; jq, when present, trims the JSON shown.

# shellcheck disable=SC2016 # the commands shown keep their $ literal
set -euo pipefail

usage() {
	sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
	echo "Usage: examples/demo.sh [--once]"
}

once=${DEMO_ONCE:-0}
for arg in "$@"; do
	case $arg in
	--once) once=1 ;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		echo "demo.sh: unknown argument '$arg'" >&2
		usage >&2
		exit 2
		;;
	esac
done

cd "$(dirname "${BASH_SOURCE[0]}")/.."

export DBNL_PLATFORM_ADDR=${DBNL_PLATFORM_ADDR:-127.0.0.1:9080}
export DBNL_GATEWAY_HOST=${DBNL_GATEWAY_HOST:-127.0.0.1}
export DBNL_GATEWAY_PORT=${DBNL_GATEWAY_PORT:-8080}
export DBNL_ADMIN_ADDR=${DBNL_ADMIN_ADDR:-127.0.0.1:2019}
gateway="http://$DBNL_GATEWAY_HOST:$DBNL_GATEWAY_PORT"
platform="http://$DBNL_PLATFORM_ADDR"
ttl=5 # permissions_ttl in ./Caddyfile, in seconds
logdir=bin/demo-logs

demo_secret=0
if [[ -z ${DBNL_PAT_SECRET:-} ]]; then
	# DEMO ONLY: a fixed secret published in this file, so the demo runs
	# with no setup. Anyone can mint tokens with it: never use it for a
	# gateway that protects anything.
	export DBNL_PAT_SECRET='dbnl-gateway-DEMO-ONLY-secret-do-not-use-0123456789'
	demo_secret=1
fi

# ---------------------------------------------------------------- helpers

say() { printf '\n== %s ==\n' "$*"; }
note() { printf '%s\n' "$*"; }
die() {
	printf 'demo.sh: %s\n' "$*" >&2
	exit 1
}

failures=0
pass() { printf '[ok] %s\n' "$*"; }
fail() {
	printf '[FAIL] %s\n' "$*"
	failures=$((failures + 1))
}

# sha256_hex prints the SHA-256 of stdin in hex.
sha256_hex() {
	if command -v sha256sum >/dev/null; then
		sha256sum | cut -d' ' -f1
	else
		shasum -a 256 | cut -d' ' -f1
	fi
}

# describe_token prints a token the way logs show it: never whole.
describe_token() {
	printf '%s… (fingerprint %s)' "${1:0:10}" \
		"$(printf '%s' "$1" | sha256_hex | cut -c1-12)"
}

# iso_utc prints a Unix time as RFC 3339 in UTC (GNU or BSD date).
iso_utc() {
	date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ 2>/dev/null ||
		date -u -r "$1" +%Y-%m-%dT%H:%M:%SZ
}

# shell_quote prints its argument as it would be typed in a shell.
shell_quote() {
	if [[ $1 =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then
		printf '%s' "$1"
	else
		printf "'%s'" "${1//\'/\'\\\'\'}"
	fi
}

# request [--jq FILTER] WANT TOKEN_VAR METHOD URL [CURL_ARG...]
#
# Shows the curl command (the token as $TOKEN_VAR, never its value), runs
# it, prints the status, any WWW-Authenticate header and the body (through
# jq FILTER when jq is installed), and checks the status is WANT. The
# token travels to curl on stdin, not in its argument list. The body is
# left in $logdir/body.
request() {
	local filter=.
	if [[ $1 == --jq ]]; then
		filter=$2
		shift 2
	fi
	local want=$1 tokvar=$2 method=$3 url=$4
	shift 4

	local shown="curl" arg
	[[ $method == GET ]] || shown+=" -X $method"
	[[ -z $tokvar ]] || shown+=" -H \"Authorization: Bearer \$$tokvar\""
	for arg in "$@"; do
		shown+=" $(shell_quote "$arg")"
	done
	shown+=" $(shell_quote "$url")"
	printf '$ %s\n' "$shown"

	local config=""
	[[ -z $tokvar ]] || config="header = \"Authorization: Bearer ${!tokvar}\""
	local status
	status=$(printf '%s\n' "$config" | curl -K - -sS -X "$method" \
		-o "$logdir/body" -D "$logdir/headers" -w '%{http_code}' "$@" "$url") ||
		status="(curl failed)"

	printf 'HTTP %s\n' "$status"
	grep -i '^www-authenticate:' "$logdir/headers" | tr -d '\r' || true
	if command -v jq >/dev/null && jq -e . "$logdir/body" >/dev/null 2>&1; then
		jq "$filter" "$logdir/body"
	else
		cat "$logdir/body"
	fi

	if [[ $status == "$want" ]]; then
		pass "got $status, as expected"
	else
		fail "got $status, want $want"
	fi
}

# body_has and body_lacks check the last response body for a string.
body_has() {
	if grep -qF -- "$1" "$logdir/body"; then pass "$2"; else fail "$2"; fi
}
body_lacks() {
	if grep -qF -- "$1" "$logdir/body"; then fail "$2"; else pass "$2"; fi
}

# port_free reports whether nothing answers at host:port.
port_free() {
	local rc=0
	curl -s -o /dev/null --max-time 1 "http://$1/" || rc=$?
	[[ $rc -eq 7 ]] # 7: could not connect
}

# wait_ready waits, boundedly, until URL answers while PID is alive.
wait_ready() {
	local name=$1 pid=$2 url=$3 log=$4 i
	for ((i = 0; i < 100; i++)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			tail -n 20 "$log" >&2 || true
			die "$name exited during start-up; log: $log"
		fi
		if curl -s -o /dev/null --max-time 1 "$url"; then
			return 0
		fi
		sleep 0.1
	done
	tail -n 20 "$log" >&2 || true
	die "$name did not answer at $url within 10s; log: $log"
}

# ------------------------------------------------------- servers and exit

pids=()
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
	local pid i
	for pid in ${pids[@]+"${pids[@]}"}; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in ${pids[@]+"${pids[@]}"}; do
		for ((i = 0; i < 50; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
}
# interrupted reports a Ctrl-C (or a closed terminal, or a kill) and
# exits with the usual 128+signal status; the EXIT trap then stops the
# servers
# shellcheck disable=SC2317 # run by the INT, TERM and HUP traps
interrupted() {
	if ((${#pids[@]} > 0)); then
		printf '\ndemo.sh: %s; stopping the gateway and the platform\n' "$1" >&2
	else
		printf '\ndemo.sh: %s\n' "$1" >&2
	fi
	exit "$2"
}
trap cleanup EXIT
trap 'interrupted "interrupted" 130' INT
trap 'interrupted "terminated" 143' TERM
trap 'interrupted "terminal closed" 129' HUP

# start_server LOG CMD...: starts CMD in the background, its output in
# LOG, and sets server_pid. With setsid (util-linux) CMD runs in a session
# of its own, outside the terminal's process group: a Ctrl-C then reaches
# only this script, whose traps stop the servers by pid, instead of
# killing them behind its back. A background job of a script is never a
# process group leader, so setsid execs CMD in place and $! is CMD's pid.
start_server() {
	local log=$1
	shift
	if command -v setsid >/dev/null; then
		setsid "$@" >"$log" 2>&1 </dev/null &
	else
		"$@" >"$log" 2>&1 </dev/null &
	fi
	server_pid=$!
	pids+=("$server_pid")
}

say "building"
mkdir -p bin "$logdir"
note "$ go build -o bin/dbnl-gateway ./cmd/dbnl-gateway"
go build -o bin/dbnl-gateway ./cmd/dbnl-gateway
note "$ go build -o bin/platform ./examples/platform"
go build -o bin/platform ./examples/platform

say "starting the platform and the gateway"
for addr in "$DBNL_PLATFORM_ADDR" "$DBNL_GATEWAY_HOST:$DBNL_GATEWAY_PORT" "$DBNL_ADMIN_ADDR"; do
	port_free "$addr" || die "something already listens on $addr (see the address variables in --help)"
done
if [[ $demo_secret == 1 ]]; then
	note "DBNL_PAT_SECRET is unset: using the DEMO-ONLY secret from examples/demo.sh"
fi

start_server "$logdir/platform.log" \
	bin/platform -listen "$DBNL_PLATFORM_ADDR" -users examples/platform/users.json
platform_pid=$server_pid
start_server "$logdir/gateway.log" \
	bin/dbnl-gateway run --config Caddyfile --adapter caddyfile
gateway_pid=$server_pid

wait_ready platform "$platform_pid" "$platform/v0/spec.json" "$logdir/platform.log"
wait_ready gateway "$gateway_pid" "$gateway/v0/spec.json" "$logdir/gateway.log"
note "platform (stand-in dbnl API): $platform   pid $platform_pid"
note "gateway:                      $gateway   pid $gateway_pid"
note "logs: $logdir/platform.log, $logdir/gateway.log"

say "minting a token for user_123 (org_reader; namespace_writer in ns_1)"
note '$ TOKEN=$(bin/dbnl-gateway pat mint --user user_123 --issuer dbnl --audience dbnl-api)'
TOKEN=$(bin/dbnl-gateway pat mint --user user_123 --issuer dbnl --audience dbnl-api)
note "TOKEN=$(describe_token "$TOKEN")"

# what jq shows of the platform's report: single header values unwrapped
dbnl='dbnl_headers: (.dbnl_headers | map_values(if length == 1 then .[0] else . end))'
report="{method, path, raw_query, authorization, $dbnl}"

say "(a) allowed: user_123 lists projects in ns_1"
request --jq "$report" 200 TOKEN GET "$gateway/v0/projects?namespace_id=ns_1"
body_has 'projects.write' "the platform got user_123's current permissions in ns_1"

say "(b) forged identity headers are replaced, not forwarded"
request --jq "$report" 200 TOKEN GET "$gateway/v0/projects?namespace_id=ns_1" \
	-H 'X-Dbnl-User-Id: admin' -H 'X_Dbnl_Org_Role: org_admin'
body_has '"user_123"' "the platform saw the trusted user id user_123"
body_lacks '"admin"' "the forged X-Dbnl-User-Id: admin never reached the platform"
body_lacks 'org_admin' "the forged X_Dbnl_Org_Role never reached the platform"

say "(c) a tampered token and an expired token are refused"
sig=${TOKEN##*.}
if [[ ${sig:0:1} == A ]]; then flip=B; else flip=A; fi
# shellcheck disable=SC2034 # read by request through ${!tokvar}
TAMPERED="${TOKEN%.*}.$flip${sig:1}"
note "TAMPERED=\$TOKEN with the first signature character changed"
request 401 TAMPERED GET "$gateway/v0/projects?namespace_id=ns_1"
body_has '"auth_error"' "the answer is the auth_error the SDK expects"

expired_at=$(iso_utc $(($(date +%s) - 3600)))
note "\$ EXPIRED=\$(bin/dbnl-gateway pat mint --user user_123 --issuer dbnl --audience dbnl-api \\
    --expires-at $expired_at)"
# shellcheck disable=SC2034 # read by request through ${!tokvar}
EXPIRED=$(bin/dbnl-gateway pat mint --user user_123 --issuer dbnl --audience dbnl-api \
	--expires-at "$expired_at" 2>"$logdir/mint.log")
request 401 EXPIRED GET "$gateway/v0/projects?namespace_id=ns_1"

say "(d) no token at all"
request 401 "" GET "$gateway/v0/projects?namespace_id=ns_1"
body_has '"auth_error"' "the answer is the auth_error the SDK expects"

say "a valid token for a disabled user is refused too"
note '$ DISABLED=$(bin/dbnl-gateway pat mint --user user_disabled --issuer dbnl --audience dbnl-api)'
# shellcheck disable=SC2034 # read by request through ${!tokvar}
DISABLED=$(bin/dbnl-gateway pat mint --user user_disabled --issuer dbnl --audience dbnl-api)
request 401 DISABLED GET "$gateway/v0/projects?namespace_id=ns_1"

say "(e) a role change reaches the same token within the permissions TTL (${ttl}s)"
note "user_123 can write in ns_1 now:"
request --jq "{method, path, $dbnl}" 200 TOKEN POST "$gateway/v0/projects?namespace_id=ns_1" \
	--data '{"name": "demo"}'

note ""
note "An org admin (user_admin holds users.write) makes user_123 a reader in ns_1:"
note '$ ADMIN_TOKEN=$(bin/dbnl-gateway pat mint --user user_admin --issuer dbnl --audience dbnl-api)'
ADMIN_TOKEN=$(bin/dbnl-gateway pat mint --user user_admin --issuer dbnl --audience dbnl-api)
request 200 ADMIN_TOKEN PUT "$gateway/v0/admin/users/user_123" \
	-H 'Content-Type: application/json' \
	--data '{"org_role": "org_reader", "namespaces": {"ns_1": "namespace_reader", "ns_2": "namespace_reader"}}'

note ""
note "The gateway caches permissions for up to ${ttl}s; waiting $((ttl + 1))s, then the same \$TOKEN:"
sleep $((ttl + 1))
request 403 TOKEN POST "$gateway/v0/projects?namespace_id=ns_1" --data '{"name": "demo"}'
body_has 'projects.write' "the platform refused: projects.write is gone"
request --jq "{method, path, $dbnl}" 200 TOKEN GET "$gateway/v0/projects?namespace_id=ns_1"
note "(reading still works: user_123 is a namespace_reader in ns_1)"

# put user_123 back, so trying things by hand starts from the demo users
restore_config="header = \"Authorization: Bearer $ADMIN_TOKEN\""
if printf '%s\n' "$restore_config" | curl -K - -sS -o /dev/null -f -X PUT \
	-H 'Content-Type: application/json' \
	--data '{"org_role": "org_reader", "namespaces": {"ns_1": "namespace_writer", "ns_2": "namespace_reader"}}' \
	"$gateway/v0/admin/users/user_123"; then
	note ""
	note "(user_123 is a namespace_writer in ns_1 again)"
else
	fail "restoring user_123's roles"
fi

say "summary"
if ((failures > 0)); then
	note "$failures check(s) did not answer as expected; logs: $logdir/"
else
	note "every step answered as expected"
fi

if [[ $once == 1 ]]; then
	((failures == 0)) || exit 1
	exit 0
fi

say "try it yourself"
if [[ $demo_secret == 1 ]]; then
	note "  export DBNL_PAT_SECRET='$DBNL_PAT_SECRET'   # the DEMO-ONLY secret"
fi
cat <<EOF
  TOKEN=\$(bin/dbnl-gateway pat mint --user user_123 --issuer dbnl --audience dbnl-api)
  curl -H "Authorization: Bearer \$TOKEN" '$gateway/v0/projects?namespace_id=ns_1'
  curl -H "Authorization: Bearer \$TOKEN" '$gateway/v0/users/me'
  bin/dbnl-gateway pat inspect "\$TOKEN"

Demo users (examples/platform/users.json, re-read when it changes):
user_123, user_reader, user_admin, user_disabled.
Logs: $logdir/gateway.log (access log) and $logdir/platform.log.

The gateway and the platform keep running; press Ctrl-C to stop both.
EOF
# sleep in the background and wait for it: the wait builtin, unlike a
# foreground command, gives way at once to a signal sent to this script
while kill -0 "$platform_pid" 2>/dev/null && kill -0 "$gateway_pid" 2>/dev/null; do
	sleep 1 &
	wait $! || true
done
die "a server exited on its own; logs: $logdir/"
