package dbnlauth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// The fuzz targets here run their seeds (f.Add and testdata/fuzz) as
// ordinary tests; .ci/fuzz.sh runs each one as a fuzzer for a while.

// fzMaxToken is the token bound the extraction fuzzer uses, small so
// that the fuzzer reaches it.
const fzMaxToken = 256

// fzRefuse reports an error that is not one of our denials.
func fzRefuse(t *testing.T, err error) {
	t.Helper()
	var d *denial
	if !errors.As(err, &d) {
		t.Fatalf("got error %v of type %T, want a *denial", err, err)
	}
}

// FuzzExtractToken feeds random Authorization headers and query
// strings to extractToken. It must not panic; a token it returns comes
// from exactly one Bearer header, is within the size bound and has no
// surrounding spaces; a query naming access_token is refused.
func FuzzExtractToken(f *testing.F) {
	f.Add("Bearer abc.def.ghi", "", uint8(1), "")
	f.Add("bearer abc", "Bearer x", uint8(2), "")
	f.Add("BEARER   a.b.c   ", "", uint8(1), "namespace_id=ns_1")
	f.Add("Bearer a b", "", uint8(1), "")
	f.Add("Bearer \ta.b.c", "", uint8(1), "")
	f.Add("Basic dXNlcjpwYXNz", "", uint8(1), "")
	f.Add("Bearer", "", uint8(1), "")
	f.Add("Bearer ", "", uint8(1), "")
	f.Add(" Bearer x", "", uint8(1), "")
	f.Add("Bearer "+strings.Repeat("a", fzMaxToken+1), "", uint8(1), "")
	f.Add("Bearer x", "", uint8(1), "access_token=x")
	f.Add("Bearer x", "", uint8(1), "a=1&access_token")
	f.Add("Bearer x", "", uint8(1), "access_token;x=1")
	f.Add("Bearer x", "", uint8(0), "%zz&access_token=1")
	f.Add("Bearer \x00", "", uint8(1), "")

	v := newTestHandler(f, newUsersAPI(f), nil).verifier

	f.Fuzz(func(t *testing.T, auth, second string, n uint8, rawQuery string) {
		r := &http.Request{Method: http.MethodGet, Header: http.Header{},
			URL: &url.URL{Path: "/", RawQuery: rawQuery}}
		headers := int(n % 3)
		if headers >= 1 {
			r.Header.Add("Authorization", auth)
		}
		if headers == 2 {
			r.Header.Add("Authorization", second)
		}

		tok, err := extractToken(r, fzMaxToken)
		if err != nil {
			fzRefuse(t, err)
			return
		}

		if headers != 1 {
			t.Fatalf("got token %q from %d Authorization headers, want a denial", tok, headers)
		}
		if tok == "" || len(tok) > fzMaxToken {
			t.Fatalf("got token of %d bytes, want 1 to %d", len(tok), fzMaxToken)
		}
		if strings.HasPrefix(tok, " ") || strings.HasSuffix(tok, " ") {
			t.Fatalf("got token %q with surrounding spaces", tok)
		}
		scheme, _, _ := strings.Cut(strings.TrimSpace(auth), " ")
		if !strings.EqualFold(scheme, "Bearer") {
			t.Fatalf("got token from scheme %q, want Bearer only", scheme)
		}
		if r.URL.Query().Has("access_token") {
			t.Fatalf("got token with access_token in query %q, want a denial", rawQuery)
		}

		// extractToken lets inner whitespace and control bytes through
		// (see TestAttackExtractTokenInnerSpace); verify must refuse
		// such a token before any parsing
		if strings.ContainsFunc(tok, func(c rune) bool { return c <= ' ' || c == 0x7f }) {
			if _, err := v.verify(tok); !errors.Is(err, errMalformed) {
				t.Fatalf("verify(%q): got %v, want %v", tok, err, errMalformed)
			}
		}
	})
}

