package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// defaultSecretEnv is the environment variable mint reads the HMAC secret
// from. The dbnl_auth examples read the same one with {env.DBNL_PAT_SECRET}.
const defaultSecretEnv = "DBNL_PAT_SECRET"

// minHMACSecretBytes is the shortest HMAC secret mint signs with, the same
// limit the dbnl_auth handler enforces when it loads its config: RFC 7518
// asks for a key at least as long as the hash output, 32 bytes for HS256.
const minHMACSecretBytes = 32

// reservedClaims are the claims mint sets itself from its own flags, so
// --claim and --user-claim may not name them.
var reservedClaims = map[string]string{
	"iss": "--issuer",
	"aud": "--audience",
	"exp": "--lifetime or --expires-at",
	"nbf": "--not-before",
	"iat": "(always the time of minting)",
	"jti": "--jti",
}

// mintOptions holds the flags of `pat mint`. A field's zero value means
// the flag was not given; the *Set fields tell an explicit empty or zero
// value apart from an absent flag.
type mintOptions struct {
	user       string
	userClaim  string
	alg        string
	secretEnv  string
	keyFile    string
	kid        string
	issuer     string
	audiences  []string
	lifetime   time.Duration
	expiresAt  string
	notBefore  time.Duration
	jti        string
	claims     []string
	secretSet  bool // --hmac-secret-env given
	expiresSet bool // --expires-at given
	lifeSet    bool // --lifetime given
	nbfSet     bool // --not-before given
	jtiSet     bool // --jti given, possibly empty
}

// patEnv is the outside world the pat subcommands read: the process
// environment and the clock. Tests replace both.
type patEnv struct {
	getenv func(string) string
	now    func() time.Time
}

// runMint mints a token from opts and writes it alone on a line to stdout,
// so `TOKEN=$(dbnl-gateway pat mint ...)` captures exactly the token.
// Warnings go to stderr. Nothing secret is ever written to either.
func runMint(opts mintOptions, env patEnv, stdout, stderr io.Writer) error {
	token, warnings, err := mintToken(opts, env)
	if err != nil {
		return err
	}
	for _, w := range warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	_, err = fmt.Fprintln(stdout, token)
	return err
}

// mintToken builds and signs the token opts describe. It returns the
// compact JWS and any warnings worth showing the operator.
func mintToken(opts mintOptions, env patEnv) (string, []string, error) {
	// build the claims first, so a mistyped flag is reported before a
	// missing secret or key
	now := env.now().Truncate(time.Second)
	claims, err := buildClaims(opts, now)
	if err != nil {
		return "", nil, err
	}

	// resolve the algorithm and its signing key
	alg, err := lookupAlgorithm(opts.alg)
	if err != nil {
		return "", nil, fmt.Errorf("--alg: %w", err)
	}
	key, err := signingKey(opts, alg, env)
	if err != nil {
		return "", nil, err
	}
	var warnings []string
	if exp := claims["exp"].(int64); exp <= now.Unix() {
		warnings = append(warnings, "the token is already expired")
	}

	// sign
	token := jwt.NewWithClaims(alg.method, claims)
	if opts.kid != "" {
		token.Header["kid"] = opts.kid
	}
	signed, err := token.SignedString(key)
	if err != nil {
		return "", nil, fmt.Errorf("signing token: %w", err)
	}
	return signed, warnings, nil
}

// signingKey returns the key alg signs with: the HMAC secret from the
// environment, or the private key in --key.
func signingKey(opts mintOptions, alg algorithm, env patEnv) (any, error) {
	if alg.kind == kindHMAC {
		if opts.keyFile != "" {
			return nil, fmt.Errorf("--key: %s signs with an HMAC secret, not a key file; "+
				"put the secret in the environment variable named by --hmac-secret-env", alg.name)
		}
		return hmacSecret(opts.secretEnv, env)
	}

	if opts.secretSet {
		return nil, fmt.Errorf("--hmac-secret-env: %s signs with a private key, not an HMAC secret; "+
			"use --key", alg.name)
	}
	if opts.keyFile == "" {
		return nil, fmt.Errorf("--key: %s needs a PEM private key file (%s)", alg.name, alg.kind)
	}
	key, err := loadPrivateKey(opts.keyFile, alg)
	if err != nil {
		return nil, fmt.Errorf("--key: %w", err)
	}
	return key, nil
}

// envNamePattern matches what mint accepts as an environment variable
// name: a POSIX shell name of at most 64 characters.
var envNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// conventionalEnvName matches the upper-case names that errors may
// echo: short enough and shaped unlike a random secret.
var conventionalEnvName = regexp.MustCompile(`^[A-Z_][A-Z0-9_]{0,31}$`)

