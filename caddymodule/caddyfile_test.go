package dbnlauth

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	dur := func(d time.Duration) *caddy.Duration { c := caddy.Duration(d); return &c }
	tests := []struct {
		name  string
		input string
		want  Handler
	}{
		{
			name:  "empty block",
			input: `dbnl_auth`,
			want:  Handler{},
		},
		{
			name:  "empty braces",
			input: "dbnl_auth {\n}",
			want:  Handler{},
		},
		{
			name: "hmac key",
			input: `dbnl_auth {
				hmac_key {env.DBNL_PAT_SECRET}
			}`,
			want: Handler{HMACKeys: []HMACKey{{Secret: "{env.DBNL_PAT_SECRET}"}}},
		},
		{
			name: "repeated keys with kids",
			input: `dbnl_auth {
				hmac_key {env.SECRET_1} k1
				hmac_key {env.SECRET_2} k2
				hmac_key {env.SECRET_3}
				public_key /etc/dbnl/rsa.pem rsa-1
				public_key /etc/dbnl/ed.pem
			}`,
			want: Handler{
				HMACKeys: []HMACKey{
					{Secret: "{env.SECRET_1}", KID: "k1"},
					{Secret: "{env.SECRET_2}", KID: "k2"},
					{Secret: "{env.SECRET_3}"},
				},
				PublicKeys: []PublicKey{
					{File: "/etc/dbnl/rsa.pem", KID: "rsa-1"},
					{File: "/etc/dbnl/ed.pem"},
				},
			},
		},
		{
			name: "lists accumulate",
			input: `dbnl_auth {
				issuer dbnl
				issuer dbnl-staging other
				audience dbnl-api
				audience dbnl-admin
				algorithms HS256 ES256
				algorithms EdDSA
			}`,
			want: Handler{
				Issuers:    []string{"dbnl", "dbnl-staging", "other"},
				Audiences:  []string{"dbnl-api", "dbnl-admin"},
				Algorithms: []string{"HS256", "ES256", "EdDSA"},
			},
		},
		{
			name: "every subdirective",
			input: `dbnl_auth {
				hmac_key               {env.DBNL_PAT_SECRET} hmac-1
				public_key             /etc/dbnl/rsa.pem rsa-1
				issuer                 dbnl
				audience               dbnl-api
				algorithms             HS256 RS256
				leeway                 10s
				user_claim             user_id
				permissions_url        "http://127.0.0.1:9080/v0/users/{user}/permissions"
				permissions_ttl        1m
				permissions_timeout    500ms
				permissions_cache_size 1000
				permissions_in_flight  8
				token_cache_size       2000
				header_prefix          X-Acme-
				max_token_bytes        4096
				strip_authorization
			}`,
			want: Handler{
				HMACKeys:             []HMACKey{{Secret: "{env.DBNL_PAT_SECRET}", KID: "hmac-1"}},
				PublicKeys:           []PublicKey{{File: "/etc/dbnl/rsa.pem", KID: "rsa-1"}},
				Issuers:              []string{"dbnl"},
				Audiences:            []string{"dbnl-api"},
				Algorithms:           []string{"HS256", "RS256"},
				Leeway:               dur(10 * time.Second),
				UserClaim:            "user_id",
				PermissionsURL:       "http://127.0.0.1:9080/v0/users/{user}/permissions",
				PermissionsTTL:       caddy.Duration(time.Minute),
				PermissionsTimeout:   caddy.Duration(500 * time.Millisecond),
				PermissionsCacheSize: 1000,
				PermissionsInFlight:  8,
				TokenCacheSize:       2000,
				HeaderPrefix:         "X-Acme-",
				MaxTokenBytes:        4096,
				StripAuthorization:   true,
			},
		},
		{
			name: "zero leeway",
			input: `dbnl_auth {
				leeway 0s
			}`,
			want: Handler{Leeway: dur(0)},
		},
		{
			name: "day duration",
			input: `dbnl_auth {
				permissions_ttl 1d
			}`,
			want: Handler{PermissionsTTL: caddy.Duration(24 * time.Hour)},
		},
		{
			name: "zero numbers",
			input: `dbnl_auth {
				max_token_bytes 0
				token_cache_size 0
			}`,
			want: Handler{},
		},
		{
			name: "last value wins",
			input: `dbnl_auth {
				user_claim sub
				user_claim email
			}`,
			want: Handler{UserClaim: "email"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got Handler
			if err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input)); err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				gotJSON, _ := json.Marshal(got)
				wantJSON, _ := json.Marshal(tt.want)
				t.Errorf("got %s, want %s", gotJSON, wantJSON)
			}
		})
	}
}

