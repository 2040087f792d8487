// Package dbnlauth is a Caddy HTTP handler that authenticates requests
// to the dbnl platform. It verifies the personal access token (a JWT)
// in the Authorization header, looks up the user's current permissions
// in the platform's users API, removes any identity headers the client
// sent and sets trusted ones for the handlers after it, typically
// reverse_proxy.
package dbnlauth

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	lru "github.com/hashicorp/golang-lru/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/net/http/httpguts"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Defaults for the optional settings.
const (
	defaultLeeway               = 30 * time.Second
	defaultUserClaim            = "sub"
	defaultPermissionsTTL       = 5 * time.Second
	defaultPermissionsTimeout   = 2 * time.Second
	defaultPermissionsCacheSize = 100_000
	defaultPermissionsInFlight  = 64
	defaultTokenCacheSize       = 100_000
	defaultHeaderPrefix         = "X-Dbnl-"
	defaultMaxTokenBytes        = 8 << 10

	minHeaderPrefix  = 4
	minMaxTokenBytes = 128
)

// Handler authenticates dbnl personal access tokens and sets trusted
// identity headers. A request it refuses never reaches the next handler:
// it answers 401 with {"code":"auth_error"} for a bad or missing token
// or an inactive user, and 503 with {"code":"auth_unavailable"} when the
// users API cannot be asked.
//
// After a request passes, these placeholders are set, for use by the
// log, header and reverse_proxy directives:
//
//	{http.auth.user.id}        the user id (shown in Caddy's access log)
//	{dbnl.user_id}             the user id
//	{dbnl.org_role}            the user's organization role
//	{dbnl.permissions}         the permissions sent to the platform
//	{dbnl.namespace_id}        the namespace named by the request, if the user has a role there
//	{dbnl.namespace_role}      the user's role in that namespace
//	{dbnl.token_id}            the token's jti
//	{dbnl.token_fingerprint}   the first 12 hex digits of the token's SHA-256
//
// On a denial, {dbnl.denial} holds the reason and {dbnl.token_fingerprint}
// is set when a token was presented.
type Handler struct {
	// Shared secrets for HS256, HS384 and HS512 tokens, each at least 32
	// bytes. Write them as placeholders, such as {env.DBNL_PAT_SECRET},
	// so the secret stays out of the config.
	HMACKeys []HMACKey `json:"hmac_keys,omitempty"`

	// PEM files with public keys for RS*, PS*, ES* and EdDSA tokens. At
	// least one HMAC or public key is required.
	PublicKeys []PublicKey `json:"public_keys,omitempty"`

	// The accepted values of the iss claim. Empty: not checked.
	Issuers []string `json:"issuers,omitempty"`

	// The accepted values of the aud claim; a token naming any one of
	// them passes. Empty: not checked.
	Audiences []string `json:"audiences,omitempty"`

	// Narrows the algorithms the keys allow. Empty: every algorithm the
	// configured keys can verify. "none" is never accepted.
	Algorithms []string `json:"algorithms,omitempty"`

	// Clock skew tolerated on exp, nbf and iat. Default: 30s.
	Leeway *caddy.Duration `json:"leeway,omitempty"`

	// The claim holding the user id. It must be a non-empty string.
	// Default: sub.
	UserClaim string `json:"user_claim,omitempty"`

	// The users API endpoint answering a user's current permissions.
	// {user} is replaced by the user id, percent-encoded so that it can
	// never change the path. The request carries the client's
	// Authorization header. Required.
	PermissionsURL string `json:"permissions_url,omitempty"`

	// How long a user's permissions are reused before the users API is
	// asked again: a role change reaches every token of the user within
	// this time. Answers that the user is unknown or disabled are kept
	// as long. Default: 5s.
	PermissionsTTL caddy.Duration `json:"permissions_ttl,omitempty"`

	// How long one users-API call may take, waiting for a free slot
	// included. Default: 2s.
	PermissionsTimeout caddy.Duration `json:"permissions_timeout,omitempty"`

	// The most users whose permissions are cached. Default: 100000.
	PermissionsCacheSize int `json:"permissions_cache_size,omitempty"`

	// The most users-API calls in flight at once. Default: 64.
	PermissionsInFlight int `json:"permissions_in_flight,omitempty"`

	// The most verified tokens remembered, so that a repeated token
	// skips its signature check until it expires. Default: 100000.
	TokenCacheSize int `json:"token_cache_size,omitempty"`

	// The prefix of the identity headers. Every request header starting
	// with it, ignoring case and reading '_' and '.' as '-', is removed before
	// the trusted ones are set. Default: X-Dbnl-
	HeaderPrefix string `json:"header_prefix,omitempty"`

	// The longest token accepted, in bytes. Default: 8192.
	MaxTokenBytes int `json:"max_token_bytes,omitempty"`

	// Remove the Authorization header before the next handler. Default:
	// false, so the platform sees the client's token.
	StripAuthorization bool `json:"strip_authorization,omitempty"`

	keys     []*verificationKey
	verifier *verifier
	resolver *resolver
	headers  headerSet
	now      func() time.Time
	logger   *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.dbnl_auth",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision fills in defaults, expands placeholders in the keys, loads
// the key files and builds the caches.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if h.now == nil {
		h.now = time.Now
	}
	h.setDefaults()
	for _, f := range []struct {
		name string
		n    int
	}{
		{"permissions_cache_size", h.PermissionsCacheSize},
		{"permissions_in_flight", h.PermissionsInFlight},
		{"token_cache_size", h.TokenCacheSize},
		{"max_token_bytes", h.MaxTokenBytes},
	} {
		// checked here, not in Validate, because the caches and the
		// slot channel are built from them below
		if f.n < 0 {
			return fmt.Errorf("%s: must not be negative", f.name)
		}
	}

	// secrets and paths may be placeholders such as {env.NAME}
	repl := caddy.NewReplacer()

	h.keys = nil
	for i, k := range h.HMACKeys {
		secret := repl.ReplaceKnown(k.Secret, "")
		vk, err := newHMACKey(secret, k.KID)
		if err != nil {
			if secret == "" && k.Secret != "" {
				err = fmt.Errorf("%w (is the environment variable set?)", err)
			}
			return fmt.Errorf("hmac_keys[%d]: %w", i, err)
		}
		h.keys = append(h.keys, vk)
	}
	for i, k := range h.PublicKeys {
		path := repl.ReplaceKnown(k.File, "")
		if path == "" {
			return fmt.Errorf("public_keys[%d]: file is required", i)
		}
		vk, err := loadPublicKeyFile(path, k.KID)
		if err != nil {
			return fmt.Errorf("public_keys[%d]: loading %s: %w", i, path, err)
		}
		h.keys = append(h.keys, vk)
	}
	if err := checkKIDs(h.keys); err != nil {
		return err
	}
	algs, err := allowedAlgorithms(h.keys, h.Algorithms)
	if err != nil {
		return err
	}

	h.verifier, err = newVerifier(h.keys, algs, h.Issuers, h.Audiences, h.UserClaim,
		time.Duration(*h.Leeway), h.now, h.TokenCacheSize)
	if err != nil {
		return fmt.Errorf("token_cache_size: %w", err)
	}

	cache, err := lru.New[string, *cachedPermissions](h.PermissionsCacheSize)
	if err != nil {
		return fmt.Errorf("permissions_cache_size: %w", err)
	}
	h.resolver = &resolver{
		urlTemplate: repl.ReplaceKnown(h.PermissionsURL, ""),
		client:      newUsersAPIClient(time.Duration(h.PermissionsTimeout), h.PermissionsInFlight),
		timeout:     time.Duration(h.PermissionsTimeout),
		ttl:         time.Duration(h.PermissionsTTL),
		now:         h.now,
		logger:      h.logger,
		cache:       cache,
		slots:       make(chan struct{}, h.PermissionsInFlight),
	}
	h.headers = newHeaderSet(h.HeaderPrefix)

	for _, k := range h.keys {
		h.logger.Debug("verification key loaded",
			zap.String("key", k.desc), zap.String("kid", k.kid), zap.Strings("algorithms", k.algs))
	}
	return nil
}

