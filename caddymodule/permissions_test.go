package dbnlauth

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// unitPermissionsBody is a valid users-API answer for user_123.
const unitPermissionsBody = `{"user_id":"user_123","org_role":"org_reader","org_permissions":["users.read"],` +
	`"namespaces":[{"namespace_id":"ns_1","role":"namespace_writer","permissions":["projects.read"]}],` +
	`"disabled":false}`

func TestPermissionsCachedWithinTTL(t *testing.T) {
	api := newUsersAPI(t)
	clock := newUnitClock()
	h := newTestHandler(t, api, func(h *Handler) { h.now = clock.now })
	tok := signToken(t, "HS256", validClaims("user_123"), nil)

	for i := range 2 {
		w, next, _ := serve(t, h, bearer("/v0/projects", tok))
		if w.Code != http.StatusOK || !next.called {
			t.Fatalf("request %d: got status %d, next called %v; want 200 and next called", i, w.Code, next.called)
		}
	}
	if got := api.calls.Load(); got != 1 {
		t.Errorf("got %d users-API calls for 2 requests, want 1", got)
	}

	// just before the TTL ends the entry still answers
	clock.advance(defaultPermissionsTTL - time.Millisecond)
	serve(t, h, bearer("/v0/projects", tok))
	if got := api.calls.Load(); got != 1 {
		t.Errorf("just before the TTL: got %d users-API calls, want 1", got)
	}

	// at the TTL it is asked again
	clock.advance(time.Millisecond)
	serve(t, h, bearer("/v0/projects", tok))
	if got := api.calls.Load(); got != 2 {
		t.Errorf("after the TTL: got %d users-API calls, want 2", got)
	}
}

// TestPermissionsCachedPerUser checks that the cache is keyed by user,
// not by token: a second token of the same user reuses the entry.
func TestPermissionsCachedPerUser(t *testing.T) {
	api := newUsersAPI(t)
	h := newTestHandler(t, api, nil)
	for _, jti := range []string{"tok-1", "tok-2"} {
		c := validClaims("user_123")
		c["jti"] = jti
		w, _, _ := serve(t, h, bearer("/v0/projects", signToken(t, "HS256", c, nil)))
		if w.Code != http.StatusOK {
			t.Fatalf("token %s: got status %d, want 200", jti, w.Code)
		}
	}
	if got := api.calls.Load(); got != 1 {
		t.Errorf("got %d users-API calls, want 1", got)
	}
}

func TestPermissionsRoleChangeAfterTTL(t *testing.T) {
	api := newUsersAPI(t)
	clock := newUnitClock()
	h := newTestHandler(t, api, func(h *Handler) {
		h.now = clock.now
		h.PermissionsTTL = caddy.Duration(10 * time.Second)
	})
	tok := signToken(t, "HS256", validClaims("user_123"), nil)
	role := func() string {
		t.Helper()
		w, next, _ := serve(t, h, bearer("/v0/projects", tok))
		if w.Code != http.StatusOK {
			t.Fatalf("got status %d, want 200; body %s", w.Code, w.Body)
		}
		return next.req.Header.Get("X-Dbnl-Org-Role")
	}

	if got := role(); got != "org_reader" {
		t.Fatalf("got role %q, want org_reader", got)
	}
	api.set(&Permissions{UserID: "user_123", OrgRole: "org_admin", OrgPermissions: []string{"users.write"}})

	clock.advance(9 * time.Second)
	if got := role(); got != "org_reader" {
		t.Errorf("within the TTL: got role %q, want the cached org_reader", got)
	}
	clock.advance(time.Second)
	if got := role(); got != "org_admin" {
		t.Errorf("after the TTL: got role %q, want org_admin", got)
	}
}