func TestUnmarshalCaddyfileErrors(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  string
	}{
		{name: "argument on the directive", input: `dbnl_auth foo`, want: "wrong argument count"},
		{name: "unknown subdirective", input: "dbnl_auth {\n\tsecret abc\n}", want: "unrecognized subdirective 'secret'"},
		{name: "hmac_key without argument", input: "dbnl_auth {\n\thmac_key\n}", want: "wrong argument count"},
		{name: "hmac_key with three arguments", input: "dbnl_auth {\n\thmac_key a b c\n}", want: "wrong argument count"},
		{name: "public_key without argument", input: "dbnl_auth {\n\tpublic_key\n}", want: "wrong argument count"},
		{name: "public_key with three arguments", input: "dbnl_auth {\n\tpublic_key a b c\n}", want: "wrong argument count"},
		{name: "issuer without argument", input: "dbnl_auth {\n\tissuer\n}", want: "wrong argument count"},
		{name: "audience without argument", input: "dbnl_auth {\n\taudience\n}", want: "wrong argument count"},
		{name: "algorithms without argument", input: "dbnl_auth {\n\talgorithms\n}", want: "wrong argument count"},
		{name: "leeway without argument", input: "dbnl_auth {\n\tleeway\n}", want: "wrong argument count"},
		{name: "leeway with two arguments", input: "dbnl_auth {\n\tleeway 1s 2s\n}", want: "wrong argument count"},
		{name: "user_claim without argument", input: "dbnl_auth {\n\tuser_claim\n}", want: "wrong argument count"},
		{name: "user_claim with two arguments", input: "dbnl_auth {\n\tuser_claim sub email\n}", want: "wrong argument count"},
		{name: "permissions_url without argument", input: "dbnl_auth {\n\tpermissions_url\n}", want: "wrong argument count"},
		{name: "header_prefix without argument", input: "dbnl_auth {\n\theader_prefix\n}", want: "wrong argument count"},
		{name: "strip_authorization with argument", input: "dbnl_auth {\n\tstrip_authorization yes\n}", want: "wrong argument count"},
		{name: "bad leeway", input: "dbnl_auth {\n\tleeway soon\n}", want: "leeway: invalid duration 'soon'"},
		{name: "bad permissions_ttl", input: "dbnl_auth {\n\tpermissions_ttl 5\n}", want: "permissions_ttl: invalid duration '5'"},
		{name: "bad permissions_timeout", input: "dbnl_auth {\n\tpermissions_timeout 2x\n}", want: "permissions_timeout: invalid duration '2x'"},
		{name: "permissions_ttl without argument", input: "dbnl_auth {\n\tpermissions_ttl\n}", want: "wrong argument count"},
		{name: "negative max_token_bytes", input: "dbnl_auth {\n\tmax_token_bytes -1\n}", want: "max_token_bytes: invalid number '-1'"},
		{name: "negative permissions_cache_size", input: "dbnl_auth {\n\tpermissions_cache_size -5\n}", want: "permissions_cache_size: invalid number '-5'"},
		{name: "negative permissions_in_flight", input: "dbnl_auth {\n\tpermissions_in_flight -1\n}", want: "permissions_in_flight: invalid number '-1'"},
		{name: "negative token_cache_size", input: "dbnl_auth {\n\ttoken_cache_size -1\n}", want: "token_cache_size: invalid number '-1'"},
		{name: "non-numeric max_token_bytes", input: "dbnl_auth {\n\tmax_token_bytes 8k\n}", want: "max_token_bytes: invalid number '8k'"},
		{name: "max_token_bytes without argument", input: "dbnl_auth {\n\tmax_token_bytes\n}", want: "wrong argument count"},
		{name: "token_cache_size with two arguments", input: "dbnl_auth {\n\ttoken_cache_size 1 2\n}", want: "wrong argument count"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Handler
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
			if err == nil {
				t.Fatalf("got no error, want one containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got error %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestCaddyfileAdapt adapts each testdata/caddyfile_adapt/*.caddyfiletest
// (a Caddyfile, a line of ----------, the expected JSON) and compares
// the JSON. Set DBNL_UPDATE_GOLDEN=1 to rewrite the expected JSON.
func TestCaddyfileAdapt(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "caddyfile_adapt", "*.caddyfiletest"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("got no golden files, want some in testdata/caddyfile_adapt")
	}
	update := os.Getenv("DBNL_UPDATE_GOLDEN") == "1"
	const separator = "\n----------\n"

	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".caddyfiletest")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			input, want, ok := strings.Cut(string(data), separator)
			if !ok {
				t.Fatalf("got no %q line in %s, want one between the Caddyfile and the JSON", strings.TrimSpace(separator), file)
			}

			adapter := caddyconfig.GetAdapter("caddyfile")
			if adapter == nil {
				t.Fatal("got no caddyfile adapter, want one registered")
			}
			got, warnings, err := adapter.Adapt([]byte(input+"\n"), nil)
			if err != nil {
				t.Fatalf("adapting: %v", err)
			}
			for _, w := range warnings {
				t.Errorf("got warning %s:%d: %s, want none", w.File, w.Line, w.Message)
			}

			gotJSON := unitIndentJSON(t, got)
			if update {
				out := input + separator + gotJSON
				if err := os.WriteFile(file, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if wantJSON := unitIndentJSON(t, []byte(want)); gotJSON != wantJSON {
				t.Errorf("got adapted JSON\n%s\nwant\n%s", gotJSON, wantJSON)
			}
		})
	}
}

// unitIndentJSON normalizes a JSON document: keys sorted, tab-indented,
// ending with a newline.
func unitIndentJSON(t *testing.T, data []byte) string {
	t.Helper()
	var v any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decoding JSON %q: %v", data, err)
	}
	out, err := json.MarshalIndent(v, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	return string(out) + "\n"
}

// TestCaddyfileAdaptedConfigLoads checks that the JSON the adapter
// makes of a full dbnl_auth block decodes into the handler and
// provisions.
func TestCaddyfileAdaptedConfigLoads(t *testing.T) {
	api := newUsersAPI(t)
	t.Setenv("DBNL_UNIT_ADAPT_SECRET", testSecret)
	input := `dbnl_auth {
		hmac_key {env.DBNL_UNIT_ADAPT_SECRET} k1
		public_key ` + keysFor(t)["p256"].pemFile + ` k2
		issuer dbnl
		audience dbnl-api
		leeway 5s
		permissions_url ` + api.URL + `/v0/users/{user}/permissions
		permissions_ttl 1s
		strip_authorization
	}`
	var parsed Handler
	if err := parsed.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)); err != nil {
		t.Fatalf("parsing: %v", err)
	}
	raw, err := json.Marshal(parsed)
	if err != nil {
		t.Fatal(err)
	}
	var h Handler
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatalf("decoding %s: %v", raw, err)
	}
	if !reflect.DeepEqual(h, parsed) {
		t.Errorf("got %+v after a JSON round trip, want %+v", h, parsed)
	}
	h.now = func() time.Time { return testNow }
	ctx, cancel := caddy.NewContext(caddy.Context{Context: t.Context()})
	defer cancel()
	if err := h.Provision(ctx); err != nil {
		t.Fatalf("provisioning: %v", err)
	}
	defer h.Cleanup()
	if err := h.Validate(); err != nil {
		t.Fatalf("validating: %v", err)
	}
	if time.Duration(*h.Leeway) != 5*time.Second || len(h.keys) != 2 {
		t.Errorf("got leeway %v and %d keys, want 5s and 2", time.Duration(*h.Leeway), len(h.keys))
	}
}
