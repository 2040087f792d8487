#!/usr/bin/env bash
# Builds a stock Caddy binary with the dbnl_auth module from this checkout
# plugged in, using xcaddy.
#
# Usage: ./xcaddy.sh [OUTPUT]   (default: ./caddy)
#
# Environment: CADDY_VERSION picks the Caddy release (default v2.11.9, the
# version go.mod pins); xcaddy's own XCADDY_* variables pass through.
#
# To build the dbnl-gateway binary instead (Caddy plus the module plus the
# `pat` subcommand), run: go build ./cmd/dbnl-gateway
set -euo pipefail

readonly XCADDY="github.com/caddyserver/xcaddy/cmd/xcaddy@v0.4.5"
readonly MODULE="github.com/dbnlai/dbnl-gateway"

caddy_version="${CADDY_VERSION:-v2.11.9}"
output="${1:-./caddy}"

# xcaddy resolves "." against the working directory, so run from the repo
# root whatever directory the script is called from; make OUTPUT absolute
# first so a relative path still means the caller's directory
case "$output" in
/*) ;;
*) output="$PWD/$output" ;;
esac
cd "$(dirname "${BASH_SOURCE[0]}")"

# this module is not published: xcaddy's `go get` still asks the module
# proxy about its path, and a proxy may refuse (403) instead of answering
# "not found", which stops the build. "|off" after the configured proxy
# turns any refusal into "not found", so the --replace below is used.
proxy="$(go env GOPROXY)"
export GOPROXY="${proxy%,direct}|off"

# --with blank-imports the module's package (the module root has none, so
# name caddymodule); --replace points the whole module at this checkout
go run "$XCADDY" build "$caddy_version" \
	--output "$output" \
	--with "$MODULE/caddymodule" \
	--replace "$MODULE=."
