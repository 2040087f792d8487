package dbnlauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/golang-jwt/jwt/v5"
)

// TestEachAlgorithmPasses signs a token with every supported algorithm
// and checks that it reaches next with the user's identity headers.
func TestEachAlgorithmPasses(t *testing.T) {
	api := newUsersAPI(t)
	h := newTestHandler(t, api, nil)
	for _, alg := range supportedAlgs {
		t.Run(alg, func(t *testing.T) {
			tok := signToken(t, alg, validClaims("user_123"), nil)
			w, next, _ := serve(t, h, bearer("/v0/projects?namespace_id=ns_1", tok))
			if w.Code != http.StatusOK || !next.called {
				t.Fatalf("got status %d, next called %v; want 200 and next called; body %s",
					w.Code, next.called, w.Body)
			}
			if got := next.req.Header.Get("X-Dbnl-User-Id"); got != "user_123" {
				t.Errorf("got X-Dbnl-User-Id %q, want user_123", got)
			}
			want := "projects.read,projects.write,users.read"
			if got := next.req.Header.Get("X-Dbnl-Permissions"); got != want {
				t.Errorf("got X-Dbnl-Permissions %q, want %q", got, want)
			}
		})
	}
}

// unitDbnlHeaders returns the headers of h that start with prefix,
// ignoring case, as name to value.
func unitDbnlHeaders(h http.Header, prefix string) map[string]string {
	got := make(map[string]string)
	for name, values := range h {
		if strings.HasPrefix(strings.ToLower(strings.ReplaceAll(name, "_", "-")), strings.ToLower(prefix)) {
			got[name] = strings.Join(values, "|")
		}
	}
	return got
}

