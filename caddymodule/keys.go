package dbnlauth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
)

// minHMACKeyBytes is the shortest HMAC secret accepted. RFC 7518
// section 3.2 asks for a key at least as long as the hash output; 32
// bytes is that length for HS256.
const minHMACKeyBytes = 32

// minRSABits is the smallest RSA modulus accepted (RFC 7518 section 3.3).
const minRSABits = 2048

// HMACKey is a shared secret for HS256, HS384 and HS512 tokens.
type HMACKey struct {
	// The secret, at least 32 bytes. Use a placeholder such as
	// {env.DBNL_PAT_SECRET} rather than writing the secret into the
	// config. Required.
	Secret string `json:"secret,omitempty"`

	// The key id. When set, a token whose header names a kid is checked
	// only against the key with that kid. Optional.
	KID string `json:"kid,omitempty"`
}

// PublicKey is a public key for asymmetric tokens, read from a PEM file.
type PublicKey struct {
	// Path to a PEM file holding one public key or certificate: RSA
	// (2048 bits or more), ECDSA on P-256, P-384 or P-521, or Ed25519.
	// Private keys are refused: the gateway only verifies. Required.
	File string `json:"file,omitempty"`

	// The key id, as for HMAC keys. Optional.
	KID string `json:"kid,omitempty"`
}

// verificationKey is one provisioned key with the algorithms it allows.
type verificationKey struct {
	kid  string
	key  any // []byte, *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
	algs []string
	desc string // for logs and errors: type and fingerprint, never material
}

// algorithm families, per key type.
var (
	hmacAlgs    = []string{"HS256", "HS384", "HS512"}
	rsaAlgs     = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	ed25519Algs = []string{"EdDSA"}
)

// supportedAlgs lists every algorithm a key of some type can allow.
var supportedAlgs = slices.Concat(hmacAlgs, rsaAlgs,
	[]string{"ES256", "ES384", "ES512"}, ed25519Algs)

// newHMACKey checks a secret and returns it as a verification key.
func newHMACKey(secret, kid string) (*verificationKey, error) {
	if secret == "" {
		return nil, errors.New("secret is empty")
	}
	if len(secret) < minHMACKeyBytes {
		return nil, fmt.Errorf("secret is %d bytes; at least %d are required",
			len(secret), minHMACKeyBytes)
	}
	return &verificationKey{
		kid:  kid,
		key:  []byte(secret),
		algs: hmacAlgs,
		desc: "hmac " + keyFingerprint([]byte(secret)),
	}, nil
}

// loadPublicKeyFile reads a PEM file and returns its public key.
func loadPublicKeyFile(path, kid string) (*verificationKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parsePublicKeyPEM(data, kid)
}

// parsePublicKeyPEM decodes the first PEM block of data as a public key
// or certificate and works out which algorithms it allows.
func parsePublicKeyPEM(data []byte, kid string) (*verificationKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	if strings.Contains(block.Type, "PRIVATE KEY") {
		return nil, fmt.Errorf("PEM block is a %s; configure the public key only", block.Type)
	}

	var pub any
	switch block.Type {
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing public key: %w", err)
		}
		pub = k
	case "RSA PUBLIC KEY":
		k, err := x509.ParsePKCS1PublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing RSA public key: %w", err)
		}
		pub = k
	case "CERTIFICATE":
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing certificate: %w", err)
		}
		pub = cert.PublicKey
	default:
		return nil, fmt.Errorf("unsupported PEM block type %q", block.Type)
	}

	vk := &verificationKey{kid: kid, key: pub}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("unsupported public key type %T", pub)
	}
	fp := keyFingerprint(der)

	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("RSA key is %d bits; at least %d are required",
				k.N.BitLen(), minRSABits)
		}
		vk.algs = rsaAlgs
		vk.desc = "rsa " + fp
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			vk.algs = []string{"ES256"}
		case elliptic.P384():
			vk.algs = []string{"ES384"}
		case elliptic.P521():
			vk.algs = []string{"ES512"}
		default:
			return nil, fmt.Errorf("unsupported ECDSA curve %s", k.Curve.Params().Name)
		}
		vk.desc = "ecdsa " + fp
	case ed25519.PublicKey:
		vk.algs = ed25519Algs
		vk.desc = "ed25519 " + fp
	default:
		return nil, fmt.Errorf("unsupported public key type %T", pub)
	}
	return vk, nil
}

// allows reports whether the key can verify a token signed with alg.
func (k *verificationKey) allows(alg string) bool {
	return slices.Contains(k.algs, alg)
}

// keyFingerprint returns a short, non-reversible name for key material,
// safe to log.
func keyFingerprint(material []byte) string {
	sum := sha256.Sum256(material)
	return hex.EncodeToString(sum[:6])
}
