package dbnlauth

import (
	"bufio"
	"context"
	"crypto"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/golang-jwt/jwt/v5"
)

// This file is the gateway's attack corpus: requests built from the
// public record of JWT-library and auth-proxy failures, each of which
// must be refused before the platform (next) sees it and, unless the
// attack is a hostile users-API answer, before the users API is asked.
//
// Cases that expose a weakness still present are kept, skipped with
// the reason, so that the suite stays green; set
// DBNL_RUN_KNOWN_ATTACKS=1 to run them.

// atkSkipKnown skips a case that documents an open finding, unless
// DBNL_RUN_KNOWN_ATTACKS is set.
func atkSkipKnown(t *testing.T, finding string) {
	t.Helper()
	if finding != "" && os.Getenv("DBNL_RUN_KNOWN_ATTACKS") == "" {
		t.Skip("open finding: " + finding)
	}
}

// atkSeg encodes b as an unpadded base64url segment.
func atkSeg(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// atkHMAC returns the HMAC-SHA256 of input under secret.
func atkHMAC(secret []byte, input string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(input))
	return m.Sum(nil)
}

// atkHS256With signs raw header and payload JSON with secret.
func atkHS256With(secret []byte, header, payload string) string {
	in := atkSeg([]byte(header)) + "." + atkSeg([]byte(payload))
	return in + "." + atkSeg(atkHMAC(secret, in))
}

// atkHS256 signs raw header and payload JSON with the test secret, the
// way only the real issuer could.
func atkHS256(header, payload string) string {
	return atkHS256With([]byte(testSecret), header, payload)
}

// atkHeader is the JOSE header of an ordinary HS256 token.
const atkHeader = `{"alg":"HS256","typ":"JWT"}`

// atkClaims returns the raw JSON of claims that pass every check, with
// extra appended verbatim inside the object (start it with a comma).
func atkClaims(extra string) string {
	return fmt.Sprintf(`{"sub":"user_123","iss":"dbnl","aud":"dbnl-api","iat":%d,"exp":%d%s}`,
		testNow.Add(-time.Minute).Unix(), testNow.Add(time.Hour).Unix(), extra)
}

// atkClaimsWithout returns valid claims as JSON with the named claim
// replaced by raw (raw "" drops it).
func atkClaim(name, raw string) string {
	c := validClaims("user_123")
	delete(c, "jti")
	delete(c, name)
	b, _ := json.Marshal(c)
	s := strings.TrimSuffix(string(b), "}")
	if raw != "" {
		s += `,"` + name + `":` + raw
	}
	return s + "}"
}

// atkSplit returns the three segments of a compact JWS.
func atkSplit(t testing.TB, tok string) (string, string, string) {
	t.Helper()
	p := strings.Split(tok, ".")
	if len(p) != 3 {
		t.Fatalf("got %d segments, want 3", len(p))
	}
	return p[0], p[1], p[2]
}

// atkResign replaces the signature segment of tok.
func atkResign(t testing.TB, tok string, sig []byte) string {
	t.Helper()
	h, p, _ := atkSplit(t, tok)
	return h + "." + p + "." + atkSeg(sig)
}

// atkPublicPEM returns the PEM bytes of a test public key file.
func atkPublicPEM(t testing.TB, keyType string) []byte {
	t.Helper()
	data, err := os.ReadFile(keysFor(t)[keyType].pemFile)
	if err != nil {
		t.Fatalf("reading %s key: %v", keyType, err)
	}
	return data
}

// atkNonCanonical flips an unused low bit of the last character of a
// base64url segment that encodes a byte count not divisible by 3, so
// that a lenient decoder yields the same bytes from a different string.
func atkNonCanonical(t testing.TB, seg string) string {
	t.Helper()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	if len(seg)%4 == 0 {
		t.Fatalf("segment of length %d has no unused bits", len(seg))
	}
	last := strings.IndexByte(alphabet, seg[len(seg)-1])
	out := seg[:len(seg)-1] + string(alphabet[last^1])

	// the point of the case: the same bytes under a lenient decoder
	a, errA := base64.RawURLEncoding.DecodeString(seg)
	b, errB := base64.RawURLEncoding.DecodeString(out)
	if errA != nil || errB != nil || string(a) != string(b) {
		t.Fatalf("got %q and %q decoding differently (%v, %v), want the same bytes", seg, out, errA, errB)
	}
	return out
}

// atkCounter is a loopback HTTP server that only counts its hits; it
// stands for an attacker's key server or a redirect target.
type atkCounter struct {
	*httptest.Server
	hits atomic.Int64
}

func newAtkCounter(t testing.TB) *atkCounter {
	t.Helper()
	c := &atkCounter{}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.hits.Add(1)
		_, _ = w.Write([]byte(`{"keys":[]}`))
	}))
	t.Cleanup(c.Close)
	return c
}

// atkEnv is what a case may change before its request is built.
type atkEnv struct {
	api *usersAPI
	// side is a loopback server no request may reach.
	side *atkCounter
}

// atkCase is one attack: the request, the answer the gateway must give
// and how many users-API calls it may make on the way.
type atkCase struct {
	name string
	// cfg changes the handler config; nil keeps the test defaults.
	cfg func(*Handler)
	// prepare sets up the users API before the request.
	prepare func(t *testing.T, env *atkEnv)
	// req builds the attack.
	req func(t *testing.T, env *atkEnv) *http.Request
	// status is the HTTP status the gateway must answer.
	status int
	// reason, if set, is the {dbnl.denial} the gateway must record.
	reason string
	// apiCalls is how many users-API calls the attack may cause.
	apiCalls int64
	// finding, if set, is an open weakness this case exposes.
	finding string
}

// atkToken returns a req that presents tok as a bearer token.
func atkToken(tok string) func(*testing.T, *atkEnv) *http.Request {
	return func(*testing.T, *atkEnv) *http.Request { return bearer("/v0/projects", tok) }
}

// atkTokenFn returns a req that presents the token mk builds.
func atkTokenFn(mk func(t *testing.T, env *atkEnv) string) func(*testing.T, *atkEnv) *http.Request {
	return func(t *testing.T, env *atkEnv) *http.Request { return bearer("/v0/projects", mk(t, env)) }
}

// atkAuth returns a req with the given Authorization header values.
func atkAuth(values ...string) func(*testing.T, *atkEnv) *http.Request {
	return func(*testing.T, *atkEnv) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/v0/projects", nil)
		for _, v := range values {
			r.Header.Add("Authorization", v)
		}
		return r
	}
}

// atkBody makes the users API answer 200 with body.
func atkBody(body string) func(*testing.T, *atkEnv) {
	return func(_ *testing.T, env *atkEnv) { env.api.setFailure(0, body, 0) }
}

// atkUser makes the users API answer p at user_123's URL, whatever
// user p names.
func atkUser(p Permissions) func(*testing.T, *atkEnv) {
	return func(_ *testing.T, env *atkEnv) {
		env.api.mu.Lock()
		env.api.users["user_123"] = &p
		env.api.mu.Unlock()
	}
}

// atkValid is a token that passes every check, for cases that attack
// something else.
func atkValid(t *testing.T, _ *atkEnv) string {
	return signToken(t, "HS256", validClaims("user_123"), nil)
}

