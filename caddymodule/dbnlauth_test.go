package dbnlauth

import (
	"net/http"
	"testing"
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