// fzTokens signs one valid token per algorithm family, for mutation.
func fzTokens(tb testing.TB) []string {
	var toks []string
	for _, alg := range []string{"HS256", "HS512", "RS256", "PS384", "ES256", "ES384", "ES512", "EdDSA"} {
		toks = append(toks, signToken(tb, alg, validClaims("user_123"), nil))
	}
	return toks
}

// fzMutate applies one edit to tok: op 0 sets the byte at pos, 1
// inserts b before pos, 2 deletes the byte at pos, 3 truncates at pos.
func fzMutate(tok string, op uint8, pos uint16, b byte) string {
	bs := []byte(tok)
	switch op % 4 {
	case 0:
		bs[int(pos)%len(bs)] = b
	case 1:
		i := int(pos) % (len(bs) + 1)
		bs = slices.Insert(bs, i, b)
	case 2:
		i := int(pos) % len(bs)
		bs = slices.Delete(bs, i, i+1)
	case 3:
		bs = bs[:int(pos)%len(bs)]
	}
	return string(bs)
}

// FuzzVerify feeds verify random strings and single-byte edits of
// valid tokens of every algorithm family. It must not panic, and must
// accept nothing but the tokens we signed: with strict base64
// decoding, a change anywhere, signature bits that a lax decoder
// ignores included, changes the signed bytes or the signature.
func FuzzVerify(f *testing.F) {
	f.Add("", uint8(0), uint8(0), uint16(0), byte('A'))
	f.Add("a.b.c", uint8(1), uint8(1), uint16(10), byte('.'))
	f.Add("eyJhbGciOiJub25lIn0.e30.", uint8(2), uint8(2), uint16(40), byte('='))
	f.Add("....", uint8(3), uint8(3), uint16(200), byte(' '))
	f.Add("eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjF9.", uint8(4), uint8(0), uint16(65535), byte('_'))
	f.Add("a.b.c.d.e", uint8(7), uint8(0), uint16(300), byte('-'))

	h := newTestHandler(f, newUsersAPI(f), nil)
	toks := fzTokens(f)
	for _, tok := range toks {
		if _, err := h.verifier.verify(tok); err != nil {
			f.Fatalf("verifying a valid token: %v", err)
		}
	}

	f.Fuzz(func(t *testing.T, random string, which, op uint8, pos uint16, b byte) {
		// any string: no panic, and only our own tokens pass
		if id, err := h.verifier.verify(random); err == nil {
			if !slices.Contains(toks, random) {
				t.Fatalf("verify accepted %q, which we never signed", random)
			}
			if id.userID != "user_123" {
				t.Fatalf("got user %q, want user_123", id.userID)
			}
		} else {
			fzRefuse(t, err)
		}

		// an edit of a valid token
		orig := toks[int(which)%len(toks)]
		mutated := fzMutate(orig, op, pos, b)
		if mutated == orig {
			return
		}
		if _, err := h.verifier.verify(mutated); err == nil {
			t.Fatalf("verify accepted an edited token\norig    %s\nmutated %s", orig, mutated)
		} else {
			fzRefuse(t, err)
		}
	})
}

// fzNormalize is the reference spelling of a header name: lower case
// with '_' and '.' read as '-', as CGI-style servers fold them. It is
// written differently from the handler's byte loop on purpose, so the
// fuzzer compares two implementations. net/http refuses header names
// that are not ASCII tokens, so no other folding reaches the handler.
func fzNormalize(s string) string {
	// ASCII folding only, like the handler: strings.ToLower would map
	// U+212A KELVIN SIGN to 'k', which no header name can carry
	return strings.Map(func(r rune) rune {
		switch {
		case r == '_' || r == '.':
			return '-'
		case 'A' <= r && r <= 'Z':
			return r + ('a' - 'A')
		}
		return r
	}, s)
}

