package dbnlauth

// The integration tests run a real Caddy, loaded from JSON with
// caddy.Load and listening on 127.0.0.1, with dbnl_auth in front of
// reverse_proxy to a stub platform and asking the users API stub. The
// tokens are minted on the real clock. Caddy runs one configuration a
// process, so these tests never run in parallel: startIntegGateway
// holds integMu until the test ends.

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/golang-jwt/jwt/v5"
)

// TestIntegrationEachAlgorithm signs a token with every supported
// algorithm and checks that the platform gets the request with the
// user's trusted headers and the client's Authorization unchanged.
func TestIntegrationEachAlgorithm(t *testing.T) {
	api := newUsersAPI(t)
	g := startIntegGateway(t, api, integOptions{
		handler: func(h map[string]any) { h["permissions_ttl"] = "1m" },
	})

	for _, alg := range supportedAlgs {
		t.Run(alg, func(t *testing.T) {
			tok := signToken(t, alg, integClaims("user_123"), nil)
			resp, body := g.do(t, g.get(t, "/v0/projects?namespace_id=ns_1", tok))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("got status %d, want 200; body %s", resp.StatusCode, body)
			}
			if string(body) != `{"ok":true}` {
				t.Errorf("got body %q, want the platform's {\"ok\":true}", body)
			}

			got := g.platform.last(t).header
			want := map[string]string{
				"X-Dbnl-User-Id":         "user_123",
				"X-Dbnl-Org-Role":        "org_reader",
				"X-Dbnl-Permissions":     "projects.read,projects.write,users.read",
				"X-Dbnl-Namespace-Id":    "ns_1",
				"X-Dbnl-Namespace-Role":  "namespace_writer",
				"X-Dbnl-Namespace-Roles": "ns_1=namespace_writer,ns_2=namespace_reader",
				"X-Dbnl-Token-Id":        integJTI,
				"Authorization":          "Bearer " + tok,
			}
			for name, v := range want {
				if values := got.Values(name); len(values) != 1 || values[0] != v {
					t.Errorf("platform got %s %q, want [%q]", name, values, v)
				}
			}
		})
	}

	// every algorithm spoke for the same user, well inside the TTL
	if got := api.calls.Load(); got != 1 {
		t.Errorf("got %d users-API calls, want 1", got)
	}
}

// TestIntegrationRejections sends every kind of bad request through
// the gateway and checks the 401: a JSON auth_error body that says why
// and never echoes the token, the Bearer challenge, no call to the
// users API for a token that fails verification, and nothing at all
// reaching the platform.
func TestIntegrationRejections(t *testing.T) {
	api := newUsersAPI(t)
	g := startIntegGateway(t, api, integOptions{
		handler: func(h map[string]any) {
			// a kid on the HMAC key, so that a token naming another
			// kid is refused as unknown
			h["hmac_keys"] = []any{map[string]any{"secret": testSecret, "kid": "k1"}}
		},
	})

	now := time.Now()
	valid := integToken(t, "user_123", nil)
	other := integToken(t, "user_123", func(c jwt.MapClaims) { c["jti"] = "tok-other" })
	oversized := integToken(t, "user_123", func(c jwt.MapClaims) {
		c["pad"] = strings.Repeat("x", 9<<10)
	})
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, integClaims("user_123")).
		SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatalf("making an alg none token: %v", err)
	}
	rsaPEM, err := os.ReadFile(keysFor(t)["rsa"].pemFile)
	if err != nil {
		t.Fatalf("reading the RSA public key: %v", err)
	}

	cases := []struct {
		name string
		// path defaults to /v0/projects
		path string
		// auth are the Authorization header values sent
		auth []string
		// token, if set, must not appear in the response
		token string
		// keyword is what the message must say, ignoring case
		keyword string
		// presented: the challenge carries error="invalid_token"
		presented bool
		// usersAPI is how many users-API calls the request makes
		usersAPI int64
	}{
		{name: "no token", keyword: "missing bearer token"},
		{name: "basic scheme", auth: []string{"Basic " + valid}, token: valid,
			keyword: "must be bearer"},
		{name: "two authorization headers", auth: []string{"Bearer " + valid, "Bearer " + other},
			token: valid, keyword: "more than one", presented: true},
		{name: "empty token", auth: []string{"Bearer "}, keyword: "empty", presented: true},
		{name: "oversized token", auth: []string{"Bearer " + oversized}, token: oversized,
			keyword: "too large", presented: true},
		{name: "query access_token", path: "/v0/projects?access_token=" + valid, token: valid,
			keyword: "only in the authorization header", presented: true},
		{name: "expired", token: integToken(t, "user_123", func(c jwt.MapClaims) {
			c["iat"] = now.Add(-2 * time.Hour).Unix()
			c["exp"] = now.Add(-time.Hour).Unix()
		}), keyword: "expired", presented: true},
		{name: "not yet valid", token: integToken(t, "user_123", func(c jwt.MapClaims) {
			c["nbf"] = now.Add(time.Hour).Unix()
		}), keyword: "not yet valid", presented: true},
		{name: "wrong audience", token: integToken(t, "user_123", func(c jwt.MapClaims) {
			c["aud"] = "other-api"
		}), keyword: "audience", presented: true},
		{name: "wrong issuer", token: integToken(t, "user_123", func(c jwt.MapClaims) {
			c["iss"] = "evil"
		}), keyword: "issuer", presented: true},
		{name: "unknown kid", token: signToken(t, "HS256", integClaims("user_123"),
			map[string]any{"kid": "k2"}), keyword: "key id", presented: true},
		{name: "bad signature", token: signWithKey(t, jwt.SigningMethodHS256,
			[]byte("another-secret-0123456789abcdef012345"), integClaims("user_123")),
			keyword: "signature", presented: true},
		{name: "malformed", token: "not-a-jwt", keyword: "malformed", presented: true},
		{name: "alg none", token: none, keyword: "algorithm", presented: true},
		{name: "hs256 signed with the rsa public key", token: signWithKey(t, jwt.SigningMethodHS256,
			rsaPEM, integClaims("user_123")), keyword: "signature", presented: true},
		{name: "user disabled", token: integToken(t, "user_disabled", nil),
			keyword: "not active", presented: true, usersAPI: 1},
		{name: "user unknown", token: integToken(t, "user_nobody", nil),
			keyword: "not active", presented: true, usersAPI: 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := c.path
			if path == "" {
				path = "/v0/projects"
			}
			r := g.get(t, path, "")
			auth := c.auth
			if auth == nil && c.token != "" && c.path == "" {
				auth = []string{"Bearer " + c.token}
			}
			if auth != nil {
				r.Header["Authorization"] = auth
			}

			before := api.calls.Load()
			resp, body := g.do(t, r)
			msg := checkDenial(t, resp, body, http.StatusUnauthorized, "auth_error")

			if !strings.Contains(strings.ToLower(msg), c.keyword) {
				t.Errorf("got message %q, want it to say %q", msg, c.keyword)
			}
			if c.token != "" {
				if strings.Contains(string(body), c.token) {
					t.Errorf("body holds the token: %s", body)
				}
				for name, values := range resp.Header {
					for _, v := range values {
						if strings.Contains(v, c.token) {
							t.Errorf("response header %s holds the token", name)
						}
					}
				}
			}

			challenge := resp.Header.Get("WWW-Authenticate")
			if !strings.HasPrefix(challenge, `Bearer realm="dbnl"`) {
				t.Errorf("got WWW-Authenticate %q, want Bearer realm=\"dbnl\"...", challenge)
			}
			if got := strings.Contains(challenge, `error="invalid_token"`); got != c.presented {
				t.Errorf("got WWW-Authenticate %q; error=\"invalid_token\" present %v, want %v",
					challenge, got, c.presented)
			}

			if got := api.calls.Load() - before; got != c.usersAPI {
				t.Errorf("got %d users-API calls, want %d", got, c.usersAPI)
			}
			if got := len(g.platform.seen()); got != 0 {
				t.Errorf("platform got %d requests, want 0", got)
			}
		})
	}
}

