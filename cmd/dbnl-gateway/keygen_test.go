package main

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// readPublicKey parses the PEM public key at path.
func readPublicKey(t *testing.T, path string) any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading public key: %v", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PUBLIC KEY" {
		t.Fatalf("got %q, want a PUBLIC KEY PEM block", data)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatalf("parsing public key: %v", err)
	}
	return pub
}

func TestKeygenThenMint(t *testing.T) {
	for _, alg := range []string{"RS256", "PS384", "ES256", "ES384", "ES512", "EdDSA"} {
		t.Run(strings.ToLower(alg), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "keys")
			stdout, _, err := runPAT(t, testEnv(nil), "", "keygen", "--alg", alg, "--out", dir)
			if err != nil {
				t.Fatalf("keygen: got error %v, want none", err)
			}
			privPath, pubPath := filepath.Join(dir, "pat.key"), filepath.Join(dir, "pat.pub")
			if !strings.Contains(stdout, privPath) || !strings.Contains(stdout, pubPath) {
				t.Errorf("got output %q, want it to name %s and %s", stdout, privPath, pubPath)
			}

			// the private key must be readable by its owner alone
			for path, want := range map[string]os.FileMode{privPath: 0o600, dir: 0o700} {
				info, err := os.Stat(path)
				if err != nil {
					t.Fatalf("stat: %v", err)
				}
				if got := info.Mode().Perm(); got != want {
					t.Errorf("got mode %v for %s, want %v", got, path, want)
				}
			}

			// the pair must sign and verify
			stdout, _, err = runPAT(t, testEnv(nil), "", "mint", "--user", "u", "--alg", alg, "--key", privPath)
			if err != nil {
				t.Fatalf("mint: got error %v, want none", err)
			}
			parseMinted(t, stdout, alg, readPublicKey(t, pubPath))
		})
	}
}

func TestKeygenNamesAndSizes(t *testing.T) {
	dir := t.TempDir()
	_, _, err := runPAT(t, testEnv(nil), "", "keygen", "--alg", "RS256", "--rsa-bits", "3072", "--out", dir, "--name", "rsa-2030")
	if err != nil {
		t.Fatalf("got error %v, want none", err)
	}
	pub, ok := readPublicKey(t, filepath.Join(dir, "rsa-2030.pub")).(interface{ Size() int })
	if !ok {
		t.Fatalf("got public key of type %T, want RSA", pub)
	}
	if got := pub.Size() * 8; got != 3072 {
		t.Errorf("got %d-bit key, want 3072", got)
	}
}

func TestKeygenErrors(t *testing.T) {
	existing := t.TempDir()
	if err := os.WriteFile(filepath.Join(existing, "pat.key"), []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	halfExisting := t.TempDir()
	if err := os.WriteFile(filepath.Join(halfExisting, "pat.pub"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{name: "missing out", args: []string{"--alg", "ES256"}, wantErr: "--out is required"},
		{name: "hmac alg", args: []string{"--alg", "HS256", "--out", t.TempDir()},
			wantErr: "--alg: HS256 uses a shared secret, not a key pair; set DBNL_PAT_SECRET"},
		{name: "unknown alg", args: []string{"--alg", "ES999", "--out", t.TempDir()},
			wantErr: `--alg: unsupported algorithm "ES999"`},
		{name: "small rsa", args: []string{"--alg", "RS256", "--rsa-bits", "1024", "--out", t.TempDir()},
			wantErr: "--rsa-bits: want at least 2048, got 1024"},
		{name: "name with directory", args: []string{"--out", t.TempDir(), "--name", "../escape"},
			wantErr: `--name: want a plain file name without a directory, got "../escape"`},
		{name: "existing private key", args: []string{"--out", existing},
			wantErr: "writing key: open " + filepath.Join(existing, "pat.key") + ": file exists"},
		{name: "existing public key", args: []string{"--out", halfExisting},
			wantErr: "file exists"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := runPAT(t, testEnv(nil), "", append([]string{"keygen"}, tt.args...)...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}

	// a failed run leaves what was there untouched and adds nothing
	if data, _ := os.ReadFile(filepath.Join(existing, "pat.key")); string(data) != "old" {
		t.Errorf("got private key %q after a refused keygen, want the old file kept", data)
	}
	if _, err := os.Stat(filepath.Join(halfExisting, "pat.key")); !os.IsNotExist(err) {
		t.Errorf("got stat error %v for a private key without its public half, want not-exist", err)
	}
}