// FuzzStripHeaders strips random header names under the default or a
// random prefix: afterwards no name normalises to start with the
// prefix, and every name that does not is still there with its values.
func FuzzStripHeaders(f *testing.F) {
	f.Add("X-Dbnl-User-Id\nX_Dbnl_User_Id\nx-dbnl-permissions\nAccept", "")
	f.Add("X-DBNL-\nX-Dbnl\nX-Dbn\nx_dbnl_\nX-Dbnl-_", "")
	f.Add("x-dbnl-user-id\nX-Dbnl-User-Id\nX-Forwarded-User", "X-Dbnl-")
	f.Add("X-Auth-User\nx_auth_role\nX-Authx", "X-Auth-")
	f.Add("a\n\nb\x00c\n\xff\xfe", "a")
	f.Add("X\u212aDbnl\nX-DBNL\u0130", "")

	f.Fuzz(func(t *testing.T, names, prefix string) {
		if !headerSafe(prefix, false) {
			prefix = defaultHeaderPrefix
		}
		hs := newHeaderSet(prefix)
		want := fzNormalize(prefix)

		h := http.Header{}
		orig := map[string][]string{}
		for i, name := range strings.Split(names, "\n") {
			if name == "" {
				continue
			}
			values := []string{"v" + string(rune('a'+i%26))}
			h[name] = values
			orig[name] = values
		}

		hs.strip(h)

		for name := range h {
			if strings.HasPrefix(fzNormalize(name), want) {
				t.Errorf("got %q kept, want it stripped under prefix %q", name, prefix)
			}
		}
		for name, values := range orig {
			if strings.HasPrefix(fzNormalize(name), want) {
				continue
			}
			if got, ok := h[name]; !ok || !slices.Equal(got, values) {
				t.Errorf("got %q = %q, want %q kept", name, got, values)
			}
		}
	})
}

// FuzzRequestNamespace feeds random query strings to requestNamespace
// and holds it to the same answers as a reading of the query through
// url.ParseQuery: the namespace_id value, or which denial. (Both
// refuse a raw '#', which url.ParseQuery would keep in a value.)
func FuzzRequestNamespace(f *testing.F) {
	f.Add("namespace_id=ns_1")
	f.Add("namespace_id=ns_1&namespace_id=ns_1&limit=50")
	f.Add("namespace_id=&namespace_id=ns_1")
	f.Add("namespace%5Fid=ns_2&namespace_id=ns_1")
	f.Add("namespace_id=ns%5F1&namespace_id=ns_1")
	f.Add("namespace_id=ns_1;namespace_id=ns_2")
	f.Add("a=%zz&namespace_id=ns_1")
	f.Add("namespace_id=a+b&namespace_id=a%20b")
	f.Add("%=&&=&namespace_id")
	f.Add("namespace_id=%4")
	f.Add("namespace_id=ns_1#")
	f.Add("namespace_id=ns%231")
	f.Add(strings.Repeat("&", maxQueryParams))

	f.Fuzz(func(t *testing.T, query string) {
		want, wantErr := fzNamespaceByParseQuery(query)
		got, err := requestNamespace(&url.URL{RawQuery: query})
		if err != wantErr || got != want {
			t.Errorf("requestNamespace(%q) = %q, %v; want %q, %v", query, got, err, want, wantErr)
		}
	})
}

// fzNamespaceByParseQuery is requestNamespace written over
// url.ParseQuery, as the reference the fuzzer compares against.
func fzNamespaceByParseQuery(query string) (string, error) {
	if query == "" {
		return "", nil
	}
	values, err := url.ParseQuery(query)
	if err != nil || strings.Contains(query, "#") {
		return "", errBadQuery
	}
	ns := values["namespace_id"]
	for _, v := range ns {
		if v != ns[0] {
			return "", errAmbiguousNamespace
		}
	}
	if len(ns) == 0 {
		return "", nil
	}
	return ns[0], nil
}