// TestIntegrationKeyConfusion runs a gateway that knows only an RSA
// public key and sends HS256 tokens signed with that key's public
// bytes: the classic attack on verifiers that let the token pick the
// algorithm. None may pass; a real RS256 token does.
func TestIntegrationKeyConfusion(t *testing.T) {
	api := newUsersAPI(t)
	rsaFile := keysFor(t)["rsa"].pemFile
	g := startIntegGateway(t, api, integOptions{
		handler: func(h map[string]any) {
			delete(h, "hmac_keys")
			h["public_keys"] = []any{map[string]any{"file": rsaFile}}
		},
	})

	pemBytes, err := os.ReadFile(rsaFile)
	if err != nil {
		t.Fatalf("reading the RSA public key: %v", err)
	}
	block, _ := pem.Decode(pemBytes)
	claims := integClaims("user_123")
	forged := map[string]string{
		"hs256 with pem":         signWithKey(t, jwt.SigningMethodHS256, pemBytes, claims),
		"hs256 with trimmed pem": signWithKey(t, jwt.SigningMethodHS256, []byte(strings.TrimSpace(string(pemBytes))), claims),
		"hs384 with pem":         signWithKey(t, jwt.SigningMethodHS384, pemBytes, claims),
		"hs256 with der":         signWithKey(t, jwt.SigningMethodHS256, block.Bytes, claims),
	}
	for name, tok := range forged {
		t.Run(name, func(t *testing.T) {
			resp, body := g.do(t, g.get(t, "/v0/projects", tok))
			msg := checkDenial(t, resp, body, http.StatusUnauthorized, "auth_error")
			if !strings.Contains(msg, "algorithm") {
				t.Errorf("got message %q, want it to name the algorithm", msg)
			}
		})
	}
	if got := len(g.platform.seen()); got != 0 {
		t.Errorf("platform got %d requests, want 0", got)
	}
	if got := api.calls.Load(); got != 0 {
		t.Errorf("got %d users-API calls, want 0", got)
	}

	resp, body := g.do(t, g.get(t, "/v0/projects", signToken(t, "RS256", claims, nil)))
	if resp.StatusCode != http.StatusOK {
		t.Errorf("got status %d for a real RS256 token, want 200; body %s", resp.StatusCode, body)
	}
}

// TestIntegrationForgedIdentityHeaders sends a valid token along with
// forged X-Dbnl-* headers in every spelling, and checks that the
// platform sees only the gateway's values. A default Caddy server
// already drops names holding '_' or '.', which CGI-style backends
// (PHP, WSGI, Rack) fold onto '-', so there dbnl_auth removes the
// hyphenated forgeries; the other cases let such names through, as an
// operator may (Caddy then drops the hyphenated spellings itself), so
// that only dbnl_auth stands between them and the platform.
func TestIntegrationForgedIdentityHeaders(t *testing.T) {
	cases := []struct {
		name string
		// allowed is the server's expected_underscore_headers or
		// expected_dot_headers, and control a header it lets through
		allowedField string
		allowed      []string
		control      string
	}{
		{name: "default server"},
		{name: "underscore headers allowed", allowedField: "expected_underscore_headers",
			allowed: []string{"x_dbnl_*", "x_custom_*"}, control: "X_Custom_Trace"},
		{name: "dot headers allowed", allowedField: "expected_dot_headers",
			allowed: []string{"x.dbnl.*", "x.custom.*"}, control: "X.Custom.Trace"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			api := newUsersAPI(t)
			opts := integOptions{}
			if c.allowedField != "" {
				opts.server = func(s map[string]any) { s[c.allowedField] = c.allowed }
			}
			g := startIntegGateway(t, api, opts)

			tok := integToken(t, "user_123", nil)
			r := g.get(t, "/v0/projects?namespace_id=ns_1", tok)
			// set as raw keys so they go on the wire as spelled
			forged := map[string][]string{
				"x-dbnl-user-id":         {"admin"},
				"X-DBNL-ORG-ROLE":        {"org_owner"},
				"X_Dbnl_User_Id":         {"admin"},
				"x_dbnl_permissions":     {"everything"},
				"X.Dbnl.Org-Role":        {"org_owner"},
				"x.dbnl.permissions":     {"everything"},
				"X-Dbnl-Permissions":     {"a", "b"},
				"X-Dbnl-Namespace-Roles": {"ns_9=namespace_owner"},
				"X-Dbnl-Token-Id":        {"forged"},
				"X-Dbnl-Extra":           {"forged"},
			}
			if c.control != "" {
				forged[c.control] = []string{"kept"}
			}
			for name, values := range forged {
				r.Header[name] = values
			}

			resp, body := g.do(t, r)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("got status %d, want 200; body %s", resp.StatusCode, body)
			}

			seen := g.platform.last(t).header
			got := normalizedDbnlHeaders(seen)
			want := map[string][]string{
				"x-dbnl-user-id":         {"user_123"},
				"x-dbnl-org-role":        {"org_reader"},
				"x-dbnl-permissions":     {"projects.read,projects.write,users.read"},
				"x-dbnl-namespace-id":    {"ns_1"},
				"x-dbnl-namespace-role":  {"namespace_writer"},
				"x-dbnl-namespace-roles": {"ns_1=namespace_writer,ns_2=namespace_reader"},
				"x-dbnl-token-id":        {integJTI},
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("platform got identity headers\n\t%s\nwant\n\t%s",
					formatHeaders(got), formatHeaders(want))
			}

			// the control: with the allow-list, such names do reach
			// the platform, so the forged ones were removed by
			// dbnl_auth and not by Caddy
			if c.control != "" {
				if v := seen.Values(c.control); len(v) != 1 || v[0] != "kept" {
					t.Errorf("platform got %s %q, want [\"kept\"]", c.control, v)
				}
			}
		})
	}
}

