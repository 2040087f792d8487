package main

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// parseMinted checks that stdout holds one token on one line and verifies
// it with golang-jwt against verifyKey, the way the gateway would.
func parseMinted(t *testing.T, stdout, alg string, verifyKey any, opts ...jwt.ParserOption) (*jwt.Token, jwt.MapClaims) {
	t.Helper()

	if !strings.HasSuffix(stdout, "\n") || strings.Count(stdout, "\n") != 1 {
		t.Fatalf("got stdout %q, want one token and a newline", stdout)
	}
	raw := strings.TrimSuffix(stdout, "\n")

	opts = append([]jwt.ParserOption{
		jwt.WithValidMethods([]string{alg}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(func() time.Time { return fixedNow }),
	}, opts...)
	claims := jwt.MapClaims{}
	tok, err := jwt.NewParser(opts...).ParseWithClaims(raw, claims, func(*jwt.Token) (any, error) {
		return verifyKey, nil
	})
	if err != nil {
		t.Fatalf("verifying minted token: got error %v, want none", err)
	}
	return tok, claims
}

func TestMintVerifiesForEveryAlgorithm(t *testing.T) {
	k := getTestKeys(t)
	dir := t.TempDir()
	tests := []struct {
		alg    string
		key    crypto.Signer // nil for HMAC
		format pemFormat
	}{
		{alg: "HS256"},
		{alg: "HS384"},
		{alg: "HS512"},
		{alg: "RS256", key: k.rsa, format: pkcs1},
		{alg: "RS384", key: k.rsa, format: pkcs8},
		{alg: "RS512", key: k.rsa, format: pkcs1},
		{alg: "PS256", key: k.rsa, format: pkcs8},
		{alg: "PS384", key: k.rsa, format: pkcs1},
		{alg: "PS512", key: k.rsa, format: pkcs8},
		{alg: "ES256", key: k.p256, format: sec1},
		{alg: "ES384", key: k.p384, format: pkcs8},
		{alg: "ES512", key: k.p521, format: sec1},
		{alg: "EdDSA", key: k.ed25519, format: pkcs8},
	}
	if len(tests) != len(algorithms) {
		t.Fatalf("got %d cases, want one for each of the %d algorithms", len(tests), len(algorithms))
	}
	for _, tt := range tests {
		t.Run(strings.ToLower(tt.alg), func(t *testing.T) {
			args := []string{"mint", "--user", "user_123", "--alg", tt.alg, "--kid", "kid-" + tt.alg,
				"--issuer", "dbnl", "--audience", "dbnl-api"}
			var verifyKey any = []byte(testSecret)
			if tt.key != nil {
				args = append(args, "--key", writeKey(t, dir, tt.alg+".pem", tt.key, tt.format))
				verifyKey = tt.key.Public()
			}

			stdout, stderr, err := runPAT(t, secretEnv(), "", args...)
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if stderr != "" {
				t.Errorf("got stderr %q, want none", stderr)
			}
			tok, claims := parseMinted(t, stdout, tt.alg, verifyKey,
				jwt.WithIssuer("dbnl"), jwt.WithAudience("dbnl-api"))
			if got := tok.Method.Alg(); got != tt.alg {
				t.Errorf("got alg %s, want %s", got, tt.alg)
			}
			if got := tok.Header["kid"]; got != "kid-"+tt.alg {
				t.Errorf("got kid %v, want kid-%s", got, tt.alg)
			}
			if got := claims["sub"]; got != "user_123" {
				t.Errorf("got sub %v, want user_123", got)
			}
		})
	}
}

func TestMintClaims(t *testing.T) {
	stdout, _, err := runPAT(t, secretEnv(), "", "mint",
		"--user", "user_123",
		"--issuer", "dbnl",
		"--audience", "dbnl-api", "--audience", "dbnl-admin",
		"--lifetime", "90m",
		"--not-before", "-1m",
		"--jti", "tok-1",
		"--claim", "team=ml", "--claim", "note=a=b,c")
	if err != nil {
		t.Fatalf("got error %v, want none", err)
	}
	_, claims := parseMinted(t, stdout, "HS256", []byte(testSecret))

	want := map[string]any{
		"sub":  "user_123",
		"iss":  "dbnl",
		"aud":  []any{"dbnl-api", "dbnl-admin"},
		"iat":  float64(fixedNow.Unix()),
		"exp":  float64(fixedNow.Add(90 * time.Minute).Unix()),
		"nbf":  float64(fixedNow.Add(-time.Minute).Unix()),
		"jti":  "tok-1",
		"team": "ml",
		"note": "a=b,c",
	}
	for name, w := range want {
		if got := claims[name]; !reflect.DeepEqual(got, w) {
			t.Errorf("got %s %#v, want %#v", name, got, w)
		}
	}
	if len(claims) != len(want) {
		t.Errorf("got %d claims %v, want %d", len(claims), claims, len(want))
	}
}

func TestMintDefaults(t *testing.T) {
	var jtis []string
	for range 2 {
		stdout, _, err := runPAT(t, secretEnv(), "", "mint", "--user", "user_123")
		if err != nil {
			t.Fatalf("got error %v, want none", err)
		}
		tok, claims := parseMinted(t, stdout, "HS256", []byte(testSecret))

		if got, want := claims["exp"], float64(fixedNow.Add(time.Hour).Unix()); got != want {
			t.Errorf("got exp %v, want %v (an hour from now)", got, want)
		}
		for _, name := range []string{"iss", "aud", "nbf"} {
			if got, ok := claims[name]; ok {
				t.Errorf("got %s %v, want it absent", name, got)
			}
		}
		if _, ok := tok.Header["kid"]; ok {
			t.Errorf("got kid header %v, want none", tok.Header["kid"])
		}
		jti, _ := claims["jti"].(string)
		if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(jti) {
			t.Errorf("got jti %q, want 32 hex characters", jti)
		}
		jtis = append(jtis, jti)
	}
	if jtis[0] == jtis[1] {
		t.Errorf("got the same jti %s twice, want a random one each time", jtis[0])
	}
}

func TestMintOptions(t *testing.T) {
	tests := []struct {
		name       string
		vars       map[string]string
		args       []string
		want       map[string]any // claims that must have these values
		absent     []string       // claims that must be missing
		wantStderr string
	}{
		{
			name: "one audience is a string",
			args: []string{"--audience", "dbnl-api"},
			want: map[string]any{"aud": "dbnl-api"},
		},
		{
			name:   "user in another claim",
			args:   []string{"--user-claim", "uid"},
			want:   map[string]any{"uid": "user_123"},
			absent: []string{"sub"},
		},
		{
			name:   "empty jti leaves it out",
			args:   []string{"--jti="},
			absent: []string{"jti"},
		},
		{
			name: "expires at a fixed time",
			args: []string{"--expires-at", "2030-01-02T05:00:00Z"},
			want: map[string]any{"exp": float64(time.Date(2030, 1, 2, 5, 0, 0, 0, time.UTC).Unix())},
		},
		{
			name: "expires at a time with an offset",
			args: []string{"--expires-at", "2030-01-02T06:00:00+01:00"},
			want: map[string]any{"exp": float64(time.Date(2030, 1, 2, 5, 0, 0, 0, time.UTC).Unix())},
		},
		{
			name: "secret from another variable",
			vars: map[string]string{"OTHER_SECRET": testSecret},
			args: []string{"--hmac-secret-env", "OTHER_SECRET"},
			want: map[string]any{"sub": "user_123"},
		},
		{
			name: "secret of exactly 32 bytes",
			vars: map[string]string{defaultSecretEnv: strings.Repeat("k", 32)},
			want: map[string]any{"sub": "user_123"},
		},
		{
			name: "secret variable with a 64-character name",
			vars: map[string]string{longEnvName: testSecret},
			args: []string{"--hmac-secret-env", longEnvName},
			want: map[string]any{"sub": "user_123"},
		},
		{
			name: "lowercase algorithm",
			args: []string{"--alg", "hs256"},
			want: map[string]any{"sub": "user_123"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vars := tt.vars
			if vars == nil {
				vars = map[string]string{defaultSecretEnv: testSecret}
			}
			args := append([]string{"mint", "--user", "user_123"}, tt.args...)
			stdout, stderr, err := runPAT(t, testEnv(vars), "", args...)
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if !strings.Contains(stderr, tt.wantStderr) || (tt.wantStderr == "" && stderr != "") {
				t.Errorf("got stderr %q, want %q", stderr, tt.wantStderr)
			}
			secret := vars[defaultSecretEnv] + vars["OTHER_SECRET"] + vars[longEnvName]
			if strings.Contains(stderr, secret) {
				t.Errorf("got stderr %q, want it free of the secret", stderr)
			}

			_, claims := parseMinted(t, stdout, "HS256", []byte(secret))
			for name, w := range tt.want {
				if got := claims[name]; !reflect.DeepEqual(got, w) {
					t.Errorf("got %s %#v, want %#v", name, got, w)
				}
			}
			for _, name := range tt.absent {
				if got, ok := claims[name]; ok {
					t.Errorf("got %s %v, want it absent", name, got)
				}
			}
		})
	}
}

func TestMintExpiredWarns(t *testing.T) {
	stdout, stderr, err := runPAT(t, secretEnv(), "", "mint", "--user", "u",
		"--expires-at", "2030-01-01T00:00:00Z")
	if err != nil {
		t.Fatalf("got error %v, want none", err)
	}
	if want := "warning: the token is already expired\n"; stderr != want {
		t.Errorf("got stderr %q, want %q", stderr, want)
	}
	if strings.Count(stdout, ".") != 2 {
		t.Errorf("got stdout %q, want a token", stdout)
	}
}

func TestMintErrors(t *testing.T) {
	k := getTestKeys(t)
	dir := t.TempDir()
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatalf("generating RSA key: %v", err)
	}
	rsaKey := writeKey(t, dir, "rsa.pem", k.rsa, pkcs8)
	smallKey := writeKey(t, dir, "small.pem", small, pkcs1)
	p256Key := writeKey(t, dir, "p256.pem", k.p256, sec1)
	p384Key := writeKey(t, dir, "p384.pem", k.p384, pkcs8)
	edKey := writeKey(t, dir, "ed.pem", k.ed25519, pkcs8)
	pubKey := writePublicKey(t, dir, "pub.pem", k.p256)
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	encrypted := filepath.Join(dir, "enc.pem")
	encPEM := pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1, 2, 3}})
	if err := os.WriteFile(encrypted, encPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	noSecret := map[string]string{}

	tests := []struct {
		name    string
		vars    map[string]string // nil: DBNL_PAT_SECRET set
		args    []string
		wantErr string
	}{
		{name: "missing user", args: []string{}, wantErr: "--user is required"},
		{name: "empty user", args: []string{"--user", ""}, wantErr: "--user is required"},
		{name: "missing secret", vars: noSecret, args: []string{"--user", "u"},
			wantErr: "--hmac-secret-env: environment variable DBNL_PAT_SECRET is not set or is empty"},
		{name: "missing named secret", args: []string{"--user", "u", "--hmac-secret-env", "MY_SECRET"},
			wantErr: "--hmac-secret-env: environment variable MY_SECRET is not set or is empty"},
		{name: "secret pasted as flag", args: []string{"--user", "u", "--hmac-secret-env", "s3cr3t value"},
			wantErr: "--hmac-secret-env: takes the name of an environment variable, not a value"},
		{name: "short secret", vars: map[string]string{defaultSecretEnv: "tiny-k3y"}, args: []string{"--user", "u"},
			wantErr: "--hmac-secret-env: the secret in DBNL_PAT_SECRET is 8 bytes; the gateway requires at least 32"},
		{name: "short named secret", vars: map[string]string{"MY_SECRET": strings.Repeat("k", 31)},
			args:    []string{"--user", "u", "--hmac-secret-env", "MY_SECRET"},
			wantErr: "--hmac-secret-env: the secret in MY_SECRET is 31 bytes; the gateway requires at least 32"},
		{name: "empty secret env name", args: []string{"--user", "u", "--hmac-secret-env", ""},
			wantErr: "--hmac-secret-env: want the name of an environment variable"},
		{name: "key with hmac", args: []string{"--user", "u", "--key", rsaKey},
			wantErr: "--key: HS256 signs with an HMAC secret, not a key file"},
		{name: "secret env with asymmetric", args: []string{"--user", "u", "--alg", "ES256", "--key", p256Key, "--hmac-secret-env", "X"},
			wantErr: "--hmac-secret-env: ES256 signs with a private key, not an HMAC secret"},
		{name: "asymmetric without key", args: []string{"--user", "u", "--alg", "RS256"},
			wantErr: "--key: RS256 needs a PEM private key file (RSA)"},
		{name: "rsa alg with ec key", args: []string{"--user", "u", "--alg", "RS256", "--key", p256Key},
			wantErr: "RS256 needs an RSA key, got an ECDSA P-256 key"},
		{name: "pss alg with ed25519 key", args: []string{"--user", "u", "--alg", "PS256", "--key", edKey},
			wantErr: "PS256 needs an RSA key, got an Ed25519 key"},
		{name: "ec alg with rsa key", args: []string{"--user", "u", "--alg", "ES256", "--key", rsaKey},
			wantErr: "ES256 needs an ECDSA key, got an RSA key"},
		{name: "ec alg with wrong curve", args: []string{"--user", "u", "--alg", "ES256", "--key", p384Key},
			wantErr: "ES256 needs an ECDSA P-256 key, got P-384"},
		{name: "eddsa with ec key", args: []string{"--user", "u", "--alg", "EdDSA", "--key", p256Key},
			wantErr: "EdDSA needs an Ed25519 key, got an ECDSA P-256 key"},
		{name: "small rsa key", args: []string{"--user", "u", "--alg", "RS256", "--key", smallKey},
			wantErr: "RSA key is 1024 bits; at least 2048 are required"},
		{name: "public key file", args: []string{"--user", "u", "--alg", "ES256", "--key", pubKey},
			wantErr: "holds a public key or certificate, not a private key"},
		{name: "missing key file", args: []string{"--user", "u", "--alg", "ES256", "--key", filepath.Join(dir, "nope.pem")},
			wantErr: "--key: reading key file: open "},
		{name: "not pem", args: []string{"--user", "u", "--alg", "ES256", "--key", notPEM},
			wantErr: "no PEM private key found"},
		{name: "encrypted key", args: []string{"--user", "u", "--alg", "ES256", "--key", encrypted},
			wantErr: "key is encrypted"},
		{name: "alg none", args: []string{"--user", "u", "--alg", "none"},
			wantErr: `--alg: unsupported algorithm "none"; want one of HS256,`},
		{name: "zero lifetime", args: []string{"--user", "u", "--lifetime", "0s"},
			wantErr: "--lifetime: want a positive duration such as 1h, got 0s"},
		{name: "negative lifetime", args: []string{"--user", "u", "--lifetime", "-5m"},
			wantErr: "--lifetime: want a positive duration"},
		{name: "bad expires-at", args: []string{"--user", "u", "--expires-at", "tomorrow"},
			wantErr: `--expires-at: want an RFC 3339 time such as 2030-01-02T15:04:05Z, got "tomorrow"`},
		{name: "expires-at and lifetime", args: []string{"--user", "u", "--expires-at", "2031-01-01T00:00:00Z", "--lifetime", "1h"},
			wantErr: "--expires-at and --lifetime both set the expiry"},
		{name: "not-before after expiry", args: []string{"--user", "u", "--not-before", "2h"},
			wantErr: "--not-before: the token would become valid at 2030-01-02T05:04:05Z, not before it expires"},
		{name: "claim without value", args: []string{"--user", "u", "--claim", "team"},
			wantErr: `--claim 1: want NAME=VALUE, got "team"`},
		{name: "claim without name", args: []string{"--user", "u", "--claim", "a=b", "--claim", "=x"},
			wantErr: `--claim 2: want NAME=VALUE, got "=x"`},
		{name: "claim overrides exp", args: []string{"--user", "u", "--claim", "exp=9999999999"},
			wantErr: `--claim 1: "exp" is a registered claim set by --lifetime or --expires-at`},
		{name: "claim overrides user", args: []string{"--user", "u", "--claim", "sub=admin"},
			wantErr: `--claim 1: "sub" holds the user id; set it with --user`},
		{name: "claim given twice", args: []string{"--user", "u", "--claim", "team=a", "--claim", "team=b"},
			wantErr: `--claim 2: claim "team" given twice`},
		{name: "user claim is registered", args: []string{"--user", "u", "--user-claim", "iss"},
			wantErr: `--user-claim: "iss" is a registered claim set by --issuer`},
		{name: "empty audience", args: []string{"--user", "u", "--audience", "a", "--audience", ""},
			wantErr: "--audience 2: empty audience"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vars := tt.vars
			if vars == nil {
				vars = map[string]string{defaultSecretEnv: testSecret}
			}
			stdout, _, err := runPAT(t, testEnv(vars), "", append([]string{"mint"}, tt.args...)...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
			}
			if stdout != "" {
				t.Errorf("got stdout %q, want none on error", stdout)
			}
			if strings.Contains(err.Error(), testSecret) || strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("got error %q, want it free of the secret", err)
			}
		})
	}
}

