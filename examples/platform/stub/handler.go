// Package stub is a stand-in for the dbnl platform API, for the
// dbnl-gateway demo and integration tests. It serves the users API the
// gateway reads permissions from, a few namespaced endpoints that report
// back what the gateway forwarded and enforce the trusted permissions
// header, an admin endpoint that changes roles while running, and
// streaming endpoints for large request and response bodies.
//
// The stand-in trusts the X-Dbnl-* headers it receives, as the real
// platform does behind the gateway. It must only ever be reachable
// through the gateway.
package stub

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
)

// DefaultHeaderPrefix is the prefix of the trusted headers the gateway
// injects, matching the gateway's header_prefix default.
const DefaultHeaderPrefix = "X-Dbnl-"

// Config configures the handler returned by NewHandler.
type Config struct {
	// Users is the directory of users and roles. Required.
	Users *Directory

	// HeaderPrefix is the prefix of the trusted identity headers.
	// Default: X-Dbnl-
	HeaderPrefix string

	// Logger receives one line per request. Nil logs nothing.
	Logger *slog.Logger
}

// server holds what the handlers share.
type server struct {
	users  *Directory
	prefix string
	logger *slog.Logger
}

// NewHandler returns the stand-in platform's HTTP handler. Its routes:
//
//	GET        /v0/users/{user}/permissions  users API (needs Authorization)
//	GET        /v0/users/me                  the user named by X-Dbnl-User-Id
//	GET        /v0/spec.json                 a small OpenAPI document
//	GET, POST  /v0/projects                  report the request; need projects.read / projects.write
//	any        /v0/projects/{id}             as above; GET and HEAD read, other methods write
//	PUT        /v0/admin/users/{user}        replace a user's roles in memory; needs users.write
//	DELETE     /v0/admin/users/{user}        remove a user in memory; needs users.write
//	POST, PUT  /v0/upload                    hash the body: {"bytes": n, "sha256": "..."}
//	POST, PUT  /v0/echo                      stream the body back
//	GET        /v0/download?bytes=N          stream N bytes of PatternByte
//
// Errors are JSON: {"code": "...", "message": "..."}.
func NewHandler(cfg Config) http.Handler {
	s := &server{
		users:  cfg.Users,
		prefix: cfg.HeaderPrefix,
		logger: cfg.Logger,
	}
	if s.prefix == "" {
		s.prefix = DefaultHeaderPrefix
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /v0/users/{user}/permissions", s.permissions)
	mux.HandleFunc("GET /v0/users/me", s.me)
	mux.HandleFunc("GET /v0/spec.json", s.spec)
	mux.HandleFunc("/v0/projects", s.projects)
	mux.HandleFunc("/v0/projects/{id}", s.projects)
	mux.HandleFunc("PUT /v0/admin/users/{user}", s.putUser)
	mux.HandleFunc("DELETE /v0/admin/users/{user}", s.deleteUser)
	mux.HandleFunc("POST /v0/upload", s.upload)
	mux.HandleFunc("PUT /v0/upload", s.upload)
	mux.HandleFunc("POST /v0/echo", s.echo)
	mux.HandleFunc("PUT /v0/echo", s.echo)
	mux.HandleFunc("GET /v0/download", s.download)
	mux.HandleFunc("/", s.notFound)

	if s.logger == nil {
		return mux
	}
	return s.logRequests(mux)
}

// permissions serves the users API. Like the real platform it wants the
// caller's credentials, but the stand-in only checks that some are there:
// the gateway has verified the token before asking.
func (s *server) permissions(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") == "" {
		writeError(w, http.StatusUnauthorized, "auth_error", "missing Authorization header")
		return
	}

	// a request that came through the gateway may only read another
	// user's permissions with users.read; the gateway's own lookup
	// carries no trusted headers and is not limited
	user := r.PathValue("user")
	if caller := r.Header.Get(s.prefix + "User-Id"); caller != "" && caller != user &&
		!slices.Contains(s.grants(r), "users.read") {
		writeError(w, http.StatusForbidden, "forbidden",
			"reading another user's permissions requires users.read")
		return
	}

	s.writePermissions(w, user)
}

// writePermissions answers with user's permissions document, or 404.
func (s *server) writePermissions(w http.ResponseWriter, user string) {
	p, ok := s.users.Permissions(user)
	if !ok {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no user %q", user))
		return
	}
	writeJSON(w, http.StatusOK, p)
}

// me serves the permissions document of the user the gateway vouches for.
func (s *server) me(w http.ResponseWriter, r *http.Request) {
	user, ok := s.requireUser(w, r)
	if !ok {
		return
	}
	s.writePermissions(w, user)
}

// spec serves a small OpenAPI document describing the stand-in.
func (s *server) spec(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(specJSON))
}

// notFound answers every route the stand-in does not have.
func (s *server) notFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, "not_found",
		fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path))
}

// requireUser returns the trusted user id, or answers 401 and returns
// false when the request did not come through the gateway.
func (s *server) requireUser(w http.ResponseWriter, r *http.Request) (string, bool) {
	user := r.Header.Get(s.prefix + "User-Id")
	if user == "" {
		writeError(w, http.StatusUnauthorized, "auth_error",
			"missing "+s.prefix+"User-Id header; requests must come through the gateway")
		return "", false
	}
	return user, true
}

// requirePermission answers 403 and returns false unless the trusted
// permissions header grants perm.
func (s *server) requirePermission(w http.ResponseWriter, r *http.Request, perm string) bool {
	if slices.Contains(s.grants(r), perm) {
		return true
	}
	writeError(w, http.StatusForbidden, "forbidden",
		fmt.Sprintf("%s %s requires permission %s", r.Method, r.URL.Path, perm))
	return false
}

// grants returns the permissions named by the trusted permissions header,
// a comma-separated list.
func (s *server) grants(r *http.Request) []string {
	var perms []string
	for _, v := range r.Header.Values(s.prefix + "Permissions") {
		for p := range strings.SplitSeq(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				perms = append(perms, p)
			}
		}
	}
	return perms
}

// writeJSON writes v as indented JSON with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// errorBody is the JSON body of every error answer.
type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// writeError writes an error answer.
func writeError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, errorBody{Code: code, Message: message})
}

// specJSON is the document served at /v0/spec.json.
const specJSON = `{
  "openapi": "3.1.0",
  "info": {"title": "dbnl platform (stand-in)", "version": "0"},
  "paths": {
    "/v0/users/{user}/permissions": {"get": {"summary": "A user's current roles and permissions"}},
    "/v0/users/me": {"get": {"summary": "The calling user's roles and permissions"}},
    "/v0/projects": {
      "get": {"summary": "List projects", "x-permission": "projects.read"},
      "post": {"summary": "Create a project", "x-permission": "projects.write"}
    },
    "/v0/projects/{id}": {
      "get": {"summary": "Read a project", "x-permission": "projects.read"},
      "put": {"summary": "Replace a project", "x-permission": "projects.write"},
      "delete": {"summary": "Delete a project", "x-permission": "projects.write"}
    },
    "/v0/admin/users/{user}": {
      "put": {"summary": "Set a user's roles", "x-permission": "users.write"},
      "delete": {"summary": "Remove a user", "x-permission": "users.write"}
    },
    "/v0/upload": {"post": {"summary": "Hash the request body"}},
    "/v0/echo": {"post": {"summary": "Stream the request body back"}},
    "/v0/download": {"get": {"summary": "Stream N deterministic bytes"}}
  }
}
`
