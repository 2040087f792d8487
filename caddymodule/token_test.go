package dbnlauth

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/golang-jwt/jwt/v5"
)

// unitSecond is a second HMAC secret, for tests with two keys.
const unitSecond = "second-secret-abcdefghijklmnopqrstuvwxyz"

// unitSignHMAC signs claims with an HMAC alg and secret, adding the
// header fields extra.
func unitSignHMAC(t testing.TB, alg, secret string, claims jwt.MapClaims, extra map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.GetSigningMethod(alg), claims)
	for k, v := range extra {
		tok.Header[k] = v
	}
	s, err := tok.SignedString([]byte(secret))
	if err != nil {
		t.Fatalf("signing %s token: %v", alg, err)
	}
	return s
}

// unitRawToken encodes header and claims as a compact JWS with the
// literal signature sig, for tokens no jwt signer would produce.
func unitRawToken(t testing.TB, header map[string]any, claims jwt.MapClaims, sig string) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("encoding token part: %v", err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	return enc(header) + "." + enc(claims) + "." + sig
}

// unitClock is a clock that tests move by hand.
type unitClock struct {
	mu sync.Mutex
	t  time.Time
}

func newUnitClock() *unitClock { return &unitClock{t: testNow} }

func (c *unitClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *unitClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// unitClaims returns validClaims(user) changed by change.
func unitClaims(user string, change func(jwt.MapClaims)) jwt.MapClaims {
	c := validClaims(user)
	if change != nil {
		change(c)
	}
	return c
}

func TestExtractToken(t *testing.T) {
	const max = 16
	tests := []struct {
		name    string
		target  string
		auth    []string // Authorization header values; nil: none
		want    string
		wantErr error
	}{
		{name: "canonical scheme", auth: []string{"Bearer abc.def.ghi"}, want: "abc.def.ghi"},
		{name: "lowercase scheme", auth: []string{"bearer abc.def.ghi"}, want: "abc.def.ghi"},
		{name: "uppercase scheme", auth: []string{"BEARER abc.def.ghi"}, want: "abc.def.ghi"},
		{name: "mixed case scheme", auth: []string{"bEaReR abc.def.ghi"}, want: "abc.def.ghi"},
		{name: "extra spaces after scheme", auth: []string{"Bearer    abc.def.ghi"}, want: "abc.def.ghi"},
		{name: "surrounding spaces", auth: []string{"  Bearer abc.def.ghi  "}, want: "abc.def.ghi"},
		{name: "no header", wantErr: errNoToken},
		{name: "empty header", auth: []string{""}, wantErr: errNoToken},
		{name: "blank header", auth: []string{"   "}, wantErr: errNoToken},
		{name: "basic scheme", auth: []string{"Basic dXNlcjpwYXNz"}, wantErr: errNotBearer},
		{name: "scheme prefix only", auth: []string{"Bearerabc.def.ghi"}, wantErr: errNotBearer},
		{name: "tab after scheme", auth: []string{"Bearer\tabc.def.ghi"}, wantErr: errNotBearer},
		{name: "two headers", auth: []string{"Bearer a.b.c", "Bearer d.e.f"}, wantErr: errManyAuthorization},
		{name: "two identical headers", auth: []string{"Bearer a.b.c", "Bearer a.b.c"}, wantErr: errManyAuthorization},
		{name: "scheme without token", auth: []string{"Bearer"}, wantErr: errEmptyToken},
		{name: "scheme and spaces", auth: []string{"Bearer    "}, wantErr: errEmptyToken},
		{name: "exactly max bytes", auth: []string{"Bearer " + strings.Repeat("a", max)}, want: strings.Repeat("a", max)},
		{name: "max plus one bytes", auth: []string{"Bearer " + strings.Repeat("a", max+1)}, wantErr: errTokenTooLarge},
		{name: "access_token in query", target: "/v0/x?access_token=abc.def.ghi", auth: []string{"Bearer a.b.c"}, wantErr: errQueryToken},
		{name: "empty access_token in query", target: "/v0/x?a=1&access_token=", wantErr: errQueryToken},
		{name: "access_token as a value", target: "/v0/x?name=access_token", auth: []string{"Bearer a.b.c"}, want: "a.b.c"},
		{name: "access_token inside a value", target: "/v0/x?q=my_access_token_here", auth: []string{"Bearer a.b.c"}, want: "a.b.c"},
		{name: "access_token as a key prefix", target: "/v0/x?access_tokens=1", auth: []string{"Bearer a.b.c"}, want: "a.b.c"},
		{name: "access_token in the path", target: "/v0/access_token", auth: []string{"Bearer a.b.c"}, want: "a.b.c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := tt.target
			if target == "" {
				target = "/v0/projects"
			}
			r := httptest.NewRequest(http.MethodGet, target, nil)
			if tt.auth != nil {
				r.Header["Authorization"] = tt.auth
			}
			got, err := extractToken(r, max)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got error %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got token %q, want %q", got, tt.want)
			}
		})
	}
}