func TestServeHTTPHeaders(t *testing.T) {
	api := newUsersAPI(t)
	api.set(&Permissions{UserID: "user_bare", OrgPermissions: []string{}})
	api.set(&Permissions{
		UserID: "user_dup", OrgRole: "org_admin", OrgPermissions: []string{"b", "a", "b"},
		Namespaces: []NamespaceGrant{{NamespaceID: "ns_1", Role: "namespace_reader", Permissions: []string{"a", "c"}}},
	})
	h := newTestHandler(t, api, nil)

	tests := []struct {
		name   string
		user   string
		target string
		change func(jwt.MapClaims)
		want   map[string]string
	}{
		{
			name: "namespace with a role", user: "user_123", target: "/v0/projects?namespace_id=ns_1",
			want: map[string]string{
				"X-Dbnl-User-Id":         "user_123",
				"X-Dbnl-Org-Role":        "org_reader",
				"X-Dbnl-Permissions":     "projects.read,projects.write,users.read",
				"X-Dbnl-Namespace-Id":    "ns_1",
				"X-Dbnl-Namespace-Role":  "namespace_writer",
				"X-Dbnl-Namespace-Roles": "ns_1=namespace_writer,ns_2=namespace_reader",
				"X-Dbnl-Token-Id":        "tok-1",
			},
		},
		{
			name: "other namespace with a role", user: "user_123", target: "/v0/projects?namespace_id=ns_2&x=1",
			want: map[string]string{
				"X-Dbnl-User-Id":         "user_123",
				"X-Dbnl-Org-Role":        "org_reader",
				"X-Dbnl-Permissions":     "projects.read,users.read",
				"X-Dbnl-Namespace-Id":    "ns_2",
				"X-Dbnl-Namespace-Role":  "namespace_reader",
				"X-Dbnl-Namespace-Roles": "ns_1=namespace_writer,ns_2=namespace_reader",
				"X-Dbnl-Token-Id":        "tok-1",
			},
		},
		{
			name: "no namespace", user: "user_123", target: "/v0/projects",
			want: map[string]string{
				"X-Dbnl-User-Id":         "user_123",
				"X-Dbnl-Org-Role":        "org_reader",
				"X-Dbnl-Permissions":     "users.read",
				"X-Dbnl-Namespace-Roles": "ns_1=namespace_writer,ns_2=namespace_reader",
				"X-Dbnl-Token-Id":        "tok-1",
			},
		},
		{
			name: "namespace without a role", user: "user_123", target: "/v0/projects?namespace_id=ns_9",
			want: map[string]string{
				"X-Dbnl-User-Id":         "user_123",
				"X-Dbnl-Org-Role":        "org_reader",
				"X-Dbnl-Permissions":     "users.read",
				"X-Dbnl-Namespace-Roles": "ns_1=namespace_writer,ns_2=namespace_reader",
				"X-Dbnl-Token-Id":        "tok-1",
			},
		},
		{
			name: "namespace repeated", user: "user_123", target: "/v0/projects?namespace_id=ns_1&namespace_id=ns_1",
			want: map[string]string{
				"X-Dbnl-User-Id":         "user_123",
				"X-Dbnl-Org-Role":        "org_reader",
				"X-Dbnl-Permissions":     "projects.read,projects.write,users.read",
				"X-Dbnl-Namespace-Id":    "ns_1",
				"X-Dbnl-Namespace-Role":  "namespace_writer",
				"X-Dbnl-Namespace-Roles": "ns_1=namespace_writer,ns_2=namespace_reader",
				"X-Dbnl-Token-Id":        "tok-1",
			},
		},
		{
			name: "no jti", user: "user_123", target: "/v0/projects",
			change: func(c jwt.MapClaims) { delete(c, "jti") },
			want: map[string]string{
				"X-Dbnl-User-Id":         "user_123",
				"X-Dbnl-Org-Role":        "org_reader",
				"X-Dbnl-Permissions":     "users.read",
				"X-Dbnl-Namespace-Roles": "ns_1=namespace_writer,ns_2=namespace_reader",
			},
		},
		{
			name: "no role and no namespaces", user: "user_bare", target: "/v0/projects?namespace_id=ns_1",
			want: map[string]string{
				"X-Dbnl-User-Id":     "user_bare",
				"X-Dbnl-Permissions": "",
				"X-Dbnl-Token-Id":    "tok-1",
			},
		},
		{
			name: "duplicates dropped", user: "user_dup", target: "/v0/projects?namespace_id=ns_1",
			want: map[string]string{
				"X-Dbnl-User-Id":         "user_dup",
				"X-Dbnl-Org-Role":        "org_admin",
				"X-Dbnl-Permissions":     "a,b,c",
				"X-Dbnl-Namespace-Id":    "ns_1",
				"X-Dbnl-Namespace-Role":  "namespace_reader",
				"X-Dbnl-Namespace-Roles": "ns_1=namespace_reader",
				"X-Dbnl-Token-Id":        "tok-1",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := signToken(t, "HS256", unitClaims(tt.user, tt.change), nil)
			w, next, _ := serve(t, h, bearer(tt.target, tok))
			if w.Code != http.StatusOK || !next.called {
				t.Fatalf("got status %d, next called %v; want 200 and next called; body %s", w.Code, next.called, w.Body)
			}
			if got := unitDbnlHeaders(next.req.Header, "X-Dbnl-"); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got headers %v, want %v", got, tt.want)
			}
		})
	}
}

// TestServeHTTPForgedHeaders sends every identity header a client might
// try, in several spellings, and checks that only ours reach next.
func TestServeHTTPForgedHeaders(t *testing.T) {
	h := newTestHandler(t, newUsersAPI(t), nil)
	tok := signToken(t, "HS256", validClaims("user_123"), nil)

	r := bearer("/v0/projects", tok)
	r.Header.Set("X-Dbnl-User-Id", "admin")
	r.Header.Add("X-Dbnl-User-Id", "admin2")
	r.Header["x-dbnl-org-role"] = []string{"org_admin"}
	r.Header["X_Dbnl_Permissions"] = []string{"everything"}
	r.Header["x_dbnl_user_id"] = []string{"admin"}
	r.Header.Set("X-DBNL-NAMESPACE-ID", "ns_2")
	r.Header.Set("X-Dbnl-Namespace-Role", "namespace_admin")
	r.Header.Set("X-Dbnl-Impersonate", "admin")
	r.Header.Set("X-Dbnl-Token-Id", "forged")
	r.Header.Set("X-Other", "kept")
	r.Trailer = http.Header{"X-Dbnl-User-Id": {"admin"}, "X-Trailer": {"kept"}}

	w, next, _ := serve(t, h, r)
	if w.Code != http.StatusOK || !next.called {
		t.Fatalf("got status %d, next called %v; want 200 and next called", w.Code, next.called)
	}
	want := map[string]string{
		"X-Dbnl-User-Id":         "user_123",
		"X-Dbnl-Org-Role":        "org_reader",
		"X-Dbnl-Permissions":     "users.read",
		"X-Dbnl-Namespace-Roles": "ns_1=namespace_writer,ns_2=namespace_reader",
		"X-Dbnl-Token-Id":        "tok-1",
	}
	if got := unitDbnlHeaders(next.req.Header, "X-Dbnl-"); !reflect.DeepEqual(got, want) {
		t.Errorf("got headers %v, want %v", got, want)
	}
	if got := next.req.Header.Get("X-Other"); got != "kept" {
		t.Errorf("got X-Other %q, want kept", got)
	}
	if got := unitDbnlHeaders(next.req.Trailer, "X-Dbnl-"); len(got) != 0 {
		t.Errorf("got trailers %v, want no X-Dbnl-* trailer", got)
	}
	if got := next.req.Trailer.Get("X-Trailer"); got != "kept" {
		t.Errorf("got X-Trailer %q, want kept", got)
	}
}

