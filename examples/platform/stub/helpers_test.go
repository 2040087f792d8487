package stub

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// testUsers returns a small users file: a writer and a reader in ns_1,
// an admin, and a disabled user.
func testUsers() UsersFile {
	return UsersFile{
		Roles: map[string][]string{
			"org_reader":       {"users.read"},
			"org_admin":        {"users.write", "users.read"},
			"namespace_reader": {"projects.read"},
			"namespace_writer": {"projects.write", "projects.read"},
		},
		Users: map[string]User{
			"user_123": {
				OrgRole:    "org_reader",
				Namespaces: map[string]string{"ns_1": "namespace_writer", "ns_2": "namespace_reader"},
			},
			"user_reader": {
				OrgRole:    "org_reader",
				Namespaces: map[string]string{"ns_1": "namespace_reader"},
			},
			"user_admin":    {OrgRole: "org_admin"},
			"user_disabled": {OrgRole: "org_reader", Disabled: true},
		},
	}
}

// newTestDirectory returns a Directory over testUsers.
func newTestDirectory(t *testing.T) *Directory {
	t.Helper()
	d, err := NewDirectory(testUsers())
	if err != nil {
		t.Fatalf("NewDirectory: %v", err)
	}
	return d
}

// newTestServer starts the stand-in on 127.0.0.1 over d.
func newTestServer(t *testing.T, d *Directory) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(NewHandler(Config{Users: d}))
	t.Cleanup(srv.Close)
	return srv
}

// do sends one request with the given headers ("Name: value" lines) and
// returns the response with its body read.
func do(t *testing.T, method, url, body string, headers ...string) (*http.Response, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatalf("building request: %v", err)
	}
	for _, h := range headers {
		name, value, ok := strings.Cut(h, ":")
		if !ok {
			t.Fatalf("bad header %q", h)
		}
		req.Header.Add(name, strings.TrimSpace(value))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return resp, b
}

// decode unmarshals body into v.
func decode(t *testing.T, body []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("decoding %q: %v", body, err)
	}
}

// wantError checks that an answer is the JSON error with the given
// status and code.
func wantError(t *testing.T, resp *http.Response, body []byte, status int, code string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status: got %d, want %d (body %s)", resp.StatusCode, status, body)
	}
	if got := resp.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type: got %q, want application/json", got)
	}
	var e errorBody
	decode(t, body, &e)
	if e.Code != code {
		t.Errorf("code: got %q, want %q", e.Code, code)
	}
	if e.Message == "" {
		t.Errorf("message: got empty, want text")
	}
}