// TestPermissionsInactiveUserCached checks that an answer that the user
// is unknown or not active denies with 401 and is kept for the TTL.
func TestPermissionsInactiveUserCached(t *testing.T) {
	tests := []struct {
		name   string
		user   string
		status int
	}{
		{name: "unknown user 404", user: "user_unknown"},
		{name: "status 404", user: "user_123", status: http.StatusNotFound},
		{name: "disabled", user: "user_disabled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := newUsersAPI(t)
			api.setFailure(tt.status, "", 0)
			clock := newUnitClock()
			h := newTestHandler(t, api, func(h *Handler) { h.now = clock.now })

			for i := range 2 {
				_, err := h.resolver.resolve(context.Background(), tt.user, "x")
				if !errors.Is(err, errUserNotActive) {
					t.Fatalf("lookup %d: got error %v, want %v", i, err, errUserNotActive)
				}
			}
			if got := api.calls.Load(); got != 1 {
				t.Errorf("got %d users-API calls, want 1 (the denial cached)", got)
			}

			tok := signToken(t, "HS256", validClaims(tt.user), nil)
			w, next, repl := serve(t, h, bearer("/v0/projects", tok))
			if w.Code != http.StatusUnauthorized || next.called {
				t.Errorf("got status %d, next called %v; want 401 and next not called", w.Code, next.called)
			}
			if got, _ := repl.GetString("dbnl.denial"); got != "user_not_active" {
				t.Errorf("got denial %q, want user_not_active", got)
			}
			if got := api.calls.Load(); got != 1 {
				t.Errorf("after serving: got %d users-API calls, want 1", got)
			}

			// the denial expires with the TTL like an answer
			clock.advance(defaultPermissionsTTL)
			_, _ = h.resolver.resolve(context.Background(), tt.user, "x")
			if got := api.calls.Load(); got != 2 {
				t.Errorf("after the TTL: got %d users-API calls, want 2", got)
			}
		})
	}
}

// TestPermissionsRefusedTokenNotCached checks that a users API refusing
// the credentials it was sent (401, 403) denies with 401 but is asked
// again next time: the refusal may concern that token only, and caching
// it per user would let one bad token lock out the user's others.
func TestPermissionsRefusedTokenNotCached(t *testing.T) {
	for _, status := range []int{http.StatusUnauthorized, http.StatusForbidden} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			api := newUsersAPI(t)
			api.setFailure(status, "", 0)
			h := newTestHandler(t, api, nil)
			tok := signToken(t, "HS256", validClaims("user_123"), nil)

			for i := range 2 {
				w, next, repl := serve(t, h, bearer("/v0/projects", tok))
				if w.Code != http.StatusUnauthorized || next.called {
					t.Fatalf("request %d: got status %d, next called %v; want 401", i, w.Code, next.called)
				}
				if got, _ := repl.GetString("dbnl.denial"); got != "refused_by_users_api" {
					t.Errorf("request %d: got denial %q, want refused_by_users_api", i, got)
				}
			}
			if got := api.calls.Load(); got != 2 {
				t.Errorf("got %d users-API calls, want 2 (the refusal not cached)", got)
			}
		})
	}
}