// TestIntegrationConcurrentColdRequests sends 50 requests of one user
// at once to a gateway with a cold cache and a slow users API: they
// must share one users-API call, and each must still carry its own
// token's id.
func TestIntegrationConcurrentColdRequests(t *testing.T) {
	api := newUsersAPI(t)
	api.setFailure(0, "", 200*time.Millisecond)
	g := startIntegGateway(t, api, integOptions{
		platform: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]string{
				"user_id":  r.Header.Get("X-Dbnl-User-Id"),
				"token_id": r.Header.Get("X-Dbnl-Token-Id"),
			})
		},
	})

	const n = 50
	tokens := make([]string, n)
	for i := range tokens {
		tokens[i] = integToken(t, "user_123", func(c jwt.MapClaims) { c["jti"] = fmt.Sprintf("tok-%d", i) })
	}

	type result struct {
		status int
		seen   map[string]string
		err    error
	}
	results := make([]result, n)
	reqs := make([]*http.Request, n)
	for i := range reqs {
		reqs[i] = g.get(t, "/v0/projects", tokens[i])
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			resp, err := g.client.Do(reqs[i])
			if err != nil {
				results[i].err = err
				return
			}
			defer resp.Body.Close()
			results[i].status = resp.StatusCode
			results[i].err = json.NewDecoder(resp.Body).Decode(&results[i].seen)
		}()
	}
	close(start)
	wg.Wait()

	for i, res := range results {
		switch {
		case res.err != nil:
			t.Errorf("request %d: %v", i, res.err)
		case res.status != http.StatusOK:
			t.Errorf("request %d: got status %d, want 200", i, res.status)
		case res.seen["user_id"] != "user_123" || res.seen["token_id"] != fmt.Sprintf("tok-%d", i):
			t.Errorf("request %d: platform saw %v, want user_123 and tok-%d", i, res.seen, i)
		}
	}
	if got := api.calls.Load(); got != 1 {
		t.Errorf("got %d users-API calls, want 1", got)
	}
}

// TestIntegrationFailedTokenMakesNoUsersAPICall checks that tokens
// failing verification never cost a users-API call, while a good one
// does.
func TestIntegrationFailedTokenMakesNoUsersAPICall(t *testing.T) {
	api := newUsersAPI(t)
	g := startIntegGateway(t, api, integOptions{})

	now := time.Now()
	bad := []string{
		signWithKey(t, jwt.SigningMethodHS256, []byte("another-secret-0123456789abcdef012345"),
			integClaims("user_123")),
		integToken(t, "user_123", func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Hour).Unix() }),
		integToken(t, "user_123", func(c jwt.MapClaims) { c["aud"] = "other-api" }),
		integToken(t, "user_123", func(c jwt.MapClaims) { delete(c, "exp") }),
	}
	for i, tok := range bad {
		resp, body := g.do(t, g.get(t, "/v0/projects", tok))
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("bad token %d: got status %d, want 401; body %s", i, resp.StatusCode, body)
		}
	}
	if got := api.calls.Load(); got != 0 {
		t.Fatalf("got %d users-API calls after bad tokens, want 0", got)
	}

	good := integToken(t, "user_123", nil)
	resp, body := g.do(t, g.get(t, "/v0/projects", good))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("got status %d for a good token, want 200; body %s", resp.StatusCode, body)
	}
	if got := api.calls.Load(); got != 1 {
		t.Errorf("got %d users-API calls after a good token, want 1", got)
	}
	// the lookup is made with the user's own credentials
	api.mu.Lock()
	lastAuth := api.lastAuth
	api.mu.Unlock()
	if lastAuth != "Bearer "+good {
		t.Errorf("users API got Authorization %q, want the client's bearer token", lastAuth)
	}
}