// hmacSecret returns the HMAC secret held by the environment variable
// name. Its errors name the variable but never contain the secret, nor
// a flag value that does not look like a variable name.
func hmacSecret(name string, env patEnv) ([]byte, error) {
	if name == "" {
		return nil, errors.New("--hmac-secret-env: want the name of an environment variable, got an empty string")
	}
	if !envNamePattern.MatchString(name) {
		// whatever else was typed here may well be the secret itself,
		// pasted in place of the name: echoing it would copy it into
		// terminal scrollback and CI logs, so say what is wrong without it
		return nil, errors.New("--hmac-secret-env: takes the name of an environment variable, not a value")
	}

	// the secret itself is never a flag value: flags land in shell
	// history and in `ps` output for every user on the host
	secret := env.getenv(name)
	if secret == "" {
		// a secret pasted here can still look like a name (a hex
		// string starting with a letter does), so the name is echoed
		// only when it reads like the conventional upper-case kind
		if !conventionalEnvName.MatchString(name) {
			return nil, errors.New("--hmac-secret-env: the environment variable it names is not set or is empty")
		}
		return nil, fmt.Errorf("--hmac-secret-env: environment variable %s is not set or is empty", name)
	}

	// refuse what the gateway would refuse at config load, so every
	// minted token is one some gateway can verify
	if len(secret) < minHMACSecretBytes {
		return nil, fmt.Errorf("--hmac-secret-env: the secret in %s is %d bytes; the gateway requires "+
			"at least %d (make one with 'openssl rand -hex 32')",
			name, len(secret), minHMACSecretBytes)
	}
	return []byte(secret), nil
}

// buildClaims returns the token's claims as of now. Times are whole Unix
// seconds, as RFC 7519 NumericDate values usually are.
func buildClaims(opts mintOptions, now time.Time) (jwt.MapClaims, error) {
	claims := jwt.MapClaims{}

	// user id
	if opts.user == "" {
		return nil, errors.New("--user is required: the user id the token speaks for")
	}
	userClaim := opts.userClaim
	if userClaim == "" {
		return nil, errors.New("--user-claim: want a claim name, got an empty string")
	}
	if flag, ok := reservedClaims[userClaim]; ok {
		return nil, fmt.Errorf("--user-claim: %q is a registered claim set by %s", userClaim, flag)
	}
	claims[userClaim] = opts.user

	// validity window
	claims["iat"] = now.Unix()
	exp, err := expiry(opts, now)
	if err != nil {
		return nil, err
	}
	claims["exp"] = exp.Unix()
	if opts.nbfSet {
		nbf := now.Add(opts.notBefore).Truncate(time.Second)
		if !nbf.Before(exp) {
			return nil, fmt.Errorf("--not-before: the token would become valid at %s, not before it expires at %s",
				nbf.UTC().Format(time.RFC3339), exp.UTC().Format(time.RFC3339))
		}
		claims["nbf"] = nbf.Unix()
	}

	// issuer and audience; one audience is a plain string, which every
	// verifier accepts, and several are an array
	if opts.issuer != "" {
		claims["iss"] = opts.issuer
	}
	for i, aud := range opts.audiences {
		if aud == "" {
			return nil, fmt.Errorf("--audience %d: empty audience", i+1)
		}
	}
	switch len(opts.audiences) {
	case 0:
	case 1:
		claims["aud"] = opts.audiences[0]
	default:
		claims["aud"] = append([]string(nil), opts.audiences...)
	}

	// token id: random unless given; an explicit empty --jti leaves it out
	switch {
	case opts.jti != "":
		claims["jti"] = opts.jti
	case !opts.jtiSet:
		jti, err := randomID()
		if err != nil {
			return nil, fmt.Errorf("generating jti: %w", err)
		}
		claims["jti"] = jti
	}

	// extra string claims
	for i, kv := range opts.claims {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("--claim %d: want NAME=VALUE, got %q", i+1, kv)
		}
		if flag, ok := reservedClaims[name]; ok {
			return nil, fmt.Errorf("--claim %d: %q is a registered claim set by %s", i+1, name, flag)
		}
		if name == userClaim {
			return nil, fmt.Errorf("--claim %d: %q holds the user id; set it with --user", i+1, name)
		}
		if _, dup := claims[name]; dup {
			return nil, fmt.Errorf("--claim %d: claim %q given twice", i+1, name)
		}
		claims[name] = value
	}
	return claims, nil
}

// expiry returns when the token expires, from --expires-at or --lifetime.
func expiry(opts mintOptions, now time.Time) (time.Time, error) {
	if opts.expiresSet {
		if opts.lifeSet {
			return time.Time{}, errors.New("--expires-at and --lifetime both set the expiry; give one")
		}
		exp, err := time.Parse(time.RFC3339, opts.expiresAt)
		if err != nil {
			return time.Time{}, fmt.Errorf(
				"--expires-at: want an RFC 3339 time such as 2030-01-02T15:04:05Z, got %q", opts.expiresAt)
		}
		return exp.Truncate(time.Second), nil
	}
	if opts.lifetime <= 0 {
		return time.Time{}, fmt.Errorf("--lifetime: want a positive duration such as 1h, got %s",
			opts.lifetime)
	}
	return now.Add(opts.lifetime).Truncate(time.Second), nil
}

// randomID returns 128 random bits as 32 hex characters.
func randomID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}
