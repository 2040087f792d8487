package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// maxInspectBytes caps how much of stdin inspect reads. Real tokens are a
// few hundred bytes; the gateway itself refuses anything past 8 KiB.
const maxInspectBytes = 1 << 20

// notVerifiedNotice opens every text report, so nobody mistakes a decode
// for a verification.
const notVerifiedNotice = "NOT VERIFIED: decoded without checking the signature; do not trust these claims"

// decodedToken is a JWT split into its parts. It deliberately keeps no
// copy of the signature, only its length, so no output path can leak it.
type decodedToken struct {
	fingerprint    string
	header         json.RawMessage
	claims         json.RawMessage
	claimValues    map[string]any
	signatureBytes int
}

// timeClaim is a NumericDate claim (exp, nbf, iat) as inspect reports it.
type timeClaim struct {
	present bool
	valid   bool
	t       time.Time
}

// inspectReport is the --json form of inspect's output.
type inspectReport struct {
	Verified         bool            `json:"verified"`
	Fingerprint      string          `json:"fingerprint"`
	Header           json.RawMessage `json:"header"`
	Claims           json.RawMessage `json:"claims"`
	ExpiresAt        string          `json:"expires_at,omitempty"`
	Expired          *bool           `json:"expired,omitempty"`
	ExpiresInSeconds *int64          `json:"expires_in_seconds,omitempty"`
	NotBefore        string          `json:"not_before,omitempty"`
	IssuedAt         string          `json:"issued_at,omitempty"`
	SignatureBytes   int             `json:"signature_bytes"`
	Problems         []string        `json:"problems,omitempty"`
}

// runInspect decodes the token in args[0], or on stdin when args is empty
// or "-", and describes it on stdout without verifying it. The signature
// is never written out.
func runInspect(args []string, asJSON bool, env patEnv, stdin io.Reader, stdout io.Writer) error {
	raw, err := readToken(args, stdin)
	if err != nil {
		return err
	}
	tok, err := decodeToken(raw)
	if err != nil {
		return err
	}
	now := env.now()
	if asJSON {
		return writeInspectJSON(stdout, tok, now)
	}
	return writeInspectText(stdout, tok, now)
}

// readToken returns the token from the argument or stdin, without
// surrounding space or a leading "Bearer " copied from a header.
func readToken(args []string, stdin io.Reader) (string, error) {
	var raw string
	switch {
	case len(args) > 1:
		return "", fmt.Errorf("want at most one token argument, got %d", len(args))
	case len(args) == 1 && args[0] != "-":
		raw = args[0]
	default:
		data, err := io.ReadAll(io.LimitReader(stdin, maxInspectBytes+1))
		if err != nil {
			return "", fmt.Errorf("reading token from stdin: %w", err)
		}
		if len(data) > maxInspectBytes {
			return "", fmt.Errorf("reading token from stdin: more than %d bytes", maxInspectBytes)
		}
		raw = string(data)
	}

	raw = strings.TrimSpace(raw)
	if len(raw) > len("bearer ") && strings.EqualFold(raw[:len("bearer ")], "bearer ") {
		raw = strings.TrimSpace(raw[len("bearer "):])
	}
	if raw == "" {
		return "", errors.New("no token: pass it as the argument, or on stdin with - or no argument")
	}
	return raw, nil
}

// decodeToken splits a compact JWS and decodes its header and claims.
// Errors describe the shape of the input but never quote it.
func decodeToken(raw string) (*decodedToken, error) {
	parts := strings.Split(raw, ".")
	switch len(parts) {
	case 3:
	case 5:
		return nil, errors.New("malformed token: 5 dot-separated parts is an encrypted JWE; a PAT is a signed JWS with 3")
	default:
		return nil, fmt.Errorf(
			"malformed token: want 3 dot-separated parts (header.claims.signature), got %d", len(parts))
	}

	header, _, err := decodeJSONSegment(parts[0])
	if err != nil {
		return nil, fmt.Errorf("malformed token header: %w", err)
	}
	claims, values, err := decodeJSONSegment(parts[1])
	if err != nil {
		return nil, fmt.Errorf("malformed token claims: %w", err)
	}
	sig, err := decodeSegment(parts[2])
	if err != nil {
		return nil, fmt.Errorf("malformed token signature: %w", err)
	}

	sum := sha256.Sum256([]byte(raw))
	return &decodedToken{
		fingerprint:    hex.EncodeToString(sum[:])[:12],
		header:         header,
		claims:         claims,
		claimValues:    values,
		signatureBytes: len(sig),
	}, nil
}

// decodeSegment decodes one base64url part of a JWS. RFC 7515 forbids
// padding, but a stray "=" from a hand-made token is forgiven here since
// inspect only describes.
func decodeSegment(seg string) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(seg, "="))
	if err != nil {
		return nil, errors.New("not base64url")
	}
	return b, nil
}