func TestServeHTTPCustomPrefix(t *testing.T) {
	h := newTestHandler(t, newUsersAPI(t), func(h *Handler) { h.HeaderPrefix = "X-Acme-" })
	tok := signToken(t, "HS256", validClaims("user_123"), nil)

	r := bearer("/v0/projects?namespace_id=ns_2", tok)
	r.Header.Set("X-Acme-User-Id", "admin")
	r.Header["x_acme_org_role"] = []string{"org_admin"}
	r.Header.Set("X-Dbnl-User-Id", "not ours")

	w, next, _ := serve(t, h, r)
	if w.Code != http.StatusOK {
		t.Fatalf("got status %d, want 200", w.Code)
	}
	want := map[string]string{
		"X-Acme-User-Id":         "user_123",
		"X-Acme-Org-Role":        "org_reader",
		"X-Acme-Permissions":     "projects.read,users.read",
		"X-Acme-Namespace-Id":    "ns_2",
		"X-Acme-Namespace-Role":  "namespace_reader",
		"X-Acme-Namespace-Roles": "ns_1=namespace_writer,ns_2=namespace_reader",
		"X-Acme-Token-Id":        "tok-1",
	}
	if got := unitDbnlHeaders(next.req.Header, "X-Acme-"); !reflect.DeepEqual(got, want) {
		t.Errorf("got headers %v, want %v", got, want)
	}
	if got := next.req.Header.Get("X-Dbnl-User-Id"); got != "not ours" {
		t.Errorf("got X-Dbnl-User-Id %q, want the client's value kept under another prefix", got)
	}
}

func TestServeHTTPAuthorization(t *testing.T) {
	tests := []struct {
		name  string
		strip bool
	}{
		{name: "kept by default", strip: false},
		{name: "stripped", strip: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newTestHandler(t, newUsersAPI(t), func(h *Handler) { h.StripAuthorization = tt.strip })
			tok := signToken(t, "HS256", validClaims("user_123"), nil)
			w, next, _ := serve(t, h, bearer("/v0/projects", tok))
			if w.Code != http.StatusOK {
				t.Fatalf("got status %d, want 200", w.Code)
			}
			want := []string{"Bearer " + tok}
			if tt.strip {
				want = nil
			}
			if got := next.req.Header.Values("Authorization"); !reflect.DeepEqual(got, want) {
				t.Errorf("got Authorization %q, want %q", got, want)
			}
		})
	}
}

func TestServeHTTPPlaceholders(t *testing.T) {
	h := newTestHandler(t, newUsersAPI(t), nil)
	tok := signToken(t, "HS256", validClaims("user_123"), nil)
	fp, _ := tokenFingerprint(tok)

	tests := []struct {
		name   string
		target string
		want   map[string]string
	}{
		{name: "namespace", target: "/v0/projects?namespace_id=ns_1", want: map[string]string{
			"http.auth.user.id":      "user_123",
			"dbnl.user_id":           "user_123",
			"dbnl.org_role":          "org_reader",
			"dbnl.permissions":       "projects.read,projects.write,users.read",
			"dbnl.namespace_id":      "ns_1",
			"dbnl.namespace_role":    "namespace_writer",
			"dbnl.token_id":          "tok-1",
			"dbnl.token_fingerprint": fp,
			"dbnl.denial":            "",
		}},
		{name: "namespace without a role", target: "/v0/projects?namespace_id=ns_9", want: map[string]string{
			"http.auth.user.id":      "user_123",
			"dbnl.user_id":           "user_123",
			"dbnl.org_role":          "org_reader",
			"dbnl.permissions":       "users.read",
			"dbnl.namespace_id":      "",
			"dbnl.namespace_role":    "",
			"dbnl.token_id":          "tok-1",
			"dbnl.token_fingerprint": fp,
			"dbnl.denial":            "",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, _, repl := serve(t, h, bearer(tt.target, tok))
			if w.Code != http.StatusOK {
				t.Fatalf("got status %d, want 200", w.Code)
			}
			for name, want := range tt.want {
				if got, _ := repl.GetString(name); got != want {
					t.Errorf("got {%s} %q, want %q", name, got, want)
				}
			}
		})
	}
}

