package stub

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDirectoryPermissions(t *testing.T) {
	d := newTestDirectory(t)

	got, ok := d.Permissions("user_123")
	if !ok {
		t.Fatal("user_123: got not found, want found")
	}
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

	if _, ok := d.Permissions("nobody"); ok {
		t.Error("nobody: got found, want not found")
	}
}

func TestDirectoryEmptyListsAreNotNil(t *testing.T) {
	d := newTestDirectory(t)
	if err := d.SetUser("bare", User{}); err != nil {
		t.Fatalf("SetUser: %v", err)
	}
	got, _ := d.Permissions("bare")
	if got.OrgPermissions == nil || got.Namespaces == nil {
		t.Errorf("got org_permissions %v and namespaces %v, want empty non-nil lists",
			got.OrgPermissions, got.Namespaces)
	}
}

func TestDirectorySetUser(t *testing.T) {
	d := newTestDirectory(t)

	err := d.SetUser("user_123", User{
		OrgRole:    "org_reader",
		Namespaces: map[string]string{"ns_1": "namespace_reader"},
	})
	if err != nil {
		t.Fatalf("SetUser: %v", err)
	}
	got, _ := d.Permissions("user_123")
	if len(got.Namespaces) != 1 || got.Namespaces[0].Role != "namespace_reader" {
		t.Errorf("namespaces: got %+v, want only ns_1 as namespace_reader", got.Namespaces)
	}

	for name, u := range map[string]User{
		"unknown org role":       {OrgRole: "org_wizard"},
		"unknown namespace role": {Namespaces: map[string]string{"ns_1": "namespace_wizard"}},
		"empty namespace id":     {Namespaces: map[string]string{"": "namespace_reader"}},
	} {
		t.Run(name, func(t *testing.T) {
			if err := d.SetUser("user_123", u); err == nil {
				t.Fatal("got no error, want one")
			}
			got, _ := d.Permissions("user_123")
			if got.Namespaces[0].Role != "namespace_reader" {
				t.Errorf("role after failed SetUser: got %q, want namespace_reader", got.Namespaces[0].Role)
			}
		})
	}
}

func TestDirectoryDeleteUser(t *testing.T) {
	d := newTestDirectory(t)
	if !d.DeleteUser("user_reader") {
		t.Fatal("first delete: got false, want true")
	}
	if d.DeleteUser("user_reader") {
		t.Error("second delete: got true, want false")
	}
	if _, ok := d.Permissions("user_reader"); ok {
		t.Error("after delete: got found, want not found")
	}
}

func TestNewDirectoryRejectsUnknownRole(t *testing.T) {
	f := testUsers()
	f.Users["bad"] = User{OrgRole: "org_wizard"}
	_, err := NewDirectory(f)
	if err == nil || !strings.Contains(err.Error(), `user "bad": unknown org role "org_wizard"`) {
		t.Errorf("got %v, want unknown org role error", err)
	}
}

func TestNewDirectoryCopiesInput(t *testing.T) {
	f := testUsers()
	d, err := NewDirectory(f)
	if err != nil {
		t.Fatal(err)
	}
	f.Users["user_123"].Namespaces["ns_1"] = "namespace_reader"
	f.Roles["namespace_writer"][0] = "mutated"

	got, _ := d.Permissions("user_123")
	if got.Namespaces[0].Role != "namespace_writer" {
		t.Errorf("role: got %q, want namespace_writer", got.Namespaces[0].Role)
	}
	want := []string{"projects.read", "projects.write"}
	if !reflect.DeepEqual(got.Namespaces[0].Permissions, want) {
		t.Errorf("permissions: got %v, want %v", got.Namespaces[0].Permissions, want)
	}
}

// writeUsersFile writes content to path and sets its modification time,
// so a reload does not depend on the file system's clock resolution.
func writeUsersFile(t *testing.T, path, content string, mtime time.Time) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

const (
	usersV1 = `{"roles": {"r": ["projects.read"], "w": ["projects.read", "projects.write"]},
	            "users": {"u": {"org_role": "", "namespaces": {"ns_1": "w"}}}}`
	usersV2 = `{"roles": {"r": ["projects.read"], "w": ["projects.read", "projects.write"]},
	            "users": {"u": {"org_role": "", "namespaces": {"ns_1": "r"}}}}`
)

func TestDirectoryReloadsChangedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.json")
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	writeUsersFile(t, path, usersV1, t0)

	d, err := LoadDirectory(path, time.Second, nil)
	if err != nil {
		t.Fatalf("LoadDirectory: %v", err)
	}
	clock := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	d.now = func() time.Time { return clock }
	d.checked = clock

	role := func() string {
		t.Helper()
		p, ok := d.Permissions("u")
		if !ok || len(p.Namespaces) != 1 {
			t.Fatalf("got %+v, %v; want u with one namespace", p, ok)
		}
		return p.Namespaces[0].Role
	}
	if got := role(); got != "w" {
		t.Fatalf("initial role: got %q, want w", got)
	}

	// the change is not seen before the interval has passed
	writeUsersFile(t, path, usersV2, t0.Add(time.Minute))
	clock = clock.Add(500 * time.Millisecond)
	if got := role(); got != "w" {
		t.Errorf("role within interval: got %q, want w", got)
	}

	// and is seen after it
	clock = clock.Add(time.Second)
	if got := role(); got != "r" {
		t.Errorf("role after interval: got %q, want r", got)
	}

	// in-memory changes last until the file changes again
	if err := d.SetUser("u", User{Namespaces: map[string]string{"ns_1": "w"}}); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(2 * time.Second)
	if got := role(); got != "w" {
		t.Errorf("role after SetUser: got %q, want w", got)
	}
	writeUsersFile(t, path, usersV2, t0.Add(2*time.Minute))
	clock = clock.Add(2 * time.Second)
	if got := role(); got != "r" {
		t.Errorf("role after file change: got %q, want r", got)
	}
}

func TestDirectoryKeepsUsersOnBadReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.json")
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	writeUsersFile(t, path, usersV1, t0)
	d, err := LoadDirectory(path, 0, nil)
	if err != nil {
		t.Fatal(err)
	}

	for name, content := range map[string]string{
		"bad json":      `{"roles": `,
		"unknown role":  `{"roles": {}, "users": {"u": {"org_role": "nope"}}}`,
		"unknown field": `{"roles": {}, "users": {}, "extra": 1}`,
	} {
		t.Run(name, func(t *testing.T) {
			t0 = t0.Add(time.Minute)
			writeUsersFile(t, path, content, t0)
			p, ok := d.Permissions("u")
			if !ok || p.Namespaces[0].Role != "w" {
				t.Errorf("got %+v, %v; want the previous users kept", p, ok)
			}
		})
	}
}

func TestLoadDirectoryErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	writeUsersFile(t, bad, `{"users": {"u": {"org_role": "nope"}}}`, time.Now())
	trailing := filepath.Join(dir, "trailing.json")
	writeUsersFile(t, trailing, `{} {}`, time.Now())

	for name, path := range map[string]string{
		"missing file":  filepath.Join(dir, "missing.json"),
		"unknown role":  bad,
		"trailing data": trailing,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := LoadDirectory(path, time.Second, nil); err == nil {
				t.Error("got no error, want one")
			}
		})
	}
}

func TestDemoUsersFile(t *testing.T) {
	d, err := LoadDirectory(filepath.Join("..", "users.json"), -1, nil)
	if err != nil {
		t.Fatalf("loading examples/platform/users.json: %v", err)
	}

	tests := []struct {
		user      string
		disabled  bool
		nsRole    string
		orgPerms  []string
		nsPerms   []string
		namespace string
	}{
		{user: "user_123", namespace: "ns_1", nsRole: "namespace_writer",
			orgPerms: []string{"users.read"}, nsPerms: []string{"projects.read", "projects.write"}},
		{user: "user_reader", namespace: "ns_1", nsRole: "namespace_reader",
			orgPerms: []string{"users.read"}, nsPerms: []string{"projects.read"}},
		{user: "user_disabled", disabled: true, namespace: "ns_1", nsRole: "namespace_writer",
			orgPerms: []string{"users.read"}, nsPerms: []string{"projects.read", "projects.write"}},
		{user: "user_admin", orgPerms: []string{"users.read", "users.write"}},
	}
	for _, tt := range tests {
		t.Run(tt.user, func(t *testing.T) {
			p, ok := d.Permissions(tt.user)
			if !ok {
				t.Fatal("got not found, want found")
			}
			if p.Disabled != tt.disabled {
				t.Errorf("disabled: got %v, want %v", p.Disabled, tt.disabled)
			}
			if !reflect.DeepEqual(p.OrgPermissions, tt.orgPerms) {
				t.Errorf("org permissions: got %v, want %v", p.OrgPermissions, tt.orgPerms)
			}
			if tt.namespace == "" {
				return
			}
			var found bool
			for _, ns := range p.Namespaces {
				if ns.NamespaceID != tt.namespace {
					continue
				}
				found = true
				if ns.Role != tt.nsRole || !reflect.DeepEqual(ns.Permissions, tt.nsPerms) {
					t.Errorf("%s: got %s %v, want %s %v", tt.namespace, ns.Role, ns.Permissions, tt.nsRole, tt.nsPerms)
				}
			}
			if !found {
				t.Errorf("namespaces: got %+v, want %s", p.Namespaces, tt.namespace)
			}
		})
	}
}
