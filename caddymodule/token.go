package dbnlauth

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
	lru "github.com/hashicorp/golang-lru/v2"
)

// maxUserIDBytes bounds the user claim; longer ids are refused.
const maxUserIDBytes = 256

// identity is what a verified token says about its holder.
type identity struct {
	userID      string
	tokenID     string // the jti, if any
	fingerprint string // first 12 hex digits of the token's SHA-256
	expires     time.Time

	// tokenID and fingerprint as placeholder values, boxed once
	tokenIDValue, fingerprintValue any
}

// tokenFingerprint returns the first 12 hex digits of the SHA-256 of
// token along with the whole sum, which keys the verified-token cache.
func tokenFingerprint(token string) (string, [sha256.Size]byte) {
	sum := tokenSum(token)
	return hex.EncodeToString(sum[:6]), sum
}

// tokenSum returns the SHA-256 of token. Converting a string longer
// than 32 bytes to a []byte allocates; copying it into a buffer on the
// stack does not, and most tokens fit in 1 KiB.
func tokenSum(token string) [sha256.Size]byte {
	var buf [1 << 10]byte
	return sha256.Sum256(append(buf[:0], token...))
}

// extractToken returns the bearer token of r, or a denial. It refuses,
// without parsing anything, requests with no token, several
// Authorization headers, an empty or oversized token, or a token in
// the query string.
func extractToken(r *http.Request, maxBytes int) (string, error) {
	// RFC 6750 section 2.3 allows a token in the query string; we do
	// not, since URLs end up in logs and Referer headers.
	// The key may be percent-encoded (access%5Ftoken), so any query
	// with an escape is parsed; the rest are searched as text.
	if r.URL != nil {
		q := r.URL.RawQuery
		if (strings.Contains(q, "access_token") || strings.Contains(q, "%")) &&
			r.URL.Query().Has("access_token") {
			return "", errQueryToken
		}
	}

	values := r.Header.Values("Authorization")
	switch len(values) {
	case 0:
		return "", errNoToken
	case 1:
	default:
		// two headers could be read differently by the gateway and
		// the platform; refuse rather than pick one
		return "", errManyAuthorization
	}

	// the scheme is case-insensitive (RFC 7235 section 2.1)
	scheme, token, found := strings.Cut(strings.TrimSpace(values[0]), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		if scheme == "" {
			return "", errNoToken
		}
		return "", errNotBearer
	}
	if !found {
		return "", errEmptyToken
	}
	token = strings.TrimLeft(token, " ")
	if token == "" {
		return "", errEmptyToken
	}
	if strings.IndexByte(token, ' ') >= 0 || strings.IndexByte(token, '\t') >= 0 {
		return "", errMalformed
	}
	if len(token) > maxBytes {
		return "", errTokenTooLarge
	}
	return token, nil
}

// checkShape refuses tokens that are not a compact JWS before a parser
// sees them: exactly three base64url segments, so no JWE (five
// segments), no whitespace and no padding.
func checkShape(token string) error {
	dots := 0
	for i := 0; i < len(token); i++ {
		c := token[i]
		switch {
		case c == '.':
			dots++
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '_':
		default:
			return errMalformed
		}
	}
	switch dots {
	case 2:
		return nil
	case 4:
		return errEncrypted
	default:
		return errMalformed
	}
}

// rejectedHeaderFields are JOSE header fields we refuse. A token that
// names its own key (jwk, jku, x5u, x5c) is an attack on verifiers that
// trust it; crit asks for extensions we do not implement (RFC 7515
// section 4.1.11); enc and zip belong to encrypted tokens.
var rejectedHeaderFields = []string{"jwk", "jku", "x5u", "x5c", "x5t", "x5t#S256", "crit", "enc", "zip"}

// verifier checks tokens against the configured keys and claims.
type verifier struct {
	keys      []*verificationKey
	anyKID    bool // some key has a kid, so a token's kid must match one
	algs      []string
	issuers   []string
	userClaim string
	leeway    time.Duration
	now       func() time.Time
	parser    *jwt.Parser
	cache     *lru.Cache[[sha256.Size]byte, *identity]
}

// newVerifier builds a verifier. cacheSize bounds the verified-token
// cache; zero disables it.
func newVerifier(keys []*verificationKey, algs, issuers, audiences []string,
	userClaim string, leeway time.Duration, now func() time.Time, cacheSize int) (*verifier, error) {
	v := &verifier{
		keys:      keys,
		algs:      algs,
		issuers:   issuers,
		userClaim: userClaim,
		leeway:    leeway,
		now:       now,
	}
	for _, k := range keys {
		if k.kid != "" {
			v.anyKID = true
		}
	}

	opts := []jwt.ParserOption{
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(now),
		jwt.WithStrictDecoding(),
	}
	if len(audiences) > 0 {
		// any one of the configured audiences is enough
		opts = append(opts, jwt.WithAudience(audiences...))
	}
	v.parser = jwt.NewParser(opts...)

	if cacheSize > 0 {
		c, err := lru.New[[sha256.Size]byte, *identity](cacheSize)
		if err != nil {
			return nil, err
		}
		v.cache = c
	}
	return v, nil
}

