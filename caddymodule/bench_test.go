package dbnlauth

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// benchAlgorithms are the algorithms whose hot and cold paths are
// measured: one of each key family, RSA twice for its two paddings.
var benchAlgorithms = []string{"HS256", "RS256", "PS256", "ES256", "EdDSA"}

// benchWriter is a ResponseWriter that keeps nothing, so a benchmark
// measures the handler rather than a recorder.
type benchWriter struct {
	header http.Header
	status int
}

func (w *benchWriter) Header() http.Header         { return w.header }
func (w *benchWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *benchWriter) WriteHeader(status int)      { w.status = status }

// benchNext is a next handler that only counts the requests it got.
type benchNext struct{ calls int }

func (n *benchNext) ServeHTTP(http.ResponseWriter, *http.Request) error {
	n.calls++
	return nil
}

// benchRequest builds a request like the SDK's: a bearer token, a
// namespace in the query string and the usual client headers.
func benchRequest(token string) *http.Request {
	r := bearer("/v0/projects?namespace_id=ns_1&limit=50", token)
	r.Header.Set("Accept", "application/json")
	r.Header.Set("Accept-Encoding", "gzip")
	r.Header.Set("User-Agent", "dbnl-sdk/1.0 python/3.12")
	r.Header.Set("X-Request-Id", "0b7c6c1e-5f0e-4c1a-9f4e-3f2d2b1a0c9d")
	repl := caddy.NewReplacer()
	return r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
}

// serveOnce runs r through h and fails b unless next was reached.
func serveOnce(b *testing.B, h *Handler, r *http.Request, w *benchWriter, next *benchNext) {
	b.Helper()
	before := next.calls
	if err := h.ServeHTTP(w, r, next); err != nil {
		b.Fatalf("ServeHTTP returned error: %v", err)
	}
	if next.calls != before+1 {
		b.Fatalf("got status %d without reaching next, want next reached", w.status)
	}
}

// benchFresh returns r with a new replacer in its context, as Caddy's
// server gives every request one, with a provider standing for the one
// Caddy adds for the {http.*} placeholders: the placeholders a request
// sets must not carry over to the next iteration.
func benchFresh(r *http.Request) *http.Request {
	repl := caddy.NewReplacer()
	repl.Map(benchHTTPVars)
	return r.WithContext(context.WithValue(context.Background(), caddy.ReplacerCtxKey, repl))
}

func benchHTTPVars(string) (any, bool) { return nil, false }

// BenchmarkServeHTTPHot measures the common case: a token already
// verified and a user whose permissions are cached. One request is
// reused with a new replacer each time, so each iteration also strips
// the headers the previous one injected, as it would strip forged ones.
// The "setup" sub-benchmark is that new replacer and context alone:
// the handler's own cost is the difference.
func BenchmarkServeHTTPHot(b *testing.B) {
	api := newUsersAPI(b)
	h := newTestHandler(b, api, nil)
	b.Run("setup", func(b *testing.B) {
		r := benchRequest("token")
		b.ReportAllocs()
		for b.Loop() {
			if benchFresh(r).Context() == nil {
				b.Fatal("no context")
			}
		}
	})
	for _, alg := range benchAlgorithms {
		b.Run(alg, func(b *testing.B) {
			r := benchRequest(signToken(b, alg, validClaims("user_123"), nil))
			w := &benchWriter{header: make(http.Header)}
			next := &benchNext{}

			// fill both caches before the timer starts
			serveOnce(b, h, r, w, next)
			calls := api.calls.Load()

			b.ReportAllocs()
			for b.Loop() {
				if err := h.ServeHTTP(w, benchFresh(r), next); err != nil {
					b.Fatal(err)
				}
			}
			if got := api.calls.Load() - calls; got != 0 {
				b.Errorf("got %d users-API calls on the hot path, want 0", got)
			}
			if next.calls < b.N {
				b.Errorf("got next reached %d times in %d iterations, want every time", next.calls, b.N)
			}
		})
	}
}

