package stub

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// maxUserBody bounds the JSON body of an admin request.
const maxUserBody = 64 << 10

// putUser replaces the roles of a user, creating the user if needed. The
// body is a User: {"org_role": "...", "namespaces": {"ns_1": "..."},
// "disabled": false}. The change is in memory only and shows on the next
// users API call; the gateway sees it once its cached entry expires.
func (s *server) putUser(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.requireUser(w, r); !ok {
		return
	}
	if !s.requirePermission(w, r, "users.write") {
		return
	}

	var u User
	dec := json.NewDecoder(io.LimitReader(r.Body, maxUserBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&u); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "decoding user: "+err.Error())
		return
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, "bad_request", "decoding user: trailing data")
		return
	}

	id := r.PathValue("user")
	if err := s.users.SetUser(id, u); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	p, _ := s.users.Permissions(id)
	writeJSON(w, http.StatusOK, p)
}

// deleteUser removes a user in memory.
func (s *server) deleteUser(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.requireUser(w, r); !ok {
		return
	}
	if !s.requirePermission(w, r, "users.write") {
		return
	}

	id := r.PathValue("user")
	if !s.users.DeleteUser(id) {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no user %q", id))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
