package stub

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestPermissionsEndpoint(t *testing.T) {
	srv := newTestServer(t, newTestDirectory(t))

	t.Run("known user", func(t *testing.T) {
		resp, body := do(t, "GET", srv.URL+"/v0/users/user_123/permissions", "",
			"Authorization: Bearer anything")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status: got %d, want 200 (body %s)", resp.StatusCode, body)
		}
		var got Permissions
		decode(t, body, &got)
		want := Permissions{
			UserID:         "user_123",
			OrgRole:        "org_reader",
			OrgPermissions: []string{"users.read"},
			Namespaces: []NamespacePermissions{
				{NamespaceID: "ns_1", Role: "namespace_writer", Permissions: []string{"projects.read", "projects.write"}},
				{NamespaceID: "ns_2", Role: "namespace_reader", Permissions: []string{"projects.read"}},
			},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %+v, want %+v", got, want)
		}
	})

	t.Run("json field names", func(t *testing.T) {
		_, body := do(t, "GET", srv.URL+"/v0/users/user_123/permissions", "",
			"Authorization: Bearer anything")
		var raw map[string]any
		decode(t, body, &raw)
		for _, k := range []string{"user_id", "org_role", "org_permissions", "namespaces", "disabled"} {
			if _, ok := raw[k]; !ok {
				t.Errorf("field %q: got missing, want present in %s", k, body)
			}
		}
		ns := raw["namespaces"].([]any)[0].(map[string]any)
		for _, k := range []string{"namespace_id", "role", "permissions"} {
			if _, ok := ns[k]; !ok {
				t.Errorf("namespace field %q: got missing, want present", k)
			}
		}
	})

	t.Run("disabled user", func(t *testing.T) {
		resp, body := do(t, "GET", srv.URL+"/v0/users/user_disabled/permissions", "",
			"Authorization: Bearer anything")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status: got %d, want 200", resp.StatusCode)
		}
		var got Permissions
		decode(t, body, &got)
		if !got.Disabled {
			t.Error("disabled: got false, want true")
		}
	})

	t.Run("unknown user", func(t *testing.T) {
		resp, body := do(t, "GET", srv.URL+"/v0/users/nobody/permissions", "",
			"Authorization: Bearer anything")
		wantError(t, resp, body, http.StatusNotFound, "not_found")
	})

	t.Run("escaped user id", func(t *testing.T) {
		resp, body := do(t, "GET", srv.URL+"/v0/users/no%2Fbody/permissions", "",
			"Authorization: Bearer anything")
		wantError(t, resp, body, http.StatusNotFound, "not_found")
	})

	t.Run("no authorization", func(t *testing.T) {
		resp, body := do(t, "GET", srv.URL+"/v0/users/user_123/permissions", "")
		wantError(t, resp, body, http.StatusUnauthorized, "auth_error")
	})

	t.Run("other user through the gateway without users.read", func(t *testing.T) {
		resp, body := do(t, "GET", srv.URL+"/v0/users/user_123/permissions", "",
			"Authorization: Bearer anything", "X-Dbnl-User-Id: user_reader",
			"X-Dbnl-Permissions: projects.read")
		wantError(t, resp, body, http.StatusForbidden, "forbidden")
	})

	t.Run("other user through the gateway with users.read", func(t *testing.T) {
		resp, body := do(t, "GET", srv.URL+"/v0/users/user_123/permissions", "",
			"Authorization: Bearer anything", "X-Dbnl-User-Id: user_reader",
			"X-Dbnl-Permissions: users.read")
		if resp.StatusCode != http.StatusOK {
			t.Errorf("status: got %d, want 200 (body %s)", resp.StatusCode, body)
		}
	})
}

