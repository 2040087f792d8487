package dbnlauth

import (
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strings"
)

// headerSet holds the names of the headers the gateway sets, all under
// one prefix.
type headerSet struct {
	// prefix is lower case with '_' and '.' read as '-', for matching.
	prefix string

	userID, orgRole, permissions, namespaceID, namespaceRole,
	namespaceRoles, tokenID string
}

// identityHeaders is how many headers headerSet names.
const identityHeaders = 7

func newHeaderSet(prefix string) headerSet {
	name := func(s string) string { return textproto.CanonicalMIMEHeaderKey(prefix + s) }
	return headerSet{
		prefix:         normalizeHeaderName(prefix),
		userID:         name("User-Id"),
		orgRole:        name("Org-Role"),
		permissions:    name("Permissions"),
		namespaceID:    name("Namespace-Id"),
		namespaceRole:  name("Namespace-Role"),
		namespaceRoles: name("Namespace-Roles"),
		tokenID:        name("Token-Id"),
	}
}

// normalizeHeaderName lowers s and reads '_' and '.' as '-': servers
// behind a proxy that follow CGI's naming (WSGI, Rack, PHP) fold all
// three to the same name, so a client sending X_Dbnl_User_Id or
// X.Dbnl.User-Id must be treated as sending X-Dbnl-User-Id.
func normalizeHeaderName(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c == '_' || c == '.':
			b[i] = '-'
		case 'A' <= c && c <= 'Z':
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// hasPrefix reports whether the header name starts with the set's
// prefix, ignoring case and reading '_' and '.' as '-'.
func (hs headerSet) hasPrefix(name string) bool {
	if len(name) < len(hs.prefix) {
		return false
	}
	for i := 0; i < len(hs.prefix); i++ {
		c := name[i]
		switch {
		case c == '_' || c == '.':
			c = '-'
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		if c != hs.prefix[i] {
			return false
		}
	}
	return true
}

// strip deletes every header in h that starts with the prefix.
func (hs headerSet) strip(h http.Header) {
	for name := range h {
		if hs.hasPrefix(name) {
			delete(h, name)
		}
	}
}

// stripConnection removes from the Connection header every name that
// starts with the prefix. A proxy deletes the headers Connection names
// as hop-by-hop (RFC 9110 section 7.6.1), so a client naming
// X-Dbnl-Namespace-Id there would have the trusted header removed after
// we set it.
func (hs headerSet) stripConnection(h http.Header) {
	values, ok := h["Connection"]
	if !ok {
		return
	}
	var kept []string
	for _, v := range values {
		for _, name := range strings.Split(v, ",") {
			name = textproto.TrimString(name)
			if name != "" && !hs.hasPrefix(name) {
				kept = append(kept, name)
			}
		}
	}
	if len(kept) == 0 {
		delete(h, "Connection")
		return
	}
	h["Connection"] = []string{strings.Join(kept, ", ")}
}

// set sets the identity headers of g in h: those of namespace when ns,
// the user's grants there, is not nil. The values share one array, each
// slice capped at its own element: one allocation, and a handler
// appending to one value cannot write over the next. The names are
// canonical already, so no Set is needed to canonicalize them.
func (hs headerSet) set(h http.Header, g *grants, namespace string, ns *namespaceGrants, tokenID string) {
	values := make([]string, 0, identityHeaders)
	add := func(name, value string) {
		values = append(values, value)
		n := len(values)
		h[name] = values[n-1 : n : n]
	}
	add(hs.userID, g.userID)
	if g.orgRole != "" {
		add(hs.orgRole, g.orgRole)
	}
	permissions := g.orgPermissions
	if ns != nil {
		permissions = ns.permissions
		add(hs.namespaceID, namespace)
		add(hs.namespaceRole, ns.role)
	}
	add(hs.permissions, permissions)
	if g.namespaceRoles != "" {
		add(hs.namespaceRoles, g.namespaceRoles)
	}
	if tokenID != "" {
		add(hs.tokenID, tokenID)
	}
}

// trailerStripper strips identity headers from a request's trailers
// once its body has been read: net/http fills r.Trailer only at the end
// of the body, long after ServeHTTP ran, and reverse_proxy forwards what
// it finds there.
type trailerStripper struct {
	io.ReadCloser
	trailer http.Header
	headers headerSet
}

func (b *trailerStripper) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.headers.strip(b.trailer)
	}
	return n, err
}

