package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// keygenOptions holds the flags of `pat keygen`.
type keygenOptions struct {
	alg     string
	outDir  string
	name    string
	rsaBits int
}

// runKeygen makes a key pair for opts.alg and writes NAME.key (the PKCS#8
// private key, mode 0600) and NAME.pub (the PKIX public key, mode 0644)
// into opts.outDir, then names both files on stdout. It never overwrites
// an existing file.
func runKeygen(opts keygenOptions, stdout io.Writer) error {
	alg, err := lookupAlgorithm(opts.alg)
	if err != nil {
		return fmt.Errorf("--alg: %w", err)
	}
	if opts.outDir == "" {
		return errors.New("--out is required: the directory to write the key pair into")
	}
	if opts.name == "" || opts.name != filepath.Base(opts.name) || opts.name == "." || opts.name == ".." {
		return fmt.Errorf("--name: want a plain file name without a directory, got %q", opts.name)
	}

	// generate
	key, err := generateKey(alg, opts.rsaBits)
	if err != nil {
		return err
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encoding private key: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return fmt.Errorf("encoding public key: %w", err)
	}

	// write the private key first and with O_EXCL, so a second run can
	// never replace a key that tokens are already signed with
	if err := os.MkdirAll(opts.outDir, 0o700); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	privPath := filepath.Join(opts.outDir, opts.name+".key")
	pubPath := filepath.Join(opts.outDir, opts.name+".pub")
	if err := writePEM(privPath, "PRIVATE KEY", privDER, 0o600); err != nil {
		return err
	}
	if err := writePEM(pubPath, "PUBLIC KEY", pubDER, 0o644); err != nil {
		// leave no private key behind without its public half
		_ = os.Remove(privPath)
		return err
	}

	_, err = fmt.Fprintf(stdout, "private key (%s): %s\npublic key:        %s\n", alg.name, privPath, pubPath)
	return err
}

// generateKey makes a new private key that alg signs with.
func generateKey(alg algorithm, rsaBits int) (crypto.Signer, error) {
	switch alg.kind {
	case kindRSA:
		if rsaBits < minRSABits {
			return nil, fmt.Errorf("--rsa-bits: want at least %d, got %d", minRSABits, rsaBits)
		}
		return rsa.GenerateKey(rand.Reader, rsaBits)
	case kindECDSA:
		return ecdsa.GenerateKey(alg.curve, rand.Reader)
	case kindEd25519:
		_, key, err := ed25519.GenerateKey(rand.Reader)
		return key, err
	}
	return nil, fmt.Errorf("--alg: %s uses a shared secret, not a key pair; "+
		"set %s to at least %d random bytes instead (for example: openssl rand -hex 32)",
		alg.name, defaultSecretEnv, minHMACSecretBytes)
}

// writePEM writes one PEM block to a new file with the given mode.
func writePEM(path, blockType string, der []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("writing key: %w", err)
	}
	if err := pem.Encode(f, &pem.Block{Type: blockType, Bytes: der}); err != nil {
		f.Close()
		return fmt.Errorf("writing key %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing key %s: %w", path, err)
	}
	return nil
}