func TestMeEndpoint(t *testing.T) {
	srv := newTestServer(t, newTestDirectory(t))

	resp, body := do(t, "GET", srv.URL+"/v0/users/me", "", "X-Dbnl-User-Id: user_reader")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status: got %d, want 200 (body %s)", resp.StatusCode, body)
	}
	var got Permissions
	decode(t, body, &got)
	if got.UserID != "user_reader" {
		t.Errorf("user_id: got %q, want user_reader", got.UserID)
	}

	resp, body = do(t, "GET", srv.URL+"/v0/users/me", "", "Authorization: Bearer x")
	wantError(t, resp, body, http.StatusUnauthorized, "auth_error")

	resp, body = do(t, "GET", srv.URL+"/v0/users/me", "", "X-Dbnl-User-Id: nobody")
	wantError(t, resp, body, http.StatusNotFound, "not_found")
}

func TestSpecEndpoint(t *testing.T) {
	srv := newTestServer(t, newTestDirectory(t))

	resp, body := do(t, "GET", srv.URL+"/v0/spec.json", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status: got %d, want 200", resp.StatusCode)
	}
	var spec struct {
		OpenAPI string         `json:"openapi"`
		Paths   map[string]any `json:"paths"`
	}
	decode(t, body, &spec)
	if spec.OpenAPI == "" || spec.Paths["/v0/projects"] == nil {
		t.Errorf("got %s, want an OpenAPI document listing /v0/projects", body)
	}
}

func TestNotFound(t *testing.T) {
	srv := newTestServer(t, newTestDirectory(t))
	resp, body := do(t, "GET", srv.URL+"/v0/nothing", "")
	wantError(t, resp, body, http.StatusNotFound, "not_found")
}

func TestProjectsReport(t *testing.T) {
	srv := newTestServer(t, newTestDirectory(t))

	resp, body := do(t, "POST", srv.URL+"/v0/projects/p_9?namespace_id=ns_1&x=1", "hello",
		"Authorization: Bearer secret-token-value",
		"X-Dbnl-User-Id: user_123",
		"X-Dbnl-Permissions: projects.read,projects.write",
		"X-Dbnl-Namespace-Id: ns_1",
		"X_Dbnl_Org_Role: org_admin",
		"X-Other: kept")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status: got %d, want 200 (body %s)", resp.StatusCode, body)
	}
	if strings.Contains(string(body), "secret-token-value") {
		t.Errorf("body: got the Authorization value echoed, want only its presence")
	}

	var got Report
	decode(t, body, &got)
	if got.Method != "POST" || got.Path != "/v0/projects/p_9" ||
		got.RawQuery != "namespace_id=ns_1&x=1" || got.ProjectID != "p_9" {
		t.Errorf("request line: got %s %s ? %s id %q, want POST /v0/projects/p_9 ? namespace_id=ns_1&x=1 id p_9",
			got.Method, got.Path, got.RawQuery, got.ProjectID)
	}
	if !got.Authorization {
		t.Error("authorization: got false, want true")
	}
	if got.BodyBytes != 5 {
		t.Errorf("body_bytes: got %d, want 5", got.BodyBytes)
	}

	wantDbnl := map[string][]string{
		"X-Dbnl-User-Id":      {"user_123"},
		"X-Dbnl-Permissions":  {"projects.read,projects.write"},
		"X-Dbnl-Namespace-Id": {"ns_1"},
		"X_dbnl_org_role":     {"org_admin"},
	}
	if !reflect.DeepEqual(got.DbnlHeaders, wantDbnl) {
		t.Errorf("dbnl_headers: got %v, want %v", got.DbnlHeaders, wantDbnl)
	}
	if _, ok := got.Headers["Authorization"]; ok {
		t.Error("headers: got Authorization, want it left out")
	}
	if v := got.Headers["X-Other"]; !slices.Equal(v, []string{"kept"}) {
		t.Errorf("headers[X-Other]: got %v, want [kept]", v)
	}
}