// TestPermissionsFailureNotCached checks that a broken users-API answer
// gives 503 and is not remembered: the next request asks again.
func TestPermissionsFailureNotCached(t *testing.T) {
	answer := func(perm string) string {
		return `{"user_id":"user_123","org_role":"org_reader","org_permissions":["` + perm + `"]}`
	}
	huge := `{"user_id":"user_123","org_role":"org_reader","org_permissions":["` +
		strings.Repeat("a", maxPermissionsBody) + `"]}`
	tests := []struct {
		name   string
		status int
		body   string
	}{
		{name: "status 500", status: http.StatusInternalServerError},
		{name: "status 502", status: http.StatusBadGateway},
		{name: "status 429", status: http.StatusTooManyRequests},
		{name: "status 204", status: http.StatusNoContent},
		{name: "status 302 without location", status: http.StatusFound},
		{name: "bad json", body: `{"user_id":`},
		{name: "not json", body: `<html>oops</html>`},
		{name: "json null", body: `null`},
		{name: "json array", body: `[]`},
		{name: "wrong field type", body: `{"user_id":"user_123","org_permissions":"users.read"}`},
		{name: "trailing data", body: unitPermissionsBody + ` {"user_id":"admin"}`},
		{name: "trailing garbage", body: unitPermissionsBody + `x`},
		{name: "wrong user_id", body: strings.Replace(unitPermissionsBody, "user_123", "user_456", 1)},
		{name: "missing user_id", body: `{"org_role":"org_reader"}`},
		{name: "comma in permission", body: answer("users.read,users.write")},
		{name: "equals in permission", body: answer("ns_1=namespace_admin")},
		{name: "space in permission", body: answer("users read")},
		{name: "newline in permission", body: answer(`users\nread`)},
		{name: "empty permission", body: answer("")},
		{name: "comma in org role", body: `{"user_id":"user_123","org_role":"org_reader,org_admin"}`},
		{name: "comma in namespace role", body: `{"user_id":"user_123","namespaces":[{"namespace_id":"ns_1","role":"a,b"}]}`},
		{name: "equals in namespace id", body: `{"user_id":"user_123","namespaces":[{"namespace_id":"ns=1","role":"r"}]}`},
		{name: "empty namespace id", body: `{"user_id":"user_123","namespaces":[{"namespace_id":"","role":"r"}]}`},
		{name: "space in namespace permission", body: `{"user_id":"user_123","namespaces":[{"namespace_id":"ns_1","role":"r","permissions":["a b"]}]}`},
		{name: "body over 1 MiB", body: huge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := newUsersAPI(t)
			api.setFailure(tt.status, tt.body, 0)
			h := newTestHandler(t, api, nil)

			if _, err := h.resolver.resolve(context.Background(), "user_123", "x"); !errors.Is(err, errLookup) {
				t.Errorf("got error %v, want %v", err, errLookup)
			}

			tok := signToken(t, "HS256", validClaims("user_123"), nil)
			w, next, repl := serve(t, h, bearer("/v0/projects", tok))
			if w.Code != http.StatusServiceUnavailable || next.called {
				t.Errorf("got status %d, next called %v; want 503 and next not called", w.Code, next.called)
			}
			if got, _ := repl.GetString("dbnl.denial"); got != "users_api_unavailable" {
				t.Errorf("got denial %q, want users_api_unavailable", got)
			}
			if got := api.calls.Load(); got != 2 {
				t.Errorf("got %d users-API calls for 2 lookups, want 2 (failure not cached)", got)
			}
		})
	}
}

// TestPermissionsTrailingBracket checks that a body followed by a stray
// closing bracket is refused like any other trailing data.
func TestPermissionsTrailingBracket(t *testing.T) {
	for _, trailer := range []string{"}", "]", "}}"} {
		t.Run(trailer, func(t *testing.T) {
			api := newUsersAPI(t)
			api.setFailure(0, unitPermissionsBody+trailer, 0)
			h := newTestHandler(t, api, nil)
			if _, err := h.resolver.resolve(context.Background(), "user_123", "x"); !errors.Is(err, errLookup) {
				t.Errorf("got error %v, want %v", err, errLookup)
			}
		})
	}
}

func TestPermissionsBodyLimit(t *testing.T) {
	pad := func(n int) string {
		return unitPermissionsBody + strings.Repeat(" ", n-len(unitPermissionsBody))
	}
	tests := []struct {
		name    string
		body    string
		wantErr error
	}{
		{name: "exactly 1 MiB", body: pad(maxPermissionsBody)},
		{name: "1 MiB plus one byte", body: pad(maxPermissionsBody + 1), wantErr: errLookup},
		{name: "trailing newline", body: unitPermissionsBody + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := newUsersAPI(t)
			api.setFailure(0, tt.body, 0)
			h := newTestHandler(t, api, nil)
			if _, err := h.resolver.resolve(context.Background(), "user_123", "x"); !errors.Is(err, tt.wantErr) {
				t.Errorf("got error %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// TestPermissionsRedirectNotFollowed puts a redirecting server at
// permissions_url: the lookup fails and the target is never called.
func TestPermissionsRedirectNotFollowed(t *testing.T) {
	api := newUsersAPI(t)
	for _, status := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		t.Run("status "+strconv.Itoa(status), func(t *testing.T) {
			redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, api.URL+r.URL.Path, status)
			}))
			t.Cleanup(redirector.Close)
			h := newTestHandler(t, api, func(h *Handler) {
				h.PermissionsURL = redirector.URL + "/v0/users/{user}/permissions"
			})

			tok := signToken(t, "HS256", validClaims("user_123"), nil)
			for i := range 2 {
				w, next, _ := serve(t, h, bearer("/v0/projects", tok))
				if w.Code != http.StatusServiceUnavailable || next.called {
					t.Errorf("request %d: got status %d, next called %v; want 503 and next not called",
						i, w.Code, next.called)
				}
			}
			if got := api.calls.Load(); got != 0 {
				t.Errorf("got %d calls to the redirect target, want 0", got)
			}
		})
	}
}

