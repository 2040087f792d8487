// Command mint prepares the load test's credentials in one directory:
// a random HMAC secret, RSA, P-256 and Ed25519 key pairs (public halves
// as PEM for the gateway), one token per algorithm for user_123, and
// HS256 tokens for many distinct users.
//
//	go run ./examples/load/mint -out /tmp/load-keys -users 5000
//
// Files written: secret (hex, mode 0600), rsa.pub, ec.pub, ed.pub,
// hs256.tok, rs256.tok, es256.tok, eddsa.tok and users.tok (one token
// a line, for user_0 to user_<n-1>).
package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func main() {
	out := flag.String("out", "", "directory to write into (required)")
	users := flag.Int("users", 5000, "number of distinct users in users.tok")
	lifetime := flag.Duration("lifetime", 2*time.Hour, "how long the tokens are valid")
	flag.Parse()
	if err := run(*out, *users, *lifetime); err != nil {
		fmt.Fprintln(os.Stderr, "mint:", err)
		os.Exit(1)
	}
}

func run(out string, users int, lifetime time.Duration) error {
	if out == "" {
		return fmt.Errorf("-out is required")
	}
	if err := os.MkdirAll(out, 0o700); err != nil {
		return err
	}

	// the shared secret, as hex so it can travel in an environment variable
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return err
	}
	secret := []byte(hex.EncodeToString(raw))
	if err := os.WriteFile(filepath.Join(out, "secret"), secret, 0o600); err != nil {
		return err
	}

	// key pairs: write the public halves, keep the private ones here
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	for name, k := range map[string]crypto.Signer{"rsa.pub": rsaKey, "ec.pub": ecKey, "ed.pub": edKey} {
		der, err := x509.MarshalPKIXPublicKey(k.Public())
		if err != nil {
			return err
		}
		data := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
		if err := os.WriteFile(filepath.Join(out, name), data, 0o644); err != nil {
			return err
		}
	}

	now := time.Now()
	claims := func(user string, n int) jwt.MapClaims {
		return jwt.MapClaims{
			"sub": user,
			"iss": "dbnl",
			"aud": "dbnl-api",
			"iat": now.Unix(),
			"exp": now.Add(lifetime).Unix(),
			"jti": fmt.Sprintf("load-%d", n),
		}
	}
	sign := func(alg string, key any, c jwt.MapClaims) (string, error) {
		return jwt.NewWithClaims(jwt.GetSigningMethod(alg), c).SignedString(key)
	}

	// one token per algorithm for the hot-path runs
	for i, t := range []struct {
		file, alg string
		key       any
	}{
		{"hs256.tok", "HS256", secret},
		{"rs256.tok", "RS256", rsaKey},
		{"es256.tok", "ES256", ecKey},
		{"eddsa.tok", "EdDSA", edKey},
	} {
		s, err := sign(t.alg, t.key, claims("user_123", i))
		if err != nil {
			return fmt.Errorf("signing %s: %w", t.alg, err)
		}
		if err := os.WriteFile(filepath.Join(out, t.file), []byte(s+"\n"), 0o600); err != nil {
			return err
		}
	}

	// many users for the cold-permissions run
	var b strings.Builder
	for i := range users {
		s, err := sign("HS256", secret, claims(fmt.Sprintf("user_%d", i), 1000+i))
		if err != nil {
			return err
		}
		b.WriteString(s)
		b.WriteByte('\n')
	}
	return os.WriteFile(filepath.Join(out, "users.tok"), []byte(b.String()), 0o600)
}