func (h *Handler) setDefaults() {
	if h.Leeway == nil {
		d := caddy.Duration(defaultLeeway)
		h.Leeway = &d
	}
	if h.UserClaim == "" {
		h.UserClaim = defaultUserClaim
	}
	if h.PermissionsTTL == 0 {
		h.PermissionsTTL = caddy.Duration(defaultPermissionsTTL)
	}
	if h.PermissionsTimeout == 0 {
		h.PermissionsTimeout = caddy.Duration(defaultPermissionsTimeout)
	}
	if h.PermissionsCacheSize == 0 {
		h.PermissionsCacheSize = defaultPermissionsCacheSize
	}
	if h.PermissionsInFlight == 0 {
		h.PermissionsInFlight = defaultPermissionsInFlight
	}
	if h.TokenCacheSize == 0 {
		h.TokenCacheSize = defaultTokenCacheSize
	}
	if h.HeaderPrefix == "" {
		h.HeaderPrefix = defaultHeaderPrefix
	}
	if h.MaxTokenBytes == 0 {
		h.MaxTokenBytes = defaultMaxTokenBytes
	}
}

// Validate checks the settings for mistakes that Provision does not
// catch while loading keys.
func (h *Handler) Validate() error {
	if len(h.HMACKeys)+len(h.PublicKeys) == 0 {
		return errors.New("no key configured: set hmac_key or public_key")
	}
	if h.PermissionsURL == "" {
		return errors.New("permissions_url is required")
	}
	u, err := url.Parse(caddy.NewReplacer().ReplaceKnown(h.PermissionsURL, ""))
	if err != nil {
		return fmt.Errorf("permissions_url: %v", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("permissions_url: must be an absolute http or https URL, got scheme %q", u.Scheme)
	}
	if u.User != nil {
		return errors.New("permissions_url: must not carry credentials")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("permissions_url: invalid port %q", p)
		}
	}
	if _, err := url.ParseQuery(u.RawQuery); err != nil {
		return errors.New("permissions_url: the query string does not parse")
	}
	switch h.UserClaim {
	case "exp", "nbf", "iat", "aud", "iss", "jti":
		// none of these names a user: the numeric ones would refuse
		// every token, the others would make every issuer or token
		// a user of its own
		return fmt.Errorf("user_claim: %q is not a user id claim", h.UserClaim)
	}
	if h.Leeway != nil && *h.Leeway < 0 {
		return errors.New("leeway: must not be negative")
	}
	// a bare JSON number is read as nanoseconds; nothing this short
	// is meant. Zero means the default.
	if tooShort(h.PermissionsTTL) {
		return errors.New("permissions_ttl: must be at least 1ms (write a unit, such as 5s)")
	}
	if tooShort(h.PermissionsTimeout) {
		return errors.New("permissions_timeout: must be at least 1ms (write a unit, such as 2s)")
	}
	if !httpguts.ValidHeaderFieldName(h.HeaderPrefix) {
		return fmt.Errorf("header_prefix: %q is not a valid header name prefix", h.HeaderPrefix)
	}
	if len(h.HeaderPrefix) < minHeaderPrefix {
		// every header starting with the prefix is deleted: "X-"
		// would take X-Forwarded-For and X-Request-Id with it
		return fmt.Errorf("header_prefix: %q is too short; use at least %d characters, such as X-Dbnl-",
			h.HeaderPrefix, minHeaderPrefix)
	}
	if h.MaxTokenBytes > 0 && h.MaxTokenBytes < minMaxTokenBytes {
		return fmt.Errorf("max_token_bytes: %d is too small for any signed token; use at least %d",
			h.MaxTokenBytes, minMaxTokenBytes)
	}
	return nil
}