func TestPermissionsTimeout(t *testing.T) {
	api := newUsersAPI(t)
	api.setFailure(0, "", 2*time.Second)
	h := newTestHandler(t, api, func(h *Handler) {
		h.PermissionsTimeout = caddy.Duration(50 * time.Millisecond)
	})
	start := time.Now()
	_, err := h.resolver.resolve(context.Background(), "user_123", "x")
	if !errors.Is(err, errLookup) {
		t.Errorf("got error %v, want %v", err, errLookup)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("got a lookup of %v, want it cut at about 50ms", d)
	}
}

// TestPermissionsSingleflight sends concurrent lookups for one user
// while the users API is slow: they share one call.
func TestPermissionsSingleflight(t *testing.T) {
	api := newUsersAPI(t)
	api.setFailure(0, "", 200*time.Millisecond)
	h := newTestHandler(t, api, nil)

	const n = 10
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = h.resolver.resolve(context.Background(), "user_123", "x")
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("lookup %d: got error %v, want none", i, err)
		}
	}
	if got := api.calls.Load(); got != 1 {
		t.Errorf("got %d users-API calls for %d concurrent lookups, want 1", got, n)
	}
}

// TestPermissionsRequest checks what the users API is sent: the
// client's own bearer token, Accept and the escaped user id.
func TestPermissionsRequest(t *testing.T) {
	type seen struct{ uri, auth, accept string }
	var mu sync.Mutex
	var got []seen
	capture := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, seen{r.RequestURI, r.Header.Get("Authorization"), r.Header.Get("Accept")})
		mu.Unlock()
		http.NotFound(w, r)
	}))
	t.Cleanup(capture.Close)
	api := newUsersAPI(t)
	h := newTestHandler(t, api, func(h *Handler) {
		h.PermissionsURL = capture.URL + "/v0/users/{user}/permissions?u={user}"
	})

	tests := []struct {
		name    string
		user    string
		wantURI string
	}{
		{name: "plain", user: "user_123", wantURI: "/v0/users/user_123/permissions?u=user_123"},
		{name: "dot dot slash", user: "../admin", wantURI: "/v0/users/%2E%2E%2Fadmin/permissions?u=..%2Fadmin"},
		{name: "query", user: "a?b=c#d", wantURI: "/v0/users/a%3Fb%3Dc%23d/permissions?u=a%3Fb%3Dc%23d"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			got = nil
			mu.Unlock()
			tok := signToken(t, "HS256", validClaims(tt.user), nil)
			serve(t, h, bearer("/v0/projects", tok))

			mu.Lock()
			defer mu.Unlock()
			if len(got) != 1 {
				t.Fatalf("got %d users-API calls, want 1", len(got))
			}
			if got[0].uri != tt.wantURI {
				t.Errorf("got request URI %q, want %q", got[0].uri, tt.wantURI)
			}
			if got[0].auth != "Bearer "+tok {
				t.Errorf("got Authorization %q, want Bearer and the client's token", got[0].auth)
			}
			if got[0].accept != "application/json" {
				t.Errorf("got Accept %q, want application/json", got[0].accept)
			}
		})
	}
}

