package dbnlauth

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("dbnl_auth", parseCaddyfile)
	// authentication runs where Caddy's own auth handlers do, so a site
	// needs no global order line
	httpcaddyfile.RegisterDirectiveOrder("dbnl_auth", httpcaddyfile.After, "forward_auth")
}

// parseCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	dbnl_auth {
//		hmac_key               <secret> [<kid>]
//		public_key             <pem-file> [<kid>]
//		issuer                 <iss>...
//		audience               <aud>...
//		algorithms             <alg>...
//		leeway                 <duration>
//		user_claim             <name>
//		permissions_url        <url>
//		permissions_ttl        <duration>
//		permissions_timeout    <duration>
//		permissions_cache_size <n>
//		permissions_in_flight  <n>
//		token_cache_size       <n>
//		header_prefix          <prefix>
//		max_token_bytes        <n>
//		strip_authorization
//	}
//
// hmac_key and public_key may be repeated; at least one of them and
// permissions_url are required. Everything else has a default: see the
// fields of Handler.
func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var handler Handler
	err := handler.UnmarshalCaddyfile(h.Dispenser)
	return &handler, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	if d.NextArg() {
		return d.ArgErr()
	}

	for d.NextBlock(0) {
		switch d.Val() {
		case "hmac_key":
			args := d.RemainingArgs()
			if len(args) < 1 || len(args) > 2 {
				return d.ArgErr()
			}
			k := HMACKey{Secret: args[0]}
			if len(args) == 2 {
				k.KID = args[1]
			}
			h.HMACKeys = append(h.HMACKeys, k)

		case "public_key":
			args := d.RemainingArgs()
			if len(args) < 1 || len(args) > 2 {
				return d.ArgErr()
			}
			k := PublicKey{File: args[0]}
			if len(args) == 2 {
				k.KID = args[1]
			}
			h.PublicKeys = append(h.PublicKeys, k)

		case "issuer":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			h.Issuers = append(h.Issuers, args...)

		case "audience":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			h.Audiences = append(h.Audiences, args...)

		case "algorithms":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			h.Algorithms = append(h.Algorithms, args...)

		case "leeway":
			dur, err := parseDuration(d)
			if err != nil {
				return err
			}
			h.Leeway = &dur

		case "user_claim":
			if err := oneArg(d, &h.UserClaim); err != nil {
				return err
			}

		case "permissions_url":
			if err := oneArg(d, &h.PermissionsURL); err != nil {
				return err
			}

		case "permissions_ttl":
			dur, err := parseDuration(d)
			if err != nil {
				return err
			}
			h.PermissionsTTL = dur

		case "permissions_timeout":
			dur, err := parseDuration(d)
			if err != nil {
				return err
			}
			h.PermissionsTimeout = dur

		case "permissions_cache_size":
			if err := parseInt(d, &h.PermissionsCacheSize); err != nil {
				return err
			}

		case "permissions_in_flight":
			if err := parseInt(d, &h.PermissionsInFlight); err != nil {
				return err
			}

		case "token_cache_size":
			if err := parseInt(d, &h.TokenCacheSize); err != nil {
				return err
			}

		case "header_prefix":
			if err := oneArg(d, &h.HeaderPrefix); err != nil {
				return err
			}

		case "max_token_bytes":
			if err := parseInt(d, &h.MaxTokenBytes); err != nil {
				return err
			}

		case "strip_authorization":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.StripAuthorization = true

		default:
			return d.Errf("unrecognized subdirective '%s'", d.Val())
		}
	}
	return nil
}

// oneArg reads exactly one argument into dst.
func oneArg(d *caddyfile.Dispenser, dst *string) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	*dst = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

func parseDuration(d *caddyfile.Dispenser) (caddy.Duration, error) {
	name := d.Val()
	var s string
	if err := oneArg(d, &s); err != nil {
		return 0, err
	}
	dur, err := caddy.ParseDuration(s)
	if err != nil {
		return 0, d.Errf("%s: invalid duration '%s': %v", name, s, err)
	}
	return caddy.Duration(dur), nil
}

func parseInt(d *caddyfile.Dispenser, dst *int) error {
	name := d.Val()
	var s string
	if err := oneArg(d, &s); err != nil {
		return err
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return d.Errf("%s: invalid number '%s'", name, s)
	}
	*dst = n
	return nil
}

// Interface guards
var _ caddyfile.Unmarshaler = (*Handler)(nil)