// TestIntegrationRoleChangeWithinTTL changes a user's role in the
// users API and checks that the platform sees the new role once the
// 1s permissions_ttl has passed, and not from a request made well
// inside it.
func TestIntegrationRoleChangeWithinTTL(t *testing.T) {
	api := newUsersAPI(t)
	g := startIntegGateway(t, api, integOptions{
		handler: func(h map[string]any) { h["permissions_ttl"] = "1s" },
	})
	tok := integToken(t, "user_123", nil)

	role := func() (string, string) {
		t.Helper()
		resp, body := g.do(t, g.get(t, "/v0/projects", tok))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("got status %d, want 200; body %s", resp.StatusCode, body)
		}
		h := g.platform.last(t).header
		return h.Get("X-Dbnl-Org-Role"), h.Get("X-Dbnl-Permissions")
	}

	start := time.Now()
	if got, _ := role(); got != "org_reader" {
		t.Fatalf("got role %q before the change, want org_reader", got)
	}

	api.set(&Permissions{
		UserID:         "user_123",
		OrgRole:        "org_admin",
		OrgPermissions: []string{"users.write", "users.read"},
	})

	// the entry was cached after start, so it is fresh until at least
	// start+1s; only a request finished before then is checked
	got, _ := role()
	if time.Since(start) < 900*time.Millisecond && got != "org_reader" {
		t.Errorf("got role %q inside the TTL, want the cached org_reader", got)
	}

	// TTL plus a generous margin
	deadline := start.Add(3 * time.Second)
	for got != "org_admin" {
		if time.Now().After(deadline) {
			t.Fatalf("got role %q %v after the change, want org_admin within 1s TTL",
				got, time.Since(start).Round(time.Millisecond))
		}
		time.Sleep(50 * time.Millisecond)
		got, _ = role()
	}
	if _, perms := role(); perms != "users.read,users.write" {
		t.Errorf("got permissions %q, want users.read,users.write", perms)
	}
	// the requests in between were answered from the cache
	if got := api.calls.Load(); got != 2 {
		t.Errorf("got %d users-API calls, want 2", got)
	}
}

// TestIntegrationUsersAPIFailures breaks the users API in each way a
// lookup can fail and checks for a 503 auth_unavailable with
// Retry-After, nothing reaching the platform, and, once the users API
// recovers, that the failure was not cached.
func TestIntegrationUsersAPIFailures(t *testing.T) {
	hugeBody := `{"user_id":"user_123","org_role":"org_reader","org_permissions":[` +
		strings.Repeat(`"projects.read",`, 100_000) + `"users.read"]}`
	cases := []struct {
		name     string
		breakAPI func(api *usersAPI)
		// down: the users API stays down
		down bool
	}{
		{name: "down", breakAPI: func(api *usersAPI) { api.Close() }, down: true},
		{name: "slow", breakAPI: func(api *usersAPI) { api.setFailure(0, "", 3*time.Second) }},
		{name: "status 500", breakAPI: func(api *usersAPI) {
			api.setFailure(http.StatusInternalServerError, "", 0)
		}},
		{name: "not json", breakAPI: func(api *usersAPI) { api.setFailure(0, "<html>oops</html>", 0) }},
		{name: "wrong user_id", breakAPI: func(api *usersAPI) {
			api.setFailure(0, `{"user_id":"user_999","org_role":"org_admin"}`, 0)
		}},
		{name: "huge body", breakAPI: func(api *usersAPI) { api.setFailure(0, hugeBody, 0) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			api := newUsersAPI(t)
			g := startIntegGateway(t, api, integOptions{
				handler: func(h map[string]any) { h["permissions_timeout"] = "300ms" },
			})
			c.breakAPI(api)
			tok := integToken(t, "user_123", nil)

			start := time.Now()
			resp, body := g.do(t, g.get(t, "/v0/projects", tok))
			elapsed := time.Since(start)
			checkDenial(t, resp, body, http.StatusServiceUnavailable, "auth_unavailable")
			if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || n < 1 {
				t.Errorf("got Retry-After %q, want a positive number of seconds",
					resp.Header.Get("Retry-After"))
			}
			if got := len(g.platform.seen()); got != 0 {
				t.Errorf("platform got %d requests, want 0", got)
			}
			if c.name == "slow" {
				// the stub answers after 3s; only the 300ms timeout
				// can end the call sooner
				if elapsed < 250*time.Millisecond || elapsed > 5*time.Second {
					t.Errorf("got the 503 after %v, want it after the 300ms timeout and well under 5s", elapsed)
				}
			}

			if c.down {
				return
			}
			api.setFailure(0, "", 0)
			resp, body = g.do(t, g.get(t, "/v0/projects", tok))
			if resp.StatusCode != http.StatusOK {
				t.Errorf("got status %d after the users API recovered, want 200; body %s",
					resp.StatusCode, body)
			}
		})
	}
}