// TestServeHTTPPlaceholdersLastAuthenticationWins checks that the
// placeholders show the last authentication of a request: over values
// an earlier handler provides (as a map directive does), over a user id
// another handler set before, and over an earlier pass of dbnl_auth on
// the same request.
func TestServeHTTPPlaceholdersLastAuthenticationWins(t *testing.T) {
	h := newTestHandler(t, newUsersAPI(t), nil)
	first := signToken(t, "HS256", validClaims("user_123"), nil)
	claims := validClaims("user_123")
	claims["jti"] = "tok-2"
	second := signToken(t, "HS256", claims, nil)
	secondFP, _ := tokenFingerprint(second)

	run := func(t *testing.T, repl *caddy.Replacer, target, token string) {
		t.Helper()
		r := bearer(target, token)
		r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
		w := httptest.NewRecorder()
		if err := h.ServeHTTP(w, r, &nextRecorder{}); err != nil || w.Code != http.StatusOK {
			t.Fatalf("got status %d, error %v; want 200", w.Code, err)
		}
	}
	check := func(t *testing.T, repl *caddy.Replacer, want map[string]string) {
		t.Helper()
		for name, want := range want {
			if got, _ := repl.GetString(name); got != want {
				t.Errorf("got {%s} %q, want %q", name, got, want)
			}
		}
	}

	t.Run("provider answering before", func(t *testing.T) {
		// a map directive before dbnl_auth adds a provider answering
		// its destinations, here from a client's header
		repl := caddyhttp.NewTestReplacer(httptest.NewRequest(http.MethodGet, "/", nil))
		repl.Map(func(key string) (any, bool) {
			if strings.HasPrefix(key, "dbnl.") || key == "http.auth.user.id" {
				return "from-client", true
			}
			return nil, false
		})
		run(t, repl, "/v0/projects?namespace_id=ns_1", second)
		check(t, repl, map[string]string{
			"http.auth.user.id": "user_123", "dbnl.user_id": "user_123",
			"dbnl.org_role": "org_reader", "dbnl.permissions": "projects.read,projects.write,users.read",
			"dbnl.token_id": "tok-2", "dbnl.token_fingerprint": secondFP,
			"dbnl.namespace_id": "ns_1", "dbnl.namespace_role": "namespace_writer",
		})
	})
	t.Run("user id set before", func(t *testing.T) {
		repl := caddy.NewReplacer()
		repl.Set("http.auth.user.id", "basic_user")
		run(t, repl, "/v0/projects?namespace_id=ns_1", second)
		check(t, repl, map[string]string{
			"http.auth.user.id": "user_123", "dbnl.user_id": "user_123",
			"dbnl.token_id": "tok-2", "dbnl.token_fingerprint": secondFP,
			"dbnl.namespace_id": "ns_1", "dbnl.namespace_role": "namespace_writer",
		})
	})
	t.Run("dbnl_auth twice", func(t *testing.T) {
		repl := caddy.NewReplacer()
		run(t, repl, "/v0/projects?namespace_id=ns_1", first)
		run(t, repl, "/v0/projects?namespace_id=ns_2", second)
		check(t, repl, map[string]string{
			"http.auth.user.id": "user_123", "dbnl.token_id": "tok-2",
			"dbnl.token_fingerprint": secondFP, "dbnl.namespace_id": "ns_2",
			"dbnl.namespace_role": "namespace_reader", "dbnl.permissions": "projects.read,users.read",
		})
	})
}