// verify checks token and returns who it speaks for. A token seen
// before, and not yet expired, is answered from the cache without a
// second signature check.
func (v *verifier) verify(token string) (*identity, error) {
	sum := tokenSum(token)
	if v.cache != nil {
		if id, ok := v.cache.Get(sum); ok {
			if v.now().Before(id.expires.Add(v.leeway)) {
				return id, nil
			}
			v.cache.Remove(sum)
			return nil, errExpired
		}
	}

	if err := checkShape(token); err != nil {
		return nil, err
	}

	claims := jwt.MapClaims{}
	_, err := v.parser.ParseWithClaims(token, claims, v.keyFunc)
	if err != nil {
		// jwt reports any missing required claim the same way; with
		// an expiry present, the missing one is the audience
		if errors.Is(err, jwt.ErrTokenRequiredClaimMissing) {
			if exp, _ := claims.GetExpirationTime(); exp != nil {
				return nil, errAudience
			}
		}
		return nil, v.classify(err)
	}

	// the issuer allow-list: jwt checks one issuer only
	if len(v.issuers) > 0 {
		iss, err := claims.GetIssuer()
		if err != nil || iss == "" || !contains(v.issuers, iss) {
			return nil, errIssuer
		}
	}

	user, ok := claims[v.userClaim].(string)
	if !ok || !cleanValue(user) {
		return nil, errNoUser
	}

	id := &identity{userID: user, fingerprint: hex.EncodeToString(sum[:6])}
	if jti, ok := claims["jti"].(string); ok && cleanValue(jti) {
		id.tokenID = jti
	}
	id.tokenIDValue, id.fingerprintValue = id.tokenID, id.fingerprint
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil {
		return nil, errNoExpiry
	}
	id.expires = exp.Time

	if v.cache != nil {
		v.cache.Add(sum, id)
	}
	return id, nil
}

// keyFunc chooses the keys that may have signed t: those allowing its
// algorithm and, when the token names a kid and our keys have kids, the
// key with that kid.
func (v *verifier) keyFunc(t *jwt.Token) (any, error) {
	for _, f := range rejectedHeaderFields {
		if _, ok := t.Header[f]; ok {
			return nil, errHeaderField
		}
	}

	// the allow-list is checked here rather than with
	// jwt.WithValidMethods so that the denial can say why
	alg := t.Method.Alg()
	if !contains(v.algs, alg) {
		return nil, errAlgorithm
	}

	var kid string
	if raw, ok := t.Header["kid"]; ok {
		s, ok := raw.(string)
		if !ok {
			return nil, errMalformed
		}
		kid = s
	}

	var set jwt.VerificationKeySet
	for _, k := range v.keys {
		if !k.allows(alg) {
			// an RSA public key is never offered as an HMAC secret
			continue
		}
		if kid != "" && v.anyKID && k.kid != kid {
			continue
		}
		set.Keys = append(set.Keys, k.key)
	}
	if len(set.Keys) == 0 {
		if kid != "" && v.anyKID {
			return nil, errUnknownKey
		}
		return nil, errAlgorithm
	}
	return set, nil
}

// classify turns a jwt error into a denial, branching on jwt's
// sentinel errors, never on message text.
func (v *verifier) classify(err error) error {
	var d *denial
	if errors.As(err, &d) {
		return d
	}
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return errMalformed
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return errSignature
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return errAlgorithm
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return errNoExpiry
	case errors.Is(err, jwt.ErrTokenExpired):
		return errExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return errNotYetValid
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return errIssuedInFuture
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return errAudience
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return errIssuer
	case errors.Is(err, jwt.ErrTokenInvalidClaims):
		return errClaims
	}
	return errMalformed
}

// cleanValue reports whether s may be a user id or token id: 1 to 256
// bytes of UTF-8 with no control characters, no U+FFFD (what the JSON
// decoder makes of invalid UTF-8, so that two different byte strings
// would name one user) and no space at either end (which HTTP would trim
// from the header the platform reads).
func cleanValue(s string) bool {
	if s == "" || len(s) > maxUserIDBytes || strings.TrimSpace(s) != s {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == utf8.RuneError {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