// BenchmarkServeHTTPHotParallel is the hot HS256 path from every
// GOMAXPROCS goroutine at once, to show contention on the caches'
// locks.
func BenchmarkServeHTTPHotParallel(b *testing.B) {
	// the handler is built outside the sub-benchmark so that what
	// Provision logs comes before the result line, not inside it
	api := newUsersAPI(b)
	h := newTestHandler(b, api, nil)
	b.Run("HS256", func(b *testing.B) {
		tok := signToken(b, "HS256", validClaims("user_123"), nil)
		serveOnce(b, h, benchRequest(tok), &benchWriter{header: make(http.Header)}, &benchNext{})

		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			r := benchRequest(tok)
			w := &benchWriter{header: make(http.Header)}
			next := &benchNext{}
			for pb.Next() {
				if err := h.ServeHTTP(w, benchFresh(r), next); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// benchTokenPool and benchTokenCache size the cold-token benchmark:
// cycling through more distinct tokens than the verified-token cache
// holds, in order, makes every lookup a miss, since LRU evicts each
// token before it comes round again.
const (
	benchTokenPool  = 512
	benchTokenCache = benchTokenPool / 2
)

// BenchmarkServeHTTPColdToken measures a token the gateway has not seen:
// a full parse and signature check, with the user's permissions cached.
// The tokens, distinct by jti, are minted before the timer starts.
func BenchmarkServeHTTPColdToken(b *testing.B) {
	api := newUsersAPI(b)
	h := newTestHandler(b, api, func(h *Handler) { h.TokenCacheSize = benchTokenCache })
	for _, alg := range benchAlgorithms {
		b.Run(alg, func(b *testing.B) {
			reqs := make([]*http.Request, benchTokenPool)
			for i := range reqs {
				claims := validClaims("user_123")
				claims["jti"] = fmt.Sprintf("tok-%s-%d", alg, i)
				reqs[i] = benchRequest(signToken(b, alg, claims, nil))
			}
			w := &benchWriter{header: make(http.Header)}
			next := &benchNext{}
			serveOnce(b, h, reqs[0], w, next)

			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := h.ServeHTTP(w, reqs[i%benchTokenPool], next); err != nil {
					b.Fatal(err)
				}
				i++
			}
			if next.calls < b.N {
				b.Errorf("got next reached %d times in %d iterations, want every time", next.calls, b.N)
			}
		})
	}
}

// benchUserPool and benchUserCache size the cold-permissions benchmark
// the same way: more users than the permissions cache holds, visited in
// order, so every request asks the users API.
const (
	benchUserPool  = 128
	benchUserCache = benchUserPool / 2
)

// BenchmarkServeHTTPColdPermissions measures a permissions-cache miss:
// a verified, cached token whose user's permissions must be fetched
// from a users API on 127.0.0.1 that answers at once.
func BenchmarkServeHTTPColdPermissions(b *testing.B) {
	api := newUsersAPI(b)
	h := newTestHandler(b, api, func(h *Handler) { h.PermissionsCacheSize = benchUserCache })
	b.Run("HS256", func(b *testing.B) { benchColdPermissions(b, api, h) })
}

func benchColdPermissions(b *testing.B, api *usersAPI, h *Handler) {
	reqs := make([]*http.Request, benchUserPool)
	for i := range reqs {
		user := fmt.Sprintf("user_%d", i)
		api.set(&Permissions{
			UserID:         user,
			OrgRole:        "org_reader",
			OrgPermissions: []string{"users.read"},
			Namespaces: []NamespaceGrant{{
				NamespaceID: "ns_1", Role: "namespace_writer",
				Permissions: []string{"projects.write", "projects.read"},
			}},
		})
		reqs[i] = benchRequest(signToken(b, "HS256", validClaims(user), nil))
	}
	w := &benchWriter{header: make(http.Header)}
	next := &benchNext{}
	// verify every token once, so only the permissions miss
	for _, r := range reqs {
		serveOnce(b, h, r, w, next)
	}
	calls := api.calls.Load()

	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := h.ServeHTTP(w, reqs[i%benchUserPool], next); err != nil {
			b.Fatal(err)
		}
		i++
	}
	if got := api.calls.Load() - calls; got != int64(b.N) {
		b.Errorf("got %d users-API calls in %d iterations, want one each", got, b.N)
	}
}

// BenchmarkExtractToken measures taking the bearer token from a
// request, the first step of every request.
func BenchmarkExtractToken(b *testing.B) {
	tok := signToken(b, "HS256", validClaims("user_123"), nil)
	for _, c := range []struct {
		name   string
		target string
	}{
		{"no-query", "/v0/projects"},
		{"query", "/v0/projects?namespace_id=ns_1&limit=50"},
	} {
		b.Run(c.name, func(b *testing.B) {
			r := bearer(c.target, tok)
			b.ReportAllocs()
			for b.Loop() {
				got, err := extractToken(r, defaultMaxTokenBytes)
				if err != nil || len(got) != len(tok) {
					b.Fatalf("got token of %d bytes, error %v; want %d bytes", len(got), err, len(tok))
				}
			}
		})
	}
}

// BenchmarkHeaders measures removing client-sent identity headers and
// setting the trusted ones, on a header set like the SDK's plus two
// forged entries that are put back before each iteration.
func BenchmarkHeaders(b *testing.B) {
	hs := newHeaderSet(defaultHeaderPrefix)
	g := newGrants(&Permissions{
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
	})
	base := benchRequest("token").Header
	forgedUser := []string{"admin"}
	forgedRole := []string{"org_admin"}

	b.Run("strip", func(b *testing.B) {
		h := base.Clone()
		b.ReportAllocs()
		for b.Loop() {
			h["X-Dbnl-User-Id"] = forgedUser
			h["X_dbnl_org_role"] = forgedRole
			hs.strip(h)
		}
		if len(h) != len(base) {
			b.Errorf("got %d headers after strip, want %d", len(h), len(base))
		}
	})

	b.Run("strip+set", func(b *testing.B) {
		h := base.Clone()
		b.ReportAllocs()
		for b.Loop() {
			h["X-Dbnl-User-Id"] = forgedUser
			h["X_dbnl_org_role"] = forgedRole
			hs.strip(h)
			ns := g.namespaces["ns_1"]
			hs.set(h, g, "ns_1", &ns, "tok-1")
		}
		if got := h.Get("X-Dbnl-User-Id"); got != "user_123" {
			b.Errorf("got X-Dbnl-User-Id %q, want user_123", got)
		}
	})
}