func TestServeHTTPConflictingNamespace(t *testing.T) {
	api := newUsersAPI(t)
	h := newTestHandler(t, api, nil)
	tok := signToken(t, "HS256", validClaims("user_123"), nil)
	w, next, repl := serve(t, h, bearer("/v0/projects?namespace_id=ns_1&namespace%5Fid=ns_2", tok))
	if w.Code != http.StatusBadRequest || next.called {
		t.Errorf("got status %d, next called %v; want 400 and next not called", w.Code, next.called)
	}
	if got, _ := repl.GetString("dbnl.denial"); got != "ambiguous_namespace" {
		t.Errorf("got {dbnl.denial} %q, want ambiguous_namespace", got)
	}
	if got := api.calls.Load(); got != 0 {
		t.Errorf("got %d users-API calls, want 0", got)
	}
}

// unitProvision provisions and validates a handler with one good HMAC
// key and a permissions URL, changed by configure, and returns the
// first error.
func unitProvision(t *testing.T, configure func(*Handler)) (*Handler, error) {
	t.Helper()
	h := &Handler{
		HMACKeys:       []HMACKey{{Secret: testSecret}},
		PermissionsURL: "http://127.0.0.1:9080/v0/users/{user}/permissions",
		now:            func() time.Time { return testNow },
	}
	if configure != nil {
		configure(h)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	t.Cleanup(func() { _ = h.Cleanup() })
	if err := h.Provision(ctx); err != nil {
		return h, err
	}
	return h, h.Validate()
}

func TestProvisionDefaults(t *testing.T) {
	h, err := unitProvision(t, nil)
	if err != nil {
		t.Fatalf("got error %v, want none", err)
	}
	if *h.Leeway != caddy.Duration(30*time.Second) {
		t.Errorf("got leeway %v, want 30s", time.Duration(*h.Leeway))
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"user_claim", h.UserClaim, "sub"},
		{"permissions_ttl", h.PermissionsTTL, caddy.Duration(5 * time.Second)},
		{"permissions_timeout", h.PermissionsTimeout, caddy.Duration(2 * time.Second)},
		{"permissions_cache_size", h.PermissionsCacheSize, 100000},
		{"permissions_in_flight", h.PermissionsInFlight, 64},
		{"token_cache_size", h.TokenCacheSize, 100000},
		{"header_prefix", h.HeaderPrefix, "X-Dbnl-"},
		{"max_token_bytes", h.MaxTokenBytes, 8192},
		{"strip_authorization", h.StripAuthorization, false},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("got %s %v, want %v", c.name, c.got, c.want)
		}
	}
	if !reflect.DeepEqual(h.verifier.algs, hmacAlgs) {
		t.Errorf("got algorithms %v, want %v", h.verifier.algs, hmacAlgs)
	}
}

func TestProvisionZeroLeeway(t *testing.T) {
	h, err := unitProvision(t, func(h *Handler) {
		zero := caddy.Duration(0)
		h.Leeway = &zero
	})
	if err != nil {
		t.Fatalf("got error %v, want none", err)
	}
	if h.verifier.leeway != 0 {
		t.Errorf("got leeway %v, want an explicit 0 kept", h.verifier.leeway)
	}
}

func TestProvisionEnvSecret(t *testing.T) {
	t.Setenv("DBNL_UNIT_TEST_SECRET", testSecret)
	h, err := unitProvision(t, func(h *Handler) {
		h.HMACKeys = []HMACKey{{Secret: "{env.DBNL_UNIT_TEST_SECRET}"}}
	})
	if err != nil {
		t.Fatalf("got error %v, want none", err)
	}
	tok := signToken(t, "HS256", validClaims("user_123"), nil)
	if _, err := h.verifier.verify(tok); err != nil {
		t.Errorf("got error %v, want the token signed with the env secret to pass", err)
	}
}

