#!/usr/bin/env bash
# Load test of dbnl-gateway, on 127.0.0.1 only.
#
# Builds bin/dbnl-gateway and the helpers in examples/load (into
# bin/load), starts a tiny upstream, a users API that counts its calls,
# a forward_auth-style auth service and one gateway with a site per
# setup (see examples/load/Caddyfile), then measures with wrk, for
# DURATION seconds each, REPS times, in interleaved rounds:
#
#   proxy         plain reverse_proxy, no authentication (the baseline)
#   proxy_headers plain reverse_proxy plus the seven X-Dbnl-* headers
#                 dbnl_auth sets, added with request_header (what the
#                 headers cost without the module)
#   proxy_one_header  plain reverse_proxy plus about as many bytes in one
#                 header (whether the cost is in the bytes or the fields)
#   hs256 rs256   dbnl_auth, hot caches: a token already verified and
#   es256 eddsa   permissions cached (TTL HOT_TTL seconds)
#   cold-ttl      dbnl_auth with permissions_ttl 1ms, one user
#   cold-users    dbnl_auth rotating USERS users through a permissions
#                 cache of USERS_CACHE entries: every request is a miss
#   forward_auth  Caddy forward_auth to examples/load/authsvc (HS256 with
#                 golang-jwt, asks the users API on every request)
#
# and prints markdown tables: requests/s, p50 and p99 latency (medians
# of the repetitions), ratios to proxy and to forward_auth, users-API
# calls, and CPU time per request of the gateway and of all servers (read
# from /proc, steadier than throughput on a shared machine). It installs
# nothing: it needs go, wrk and curl.
#
# Settings (environment):
#   DURATION=10 REPS=3 WARMUP=1 CONNS=16 THREADS=1 HOT_TTL=5
#   USERS=5000 USERS_CACHE=1000 PORT_BASE=19100
#   SCENARIOS="proxy proxy_headers proxy_one_header hs256 rs256 es256 eddsa cold-ttl cold-users forward_auth"
#                (even rounds run them in reverse order)
#   OUT=<file>   also write the report there
#   NO_BUILD=1   use the binaries already in bin/
#   GATEWAY_BIN=<path>  run this gateway binary instead of building
#                bin/dbnl-gateway (to compare two builds of the module)
#
# Every server is started here, listens on 127.0.0.1 and is stopped by
# its PID on exit. wrk runs are bounded by DURATION (and a timeout).
set -euo pipefail

DURATION=${DURATION:-10}
REPS=${REPS:-3}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-16}
THREADS=${THREADS:-1}
HOT_TTL=${HOT_TTL:-5}
USERS=${USERS:-5000}
USERS_CACHE=${USERS_CACHE:-1000}
PORT_BASE=${PORT_BASE:-19100}
SCENARIOS=${SCENARIOS:-"proxy proxy_headers proxy_one_header hs256 rs256 es256 eddsa cold-ttl cold-users forward_auth"}
OUT=${OUT:-}

for n in DURATION REPS WARMUP CONNS THREADS HOT_TTL USERS USERS_CACHE PORT_BASE; do
	if ! [[ ${!n} =~ ^[0-9]+$ ]]; then
		echo "run.sh: $n must be a whole number, got '${!n}'" >&2
		exit 2
	fi
done
if ((DURATION < 1 || DURATION > 600 || REPS < 1 || REPS > 20)); then
	echo "run.sh: DURATION must be 1..600 and REPS 1..20" >&2
	exit 2
fi

# tools: this script installs nothing
missing=0
if ! command -v wrk >/dev/null; then
	echo "run.sh: wrk not found; install it with: apt-get install -y wrk" >&2
	missing=1
fi
for tool in go curl; do
	if ! command -v "$tool" >/dev/null; then
		echo "run.sh: $tool not found" >&2
		missing=1
	fi
done
((missing == 0)) || exit 1

cd "$(dirname "$0")/../.."
ROOT=$PWD
HERE=$ROOT/examples/load
WORK=$(mktemp -d /tmp/dbnl-load.XXXXXX)
LOGS=$WORK/logs
mkdir -p "$LOGS"

