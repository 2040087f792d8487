package main

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// fixedNow is the clock every test runs on.
var fixedNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// testSecret is the HMAC secret the tests sign with. It is long enough
// that mint accepts it.
const testSecret = "test-secret-0123456789abcdef0123456789"

// testEnv returns a patEnv on the fixed clock whose environment holds
// only vars.
func testEnv(vars map[string]string) patEnv {
	return patEnv{
		getenv: func(name string) string { return vars[name] },
		now:    func() time.Time { return fixedNow },
	}
}

// secretEnv is a testEnv with testSecret in DBNL_PAT_SECRET.
func secretEnv() patEnv {
	return testEnv(map[string]string{defaultSecretEnv: testSecret})
}

// runPAT runs `dbnl-gateway pat args...` in-process the way Caddy's root
// command would, and returns what it wrote.
func runPAT(t *testing.T, env patEnv, stdin string, args ...string) (string, string, error) {
	t.Helper()

	root := &cobra.Command{Use: "dbnl-gateway", SilenceUsage: true, SilenceErrors: true}
	pat := &cobra.Command{Use: "pat"}
	addPATCommands(pat, env)
	root.AddCommand(pat)

	var stdout, stderr bytes.Buffer
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	root.SetArgs(append([]string{"pat"}, args...))
	err := root.Execute()
	return stdout.String(), stderr.String(), err
}

// testKeys holds one private key of each kind, made once per test binary
// because RSA generation is slow.
type testKeys struct {
	rsa     *rsa.PrivateKey
	p256    *ecdsa.PrivateKey
	p384    *ecdsa.PrivateKey
	p521    *ecdsa.PrivateKey
	ed25519 ed25519.PrivateKey
}

var (
	keysOnce sync.Once
	keys     testKeys
)

// getTestKeys returns the shared test keys, generating them on first use.
func getTestKeys(t *testing.T) testKeys {
	t.Helper()
	keysOnce.Do(func() {
		var err error
		if keys.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		for _, k := range []struct {
			dst   **ecdsa.PrivateKey
			curve elliptic.Curve
		}{{&keys.p256, elliptic.P256()}, {&keys.p384, elliptic.P384()}, {&keys.p521, elliptic.P521()}} {
			if *k.dst, err = ecdsa.GenerateKey(k.curve, rand.Reader); err != nil {
				panic(err)
			}
		}
		if _, keys.ed25519, err = ed25519.GenerateKey(rand.Reader); err != nil {
			panic(err)
		}
	})
	return keys
}

// pemFormat is how writeKey encodes a private key.
type pemFormat int

const (
	pkcs8 pemFormat = iota // "PRIVATE KEY"
	pkcs1                  // "RSA PRIVATE KEY"; RSA only
	sec1                   // "EC PRIVATE KEY" after "EC PARAMETERS", as openssl writes it
)

// writeKey writes key as a PEM file in dir and returns its path.
func writeKey(t *testing.T, dir, name string, key crypto.Signer, format pemFormat) string {
	t.Helper()

	var buf bytes.Buffer
	switch format {
	case pkcs8:
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatalf("marshaling PKCS#8 key: %v", err)
		}
		pem.Encode(&buf, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	case pkcs1:
		der := x509.MarshalPKCS1PrivateKey(key.(*rsa.PrivateKey))
		pem.Encode(&buf, &pem.Block{Type: "RSA PRIVATE KEY", Bytes: der})
	case sec1:
		der, err := x509.MarshalECPrivateKey(key.(*ecdsa.PrivateKey))
		if err != nil {
			t.Fatalf("marshaling SEC1 key: %v", err)
		}
		// the loader skips this block without reading it
		pem.Encode(&buf, &pem.Block{Type: "EC PARAMETERS", Bytes: []byte{0x06, 0x08}})
		pem.Encode(&buf, &pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	}

	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatalf("writing key: %v", err)
	}
	return path
}

// writePublicKey writes the PKIX PEM public key of key in dir.
func writePublicKey(t *testing.T, dir, name string, key crypto.Signer) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatalf("marshaling public key: %v", err)
	}
	path := filepath.Join(dir, name)
	data := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatalf("writing public key: %v", err)
	}
	return path
}

func TestPATCommandDispatch(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
		wantOut string
	}{
		{name: "no subcommand shows help", args: nil, wantOut: "Available Commands"},
		{name: "unknown subcommand", args: []string{"mnit"}, wantErr: `unknown pat subcommand "mnit"`},
		{name: "unknown flag", args: []string{"mint", "--user", "u", "--secret", "x"}, wantErr: "unknown flag: --secret"},
		{name: "mint takes no arguments", args: []string{"mint", "--user", "u", "extra"}, wantErr: "unknown command"},
		{name: "bad duration", args: []string{"mint", "--user", "u", "--lifetime", "soon"}, wantErr: `invalid argument "soon" for "--lifetime"`},
		{name: "inspect takes one token", args: []string{"inspect", "a", "b"}, wantErr: "accepts at most 1 arg"},
		{name: "keygen takes no arguments", args: []string{"keygen", "dir"}, wantErr: "unknown command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, _, err := runPAT(t, secretEnv(), "", tt.args...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if !strings.Contains(stdout, tt.wantOut) {
				t.Errorf("got output %q, want it to contain %q", stdout, tt.wantOut)
			}
		})
	}
}