// Cleanup closes the users-API client's idle connections.
func (h *Handler) Cleanup() error {
	if h.resolver != nil {
		h.resolver.client.CloseIdleConnections()
	}
	return nil
}

// ServeHTTP authenticates r and, if it passes, hands it to next with
// trusted identity headers.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)

	// take the token; nothing is parsed if it is absent or oversized
	token, err := extractToken(r, h.MaxTokenBytes)
	if err != nil {
		return h.deny(w, r, repl, err, nil, "")
	}

	// verify it locally: no call is made for a token that fails
	id, err := h.verifier.verify(token)
	if err != nil {
		fp, _ := tokenFingerprint(token)
		return h.deny(w, r, repl, err, nil, fp)
	}
	namespace, err := requestNamespace(r.URL)
	if err != nil {
		return h.deny(w, r, repl, err, id, id.fingerprint)
	}

	// resolve the user's current permissions
	g, err := h.resolver.resolve(r.Context(), id.userID, token)
	if err != nil {
		if !isDenial(err) {
			err = errUnavailable
		}
		return h.deny(w, r, repl, err, id, id.fingerprint)
	}

	// replace whatever identity the client claimed with ours
	hs := h.headers
	hs.strip(r.Header)
	hs.stripConnection(r.Header)
	if r.Trailer != nil {
		hs.strip(r.Trailer)
		r.Body = &trailerStripper{ReadCloser: r.Body, trailer: r.Trailer, headers: hs}
	}
	var ns *namespaceGrants
	permissionsValue, namespaceValue, nsRoleValue := g.orgPermissionsValue, any(""), any("")
	if grant, ok := g.namespaces[namespace]; ok && namespace != "" {
		ns = &grant
		permissionsValue, namespaceValue, nsRoleValue = grant.permissionsValue, grant.idValue, grant.roleValue
	}
	hs.set(r.Header, g, namespace, ns, id.tokenID)
	if h.StripAuthorization {
		r.Header.Del("Authorization")
	}

	setPlaceholders(repl, g, id, permissionsValue, namespaceValue, nsRoleValue)

	return next.ServeHTTP(w, r)
}