// TestPermissionsAuthorizationFromClient checks the stub sees the
// client's token, normalized to the Bearer scheme.
func TestPermissionsAuthorizationFromClient(t *testing.T) {
	api := newUsersAPI(t)
	h := newTestHandler(t, api, nil)
	tok := signToken(t, "ES256", validClaims("user_123"), nil)
	r := bearer("/v0/projects", "")
	r.Header.Set("Authorization", "bearer   "+tok)
	w, _, _ := serve(t, h, r)
	if w.Code != http.StatusOK {
		t.Fatalf("got status %d, want 200; body %s", w.Code, w.Body)
	}
	api.mu.Lock()
	got := api.lastAuth
	api.mu.Unlock()
	if got != "Bearer "+tok {
		t.Errorf("got Authorization %q, want %q", got, "Bearer "+tok)
	}
}

func TestExpandUserURL(t *testing.T) {
	const path = "http://127.0.0.1:9080/v0/users/{user}/permissions"
	const query = "http://127.0.0.1:9080/v0/permissions?user={user}&v=1"
	tests := []struct {
		name     string
		template string
		user     string
		want     string
	}{
		{name: "plain", template: path, user: "user_123", want: "http://127.0.0.1:9080/v0/users/user_123/permissions"},
		{name: "unreserved kept", template: path, user: "aZ09-_~", want: "http://127.0.0.1:9080/v0/users/aZ09-_~/permissions"},
		{name: "dot dot slash admin", template: path, user: "../admin", want: "http://127.0.0.1:9080/v0/users/%2E%2E%2Fadmin/permissions"},
		{name: "slash", template: path, user: "a/b", want: "http://127.0.0.1:9080/v0/users/a%2Fb/permissions"},
		{name: "question mark", template: path, user: "a?b", want: "http://127.0.0.1:9080/v0/users/a%3Fb/permissions"},
		{name: "hash", template: path, user: "a#b", want: "http://127.0.0.1:9080/v0/users/a%23b/permissions"},
		{name: "dot dot", template: path, user: "..", want: "http://127.0.0.1:9080/v0/users/%2E%2E/permissions"},
		{name: "dot", template: path, user: ".", want: "http://127.0.0.1:9080/v0/users/%2E/permissions"},
		{name: "percent", template: path, user: "a%2Fb", want: "http://127.0.0.1:9080/v0/users/a%252Fb/permissions"},
		{name: "backslash", template: path, user: `..\admin`, want: "http://127.0.0.1:9080/v0/users/%2E%2E%5Cadmin/permissions"},
		{name: "space", template: path, user: "a b", want: "http://127.0.0.1:9080/v0/users/a%20b/permissions"},
		{name: "unicode", template: path, user: "usér", want: "http://127.0.0.1:9080/v0/users/us%C3%A9r/permissions"},
		{name: "braces", template: path, user: "{user}", want: "http://127.0.0.1:9080/v0/users/%7Buser%7D/permissions"},
		{name: "query plain", template: query, user: "user_123", want: "http://127.0.0.1:9080/v0/permissions?user=user_123&v=1"},
		{name: "query ampersand", template: query, user: "a&v=2", want: "http://127.0.0.1:9080/v0/permissions?user=a%26v%3D2&v=1"},
		{name: "query dot dot slash", template: query, user: "../admin", want: "http://127.0.0.1:9080/v0/permissions?user=..%2Fadmin&v=1"},
		{name: "query hash", template: query, user: "a#b", want: "http://127.0.0.1:9080/v0/permissions?user=a%23b&v=1"},
		{name: "query space", template: query, user: "a b", want: "http://127.0.0.1:9080/v0/permissions?user=a+b&v=1"},
		{name: "query unicode", template: query, user: "usér", want: "http://127.0.0.1:9080/v0/permissions?user=us%C3%A9r&v=1"},
		{name: "path and query", template: "http://h/u/{user}?id={user}", user: "a/b?c",
			want: "http://h/u/a%2Fb%3Fc?id=a%2Fb%3Fc"},
		{name: "no placeholder", template: "http://h/me", user: "a", want: "http://h/me"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := expandUserURL(tt.template, tt.user); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestHeaderSafe(t *testing.T) {
	tests := []struct {
		name    string
		s       string
		emptyOK bool
		want    bool
	}{
		{name: "name", s: "projects.read", want: true},
		{name: "all allowed", s: "aZ09._:-", want: true},
		{name: "empty refused", s: "", want: false},
		{name: "empty allowed", s: "", emptyOK: true, want: true},
		{name: "256 bytes", s: strings.Repeat("a", 256), want: true},
		{name: "257 bytes", s: strings.Repeat("a", 257), want: false},
		{name: "comma", s: "a,b", want: false},
		{name: "equals", s: "a=b", want: false},
		{name: "space", s: "a b", want: false},
		{name: "newline", s: "a\nb", want: false},
		{name: "semicolon", s: "a;b", want: false},
		{name: "quote", s: `a"b`, want: false},
		{name: "unicode", s: "é", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := headerSafe(tt.s, tt.emptyOK); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPermissionsValidate(t *testing.T) {
	good := func() *Permissions {
		return &Permissions{
			UserID: "user_123", OrgRole: "org_reader", OrgPermissions: []string{"users.read"},
			Namespaces: []NamespaceGrant{{NamespaceID: "ns_1", Role: "namespace_writer", Permissions: []string{"projects.read"}}},
		}
	}
	tests := []struct {
		name    string
		change  func(p *Permissions)
		wantErr string
	}{
		{name: "valid"},
		{name: "no org role", change: func(p *Permissions) { p.OrgRole = "" }},
		{name: "no namespaces", change: func(p *Permissions) { p.Namespaces = nil }},
		{name: "other user", change: func(p *Permissions) { p.UserID = "user_456" }, wantErr: "user_id does not match"},
		{name: "bad org role", change: func(p *Permissions) { p.OrgRole = "a b" }, wantErr: "org_role"},
		{name: "bad org permission", change: func(p *Permissions) { p.OrgPermissions = append(p.OrgPermissions, "a,b") }, wantErr: "org_permissions"},
		{name: "bad namespace id", change: func(p *Permissions) { p.Namespaces[0].NamespaceID = "ns=1" }, wantErr: "namespaces[0]"},
		{name: "empty namespace role", change: func(p *Permissions) { p.Namespaces[0].Role = "" }, wantErr: "namespaces[0]"},
		{name: "bad namespace permission", change: func(p *Permissions) {
			p.Namespaces = append(p.Namespaces, NamespaceGrant{NamespaceID: "ns_2", Role: "r", Permissions: []string{"x y"}})
		}, wantErr: "namespaces[1]: invalid permission name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := good()
			if tt.change != nil {
				tt.change(p)
			}
			err := p.validate("user_123")
			if tt.wantErr == "" {
				if err != nil {
					t.Errorf("got error %v, want none", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("got error %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

// TestPermissionsRefusalNotSharedWithOtherTokens checks that a request
// waiting on another token's users-API call does not inherit that
// token's refusal: a good token arriving while a refused token of the
// same user is being looked up is asked about on its own.
func TestPermissionsRefusalNotSharedWithOtherTokens(t *testing.T) {
	refusedClaims := validClaims("user_123")
	refusedClaims["jti"] = "tok-refused"
	refused := signToken(t, "HS256", refusedClaims, nil)
	good := signToken(t, "HS256", validClaims("user_123"), nil)

	answer := `{"user_id":"user_123","org_role":"org_reader","org_permissions":["users.read"]}`
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.Header.Get("Authorization") == "Bearer "+refused {
			// hold the refused call open so the good request joins it
			time.Sleep(300 * time.Millisecond)
			w.WriteHeader(http.StatusForbidden)
			return
		}
		_, _ = w.Write([]byte(answer))
	}))
	t.Cleanup(srv.Close)
	h := newTestHandler(t, newUsersAPI(t), func(h *Handler) {
		h.PermissionsURL = srv.URL + "/v0/users/{user}/permissions"
	})

	refusedDone := make(chan int)
	go func() {
		w, _, _ := serve(t, h, bearer("/", refused))
		refusedDone <- w.Code
	}()
	time.Sleep(100 * time.Millisecond)
	w, next, _ := serve(t, h, bearer("/", good))
	if w.Code != http.StatusOK || !next.called {
		t.Errorf("good token during a refused lookup: got status %d, want 200", w.Code)
	}
	if code := <-refusedDone; code != http.StatusUnauthorized {
		t.Errorf("refused token: got status %d, want 401", code)
	}
	if got := calls.Load(); got != 2 {
		t.Errorf("got %d users-API calls, want 2 (one per token)", got)
	}
}

// TestPermissionsMalformedResponseNotLogged checks that a users API
// answering with a malformed response that quotes the request's
// Authorization header cannot get the token into the error log.
func TestPermissionsMalformedResponseNotLogged(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				// a header line without a colon, made of the token
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\n"+req.Header.Get("Authorization")+"\r\n\r\n")
			}(c)
		}
	}()

	h := newTestHandler(t, newUsersAPI(t), func(h *Handler) {
		h.PermissionsURL = "http://" + ln.Addr().String() + "/v0/users/{user}/permissions"
	})
	logs := unitObserve(h)
	tok := signToken(t, "HS256", validClaims("user_123"), nil)
	w, next, _ := serve(t, h, bearer("/", tok))
	if w.Code != http.StatusServiceUnavailable || next.called {
		t.Fatalf("got status %d, next called %v; want 503", w.Code, next.called)
	}
	if logs.FilterMessage("permissions lookup failed").Len() != 1 {
		t.Fatalf("got no failure log entry:\n%s", unitLogText(logs))
	}
	sig := tok[strings.LastIndexByte(tok, '.')+1:]
	if text := unitLogText(logs); strings.Contains(text, sig) {
		t.Errorf("the token's signature reached the log:\n%s", text)
	}
}

// TestPermissionsRepeatedKeysRefused checks that a users-API answer
// whose objects repeat a key, in the same or another case, fails the
// lookup: encoding/json would quietly keep the last one.
func TestPermissionsRepeatedKeysRefused(t *testing.T) {
	tests := []struct {
		name string
		body string
		ok   bool
	}{
		{name: "plain", ok: true,
			body: `{"user_id":"user_123","org_role":"org_reader","disabled":false}`},
		{name: "disabled twice in two cases",
			body: `{"user_id":"user_123","org_role":"org_reader","disabled":true,"Disabled":false}`},
		{name: "user_id twice",
			body: `{"user_id":"user_123","user_id":"user_123","org_role":"org_reader"}`},
		{name: "role twice inside a namespace",
			body: `{"user_id":"user_123","namespaces":[{"namespace_id":"ns_1","role":"namespace_reader","ROLE":"namespace_admin"}]}`},
		{name: "disabled null",
			body: `{"user_id":"user_123","org_role":"org_reader","disabled":null}`},
		{name: "disabled absent", ok: true,
			body: `{"user_id":"user_123","org_role":"org_reader"}`},
		{name: "same key in sibling objects", ok: true,
			body: `{"user_id":"user_123","namespaces":[{"namespace_id":"ns_1","role":"r"},{"namespace_id":"ns_2","role":"r"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := newUsersAPI(t)
			api.setFailure(0, tt.body, 0)
			h := newTestHandler(t, api, nil)
			tok := signToken(t, "HS256", validClaims("user_123"), nil)
			w, next, _ := serve(t, h, bearer("/v0/projects", tok))
			if tt.ok {
				if w.Code != http.StatusOK || !next.called {
					t.Errorf("got status %d, want 200", w.Code)
				}
				return
			}
			if w.Code != http.StatusServiceUnavailable || next.called {
				t.Errorf("got status %d, next called %v; want 503", w.Code, next.called)
			}
		})
	}
}