// longEnvName is an environment variable name of the greatest length
// --hmac-secret-env accepts, 64 characters.
var longEnvName = "A" + strings.Repeat("_1", 31) + "Z"

// TestMintNeverEchoesSecret checks that a secret pasted into
// --hmac-secret-env in place of a variable name, or held by a variable
// but too short to use, never appears in anything mint prints or
// returns: an error message ends up in terminal scrollback and CI logs.
func TestMintNeverEchoesSecret(t *testing.T) {
	const notAName = "--hmac-secret-env: takes the name of an environment variable, not a value"

	tests := []struct {
		name    string
		vars    map[string]string
		flag    string // --hmac-secret-env value; "" leaves the flag out
		secret  string // must appear nowhere in the output
		wantErr string
	}{
		{name: "hex secret with letters", flag: "0123456789abcdefSEKRIT0123456789abcdef",
			secret: "SEKRIT", wantErr: notAName},
		{name: "secret starting with a digit", flag: "9SEKRIT_value",
			secret: "SEKRIT", wantErr: notAName},
		{name: "secret with a dash", flag: "SEKRIT-value",
			secret: "SEKRIT", wantErr: notAName},
		{name: "base64 secret", flag: "U0VLUklUc2VrcmV0+/==",
			secret: "U0VLUklU", wantErr: notAName},
		{name: "assignment", flag: "DBNL_PAT_SECRET=SEKRIT",
			secret: "SEKRIT", wantErr: notAName},
		{name: "secret with a newline", flag: "SEKRIT\n",
			secret: "SEKRIT", wantErr: notAName},
		{name: "non-ascii secret", flag: "SEKRITé",
			secret: "SEKRIT", wantErr: notAName},
		{name: "name one character too long", flag: longEnvName + "X",
			secret: longEnvName, wantErr: notAName},
		// openssl rand -hex 32 starts with a letter about a third of
		// the time, and then reads as a shell name
		{name: "hex secret shaped like a name",
			flag:    "ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12",
			secret:  "ab12cd34",
			wantErr: "--hmac-secret-env: the environment variable it names is not set or is empty"},
		{name: "lower-case alphanumeric secret",
			flag: "sekritvalue", secret: "sekrit",
			wantErr: "--hmac-secret-env: the environment variable it names is not set or is empty"},
		{name: "short secret in the default variable",
			vars:   map[string]string{defaultSecretEnv: "SEKRIT-short"},
			secret: "SEKRIT", wantErr: "--hmac-secret-env: the secret in DBNL_PAT_SECRET is 12 bytes"},
		{name: "short secret in a named variable",
			vars: map[string]string{"MY_SECRET": "SEKRIT-31-bytes-long-0123456789"[:31]},
			flag: "MY_SECRET", secret: "SEKRIT",
			wantErr: "--hmac-secret-env: the secret in MY_SECRET is 31 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"mint", "--user", "u"}
			if tt.flag != "" {
				args = append(args, "--hmac-secret-env", tt.flag)
			}
			stdout, stderr, err := runPAT(t, testEnv(tt.vars), "", args...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
			}
			for _, out := range []struct{ name, text string }{
				{"error", err.Error()}, {"stdout", stdout}, {"stderr", stderr},
			} {
				if strings.Contains(out.text, tt.secret) {
					t.Errorf("got %s %q, want it free of the secret", out.name, out.text)
				}
			}
		})
	}
}