// TestIntegrationStreaming passes a 32 MiB upload and a 32 MiB download
// through the gateway and checks that they arrive byte for byte and
// are streamed, not buffered: the platform reads the upload's first
// MiB while the client is still holding back the rest, and the client
// reads the download's first bytes while the platform is still
// holding back the rest.
func TestIntegrationStreaming(t *testing.T) {
	const size = 32 << 20
	payload := make([]byte, size)
	if _, err := rand.Read(payload); err != nil {
		t.Fatalf("making the payload: %v", err)
	}
	wantSum := sha256.Sum256(payload)

	// upload: closed when the platform has read a MiB
	uploadFirstMiB := make(chan struct{})
	var uploadOnce sync.Once
	// download: closed when the client has read its first bytes
	downloadFirstBytes := make(chan struct{})
	var downloadOnce sync.Once
	var downloadTimedOut atomic.Bool

	api := newUsersAPI(t)
	g := startIntegGateway(t, api, integOptions{
		platform: func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/upload":
				h := sha256.New()
				buf := make([]byte, 64<<10)
				var total int
				for {
					n, err := r.Body.Read(buf)
					h.Write(buf[:n])
					total += n
					if total >= 1<<20 {
						uploadOnce.Do(func() { close(uploadFirstMiB) })
					}
					if err == io.EOF {
						break
					}
					if err != nil {
						http.Error(w, err.Error(), http.StatusBadRequest)
						return
					}
				}
				w.Header().Set("Content-Type", "application/json")
				_ = json.NewEncoder(w).Encode(map[string]any{
					"bytes": total, "sha256": hex.EncodeToString(h.Sum(nil)),
				})

			case "/download":
				w.Header().Set("Content-Type", "application/octet-stream")
				w.Header().Set("Content-Length", strconv.Itoa(size))
				_, _ = w.Write(payload[:1<<20])
				_ = http.NewResponseController(w).Flush()
				select {
				case <-downloadFirstBytes:
				case <-time.After(10 * time.Second):
					downloadTimedOut.Store(true)
				}
				_, _ = w.Write(payload[1<<20:])
			}
		},
	})
	// a failed test must not leave the platform waiting (runs before
	// the gateway stops)
	t.Cleanup(func() { downloadOnce.Do(func() { close(downloadFirstBytes) }) })
	tok := integToken(t, "user_123", nil)

	t.Run("upload", func(t *testing.T) {
		pr, pw := io.Pipe()
		streamed := false
		written := make(chan error, 1)
		go func() {
			// send 2 MiB, then hold the rest back until the platform
			// has read one
			if _, err := pw.Write(payload[:2<<20]); err != nil {
				written <- err
				return
			}
			select {
			case <-uploadFirstMiB:
				streamed = true
			case <-time.After(10 * time.Second):
			}
			_, err := pw.Write(payload[2<<20:])
			pw.CloseWithError(err)
			written <- err
		}()

		r, err := http.NewRequest(http.MethodPost, g.url+"/upload", pr)
		if err != nil {
			t.Fatalf("building request: %v", err)
		}
		r.Header.Set("Authorization", "Bearer "+tok)
		r.Header.Set("Content-Type", "application/octet-stream")
		resp, body := g.do(t, r)
		pr.Close()
		if err := <-written; err != nil {
			t.Fatalf("writing the upload: %v", err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("got status %d, want 200; body %s", resp.StatusCode, body)
		}
		if !streamed {
			t.Errorf("platform had not read 1 MiB after the client sent 2 MiB and waited 10s: the gateway buffers uploads")
		}
		var got struct {
			Bytes  int    `json:"bytes"`
			SHA256 string `json:"sha256"`
		}
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("decoding %q: %v", body, err)
		}
		if got.Bytes != size || got.SHA256 != hex.EncodeToString(wantSum[:]) {
			t.Errorf("platform got %d bytes with SHA-256 %s, want %d bytes with %x",
				got.Bytes, got.SHA256, size, wantSum)
		}
	})

	t.Run("download", func(t *testing.T) {
		resp, err := g.client.Do(g.get(t, "/download", tok))
		if err != nil {
			t.Fatalf("GET /download: %v", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("got status %d, want 200", resp.StatusCode)
		}

		// the platform has sent 1 MiB and waits; read part of it
		h := sha256.New()
		head := make([]byte, 256<<10)
		if _, err := io.ReadFull(resp.Body, head); err != nil {
			t.Fatalf("reading the first bytes: %v", err)
		}
		firstBytesEarly := !downloadTimedOut.Load()
		downloadOnce.Do(func() { close(downloadFirstBytes) })
		h.Write(head)
		n, err := io.Copy(h, resp.Body)
		if err != nil {
			t.Fatalf("reading the download: %v", err)
		}
		if !firstBytesEarly || downloadTimedOut.Load() {
			t.Errorf("client got no bytes until the platform gave up waiting: the gateway buffers downloads")
		}
		if got := int(n) + len(head); got != size {
			t.Errorf("got %d bytes, want %d", got, size)
		}
		if got := h.Sum(nil); hex.EncodeToString(got) != hex.EncodeToString(wantSum[:]) {
			t.Errorf("got SHA-256 %x, want %x", got, wantSum)
		}
	})
}

// TestIntegrationPlaceholdersOverEarlierMap checks that a map directive
// ahead of dbnl_auth, writing client-controlled values to the dbnl
// placeholders, cannot stand in for the identity dbnl_auth found: not in
// the headers the proxy sends, not in the response and not in the
// access log.
func TestIntegrationPlaceholdersOverEarlierMap(t *testing.T) {
	api := newUsersAPI(t)
	g := startIntegGateway(t, api, integOptions{
		before: []map[string]any{{
			"handler": "map",
			"source":  "{http.request.header.X-Who}",
			"destinations": []string{
				"{dbnl.user_id}", "{dbnl.namespace_id}", "{dbnl.permissions}", "{http.auth.user.id}",
			},
			"defaults": []string{"anonymous", "none", "everything", "anonymous"},
		}, {"handler": "log_append", "key": "who", "value": "{dbnl.user_id}"}},
		after: []map[string]any{{
			"handler": "headers",
			"response": map[string]any{"set": map[string]any{
				"X-Who-Namespace": []string{"{dbnl.namespace_id}"},
			}},
		}},
		proxyHeaders: map[string]any{"request": map[string]any{"set": map[string]any{
			"X-Seen-User":        []string{"{dbnl.user_id}"},
			"X-Seen-Permissions": []string{"{dbnl.permissions}"},
			"X-Seen-Auth-User":   []string{"{http.auth.user.id}"},
		}}},
	})

	r := g.get(t, "/v0/projects?namespace_id=ns_1", integToken(t, "user_123", nil))
	r.Header.Set("X-Who", "u_evil")
	resp, body := g.do(t, r)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("got status %d, want 200; body %s", resp.StatusCode, body)
	}
	if got := resp.Header.Get("X-Who-Namespace"); got != "ns_1" {
		t.Errorf("got {dbnl.namespace_id} %q in the response, want ns_1", got)
	}
	seen := g.platform.last(t).header
	for name, want := range map[string]string{
		"X-Seen-User":        "user_123",
		"X-Seen-Permissions": "projects.read,projects.write,users.read",
		"X-Seen-Auth-User":   "user_123",
	} {
		if got := seen.Get(name); got != want {
			t.Errorf("platform got %s %q, want %q", name, got, want)
		}
	}
	lines, raw := readLogLines(t, g.accessLog, 1)
	if got := lines[0]["who"]; got != "user_123" {
		t.Errorf("got who %v in the access log, want user_123; log\n%s", got, raw)
	}
}

