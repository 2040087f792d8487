package dbnlauth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"
)

// testSecret is the HMAC secret of the test handlers.
const testSecret = "test-secret-0123456789abcdef0123456789"

// testNow is the fixed clock of unit tests.
var testNow = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// testKey is a key pair for one algorithm family.
type testKey struct {
	private crypto.Signer // nil for HMAC
	pemFile string        // public key PEM, nil for HMAC
}

var (
	testKeysOnce sync.Once
	testKeys     map[string]testKey // by key type: rsa, p256, p384, p521, ed25519
	testKeysDir  string
)

// keysFor returns test keys, generated once per test binary and written
// as PEM files.
func keysFor(t testing.TB) map[string]testKey {
	t.Helper()
	testKeysOnce.Do(func() {
		dir, err := os.MkdirTemp("", "dbnlauth-keys-")
		if err != nil {
			panic(err)
		}
		testKeysDir = dir
		testKeys = make(map[string]testKey)
		gen := map[string]func() (crypto.Signer, error){
			"rsa":  func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, 2048) },
			"p256": func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) },
			"p384": func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P384(), rand.Reader) },
			"p521": func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P521(), rand.Reader) },
			"ed25519": func() (crypto.Signer, error) {
				_, k, err := ed25519.GenerateKey(rand.Reader)
				return k, err
			},
		}
		for name, g := range gen {
			k, err := g()
			if err != nil {
				panic(err)
			}
			der, err := x509.MarshalPKIXPublicKey(k.Public())
			if err != nil {
				panic(err)
			}
			path := filepath.Join(dir, name+".pem")
			data := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
			if err := os.WriteFile(path, data, 0o600); err != nil {
				panic(err)
			}
			testKeys[name] = testKey{private: k, pemFile: path}
		}
	})
	return testKeys
}

// keyTypeFor names the test key type that signs alg.
func keyTypeFor(alg string) string {
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		return "rsa"
	case "ES256":
		return "p256"
	case "ES384":
		return "p384"
	case "ES512":
		return "p521"
	case "EdDSA":
		return "ed25519"
	}
	return "hmac"
}

// signToken signs claims with alg, using the test key of that
// algorithm's family, and header fields extra.
func signToken(t testing.TB, alg string, claims jwt.MapClaims, extra map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.GetSigningMethod(alg), claims)
	for k, v := range extra {
		tok.Header[k] = v
	}
	var key any = []byte(testSecret)
	if kt := keyTypeFor(alg); kt != "hmac" {
		key = keysFor(t)[kt].private
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("signing %s token: %v", alg, err)
	}
	return s
}

// validClaims returns claims that pass the test handlers' checks.
func validClaims(user string) jwt.MapClaims {
	return jwt.MapClaims{
		"sub": user,
		"iss": "dbnl",
		"aud": "dbnl-api",
		"iat": testNow.Add(-time.Minute).Unix(),
		"exp": testNow.Add(time.Hour).Unix(),
		"jti": "tok-1",
	}
}

// usersAPI is a stub users API that counts its calls.
type usersAPI struct {
	*httptest.Server
	calls atomic.Int64

	mu    sync.Mutex
	users map[string]*Permissions
	// status, if set, is returned instead of an answer.
	status int
	// body, if set, is returned as the raw answer.
	body string
	// delay is slept before answering.
	delay time.Duration
	// lastAuth is the Authorization header of the last call.
	lastAuth string
}

func newUsersAPI(t testing.TB) *usersAPI {
	t.Helper()
	u := &usersAPI{users: map[string]*Permissions{
		"user_123": {
			UserID:         "user_123",
			OrgRole:        "org_reader",
			OrgPermissions: []string{"users.read"},
			Namespaces: []NamespaceGrant{{
				NamespaceID: "ns_1", Role: "namespace_writer",
				Permissions: []string{"projects.write", "projects.read"},
			}, {
				NamespaceID: "ns_2", Role: "namespace_reader",
				Permissions: []string{"projects.read"},
			}},
		},
		"user_disabled": {UserID: "user_disabled", OrgRole: "org_reader", Disabled: true},
	}}
	u.Server = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.Close)
	return u
}

func (u *usersAPI) serve(w http.ResponseWriter, r *http.Request) {
	u.calls.Add(1)
	u.mu.Lock()
	u.lastAuth = r.Header.Get("Authorization")
	status, body, delay := u.status, u.body, u.delay
	// the stub serves .../users/{user}/permissions
	p := u.users[filepath.Base(filepath.Dir(r.URL.Path))]
	var data []byte
	if p != nil {
		data, _ = json.Marshal(p)
	}
	u.mu.Unlock()

	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	switch {
	case status != 0:
		w.WriteHeader(status)
	case body != "":
		_, _ = w.Write([]byte(body))
	case p == nil:
		http.NotFound(w, r)
	default:
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(data)
	}
}

// set replaces a user's permissions.
func (u *usersAPI) set(p *Permissions) {
	u.mu.Lock()
	u.users[p.UserID] = p
	u.mu.Unlock()
}

// setFailure makes the stub answer with status, a raw body or a delay.
func (u *usersAPI) setFailure(status int, body string, delay time.Duration) {
	u.mu.Lock()
	u.status, u.body, u.delay = status, body, delay
	u.mu.Unlock()
}

// newTestHandler provisions a handler that accepts every test key, on
// the fixed clock, asking api. configure, if not nil, changes the
// config before provisioning.
func newTestHandler(t testing.TB, api *usersAPI, configure func(*Handler)) *Handler {
	t.Helper()
	keys := keysFor(t)
	h := &Handler{
		HMACKeys:       []HMACKey{{Secret: testSecret}},
		Issuers:        []string{"dbnl"},
		Audiences:      []string{"dbnl-api"},
		PermissionsURL: api.URL + "/v0/users/{user}/permissions",
		now:            func() time.Time { return testNow },
	}
	for _, name := range []string{"rsa", "p256", "p384", "p521", "ed25519"} {
		h.PublicKeys = append(h.PublicKeys, PublicKey{File: keys[name].pemFile})
	}
	if configure != nil {
		configure(h)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		t.Fatalf("provisioning: %v", err)
	}
	if err := h.Validate(); err != nil {
		t.Fatalf("validating: %v", err)
	}
	h.logger = zap.NewNop()
	h.resolver.logger = h.logger
	t.Cleanup(func() { _ = h.Cleanup() })
	return h
}

// nextRecorder is a next handler that records the request it got.
type nextRecorder struct {
	called bool
	req    *http.Request
}

func (n *nextRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	n.called = true
	n.req = r
	w.WriteHeader(http.StatusOK)
	return nil
}

// serve runs r through h with a fresh replacer and returns the
// response, what next saw, and the replacer.
func serve(t testing.TB, h *Handler, r *http.Request) (*httptest.ResponseRecorder, *nextRecorder, *caddy.Replacer) {
	t.Helper()
	repl := caddy.NewReplacer()
	r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
	w := httptest.NewRecorder()
	next := &nextRecorder{}
	if err := h.ServeHTTP(w, r, next); err != nil {
		t.Fatalf("ServeHTTP returned error: %v", err)
	}
	return w, next, repl
}

// bearer builds a GET request to target with token as bearer.
func bearer(target, token string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, target, nil)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	return r
}