# ports, all on 127.0.0.1
UPSTREAM_PORT=$((PORT_BASE + 0))
USERS_PORT=$((PORT_BASE + 1))
AUTHSVC_PORT=$((PORT_BASE + 2))
PROXY_PORT=$((PORT_BASE + 10))
PROXY_HEADERS_PORT=$((PORT_BASE + 15))
PROXY_ONE_HEADER_PORT=$((PORT_BASE + 16))
HOT_PORT=$((PORT_BASE + 11))
COLD_TTL_PORT=$((PORT_BASE + 12))
COLD_USERS_PORT=$((PORT_BASE + 13))
FORWARD_PORT=$((PORT_BASE + 14))
ALL_PORTS="$UPSTREAM_PORT $USERS_PORT $AUTHSVC_PORT $PROXY_PORT $PROXY_HEADERS_PORT $PROXY_ONE_HEADER_PORT $HOT_PORT $COLD_TTL_PORT $COLD_USERS_PORT $FORWARD_PORT"

# --- processes: started here, stopped by PID --------------------------------

PIDS=()

stop_all() {
	local pid i
	for pid in "${PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		for ((i = 0; i < 50; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			echo "run.sh: PID $pid did not stop on TERM; sending KILL" >&2
			kill -KILL "$pid" 2>/dev/null || true
		fi
		wait "$pid" 2>/dev/null || true
	done
	PIDS=()
}
trap 'stop_all' EXIT
trap 'exit 130' INT TERM

port_open() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# start NAME PORT CMD...: runs CMD in the background, logging to
# $LOGS/NAME.log, and waits up to 10s for PORT to accept connections.
start() {
	local name=$1 port=$2 i
	shift 2
	"$@" >"$LOGS/$name.log" 2>&1 &
	local pid=$!
	PIDS+=("$pid")
	printf -v "PID_$name" '%s' "$pid"
	for ((i = 0; i < 100; i++)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "run.sh: $name exited at start; its log:" >&2
			cat "$LOGS/$name.log" >&2
			exit 1
		fi
		port_open "$port" && return 0
		sleep 0.1
	done
	echo "run.sh: $name did not listen on 127.0.0.1:$port within 10s" >&2
	exit 1
}

# --- build ------------------------------------------------------------------

for p in $ALL_PORTS; do
	if port_open "$p"; then
		echo "run.sh: 127.0.0.1:$p is already in use; set PORT_BASE to another value" >&2
		exit 1
	fi
done

if [[ -z ${NO_BUILD:-} ]]; then
	echo "building bin/dbnl-gateway and bin/load/ ..." >&2
	mkdir -p bin/load
	if [[ -z ${GATEWAY_BIN:-} ]]; then
		go build -o bin/dbnl-gateway ./cmd/dbnl-gateway
	fi
	go build -o bin/load/ ./examples/load/upstream ./examples/load/usersapi \
		./examples/load/authsvc ./examples/load/mint
fi

# --- credentials ------------------------------------------------------------

KEYS=$WORK/keys
bin/load/mint -out "$KEYS" -users "$USERS"
DBNL_PAT_SECRET=$(cat "$KEYS/secret")
export DBNL_PAT_SECRET

# --- servers ----------------------------------------------------------------

start upstream "$UPSTREAM_PORT" bin/load/upstream -listen "127.0.0.1:$UPSTREAM_PORT"
start usersapi "$USERS_PORT" bin/load/usersapi -listen "127.0.0.1:$USERS_PORT"
start authsvc "$AUTHSVC_PORT" bin/load/authsvc -listen "127.0.0.1:$AUTHSVC_PORT" \
	-permissions-url "http://127.0.0.1:$USERS_PORT/v0/users/{user}/permissions"

export LOAD_UPSTREAM_PORT=$UPSTREAM_PORT LOAD_USERS_PORT=$USERS_PORT \
	LOAD_AUTHSVC_PORT=$AUTHSVC_PORT LOAD_PROXY_PORT=$PROXY_PORT \
	LOAD_PROXY_HEADERS_PORT=$PROXY_HEADERS_PORT LOAD_PROXY_ONE_HEADER_PORT=$PROXY_ONE_HEADER_PORT \
	LOAD_HOT_PORT=$HOT_PORT LOAD_COLD_TTL_PORT=$COLD_TTL_PORT \
	LOAD_COLD_USERS_PORT=$COLD_USERS_PORT LOAD_FORWARD_PORT=$FORWARD_PORT \
	LOAD_KEYS=$KEYS LOAD_HOT_TTL=${HOT_TTL}s LOAD_USERS_CACHE=$USERS_CACHE
start gateway "$FORWARD_PORT" "${GATEWAY_BIN:-bin/dbnl-gateway}" run \
	--config "$HERE/Caddyfile" --adapter caddyfile
for p in $PROXY_PORT $PROXY_HEADERS_PORT $PROXY_ONE_HEADER_PORT $HOT_PORT $COLD_TTL_PORT $COLD_USERS_PORT; do
	port_open "$p" || { echo "run.sh: gateway is not listening on $p" >&2; exit 1; }
done

# --- scenarios --------------------------------------------------------------

# scenario NAME sets PORT, TOKENS (a file) and MODE (static or rotate).
scenario() {
	MODE=static
	case $1 in
	proxy) PORT=$PROXY_PORT TOKENS=$KEYS/hs256.tok ;;
	proxy_headers) PORT=$PROXY_HEADERS_PORT TOKENS=$KEYS/hs256.tok ;;
	proxy_one_header) PORT=$PROXY_ONE_HEADER_PORT TOKENS=$KEYS/hs256.tok ;;
	hs256) PORT=$HOT_PORT TOKENS=$KEYS/hs256.tok ;;
	rs256) PORT=$HOT_PORT TOKENS=$KEYS/rs256.tok ;;
	es256) PORT=$HOT_PORT TOKENS=$KEYS/es256.tok ;;
	eddsa) PORT=$HOT_PORT TOKENS=$KEYS/eddsa.tok ;;
	cold-ttl) PORT=$COLD_TTL_PORT TOKENS=$KEYS/hs256.tok ;;
	cold-users) PORT=$COLD_USERS_PORT TOKENS=$KEYS/users.tok MODE=rotate ;;
	forward_auth) PORT=$FORWARD_PORT TOKENS=$KEYS/hs256.tok ;;
	*)
		echo "run.sh: unknown scenario '$1'" >&2
		exit 2
		;;
	esac
}