// atkCases is the attack corpus, by family.
func atkCases() []atkCase {
	const (
		s401 = http.StatusUnauthorized
		s400 = http.StatusBadRequest
		s503 = http.StatusServiceUnavailable
	)
	valid := atkClaims("")
	withKID := func(h *Handler) { h.HMACKeys = []HMACKey{{Secret: testSecret, KID: "k1"}} }

	return []atkCase{
		// --- algorithm and key confusion ---

		// CVE-2015-9235 (node-jsonwebtoken): alg "none" with an empty
		// signature was accepted as verified.
		{name: "alg none empty signature", status: s401, reason: "algorithm",
			req: atkToken(atkSeg([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + atkSeg([]byte(valid)) + ".")},
		// Case variants of "none" that slipped past blocklists in several
		// libraries after the 2015 disclosure.
		{name: "alg none mixed case", status: s401, reason: "algorithm",
			req: atkToken(atkSeg([]byte(`{"alg":"nOnE"}`)) + "." + atkSeg([]byte(valid)) + ".")},
		// alg none that still carries a real HS256 signature, for verifiers
		// that check the signature only when alg asks for one.
		{name: "alg none with signature", status: s401, reason: "algorithm",
			req: atkTokenFn(func(t *testing.T, _ *atkEnv) string {
				_, _, sig := atkSplit(t, atkHS256(atkHeader, valid))
				return atkSeg([]byte(`{"alg":"none"}`)) + "." + atkSeg([]byte(valid)) + "." + sig
			})},
		// CVE-2016-10555 (jwt-simple) and CVE-2015-9235: HS256 signed with
		// the RSA public key PEM as the HMAC secret.
		{name: "hs256 keyed with rsa public pem", status: s401, reason: "bad_signature",
			req: atkTokenFn(func(t *testing.T, _ *atkEnv) string {
				return atkHS256With(atkPublicPEM(t, "rsa"), atkHeader, valid)
			})},
		// CVE-2022-23541 (jsonwebtoken): key-type confusion with an
		// elliptic-curve public key used as an HMAC secret.
		{name: "hs256 keyed with ecdsa public pem", status: s401, reason: "bad_signature",
			req: atkTokenFn(func(t *testing.T, _ *atkEnv) string {
				return atkHS256With(atkPublicPEM(t, "p256"), atkHeader, valid)
			})},
		// CVE-2022-29217 (PyJWT): confusion through the raw DER bytes of
		// an asymmetric public key rather than its PEM text.
		{name: "hs256 keyed with rsa public der", status: s401, reason: "bad_signature",
			req: atkTokenFn(func(t *testing.T, _ *atkEnv) string {
				block, _ := pem.Decode(atkPublicPEM(t, "rsa"))
				return atkHS256With(block.Bytes, atkHeader, valid)
			})},
		// The 2015 "critical vulnerabilities in JWT libraries" report: a
		// verifier must hold to its own algorithm list, not the token's.
		{name: "rs256 outside configured algorithms", status: s401, reason: "algorithm",
			cfg: func(h *Handler) { h.Algorithms = []string{"HS256"} },
			req: atkTokenFn(func(t *testing.T, _ *atkEnv) string {
				return signToken(t, "RS256", validClaims("user_123"), nil)
			})},
		// An algorithm name no key implements, for verifiers that fall back
		// to a default method on unknown names.
		{name: "alg unknown name", status: s401, reason: "algorithm",
			req: atkToken(atkHS256(`{"alg":"HS1024"}`, valid))},
		// CVE-2022-23540 (jsonwebtoken): a verifier left with no usable
		// algorithm must refuse, here through alg given as an array.
		{name: "alg as array", status: s401, reason: "algorithm",
			req: atkToken(atkHS256(`{"alg":["HS256"]}`, valid))},

		// --- signature forgery ---

		// CVE-2022-21449 (Java "psychic signatures"): ES256 with r = s = 0.
		{name: "es256 psychic zero signature", status: s401, reason: "bad_signature",
			req: atkTokenFn(func(t *testing.T, _ *atkEnv) string {
				return atkResign(t, signToken(t, "ES256", validClaims("user_123"), nil), make([]byte, 64))
			})},
		// CVE-2022-21449 variant: r = s = n, the curve order, which is zero
		// modulo n for a verifier that skips the range check.
		{name: "es256 r and s equal curve order", status: s401, reason: "bad_signature",
			req: atkTokenFn(func(t *testing.T, _ *atkEnv) string {
				n := elliptic.P256().Params().N.FillBytes(make([]byte, 32))
				return atkResign(t, signToken(t, "ES256", validClaims("user_123"), nil), append(n, n...))
			})},
		// ES256 signature in ASN.1 DER form, which RFC 7518 section 3.4
		// forbids; some libraries accepted both encodings.
		{name: "es256 der encoded signature", status: s401, reason: "bad_signature",
			req: atkTokenFn(func(t *testing.T, _ *atkEnv) string {
				tok := signToken(t, "ES256", validClaims("user_123"), nil)
				h, p, _ := atkSplit(t, tok)
				digest := sha256.Sum256([]byte(h + "." + p))
				der, err := keysFor(t)["p256"].private.Sign(rand.Reader, digest[:], crypto.SHA256)
				if err != nil {
					t.Fatalf("signing: %v", err)
				}
				return atkResign(t, tok, der)
			})},
		// CVE-2020-28042 (ServiceStack): an empty signature compared as
		// equal to any MAC.
		{name: "empty signature", status: s401, reason: "bad_signature",
			req: atkTokenFn(func(t *testing.T, _ *atkEnv) string {
				h, p, _ := atkSplit(t, atkHS256(atkHeader, valid))
				return h + "." + p + "."
			})},
		// CVE-2020-28042 variant: a truncated MAC, for comparisons that
		// loop over the shorter of the two.
		{name: "truncated hmac", status: s401, reason: "bad_signature",
			req: atkTokenFn(func(t *testing.T, _ *atkEnv) string {
				h, p, _ := atkSplit(t, atkHS256(atkHeader, valid))
				return h + "." + p + "." + atkSeg(atkHMAC([]byte(testSecret), h+"."+p)[:16])
			})},
		// Ed25519 malleability (RFC 8032 section 5.1.7 requires S < L):
		// adding the group order L to S yields a second signature that
		// lax verifiers accept.
		{name: "eddsa signature s plus group order", status: s401, reason: "bad_signature",
			req: atkTokenFn(func(t *testing.T, _ *atkEnv) string {
				tok := signToken(t, "EdDSA", validClaims("user_123"), nil)
				_, _, seg := atkSplit(t, tok)
				sig, _ := base64.RawURLEncoding.DecodeString(seg)
				l, _ := new(big.Int).SetString("7237005577332262213973186563042994240857116359379907606001950938285454250989", 10)
				s := new(big.Int).SetBytes(atkReverse(sig[32:]))
				s.Add(s, l)
				return atkResign(t, tok, append(sig[:32:32], atkReverse(s.FillBytes(make([]byte, 32)))...))
			})},
		// Base64 malleability: unused trailing bits changed in the MAC
		// segment give a different token string with the same MAC bytes,
		// dodging per-token deny lists (golang-jwt added WithStrictDecoding
		// for this).
		{name: "non canonical base64 signature", status: s401, reason: "malformed",
			req: atkTokenFn(func(t *testing.T, _ *atkEnv) string {
				h, p, sig := atkSplit(t, atkHS256(atkHeader, valid))
				return h + "." + p + "." + atkNonCanonical(t, sig)
			})},
		// Padded base64, which RFC 7515 section 2 excludes and some
		// decoders accept silently.
		{name: "padded segments", status: s401, reason: "malformed",
			req: atkTokenFn(func(t *testing.T, _ *atkEnv) string {
				h, p, sig := atkSplit(t, atkHS256(atkHeader, valid))
				return h + "=." + p + "." + sig + "="
			})},
		// Standard rather than URL-safe base64 alphabet, a parser
		// differential between gateway and platform.
		{name: "standard base64 alphabet", status: s401, reason: "malformed",
			req: atkTokenFn(func(t *testing.T, _ *atkEnv) string {
				h, p, sig := atkSplit(t, atkHS256(atkHeader, valid))
				sig = strings.NewReplacer("-", "+", "_", "/").Replace(sig)
				if !strings.ContainsAny(sig, "+/") {
					sig += "+"
				}
				return h + "." + p + "." + sig
			})},

		// --- keys named by the token ---

		// CVE-2018-0114 (node-jose): a jwk embedded in the header, signed
		// with the attacker's own key.
		{name: "embedded jwk", status: s401, reason: "header_field",
			req: atkTokenFn(func(t *testing.T, _ *atkEnv) string {
				k, err := rsa.GenerateKey(rand.Reader, 2048)
				if err != nil {
					t.Fatal(err)
				}
				tok := jwt.NewWithClaims(jwt.SigningMethodRS256, validClaims("user_123"))
				tok.Header["jwk"] = map[string]any{"kty": "RSA",
					"n": atkSeg(k.N.Bytes()), "e": atkSeg(big.NewInt(int64(k.E)).Bytes())}
				s, err := tok.SignedString(k)
				if err != nil {
					t.Fatal(err)
				}
				return s
			})},
		// jku SSRF (e.g. the JWT attack research behind CVE-2018-0114
		// follow-ups): a header URL the verifier would fetch keys from.
		{name: "jku to loopback key server", status: s401, reason: "header_field",
			req: atkTokenFn(func(t *testing.T, env *atkEnv) string {
				return signToken(t, "RS256", validClaims("user_123"), map[string]any{"jku": env.side.URL + "/jwks.json"})
			})},
		// x5u SSRF: the certificate-chain URL variant of the same attack.
		{name: "x5u to loopback server", status: s401, reason: "header_field",
			req: atkTokenFn(func(t *testing.T, env *atkEnv) string {
				return signToken(t, "RS256", validClaims("user_123"), map[string]any{"x5u": env.side.URL + "/cert.pem"})
			})},
		// x5c: an attacker's self-signed chain embedded in the header.
		{name: "embedded x5c chain", status: s401, reason: "header_field",
			req: atkTokenFn(func(t *testing.T, _ *atkEnv) string {
				return signToken(t, "RS256", validClaims("user_123"), map[string]any{"x5c": []string{"MIIBkTCB+wIJAK"}})
			})},
		// RFC 7515 section 4.1.11: crit naming an extension we do not
		// implement must fail (libraries that ignored crit were fixed for
		// this, e.g. jose4j and Nimbus).
		{name: "crit unknown extension", status: s401, reason: "header_field",
			req: atkToken(atkHS256(`{"alg":"HS256","crit":["exp2"],"exp2":1}`, valid))},
		// Compressed-payload bombs (CVE-2024-33664, python-jose): zip is a
		// JWE field and has no place in a JWS.
		{name: "zip header field", status: s401, reason: "header_field",
			req: atkToken(atkHS256(`{"alg":"HS256","zip":"DEF"}`, valid))},
		// JWE/JWS confusion: enc in a three-segment token.
		{name: "enc header field", status: s401, reason: "header_field",
			req: atkToken(atkHS256(`{"alg":"HS256","enc":"A256GCM"}`, valid))},
		// JWE/JWS confusion (JOSE attack research by Detering et al.): a
		// five-segment encrypted token handed to a JWS verifier.
		{name: "five segment jwe", status: s401, reason: "encrypted",
			req: atkToken(atkSeg([]byte(`{"alg":"dir","enc":"A256GCM"}`)) + "..aXY.Y2lwaGVy.dGFn")},
		// kid path traversal: a kid naming /dev/null so the verifier keys
		// the HMAC with empty bytes.
		{name: "kid path traversal empty key", status: s401, reason: "bad_signature",
			req: atkToken(atkHS256With(nil, `{"alg":"HS256","kid":"../../../../../../dev/null"}`, valid))},
		// kid path traversal against a handler whose keys carry kids.
		{name: "kid path traversal with kid keys", status: s401, reason: "unknown_kid", cfg: withKID,
			req: atkToken(atkHS256With(nil, `{"alg":"HS256","kid":"../../../../../../dev/null"}`, valid))},
		// kid SQL injection returning an attacker-chosen secret.
		{name: "kid sql injection", status: s401, reason: "unknown_kid", cfg: withKID,
			req: atkToken(atkHS256With([]byte("attacker"), `{"alg":"HS256","kid":"x' UNION SELECT 'attacker'--"}`, valid))},
		// CVE-2022-23529 (jsonwebtoken): a non-string object where a key
		// or its name is expected.
		{name: "kid as object", status: s401, reason: "malformed", cfg: withKID,
			req: atkToken(atkHS256(`{"alg":"HS256","kid":{"toString":"k1"}}`, valid))},
		// Nested JWT (cty: JWT): the payload is another token rather than
		// a claims object.
		{name: "nested jwt payload", status: s401, reason: "malformed",
			req: atkTokenFn(func(t *testing.T, _ *atkEnv) string {
				inner := signToken(t, "HS256", validClaims("user_123"), nil)
				return atkHS256(`{"alg":"HS256","cty":"JWT"}`, `"`+inner+`"`)
			})},

		// --- token shape and size ---

		// CVE-2025-30204 (golang-jwt): a bearer of thousands of dots made
		// ParseUnverified allocate in proportion.
		{name: "many dots", status: s401, reason: "malformed",
			req: atkToken(strings.Repeat(".", 8000))},
		// Oversized token: refused before any parsing.
		{name: "token over max size", status: s401, reason: "token_too_large",
			req: atkToken(strings.Repeat("a", 9000))},
		// Two segments, for parsers that treat a missing signature as none.
		{name: "two segments", status: s401, reason: "malformed",
			req: atkTokenFn(func(t *testing.T, _ *atkEnv) string {
				h, p, _ := atkSplit(t, atkHS256(atkHeader, valid))
				return h + "." + p
			})},
		// Empty segments.
		{name: "empty segments", status: s401, reason: "malformed", req: atkToken("..")},

		// --- claims ---

		// exp is required: a token without it would never expire.
		{name: "exp missing", status: s401, reason: "missing_exp",
			req: atkToken(atkHS256(atkHeader, atkClaim("exp", "")))},
		// exp 0, which golang-jwt reads as absent.
		{name: "exp zero", status: s401, reason: "missing_exp",
			req: atkToken(atkHS256(atkHeader, atkClaim("exp", "0")))},
		// exp as a string, for validators that skip claims of the wrong type.
		{name: "exp as string", status: s401, reason: "bad_claims",
			req: atkToken(atkHS256(atkHeader, atkClaim("exp", `"99999999999"`)))},
		// exp beyond int64 seconds: a float-to-int overflow could wrap it
		// to a date in the future on some platforms.
		{name: "exp huge number", status: s401, reason: "expired",
			req: atkToken(atkHS256(atkHeader, atkClaim("exp", "1e300")))},
		// exp beyond float64: not a number JSON decoders agree on.
		{name: "exp overflowing float", status: s401, reason: "malformed",
			req: atkToken(atkHS256(atkHeader, atkClaim("exp", "1e999")))},
		// exp negative.
		{name: "exp negative", status: s401, reason: "expired",
			req: atkToken(atkHS256(atkHeader, atkClaim("exp", "-1")))},
		// CVE-2024-51744 (golang-jwt v4): an expired token with a bad
		// signature must be refused for its signature, not let through by
		// callers that test only for expiry.
		{name: "expired and forged", status: s401, reason: "bad_signature",
			req: atkToken(atkHS256With([]byte("wrong-secret-wrong-secret-wrong-secret"), atkHeader,
				atkClaim("exp", fmt.Sprint(testNow.Add(-time.Hour).Unix()))))},
		// JSON duplicate keys: golang-jwt keeps the last exp while a
		// first-wins parser downstream would see the live one.
		{name: "duplicate exp last expired", status: s401, reason: "expired",
			req: atkToken(atkHS256(atkHeader, atkClaims(fmt.Sprintf(`,"exp":%d`, testNow.Add(-time.Hour).Unix()))))},
		// nbf past the leeway.
		{name: "nbf in future", status: s401, reason: "not_yet_valid",
			req: atkToken(atkHS256(atkHeader, atkClaims(fmt.Sprintf(`,"nbf":%d`, testNow.Add(time.Hour).Unix()))))},
		// nbf as a string.
		{name: "nbf as string", status: s401, reason: "bad_claims",
			req: atkToken(atkHS256(atkHeader, atkClaims(`,"nbf":"0"`)))},
		// iat in the future beyond the leeway.
		{name: "iat in future", status: s401, reason: "issued_in_future",
			req: atkToken(atkHS256(atkHeader, atkClaim("iat", fmt.Sprint(testNow.Add(time.Hour).Unix()))))},
		// iss not on the allow-list.
		{name: "iss foreign", status: s401, reason: "wrong_issuer",
			req: atkToken(atkHS256(atkHeader, atkClaim("iss", `"evil"`)))},
		// iss as an array holding the right value: type confusion.
		{name: "iss as array", status: s401, reason: "wrong_issuer",
			req: atkToken(atkHS256(atkHeader, atkClaim("iss", `["dbnl"]`)))},
		// CVE-2020-26160 (dgrijalva/jwt-go): aud handling skipped the check
		// for an empty []string audience.
		{name: "aud empty array", status: s401, reason: "wrong_audience",
			req: atkToken(atkHS256(atkHeader, atkClaim("aud", `[]`)))},
		// aud as a number: golang-jwt reads a non-string aud as absent.
		{name: "aud as number", status: s401, reason: "wrong_audience",
			req: atkToken(atkHS256(atkHeader, atkClaim("aud", `7`)))},
		// aud as an object keyed by the right audience.
		{name: "aud as object", status: s401, reason: "wrong_audience",
			req: atkToken(atkHS256(atkHeader, atkClaim("aud", `{"dbnl-api":true}`)))},
		// aud differing only in case.
		{name: "aud case variant", status: s401, reason: "wrong_audience",
			req: atkToken(atkHS256(atkHeader, atkClaim("aud", `"DBNL-API"`)))},
		// aud array of an empty string.
		{name: "aud empty string", status: s401, reason: "wrong_audience",
			req: atkToken(atkHS256(atkHeader, atkClaim("aud", `[""]`)))},
		// sub as a number.
		{name: "sub as number", status: s401, reason: "missing_user",
			req: atkToken(atkHS256(atkHeader, atkClaim("sub", `123`)))},
		// sub as an array.
		{name: "sub as array", status: s401, reason: "missing_user",
			req: atkToken(atkHS256(atkHeader, atkClaim("sub", `["user_123"]`)))},
		// sub empty.
		{name: "sub empty", status: s401, reason: "missing_user",
			req: atkToken(atkHS256(atkHeader, atkClaim("sub", `""`)))},
		// sub with a NUL, for C-string truncation downstream.
		{name: "sub with nul", status: s401, reason: "missing_user",
			req: atkToken(atkHS256(atkHeader, atkClaim("sub", `"user_123\u0000admin"`)))},
		// sub with CR LF: header injection toward the platform.
		{name: "sub with crlf", status: s401, reason: "missing_user",
			req: atkToken(atkHS256(atkHeader, atkClaim("sub", `"user_123\r\nX-Dbnl-Org-Role: org_admin"`)))},
		// sub with a C1 control (NEL), a line break to some log readers.
		{name: "sub with c1 control", status: s401, reason: "missing_user",
			req: atkToken(atkHS256(atkHeader, atkClaim("sub", `"user_123\u0085"`)))},
		// sub with a trailing space: HTTP drops whitespace around a field
		// value (RFC 9110 section 5.5), so the platform would read
		// X-Dbnl-User-Id as "user_123" while the users API was asked
		// about "user_123 ".
		{name: "sub with trailing space", status: s401, reason: "missing_user",
			req: atkToken(atkHS256(atkHeader, atkClaim("sub", `"user_123 "`)))},
		// sub too long to be an id.
		{name: "sub oversized", status: s401, reason: "missing_user",
			req: atkToken(atkHS256(atkHeader, atkClaim("sub", `"`+strings.Repeat("u", 300)+`"`)))},
		// sub in invalid UTF-8: encoding/json turns each bad byte into
		// U+FFFD, so distinct byte strings collapse into one user id.
		{name: "sub invalid utf8", status: s401, reason: "missing_user",
			req: atkToken(atkHS256(atkHeader, "{\"sub\":\"user_\xff\",\"iss\":\"dbnl\",\"aud\":\"dbnl-api\",\"exp\":"+fmt.Sprint(testNow.Add(time.Hour).Unix())+"}"))},

		// --- the request around the token ---

		// No credentials at all.
		{name: "no authorization", status: s401, reason: "missing_token", req: atkAuth()},
		// A different scheme.
		{name: "basic scheme", status: s401, reason: "not_bearer", req: atkAuth("Basic dXNlcjpwYXNz")},
		// Bearer with nothing after it.
		{name: "bearer without token", status: s401, reason: "empty_token", req: atkAuth("Bearer")},
		// Two Authorization headers that a gateway and platform could
		// each read differently.
		{name: "two authorization headers", status: s401, reason: "multiple_authorization",
			req: func(t *testing.T, env *atkEnv) *http.Request {
				return atkAuth("Bearer "+atkValid(t, env), "Bearer forged")(t, env)
			}},
		// Two credentials folded into one header with a comma.
		{name: "comma joined credentials", status: s401, reason: "malformed",
			req: func(t *testing.T, env *atkEnv) *http.Request {
				return atkAuth("Bearer "+atkValid(t, env)+", Bearer forged")(t, env)
			}},
		// RFC 6750 section 2.3 query token, which we never accept.
		{name: "query access token", status: s401, reason: "query_token",
			req: func(t *testing.T, env *atkEnv) *http.Request {
				return httptest.NewRequest(http.MethodGet, "/v0/projects?access_token="+atkValid(t, env), nil)
			}},
		// A query token beside a header token: which one the platform uses
		// is its own choice.
		{name: "query token beside header", status: s401, reason: "query_token",
			req: func(t *testing.T, env *atkEnv) *http.Request {
				return bearer("/v0/projects?access_token=x", atkValid(t, env))
			}},
		// The same query token with its name percent-encoded: every query
		// parser decodes it to access_token.
		{name: "query token with encoded name", status: s401, reason: "query_token",
			req: func(t *testing.T, env *atkEnv) *http.Request {
				return bearer("/v0/projects?access%5Ftoken=x", atkValid(t, env))
			}},
		// RFC 6750 section 2.2 form-body token without a header.
		{name: "form body access token", status: s401, reason: "missing_token",
			req: func(t *testing.T, env *atkEnv) *http.Request {
				r := httptest.NewRequest(http.MethodPost, "/v0/projects",
					strings.NewReader("access_token="+atkValid(t, env)))
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				return r
			}},
		// Conflicting namespace_id parameters: gateway and platform could
		// each pick a different one.
		{name: "conflicting namespace ids", status: s400, reason: "ambiguous_namespace",
			req: func(t *testing.T, env *atkEnv) *http.Request {
				return bearer("/v0/projects?namespace_id=ns_2&namespace_id=ns_1", atkValid(t, env))
			}},
		// The same conflict with one name percent-encoded.
		{name: "conflicting namespace ids encoded", status: s400, reason: "ambiguous_namespace",
			req: func(t *testing.T, env *atkEnv) *http.Request {
				return bearer("/v0/projects?namespace%5Fid=ns_2&namespace_id=ns_1", atkValid(t, env))
			}},
		// Semicolon parameter smuggling (CVE-2021-23336 in Python's
		// urllib; Go 1.17 stopped splitting on ';'): Go drops the pair
		// with ';' while a ';'-splitting platform reads namespace_id=ns_2
		// first.
		{name: "namespace smuggled after semicolon", status: s400,
			req: func(t *testing.T, env *atkEnv) *http.Request {
				return bearer("/v0/projects?x=1;namespace_id=ns_2&namespace_id=ns_1", atkValid(t, env))
			}},

		// A raw '#' is not allowed in a request target (RFC 9112 section
		// 3.2); Go keeps it in the query, where the gateway would read
		// "ns_1#" while a server cutting it as a fragment reads ns_1.
		{name: "raw hash in the query", status: s400, reason: "bad_query",
			req: func(t *testing.T, env *atkEnv) *http.Request {
				return bearer("/v0/projects?namespace_id=ns_1#", atkValid(t, env))
			}},

		// --- hostile users-API answers (these reach the users API) ---

		// A permission with a comma forges a second list entry.
		{name: "permission with comma", status: s503, reason: "users_api_unavailable", apiCalls: 1,
			prepare: atkUser(Permissions{UserID: "user_123", OrgPermissions: []string{"users.read,org.admin"}}), req: atkTokenFn(atkValid)},
		// A permission with '=' forges a namespace-role entry.
		{name: "permission with equals", status: s503, reason: "users_api_unavailable", apiCalls: 1,
			prepare: atkUser(Permissions{UserID: "user_123", OrgPermissions: []string{"ns_9=namespace_admin"}}), req: atkTokenFn(atkValid)},
		// A namespace id with '=' and ',' forges namespace-role entries.
		{name: "namespace id with equals", status: s503, reason: "users_api_unavailable", apiCalls: 1,
			prepare: atkUser(Permissions{UserID: "user_123", Namespaces: []NamespaceGrant{{
				NamespaceID: "ns_1=namespace_admin,ns_2", Role: "namespace_reader"}}}), req: atkTokenFn(atkValid)},
		// A role with a comma.
		{name: "namespace role with comma", status: s503, reason: "users_api_unavailable", apiCalls: 1,
			prepare: atkUser(Permissions{UserID: "user_123", Namespaces: []NamespaceGrant{{
				NamespaceID: "ns_1", Role: "namespace_reader,ns_2=namespace_admin"}}}), req: atkTokenFn(atkValid)},
		// An org role carrying CR LF: header injection from the users API.
		{name: "org role with crlf", status: s503, reason: "users_api_unavailable", apiCalls: 1,
			prepare: atkUser(Permissions{UserID: "user_123", OrgRole: "org_reader\r\nX-Dbnl-User-Id: admin"}), req: atkTokenFn(atkValid)},
		// An answer about another user (a users API confused by a crafted
		// id, or a cache mix-up on its side).
		{name: "user id mismatch", status: s503, reason: "users_api_unavailable", apiCalls: 1,
			prepare: atkUser(Permissions{UserID: "user_456", OrgRole: "org_admin"}), req: atkTokenFn(atkValid)},
		// Path traversal through the user id into permissions_url: the
		// stub decodes and cleans the path, lands on user_123's record, and
		// only the user_id check stands in the way.
		{name: "sub path traversal into users api", status: s503, reason: "users_api_unavailable", apiCalls: 1,
			req: atkToken(atkHS256(atkHeader, atkClaim("sub", `"../user_123"`)))},
		// A disabled user.
		{name: "disabled user", status: s401, reason: "user_not_active", apiCalls: 1,
			prepare: atkUser(Permissions{UserID: "user_123", Disabled: true}), req: atkTokenFn(atkValid)},
		// An unknown user.
		{name: "unknown user", status: s401, reason: "user_not_active", apiCalls: 1,
			req: atkToken(atkHS256(atkHeader, atkClaim("sub", `"ghost"`)))},
		// JSON null for the whole answer.
		{name: "null answer", status: s503, reason: "users_api_unavailable", apiCalls: 1,
			prepare: atkBody("null"), req: atkTokenFn(atkValid)},
		// A null namespace entry.
		{name: "null namespace entry", status: s503, reason: "users_api_unavailable", apiCalls: 1,
			prepare: atkBody(`{"user_id":"user_123","namespaces":[null]}`), req: atkTokenFn(atkValid)},
		// A second JSON document after the answer, for decoders that stop
		// at the first.
		{name: "trailing json document", status: s503, reason: "users_api_unavailable", apiCalls: 1,
			prepare: atkBody(`{"user_id":"user_123"}{"user_id":"user_123","org_role":"org_admin"}`), req: atkTokenFn(atkValid)},
		// An answer past the 1 MiB bound.
		{name: "oversized answer", status: s503, reason: "users_api_unavailable", apiCalls: 1,
			prepare: atkBody(`{"user_id":"user_123","org_permissions":["` + strings.Repeat("a", 1<<20) + `"]}`), req: atkTokenFn(atkValid)},
		// An HTML error page with status 200.
		{name: "html answer", status: s503, reason: "users_api_unavailable", apiCalls: 1,
			prepare: atkBody("<html>ok</html>"), req: atkTokenFn(atkValid)},
		// A 500.
		{name: "users api 500", status: s503, reason: "users_api_unavailable", apiCalls: 1,
			prepare: func(_ *testing.T, env *atkEnv) { env.api.setFailure(500, "", 0) }, req: atkTokenFn(atkValid)},
		// A slow users API: the call is cut at permissions_timeout.
		{name: "users api timeout", status: s503, reason: "users_api_unavailable", apiCalls: 1,
			cfg:     func(h *Handler) { h.PermissionsTimeout = caddy.Duration(100 * time.Millisecond) },
			prepare: func(_ *testing.T, env *atkEnv) { env.api.setFailure(0, "", 2*time.Second) }, req: atkTokenFn(atkValid)},
	}
}

// atkReverse returns b in reverse order, for little-endian scalars.
func atkReverse(b []byte) []byte {
	r := make([]byte, len(b))
	for i := range b {
		r[len(b)-1-i] = b[i]
	}
	return r
}

// TestAttackDenied runs the attack corpus through ServeHTTP: each must
// be refused with its status and reason, never reach next, and make no
// users-API call unless the attack is the users API's answer.
func TestAttackDenied(t *testing.T) {
	cases := atkCases()
	if len(cases) < 40 {
		t.Fatalf("got %d attack cases, want at least 40", len(cases))
	}
	seen := map[string]bool{}
	for _, tc := range cases {
		if seen[tc.name] {
			t.Fatalf("duplicate case name %q", tc.name)
		}
		seen[tc.name] = true
		t.Run(tc.name, func(t *testing.T) {
			atkSkipKnown(t, tc.finding)
			env := &atkEnv{api: newUsersAPI(t), side: newAtkCounter(t)}
			h := newTestHandler(t, env.api, tc.cfg)
			if tc.prepare != nil {
				tc.prepare(t, env)
			}
			r := tc.req(t, env)
			before := env.api.calls.Load()

			w, next, repl := serve(t, h, r)

			if w.Code != tc.status {
				t.Errorf("got status %d, want %d; body %s", w.Code, tc.status, w.Body)
			}
			if next.called {
				t.Errorf("got next called with %v, want next never called", next.req.Header)
			}
			if got := env.api.calls.Load() - before; got != tc.apiCalls {
				t.Errorf("got %d users-API calls, want %d", got, tc.apiCalls)
			}
			if got := env.side.hits.Load(); got != 0 {
				t.Errorf("got %d requests to the attacker's server, want 0", got)
			}
			if tc.reason != "" {
				if got, _ := repl.GetString("dbnl.denial"); got != tc.reason {
					t.Errorf("got denial reason %q, want %q", got, tc.reason)
				}
			}
			atkCheckDenialBody(t, w, tc.status)
		})
	}
}

// atkCheckDenialBody checks the JSON body and headers of a denial.
func atkCheckDenialBody(t *testing.T, w *httptest.ResponseRecorder, status int) {
	t.Helper()
	if got := w.Header().Get("Content-Type"); got != "application/json" {
		t.Errorf("got Content-Type %q, want application/json", got)
	}
	var body struct{ Code, Message string }
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatalf("decoding denial body %q: %v", w.Body, err)
	}
	want := map[int]string{401: "auth_error", 400: "bad_request", 503: "auth_unavailable"}[status]
	if body.Code != want {
		t.Errorf("got code %q, want %q", body.Code, want)
	}
	switch status {
	case http.StatusUnauthorized:
		if got := w.Header().Get("WWW-Authenticate"); !strings.HasPrefix(got, `Bearer realm="dbnl"`) {
			t.Errorf("got WWW-Authenticate %q, want a Bearer challenge", got)
		}
	case http.StatusServiceUnavailable:
		if w.Header().Get("Retry-After") == "" {
			t.Error("got no Retry-After on a 503, want one")
		}
	}
	// nothing the client sent is echoed back
	if strings.Contains(w.Body.String(), "eyJ") || strings.Contains(w.Header().Get("WWW-Authenticate"), "eyJ") {
		t.Errorf("denial echoes a token: %s", w.Body)
	}
}

// TestAttackMissingAudienceReason checks that a token whose aud is
// absent, or of a type golang-jwt reads as absent, is logged as an
// audience failure rather than as a missing expiry.
func TestAttackMissingAudienceReason(t *testing.T) {
	api := newUsersAPI(t)
	h := newTestHandler(t, api, nil)
	for _, aud := range []string{"", "7", `{"dbnl-api":true}`, "[]"} {
		tok := atkHS256(atkHeader, atkClaim("aud", aud))
		_, _, repl := serve(t, h, bearer("/", tok))
		if got, _ := repl.GetString("dbnl.denial"); got != "wrong_audience" {
			t.Errorf("aud %q: got denial reason %q, want wrong_audience", aud, got)
		}
	}
}

// TestAttackSpoofedHeaders sends a valid token along with forged
// identity headers in the shapes that got past other auth proxies: the
// platform must see only the gateway's values.
func TestAttackSpoofedHeaders(t *testing.T) {
	cases := []struct {
		name string
		// user replaces user_123's permissions, if set.
		user *Permissions
		// target is the request URL.
		target string
		// forge adds the forged headers.
		forge func(r *http.Request)
		// want are the identity headers next must see, by canonical
		// name; a header not listed must be absent.
		want    map[string]string
		finding string
	}{
		// The basic forward-auth spoof: the client sends the identity
		// header the proxy is meant to set.
		{name: "forged user id",
			forge: func(r *http.Request) { r.Header.Set("X-Dbnl-User-Id", "admin") },
			want:  atkWantOrg()},
		// oauth2-proxy GHSA-vjrc-mh2v-45x6 (CVE-2025-64484): underscore
		// variants that WSGI, PHP and Rack read as dashes.
		{name: "underscore variant",
			forge: func(r *http.Request) { r.Header["X_Dbnl_User_Id"] = []string{"admin"} },
			want:  atkWantOrg()},
		// Mixed underscore and dash, lower case, not canonicalised.
		{name: "mixed separators lower case",
			forge: func(r *http.Request) { r.Header["x-dbnl_permissions"] = []string{"org.admin"} },
			want:  atkWantOrg()},
		// Upper case name, as an HTTP/1 client may send it.
		{name: "upper case name",
			forge: func(r *http.Request) { r.Header["X-DBNL-ORG-ROLE"] = []string{"org_admin"} },
			want:  atkWantOrg()},
		// Repeated header: a platform reading the first value would see
		// the forged one if ours were appended.
		{name: "repeated header",
			forge: func(r *http.Request) { r.Header["X-Dbnl-Permissions"] = []string{"org.admin", "org.owner"} },
			want:  atkWantOrg()},
		// Caddy GHSA-7r4p-vjf4-gxv4: forward_auth deleted a client header
		// only when the auth service returned one; here the user has no org
		// role and no namespaces, so the gateway sets neither.
		{name: "header the gateway does not set",
			user: &Permissions{UserID: "user_123", OrgPermissions: []string{"users.read"}},
			forge: func(r *http.Request) {
				r.Header.Set("X-Dbnl-Org-Role", "org_admin")
				r.Header.Set("X-Dbnl-Namespace-Roles", "ns_1=namespace_admin")
			},
			want: map[string]string{"X-Dbnl-User-Id": "user_123", "X-Dbnl-Permissions": "users.read", "X-Dbnl-Token-Id": "tok-1"}},
		// A forged namespace scope on a request that names none.
		{name: "forged namespace scope",
			forge: func(r *http.Request) {
				r.Header.Set("X-Dbnl-Namespace-Id", "ns_1")
				r.Header.Set("X-Dbnl-Namespace-Role", "namespace_admin")
			},
			want: atkWantOrg()},
		// A namespace the user has no role in: org permissions only.
		{name: "namespace without role", target: "/v0/projects?namespace_id=ns_9",
			forge: func(r *http.Request) { r.Header.Set("X-Dbnl-Namespace-Role", "namespace_admin") },
			want:  atkWantOrg()},
		// A future header under the prefix that the gateway does not set
		// yet but the platform might read.
		{name: "unknown prefixed header",
			forge: func(r *http.Request) { r.Header.Set("X-Dbnl-Is-Admin", "true") },
			want:  atkWantOrg()},
		// Apache CVE-2013-5704 (mod_headers trailers): a header declared as
		// a trailer and sent after the body.
		{name: "forged trailer",
			forge: func(r *http.Request) {
				r.Header.Set("Trailer", "X-Dbnl-User-Id")
				r.Trailer = http.Header{"X-Dbnl-User-Id": {"admin"}}
			},
			want: atkWantOrg()},
		// Traefik CVE-2021-32813 and CVE-2024-45410: a client lists a
		// trusted header in Connection so that the reverse proxy drops it
		// as hop-by-hop after the auth middleware set it; dropping the
		// namespace scope turns namespace permissions into org-wide ones.
		{name: "connection header nominates identity headers", target: "/v0/projects?namespace_id=ns_1",
			forge: func(r *http.Request) {
				r.Header.Set("Connection", "keep-alive, X-Dbnl-Namespace-Id, x_dbnl_namespace_role")
			},
			want: map[string]string{"X-Dbnl-User-Id": "user_123", "X-Dbnl-Org-Role": "org_reader",
				"X-Dbnl-Permissions": "projects.read,projects.write,users.read", "X-Dbnl-Namespace-Id": "ns_1",
				"X-Dbnl-Namespace-Role": "namespace_writer", "X-Dbnl-Namespace-Roles": "ns_1=namespace_writer,ns_2=namespace_reader",
				"X-Dbnl-Token-Id": "tok-1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			atkSkipKnown(t, tc.finding)
			api := newUsersAPI(t)
			if tc.user != nil {
				api.set(tc.user)
			}
			h := newTestHandler(t, api, nil)
			target := tc.target
			if target == "" {
				target = "/v0/projects"
			}
			r := bearer(target, signToken(t, "HS256", validClaims("user_123"), nil))
			tc.forge(r)

			w, next, _ := serve(t, h, r)
			if w.Code != http.StatusOK || !next.called {
				t.Fatalf("got status %d, next called %v; want 200 and next called", w.Code, next.called)
			}
			atkCheckIdentity(t, next.req.Header, tc.want)
			atkCheckIdentity(t, next.req.Trailer, nil)
			for _, v := range next.req.Header.Values("Connection") {
				for _, f := range strings.Split(v, ",") {
					if h.headers.hasPrefix(strings.TrimSpace(f)) {
						t.Errorf("got Connection naming %q, want no identity header nominated as hop-by-hop", strings.TrimSpace(f))
					}
				}
			}
		})
	}
}

// atkWantOrg is what next sees for user_123 on a request naming no
// namespace.
func atkWantOrg() map[string]string {
	return map[string]string{
		"X-Dbnl-User-Id":         "user_123",
		"X-Dbnl-Org-Role":        "org_reader",
		"X-Dbnl-Permissions":     "users.read",
		"X-Dbnl-Namespace-Roles": "ns_1=namespace_writer,ns_2=namespace_reader",
		"X-Dbnl-Token-Id":        "tok-1",
	}
}

// atkCheckIdentity checks that the identity headers in h, under any
// spelling, are exactly want, one value each.
func atkCheckIdentity(t *testing.T, h http.Header, want map[string]string) {
	t.Helper()
	hs := newHeaderSet(defaultHeaderPrefix)
	got := map[string]string{}
	for name, values := range h {
		if !hs.hasPrefix(name) {
			continue
		}
		if name != http.CanonicalHeaderKey(name) || len(values) != 1 {
			t.Errorf("got identity header %q = %q, want one canonical value", name, values)
			continue
		}
		got[name] = values[0]
	}
	for name, v := range want {
		if got[name] != v {
			t.Errorf("got %s %q, want %q", name, got[name], v)
		}
	}
	for name, v := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("got %s %q, want it absent", name, v)
		}
	}
}