// TestIntegrationPlaceholdersAndAccessLog checks that the handler's
// placeholders are usable by other handlers (headers, reverse_proxy,
// log_append) and that Caddy's access log gets the user id, while
// neither it nor Caddy's other logs ever hold a token.
func TestIntegrationPlaceholdersAndAccessLog(t *testing.T) {
	api := newUsersAPI(t)
	g := startIntegGateway(t, api, integOptions{
		before: []map[string]any{
			// log_append evaluates after the handlers that follow it
			{"handler": "log_append", "key": "dbnl_denial", "value": "{dbnl.denial}"},
			{"handler": "log_append", "key": "dbnl_token_fingerprint", "value": "{dbnl.token_fingerprint}"},
		},
		after: []map[string]any{{
			"handler": "headers",
			"response": map[string]any{"set": map[string]any{
				"X-Token-Fingerprint": []string{"{dbnl.token_fingerprint}"},
				"X-Org-Role":          []string{"{dbnl.org_role}"},
			}},
		}},
		proxyHeaders: map[string]any{"request": map[string]any{"set": map[string]any{
			"X-Seen-User":        []string{"{dbnl.user_id}"},
			"X-Seen-Org-Role":    []string{"{dbnl.org_role}"},
			"X-Seen-Permissions": []string{"{dbnl.permissions}"},
			"X-Seen-Auth-User":   []string{"{http.auth.user.id}"},
		}}},
	})
	fingerprint := func(tok string) string {
		sum := sha256.Sum256([]byte(tok))
		return hex.EncodeToString(sum[:])[:12]
	}

	// an allowed request
	tok := integToken(t, "user_123", nil)
	resp, body := g.do(t, g.get(t, "/v0/projects", tok))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("got status %d, want 200; body %s", resp.StatusCode, body)
	}
	if got, want := resp.Header.Get("X-Token-Fingerprint"), fingerprint(tok); got != want {
		t.Errorf("got X-Token-Fingerprint %q, want %q", got, want)
	}
	if got := resp.Header.Get("X-Org-Role"); got != "org_reader" {
		t.Errorf("got X-Org-Role %q, want org_reader", got)
	}
	seen := g.platform.last(t).header
	for name, want := range map[string]string{
		"X-Seen-User":        "user_123",
		"X-Seen-Org-Role":    "org_reader",
		"X-Seen-Permissions": "users.read",
		"X-Seen-Auth-User":   "user_123",
	} {
		if got := seen.Get(name); got != want {
			t.Errorf("platform got %s %q, want %q", name, got, want)
		}
	}

	// a denied one, with a token that fails its signature check
	badTok := signWithKey(t, jwt.SigningMethodHS256, []byte("another-secret-0123456789abcdef012345"),
		integClaims("user_123"))
	resp, body = g.do(t, g.get(t, "/v0/projects", badTok))
	checkDenial(t, resp, body, http.StatusUnauthorized, "auth_error")

	lines, raw := readLogLines(t, g.accessLog, 2)
	byStatus := make(map[float64]map[string]any)
	for _, l := range lines {
		if s, ok := l["status"].(float64); ok {
			byStatus[s] = l
		}
	}
	allowed, denied := byStatus[200], byStatus[401]
	if allowed == nil || denied == nil {
		t.Fatalf("got access log\n%s\nwant a 200 and a 401 entry", raw)
	}
	if got := allowed["user_id"]; got != "user_123" {
		t.Errorf("got user_id %v in the 200 entry, want user_123", got)
	}
	if got := allowed["dbnl_token_fingerprint"]; got != fingerprint(tok) {
		t.Errorf("got dbnl_token_fingerprint %v in the 200 entry, want %s", got, fingerprint(tok))
	}
	if got := denied["user_id"]; got != "" {
		t.Errorf("got user_id %v in the 401 entry, want empty", got)
	}
	if got := denied["dbnl_denial"]; got != "bad_signature" {
		t.Errorf("got dbnl_denial %v in the 401 entry, want bad_signature", got)
	}
	if got := denied["dbnl_token_fingerprint"]; got != fingerprint(badTok) {
		t.Errorf("got dbnl_token_fingerprint %v in the 401 entry, want %s", got, fingerprint(badTok))
	}
	for _, l := range []map[string]any{allowed, denied} {
		req, _ := l["request"].(map[string]any)
		headers, _ := req["headers"].(map[string]any)
		if got := fmt.Sprint(headers["Authorization"]); got != "[REDACTED]" {
			t.Errorf("got logged Authorization %s, want [REDACTED]", got)
		}
	}

	caddyLog, err := os.ReadFile(g.caddyLog)
	if err != nil {
		t.Fatalf("reading the caddy log: %v", err)
	}
	for _, tk := range []string{tok, badTok} {
		signature := tk[strings.LastIndex(tk, ".")+1:]
		for name, log := range map[string][]byte{"access log": raw, "caddy log": caddyLog} {
			if strings.Contains(string(log), signature) {
				t.Errorf("the %s holds a token", name)
			}
		}
	}
}

// TestIntegrationKeepAliveAfterDenial sends denied and allowed requests
// alternately over a client limited to one connection and checks that
// every request after the first reuses it: a denial must not cost the
// client its connection.
func TestIntegrationKeepAliveAfterDenial(t *testing.T) {
	api := newUsersAPI(t)
	g := startIntegGateway(t, api, integOptions{})
	transport := &http.Transport{Proxy: nil, MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}
	client := &http.Client{Transport: transport, Timeout: 10 * time.Second}
	t.Cleanup(transport.CloseIdleConnections)

	good := integToken(t, "user_123", nil)
	bad := signWithKey(t, jwt.SigningMethodHS256, []byte("another-secret-0123456789abcdef012345"),
		integClaims("user_123"))
	steps := []struct {
		token  string
		status int
	}{
		{"", http.StatusUnauthorized},
		{good, http.StatusOK},
		{bad, http.StatusUnauthorized},
		{good, http.StatusOK},
		{"not-a-jwt", http.StatusUnauthorized},
		{good, http.StatusOK},
	}
	var firstConn string
	for i, s := range steps {
		var info httptrace.GotConnInfo
		trace := &httptrace.ClientTrace{GotConn: func(ci httptrace.GotConnInfo) { info = ci }}
		r := g.get(t, "/v0/projects", s.token)
		r = r.WithContext(httptrace.WithClientTrace(r.Context(), trace))
		resp, body := integDo(t, client, r)
		if resp.StatusCode != s.status {
			t.Fatalf("request %d: got status %d, want %d; body %s", i, resp.StatusCode, s.status, body)
		}
		if info.Conn == nil {
			t.Fatalf("request %d: got no connection from the trace", i)
		}
		local := info.Conn.LocalAddr().String()
		if i == 0 {
			firstConn = local
			continue
		}
		if !info.Reused || local != firstConn {
			t.Errorf("request %d: got connection %s reused %v, want %s reused",
				i, local, info.Reused, firstConn)
		}
	}
}