func TestProvisionErrors(t *testing.T) {
	dir := t.TempDir()
	privatePEM := filepath.Join(dir, "private.pem")
	p256 := keysFor(t)["p256"].private.(*ecdsa.PrivateKey)
	der, err := x509.MarshalPKCS8PrivateKey(p256)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(privatePEM, unitPEM("PRIVATE KEY", der), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DBNL_UNIT_UNSET_VAR", "")
	os.Unsetenv("DBNL_UNIT_UNSET_VAR")
	negative := caddy.Duration(-time.Second)

	tests := []struct {
		name      string
		configure func(*Handler)
		want      []string // substrings of the error
		notWant   string   // must not appear in the error
	}{
		{name: "short secret", configure: func(h *Handler) {
			h.HMACKeys = []HMACKey{{Secret: "tooshort"}}
		}, want: []string{"hmac_keys[0]", "secret is 8 bytes"}, notWant: "tooshort"},
		{name: "second key short", configure: func(h *Handler) {
			h.HMACKeys = append(h.HMACKeys, HMACKey{Secret: "tooshort"})
		}, want: []string{"hmac_keys[1]"}},
		{name: "unset env secret", configure: func(h *Handler) {
			h.HMACKeys = []HMACKey{{Secret: "{env.DBNL_UNIT_UNSET_VAR}"}}
		}, want: []string{"hmac_keys[0]", "secret is empty", "environment variable"}},
		{name: "empty secret", configure: func(h *Handler) {
			h.HMACKeys = []HMACKey{{Secret: ""}}
		}, want: []string{"hmac_keys[0]", "secret is empty"}},
		{name: "unreadable public key", configure: func(h *Handler) {
			h.PublicKeys = []PublicKey{{File: filepath.Join(dir, "missing.pem")}}
		}, want: []string{"public_keys[0]", "missing.pem"}},
		{name: "empty public key file name", configure: func(h *Handler) {
			h.PublicKeys = []PublicKey{{File: ""}}
		}, want: []string{"public_keys[0]: file is required"}},
		{name: "public key file from unset env", configure: func(h *Handler) {
			h.PublicKeys = []PublicKey{{File: "{env.DBNL_UNIT_UNSET_VAR}"}}
		}, want: []string{"public_keys[0]: file is required"}},
		{name: "private key file", configure: func(h *Handler) {
			h.PublicKeys = []PublicKey{{File: keysFor(t)["rsa"].pemFile}, {File: privatePEM}}
		}, want: []string{"public_keys[1]", "public key only"}},
		{name: "duplicate kid", configure: func(h *Handler) {
			h.HMACKeys = []HMACKey{{Secret: testSecret, KID: "a"}}
			h.PublicKeys = []PublicKey{{File: keysFor(t)["p256"].pemFile, KID: "a"}}
		}, want: []string{`kid "a" is used by more than one key`}},
		{name: "unknown algorithm", configure: func(h *Handler) {
			h.Algorithms = []string{"HS256", "XS1"}
		}, want: []string{`algorithms: unknown algorithm "XS1"`}},
		{name: "algorithm none", configure: func(h *Handler) {
			h.Algorithms = []string{"none"}
		}, want: []string{"algorithms: none is never accepted"}},
		{name: "algorithm without a key", configure: func(h *Handler) {
			h.Algorithms = []string{"EdDSA"}
		}, want: []string{"algorithms: no configured key can verify EdDSA"}},
		{name: "no key", configure: func(h *Handler) {
			h.HMACKeys = nil
		}, want: []string{"no key configured"}},
		{name: "permissions_url missing", configure: func(h *Handler) {
			h.PermissionsURL = ""
		}, want: []string{"permissions_url is required"}},
		{name: "permissions_url from unset env", configure: func(h *Handler) {
			h.PermissionsURL = "{env.DBNL_UNIT_UNSET_VAR}"
		}, want: []string{"permissions_url"}},
		{name: "permissions_url ftp", configure: func(h *Handler) {
			h.PermissionsURL = "ftp://127.0.0.1/v0/users/{user}"
		}, want: []string{"permissions_url", "http or https", `"ftp"`}},
		{name: "permissions_url relative", configure: func(h *Handler) {
			h.PermissionsURL = "/v0/users/{user}/permissions"
		}, want: []string{"permissions_url", "absolute"}},
		{name: "permissions_url without host", configure: func(h *Handler) {
			h.PermissionsURL = "http:///v0/users/{user}/permissions"
		}, want: []string{"permissions_url", "absolute"}},
		{name: "permissions_url with credentials", configure: func(h *Handler) {
			h.PermissionsURL = "http://admin:hunter2hunter2@127.0.0.1:9080/v0/users/{user}/permissions"
		}, want: []string{"permissions_url: must not carry credentials"}, notWant: "hunter2"},
		{name: "permissions_url with user only", configure: func(h *Handler) {
			h.PermissionsURL = "https://admin@127.0.0.1:9080/v0/users/{user}/permissions"
		}, want: []string{"permissions_url: must not carry credentials"}},
		{name: "negative leeway", configure: func(h *Handler) { h.Leeway = &negative },
			want: []string{"leeway: must not be negative"}},
		{name: "negative permissions_ttl", configure: func(h *Handler) { h.PermissionsTTL = negative },
			want: []string{"permissions_ttl: must be at least 1ms"}},
		{name: "negative permissions_timeout", configure: func(h *Handler) { h.PermissionsTimeout = negative },
			want: []string{"permissions_timeout: must be at least 1ms"}},
		{name: "negative permissions_cache_size", configure: func(h *Handler) { h.PermissionsCacheSize = -1 },
			want: []string{"permissions_cache_size"}},
		{name: "negative token_cache_size", configure: func(h *Handler) { h.TokenCacheSize = -1 },
			want: []string{"token_cache_size: must not be negative"}},
		{name: "negative max_token_bytes", configure: func(h *Handler) { h.MaxTokenBytes = -1 },
			want: []string{"max_token_bytes: must not be negative"}},
		{name: "header_prefix with space", configure: func(h *Handler) { h.HeaderPrefix = "X Dbnl-" },
			want: []string{"header_prefix", `"X Dbnl-"`}},
		{name: "header_prefix with newline", configure: func(h *Handler) { h.HeaderPrefix = "X-Dbnl\n" },
			want: []string{"header_prefix"}},
		{name: "header_prefix too short", configure: func(h *Handler) { h.HeaderPrefix = "X-" },
			want: []string{"header_prefix", "too short"}},
		{name: "max_token_bytes too small", configure: func(h *Handler) { h.MaxTokenBytes = 10 },
			want: []string{"max_token_bytes: 10 is too small"}},
		{name: "permissions_url port out of range", configure: func(h *Handler) {
			h.PermissionsURL = "http://127.0.0.1:99999999/v0/users/{user}/permissions"
		}, want: []string{"permissions_url: invalid port"}},
		{name: "permissions_url bad query escape", configure: func(h *Handler) {
			h.PermissionsURL = "http://127.0.0.1:9080/v0/users/{user}/permissions?key=%zz"
		}, want: []string{"permissions_url: the query string does not parse"}},
		{name: "user_claim exp", configure: func(h *Handler) { h.UserClaim = "exp" },
			want: []string{`user_claim: "exp" is not a user id claim`}},
		{name: "user_claim iss", configure: func(h *Handler) { h.UserClaim = "iss" },
			want: []string{`user_claim: "iss" is not a user id claim`}},
		{name: "several negative numbers name the first", configure: func(h *Handler) {
			h.PermissionsCacheSize, h.MaxTokenBytes = -1, -1
		}, want: []string{"permissions_cache_size: must not be negative"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := unitProvision(t, tt.configure)
			if err == nil {
				t.Fatalf("got no error, want one containing %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got error %q, want it to contain %q", err, w)
				}
			}
			if tt.notWant != "" && strings.Contains(err.Error(), tt.notWant) {
				t.Errorf("got error %q, want it not to contain %q", err, tt.notWant)
			}
		})
	}
}