// TestAttackUserIDCannotChangeUsersAPIPath signs tokens whose user id
// tries to walk out of its path segment in permissions_url, and checks
// what the users API actually receives.
func TestAttackUserIDCannotChangeUsersAPIPath(t *testing.T) {
	var (
		mu   sync.Mutex
		uris []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		uris = append(uris, r.RequestURI)
		mu.Unlock()
		http.NotFound(w, r)
	}))
	t.Cleanup(srv.Close)
	api := newUsersAPI(t)
	h := newTestHandler(t, api, func(h *Handler) {
		h.PermissionsURL = srv.URL + "/v0/users/{user}/permissions?for={user}"
	})

	for _, user := range []string{"..", ".", "../admin", "..%2fadmin", "a/b", "a?b=c", "a#b", `a\b`,
		"%2e%2e", "user_123/../../admin", "a;b", "é", "a b", "a&for=admin"} {
		t.Run(user, func(t *testing.T) {
			mu.Lock()
			uris = nil
			mu.Unlock()
			tok := atkHS256(atkHeader, atkClaim("sub", atkJSON(t, user)))
			w, next, _ := serve(t, h, bearer("/", tok))
			if w.Code != http.StatusUnauthorized || next.called {
				t.Fatalf("got status %d, next called %v; want 401 from the users API's 404", w.Code, next.called)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(uris) != 1 {
				t.Fatalf("got %d users-API calls, want 1", len(uris))
			}
			u, err := url.ParseRequestURI(uris[0])
			if err != nil {
				t.Fatalf("parsing %q: %v", uris[0], err)
			}
			seg, ok := strings.CutPrefix(u.EscapedPath(), "/v0/users/")
			seg, ok2 := strings.CutSuffix(seg, "/permissions")
			if !ok || !ok2 || strings.Contains(seg, "/") || seg == "." || seg == ".." {
				t.Fatalf("got path %q, want /v0/users/<one segment>/permissions", u.EscapedPath())
			}
			if got, _ := url.PathUnescape(seg); got != user {
				t.Errorf("got user segment %q decoding to %q, want %q", seg, got, user)
			}
			q := u.Query()
			if len(q) != 1 || len(q["for"]) != 1 || q.Get("for") != user {
				t.Errorf("got query %q, want for=%q only", u.RawQuery, user)
			}
		})
	}
}