// grants is a user's permissions rendered once per users-API answer, so
// that a cached answer costs no sorting or joining per request.
type grants struct {
	userID         string
	orgRole        string
	orgPermissions string // sorted, comma-separated
	namespaceRoles string // ns=role, sorted, comma-separated
	namespaces     map[string]namespaceGrants

	// the same values as placeholder values, boxed once here rather
	// than on every request
	userIDValue, orgRoleValue, orgPermissionsValue any
}

type namespaceGrants struct {
	role        string
	permissions string // org and namespace permissions, sorted

	idValue, roleValue, permissionsValue any
}

// newGrants renders p. p must have passed validate, so no value holds a
// comma or '='.
func newGrants(p *Permissions) *grants {
	g := &grants{
		userID:         p.UserID,
		orgRole:        p.OrgRole,
		orgPermissions: joinSorted(p.OrgPermissions),
		namespaces:     make(map[string]namespaceGrants, len(p.Namespaces)),
	}
	roles := make([]string, 0, len(p.Namespaces))
	for _, ns := range p.Namespaces {
		if _, dup := g.namespaces[ns.NamespaceID]; dup {
			// the first grant wins, as in Permissions.namespace
			continue
		}
		roles = append(roles, ns.NamespaceID+"="+ns.Role)
		perms := joinSorted(slices.Concat(p.OrgPermissions, ns.Permissions))
		g.namespaces[ns.NamespaceID] = namespaceGrants{
			idValue:          ns.NamespaceID,
			role:             ns.Role,
			permissions:      perms,
			roleValue:        ns.Role,
			permissionsValue: perms,
		}
	}
	g.namespaceRoles = joinSorted(roles)
	g.userIDValue, g.orgRoleValue, g.orgPermissionsValue = g.userID, g.orgRole, g.orgPermissions
	return g
}

// joinSorted sorts a copy of list, drops duplicates and joins it with
// commas.
func joinSorted(list []string) string {
	s := slices.Clone(list)
	slices.Sort(s)
	return strings.Join(slices.Compact(s), ",")
}

// maxQueryParams is the most query parameters a request may carry: the
// number url.ParseQuery accepts by default, so that the gateway refuses
// what a Go platform would fail to parse.
const maxQueryParams = 10000

// requestNamespace returns the SDK's namespace_id query parameter. A
// query that does not parse is refused whole, since url.Query drops the
// pairs it cannot read (those joined by ';', bad escapes) while a
// platform may still read them; so is one naming namespace_id twice
// with different values, an empty one included, since the gateway and
// the platform might each pick a different one. So is a raw '#': a
// request target never has one (RFC 9112 section 3.2), Go keeps it in
// the query, and a server that cuts it off as a fragment would read
// namespace_id=ns_1# as ns_1.
//
// It reads the query as url.ParseQuery does, without building a map of
// every parameter on every request; a fuzz test holds the two to the
// same answers.
func requestNamespace(u *url.URL) (string, error) {
	if u == nil || u.RawQuery == "" {
		return "", nil
	}
	q := u.RawQuery
	if strings.Count(q, "&") >= maxQueryParams || strings.Contains(q, "#") {
		return "", errBadQuery
	}
	var namespace string
	found, ambiguous := false, false
	for q != "" {
		var pair string
		pair, q, _ = strings.Cut(q, "&")
		if strings.Contains(pair, ";") {
			return "", errBadQuery
		}
		if pair == "" {
			continue
		}
		key, value, _ := strings.Cut(pair, "=")
		if !validEscapes(key) || !validEscapes(value) {
			return "", errBadQuery
		}
		if !isNamespaceKey(key) {
			continue
		}
		// without an escape or a '+' this returns value itself
		v, err := url.QueryUnescape(value)
		if err != nil {
			return "", errBadQuery
		}
		if found && v != namespace {
			ambiguous = true
		}
		namespace, found = v, true
	}
	if ambiguous {
		return "", errAmbiguousNamespace
	}
	return namespace, nil
}

// isNamespaceKey reports whether the query key, as sent, decodes to
// namespace_id.
func isNamespaceKey(key string) bool {
	if !strings.ContainsAny(key, "%+") {
		return key == "namespace_id"
	}
	k, err := url.QueryUnescape(key)
	return err == nil && k == "namespace_id"
}

// validEscapes reports whether every '%' in s starts a two-digit hex
// escape, which is all url.QueryUnescape checks.
func validEscapes(s string) bool {
	for i := strings.IndexByte(s, '%'); i >= 0; {
		if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
			return false
		}
		next := strings.IndexByte(s[i+3:], '%')
		if next < 0 {
			break
		}
		i += 3 + next
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
