package dbnlauth

import (
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"testing"
)

func TestHeaderSetHasPrefix(t *testing.T) {
	tests := []struct {
		name   string
		prefix string
		header string
		want   bool
	}{
		{name: "canonical", prefix: "X-Dbnl-", header: "X-Dbnl-User-Id", want: true},
		{name: "lowercase", prefix: "X-Dbnl-", header: "x-dbnl-user-id", want: true},
		{name: "uppercase", prefix: "X-Dbnl-", header: "X-DBNL-USER-ID", want: true},
		{name: "underscores", prefix: "X-Dbnl-", header: "X_Dbnl_User_Id", want: true},
		{name: "mixed separators and case", prefix: "X-Dbnl-", header: "x_DBNL-user_id", want: true},
		{name: "prefix only", prefix: "X-Dbnl-", header: "X-Dbnl-", want: true},
		{name: "unknown suffix", prefix: "X-Dbnl-", header: "X-Dbnl-Anything", want: true},
		{name: "shorter than prefix", prefix: "X-Dbnl-", header: "X-Dbnl", want: false},
		{name: "different word", prefix: "X-Dbnl-", header: "X-Dbnlx-User-Id", want: false},
		{name: "other header", prefix: "X-Dbnl-", header: "Authorization", want: false},
		{name: "prefix inside", prefix: "X-Dbnl-", header: "X-Forwarded-X-Dbnl-User-Id", want: false},
		{name: "empty", prefix: "X-Dbnl-", header: "", want: false},
		{name: "custom prefix", prefix: "X-Acme-", header: "X-Acme-User-Id", want: true},
		{name: "custom prefix underscores", prefix: "X-Acme-", header: "x_acme_user_id", want: true},
		{name: "custom prefix default header", prefix: "X-Acme-", header: "X-Dbnl-User-Id", want: false},
		{name: "lowercase custom prefix", prefix: "x-acme-", header: "X-ACME-USER-ID", want: true},
		{name: "underscore custom prefix", prefix: "X_Acme_", header: "X-Acme-User-Id", want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := newHeaderSet(tt.prefix).hasPrefix(tt.header); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestHeaderSetNames(t *testing.T) {
	tests := []struct {
		name   string
		prefix string
		want   []string
	}{
		{name: "default", prefix: defaultHeaderPrefix, want: []string{
			"X-Dbnl-User-Id", "X-Dbnl-Org-Role", "X-Dbnl-Permissions", "X-Dbnl-Namespace-Id",
			"X-Dbnl-Namespace-Role", "X-Dbnl-Namespace-Roles", "X-Dbnl-Token-Id"}},
		{name: "custom", prefix: "X-Acme-", want: []string{
			"X-Acme-User-Id", "X-Acme-Org-Role", "X-Acme-Permissions", "X-Acme-Namespace-Id",
			"X-Acme-Namespace-Role", "X-Acme-Namespace-Roles", "X-Acme-Token-Id"}},
		{name: "lowercase custom", prefix: "x-acme-", want: []string{
			"X-Acme-User-Id", "X-Acme-Org-Role", "X-Acme-Permissions", "X-Acme-Namespace-Id",
			"X-Acme-Namespace-Role", "X-Acme-Namespace-Roles", "X-Acme-Token-Id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := newHeaderSet(tt.prefix)
			got := []string{hs.userID, hs.orgRole, hs.permissions, hs.namespaceID,
				hs.namespaceRole, hs.namespaceRoles, hs.tokenID}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			// every name we set is one we strip
			for _, name := range got {
				if !hs.hasPrefix(name) {
					t.Errorf("got %s not matching its own prefix, want it to match", name)
				}
			}
		})
	}
}

func TestHeaderSetStrip(t *testing.T) {
	tests := []struct {
		name   string
		prefix string
		in     http.Header
		want   http.Header
	}{
		{
			name:   "default prefix",
			prefix: "X-Dbnl-",
			in: http.Header{
				"X-Dbnl-User-Id":  {"admin"},
				"x-dbnl-org-role": {"org_admin"},
				"X_Dbnl_Perms":    {"everything"},
				"X-DBNL-TOKEN-ID": {"t"},
				"X-Dbnlish":       {"kept"},
				"Accept":          {"application/json"},
				"Authorization":   {"Bearer a.b.c"},
			},
			want: http.Header{
				"X-Dbnlish":     {"kept"},
				"Accept":        {"application/json"},
				"Authorization": {"Bearer a.b.c"},
			},
		},
		{
			name:   "custom prefix",
			prefix: "X-Acme-",
			in: http.Header{
				"X-Acme-User-Id": {"admin"},
				"x_acme_role":    {"admin"},
				"X-Dbnl-User-Id": {"kept"},
			},
			want: http.Header{"X-Dbnl-User-Id": {"kept"}},
		},
		{name: "nil header", prefix: "X-Dbnl-", in: nil, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			newHeaderSet(tt.prefix).strip(tt.in)
			if !reflect.DeepEqual(tt.in, tt.want) {
				t.Errorf("got %v, want %v", tt.in, tt.want)
			}
		})
	}
}

func TestNormalizeHeaderName(t *testing.T) {
	for in, want := range map[string]string{
		"X-Dbnl-":        "x-dbnl-",
		"X_DBNL_":        "x-dbnl-",
		"x-dbnl-":        "x-dbnl-",
		"X-Acme.Corp_1-": "x-acme-corp-1-",
	} {
		if got := normalizeHeaderName(in); got != want {
			t.Errorf("normalizeHeaderName(%q): got %q, want %q", in, got, want)
		}
	}
}

func TestNewGrants(t *testing.T) {
	tests := []struct {
		name string
		in   *Permissions
		want *grants
	}{
		{
			name: "sorted and merged",
			in: &Permissions{
				UserID: "user_123", OrgRole: "org_reader",
				OrgPermissions: []string{"users.read", "orgs.read"},
				Namespaces: []NamespaceGrant{
					{NamespaceID: "ns_2", Role: "namespace_reader", Permissions: []string{"projects.read"}},
					{NamespaceID: "ns_1", Role: "namespace_writer", Permissions: []string{"projects.write", "projects.read"}},
				},
			},
			want: &grants{
				userID: "user_123", orgRole: "org_reader",
				orgPermissions: "orgs.read,users.read",
				namespaceRoles: "ns_1=namespace_writer,ns_2=namespace_reader",
				namespaces: map[string]namespaceGrants{
					"ns_1": {role: "namespace_writer", permissions: "orgs.read,projects.read,projects.write,users.read"},
					"ns_2": {role: "namespace_reader", permissions: "orgs.read,projects.read,users.read"},
				},
			},
		},
		{
			name: "duplicates dropped",
			in: &Permissions{
				UserID:         "u",
				OrgPermissions: []string{"b", "a", "b", "a"},
				Namespaces: []NamespaceGrant{
					{NamespaceID: "ns", Role: "r", Permissions: []string{"a", "c", "c"}},
				},
			},
			want: &grants{
				userID: "u", orgPermissions: "a,b", namespaceRoles: "ns=r",
				namespaces: map[string]namespaceGrants{"ns": {role: "r", permissions: "a,b,c"}},
			},
		},
		{
			name: "first grant of a namespace wins",
			in: &Permissions{
				UserID: "u",
				Namespaces: []NamespaceGrant{
					{NamespaceID: "ns", Role: "namespace_reader", Permissions: []string{"p.read"}},
					{NamespaceID: "ns", Role: "namespace_admin", Permissions: []string{"p.delete"}},
				},
			},
			want: &grants{
				userID: "u", namespaceRoles: "ns=namespace_reader",
				namespaces: map[string]namespaceGrants{"ns": {role: "namespace_reader", permissions: "p.read"}},
			},
		},
		{
			name: "empty",
			in:   &Permissions{UserID: "u"},
			want: &grants{userID: "u", namespaces: map[string]namespaceGrants{}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// the placeholder values are the strings, boxed
			want := tt.want
			want.userIDValue, want.orgRoleValue, want.orgPermissionsValue = want.userID, want.orgRole, want.orgPermissions
			for id, ns := range want.namespaces {
				ns.idValue, ns.roleValue, ns.permissionsValue = id, ns.role, ns.permissions
				want.namespaces[id] = ns
			}
			if got := newGrants(tt.in); !reflect.DeepEqual(got, want) {
				t.Errorf("got %+v, want %+v", got, want)
			}
		})
	}
}

func TestJoinSortedKeepsInput(t *testing.T) {
	in := []string{"c", "a", "b", "a"}
	if got := joinSorted(in); got != "a,b,c" {
		t.Errorf("got %q, want a,b,c", got)
	}
	if want := []string{"c", "a", "b", "a"}; !reflect.DeepEqual(in, want) {
		t.Errorf("got input %v after joining, want it unchanged %v", in, want)
	}
}

func TestRequestNamespace(t *testing.T) {
	tests := []struct {
		name    string
		query   string
		want    string
		wantErr error
	}{
		{name: "no query", query: ""},
		{name: "absent", query: "a=1&b=2"},
		{name: "one", query: "namespace_id=ns_1", want: "ns_1"},
		{name: "among others", query: "a=1&namespace_id=ns_1&b=2", want: "ns_1"},
		{name: "repeated same", query: "namespace_id=ns_1&namespace_id=ns_1", want: "ns_1"},
		{name: "empty value", query: "namespace_id=", want: ""},
		// a platform taking the first or the last value would read no
		// namespace while the gateway granted ns_1's permissions
		{name: "empty and one", query: "namespace_id=&namespace_id=ns_1", wantErr: errAmbiguousNamespace},
		{name: "one and empty", query: "namespace_id=ns_1&namespace_id=", wantErr: errAmbiguousNamespace},
		{name: "semicolon", query: "a=1;namespace_id=ns_2&namespace_id=ns_1", wantErr: errBadQuery},
		{name: "bad escape", query: "q=100%", wantErr: errBadQuery},
		{name: "raw hash", query: "namespace_id=ns_1#", wantErr: errBadQuery},
		{name: "raw hash elsewhere", query: "namespace_id=ns_1&q=a#b", wantErr: errBadQuery},
		{name: "encoded hash", query: "namespace_id=ns%231", want: "ns#1"},
		{name: "conflicting", query: "namespace_id=ns_1&namespace_id=ns_2", wantErr: errAmbiguousNamespace},
		{name: "conflicting after same", query: "namespace_id=ns_1&namespace_id=ns_1&namespace_id=ns_2", wantErr: errAmbiguousNamespace},
		{name: "encoded key", query: "namespace%5Fid=ns_1", want: "ns_1"},
		{name: "encoded key conflicting", query: "namespace_id=ns_1&namespace%5fid=ns_2", wantErr: errAmbiguousNamespace},
		{name: "encoded value", query: "namespace_id=ns%5F1", want: "ns_1"},
		{name: "encoded value same as plain", query: "namespace_id=ns%5F1&namespace_id=ns_1", want: "ns_1"},
		{name: "key differing in case", query: "Namespace_Id=ns_1", want: ""},
		{name: "similar key", query: "namespace_ids=ns_1", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := requestNamespace(&url.URL{Path: "/v0/projects", RawQuery: tt.query})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got error %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}

	t.Run("nil url", func(t *testing.T) {
		if got, err := requestNamespace(nil); got != "" || err != nil {
			t.Errorf("got %q, %v; want empty and no error", got, err)
		}
	})
}

// TestHeaderSetValuesCapped checks that the identity header values,
// which share one array, cannot be written over through one another: a
// handler appending to one value must not change the next.
func TestHeaderSetValuesCapped(t *testing.T) {
	hs := newHeaderSet(defaultHeaderPrefix)
	g := newGrants(&Permissions{
		UserID: "user_123", OrgRole: "org_reader", OrgPermissions: []string{"users.read"},
		Namespaces: []NamespaceGrant{{
			NamespaceID: "ns_1", Role: "namespace_writer", Permissions: []string{"projects.read"},
		}},
	})
	ns := g.namespaces["ns_1"]
	h := http.Header{}
	hs.set(h, g, "ns_1", &ns, "tok-1")

	want := http.Header{
		"X-Dbnl-User-Id":         {"user_123"},
		"X-Dbnl-Org-Role":        {"org_reader"},
		"X-Dbnl-Namespace-Id":    {"ns_1"},
		"X-Dbnl-Namespace-Role":  {"namespace_writer"},
		"X-Dbnl-Permissions":     {"projects.read,users.read"},
		"X-Dbnl-Namespace-Roles": {"ns_1=namespace_writer"},
		"X-Dbnl-Token-Id":        {"tok-1"},
	}
	if !reflect.DeepEqual(h, want) {
		t.Fatalf("got %v, want %v", h, want)
	}
	for name := range want {
		h[name] = append(h[name], "appended")
		h.Add(name, "added")
	}
	for name, values := range want {
		if got := h[name]; len(got) != 3 || got[0] != values[0] {
			t.Errorf("got %s = %q, want %q then the two additions", name, got, values[0])
		}
	}
}
