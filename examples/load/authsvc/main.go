// Command authsvc is what a team would write for Caddy's forward_auth
// without the dbnl_auth module, for comparison in the load test: it
// verifies the HS256 token with golang-jwt, asks the users API for the
// user's permissions on every request (no cache), and answers 200 with
// the X-Dbnl-* headers for forward_auth's copy_headers, or 401.
//
//	DBNL_PAT_SECRET=... go run ./examples/load/authsvc \
//	    -listen 127.0.0.1:19102 \
//	    -permissions-url 'http://127.0.0.1:19101/v0/users/{user}/permissions'
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/dbnlai/dbnl-gateway/examples/load/internal/serve"
)

type permissions struct {
	UserID         string   `json:"user_id"`
	OrgRole        string   `json:"org_role"`
	OrgPermissions []string `json:"org_permissions"`
	Namespaces     []struct {
		NamespaceID string   `json:"namespace_id"`
		Role        string   `json:"role"`
		Permissions []string `json:"permissions"`
	} `json:"namespaces"`
	Disabled bool `json:"disabled"`
}

// authService verifies tokens and looks permissions up.
type authService struct {
	secret         []byte
	parser         *jwt.Parser
	permissionsURL string
	client         *http.Client
}

func (a *authService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// verify the token
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		http.Error(w, "missing bearer token", http.StatusUnauthorized)
		return
	}
	claims := jwt.MapClaims{}
	_, err := a.parser.ParseWithClaims(raw, claims, func(*jwt.Token) (any, error) {
		return a.secret, nil
	})
	if err != nil {
		http.Error(w, "invalid token", http.StatusUnauthorized)
		return
	}
	user, _ := claims["sub"].(string)
	if user == "" {
		http.Error(w, "token names no user", http.StatusUnauthorized)
		return
	}

	// ask the users API, every time
	p, status, err := a.lookup(r, user)
	if err != nil {
		http.Error(w, err.Error(), status)
		return
	}

	// the namespace the client asked for, from the original URI
	var ns string
	if fu, err := url.Parse(r.Header.Get("X-Forwarded-Uri")); err == nil {
		ns = fu.Query().Get("namespace_id")
	}
	perms := slices.Clone(p.OrgPermissions)
	var roles []string
	h := w.Header()
	for _, g := range p.Namespaces {
		roles = append(roles, g.NamespaceID+"="+g.Role)
		if ns != "" && g.NamespaceID == ns {
			perms = append(perms, g.Permissions...)
			h.Set("X-Dbnl-Namespace-Id", ns)
			h.Set("X-Dbnl-Namespace-Role", g.Role)
		}
	}
	slices.Sort(perms)
	slices.Sort(roles)
	h.Set("X-Dbnl-User-Id", user)
	h.Set("X-Dbnl-Org-Role", p.OrgRole)
	h.Set("X-Dbnl-Permissions", strings.Join(slices.Compact(perms), ","))
	h.Set("X-Dbnl-Namespace-Roles", strings.Join(roles, ","))
	if jti, ok := claims["jti"].(string); ok {
		h.Set("X-Dbnl-Token-Id", jti)
	}
	w.WriteHeader(http.StatusOK)
}

// lookup fetches user's permissions with the caller's credentials.
func (a *authService) lookup(r *http.Request, user string) (*permissions, int, error) {
	u := strings.ReplaceAll(a.permissionsURL, "{user}", url.PathEscape(user))
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, u, nil)
	if err != nil {
		return nil, http.StatusServiceUnavailable, err
	}
	req.Header.Set("Authorization", r.Header.Get("Authorization"))
	req.Header.Set("Accept", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, http.StatusServiceUnavailable, errors.New("users api unreachable")
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil, http.StatusUnauthorized, errors.New("user not active")
	}
	var p permissions
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&p); err != nil {
		return nil, http.StatusServiceUnavailable, errors.New("bad users api answer")
	}
	if p.Disabled || p.UserID != user {
		return nil, http.StatusUnauthorized, errors.New("user not active")
	}
	return &p, 0, nil
}

func main() {
	listen := flag.String("listen", "127.0.0.1:19102", "loopback address to listen on")
	permURL := flag.String("permissions-url", "http://127.0.0.1:19101/v0/users/{user}/permissions",
		"users API URL; {user} is replaced by the user id")
	flag.Parse()

	secret := os.Getenv("DBNL_PAT_SECRET")
	if len(secret) < 32 {
		fmt.Fprintln(os.Stderr, "authsvc: DBNL_PAT_SECRET must hold at least 32 bytes")
		os.Exit(1)
	}
	pu, err := url.Parse(*permURL)
	if err != nil || serve.Loopback(pu.Host) != nil {
		fmt.Fprintln(os.Stderr, "authsvc: -permissions-url must name a loopback host:port")
		os.Exit(1)
	}

	a := &authService{
		secret: []byte(secret),
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{"HS256"}),
			jwt.WithIssuer("dbnl"),
			jwt.WithAudience("dbnl-api"),
			jwt.WithExpirationRequired(),
			jwt.WithLeeway(30*time.Second),
		),
		permissionsURL: *permURL,
		client: &http.Client{
			Timeout: 2 * time.Second,
			Transport: &http.Transport{
				MaxIdleConns:        256,
				MaxIdleConnsPerHost: 256,
				IdleConnTimeout:     90 * time.Second,
			},
		},
	}
	if err := serve.Run("authsvc", *listen, a); err != nil {
		fmt.Fprintln(os.Stderr, "authsvc:", err)
		os.Exit(1)
	}
}
