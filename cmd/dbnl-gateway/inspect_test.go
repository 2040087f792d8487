package main

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// signedToken returns an HS256 token over claims, and its signature part.
func signedToken(t *testing.T, claims jwt.MapClaims) (string, string) {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	tok.Header["kid"] = "k1"
	raw, err := tok.SignedString([]byte(testSecret))
	if err != nil {
		t.Fatalf("signing: %v", err)
	}
	return raw, raw[strings.LastIndex(raw, ".")+1:]
}

// fingerprintOf is the gateway's token fingerprint, computed independently
// of the code under test.
func fingerprintOf(raw string) string {
	sum := sha256.Sum256([]byte(raw))
	return hex.EncodeToString(sum[:])[:12]
}

// b64 encodes s as one base64url JWS segment.
func b64(s string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(s))
}

// validClaims are the claims of a token that is 1 minute old and has 30
// minutes left on the fixed clock.
func validClaims() jwt.MapClaims {
	return jwt.MapClaims{
		"sub": "user_123",
		"iss": "dbnl",
		"aud": "dbnl-api",
		"jti": "tok-1",
		"iat": fixedNow.Add(-time.Minute).Unix(),
		"nbf": fixedNow.Add(-time.Minute).Unix(),
		"exp": fixedNow.Add(30 * time.Minute).Unix(),
	}
}

func TestInspectText(t *testing.T) {
	raw, sig := signedToken(t, validClaims())
	stdout, _, err := runPAT(t, testEnv(nil), "", "inspect", raw)
	if err != nil {
		t.Fatalf("got error %v, want none", err)
	}

	for _, want := range []string{
		notVerifiedNotice + "\n",
		"fingerprint: " + fingerprintOf(raw) + "\n",
		"header:\n{\n  \"alg\": \"HS256\",\n  \"kid\": \"k1\",\n  \"typ\": \"JWT\"\n}\n",
		"claims:\n{\n",
		`  "sub": "user_123"`,
		`  "jti": "tok-1",`,
		"expires:     2030-01-02T03:34:05Z (valid, 30m0s left)\n",
		"not before:  2030-01-02T03:03:05Z (in effect since 1m0s ago)\n",
		"issued at:   2030-01-02T03:03:05Z (1m0s ago)\n",
		"signature:   32 bytes, not shown\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("got output\n%s\nwant it to contain %q", stdout, want)
		}
	}
	if strings.Contains(stdout, sig) {
		t.Errorf("got output\n%s\nwant it free of the signature %s", stdout, sig)
	}
	if strings.Contains(stdout, "problem") {
		t.Errorf("got output\n%s\nwant no problems", stdout)
	}
	if !strings.HasPrefix(stdout, notVerifiedNotice) {
		t.Errorf("got output starting %q, want the not-verified notice first", stdout[:20])
	}
}

func TestInspectJSON(t *testing.T) {
	claims := validClaims()
	claims["exp"] = fixedNow.Add(-5 * time.Minute).Unix()
	raw, sig := signedToken(t, claims)
	stdout, _, err := runPAT(t, testEnv(nil), "", "inspect", "--json", raw)
	if err != nil {
		t.Fatalf("got error %v, want none", err)
	}
	if strings.Contains(stdout, sig) {
		t.Errorf("got output\n%s\nwant it free of the signature %s", stdout, sig)
	}

	var got struct {
		Verified         *bool             `json:"verified"`
		Fingerprint      string            `json:"fingerprint"`
		Header           map[string]string `json:"header"`
		Claims           map[string]any    `json:"claims"`
		ExpiresAt        string            `json:"expires_at"`
		Expired          *bool             `json:"expired"`
		ExpiresInSeconds *int64            `json:"expires_in_seconds"`
		NotBefore        string            `json:"not_before"`
		IssuedAt         string            `json:"issued_at"`
		SignatureBytes   int               `json:"signature_bytes"`
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("decoding output %q: %v", stdout, err)
	}
	if got.Verified == nil || *got.Verified {
		t.Errorf("got verified %v, want false", got.Verified)
	}
	if want := fingerprintOf(raw); got.Fingerprint != want {
		t.Errorf("got fingerprint %q, want %q", got.Fingerprint, want)
	}
	if got.Header["alg"] != "HS256" || got.Header["kid"] != "k1" {
		t.Errorf("got header %v, want alg HS256 and kid k1", got.Header)
	}
	if got.Claims["sub"] != "user_123" {
		t.Errorf("got sub %v, want user_123", got.Claims["sub"])
	}
	if want := "2030-01-02T02:59:05Z"; got.ExpiresAt != want {
		t.Errorf("got expires_at %q, want %q", got.ExpiresAt, want)
	}
	if got.Expired == nil || !*got.Expired {
		t.Errorf("got expired %v, want true", got.Expired)
	}
	if got.ExpiresInSeconds == nil || *got.ExpiresInSeconds != -300 {
		t.Errorf("got expires_in_seconds %v, want -300", got.ExpiresInSeconds)
	}
	if want := "2030-01-02T03:03:05Z"; got.NotBefore != want || got.IssuedAt != want {
		t.Errorf("got not_before %q and issued_at %q, want %q", got.NotBefore, got.IssuedAt, want)
	}
	if got.SignatureBytes != 32 {
		t.Errorf("got signature_bytes %d, want 32", got.SignatureBytes)
	}
}