// TestExtractTokenEncodedQueryKey checks that a token in the query
// string is refused when its key is percent-encoded: Go and most
// frameworks decode access%5Ftoken to access_token.
func TestExtractTokenEncodedQueryKey(t *testing.T) {
	for _, query := range []string{"access%5Ftoken=abc.def.ghi", "access%5ftoken=x", "%61ccess_token=x", "a=1&access_toke%6E=x"} {
		t.Run(query, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/v0/x?"+query, nil)
			r.Header.Set("Authorization", "Bearer a.b.c")
			if _, err := extractToken(r, 1024); !errors.Is(err, errQueryToken) {
				t.Errorf("got error %v, want %v", err, errQueryToken)
			}
		})
	}
}

func TestCheckShape(t *testing.T) {
	tests := []struct {
		name  string
		token string
		want  error
	}{
		{name: "three segments", token: "eyJh.eyJz.c2ln", want: nil},
		{name: "base64url alphabet", token: "aZ09-_.aZ09-_.aZ09-_", want: nil},
		{name: "empty segments", token: "..", want: nil}, // left to the parser
		{name: "five segments", token: "a.b.c.d.e", want: errEncrypted},
		{name: "two segments", token: "a.b", want: errMalformed},
		{name: "one segment", token: "abc", want: errMalformed},
		{name: "four segments", token: "a.b.c.d", want: errMalformed},
		{name: "six segments", token: "a.b.c.d.e.f", want: errMalformed},
		{name: "padding", token: "eyJh.eyJz.c2ln==", want: errMalformed},
		{name: "space", token: "eyJh.ey Jz.c2ln", want: errMalformed},
		{name: "tab", token: "eyJh.eyJz.c2ln\t", want: errMalformed},
		{name: "newline", token: "eyJh.eyJz\n.c2ln", want: errMalformed},
		{name: "standard base64 plus", token: "ey+h.eyJz.c2ln", want: errMalformed},
		{name: "standard base64 slash", token: "eyJh.ey/z.c2ln", want: errMalformed},
		{name: "comma", token: "eyJh.eyJz.c2ln,x", want: errMalformed},
		{name: "nul byte", token: "eyJh.eyJz.c2\x00n", want: errMalformed},
		{name: "non ascii", token: "eyJh.eyJz.c2lné", want: errMalformed},
		{name: "json", token: `{"alg":"none"}.e.f`, want: errMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := checkShape(tt.token); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestVerifyEachAlgorithm(t *testing.T) {
	h := newTestHandler(t, newUsersAPI(t), nil)
	for _, alg := range supportedAlgs {
		t.Run(alg, func(t *testing.T) {
			tok := signToken(t, alg, validClaims("user_123"), nil)
			id, err := h.verifier.verify(tok)
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if id.userID != "user_123" {
				t.Errorf("got user %q, want user_123", id.userID)
			}
			if id.tokenID != "tok-1" {
				t.Errorf("got token id %q, want tok-1", id.tokenID)
			}
			want, _ := tokenFingerprint(tok)
			if id.fingerprint != want || len(want) != 12 {
				t.Errorf("got fingerprint %q, want %q (12 hex digits)", id.fingerprint, want)
			}
			if !id.expires.Equal(testNow.Add(time.Hour)) {
				t.Errorf("got expiry %v, want %v", id.expires, testNow.Add(time.Hour))
			}
		})
	}
}

func TestVerifyClaims(t *testing.T) {
	h := newTestHandler(t, newUsersAPI(t), nil)
	long := strings.Repeat("u", maxUserIDBytes)
	tests := []struct {
		name    string
		change  func(jwt.MapClaims)
		wantErr error
	}{
		{name: "valid", wantErr: nil},
		{name: "expired", change: func(c jwt.MapClaims) { c["exp"] = testNow.Add(-time.Hour).Unix() }, wantErr: errExpired},
		{name: "expired within leeway", change: func(c jwt.MapClaims) { c["exp"] = testNow.Add(-10 * time.Second).Unix() }},
		{name: "expired just past leeway", change: func(c jwt.MapClaims) { c["exp"] = testNow.Add(-31 * time.Second).Unix() }, wantErr: errExpired},
		{name: "not yet valid", change: func(c jwt.MapClaims) { c["nbf"] = testNow.Add(time.Hour).Unix() }, wantErr: errNotYetValid},
		{name: "nbf within leeway", change: func(c jwt.MapClaims) { c["nbf"] = testNow.Add(10 * time.Second).Unix() }},
		{name: "nbf in the past", change: func(c jwt.MapClaims) { c["nbf"] = testNow.Add(-time.Hour).Unix() }},
		{name: "issued in the future", change: func(c jwt.MapClaims) { c["iat"] = testNow.Add(time.Hour).Unix() }, wantErr: errIssuedInFuture},
		{name: "iat within leeway", change: func(c jwt.MapClaims) { c["iat"] = testNow.Add(10 * time.Second).Unix() }},
		{name: "no iat", change: func(c jwt.MapClaims) { delete(c, "iat") }},
		{name: "missing exp", change: func(c jwt.MapClaims) { delete(c, "exp") }, wantErr: errNoExpiry},
		{name: "exp zero", change: func(c jwt.MapClaims) { c["exp"] = 0 }, wantErr: errNoExpiry},
		{name: "exp not a number", change: func(c jwt.MapClaims) { c["exp"] = "tomorrow" }, wantErr: errClaims},
		{name: "wrong issuer", change: func(c jwt.MapClaims) { c["iss"] = "evil" }, wantErr: errIssuer},
		{name: "missing issuer", change: func(c jwt.MapClaims) { delete(c, "iss") }, wantErr: errIssuer},
		{name: "empty issuer", change: func(c jwt.MapClaims) { c["iss"] = "" }, wantErr: errIssuer},
		{name: "issuer not a string", change: func(c jwt.MapClaims) { c["iss"] = 7 }, wantErr: errIssuer},
		{name: "issuer differing in case", change: func(c jwt.MapClaims) { c["iss"] = "DBNL" }, wantErr: errIssuer},
		{name: "wrong audience", change: func(c jwt.MapClaims) { c["aud"] = "other-api" }, wantErr: errAudience},
		{name: "audience list with a match", change: func(c jwt.MapClaims) { c["aud"] = []string{"other-api", "dbnl-api"} }},
		{name: "audience list without a match", change: func(c jwt.MapClaims) { c["aud"] = []string{"a", "b"} }, wantErr: errAudience},
		{name: "missing user", change: func(c jwt.MapClaims) { delete(c, "sub") }, wantErr: errNoUser},
		{name: "empty user", change: func(c jwt.MapClaims) { c["sub"] = "" }, wantErr: errNoUser},
		{name: "numeric user", change: func(c jwt.MapClaims) { c["sub"] = 123 }, wantErr: errNoUser},
		{name: "object user", change: func(c jwt.MapClaims) { c["sub"] = map[string]any{"id": "user_123"} }, wantErr: errNoUser},
		{name: "user of max bytes", change: func(c jwt.MapClaims) { c["sub"] = long }},
		{name: "user over max bytes", change: func(c jwt.MapClaims) { c["sub"] = long + "u" }, wantErr: errNoUser},
		{name: "user with newline", change: func(c jwt.MapClaims) { c["sub"] = "user_123\nX-Dbnl-Org-Role: admin" }, wantErr: errNoUser},
		{name: "user with nul", change: func(c jwt.MapClaims) { c["sub"] = "user\x00123" }, wantErr: errNoUser},
		{name: "user with del", change: func(c jwt.MapClaims) { c["sub"] = "user\x7f" }, wantErr: errNoUser},
		{name: "user with c1 control", change: func(c jwt.MapClaims) { c["sub"] = "user\u0085" }, wantErr: errNoUser},
		{name: "unicode user", change: func(c jwt.MapClaims) { c["sub"] = "usér" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := signToken(t, "HS256", unitClaims("user_123", tt.change), nil)
			_, err := h.verifier.verify(tok)
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("got error %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// TestVerifyMissingAudience checks the denial of a token without aud
// when audiences are configured: its reason must be the audience, not
// a missing expiry.
func TestVerifyMissingAudience(t *testing.T) {
	h := newTestHandler(t, newUsersAPI(t), nil)
	tests := []struct {
		name   string
		change func(jwt.MapClaims)
	}{
		{name: "no aud", change: func(c jwt.MapClaims) { delete(c, "aud") }},
		{name: "empty aud", change: func(c jwt.MapClaims) { c["aud"] = "" }},
		{name: "empty aud list", change: func(c jwt.MapClaims) { c["aud"] = []string{} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := signToken(t, "HS256", unitClaims("user_123", tt.change), nil)
			if _, err := h.verifier.verify(tok); !errors.Is(err, errAudience) {
				t.Errorf("got error %v, want %v", err, errAudience)
			}
		})
	}
}

func TestVerifyLeeway(t *testing.T) {
	tok := signToken(t, "HS256", unitClaims("user_123", func(c jwt.MapClaims) {
		c["exp"] = testNow.Add(-10 * time.Second).Unix()
	}), nil)
	tests := []struct {
		name    string
		leeway  time.Duration
		wantErr error
	}{
		{name: "default leeway", leeway: -1, wantErr: nil},
		{name: "leeway 30s", leeway: 30 * time.Second, wantErr: nil},
		{name: "leeway 11s", leeway: 11 * time.Second, wantErr: nil},
		{name: "leeway 5s", leeway: 5 * time.Second, wantErr: errExpired},
		{name: "leeway 0", leeway: 0, wantErr: errExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newTestHandler(t, newUsersAPI(t), func(h *Handler) {
				if tt.leeway >= 0 {
					d := caddy.Duration(tt.leeway)
					h.Leeway = &d
				}
			})
			if _, err := h.verifier.verify(tok); !errors.Is(err, tt.wantErr) {
				t.Errorf("got error %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestVerifyHeader(t *testing.T) {
	h := newTestHandler(t, newUsersAPI(t), nil)
	claims := validClaims("user_123")
	tests := []struct {
		name    string
		token   func(t *testing.T) string
		wantErr error
	}{
		{name: "alg none", token: func(t *testing.T) string {
			tok := jwt.NewWithClaims(jwt.SigningMethodNone, claims)
			s, err := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}, wantErr: errAlgorithm},
		{name: "alg none with a signature", token: func(t *testing.T) string {
			return unitRawToken(t, map[string]any{"alg": "none", "typ": "JWT"}, claims, "c2ln")
		}, wantErr: errAlgorithm},
		{name: "alg NONE", token: func(t *testing.T) string {
			return unitRawToken(t, map[string]any{"alg": "NONE"}, claims, "")
		}, wantErr: errAlgorithm},
		{name: "unknown alg", token: func(t *testing.T) string {
			return unitRawToken(t, map[string]any{"alg": "XS256"}, claims, "c2ln")
		}, wantErr: errAlgorithm},
		{name: "missing alg", token: func(t *testing.T) string {
			return unitRawToken(t, map[string]any{"typ": "JWT"}, claims, "c2ln")
		}, wantErr: errAlgorithm},
		{name: "hmac signed with the rsa public pem", token: func(t *testing.T) string {
			pem, err := os.ReadFile(keysFor(t)["rsa"].pemFile)
			if err != nil {
				t.Fatal(err)
			}
			return unitSignHMAC(t, "HS256", string(pem), claims, nil)
		}, wantErr: errSignature},
		{name: "wrong hmac secret", token: func(t *testing.T) string {
			return unitSignHMAC(t, "HS256", unitSecond, claims, nil)
		}, wantErr: errSignature},
		{name: "tampered payload", token: func(t *testing.T) string {
			good := signToken(t, "HS256", claims, nil)
			parts := strings.Split(good, ".")
			other := strings.Split(signToken(t, "HS256", validClaims("admin"), nil), ".")
			return parts[0] + "." + other[1] + "." + parts[2]
		}, wantErr: errSignature},
		{name: "signature of another algorithm", token: func(t *testing.T) string {
			// an ES256 signature relabelled as ES384
			good := strings.Split(signToken(t, "ES256", claims, nil), ".")
			relabelled := strings.Split(unitRawToken(t, map[string]any{"alg": "ES384", "typ": "JWT"}, claims, ""), ".")
			return relabelled[0] + "." + relabelled[1] + "." + good[2]
		}, wantErr: errSignature},
		{name: "not base64 json", token: func(t *testing.T) string { return "abc.def.ghi" }, wantErr: errMalformed},
		{name: "encrypted", token: func(t *testing.T) string { return "a.b.c.d.e" }, wantErr: errEncrypted},
		{name: "non-string kid", token: func(t *testing.T) string {
			return signToken(t, "HS256", claims, map[string]any{"kid": 12})
		}, wantErr: errMalformed},
		{name: "kid ignored when keys have none", token: func(t *testing.T) string {
			return signToken(t, "HS256", claims, map[string]any{"kid": "anything"})
		}, wantErr: nil},
		{name: "typ ignored", token: func(t *testing.T) string {
			return signToken(t, "HS256", claims, map[string]any{"typ": "at+jwt"})
		}, wantErr: nil},
	}
	for _, f := range rejectedHeaderFields {
		tests = append(tests, struct {
			name    string
			token   func(t *testing.T) string
			wantErr error
		}{name: "header field " + f, token: func(t *testing.T) string {
			return signToken(t, "RS256", claims, map[string]any{f: "https://evil.example/key"})
		}, wantErr: errHeaderField})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := h.verifier.verify(tt.token(t))
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("got error %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// TestVerifyRSAKeyIsNeverAnHMACSecret signs an HS256 token with the RSA
// public key PEM as the secret, the classic algorithm confusion, for a
// handler that has only public keys.
func TestVerifyRSAKeyIsNeverAnHMACSecret(t *testing.T) {
	h := newTestHandler(t, newUsersAPI(t), func(h *Handler) { h.HMACKeys = nil })
	pem, err := os.ReadFile(keysFor(t)["rsa"].pemFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, alg := range []string{"HS256", "HS384", "HS512"} {
		t.Run(alg, func(t *testing.T) {
			tok := unitSignHMAC(t, alg, string(pem), validClaims("user_123"), nil)
			if _, err := h.verifier.verify(tok); !errors.Is(err, errAlgorithm) {
				t.Errorf("got error %v, want %v", err, errAlgorithm)
			}
		})
	}
}

func TestVerifyAlgorithmsNarrowing(t *testing.T) {
	h := newTestHandler(t, newUsersAPI(t), func(h *Handler) {
		h.Algorithms = []string{"HS256", "ES256"}
	})
	for _, alg := range supportedAlgs {
		t.Run(alg, func(t *testing.T) {
			var want error
			if alg != "HS256" && alg != "ES256" {
				want = errAlgorithm
			}
			tok := signToken(t, alg, validClaims("user_123"), nil)
			if _, err := h.verifier.verify(tok); !errors.Is(err, want) {
				t.Errorf("got error %v, want %v", err, want)
			}
		})
	}
}

func TestVerifyKID(t *testing.T) {
	h := newTestHandler(t, newUsersAPI(t), func(h *Handler) {
		h.HMACKeys = []HMACKey{{Secret: testSecret, KID: "k1"}, {Secret: unitSecond, KID: "k2"}}
		h.PublicKeys = nil
	})
	claims := validClaims("user_123")
	tests := []struct {
		name    string
		secret  string
		kid     any // nil: no kid
		wantErr error
	}{
		{name: "kid 1 signed by key 1", secret: testSecret, kid: "k1"},
		{name: "kid 2 signed by key 2", secret: unitSecond, kid: "k2"},
		{name: "kid 2 signed by key 1", secret: testSecret, kid: "k2", wantErr: errSignature},
		{name: "kid 1 signed by key 2", secret: unitSecond, kid: "k1", wantErr: errSignature},
		{name: "unknown kid", secret: testSecret, kid: "k3", wantErr: errUnknownKey},
		{name: "kid differing in case", secret: testSecret, kid: "K1", wantErr: errUnknownKey},
		{name: "numeric kid", secret: testSecret, kid: 1, wantErr: errMalformed},
		{name: "array kid", secret: testSecret, kid: []any{"k1"}, wantErr: errMalformed},
		{name: "no kid, key 1", secret: testSecret},
		{name: "no kid, key 2", secret: unitSecond},
		{name: "no kid, unknown key", secret: strings.Repeat("x", 40), wantErr: errSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var extra map[string]any
			if tt.kid != nil {
				extra = map[string]any{"kid": tt.kid}
			}
			tok := unitSignHMAC(t, "HS256", tt.secret, claims, extra)
			if _, err := h.verifier.verify(tok); !errors.Is(err, tt.wantErr) {
				t.Errorf("got error %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestVerifyCustomUserClaim(t *testing.T) {
	h := newTestHandler(t, newUsersAPI(t), func(h *Handler) { h.UserClaim = "user_id" })

	tok := signToken(t, "HS256", unitClaims("ignored", func(c jwt.MapClaims) { c["user_id"] = "user_456" }), nil)
	id, err := h.verifier.verify(tok)
	if err != nil {
		t.Fatalf("got error %v, want none", err)
	}
	if id.userID != "user_456" {
		t.Errorf("got user %q, want user_456", id.userID)
	}

	tok = signToken(t, "HS256", validClaims("user_123"), nil)
	if _, err := h.verifier.verify(tok); !errors.Is(err, errNoUser) {
		t.Errorf("token with sub only: got error %v, want %v", err, errNoUser)
	}
}

func TestVerifyTokenID(t *testing.T) {
	h := newTestHandler(t, newUsersAPI(t), nil)
	tests := []struct {
		name string
		jti  any // nil: no jti
		want string
	}{
		{name: "string jti", jti: "tok-9", want: "tok-9"},
		{name: "no jti", jti: nil, want: ""},
		{name: "numeric jti", jti: 9, want: ""},
		{name: "jti with newline", jti: "tok\n9", want: ""},
		{name: "jti over 256 bytes", jti: strings.Repeat("j", 257), want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := signToken(t, "HS256", unitClaims("user_123", func(c jwt.MapClaims) {
				delete(c, "jti")
				if tt.jti != nil {
					c["jti"] = tt.jti
				}
			}), nil)
			id, err := h.verifier.verify(tok)
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if id.tokenID != tt.want {
				t.Errorf("got token id %q, want %q", id.tokenID, tt.want)
			}
		})
	}
}

// TestVerifyCacheSkipsKeys checks that a token seen before is answered
// from the cache: with the keys gone, it still passes, with the same
// identity.
func TestVerifyCacheSkipsKeys(t *testing.T) {
	h := newTestHandler(t, newUsersAPI(t), nil)
	tok := signToken(t, "RS256", validClaims("user_123"), nil)
	first, err := h.verifier.verify(tok)
	if err != nil {
		t.Fatalf("first verify: got error %v, want none", err)
	}

	// the key function would now find no key
	h.verifier.keys = nil
	second, err := h.verifier.verify(tok)
	if err != nil {
		t.Fatalf("second verify: got error %v, want none (from the cache)", err)
	}
	if second != first {
		t.Errorf("got identity %p, want the cached %p", second, first)
	}

	// a token not seen before does need the keys
	other := signToken(t, "RS256", unitClaims("user_123", func(c jwt.MapClaims) { c["jti"] = "tok-2" }), nil)
	if _, err := h.verifier.verify(other); !errors.Is(err, errAlgorithm) {
		t.Errorf("new token: got error %v, want %v", err, errAlgorithm)
	}
}

// TestVerifyCacheDoesNotKeepFailures checks that a refused token is
// checked again rather than remembered.
func TestVerifyCacheDoesNotKeepFailures(t *testing.T) {
	h := newTestHandler(t, newUsersAPI(t), nil)
	tok := unitSignHMAC(t, "HS256", unitSecond, validClaims("user_123"), nil)
	for i := range 2 {
		if _, err := h.verifier.verify(tok); !errors.Is(err, errSignature) {
			t.Errorf("verify %d: got error %v, want %v", i, err, errSignature)
		}
	}
	if n := h.verifier.cache.Len(); n != 0 {
		t.Errorf("got %d cached tokens, want 0", n)
	}
}

func TestVerifyCacheExpiresWithToken(t *testing.T) {
	clock := newUnitClock()
	h := newTestHandler(t, newUsersAPI(t), func(h *Handler) { h.now = clock.now })
	tok := signToken(t, "HS256", unitClaims("user_123", func(c jwt.MapClaims) {
		c["exp"] = testNow.Add(time.Minute).Unix()
	}), nil)
	if _, err := h.verifier.verify(tok); err != nil {
		t.Fatalf("got error %v, want none", err)
	}

	// within exp plus leeway the cached entry still answers
	clock.advance(time.Minute + 20*time.Second)
	if _, err := h.verifier.verify(tok); err != nil {
		t.Fatalf("within leeway: got error %v, want none", err)
	}
	if n := h.verifier.cache.Len(); n != 1 {
		t.Fatalf("got %d cached tokens, want 1", n)
	}

	clock.advance(11 * time.Second)
	if _, err := h.verifier.verify(tok); !errors.Is(err, errExpired) {
		t.Errorf("past exp: got error %v, want %v", err, errExpired)
	}
	if n := h.verifier.cache.Len(); n != 0 {
		t.Errorf("got %d cached tokens after expiry, want 0", n)
	}
	// and the parser agrees once the entry is gone
	if _, err := h.verifier.verify(tok); !errors.Is(err, errExpired) {
		t.Errorf("past exp, uncached: got error %v, want %v", err, errExpired)
	}
}

// TestVerifyCacheExpiresOnVerifierClock moves only the verifier's own
// clock, as a reload-free way to age a cached entry.
func TestVerifyCacheExpiresOnVerifierClock(t *testing.T) {
	h := newTestHandler(t, newUsersAPI(t), nil)
	tok := signToken(t, "HS256", validClaims("user_123"), nil)
	if _, err := h.verifier.verify(tok); err != nil {
		t.Fatalf("got error %v, want none", err)
	}
	h.verifier.now = func() time.Time { return testNow.Add(2 * time.Hour) }
	if _, err := h.verifier.verify(tok); !errors.Is(err, errExpired) {
		t.Errorf("got error %v, want %v", err, errExpired)
	}
}

func TestVerifyCacheBounded(t *testing.T) {
	h := newTestHandler(t, newUsersAPI(t), func(h *Handler) { h.TokenCacheSize = 2 })
	for _, jti := range []string{"a", "b", "c"} {
		tok := signToken(t, "HS256", unitClaims("user_123", func(c jwt.MapClaims) { c["jti"] = jti }), nil)
		if _, err := h.verifier.verify(tok); err != nil {
			t.Fatalf("token %s: got error %v, want none", jti, err)
		}
	}
	if n := h.verifier.cache.Len(); n != 2 {
		t.Errorf("got %d cached tokens, want 2", n)
	}
}

func TestCleanValue(t *testing.T) {
	tests := []struct {
		name string
		s    string
		want bool
	}{
		{name: "ascii", s: "user_123", want: true},
		{name: "inner space", s: "a b", want: true},
		{name: "unicode", s: "ユーザー", want: true},
		{name: "256 bytes", s: strings.Repeat("u", 256), want: true},
		{name: "257 bytes", s: strings.Repeat("u", 257), want: false},
		{name: "empty", s: "", want: false},
		{name: "leading space", s: " user_123", want: false},
		{name: "trailing space", s: "user_123 ", want: false},
		{name: "newline", s: "a\nb", want: false},
		{name: "carriage return", s: "a\rb", want: false},
		{name: "tab", s: "a\tb", want: false},
		{name: "del", s: "a\x7f", want: false},
		{name: "c1 control", s: "a\u009b", want: false},
		{name: "invalid utf-8", s: "a\xff", want: false},
		{name: "replacement character", s: "user_\uFFFD", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cleanValue(tt.s); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
