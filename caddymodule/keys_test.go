package dbnlauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// unitPEM encodes der as one PEM block of type typ.
func unitPEM(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// unitPKIX returns the PKIX PEM of pub.
func unitPKIX(t *testing.T, pub crypto.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatalf("marshaling public key: %v", err)
	}
	return unitPEM("PUBLIC KEY", der)
}

// unitCertificate returns a self-signed certificate PEM for key.
func unitCertificate(t *testing.T, key crypto.Signer) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "dbnl test"},
		NotBefore:    testNow.Add(-time.Hour),
		NotAfter:     testNow.Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatalf("creating certificate: %v", err)
	}
	return unitPEM("CERTIFICATE", der)
}

func TestParsePublicKeyPEM(t *testing.T) {
	keys := keysFor(t)
	read := func(name string) []byte {
		data, err := os.ReadFile(keys[name].pemFile)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	rsaKey := keys["rsa"].private.(*rsa.PrivateKey)

	tests := []struct {
		name     string
		data     []byte
		wantAlgs []string
		wantDesc string // prefix
	}{
		{name: "rsa pkix", data: read("rsa"), wantAlgs: rsaAlgs, wantDesc: "rsa "},
		{name: "rsa pkcs1", data: unitPEM("RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&rsaKey.PublicKey)),
			wantAlgs: rsaAlgs, wantDesc: "rsa "},
		{name: "rsa certificate", data: unitCertificate(t, rsaKey), wantAlgs: rsaAlgs, wantDesc: "rsa "},
		{name: "p256", data: read("p256"), wantAlgs: []string{"ES256"}, wantDesc: "ecdsa "},
		{name: "p384", data: read("p384"), wantAlgs: []string{"ES384"}, wantDesc: "ecdsa "},
		{name: "p521", data: read("p521"), wantAlgs: []string{"ES512"}, wantDesc: "ecdsa "},
		{name: "p256 certificate", data: unitCertificate(t, keys["p256"].private),
			wantAlgs: []string{"ES256"}, wantDesc: "ecdsa "},
		{name: "ed25519", data: read("ed25519"), wantAlgs: []string{"EdDSA"}, wantDesc: "ed25519 "},
		{name: "ed25519 certificate", data: unitCertificate(t, keys["ed25519"].private),
			wantAlgs: []string{"EdDSA"}, wantDesc: "ed25519 "},
		{name: "text around the block", data: append(append([]byte("comment\n"), read("p256")...), "trailer\n"...),
			wantAlgs: []string{"ES256"}, wantDesc: "ecdsa "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := parsePublicKeyPEM(tt.data, "kid-1")
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if !reflect.DeepEqual(k.algs, tt.wantAlgs) {
				t.Errorf("got algorithms %v, want %v", k.algs, tt.wantAlgs)
			}
			if k.kid != "kid-1" {
				t.Errorf("got kid %q, want kid-1", k.kid)
			}
			if !strings.HasPrefix(k.desc, tt.wantDesc) || len(k.desc) != len(tt.wantDesc)+12 {
				t.Errorf("got description %q, want %q and 12 hex digits", k.desc, tt.wantDesc)
			}
		})
	}
}

func TestParsePublicKeyPEMErrors(t *testing.T) {
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p256 := keysFor(t)["p256"].private.(*ecdsa.PrivateKey)
	pkcs8, err := x509.MarshalPKCS8PrivateKey(p256)
	if err != nil {
		t.Fatal(err)
	}
	sec1, err := x509.MarshalECPrivateKey(p256)
	if err != nil {
		t.Fatal(err)
	}
	_, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edPKCS8, err := x509.MarshalPKCS8PrivateKey(edPriv)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		data    []byte
		wantErr string
	}{
		{name: "rsa 1024 bits", data: unitPKIX(t, &small.PublicKey), wantErr: "RSA key is 1024 bits; at least 2048 are required"},
		{name: "rsa 1024 bits pkcs1", data: unitPEM("RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&small.PublicKey)),
			wantErr: "1024 bits"},
		{name: "rsa 1024 bits certificate", data: unitCertificate(t, small), wantErr: "1024 bits"},
		{name: "p224", data: unitPKIX(t, &p224.PublicKey), wantErr: "unsupported ECDSA curve P-224"},
		{name: "pkcs8 private key", data: unitPEM("PRIVATE KEY", pkcs8), wantErr: "PRIVATE KEY; configure the public key only"},
		{name: "ec private key", data: unitPEM("EC PRIVATE KEY", sec1), wantErr: "EC PRIVATE KEY"},
		{name: "rsa private key", data: unitPEM("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(small)), wantErr: "RSA PRIVATE KEY"},
		{name: "ed25519 private key", data: unitPEM("PRIVATE KEY", edPKCS8), wantErr: "public key only"},
		{name: "encrypted private key", data: unitPEM("ENCRYPTED PRIVATE KEY", []byte("x")), wantErr: "public key only"},
		{name: "garbage", data: []byte("not a key at all"), wantErr: "no PEM block found"},
		{name: "empty", data: nil, wantErr: "no PEM block found"},
		{name: "unknown block type", data: unitPEM("OPENSSH PUBLIC KEY", []byte("x")), wantErr: `unsupported PEM block type "OPENSSH PUBLIC KEY"`},
		{name: "bad pkix body", data: unitPEM("PUBLIC KEY", []byte("garbage")), wantErr: "parsing public key"},
		{name: "bad pkcs1 body", data: unitPEM("RSA PUBLIC KEY", []byte("garbage")), wantErr: "parsing RSA public key"},
		{name: "bad certificate body", data: unitPEM("CERTIFICATE", []byte("garbage")), wantErr: "parsing certificate"},
		{name: "private key first", data: append(unitPEM("PRIVATE KEY", pkcs8), unitPKIX(t, &p256.PublicKey)...), wantErr: "public key only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := parsePublicKeyPEM(tt.data, "")
			if err == nil {
				t.Fatalf("got key %s, want error containing %q", k.desc, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("got error %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestLoadPublicKeyFile(t *testing.T) {
	k, err := loadPublicKeyFile(keysFor(t)["ed25519"].pemFile, "ed")
	if err != nil {
		t.Fatalf("got error %v, want none", err)
	}
	if k.kid != "ed" || !k.allows("EdDSA") {
		t.Errorf("got kid %q and algorithms %v, want ed and EdDSA", k.kid, k.algs)
	}

	missing := filepath.Join(t.TempDir(), "missing.pem")
	if _, err := loadPublicKeyFile(missing, ""); !os.IsNotExist(err) {
		t.Errorf("missing file: got error %v, want a not-exist error", err)
	}
}

func TestNewHMACKey(t *testing.T) {
	tests := []struct {
		name    string
		secret  string
		wantErr string
	}{
		{name: "32 bytes", secret: strings.Repeat("s", 32)},
		{name: "64 bytes", secret: strings.Repeat("s", 64)},
		{name: "31 bytes", secret: strings.Repeat("Z", 31), wantErr: "secret is 31 bytes; at least 32 are required"},
		{name: "1 byte", secret: "Z", wantErr: "secret is 1 bytes"},
		{name: "empty", secret: "", wantErr: "secret is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := newHMACKey(tt.secret, "kid")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want it to contain %q", err, tt.wantErr)
				}
				if tt.secret != "" && strings.Contains(err.Error(), tt.secret) {
					t.Errorf("error %q holds the secret", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if !reflect.DeepEqual(k.algs, hmacAlgs) {
				t.Errorf("got algorithms %v, want %v", k.algs, hmacAlgs)
			}
			if strings.Contains(k.desc, tt.secret) || !strings.HasPrefix(k.desc, "hmac ") {
				t.Errorf("got description %q, want hmac and a fingerprint, not the secret", k.desc)
			}
		})
	}
}

func TestKeyAllows(t *testing.T) {
	k, err := newHMACKey(testSecret, "")
	if err != nil {
		t.Fatal(err)
	}
	for alg, want := range map[string]bool{"HS256": true, "HS512": true, "RS256": false, "none": false, "": false} {
		if got := k.allows(alg); got != want {
			t.Errorf("hmac key allows %q: got %v, want %v", alg, got, want)
		}
	}
}

func TestCheckKIDs(t *testing.T) {
	key := func(kid string) *verificationKey { return &verificationKey{kid: kid} }
	tests := []struct {
		name    string
		keys    []*verificationKey
		wantErr string
	}{
		{name: "no keys"},
		{name: "no kids", keys: []*verificationKey{key(""), key("")}},
		{name: "distinct kids", keys: []*verificationKey{key("a"), key("b"), key("")}},
		{name: "kids differing in case", keys: []*verificationKey{key("a"), key("A")}},
		{name: "duplicate kid", keys: []*verificationKey{key("a"), key(""), key("a")}, wantErr: `kid "a" is used by more than one key`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkKIDs(tt.keys)
			if tt.wantErr == "" {
				if err != nil {
					t.Errorf("got error %v, want none", err)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("got error %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestAllowedAlgorithms(t *testing.T) {
	hmac, err := newHMACKey(testSecret, "")
	if err != nil {
		t.Fatal(err)
	}
	p256, err := loadPublicKeyFile(keysFor(t)["p256"].pemFile, "")
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := loadPublicKeyFile(keysFor(t)["rsa"].pemFile, "")
	if err != nil {
		t.Fatal(err)
	}
	rsa2, err := loadPublicKeyFile(keysFor(t)["rsa"].pemFile, "second")
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		keys    []*verificationKey
		want    []string
		algs    []string
		wantErr string
	}{
		{name: "from keys", keys: []*verificationKey{hmac, p256}, want: []string{"HS256", "HS384", "HS512", "ES256"}},
		{name: "from keys without duplicates", keys: []*verificationKey{rsaKey, rsa2}, want: rsaAlgs},
		{name: "narrowed", keys: []*verificationKey{hmac, p256, rsaKey}, want: []string{"HS256"}, algs: []string{"HS256"}},
		{name: "narrowed keeps order", keys: []*verificationKey{hmac, p256}, want: []string{"ES256", "HS512"}, algs: []string{"ES256", "HS512"}},
		{name: "narrowed without duplicates", keys: []*verificationKey{hmac}, want: []string{"HS256"}, algs: []string{"HS256", "HS256"}},
		{name: "unknown", keys: []*verificationKey{hmac}, algs: []string{"HS256", "HS1024"}, wantErr: `algorithms: unknown algorithm "HS1024"`},
		{name: "lowercase name", keys: []*verificationKey{hmac}, algs: []string{"hs256"}, wantErr: `algorithms: unknown algorithm "hs256"`},
		{name: "none", keys: []*verificationKey{hmac}, algs: []string{"none"}, wantErr: "algorithms: none is never accepted"},
		{name: "None", keys: []*verificationKey{hmac}, algs: []string{"None"}, wantErr: "algorithms: none is never accepted"},
		{name: "NONE", keys: []*verificationKey{hmac}, algs: []string{"HS256", "NONE"}, wantErr: "algorithms: none is never accepted"},
		{name: "mixed case none", keys: []*verificationKey{hmac}, algs: []string{"nOnE"}, wantErr: "algorithms:"},
		{name: "not allowed by any key", keys: []*verificationKey{hmac}, algs: []string{"RS256"}, wantErr: "algorithms: no configured key can verify RS256"},
		{name: "curve of no key", keys: []*verificationKey{p256}, algs: []string{"ES384"}, wantErr: "algorithms: no configured key can verify ES384"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := allowedAlgorithms(tt.keys, tt.algs)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, error %v; want error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestKeyFingerprint(t *testing.T) {
	a, b := keyFingerprint([]byte("a")), keyFingerprint([]byte("b"))
	if len(a) != 12 || a == b {
		t.Errorf("got fingerprints %q and %q, want two different 12-digit values", a, b)
	}
	if a != keyFingerprint([]byte("a")) {
		t.Errorf("got a different fingerprint for the same material, want a stable one")
	}
}