func TestInspectTokenSources(t *testing.T) {
	raw, _ := signedToken(t, validClaims())
	tests := []struct {
		name  string
		args  []string
		stdin string
	}{
		{name: "argument", args: []string{raw}},
		{name: "argument with bearer", args: []string{"Bearer " + raw}},
		{name: "stdin with dash", args: []string{"-"}, stdin: raw + "\n"},
		{name: "stdin without argument", stdin: "  " + raw + "\r\n"},
		{name: "stdin with bearer", stdin: "bearer " + raw + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, _, err := runPAT(t, testEnv(nil), tt.stdin, append([]string{"inspect"}, tt.args...)...)
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if want := "fingerprint: " + fingerprintOf(raw) + "\n"; !strings.Contains(stdout, want) {
				t.Errorf("got output\n%s\nwant it to contain %q", stdout, want)
			}
		})
	}
}

func TestInspectTimes(t *testing.T) {
	tests := []struct {
		name   string
		claims jwt.MapClaims
		want   []string
	}{
		{
			name:   "expired",
			claims: jwt.MapClaims{"sub": "u", "exp": fixedNow.Add(-90 * time.Second).Unix()},
			want:   []string{"expires:     2030-01-02T03:02:35Z (EXPIRED 1m30s ago)\n", "not before:  absent\n", "issued at:   absent\n"},
		},
		{
			name:   "not yet valid",
			claims: jwt.MapClaims{"sub": "u", "exp": fixedNow.Add(2 * time.Hour).Unix(), "nbf": fixedNow.Add(10 * time.Minute).Unix()},
			want:   []string{"(valid, 2h0m0s left)", "not before:  2030-01-02T03:14:05Z (NOT YET VALID, starts in 10m0s)\n"},
		},
		{
			name:   "fractional exp",
			claims: jwt.MapClaims{"sub": "u", "exp": float64(fixedNow.Unix()) + 60.5},
			want:   []string{"expires:     2030-01-02T03:05:05Z (valid, 1m1s left)\n"},
		},
		{
			name:   "issued in the future",
			claims: jwt.MapClaims{"sub": "u", "exp": fixedNow.Add(time.Hour).Unix(), "iat": fixedNow.Add(time.Minute).Unix()},
			want:   []string{"issued at:   2030-01-02T03:05:05Z (1m0s in the future)\n"},
		},
		{
			name:   "no exp",
			claims: jwt.MapClaims{"sub": "u"},
			want:   []string{"expires:     absent\n", "problem:     no exp claim; the gateway rejects tokens without one\n"},
		},
		{
			name:   "exp not a number",
			claims: jwt.MapClaims{"sub": "u", "exp": "tomorrow"},
			want:   []string{"expires:     invalid (not a NumericDate)\n", "problem:     exp is not a NumericDate"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, _ := signedToken(t, tt.claims)
			stdout, _, err := runPAT(t, testEnv(nil), "", "inspect", raw)
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			for _, want := range tt.want {
				if !strings.Contains(stdout, want) {
					t.Errorf("got output\n%s\nwant it to contain %q", stdout, want)
				}
			}
		})
	}
}

