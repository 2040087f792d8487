package dbnlauth

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"
)

// maxPermissionsBody bounds the users API's response; a larger body is
// a broken contract, not a bigger user.
const maxPermissionsBody = 1 << 20

// Permissions is the users API's answer for one user: the contract a
// permissions_url must serve.
type Permissions struct {
	UserID         string           `json:"user_id"`
	OrgRole        string           `json:"org_role"`
	OrgPermissions []string         `json:"org_permissions"`
	Namespaces     []NamespaceGrant `json:"namespaces"`
	Disabled       bool             `json:"disabled"`
}

// NamespaceGrant is a user's role in one namespace.
type NamespaceGrant struct {
	NamespaceID string   `json:"namespace_id"`
	Role        string   `json:"role"`
	Permissions []string `json:"permissions"`
}

// validate checks that p is the answer for user and that every value
// is safe to put in a header: a value with a comma or '=' would let the
// users API, or whoever controls a role name, forge a list entry.
func (p *Permissions) validate(user string) error {
	if p.UserID != user {
		return errors.New("user_id does not match the token's user")
	}
	if !headerSafe(p.OrgRole, true) {
		return errors.New("org_role is not a valid name")
	}
	for _, perm := range p.OrgPermissions {
		if !headerSafe(perm, false) {
			return errors.New("org_permissions holds an invalid name")
		}
	}
	for i, ns := range p.Namespaces {
		if !headerSafe(ns.NamespaceID, false) || !headerSafe(ns.Role, false) {
			return fmt.Errorf("namespaces[%d]: invalid namespace_id or role", i)
		}
		for _, perm := range ns.Permissions {
			if !headerSafe(perm, false) {
				return fmt.Errorf("namespaces[%d]: invalid permission name", i)
			}
		}
	}
	return nil
}

// headerSafe reports whether s may be a role, permission or namespace
// name: letters, digits and ._:- only, at most 256 bytes.
func headerSafe(s string, emptyOK bool) bool {
	if s == "" {
		return emptyOK
	}
	if len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

// cachedPermissions is a cache entry: an answer, or a denial for a user
// who is unknown or not active, until expires.
type cachedPermissions struct {
	grants  *grants
	denied  error
	expires time.Time
}

// resolver fetches and caches users' current permissions.
type resolver struct {
	urlTemplate string
	client      *http.Client
	timeout     time.Duration
	ttl         time.Duration
	now         func() time.Time
	logger      *zap.Logger

	cache *lru.Cache[string, *cachedPermissions]
	group singleflight.Group
	// slots bounds the calls in flight to the users API at once.
	slots chan struct{}
}

// errLookup marks a users-API failure; the request gets a 503.
var errLookup = errors.New("permissions lookup failed")

// resolve returns user's permissions from the cache or, on a miss, from
// the users API, with token as the call's bearer credentials.
// Concurrent misses for one user share a single call.
func (r *resolver) resolve(ctx context.Context, user, token string) (*grants, error) {
	if e, ok := r.cache.Get(user); ok && r.now().Before(e.expires) {
		return e.grants, e.denied
	}

	res, err := r.lookup(ctx, user, user, token)
	if err == errTokenRefused && res != nil && res.token != token {
		// the users API refused the token of the request that made
		// the shared call, which says nothing about ours: ask with
		// ours, sharing only with requests holding the same token
		res, err = r.lookup(ctx, user+"\x00"+token, user, token)
	}
	if res == nil {
		return nil, err
	}
	return res.grants, err
}

// lookupResult is what one shared users-API call found.
type lookupResult struct {
	grants *grants
	token  string // the token the call was made with
}

// lookup asks the users API about user with token, sharing the call
// with every concurrent lookup of the same key. An answer about the
// user is cached; a failure or a refusal of the token is not.
func (r *resolver) lookup(ctx context.Context, key, user, token string) (*lookupResult, error) {
	ch := r.group.DoChan(key, func() (any, error) {
		// a request that arrived while the previous call finished
		// may find a fresh entry here
		if e, ok := r.cache.Get(user); ok && r.now().Before(e.expires) {
			return &lookupResult{grants: e.grants}, e.denied
		}

		// the call outlives any one waiting request: a client that
		// gives up must not fail the others waiting on it
		callCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.timeout)
		defer cancel()

		perms, err := r.fetch(callCtx, user, token)
		res := &lookupResult{token: token}
		if err != nil && err != errUserNotActive {
			// lookup failures and answers about this one token (401,
			// 403) are not kept: the next request asks again
			return res, err
		}
		if perms != nil {
			res.grants = newGrants(perms)
		}
		r.cache.Add(user, &cachedPermissions{grants: res.grants, denied: err, expires: r.now().Add(r.ttl)})
		return res, err
	})

	select {
	case res := <-ch:
		lr, _ := res.Val.(*lookupResult)
		return lr, res.Err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// fetch makes one call to the users API.
func (r *resolver) fetch(ctx context.Context, user, token string) (*Permissions, error) {
	start := time.Now()
	logFailure := func(err error, status int) {
		r.logger.Error("permissions lookup failed",
			zap.String("user_id", user),
			zap.Int("status", status),
			zap.Duration("latency", time.Since(start)),
			zap.Error(err))
	}

	// wait for a slot, but no longer than the call may take
	select {
	case r.slots <- struct{}{}:
		defer func() { <-r.slots }()
	case <-ctx.Done():
		logFailure(errors.New("too many lookups in flight"), 0)
		return nil, errLookup
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, expandUserURL(r.urlTemplate, user), nil)
	if err != nil {
		logFailure(errors.New("building the request: invalid permissions_url"), 0)
		return nil, errLookup
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "dbnl-gateway")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}

	resp, err := r.client.Do(req)
	if err != nil {
		logFailure(describeTransportError(err), 0)
		return nil, errLookup
	}
	defer resp.Body.Close()

	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		// drain a little so the connection can be reused
		_, _ = io.CopyN(io.Discard, resp.Body, 4096)
		return nil, errUserNotActive
	case http.StatusUnauthorized, http.StatusForbidden:
		// the users API refused the credentials it was sent, which
		// may be about this token only, not the user
		_, _ = io.CopyN(io.Discard, resp.Body, 4096)
		return nil, errTokenRefused
	default:
		logFailure(errors.New("unexpected status"), resp.StatusCode)
		return nil, errLookup
	}

	// read at most one byte past the limit to tell a full body from
	// an oversized one
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxPermissionsBody+1))
	if err != nil {
		logFailure(fmt.Errorf("reading body: %w", describeTransportError(err)), resp.StatusCode)
		return nil, errLookup
	}
	if len(body) > maxPermissionsBody {
		logFailure(errors.New("body larger than 1 MiB"), resp.StatusCode)
		return nil, errLookup
	}

	var p Permissions
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&p); err != nil {
		logFailure(fmt.Errorf("decoding body: %w", err), resp.StatusCode)
		return nil, errLookup
	}
	if _, err := dec.Token(); err != io.EOF {
		logFailure(errors.New("decoding body: trailing data"), resp.StatusCode)
		return nil, errLookup
	}
	if err := checkKeys(json.NewDecoder(bytes.NewReader(body))); err != nil {
		logFailure(fmt.Errorf("decoding body: %w", err), resp.StatusCode)
		return nil, errLookup
	}
	// encoding/json reads "disabled": null as false; a users API that
	// says null has not said the user is active
	var probe struct {
		Disabled json.RawMessage `json:"disabled"`
	}
	if json.Unmarshal(body, &probe) == nil && string(probe.Disabled) == "null" {
		logFailure(errors.New("decoding body: disabled is null"), resp.StatusCode)
		return nil, errLookup
	}
	if err := p.validate(user); err != nil {
		logFailure(fmt.Errorf("invalid body: %w", err), resp.StatusCode)
		return nil, errLookup
	}
	if p.Disabled {
		return nil, errUserNotActive
	}
	return &p, nil
}

