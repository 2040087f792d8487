package dbnlauth

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/golang-jwt/jwt/v5"

	// the modules the integration configs use
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/headers"
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/logging"
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/map"
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	_ "github.com/caddyserver/caddy/v2/modules/filestorage"
	_ "github.com/caddyserver/caddy/v2/modules/logging"
)

// integMu serializes the integration tests: caddy.Load and caddy.Stop
// act on the one configuration a process runs, so two gateways cannot
// run at once. A test holds it from loading its gateway until cleanup.
var integMu sync.Mutex

// integJTI is the jti of the tokens integToken mints.
const integJTI = "tok-live-1"

// integClaims returns claims that pass the integration gateways'
// checks on the real clock.
func integClaims(user string) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"sub": user,
		"iss": "dbnl",
		"aud": "dbnl-api",
		"iat": now.Add(-time.Minute).Unix(),
		"exp": now.Add(time.Hour).Unix(),
		"jti": integJTI,
	}
}

// integToken mints an HS256 token for user on the real clock; change,
// if not nil, edits the claims first.
func integToken(t testing.TB, user string, change func(jwt.MapClaims)) string {
	t.Helper()
	claims := integClaims(user)
	if change != nil {
		change(claims)
	}
	return signToken(t, "HS256", claims, nil)
}

// signWithKey signs claims with method and a key of the caller's
// choosing, for tokens the test keys cannot make.
func signWithKey(t testing.TB, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatalf("signing %s token: %v", method.Alg(), err)
	}
	return s
}

// integSeen is one request as the platform stub received it.
type integSeen struct {
	method string
	uri    string
	header http.Header
}

// integPlatform is a stub dbnl platform behind the gateway. It records
// every request it gets and answers 200, or hands the request to
// handle when that is set.
type integPlatform struct {
	*httptest.Server
	handle http.HandlerFunc

	mu   sync.Mutex
	reqs []integSeen
}

func newIntegPlatform(t testing.TB, handle http.HandlerFunc) *integPlatform {
	t.Helper()
	p := &integPlatform{handle: handle}
	p.Server = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.Close)
	return p
}

