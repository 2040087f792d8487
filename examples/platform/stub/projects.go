package stub

import (
	"io"
	"net/http"
	"strings"
)

// Report is what the namespaced endpoints answer: the request as the
// platform received it, so a caller can see exactly what the gateway
// forwarded.
type Report struct {
	Method    string `json:"method"`
	Path      string `json:"path"`
	RawQuery  string `json:"raw_query"`
	Host      string `json:"host"`
	ProjectID string `json:"project_id,omitempty"`

	// DbnlHeaders holds every header whose name starts with the trusted
	// prefix, compared case-insensitively with '_' read as '-', under the
	// name it arrived with.
	DbnlHeaders map[string][]string `json:"dbnl_headers"`

	// Authorization reports whether an Authorization header arrived. Its
	// value is never echoed.
	Authorization bool `json:"authorization"`

	// Headers holds all headers but Authorization.
	Headers map[string][]string `json:"headers"`

	// BodyBytes is the length of the request body, which is read and
	// discarded.
	BodyBytes int64 `json:"body_bytes"`
}

// projects serves /v0/projects and /v0/projects/{id}. Reading needs
// projects.read and every other method projects.write, as granted by the
// trusted permissions header. When the query names a namespace, the
// trusted namespace header must name the same one: the gateway only sets
// it, and only adds that namespace's permissions, when the user has a
// role there.
func (s *server) projects(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("id") == "" && r.Method != http.MethodGet &&
		r.Method != http.MethodHead && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, HEAD, POST")
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed",
			r.Method+" is not allowed on "+r.URL.Path)
		return
	}
	if _, ok := s.requireUser(w, r); !ok {
		return
	}

	need := "projects.write"
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		need = "projects.read"
	}
	if !s.requirePermission(w, r, need) {
		return
	}
	if ns := r.URL.Query().Get("namespace_id"); ns != "" &&
		r.Header.Get(s.prefix+"Namespace-Id") != ns {
		writeError(w, http.StatusForbidden, "forbidden", "no role in namespace "+ns)
		return
	}

	// drain the body so its size can be reported, without holding it
	n, err := io.Copy(io.Discard, r.Body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "reading body: "+err.Error())
		return
	}

	writeJSON(w, http.StatusOK, s.report(r, n))
}

// report describes r for the caller.
func (s *server) report(r *http.Request, bodyBytes int64) Report {
	rep := Report{
		Method:      r.Method,
		Path:        r.URL.Path,
		RawQuery:    r.URL.RawQuery,
		Host:        r.Host,
		ProjectID:   r.PathValue("id"),
		DbnlHeaders: map[string][]string{},
		Headers:     map[string][]string{},
		BodyBytes:   bodyBytes,
	}
	prefix := normalizeHeaderName(s.prefix)
	for name, values := range r.Header {
		if strings.EqualFold(name, "Authorization") {
			rep.Authorization = true
			continue
		}
		rep.Headers[name] = values
		if strings.HasPrefix(normalizeHeaderName(name), prefix) {
			rep.DbnlHeaders[name] = values
		}
	}
	return rep
}

// normalizeHeaderName lower-cases name and reads '_' as '-', the way the
// gateway matches the headers it strips.
func normalizeHeaderName(name string) string {
	return strings.ReplaceAll(strings.ToLower(name), "_", "-")
}