// checkKeys refuses a JSON document in which an object has two keys
// that are equal ignoring case. encoding/json matches keys to fields
// without regard to case and lets the last one win, so
// {"disabled":true,"Disabled":false} would decode as an active user,
// while another reader of the same answer might see a disabled one.
func checkKeys(dec *json.Decoder) error {
	var walk func() error
	walk = func() error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'):
			var keys []string
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return err
				}
				key, _ := kt.(string)
				for _, k := range keys {
					if strings.EqualFold(k, key) {
						return errors.New("an object repeats a key")
					}
				}
				keys = append(keys, key)
				if err := walk(); err != nil {
					return err
				}
			}
			_, err = dec.Token()
			return err
		case json.Delim('['):
			for dec.More() {
				if err := walk(); err != nil {
					return err
				}
			}
			_, err = dec.Token()
			return err
		}
		return nil
	}
	return walk()
}

// expandUserURL replaces {user} in template with user, escaped so that
// no user id can change which path or query is called: in the path,
// everything but letters, digits, '-', '_' and '~' is percent-encoded,
// '.' included, so "." and ".." are never path segments.
func expandUserURL(template, user string) string {
	path, query, hasQuery := strings.Cut(template, "?")
	path = strings.ReplaceAll(path, "{user}", escapeSegment(user))
	if !hasQuery {
		return path
	}
	return path + "?" + strings.ReplaceAll(query, "{user}", url.QueryEscape(user))
}

func escapeSegment(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

// describeTransportError names the kind of a failed users-API call.
// The error's own text is never logged: it may quote the URL, which
// holds the user id and maybe credentials, or bytes of a malformed
// response, which a broken users API could fill with the request's
// Authorization header.
func describeTransportError(err error) error {
	var ne net.Error
	var dnsErr *net.DNSError
	var opErr *net.OpError
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return errors.New("timeout")
	case errors.Is(err, syscall.ECONNREFUSED):
		return errors.New("connection refused")
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("connection closed by the users API")
	case errors.As(err, &dnsErr):
		return errors.New("host name lookup failed")
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return errors.New("cannot connect")
	}
	var certErr *tls.CertificateVerificationError
	var recordErr tls.RecordHeaderError
	if errors.As(err, &certErr) || errors.As(err, &recordErr) {
		return errors.New("tls handshake failed")
	}
	return errors.New("malformed response or transport error")
}

func isDenial(err error) bool {
	var d *denial
	return errors.As(err, &d)
}