func TestInspectUnsigned(t *testing.T) {
	raw := b64(`{"alg":"none"}`) + "." + b64(`{"sub":"u","exp":1}`) + "."
	stdout, _, err := runPAT(t, testEnv(nil), "", "inspect", raw)
	if err != nil {
		t.Fatalf("got error %v, want none", err)
	}
	for _, want := range []string{"signature:   0 bytes, not shown\n", "problem:     the token is unsigned\n"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("got output\n%s\nwant it to contain %q", stdout, want)
		}
	}
}

func TestInspectMalformed(t *testing.T) {
	header := b64(`{"alg":"HS256"}`)
	claims := b64(`{"sub":"u"}`)
	sig := "c2VjcmV0LXNpZ25hdHVyZQ" // must never be echoed
	tests := []struct {
		name    string
		token   string
		wantErr string
	}{
		{name: "empty", token: " \n", wantErr: "no token: pass it as the argument"},
		{name: "one part", token: "notatoken", wantErr: "malformed token: want 3 dot-separated parts (header.claims.signature), got 1"},
		{name: "two parts", token: header + "." + claims, wantErr: "want 3 dot-separated parts (header.claims.signature), got 2"},
		{name: "four parts", token: header + "." + claims + "." + sig + ".x", wantErr: "got 4"},
		{name: "jwe", token: strings.Repeat(header+".", 4) + sig, wantErr: "5 dot-separated parts is an encrypted JWE"},
		{name: "empty header", token: "." + claims + "." + sig, wantErr: "malformed token header: empty"},
		{name: "header not base64", token: "!!!." + claims + "." + sig, wantErr: "malformed token header: not base64url"},
		{name: "header not json", token: b64("hello") + "." + claims + "." + sig, wantErr: "malformed token header: not a JSON object"},
		{name: "header null", token: b64("null") + "." + claims + "." + sig, wantErr: "malformed token header: not a JSON object"},
		{name: "claims array", token: header + "." + b64(`["u"]`) + "." + sig, wantErr: "malformed token claims: not a JSON object"},
		{name: "claims trailing data", token: header + "." + b64(`{}{}`) + "." + sig, wantErr: "malformed token claims: not a JSON object"},
		{name: "signature not base64", token: header + "." + claims + ".*" + sig, wantErr: "malformed token signature: not base64url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, _, err := runPAT(t, testEnv(nil), tt.token, "inspect")
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), sig) {
				t.Errorf("got error %q, want it free of the signature", err)
			}
			if stdout != "" {
				t.Errorf("got stdout %q, want none on error", stdout)
			}
		})
	}
}

func TestInspectStdinTooLarge(t *testing.T) {
	_, _, err := runPAT(t, testEnv(nil), strings.Repeat("a", maxInspectBytes+1), "inspect")
	if want := "more than 1048576 bytes"; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got error %v, want one containing %q", err, want)
	}
}

// TestMintThenInspect checks that inspect reads back what mint wrote and
// names it by the same fingerprint the gateway logs.
func TestMintThenInspect(t *testing.T) {
	stdout, _, err := runPAT(t, secretEnv(), "", "mint", "--user", "user_123", "--kid", "k9", "--lifetime", "2h")
	if err != nil {
		t.Fatalf("minting: got error %v, want none", err)
	}
	raw := strings.TrimSpace(stdout)
	report, _, err := runPAT(t, testEnv(nil), stdout, "inspect")
	if err != nil {
		t.Fatalf("inspecting: got error %v, want none", err)
	}
	for _, want := range []string{
		"fingerprint: " + fingerprintOf(raw),
		`"kid": "k9"`,
		`"sub": "user_123"`,
		"expires:     2030-01-02T05:04:05Z (valid, 2h0m0s left)",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("got output\n%s\nwant it to contain %q", report, want)
		}
	}
	if sig := raw[strings.LastIndex(raw, ".")+1:]; strings.Contains(report, sig) {
		t.Errorf("got output\n%s\nwant it free of the signature", report)
	}
}