// FuzzCaddyfile feeds random Caddyfile text to UnmarshalCaddyfile. It
// must not panic; a config it accepts survives a JSON round trip and
// has no negative number. (caddyfile.NewTestDispenser exits the process
// on a lexer error, so the text is tokenized here first.)
func FuzzCaddyfile(f *testing.F) {
	f.Add("dbnl_auth {\n\thmac_key {env.DBNL_PAT_SECRET} k1\n\tpermissions_url http://127.0.0.1:9080/v0/users/{user}/permissions\n}")
	f.Add("dbnl_auth {\n\tpublic_key /etc/dbnl/key.pem\n\tissuer dbnl other\n\taudience dbnl-api\n\talgorithms RS256 ES256\n}")
	f.Add("dbnl_auth {\n\tleeway 30s\n\tpermissions_ttl 5s\n\tpermissions_timeout 2s\n\tpermissions_cache_size 10\n\tpermissions_in_flight 4\n\ttoken_cache_size 0\n\tmax_token_bytes 8192\n}")
	f.Add("dbnl_auth {\n\tuser_claim email\n\theader_prefix X-Auth-\n\tstrip_authorization\n}")
	f.Add("dbnl_auth arg")
	f.Add("dbnl_auth {\n\tleeway\n}")
	f.Add("dbnl_auth {\n\tleeway -1s\n\tmax_token_bytes -5\n}")
	f.Add("dbnl_auth {\n\tmax_token_bytes 99999999999999999999\n}")
	f.Add("dbnl_auth {\n\tstrip_authorization yes\n}")
	f.Add("dbnl_auth {\n\thmac_key a b c\n}")
	f.Add("dbnl_auth {\n\tunknown\n}")
	f.Add("dbnl_auth {\n\thmac_key `raw {secret}`\n\tpublic_key \"a b\"\n}")
	f.Add("dbnl_auth {\n\thmac_key <<EOF\n\tsecret\n\tEOF\n}")
	f.Add("dbnl_auth {\n\t{\n\t}\n}")
	f.Add("dbnl_auth {")
	f.Add("}")
	f.Add("")

	f.Fuzz(func(t *testing.T, text string) {
		tokens, err := caddyfile.Tokenize([]byte(text), "Caddyfile")
		if err != nil {
			return
		}
		var h Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewDispenser(tokens)); err != nil {
			return
		}

		for name, n := range map[string]int{
			"permissions_cache_size": h.PermissionsCacheSize,
			"permissions_in_flight":  h.PermissionsInFlight,
			"token_cache_size":       h.TokenCacheSize,
			"max_token_bytes":        h.MaxTokenBytes,
		} {
			if n < 0 {
				t.Errorf("got %s %d, want it refused", name, n)
			}
		}

		data, err := json.Marshal(&h)
		if err != nil {
			t.Fatalf("encoding the parsed config: %v", err)
		}
		var back Handler
		if err := json.Unmarshal(data, &back); err != nil {
			t.Fatalf("decoding %s: %v", data, err)
		}
		again, _ := json.Marshal(&back)
		if string(again) != string(data) {
			t.Fatalf("got %s after a JSON round trip, want %s", again, data)
		}
	})
}

// fzUsersAPI answers the resolver's calls in process with the body the
// fuzzer chose: no socket per input, and no server goroutines adding
// coverage that has nothing to do with the input.
type fzUsersAPI struct {
	status int
	body   []byte
}

func (u *fzUsersAPI) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{
		StatusCode: u.status,
		Header:     http.Header{"Content-Type": {"application/json"}},
		Body:       io.NopCloser(bytes.NewReader(u.body)),
		Request:    r,
	}, nil
}