func (p *integPlatform) serve(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.reqs = append(p.reqs, integSeen{method: r.Method, uri: r.RequestURI, header: r.Header.Clone()})
	p.mu.Unlock()

	if p.handle != nil {
		p.handle(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"ok":true}`)
}

// seen returns the requests received so far.
func (p *integPlatform) seen() []integSeen {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.reqs)
}

// last returns the last request received, failing the test if there
// was none.
func (p *integPlatform) last(t testing.TB) integSeen {
	t.Helper()
	reqs := p.seen()
	if len(reqs) == 0 {
		t.Fatalf("platform got no request, want one")
	}
	return reqs[len(reqs)-1]
}

// integOptions shapes the gateway an integration test runs.
type integOptions struct {
	// handler, if set, edits the dbnl_auth JSON config.
	handler func(map[string]any)
	// before are handlers placed ahead of dbnl_auth, after are placed
	// between it and reverse_proxy.
	before, after []map[string]any
	// proxyHeaders is reverse_proxy's "headers" object.
	proxyHeaders map[string]any
	// server, if set, edits the HTTP server's JSON config.
	server func(map[string]any)
	// platform, if set, answers the platform's requests.
	platform http.HandlerFunc
}

// integGateway is a running Caddy with dbnl_auth in front of a stub
// platform.
type integGateway struct {
	url       string // http://127.0.0.1:port
	platform  *integPlatform
	api       *usersAPI
	client    *http.Client
	accessLog string // JSON access log of the server
	caddyLog  string // every other log, at debug level
}

// integHandlerConfig is the dbnl_auth config the gateways start from:
// every test key, the dbnl issuer and the dbnl-api audience.
func integHandlerConfig(t testing.TB, api *usersAPI) map[string]any {
	t.Helper()
	keys := keysFor(t)
	var public []any
	for _, name := range []string{"rsa", "p256", "p384", "p521", "ed25519"} {
		public = append(public, map[string]any{"file": keys[name].pemFile})
	}
	return map[string]any{
		"handler":         "dbnl_auth",
		"hmac_keys":       []any{map[string]any{"secret": testSecret}},
		"public_keys":     public,
		"issuers":         []string{"dbnl"},
		"audiences":       []string{"dbnl-api"},
		"permissions_url": api.URL + "/v0/users/{user}/permissions",
	}
}

// startIntegGateway runs Caddy on 127.0.0.1 with dbnl_auth asking api
// and reverse_proxy to a new platform stub. It stops Caddy when the
// test ends.
func startIntegGateway(t *testing.T, api *usersAPI, opts integOptions) *integGateway {
	t.Helper()
	platform := newIntegPlatform(t, opts.platform)

	handler := integHandlerConfig(t, api)
	if opts.handler != nil {
		opts.handler(handler)
	}
	proxy := map[string]any{
		"handler":   "reverse_proxy",
		"upstreams": []any{map[string]any{"dial": platform.Listener.Addr().String()}},
	}
	if opts.proxyHeaders != nil {
		proxy["headers"] = opts.proxyHeaders
	}
	var handle []any
	for _, h := range opts.before {
		handle = append(handle, h)
	}
	handle = append(handle, handler)
	for _, h := range opts.after {
		handle = append(handle, h)
	}
	handle = append(handle, proxy)

	server := map[string]any{
		"listen":          []string{"127.0.0.1:0"},
		"automatic_https": map[string]any{"disable": true},
		"routes":          []any{map[string]any{"handle": handle}},
	}
	if opts.server != nil {
		opts.server(server)
	}

	g := &integGateway{platform: platform, api: api}
	g.url = loadIntegCaddy(t, server, g)
	return g
}

// loadIntegCaddy loads a config with server as its only HTTP server,
// with the admin endpoint off, storage in a temporary directory and
// logs written to files there, and returns the server's base URL. It
// fills in g's log paths and client.
func loadIntegCaddy(t *testing.T, server map[string]any, g *integGateway) string {
	t.Helper()
	dir := t.TempDir()
	g.accessLog = filepath.Join(dir, "access.log")
	g.caddyLog = filepath.Join(dir, "caddy.log")

	const accessLogger = "integ"
	server["logs"] = map[string]any{"default_logger_name": accessLogger}
	fileWriter := func(path string) map[string]any {
		return map[string]any{"output": "file", "filename": path, "roll": false}
	}
	cfg := map[string]any{
		"admin":   map[string]any{"disabled": true, "config": map[string]any{"persist": false}},
		"storage": map[string]any{"module": "file_system", "root": filepath.Join(dir, "storage")},
		"logging": map[string]any{"logs": map[string]any{
			"default": map[string]any{
				"writer":  fileWriter(g.caddyLog),
				"encoder": map[string]any{"format": "json"},
				"level":   "DEBUG",
				"exclude": []string{"http.log.access." + accessLogger},
			},
			"access": map[string]any{
				"writer":  fileWriter(g.accessLog),
				"encoder": map[string]any{"format": "json"},
				"include": []string{"http.log.access." + accessLogger},
			},
		}},
		"apps": map[string]any{"http": map[string]any{
			// bounds caddy.Stop if a test leaves a request hanging
			"grace_period": "2s",
			"servers":      map[string]any{"integ": server},
		}},
	}
	data, err := json.Marshal(cfg)
	if err != nil {
		t.Fatalf("encoding caddy config: %v", err)
	}

	integMu.Lock()
	t.Cleanup(func() {
		if err := caddy.Stop(); err != nil {
			t.Errorf("stopping caddy: %v", err)
		}
		if t.Failed() {
			if b, err := os.ReadFile(g.caddyLog); err == nil {
				t.Logf("caddy log:\n%s", tail(b, 8000))
			}
		}
		integMu.Unlock()
	})
	if err := caddy.Load(data, true); err != nil {
		t.Fatalf("loading caddy config: %v", err)
	}

	app, err := caddy.ActiveContext().App("http")
	if err != nil {
		t.Fatalf("getting the http app: %v", err)
	}
	var addr string
	for _, srv := range app.(*caddyhttp.App).Servers {
		if ln := srv.Listeners(); len(ln) > 0 {
			addr = ln[0].Addr().String()
		}
	}
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("got listener address %q, want 127.0.0.1:<port>", addr)
	}

	// no proxy from the environment: requests go to 127.0.0.1 only
	transport := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64}
	g.client = &http.Client{Transport: transport, Timeout: 30 * time.Second}
	t.Cleanup(transport.CloseIdleConnections) // runs before caddy.Stop
	return "http://" + addr
}

// tail returns the last n bytes of b.
func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// get builds a GET request to the gateway, with token as bearer unless
// it is empty.
func (g *integGateway) get(t testing.TB, path, token string) *http.Request {
	t.Helper()
	r, err := http.NewRequest(http.MethodGet, g.url+path, nil)
	if err != nil {
		t.Fatalf("building request: %v", err)
	}
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	return r
}

// do sends r with the gateway's client and returns the response with
// its body read.
func (g *integGateway) do(t testing.TB, r *http.Request) (*http.Response, []byte) {
	t.Helper()
	return integDo(t, g.client, r)
}

func integDo(t testing.TB, c *http.Client, r *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := c.Do(r)
	if err != nil {
		t.Fatalf("%s %s: %v", r.Method, r.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading response body: %v", err)
	}
	return resp, body
}

// integErrorBody is the JSON body of a denial.
type integErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// checkDenial checks that resp is a JSON denial with status and code
// and returns its message.
func checkDenial(t testing.TB, resp *http.Response, body []byte, status int, code string) string {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("got status %d, want %d; body %s", resp.StatusCode, status, body)
	}
	if got := resp.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("got Content-Type %q, want application/json", got)
	}
	var eb integErrorBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&eb); err != nil {
		t.Fatalf("decoding denial body %q: %v", body, err)
	}
	if eb.Code != code {
		t.Errorf("got code %q, want %q", eb.Code, code)
	}
	if eb.Message == "" {
		t.Errorf("got an empty message, want a reason")
	}
	return eb.Message
}

// readLogLines waits, at most 5s, until the JSON log at path holds at
// least n lines, and returns them decoded along with the raw file.
func readLogLines(t testing.TB, path string, n int) ([]map[string]any, []byte) {
	t.Helper()
	var raw []byte
	deadline := time.Now().Add(5 * time.Second)
	for {
		raw, _ = os.ReadFile(path)
		if bytes.Count(raw, []byte("\n")) >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	var lines []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("decoding log line %q: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	if len(lines) < n {
		t.Fatalf("got %d lines in %s, want at least %d", len(lines), filepath.Base(path), n)
	}
	return lines, raw
}

// normalizedDbnlHeaders collects, across every key of h, the values of
// the headers whose name, lower-cased and with '_' and '.' read as '-'
// (as a CGI-style backend folds them), starts with x-dbnl-, keyed by
// that normalized name.
func normalizedDbnlHeaders(h http.Header) map[string][]string {
	fold := strings.NewReplacer("_", "-", ".", "-")
	out := make(map[string][]string)
	for name, values := range h {
		n := strings.ToLower(fold.Replace(name))
		if strings.HasPrefix(n, "x-dbnl-") {
			out[n] = append(out[n], values...)
		}
	}
	for _, v := range out {
		slices.Sort(v)
	}
	return out
}

// formatHeaders renders a header map on one line for failure messages.
func formatHeaders(h map[string][]string) string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%q ", k, h[k])
	}
	return strings.TrimSpace(b.String())
}