func TestProjectsPermissions(t *testing.T) {
	srv := newTestServer(t, newTestDirectory(t))

	tests := []struct {
		name    string
		method  string
		path    string
		headers []string
		status  int
		code    string
	}{
		{name: "read allowed", method: "GET", path: "/v0/projects?namespace_id=ns_1",
			headers: []string{"X-Dbnl-User-Id: u", "X-Dbnl-Permissions: projects.read", "X-Dbnl-Namespace-Id: ns_1"},
			status:  200},
		{name: "head allowed", method: "HEAD", path: "/v0/projects/p_1",
			headers: []string{"X-Dbnl-User-Id: u", "X-Dbnl-Permissions: projects.read"},
			status:  200},
		{name: "read without permission", method: "GET", path: "/v0/projects",
			headers: []string{"X-Dbnl-User-Id: u", "X-Dbnl-Permissions: users.read"},
			status:  403, code: "forbidden"},
		{name: "write with read only", method: "POST", path: "/v0/projects?namespace_id=ns_1",
			headers: []string{"X-Dbnl-User-Id: u", "X-Dbnl-Permissions: projects.read", "X-Dbnl-Namespace-Id: ns_1"},
			status:  403, code: "forbidden"},
		{name: "write allowed", method: "POST", path: "/v0/projects?namespace_id=ns_1",
			headers: []string{"X-Dbnl-User-Id: u", "X-Dbnl-Permissions: projects.read, projects.write",
				"X-Dbnl-Namespace-Id: ns_1"},
			status: 200},
		{name: "delete needs write", method: "DELETE", path: "/v0/projects/p_1",
			headers: []string{"X-Dbnl-User-Id: u", "X-Dbnl-Permissions: projects.read"},
			status:  403, code: "forbidden"},
		{name: "permission in second header value", method: "PUT", path: "/v0/projects/p_1",
			headers: []string{"X-Dbnl-User-Id: u", "X-Dbnl-Permissions: projects.read",
				"X-Dbnl-Permissions: projects.write"},
			status: 200},
		{name: "permission name must match whole", method: "POST", path: "/v0/projects",
			headers: []string{"X-Dbnl-User-Id: u", "X-Dbnl-Permissions: projects.writer"},
			status:  403, code: "forbidden"},
		{name: "namespace mismatch", method: "GET", path: "/v0/projects?namespace_id=ns_2",
			headers: []string{"X-Dbnl-User-Id: u", "X-Dbnl-Permissions: projects.read", "X-Dbnl-Namespace-Id: ns_1"},
			status:  403, code: "forbidden"},
		{name: "no user", method: "GET", path: "/v0/projects",
			headers: []string{"X-Dbnl-Permissions: projects.read"},
			status:  401, code: "auth_error"},
		{name: "method not allowed", method: "DELETE", path: "/v0/projects",
			headers: []string{"X-Dbnl-User-Id: u", "X-Dbnl-Permissions: projects.write"},
			status:  405, code: "method_not_allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, tt.method, srv.URL+tt.path, "", tt.headers...)
			if tt.code != "" {
				wantError(t, resp, body, tt.status, tt.code)
				return
			}
			if resp.StatusCode != tt.status {
				t.Errorf("status: got %d, want %d (body %s)", resp.StatusCode, tt.status, body)
			}
		})
	}
}

func TestCustomHeaderPrefix(t *testing.T) {
	srv := httptest.NewServer(NewHandler(Config{Users: newTestDirectory(t), HeaderPrefix: "X-Acme-"}))
	t.Cleanup(srv.Close)

	resp, body := do(t, "GET", srv.URL+"/v0/projects", "",
		"X-Acme-User-Id: u", "X-Acme-Permissions: projects.read", "X-Dbnl-User-Id: forged")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status: got %d, want 200 (body %s)", resp.StatusCode, body)
	}
	var got Report
	decode(t, body, &got)
	if _, ok := got.DbnlHeaders["X-Acme-User-Id"]; !ok || len(got.DbnlHeaders) != 2 {
		t.Errorf("dbnl_headers: got %v, want the two X-Acme- headers", got.DbnlHeaders)
	}
}

