package dbnlauth

import "github.com/caddyserver/caddy/v2"

// placeholderKeys are the placeholders a request that passed answers.
var placeholderKeys = []string{
	"http.auth.user.id",
	"dbnl.user_id",
	"dbnl.org_role",
	"dbnl.permissions",
	"dbnl.namespace_id",
	"dbnl.namespace_role",
	"dbnl.token_id",
	"dbnl.token_fingerprint",
}

// placeholderFunc answers the placeholders of a request that passed.
// Its values were boxed when the permissions and the token were cached,
// so answering allocates nothing.
func placeholderFunc(g *grants, id *identity, permissions, namespace, namespaceRole any) caddy.ReplacerFunc {
	return func(key string) (any, bool) {
		switch key {
		case "http.auth.user.id", "dbnl.user_id":
			return g.userIDValue, true
		case "dbnl.org_role":
			return g.orgRoleValue, true
		case "dbnl.permissions":
			return permissions, true
		case "dbnl.namespace_id":
			return namespace, true
		case "dbnl.namespace_role":
			return namespaceRole, true
		case "dbnl.token_id":
			return id.tokenIDValue, true
		case "dbnl.token_fingerprint":
			return id.fingerprintValue, true
		}
		return nil, false
	}
}

// installPlaceholders makes get answer its placeholders on repl.
//
// Setting each value would add eight entries to the replacer's map on
// every request, growing it for every handler after us; a provider is
// one entry in the replacer's list, asked only when a placeholder is
// used. Values set on the replacer take precedence over providers,
// though, so when the user id is known already (another authentication
// handler, or dbnl_auth again on the same request, ran before) the
// values are set instead, replacing the earlier ones: the last
// authentication of a request is the one its logs and headers show.
func installPlaceholders(repl *caddy.Replacer, get caddy.ReplacerFunc) {
	if _, known := repl.Get("http.auth.user.id"); !known {
		repl.Map(get)
		return
	}
	for _, key := range placeholderKeys {
		v, _ := get(key)
		repl.Set(key, v)
	}
}