// TestProvisionNegativeInFlight checks that a negative
// permissions_in_flight from a JSON config is an error naming the
// field rather than a crash.
func TestProvisionNegativeInFlight(t *testing.T) {
	var err error
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("got panic %v, want an error", r)
			}
		}()
		_, err = unitProvision(t, func(h *Handler) { h.PermissionsInFlight = -1 })
	}()
	if err == nil || !strings.Contains(err.Error(), "permissions_in_flight") {
		t.Errorf("got error %v, want one naming permissions_in_flight", err)
	}
}

// TestValidateHeaderPrefixColon checks that a header_prefix that cannot
// start a header name is refused: ':' is not allowed in a field name.
func TestValidateHeaderPrefixColon(t *testing.T) {
	_, err := unitProvision(t, func(h *Handler) { h.HeaderPrefix = "X-Dbnl:" })
	if err == nil || !strings.Contains(err.Error(), "header_prefix") {
		t.Errorf("got error %v, want one naming header_prefix", err)
	}
}

func TestCleanupWithoutProvision(t *testing.T) {
	var h Handler
	if err := h.Cleanup(); err != nil {
		t.Errorf("got error %v, want none", err)
	}
}

func TestCaddyModule(t *testing.T) {
	info := Handler{}.CaddyModule()
	if info.ID != "http.handlers.dbnl_auth" {
		t.Errorf("got module ID %q, want http.handlers.dbnl_auth", info.ID)
	}
	if _, ok := info.New().(*Handler); !ok {
		t.Errorf("got New() of type %T, want *Handler", info.New())
	}
}
