// Command dbnl-gateway is Caddy with the dbnl_auth handler built in: a
// reverse proxy that checks dbnl personal access tokens and the caller's
// current permissions before a request reaches the dbnl platform API.
//
// It is the standard Caddy binary (every `caddy` subcommand works the same)
// plus the dbnl_auth module and a `pat` subcommand for minting and
// inspecting tokens. Build it from the repository root with:
//
//	go build ./cmd/dbnl-gateway
//
// To get a plain Caddy binary with the module instead, run ./xcaddy.sh.
package main

import (
	_ "time/tzdata"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// plug in Caddy's standard modules and the dbnl_auth handler
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/dbnlai/dbnl-gateway/caddymodule"
)

func main() {
	caddy.CustomBinaryName = "dbnl-gateway"
	caddycmd.Main()
}