TARGET_PATH="/v0/projects?namespace_id=ns_1"

# check NAME: one request by hand; it must pass and, behind an auth
# handler, reach the upstream with the identity the gateway set.
check() {
	local name=$1 token hdrs status seen
	scenario "$name"
	token=$(head -n 1 "$TOKENS")
	hdrs=$(curl -sS -o /dev/null -D - --max-time 5 \
		-H "Authorization: Bearer $token" -H "X-Dbnl-User-Id: forged" -H "X-Load-Echo: 1" \
		"http://127.0.0.1:$PORT$TARGET_PATH" | tr -d '\r')
	status=$(awk 'NR == 1 { print $2 }' <<<"$hdrs")
	seen=$(awk -F': ' 'tolower($1) == "x-seen-user-id" { print $2 }' <<<"$hdrs")
	if [[ $status != 200 ]]; then
		echo "run.sh: $name: check request got status $status, want 200" >&2
		exit 1
	fi
	if [[ $name != proxy* && ($seen == "" || $seen == forged) ]]; then
		echo "run.sh: $name: upstream saw user '$seen', want the token's user" >&2
		exit 1
	fi
}

stat_field() {
	sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"
}

# cpu_ticks PID...: user plus system CPU time of the processes so far,
# in clock ticks (fields 14 and 15 of /proc/PID/stat)
cpu_ticks() {
	local pid total=0 stat fields
	for pid in "$@"; do
		stat=$(<"/proc/$pid/stat")
		read -r -a fields <<<"${stat##*) }"
		total=$((total + fields[11] + fields[12]))
	done
	echo "$total"
}
CLK_TCK=$(getconf CLK_TCK)
SERVER_PIDS=("$PID_gateway" "$PID_upstream" "$PID_usersapi" "$PID_authsvc")

RAW=$WORK/raw.tsv
printf 'scenario\trep\trps\tp50_us\tp99_us\trequests\tnon2xx\tsocket_errors\tcalls\tusers\tmax_per_user\tgateway_ticks\tservers_ticks\n' >"$RAW"