// setPlaceholders sets the placeholders of a request that passed. The
// values were boxed when the permissions and the token were cached, so
// setting them allocates nothing but the replacer's own map.
//
// They are set rather than answered by a provider of our own: values
// set on a replacer take precedence over every provider, so nothing an
// earlier handler put on the request (a map directive writing to
// {dbnl.user_id}, another authentication) can stand in for ours.
func setPlaceholders(repl *caddy.Replacer, g *grants, id *identity,
	permissions, namespace, namespaceRole any) {
	repl.Set("http.auth.user.id", g.userIDValue)
	repl.Set("dbnl.user_id", g.userIDValue)
	repl.Set("dbnl.org_role", g.orgRoleValue)
	repl.Set("dbnl.permissions", permissions)
	repl.Set("dbnl.namespace_id", namespace)
	repl.Set("dbnl.namespace_role", namespaceRole)
	repl.Set("dbnl.token_id", id.tokenIDValue)
	repl.Set("dbnl.token_fingerprint", id.fingerprintValue)
}

// deny answers the request with err, a *denial, and logs why. Client
// mistakes are logged at Debug; the users-API failure behind a 503 was
// logged at Error when it happened.
func (h *Handler) deny(w http.ResponseWriter, r *http.Request, repl *caddy.Replacer,
	err error, id *identity, fingerprint string) error {
	var d *denial
	if !errors.As(err, &d) {
		d = errUnavailable
	}
	repl.Set("dbnl.denial", d.reason)
	if fingerprint != "" {
		repl.Set("dbnl.token_fingerprint", fingerprint)
	}

	if ce := h.logger.Check(zapcore.DebugLevel, "request denied"); ce != nil {
		// no path: a client may have put a token there, and the
		// access log, with the operator's filters, already has it
		fields := []zap.Field{
			zap.String("reason", d.reason),
			zap.Int("status", d.status),
			zap.String("method", r.Method),
		}
		if id != nil {
			fields = append(fields, zap.String("user_id", id.userID))
			if id.tokenID != "" {
				fields = append(fields, zap.String("token_id", id.tokenID))
			}
		}
		if fingerprint != "" {
			fields = append(fields, zap.String("token_fingerprint", fingerprint))
		}
		ce.Write(fields...)
	}

	d.write(w)
	return nil
}

// newUsersAPIClient returns the client for users-API calls: no
// redirects followed, no proxy from the environment, and enough idle
// connections for every call allowed in flight.
func newUsersAPIClient(timeout time.Duration, inFlight int) *http.Client {
	transport := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		MaxIdleConns:          inFlight,
		MaxIdleConnsPerHost:   inFlight,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{
		Transport: transport,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			// a redirect is not part of the contract; it fails the
			// lookup with its 3xx status
			return http.ErrUseLastResponse
		},
	}
}

// tooShort reports whether d is negative or between zero and 1ms.
func tooShort(d caddy.Duration) bool {
	return d < 0 || (d > 0 && d < caddy.Duration(time.Millisecond))
}

// checkKIDs refuses two keys with the same kid.
func checkKIDs(keys []*verificationKey) error {
	seen := make(map[string]bool)
	for _, k := range keys {
		if k.kid == "" {
			continue
		}
		if seen[k.kid] {
			return fmt.Errorf("kid %q is used by more than one key", k.kid)
		}
		seen[k.kid] = true
	}
	return nil
}

// allowedAlgorithms returns the algorithms the keys allow, narrowed to
// want when want is not empty.
func allowedAlgorithms(keys []*verificationKey, want []string) ([]string, error) {
	var fromKeys []string
	for _, k := range keys {
		for _, a := range k.algs {
			if !contains(fromKeys, a) {
				fromKeys = append(fromKeys, a)
			}
		}
	}
	if len(want) == 0 {
		return fromKeys, nil
	}
	var algs []string
	for _, a := range want {
		switch {
		case a == "none" || a == "None" || a == "NONE":
			return nil, errors.New("algorithms: none is never accepted")
		case !contains(supportedAlgs, a):
			return nil, fmt.Errorf("algorithms: unknown algorithm %q", a)
		case len(keys) > 0 && !contains(fromKeys, a):
			return nil, fmt.Errorf("algorithms: no configured key can verify %s", a)
		}
		if !contains(algs, a) {
			algs = append(algs, a)
		}
	}
	return algs, nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
