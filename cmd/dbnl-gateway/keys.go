package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// keyKind is the family of key an algorithm signs with.
type keyKind int

const (
	kindHMAC keyKind = iota
	kindRSA
	kindECDSA
	kindEd25519
)

// String names the key family the way error messages and help text do.
func (k keyKind) String() string {
	switch k {
	case kindHMAC:
		return "HMAC secret"
	case kindRSA:
		return "RSA"
	case kindECDSA:
		return "ECDSA"
	case kindEd25519:
		return "Ed25519"
	}
	return "unknown"
}

// algorithm describes one JWS algorithm the pat commands support.
type algorithm struct {
	name   string
	kind   keyKind
	curve  elliptic.Curve // for ECDSA only
	method jwt.SigningMethod
}

// algorithms lists every supported JWS algorithm in the order help text
// shows them. It matches what the dbnl_auth handler accepts.
var algorithms = []algorithm{
	{name: "HS256", kind: kindHMAC, method: jwt.SigningMethodHS256},
	{name: "HS384", kind: kindHMAC, method: jwt.SigningMethodHS384},
	{name: "HS512", kind: kindHMAC, method: jwt.SigningMethodHS512},
	{name: "RS256", kind: kindRSA, method: jwt.SigningMethodRS256},
	{name: "RS384", kind: kindRSA, method: jwt.SigningMethodRS384},
	{name: "RS512", kind: kindRSA, method: jwt.SigningMethodRS512},
	{name: "PS256", kind: kindRSA, method: jwt.SigningMethodPS256},
	{name: "PS384", kind: kindRSA, method: jwt.SigningMethodPS384},
	{name: "PS512", kind: kindRSA, method: jwt.SigningMethodPS512},
	{name: "ES256", kind: kindECDSA, curve: elliptic.P256(), method: jwt.SigningMethodES256},
	{name: "ES384", kind: kindECDSA, curve: elliptic.P384(), method: jwt.SigningMethodES384},
	{name: "ES512", kind: kindECDSA, curve: elliptic.P521(), method: jwt.SigningMethodES512},
	{name: "EdDSA", kind: kindEd25519, method: jwt.SigningMethodEdDSA},
}

// minRSABits is the smallest RSA modulus the pat commands sign with or
// generate. Shorter keys are within reach of a well-funded attacker.
const minRSABits = 2048

// lookupAlgorithm finds a supported algorithm by name, ignoring case, so
// "es256" and "ES256" both work.
func lookupAlgorithm(name string) (algorithm, error) {
	for _, a := range algorithms {
		if strings.EqualFold(a.name, name) {
			return a, nil
		}
	}
	return algorithm{}, fmt.Errorf("unsupported algorithm %q; want one of %s",
		name, algorithmNames())
}

// algorithmNames lists the supported algorithm names, comma-separated.
func algorithmNames() string {
	names := make([]string, len(algorithms))
	for i, a := range algorithms {
		names[i] = a.name
	}
	return strings.Join(names, ", ")
}

// loadPrivateKey reads a PEM private key from path and checks that it can
// sign with alg. It accepts PKCS#8 ("PRIVATE KEY"), PKCS#1 ("RSA PRIVATE
// KEY") and SEC1 ("EC PRIVATE KEY") blocks, skipping any other blocks such
// as the "EC PARAMETERS" that openssl puts first. Errors never quote the
// file's contents.
func loadPrivateKey(path string, alg algorithm) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading key file: %w", err)
	}
	key, err := parsePrivateKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	if err := checkKeyFits(key, alg); err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return key, nil
}

// parsePrivateKeyPEM returns the first private key found in PEM data.
func parsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	sawPublic := false
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}

		// an encrypted PEM (RFC 1423) carries a Proc-Type header; PKCS#8
		// encryption uses its own block type
		if _, ok := block.Headers["Proc-Type"]; ok || block.Type == "ENCRYPTED PRIVATE KEY" {
			return nil, errors.New("key is encrypted; decrypt it first (openssl pkey -in KEY -out PLAIN)")
		}

		switch block.Type {
		case "PRIVATE KEY":
			key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parsing PKCS#8 private key: %w", err)
			}
			signer, ok := key.(crypto.Signer)
			if !ok {
				return nil, fmt.Errorf("unsupported private key type %T", key)
			}
			return signer, nil
		case "RSA PRIVATE KEY":
			key, err := x509.ParsePKCS1PrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parsing PKCS#1 RSA private key: %w", err)
			}
			return key, nil
		case "EC PRIVATE KEY":
			key, err := x509.ParseECPrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parsing SEC1 EC private key: %w", err)
			}
			return key, nil
		case "PUBLIC KEY", "RSA PUBLIC KEY", "CERTIFICATE":
			sawPublic = true
		}
	}
	if sawPublic {
		return nil, errors.New("holds a public key or certificate, not a private key; signing needs the private key")
	}
	return nil, errors.New("no PEM private key found")
}

// checkKeyFits reports whether key is of the family, and for ECDSA of the
// curve, that alg signs with.
func checkKeyFits(key crypto.Signer, alg algorithm) error {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if alg.kind != kindRSA {
			return fmt.Errorf("%s needs an %s key, got an RSA key", alg.name, alg.kind)
		}
		if bits := k.N.BitLen(); bits < minRSABits {
			return fmt.Errorf("RSA key is %d bits; at least %d are required", bits, minRSABits)
		}
	case *ecdsa.PrivateKey:
		if alg.kind != kindECDSA {
			return fmt.Errorf("%s needs an %s key, got an ECDSA %s key",
				alg.name, alg.kind, k.Curve.Params().Name)
		}
		if k.Curve != alg.curve {
			return fmt.Errorf("%s needs an ECDSA %s key, got %s",
				alg.name, alg.curve.Params().Name, k.Curve.Params().Name)
		}
	case ed25519.PrivateKey:
		if alg.kind != kindEd25519 {
			return fmt.Errorf("%s needs an %s key, got an Ed25519 key", alg.name, alg.kind)
		}
	default:
		return fmt.Errorf("unsupported private key type %T", key)
	}
	return nil
}