# measure NAME REP: warm up, zero the users-API counts, run wrk, record.
measure() {
	local name=$1 rep=$2 url out result stats
	scenario "$name"
	url="http://127.0.0.1:$PORT$TARGET_PATH"
	local args=("$TOKENS")
	[[ $MODE == rotate ]] && args+=(rotate)

	check "$name"
	if ((WARMUP > 0)); then
		WRK_ROTATE_STATE=$WORK/rotate-$name timeout $((WARMUP + 30)) wrk -t"$THREADS" -c"$CONNS" -d"${WARMUP}s" \
			-s "$HERE/wrk.lua" "$url" -- "${args[@]}" >/dev/null
	fi
	curl -sS --max-time 5 -X POST "http://127.0.0.1:$USERS_PORT/reset" >/dev/null

	local gw0 all0 gw all
	gw0=$(cpu_ticks "$PID_gateway")
	all0=$(cpu_ticks "${SERVER_PIDS[@]}")
	out=$(WRK_ROTATE_STATE=$WORK/rotate-$name timeout $((DURATION + 30)) wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" \
		--timeout 5s -s "$HERE/wrk.lua" "$url" -- "${args[@]}")
	gw=$(($(cpu_ticks "$PID_gateway") - gw0))
	all=$(($(cpu_ticks "${SERVER_PIDS[@]}") - all0))
	printf '%s\n' "$out" >"$LOGS/wrk-$name-$rep.txt"
	result=$(grep '^RESULT ' <<<"$out") || {
		echo "run.sh: $name: wrk printed no RESULT line:" >&2
		printf '%s\n' "$out" >&2
		exit 1
	}
	stats=$(curl -sS --max-time 5 "http://127.0.0.1:$USERS_PORT/stats")

	# RESULT k=v ... into r_k variables, numbers only
	local kv k v r_requests=0 r_rps=0 r_p50_us=0 r_p99_us=0 r_non2xx=0 \
		r_connect=0 r_read=0 r_write=0 r_timeout=0
	for kv in ${result#RESULT }; do
		k=${kv%%=*} v=${kv#*=}
		if [[ $k =~ ^[a-z0-9_]+$ && $v =~ ^[0-9.]+$ ]]; then
			printf -v "r_$k" '%s' "$v"
		fi
	done
	local requests=$r_requests rps=$r_rps p50_us=$r_p50_us p99_us=$r_p99_us non2xx=$r_non2xx
	local sockerr=$((r_connect + r_read + r_write + r_timeout))
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$rep" "$rps" \
		"$p50_us" "$p99_us" "$requests" "$non2xx" "$sockerr" \
		"$(stat_field calls <<<"$stats")" "$(stat_field users <<<"$stats")" \
		"$(stat_field max_per_user <<<"$stats")" "$gw" "$all" >>"$RAW"
	printf '  %-13s rep %d: %6.0f req/s  p50 %6d us  p99 %7d us  gateway CPU %4.0f us/req  errors %d  users-API calls %s\n' \
		"$name" "$rep" "$rps" "$p50_us" "$p99_us" \
		"$(awk -v t="$gw" -v hz="$CLK_TCK" -v n="$requests" 'BEGIN { print n ? t * 1e6 / hz / n : 0 }')" \
		$((non2xx + sockerr)) "$(stat_field calls <<<"$stats")" >&2
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
echo "measuring: $REPS rounds of [$SCENARIOS], ${DURATION}s each, wrk -t$THREADS -c$CONNS" >&2
# even rounds run the scenarios in reverse order, so that no scenario
# always follows the same neighbour
read -r -a FORWARD <<<"$SCENARIOS"
for ((rep = 1; rep <= REPS; rep++)); do
	echo "round $rep" >&2
	ORDER=("${FORWARD[@]}")
	if ((rep % 2 == 0)); then
		ORDER=()
		for ((i = ${#FORWARD[@]} - 1; i >= 0; i--)); do
			ORDER+=("${FORWARD[i]}")
		done
	fi
	for name in "${ORDER[@]}"; do
		measure "$name" "$rep"
	done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

stop_all
if grep -q '"level":"error"' "$LOGS/gateway.log"; then
	echo "run.sh: the gateway logged errors; see below" >&2
	grep '"level":"error"' "$LOGS/gateway.log" | head -5 >&2
fi

# --- report -----------------------------------------------------------------

REPORT=$WORK/report.md
{
	echo "## dbnl-gateway load test"
	echo
	echo "- machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)," \
		"$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo); $(go version | cut -d' ' -f3-4);" \
		"$(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2)"
	echo "- load: wrk -t$THREADS -c$CONNS, ${DURATION}s x $REPS rounds (interleaved, even rounds in reverse order), ${WARMUP}s warm-up each;" \
		"GET $TARGET_PATH; everything on 127.0.0.1, wrk and all servers sharing the cores"
	echo "- gateway binary: ${GATEWAY_BIN:-bin/dbnl-gateway}; load average before/after: $LOAD_BEFORE / $LOAD_AFTER"
	echo "- hot TTL ${HOT_TTL}s; cold-users: $USERS users through a cache of $USERS_CACHE"
	echo
	awk -F'\t' -v order="$SCENARIOS" -v dur="$DURATION" -v ttl="$HOT_TTL" -v hz="$CLK_TCK" '
	function median(list,    a, n, t, i, j) {
		n = split(list, a, " ")
		for (i = 2; i <= n; i++) {
			t = a[i]
			for (j = i - 1; j >= 1 && a[j] + 0 > t + 0; j--) a[j + 1] = a[j]
			a[j + 1] = t
		}
		if (n % 2) return a[(n + 1) / 2]
		return (a[n / 2] + a[n / 2 + 1]) / 2
	}
	function ratio(a, b) { return a && b ? sprintf("%.2fx", a / b) : "-" }
	NR > 1 {
		s = $1
		rps[s] = rps[s] " " $3; p50[s] = p50[s] " " $4; p99[s] = p99[s] " " $5
		calls[s] = calls[s] " " $9
		req[s] += $6; err[s] += $7 + $8; ncalls[s] += $9
		if ($11 + 0 > maxper[s] + 0) maxper[s] = $11
		if ($6 > 0) {
			gw[s] = gw[s] " " $12 * 1e6 / hz / $6
			all[s] = all[s] " " $13 * 1e6 / hz / $6
		}
		round[s, $2] = $3
	}
	END {
		n = split(order, names, " ")
		base = ("proxy" in rps) ? median(rps["proxy"]) : 0
		fwd = ("forward_auth" in rps) ? median(rps["forward_auth"]) : 0
		print "Throughput and latency (medians of the rounds; \"paired\" is the median of each round'"'"'s ratio to proxy in that round):"
		print ""
		print "| scenario | req/s | p50 ms | p99 ms | vs proxy | vs proxy, paired | vs forward_auth | users-API calls / run | calls per 1k req | failed req |"
		print "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
		for (i = 1; i <= n; i++) {
			s = names[i]
			if (!(s in rps)) continue
			r = median(rps[s])
			paired = ""
			for (k = 1; (s, k) in round; k++)
				if (("proxy", k) in round && round["proxy", k] > 0)
					paired = paired " " round[s, k] / round["proxy", k]
			printf "| %s | %.0f | %.2f | %.2f | %s | %s | %s | %s | %.1f | %d |\n", s, r,
				median(p50[s]) / 1000, median(p99[s]) / 1000, ratio(r, base),
				paired != "" ? sprintf("%.2fx", median(paired)) : "-", ratio(r, fwd),
				median(calls[s]), req[s] ? 1000 * ncalls[s] / req[s] : 0, err[s]
		}
		print ""
		print "CPU per request (medians), from /proc/PID/stat of the gateway and of all servers (gateway, upstream, users API, auth service; not wrk). \"capacity\" is the request rate the servers could sustain relative to proxy if CPU bound, that is the inverse ratio of servers CPU per request:"
		print ""
		print "| scenario | gateway CPU us/req | servers CPU us/req | capacity vs proxy | capacity vs forward_auth |"
		print "|---|---:|---:|---:|---:|"
		cbase = ("proxy" in all) ? median(all["proxy"]) : 0
		cfwd = ("forward_auth" in all) ? median(all["forward_auth"]) : 0
		for (i = 1; i <= n; i++) {
			s = names[i]
			if (!(s in all)) continue
			c = median(all[s])
			printf "| %s | %.0f | %.0f | %s | %s |\n", s, median(gw[s]), c, ratio(cbase, c), ratio(cfwd, c)
		}
		print ""
		bound = int((dur + ttl - 1) / ttl) + 1
		for (i = 1; i <= n; i++) {
			s = names[i]
			if (!(s in rps) || s !~ /^(hs256|rs256|es256|eddsa)$/) continue
			printf "- %s: at most %d users-API calls per user in a %ds run (bound ceil(%d/%d)+1 = %d): %s\n",
				s, maxper[s], dur, dur, ttl, bound, (maxper[s] + 0 <= bound) ? "ok" : "EXCEEDED"
		}
	}' "$RAW"
	echo
	echo "Raw rows (ticks are 1/$CLK_TCK s):"
	echo
	echo '```'
	column -t -s $'\t' "$RAW" 2>/dev/null || cat "$RAW"
	echo '```'
	echo
	echo "Raw results (one row a run): $RAW; wrk output and server logs: $LOGS"
} >"$REPORT"

cat "$REPORT"
if [[ -n $OUT ]]; then
	cp "$REPORT" "$OUT"
fi

# a run with failed requests is not a result
if awk -F'\t' 'NR > 1 && ($7 + $8) > 0 { bad = 1 } END { exit !bad }' "$RAW"; then
	echo "run.sh: some requests failed (non-2xx or socket errors); see $RAW" >&2
	exit 1
fi