func TestAdminRoleChange(t *testing.T) {
	srv := newTestServer(t, newTestDirectory(t))
	admin := []string{"X-Dbnl-User-Id: user_admin", "X-Dbnl-Permissions: users.read,users.write"}

	nsRole := func() string {
		t.Helper()
		_, body := do(t, "GET", srv.URL+"/v0/users/user_123/permissions", "", "Authorization: Bearer x")
		var p Permissions
		decode(t, body, &p)
		for _, ns := range p.Namespaces {
			if ns.NamespaceID == "ns_1" {
				return ns.Role
			}
		}
		return ""
	}
	if got := nsRole(); got != "namespace_writer" {
		t.Fatalf("role before: got %q, want namespace_writer", got)
	}

	resp, body := do(t, "PUT", srv.URL+"/v0/admin/users/user_123",
		`{"org_role": "org_reader", "namespaces": {"ns_1": "namespace_reader"}}`, admin...)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT status: got %d, want 200 (body %s)", resp.StatusCode, body)
	}
	var put Permissions
	decode(t, body, &put)
	if len(put.Namespaces) != 1 || put.Namespaces[0].Role != "namespace_reader" {
		t.Errorf("PUT answer: got %+v, want ns_1 as namespace_reader only", put.Namespaces)
	}
	if got := nsRole(); got != "namespace_reader" {
		t.Errorf("role after: got %q, want namespace_reader", got)
	}

	// a new user can be created and deleted
	resp, body = do(t, "PUT", srv.URL+"/v0/admin/users/user_new", `{"org_role": "org_reader"}`, admin...)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("create status: got %d, want 200 (body %s)", resp.StatusCode, body)
	}
	resp, body = do(t, "DELETE", srv.URL+"/v0/admin/users/user_new", "", admin...)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete status: got %d, want 204 (body %s)", resp.StatusCode, body)
	}
	resp, body = do(t, "GET", srv.URL+"/v0/users/user_new/permissions", "", "Authorization: Bearer x")
	wantError(t, resp, body, http.StatusNotFound, "not_found")
	resp, body = do(t, "DELETE", srv.URL+"/v0/admin/users/user_new", "", admin...)
	wantError(t, resp, body, http.StatusNotFound, "not_found")
}

func TestAdminErrors(t *testing.T) {
	srv := newTestServer(t, newTestDirectory(t))
	admin := []string{"X-Dbnl-User-Id: user_admin", "X-Dbnl-Permissions: users.write"}

	tests := []struct {
		name    string
		body    string
		headers []string
		status  int
		code    string
	}{
		{name: "no user", body: `{"org_role": "org_admin"}`,
			headers: []string{"X-Dbnl-Permissions: users.write"}, status: 401, code: "auth_error"},
		{name: "no users.write", body: `{"org_role": "org_admin"}`,
			headers: []string{"X-Dbnl-User-Id: user_123", "X-Dbnl-Permissions: users.read"},
			status:  403, code: "forbidden"},
		{name: "unknown role", body: `{"org_role": "org_wizard"}`,
			headers: admin, status: 400, code: "bad_request"},
		{name: "unknown field", body: `{"org_rol": "org_reader"}`,
			headers: admin, status: 400, code: "bad_request"},
		{name: "not json", body: `org_admin`,
			headers: admin, status: 400, code: "bad_request"},
		{name: "trailing data", body: `{} {}`,
			headers: admin, status: 400, code: "bad_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, "PUT", srv.URL+"/v0/admin/users/user_123", tt.body, tt.headers...)
			wantError(t, resp, body, tt.status, tt.code)
		})
	}

	// nothing above changed user_123
	_, body := do(t, "GET", srv.URL+"/v0/users/user_123/permissions", "", "Authorization: Bearer x")
	var p Permissions
	decode(t, body, &p)
	if p.OrgRole != "org_reader" {
		t.Errorf("org_role: got %q, want org_reader", p.OrgRole)
	}
}