// TestIntegrationCaddyfile adapts a Caddyfile site with dbnl_auth and
// reverse_proxy, written in the wrong order and with no order line,
// and checks that authentication still runs first and that an
// {env.*} secret is expanded.
func TestIntegrationCaddyfile(t *testing.T) {
	t.Setenv("DBNL_INTEG_SECRET", testSecret)
	api := newUsersAPI(t)
	platform := newIntegPlatform(t, nil)
	src := fmt.Sprintf(`http://127.0.0.1 {
	reverse_proxy %s
	dbnl_auth {
		hmac_key {env.DBNL_INTEG_SECRET} k1
		public_key %s
		issuer dbnl
		audience dbnl-api
		permissions_url %s/v0/users/{user}/permissions
		permissions_ttl 1s
	}
}
`, platform.Listener.Addr(), keysFor(t)["ed25519"].pemFile, api.URL)

	server := adaptIntegCaddyfile(t, src)
	server["listen"] = []string{"127.0.0.1:0"}
	server["automatic_https"] = map[string]any{"disable": true}
	g := &integGateway{platform: platform, api: api}
	g.url = loadIntegCaddy(t, server, g)

	resp, body := g.do(t, g.get(t, "/v0/projects", ""))
	checkDenial(t, resp, body, http.StatusUnauthorized, "auth_error")
	if got := len(platform.seen()); got != 0 {
		t.Fatalf("platform got %d requests without a token, want 0: reverse_proxy ran first", got)
	}

	for _, alg := range []string{"HS256", "EdDSA"} {
		tok := signToken(t, alg, integClaims("user_123"), nil)
		resp, body = g.do(t, g.get(t, "/v0/projects", tok))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: got status %d, want 200; body %s", alg, resp.StatusCode, body)
		}
		if got := platform.last(t).header.Get("X-Dbnl-User-Id"); got != "user_123" {
			t.Errorf("%s: platform got X-Dbnl-User-Id %q, want user_123", alg, got)
		}
	}
}