// atkJSON encodes v as JSON.
func atkJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestAttackRedirectNotFollowed makes the users API redirect to
// another loopback server, an SSRF path: the gateway must not follow.
func TestAttackRedirectNotFollowed(t *testing.T) {
	side := newAtkCounter(t)
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Redirect(w, r, side.URL+"/internal", http.StatusFound)
	}))
	t.Cleanup(srv.Close)
	h := newTestHandler(t, newUsersAPI(t), func(h *Handler) {
		h.PermissionsURL = srv.URL + "/v0/users/{user}/permissions"
	})
	w, next, _ := serve(t, h, bearer("/", signToken(t, "HS256", validClaims("user_123"), nil)))
	if w.Code != http.StatusServiceUnavailable || next.called {
		t.Errorf("got status %d, next called %v; want 503 and next not called", w.Code, next.called)
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("got %d users-API calls, want 1", got)
	}
	if got := side.hits.Load(); got != 0 {
		t.Errorf("got %d requests to the redirect target, want 0", got)
	}
}

// TestAttackRefusedTokenDoesNotLockOutUser uses a users API that, as
// the contract allows, authenticates the Authorization header it is
// sent and refuses one token with 401. Answers are cached per user, so
// if that refusal were cached, one request per TTL with the refused
// token would lock the user's good tokens out.
func TestAttackRefusedTokenDoesNotLockOutUser(t *testing.T) {
	good := signToken(t, "HS256", validClaims("user_123"), nil)
	refusedClaims := validClaims("user_123")
	refusedClaims["jti"] = "tok-refused"
	refused := signToken(t, "HS256", refusedClaims, nil)

	answer, _ := json.Marshal(Permissions{UserID: "user_123", OrgRole: "org_reader", OrgPermissions: []string{"users.read"}})
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.Header.Get("Authorization") == "Bearer "+refused {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = w.Write(answer)
	}))
	t.Cleanup(srv.Close)
	h := newTestHandler(t, newUsersAPI(t), func(h *Handler) {
		h.PermissionsURL = srv.URL + "/v0/users/{user}/permissions"
	})

	if w, next, _ := serve(t, h, bearer("/", refused)); w.Code != http.StatusUnauthorized || next.called {
		t.Fatalf("refused token: got status %d, next called %v; want 401", w.Code, next.called)
	}
	if w, _, _ := serve(t, h, bearer("/", good)); w.Code != http.StatusOK {
		t.Errorf("good token after a refused one: got status %d, want 200", w.Code)
	}
	if got := calls.Load(); got != 2 {
		t.Errorf("got %d users-API calls, want 2 (the refusal is not cached)", got)
	}
}