// FuzzPermissionsBody sends random users-API answers through the
// resolver's fetch, the code a real answer goes through from status
// check to validation. It must not panic, must fail only with the
// users-API denials, and every value of an answer it accepts renders
// into header lists with no ',' '=' or control byte inside an entry.
func FuzzPermissionsBody(f *testing.F) {
	f.Add(`{"user_id":"user_123","org_role":"org_reader","org_permissions":["users.read"],` +
		`"namespaces":[{"namespace_id":"ns_1","role":"namespace_writer","permissions":["projects.read","projects.write"]}],"disabled":false}`)
	f.Add(`{"user_id":"user_123","org_permissions":["a,b"]}`)
	f.Add(`{"user_id":"user_123","namespaces":[{"namespace_id":"ns=1","role":"r"}]}`)
	f.Add(`{"user_id":"user_123","namespaces":[{"namespace_id":"ns_1","role":"r"},{"namespace_id":"ns_1","role":"admin"}]}`)
	f.Add(`{"user_id":"user_123","namespaces":[null]}`)
	f.Add(`{"user_id":"user_123","org_role":"a\r\nb"}`)
	f.Add(`{"user_id":"user_123","disabled":true}`)
	f.Add(`{"user_id":"user_123","DISABLED":true,"User_Id":"user_123"}`)
	f.Add(`{"user_id":"other"}`)
	f.Add(`{"user_id":"user_123"} {"user_id":"x"}`)
	f.Add(`{"user_id":"user_123","org_permissions":"users.read"}`)
	f.Add(`null`)
	f.Add(`[]`)
	f.Add(``)

	api := &fzUsersAPI{status: http.StatusOK}
	h := newTestHandler(f, newUsersAPI(f), nil)
	h.resolver.client = &http.Client{Transport: api}

	f.Fuzz(func(t *testing.T, body string) {
		api.body = []byte(body)

		p, err := h.resolver.fetch(context.Background(), "user_123", "x")
		if err != nil {
			if !errors.Is(err, errLookup) && !errors.Is(err, errUserNotActive) {
				t.Fatalf("got error %v, want errLookup or errUserNotActive", err)
			}
			return
		}
		if p.UserID != "user_123" || p.Disabled {
			t.Fatalf("got user %q disabled %v accepted, want user_123 active", p.UserID, p.Disabled)
		}

		g := newGrants(p)
		fzCheckEntry(t, "org_role", g.orgRole, true)
		fzCheckList(t, "org permissions", g.orgPermissions, false)
		for ns, grant := range g.namespaces {
			fzCheckEntry(t, "namespace id", ns, false)
			fzCheckEntry(t, "namespace role", grant.role, false)
			fzCheckList(t, "namespace permissions", grant.permissions, false)
		}
		if g.namespaceRoles != "" {
			for _, entry := range strings.Split(g.namespaceRoles, ",") {
				ns, role, ok := strings.Cut(entry, "=")
				if !ok || strings.Contains(role, "=") {
					t.Fatalf("got namespace-roles entry %q, want one ns=role", entry)
				}
				if _, known := g.namespaces[ns]; !known || g.namespaces[ns].role != role {
					t.Fatalf("got namespace-roles entry %q not matching the grants", entry)
				}
			}
		}
		if len(strings.Split(g.namespaceRoles, ",")) != len(g.namespaces) && len(g.namespaces) > 0 {
			t.Fatalf("got %q for %d namespaces", g.namespaceRoles, len(g.namespaces))
		}
	})
}

// fzCheckEntry fails if s could split or forge a header list entry.
func fzCheckEntry(t *testing.T, what, s string, emptyOK bool) {
	t.Helper()
	if s == "" && !emptyOK {
		t.Fatalf("got empty %s accepted", what)
	}
	if strings.ContainsAny(s, ",= ") || strings.ContainsFunc(s, func(c rune) bool { return c < 0x20 || c >= 0x7f }) {
		t.Fatalf("got %s %q accepted", what, s)
	}
}

// fzCheckList checks each entry of a comma-separated, sorted list.
func fzCheckList(t *testing.T, what, list string, emptyOK bool) {
	t.Helper()
	if list == "" {
		return
	}
	entries := strings.Split(list, ",")
	if !slices.IsSorted(entries) || len(slices.Compact(slices.Clone(entries))) != len(entries) {
		t.Fatalf("got %s %q, want sorted without duplicates", what, list)
	}
	for _, e := range entries {
		fzCheckEntry(t, what, e, emptyOK)
	}
}