// adaptIntegCaddyfile adapts src and returns its only HTTP server.
func adaptIntegCaddyfile(t *testing.T, src string) map[string]any {
	t.Helper()
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(src), nil)
	if err != nil {
		t.Fatalf("adapting the Caddyfile: %v", err)
	}
	var cfg struct {
		Apps struct {
			HTTP struct {
				Servers map[string]map[string]any `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatalf("decoding the adapted config: %v", err)
	}
	if n := len(cfg.Apps.HTTP.Servers); n != 1 {
		t.Fatalf("got %d servers in the adapted config, want 1:\n%s", n, out)
	}
	for _, s := range cfg.Apps.HTTP.Servers {
		return s
	}
	return nil
}

// TestIntegrationConfigErrorsNameTheField runs caddy.Validate, as
// `caddy validate` does, on configs with one mistake each, and the
// Caddyfile adapter on Caddyfiles with one mistake each, and checks
// that the error names the field at fault.
func TestIntegrationConfigErrorsNameTheField(t *testing.T) {
	dir := t.TempDir()
	writePEM := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatalf("writing %s: %v", name, err)
		}
		return path
	}
	pkix := func(pub any) []byte {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatalf("encoding %T: %v", pub, err)
		}
		return der
	}

	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatalf("generating a P-224 key: %v", err)
	}
	x25519, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("generating an X25519 key: %v", err)
	}
	_, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("generating an Ed25519 key: %v", err)
	}
	edPrivDER, err := x509.MarshalPKCS8PrivateKey(edPriv)
	if err != nil {
		t.Fatalf("encoding the Ed25519 private key: %v", err)
	}
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatalf("generating an RSA key: %v", err)
	}
	p224File := writePEM("p224.pem", "PUBLIC KEY", pkix(&p224.PublicKey))
	x25519File := writePEM("x25519.pem", "PUBLIC KEY", pkix(x25519.PublicKey()))
	privateFile := writePEM("private.pem", "PRIVATE KEY", edPrivDER)
	rsa1024File := writePEM("rsa1024.pem", "PUBLIC KEY", pkix(&rsa1024.PublicKey))
	notPEMFile := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEMFile, []byte("not a key\n"), 0o600); err != nil {
		t.Fatalf("writing not.pem: %v", err)
	}
	keys := keysFor(t)
	publicKeys := func(files ...string) func(map[string]any) {
		return func(h map[string]any) {
			var list []any
			for _, f := range files {
				list = append(list, map[string]any{"file": f})
			}
			h["public_keys"] = list
		}
	}
	set := func(field string, v any) func(map[string]any) {
		return func(h map[string]any) { h[field] = v }
	}

	t.Run("json", func(t *testing.T) {
		cases := []struct {
			name string
			edit func(map[string]any)
			// want are the strings the error must hold; none: valid
			want []string
			// secret must not appear in the error
			secret string
		}{
			{name: "valid", edit: nil},
			{name: "no key", edit: func(h map[string]any) {
				delete(h, "hmac_keys")
				delete(h, "public_keys")
			}, want: []string{"hmac_key", "public_key"}},
			{name: "missing pem file", edit: publicKeys(filepath.Join(dir, "missing.pem")),
				want: []string{"public_keys[0]", "missing.pem"}},
			{name: "pem path is a directory", edit: publicKeys(dir),
				want: []string{"public_keys[0]", "is a directory"}},
			{name: "pem is not a pem", edit: publicKeys(notPEMFile),
				want: []string{"public_keys[0]", "PEM"}},
			{name: "p-224 key", edit: publicKeys(p224File), want: []string{"public_keys[0]", "P-224"}},
			{name: "x25519 key", edit: publicKeys(x25519File), want: []string{"public_keys[0]", "unsupported"}},
			{name: "private key", edit: publicKeys(privateFile), want: []string{"public_keys[0]", "PRIVATE KEY"}},
			{name: "1024-bit rsa key", edit: publicKeys(rsa1024File), want: []string{"public_keys[0]", "1024"}},
			{name: "second key bad", edit: publicKeys(keys["rsa"].pemFile, p224File),
				want: []string{"public_keys[1]"}},
			{name: "short hmac secret", edit: set("hmac_keys", []any{map[string]any{"secret": "too-short"}}),
				want: []string{"hmac_keys[0]"}, secret: "too-short"},
			{name: "unset env secret", edit: set("hmac_keys", []any{map[string]any{"secret": "{env.DBNL_INTEG_UNSET_SECRET}"}}),
				want: []string{"hmac_keys[0]", "environment variable"}},
			{name: "duplicate kid", edit: set("hmac_keys", []any{
				map[string]any{"secret": testSecret, "kid": "k1"},
				map[string]any{"secret": testSecret + "-2", "kid": "k1"},
			}), want: []string{"kid", "k1"}},
			{name: "missing permissions_url", edit: func(h map[string]any) { delete(h, "permissions_url") },
				want: []string{"permissions_url"}},
			{name: "ftp permissions_url", edit: set("permissions_url", "ftp://127.0.0.1:1/v0/users/{user}/permissions"),
				want: []string{"permissions_url"}},
			{name: "relative permissions_url", edit: set("permissions_url", "/v0/users/{user}/permissions"),
				want: []string{"permissions_url"}},
			{name: "credentials in permissions_url",
				edit:   set("permissions_url", "http://admin:hunter2@127.0.0.1:1/v0/users/{user}/permissions"),
				want:   []string{"permissions_url"},
				secret: "hunter2"},
			{name: "algorithm none", edit: set("algorithms", []string{"none"}), want: []string{"algorithms"}},
			{name: "algorithm without a key", edit: func(h map[string]any) {
				delete(h, "public_keys")
				h["algorithms"] = []string{"RS256"}
			}, want: []string{"algorithms", "RS256"}},
			{name: "negative leeway", edit: set("leeway", "-1s"), want: []string{"leeway"}},
			{name: "negative permissions_ttl", edit: set("permissions_ttl", "-1s"), want: []string{"permissions_ttl"}},
			{name: "negative max_token_bytes", edit: set("max_token_bytes", -1), want: []string{"max_token_bytes"}},
			{name: "bad header_prefix", edit: set("header_prefix", "X Dbnl "), want: []string{"header_prefix"}},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				handler := map[string]any{
					"handler":         "dbnl_auth",
					"hmac_keys":       []any{map[string]any{"secret": testSecret}},
					"public_keys":     []any{map[string]any{"file": keys["rsa"].pemFile}},
					"permissions_url": "http://127.0.0.1:1/v0/users/{user}/permissions",
				}
				if c.edit != nil {
					c.edit(handler)
				}
				err := validateIntegConfig(t, dir, handler)
				if len(c.want) == 0 {
					if err != nil {
						t.Fatalf("got error %v, want none", err)
					}
					return
				}
				if err == nil {
					t.Fatalf("got no error, want one naming %q", c.want)
				}
				for _, w := range c.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("got error %q, want it to hold %q", err, w)
					}
				}
				if c.secret != "" && strings.Contains(err.Error(), c.secret) {
					t.Errorf("got error %q, want it without the secret", err)
				}
			})
		}
	})

	t.Run("caddyfile", func(t *testing.T) {
		cases := []struct {
			name string
			line string
			// want are the strings the error must hold; none: valid
			want []string
		}{
			{name: "valid", line: "permissions_ttl 10s"},
			{name: "invalid permissions_ttl", line: "permissions_ttl fivesec",
				want: []string{"permissions_ttl", "fivesec"}},
			{name: "invalid permissions_timeout", line: "permissions_timeout 2",
				want: []string{"permissions_timeout"}},
			{name: "invalid leeway", line: "leeway soon", want: []string{"leeway", "soon"}},
			{name: "negative max_token_bytes", line: "max_token_bytes -1",
				want: []string{"max_token_bytes"}},
			{name: "invalid permissions_cache_size", line: "permissions_cache_size lots",
				want: []string{"permissions_cache_size"}},
			{name: "hmac_key without secret", line: "hmac_key", want: []string{"hmac_key"}},
			{name: "unknown subdirective", line: "frobnicate on", want: []string{"frobnicate"}},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				src := fmt.Sprintf(`http://127.0.0.1:1 {
	dbnl_auth {
		hmac_key %s
		permissions_url http://127.0.0.1:1/v0/users/{user}/permissions
		%s
	}
}
`, testSecret, c.line)
				_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(src), nil)
				if len(c.want) == 0 {
					if err != nil {
						t.Fatalf("got error %v, want none", err)
					}
					return
				}
				if err == nil {
					t.Fatalf("got no error, want one naming %q", c.want)
				}
				for _, w := range c.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("got error %q, want it to hold %q", err, w)
					}
				}
			})
		}
	})
}

// validateIntegConfig runs caddy.Validate on a config whose only HTTP
// server has handler as its only handler.
func validateIntegConfig(t *testing.T, dir string, handler map[string]any) error {
	t.Helper()
	cfgJSON, err := json.Marshal(map[string]any{
		"admin":   map[string]any{"disabled": true, "config": map[string]any{"persist": false}},
		"storage": map[string]any{"module": "file_system", "root": filepath.Join(dir, "storage")},
		// keep Caddy's provisioning chatter off the test output
		"logging": map[string]any{"logs": map[string]any{
			"default": map[string]any{"writer": map[string]any{"output": "discard"}},
		}},
		"apps": map[string]any{"http": map[string]any{"servers": map[string]any{"integ": map[string]any{
			"listen":          []string{"127.0.0.1:0"},
			"automatic_https": map[string]any{"disable": true},
			"routes":          []any{map[string]any{"handle": []any{handler}}},
		}}}},
	})
	if err != nil {
		t.Fatalf("encoding config: %v", err)
	}
	var cfg caddy.Config
	if err := caddy.StrictUnmarshalJSON(cfgJSON, &cfg); err != nil {
		t.Fatalf("decoding config: %v", err)
	}

	// Validate swaps process-wide state (the default storage), so it
	// must not overlap a running gateway
	integMu.Lock()
	defer integMu.Unlock()
	return caddy.Validate(&cfg)
}