// TestAttackExtractTokenInnerSpace checks that a bearer value with
// whitespace inside is refused by extractToken itself, not only later
// by verify's shape check.
func TestAttackExtractTokenInnerSpace(t *testing.T) {
	for _, v := range []string{"Bearer a b", "Bearer a\tb", "Bearer a.b.c d"} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Authorization", v)
		if tok, err := extractToken(r, defaultMaxTokenBytes); err == nil {
			t.Errorf("%q: got token %q, want a denial", v, tok)
		}
	}
}

// atkWireServer serves the handler over real HTTP on loopback, so that
// net/http parses what the client wrote before the handler sees it.
type atkWireServer struct {
	*httptest.Server
	nextCalls atomic.Int64
	mu        sync.Mutex
	last      http.Header // identity headers and trailers next saw
}

func newAtkWireServer(t *testing.T, h *Handler) *atkWireServer {
	t.Helper()
	s := &atkWireServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &nextRecorder{}
		ctx := context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer())
		if err := h.ServeHTTP(w, r.WithContext(ctx), atkNextFunc(func(w http.ResponseWriter, r *http.Request) error {
			s.nextCalls.Add(1)
			// read the body so trailers arrive, as reverse_proxy would
			_, _ = io.Copy(io.Discard, r.Body)
			seen := http.Header{}
			for k, v := range r.Header {
				seen[k] = v
			}
			for k, v := range r.Trailer {
				seen["Trailer:"+k] = v
			}
			s.mu.Lock()
			s.last = seen
			s.mu.Unlock()
			return rec.ServeHTTP(w, r)
		})); err != nil {
			t.Errorf("ServeHTTP returned error: %v", err)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

// atkNextFunc adapts a function to the next handler.
type atkNextFunc func(http.ResponseWriter, *http.Request) error

func (f atkNextFunc) ServeHTTP(w http.ResponseWriter, r *http.Request) error { return f(w, r) }

// roundTrip writes raw to the server and returns the status of the
// answer.
func (s *atkWireServer) roundTrip(t *testing.T, raw string) int {
	t.Helper()
	conn, err := net.DialTimeout("tcp", s.Listener.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatalf("dialing: %v", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatalf("writing: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestAttackWire sends raw HTTP/1.1 requests, so the attacks pass
// through net/http's parsing of the request line and headers first.
func TestAttackWire(t *testing.T) {
	api := newUsersAPI(t)
	h := newTestHandler(t, api, nil)
	s := newAtkWireServer(t, h)
	tok := signToken(t, "HS256", validClaims("user_123"), nil)

	denied := []struct {
		name   string
		raw    string
		status int
	}{
		// Duplicate Authorization lines on the wire.
		{"duplicate authorization lines",
			"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok + "\r\nAuthorization: Bearer forged\r\n\r\n", 401},
		// The same header in lower case and canonical case: one field to
		// net/http, two to a case-sensitive reader.
		{"authorization in two spellings",
			"GET / HTTP/1.1\r\nHost: x\r\nauthorization: Bearer forged\r\nAuthorization: Bearer " + tok + "\r\n\r\n", 401},
		// Obsolete line folding (RFC 9112 section 5.2) continuing the token.
		{"obs-fold continuation",
			"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok + "\r\n forged\r\n\r\n", 401},
		// A NUL in the header value.
		{"nul in authorization",
			"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok + "\x00x\r\n\r\n", 400},
		// A space before the colon (RFC 9112 section 5.1), which some
		// proxies strip and others keep as part of the name.
		{"space before colon",
			"GET / HTTP/1.1\r\nHost: x\r\nAuthorization : Bearer " + tok + "\r\n\r\n", 400},
		// Token only in the query string, RFC 6750 section 2.3.
		{"query token on the wire",
			"GET /?access_token=" + tok + " HTTP/1.1\r\nHost: x\r\n\r\n", 401},
	}
	for _, tc := range denied {
		t.Run(tc.name, func(t *testing.T) {
			nextBefore, apiBefore := s.nextCalls.Load(), api.calls.Load()
			if got := s.roundTrip(t, tc.raw); got != tc.status {
				t.Errorf("got status %d, want %d", got, tc.status)
			}
			if got := s.nextCalls.Load() - nextBefore; got != 0 {
				t.Errorf("got next called %d times, want 0", got)
			}
			if got := api.calls.Load() - apiBefore; got != 0 {
				t.Errorf("got %d users-API calls, want 0", got)
			}
		})
	}

	// Apache CVE-2013-5704: identity headers sent as request trailers
	// after a chunked body. net/http fills r.Trailer only when the body
	// is read to its end, after the handler has stripped it.
	t.Run("identity header in chunked trailer", func(t *testing.T) {
		raw := "POST /v0/projects HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok + "\r\n" +
			"Trailer: X-Dbnl-Org-Role\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"2\r\n{}\r\n0\r\nX-Dbnl-Org-Role: org_admin\r\nX-Dbnl-User-Id: admin\r\n\r\n"
		if got := s.roundTrip(t, raw); got != http.StatusOK {
			t.Fatalf("got status %d, want 200", got)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		for k, v := range s.last {
			if name, ok := strings.CutPrefix(k, "Trailer:"); ok && h.headers.hasPrefix(name) {
				t.Errorf("got trailer %s: %q after the body, want no identity trailer", name, v)
			}
		}
	})
}

// atkPlatformSeen is what the platform behind a real Caddy received:
// the request headers, and the trailers once the body was read.
type atkPlatformSeen struct {
	mu       sync.Mutex
	header   http.Header
	trailer  http.Header
	requests int
}

func (p *atkPlatformSeen) serve(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	p.mu.Lock()
	p.header, p.trailer = r.Header.Clone(), r.Trailer.Clone()
	p.requests++
	p.mu.Unlock()
	_, _ = io.WriteString(w, `{"ok":true}`)
}

// atkRawToGateway writes raw to the gateway at base and returns the
// status of its answer.
func atkRawToGateway(t *testing.T, base, raw string) int {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatalf("dialing the gateway: %v", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatalf("writing: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestAttackThroughCaddy runs the header attacks through a real Caddy,
// dbnl_auth then reverse_proxy, and looks at what the platform gets.
func TestAttackThroughCaddy(t *testing.T) {
	cases := []struct {
		name    string
		raw     func(tok string) string
		check   func(t *testing.T, hs headerSet, p *atkPlatformSeen)
		finding string
	}{
		// oauth2-proxy CVE-2025-64484 and Caddy GHSA-7r4p-vjf4-gxv4, end
		// to end: forged identity headers in several spellings.
		{name: "forged identity headers",
			raw: func(tok string) string {
				return "GET /v0/projects HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok + "\r\n" +
					"X-Dbnl-User-Id: admin\r\nX_Dbnl_Org_Role: org_admin\r\nx-dbnl-permissions: org.admin\r\n" +
					"X-Dbnl-Namespace-Id: ns_9\r\nConnection: close\r\n\r\n"
			},
			check: func(t *testing.T, hs headerSet, p *atkPlatformSeen) {
				if got := p.header.Get("X-Dbnl-User-Id"); got != "user_123" {
					t.Errorf("got X-Dbnl-User-Id %q, want user_123", got)
				}
				for name, v := range p.header {
					if hs.hasPrefix(name) && name != http.CanonicalHeaderKey(name) {
						t.Errorf("got forged header %s: %q at the platform", name, v)
					}
				}
				if got := p.header.Get("X-Dbnl-Namespace-Id"); got != "" {
					t.Errorf("got X-Dbnl-Namespace-Id %q, want none", got)
				}
			}},
		// Traefik CVE-2021-32813 / CVE-2024-45410, end to end: Connection
		// names the namespace headers so reverse_proxy drops them, and the
		// namespace's write permission reaches the platform unscoped.
		{name: "connection header drops namespace scope",
			raw: func(tok string) string {
				return "GET /v0/projects?namespace_id=ns_1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok + "\r\n" +
					"Connection: close, X-Dbnl-Namespace-Id, X-Dbnl-Namespace-Role\r\n\r\n"
			},
			check: func(t *testing.T, hs headerSet, p *atkPlatformSeen) {
				if got := p.header.Get("X-Dbnl-Permissions"); got != "projects.read,projects.write,users.read" {
					t.Fatalf("got X-Dbnl-Permissions %q, want ns_1's", got)
				}
				if got := p.header.Get("X-Dbnl-Namespace-Id"); got != "ns_1" {
					t.Errorf("got X-Dbnl-Namespace-Id %q beside namespace permissions, want ns_1", got)
				}
				if got := p.header.Get("X-Dbnl-Namespace-Role"); got != "namespace_writer" {
					t.Errorf("got X-Dbnl-Namespace-Role %q, want namespace_writer", got)
				}
			}},
		// Apache CVE-2013-5704, end to end: identity fields in the chunked
		// trailer of a request.
		{name: "identity fields in request trailer",
			raw: func(tok string) string {
				return "POST /v0/projects HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok + "\r\n" +
					"Trailer: X-Checksum\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" +
					"2\r\n{}\r\n0\r\nX-Checksum: 1\r\nX-Dbnl-User-Id: admin\r\nX-Dbnl-Org-Role: org_admin\r\n\r\n"
			},
			check: func(t *testing.T, hs headerSet, p *atkPlatformSeen) {
				for name, v := range p.trailer {
					if hs.hasPrefix(name) {
						t.Errorf("got trailer %s: %q at the platform, want none", name, v)
					}
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			atkSkipKnown(t, tc.finding)
			api := newUsersAPI(t)
			p := &atkPlatformSeen{}
			g := startIntegGateway(t, api, integOptions{platform: p.serve})
			tok := signToken(t, "HS256", integClaims("user_123"), nil)

			if got := atkRawToGateway(t, g.url, tc.raw(tok)); got != http.StatusOK {
				t.Fatalf("got status %d, want 200", got)
			}
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.requests != 1 {
				t.Fatalf("got %d platform requests, want 1", p.requests)
			}
			tc.check(t, newHeaderSet(defaultHeaderPrefix), p)
		})
	}
}