// decodeJSONSegment decodes a base64url part that must hold a JSON object.
// It returns the object indented for display and its parsed values, with
// numbers kept as json.Number so large values survive.
func decodeJSONSegment(seg string) (json.RawMessage, map[string]any, error) {
	if seg == "" {
		return nil, nil, errors.New("empty")
	}
	b, err := decodeSegment(seg)
	if err != nil {
		return nil, nil, err
	}

	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var values map[string]any
	if err := dec.Decode(&values); err != nil || values == nil || dec.More() {
		return nil, nil, errors.New("not a JSON object")
	}

	var pretty bytes.Buffer
	if err := json.Indent(&pretty, b, "", "  "); err != nil {
		return nil, nil, errors.New("not a JSON object")
	}
	return pretty.Bytes(), values, nil
}

// timeClaim reads the NumericDate claim name, which may be fractional.
func (d *decodedToken) timeClaim(name string) timeClaim {
	v, ok := d.claimValues[name]
	if !ok {
		return timeClaim{}
	}
	n, ok := v.(json.Number)
	if !ok {
		return timeClaim{present: true}
	}
	f, err := n.Float64()
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) || math.Abs(f) > 1e15 {
		return timeClaim{present: true}
	}
	sec, frac := math.Modf(f)
	return timeClaim{present: true, valid: true, t: time.Unix(int64(sec), int64(frac*1e9)).UTC()}
}

// problems lists what the gateway would object to in the token's shape,
// apart from its signature, which inspect cannot check.
func (d *decodedToken) problems() []string {
	var out []string
	for _, name := range []string{"exp", "nbf", "iat"} {
		if c := d.timeClaim(name); c.present && !c.valid {
			out = append(out, fmt.Sprintf("%s is not a NumericDate (seconds since 1970)", name))
		}
	}
	if !d.timeClaim("exp").present {
		out = append(out, "no exp claim; the gateway rejects tokens without one")
	}
	if d.signatureBytes == 0 {
		out = append(out, "the token is unsigned")
	}
	return out
}

// writeInspectText writes the human-readable report.
func writeInspectText(w io.Writer, tok *decodedToken, now time.Time) error {
	var b strings.Builder
	fmt.Fprintln(&b, notVerifiedNotice)
	fmt.Fprintf(&b, "fingerprint: %s\n", tok.fingerprint)
	fmt.Fprintf(&b, "header:\n%s\n", tok.header)
	fmt.Fprintf(&b, "claims:\n%s\n", tok.claims)

	// validity window
	fmt.Fprintf(&b, "expires:     %s\n", describeTime(tok.timeClaim("exp"), now, expiryWords))
	fmt.Fprintf(&b, "not before:  %s\n", describeTime(tok.timeClaim("nbf"), now, notBeforeWords))
	fmt.Fprintf(&b, "issued at:   %s\n", describeTime(tok.timeClaim("iat"), now, issuedWords))
	fmt.Fprintf(&b, "signature:   %d bytes, not shown\n", tok.signatureBytes)
	for _, p := range tok.problems() {
		fmt.Fprintf(&b, "problem:     %s\n", p)
	}

	_, err := io.WriteString(w, b.String())
	return err
}

// writeInspectJSON writes the --json report.
func writeInspectJSON(w io.Writer, tok *decodedToken, now time.Time) error {
	r := inspectReport{
		Fingerprint:    tok.fingerprint,
		Header:         tok.header,
		Claims:         tok.claims,
		SignatureBytes: tok.signatureBytes,
		Problems:       tok.problems(),
	}
	if exp := tok.timeClaim("exp"); exp.valid {
		r.ExpiresAt = exp.t.Format(time.RFC3339)
		expired := !now.Before(exp.t)
		left := int64(exp.t.Sub(now) / time.Second)
		r.Expired, r.ExpiresInSeconds = &expired, &left
	}
	if nbf := tok.timeClaim("nbf"); nbf.valid {
		r.NotBefore = nbf.t.Format(time.RFC3339)
	}
	if iat := tok.timeClaim("iat"); iat.valid {
		r.IssuedAt = iat.t.Format(time.RFC3339)
	}

	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// timeWords phrase a NumericDate relative to now: past is used when the
// time has passed, future when it is still ahead.
type timeWords struct {
	past, future string
}

var (
	expiryWords    = timeWords{past: "EXPIRED %s ago", future: "valid, %s left"}
	notBeforeWords = timeWords{past: "in effect since %s ago", future: "NOT YET VALID, starts in %s"}
	issuedWords    = timeWords{past: "%s ago", future: "%s in the future"}
)

// describeTime formats c in RFC 3339 with how far it is from now.
func describeTime(c timeClaim, now time.Time, words timeWords) string {
	switch {
	case !c.present:
		return "absent"
	case !c.valid:
		return "invalid (not a NumericDate)"
	}
	d := c.t.Sub(now).Round(time.Second)
	phrase := fmt.Sprintf(words.future, d)
	if d <= 0 {
		phrase = fmt.Sprintf(words.past, -d)
	}
	return fmt.Sprintf("%s (%s)", c.t.Format(time.RFC3339), phrase)
}
