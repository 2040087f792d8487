//go:build linux || darwin

package dbnlauth

// The fault tests run a real Caddy, loaded with caddy.Load on
// 127.0.0.1, with dbnl_auth in front of reverse_proxy, under concurrent
// load from many users, while the users API misbehaves: down, slow,
// flapping, answering garbage, answering a huge body or trickling its
// body. The gateway must fail closed and lose nothing: every request
// gets 200 (and the platform saw that exact user's trusted headers) or
// a JSON 401/503, the platform never sees a request without trusted
// headers or with another user's, and no more users-API calls are in
// flight at once than permissions_in_flight allows.
//
// Every load loop here is bounded by a request count and a deadline,
// and every server is an httptest server on 127.0.0.1. The file is
// built on Linux and macOS only: fltPeerConnected peeks at sockets
// with recvfrom(2).

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/golang-jwt/jwt/v5"
)

// fltMode is how fltUsersAPI answers.
type fltMode int32

const (
	// fltOK answers the user's permissions.
	fltOK fltMode = iota
	// fltSlow answers after stall; the fault tests make that longer
	// than the gateway's timeout.
	fltSlow
	// fltFlap cycles through a good answer, a 500 and a dropped
	// connection, one per call.
	fltFlap
	// fltGarbage answers 200 with a body outside the contract, a
	// different kind on each call.
	fltGarbage
	// fltHuge answers 200 with a well-formed 2 MiB body.
	fltHuge
	// fltTrickle answers 200 and dribbles a good body out a byte at a
	// time, so that it takes twice the gateway's timeout.
	fltTrickle
	// fltHold keeps every call open until release is closed, then
	// answers.
	fltHold
)

// fltInFlightLimit is the permissions_in_flight of the fault gateways.
const fltInFlightLimit = 4

// fltUsersAPI is a users API that knows every user: user u has
// org_reader with users.read and namespace_writer in namespace ns_u.
// It counts its calls and measures how many it serves at once, in two
// ways (see enter).
type fltUsersAPI struct {
	*httptest.Server
	mode atomic.Int32
	// stall is how long fltSlow stalls and fltTrickle takes.
	stall time.Duration
	// release ends the calls fltHold keeps open.
	release     chan struct{}
	releaseOnce sync.Once

	calls atomic.Int64

	mu sync.Mutex
	// open holds the connection of every call being served.
	open map[net.Conn]bool
	// maxServing is the most calls served at once; maxWaited the most
	// of them whose caller was still connected.
	maxServing, maxWaited int
}

// fltConnKey is the request context key of the connection a request
// came on.
type fltConnKey struct{}

// newFltUsersAPI starts the users API in mode, with stall as the delay
// of the slow modes.
func newFltUsersAPI(t testing.TB, mode fltMode, stall time.Duration) *fltUsersAPI {
	t.Helper()
	u := &fltUsersAPI{stall: stall, release: make(chan struct{}), open: make(map[net.Conn]bool)}
	u.mode.Store(int32(mode))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v0/users/{user}/permissions", u.serve)
	u.Server = httptest.NewUnstartedServer(mux)
	u.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		return context.WithValue(ctx, fltConnKey{}, c)
	}
	u.Start()
	// calls still held must not keep Close waiting
	t.Cleanup(func() {
		u.unblock()
		u.Close()
	})
	return u
}

// unblock ends the calls held by fltHold, and lets later ones through.
func (u *fltUsersAPI) unblock() {
	u.releaseOnce.Do(func() { close(u.release) })
}

// serving returns how many calls are being served now.
func (u *fltUsersAPI) serving() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.open)
}

// maxima returns the most calls served at once, and the most of them
// whose caller was still connected.
func (u *fltUsersAPI) maxima() (serving, waited int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.maxServing, u.maxWaited
}

// enter registers a call on conn and updates the maxima. A call the
// gateway has given up on stays in the users API until its handler
// notices the closed connection, which under load can take a while; so
// besides the calls being served, enter counts those whose connection
// the gateway still holds open, by asking the kernel (see
// fltPeerConnected), which knows at once.
func (u *fltUsersAPI) enter(conn net.Conn) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.open[conn] = true
	waited := 0
	for c := range u.open {
		if fltPeerConnected(c) {
			waited++
		}
	}
	u.maxServing = max(u.maxServing, len(u.open))
	u.maxWaited = max(u.maxWaited, waited)
}

func (u *fltUsersAPI) leave(conn net.Conn) {
	u.mu.Lock()
	delete(u.open, conn)
	u.mu.Unlock()
}

// fltPeerConnected reports whether the other end of c has not closed
// it: a peek at the socket finds no end of stream and no reset. It does
// not read, so the HTTP server's own reads are not disturbed.
func fltPeerConnected(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	connected := true
	err = raw.Control(func(fd uintptr) {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		// data waiting, or none yet: connected; end of stream or an
		// error such as a reset: gone
		connected = n > 0 || err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
	})
	return err == nil && connected
}

// fltPermissionsBody is the users API's good answer for user, with
// pad bytes of an unknown field appended inside the object.
func fltPermissionsBody(user string, pad int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"user_id":%q,"org_role":"org_reader","org_permissions":["users.read"],`+
		`"namespaces":[{"namespace_id":"ns_%s","role":"namespace_writer",`+
		`"permissions":["projects.read","projects.write"]}],"disabled":false`, user, user)
	if pad > 0 {
		b.WriteString(`,"padding":"`)
		b.Write(bytes.Repeat([]byte("x"), pad))
		b.WriteString(`"`)
	}
	b.WriteString("}")
	return b.Bytes()
}

// fltGarbageBodies are 200 answers outside the contract; each one must
// fail the lookup.
var fltGarbageBodies = []func(user string) string{
	func(string) string { return "not json at all" },
	func(string) string { return "<html><body>502 Bad Gateway</body></html>" },
	func(user string) string { return `{"user_id":"` + user + `","org_role":` },
	func(string) string { return `[]` },
	func(string) string { return `null` },
	// another user's answer: must never be applied to this user
	func(string) string { return string(fltPermissionsBody("intruder", 0)) },
	// a role that would smuggle a second entry into a header list
	func(user string) string {
		return `{"user_id":"` + user + `","org_role":"org_reader,org_admin","org_permissions":[]}`
	},
	func(user string) string {
		return `{"user_id":"` + user + `","org_role":"org_reader","org_permissions":["users.read=x"]}`
	},
	func(user string) string { return string(fltPermissionsBody(user, 0)) + `{"user_id":"admin"}` },
	func(user string) string { return `{"user_id":"` + user + `","org_permissions":"users.read"}` },
}

func (u *fltUsersAPI) serve(w http.ResponseWriter, r *http.Request) {
	n := u.calls.Add(1) - 1
	conn := r.Context().Value(fltConnKey{}).(net.Conn)
	u.enter(conn)
	defer u.leave(conn)

	user := r.PathValue("user")
	ctx := r.Context()
	switch fltMode(u.mode.Load()) {
	case fltOK:

	case fltSlow:
		select {
		case <-time.After(u.stall):
		case <-ctx.Done():
			return
		}

	case fltHold:
		select {
		case <-u.release:
		case <-ctx.Done():
			return
		case <-time.After(30 * time.Second):
			// a bound in case a test forgets to release
		}

	case fltFlap:
		switch n % 3 {
		case 1:
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		case 2:
			// drop the connection without an answer
			hc, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				_ = hc.Close()
			}
			return
		}

	case fltGarbage:
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, fltGarbageBodies[n%int64(len(fltGarbageBodies))](user))
		return

	case fltHuge:
		body := fltPermissionsBody(user, 2<<20)
		w.Header().Set("Content-Type", "application/json")
		for len(body) > 0 && ctx.Err() == nil {
			chunk := min(len(body), 64<<10)
			if _, err := w.Write(body[:chunk]); err != nil {
				return
			}
			body = body[chunk:]
		}
		return

	case fltTrickle:
		body := fltPermissionsBody(user, 0)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		rc := http.NewResponseController(w)
		tick := time.NewTicker(max(u.stall/time.Duration(len(body)), time.Millisecond))
		defer tick.Stop()
		for i := range body {
			if _, err := w.Write(body[i : i+1]); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
			select {
			case <-tick.C:
			case <-ctx.Done():
				return
			}
		}
		return
	}

	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(fltPermissionsBody(user, 0))
}

// fltPlatform is a platform that serves /who/{user}, where user is the
// user whose token the client sent, and checks that the gateway set
// exactly that user's trusted headers. It answers the user id it saw,
// and in X-Platform-Saw-Authorization whether Authorization arrived.
type fltPlatform struct {
	*httptest.Server
	hits       atomic.Int64
	violations atomic.Int64

	mu            sync.Mutex
	firstViolated []string
}

func newFltPlatform(t testing.TB) *fltPlatform {
	t.Helper()
	p := &fltPlatform{}
	mux := http.NewServeMux()
	mux.HandleFunc("/who/{user}", p.serve)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		p.violate(fmt.Sprintf("unexpected path %q", r.URL.Path))
		http.NotFound(w, r)
	})
	p.Server = httptest.NewServer(mux)
	t.Cleanup(p.Close)
	return p
}

// violate records a request the platform must never have seen.
func (p *fltPlatform) violate(what string) {
	p.violations.Add(1)
	p.mu.Lock()
	if len(p.firstViolated) < 10 {
		p.firstViolated = append(p.firstViolated, what)
	}
	p.mu.Unlock()
}

func (p *fltPlatform) serve(w http.ResponseWriter, r *http.Request) {
	p.hits.Add(1)
	user := r.PathValue("user")
	want := map[string][]string{
		"x-dbnl-user-id":         {user},
		"x-dbnl-org-role":        {"org_reader"},
		"x-dbnl-permissions":     {"users.read"},
		"x-dbnl-namespace-roles": {"ns_" + user + "=namespace_writer"},
		"x-dbnl-token-id":        {integJTI},
	}
	got := normalizedDbnlHeaders(r.Header)
	if formatHeaders(got) != formatHeaders(want) {
		p.violate(fmt.Sprintf("request for %s carried %s", user, formatHeaders(got)))
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("X-Platform-Saw-Authorization", fmt.Sprint(r.Header.Get("Authorization") != ""))
	_, _ = io.WriteString(w, r.Header.Get("X-Dbnl-User-Id"))
}

// checkClean fails t if the platform saw a request it must not have.
func (p *fltPlatform) checkClean(t testing.TB) {
	t.Helper()
	if n := p.violations.Load(); n != 0 {
		p.mu.Lock()
		defer p.mu.Unlock()
		t.Errorf("platform got %d requests without the token user's trusted headers, want 0; first: %s",
			n, strings.Join(p.firstViolated, "; "))
	}
}

// fltHandlerConfig is the dbnl_auth config of the fault gateways: the
// test HMAC key, asking apiURL, with at most fltInFlightLimit calls in
// flight.
func fltHandlerConfig(apiURL string) map[string]any {
	return map[string]any{
		"handler":               "dbnl_auth",
		"hmac_keys":             []any{map[string]any{"secret": testSecret}},
		"issuers":               []string{"dbnl"},
		"audiences":             []string{"dbnl-api"},
		"permissions_url":       apiURL + "/v0/users/{user}/permissions",
		"permissions_in_flight": fltInFlightLimit,
	}
}

// fltServerConfig is an HTTP server config on 127.0.0.1 running
// handler, then reverse_proxy to upstream (a host:port).
func fltServerConfig(handler map[string]any, upstream string) map[string]any {
	return map[string]any{
		"listen":          []string{"127.0.0.1:0"},
		"automatic_https": map[string]any{"disable": true},
		"routes": []any{map[string]any{"handle": []any{
			handler,
			map[string]any{
				"handler":   "reverse_proxy",
				"upstreams": []any{map[string]any{"dial": upstream}},
			},
		}}},
	}
}

// startFltGateway runs Caddy with handler in front of platform, with
// the integration tests' loader (which holds integMu until the test
// ends and then stops Caddy).
func startFltGateway(t *testing.T, handler map[string]any, platform *fltPlatform) *integGateway {
	t.Helper()
	g := &integGateway{}
	g.url = loadIntegCaddy(t, fltServerConfig(handler, platform.Listener.Addr().String()), g)
	return g
}

// fltCaddyConfig is a whole Caddy config that a test loads, changes and
// loads again.
type fltCaddyConfig struct {
	dir string
	// admin is the admin endpoint's address; empty keeps it off.
	admin string
	// level is the level of Caddy's log, written to dir/caddy.log.
	level string
	// server is the one HTTP server. Its listen address is fixed when
	// the config is first loaded.
	server map[string]any
}

// json encodes the config.
func (c *fltCaddyConfig) json(t testing.TB) []byte {
	t.Helper()
	admin := map[string]any{"disabled": true, "config": map[string]any{"persist": false}}
	if c.admin != "" {
		admin = map[string]any{"listen": c.admin, "config": map[string]any{"persist": false}}
	}
	cfg := map[string]any{
		"admin":   admin,
		"storage": map[string]any{"module": "file_system", "root": filepath.Join(c.dir, "storage")},
		"logging": map[string]any{"logs": map[string]any{"default": map[string]any{
			"writer":  map[string]any{"output": "file", "filename": c.logPath(), "roll": false},
			"encoder": map[string]any{"format": "json"},
			"level":   c.level,
		}}},
		"apps": map[string]any{"http": map[string]any{
			"grace_period": "5s",
			"servers":      map[string]any{"flt": c.server},
		}},
	}
	data, err := json.Marshal(cfg)
	if err != nil {
		t.Fatalf("encoding caddy config: %v", err)
	}
	return data
}

func (c *fltCaddyConfig) logPath() string { return filepath.Join(c.dir, "caddy.log") }

// fltStartCaddy loads server (listening on a free 127.0.0.1 port) with
// Caddy's log at level and, if withAdmin, the admin endpoint on
// another free 127.0.0.1 port. It holds integMu until the test ends,
// then stops Caddy and turns the admin endpoint off. It returns the
// config, for reloads, and the server's base URL.
func fltStartCaddy(t *testing.T, server map[string]any, level string,
	withAdmin bool) (*fltCaddyConfig, string) {
	t.Helper()
	addr := fltUnusedAddr(t)
	server["listen"] = []string{addr}
	c := &fltCaddyConfig{dir: t.TempDir(), level: level, server: server}
	if withAdmin {
		c.admin = fltUnusedAddr(t)
	}

	integMu.Lock()
	t.Cleanup(func() {
		if c.admin != "" {
			// caddy.Stop leaves the admin endpoint running
			off := `{"admin":{"disabled":true,"config":{"persist":false}}}`
			if err := caddy.Load([]byte(off), true); err != nil {
				t.Errorf("turning the admin endpoint off: %v", err)
			}
		}
		if err := caddy.Stop(); err != nil {
			t.Errorf("stopping caddy: %v", err)
		}
		if t.Failed() {
			if b, err := os.ReadFile(c.logPath()); err == nil {
				t.Logf("caddy log:\n%s", tail(b, 8000))
			}
		}
		integMu.Unlock()
	})
	if err := caddy.Load(c.json(t), true); err != nil {
		t.Fatalf("loading caddy config: %v", err)
	}
	return c, "http://" + addr
}

// fltActiveHandler returns the dbnl_auth instance of the running
// config, so a test can look at its caches.
func fltActiveHandler(t testing.TB) *Handler {
	t.Helper()
	app, err := caddy.ActiveContext().App("http")
	if err != nil {
		t.Fatalf("getting the http app: %v", err)
	}
	for _, srv := range app.(*caddyhttp.App).Servers {
		for _, route := range srv.Routes {
			for _, mh := range route.Handlers {
				if h, ok := mh.(*Handler); ok {
					return h
				}
			}
		}
	}
	t.Fatalf("no dbnl_auth handler in the running config")
	return nil
}

// fltUsers returns n user ids.
func fltUsers(n int) []string {
	users := make([]string, n)
	for i := range users {
		users[i] = fmt.Sprintf("u%05d", i)
	}
	return users
}

// fltTally counts the outcomes of a load run. failures holds the first
// few responses that were neither a 200 for the right user nor a JSON
// denial.
type fltTally struct {
	sent, ok, unauthorized, unavailable, failed atomic.Int64
	// dropped counts the connections dropped before an answer, for
	// requests that may be sent again (fltRequest.retryDropped).
	dropped atomic.Int64

	mu       sync.Mutex
	failures []string
	drops    []string
}

func (ty *fltTally) fail(format string, args ...any) {
	ty.failed.Add(1)
	ty.mu.Lock()
	if len(ty.failures) < 10 {
		ty.failures = append(ty.failures, fmt.Sprintf(format, args...))
	}
	ty.mu.Unlock()
}

func (ty *fltTally) drop(err error) {
	ty.dropped.Add(1)
	ty.mu.Lock()
	if len(ty.drops) < 10 {
		ty.drops = append(ty.drops, err.Error())
	}
	ty.mu.Unlock()
}

func (ty *fltTally) String() string {
	s := fmt.Sprintf("sent %d: 200 %d, 401 %d, 503 %d, failed %d",
		ty.sent.Load(), ty.ok.Load(), ty.unauthorized.Load(), ty.unavailable.Load(), ty.failed.Load())
	if n := ty.dropped.Load(); n > 0 {
		s += fmt.Sprintf(", connections dropped and the request sent again %d", n)
	}
	return s
}

// checkNoFailures fails t if any response was neither a 200 for the
// token's user nor a JSON denial.
func (ty *fltTally) checkNoFailures(t testing.TB) {
	t.Helper()
	if n := ty.failed.Load(); n != 0 {
		ty.mu.Lock()
		defer ty.mu.Unlock()
		t.Errorf("got %d failed requests, want 0 (%v); first: %s", n, ty, strings.Join(ty.failures, "; "))
	}
}

// fltRequest is one request of a load run: a path and a bearer token,
// and the user a 200 must be for ("" when none may pass).
type fltRequest struct {
	path, token, user string
	// forge adds client identity headers the gateway must replace.
	forge bool
	// retryDropped sends the request once more if its connection is
	// reset or closed before any answer (see fltIsDrop); a second
	// such error fails it.
	retryDropped bool
}

// fltIsDrop reports whether err is a connection reset or closed before
// any answer came: what a client sees when the listener that queued
// its connection is closed.
func fltIsDrop(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// fltLoad sends requests from workers goroutines, each sending at most
// perWorker requests and none after budget has passed, and tallies the
// outcomes. next returns worker w's i-th request.
func fltLoad(g *integGateway, client *http.Client, workers, perWorker int, budget time.Duration,
	next func(w, i int) fltRequest) *fltTally {
	ty := &fltTally{}
	deadline := time.Now().Add(budget)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWorker && time.Now().Before(deadline); i++ {
				fltSend(g, client, ty, next(w, i))
			}
		}()
	}
	wg.Wait()
	return ty
}

// fltSend sends one request and tallies its outcome.
func fltSend(g *integGateway, client *http.Client, ty *fltTally, rq fltRequest) {
	ty.sent.Add(1)
	r, err := http.NewRequest(http.MethodGet, g.url+rq.path, nil)
	if err != nil {
		ty.fail("building request: %v", err)
		return
	}
	if rq.token != "" {
		r.Header.Set("Authorization", "Bearer "+rq.token)
	}
	if rq.forge {
		r.Header["X-Dbnl-User-Id"] = []string{"admin"}
		r.Header["X_Dbnl_User_Id"] = []string{"admin"}
		r.Header["X-Dbnl-Org-Role"] = []string{"org_admin"}
		r.Header["X-Dbnl-Permissions"] = []string{"users.write,projects.write"}
	}
	resp, err := client.Do(r)
	if err != nil && rq.retryDropped && fltIsDrop(err) {
		ty.drop(err)
		resp, err = client.Do(r.Clone(r.Context()))
	}
	if err != nil {
		ty.fail("GET %s: %v", rq.path, err)
		return
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if err != nil {
		ty.fail("reading the answer to %s: %v", rq.path, err)
		return
	}

	switch resp.StatusCode {
	case http.StatusOK:
		if rq.user == "" || string(body) != rq.user {
			ty.fail("GET %s: got 200 for %q, want it only for the token's user %q", rq.path, body, rq.user)
			return
		}
		ty.ok.Add(1)
		return
	case http.StatusUnauthorized:
		if fltDenialCode(resp, body) != "auth_error" {
			ty.fail("GET %s: got 401 with %q %q, want a JSON auth_error",
				rq.path, resp.Header.Get("Content-Type"), body)
			return
		}
		ty.unauthorized.Add(1)
	case http.StatusServiceUnavailable:
		if fltDenialCode(resp, body) != "auth_unavailable" || resp.Header.Get("Retry-After") == "" {
			ty.fail("GET %s: got 503 with %q %q, Retry-After %q, want a JSON auth_unavailable with Retry-After",
				rq.path, resp.Header.Get("Content-Type"), body, resp.Header.Get("Retry-After"))
			return
		}
		ty.unavailable.Add(1)
	default:
		ty.fail("GET %s: got status %d %q, want 200, 401 or 503", rq.path, resp.StatusCode, body)
	}
}

// fltDenialCode returns the code of a JSON denial, or "" if resp is
// not one.
func fltDenialCode(resp *http.Response, body []byte) string {
	if resp.Header.Get("Content-Type") != "application/json" {
		return ""
	}
	var eb integErrorBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&eb); err != nil || eb.Message == "" {
		return ""
	}
	return eb.Code
}

// fltClient returns a client for load runs against 127.0.0.1.
func fltClient(t testing.TB) *http.Client {
	t.Helper()
	transport := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64}
	t.Cleanup(transport.CloseIdleConnections)
	return &http.Client{Transport: transport, Timeout: 30 * time.Second}
}

// fltMint mints a token for user as integToken does, for use off the
// test goroutine: HS256 signing with a fixed key cannot fail.
func fltMint(user string) string {
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, integClaims(user)).SignedString([]byte(testSecret))
	if err != nil {
		panic("signing a token: " + err.Error())
	}
	return s
}

// fltTokens mints one token per user.
func fltTokens(t testing.TB, users []string) map[string]string {
	t.Helper()
	tokens := make(map[string]string, len(users))
	for _, u := range users {
		tokens[u] = integToken(t, u, nil)
	}
	return tokens
}

// TestFaultUsersAPIUnderLoad runs 32 workers, with valid tokens of 64
// users, against a gateway whose users API misbehaves in one way per
// subtest, and checks that the gateway fails closed and loses nothing.
// After the fault, the users API recovers and every user must pass
// again: no failure was cached.
func TestFaultUsersAPIUnderLoad(t *testing.T) {
	const (
		workers   = 32
		perWorker = 20
		budget    = 4 * time.Second
		timeout   = 250 * time.Millisecond
	)
	users := fltUsers(64)
	tokens := fltTokens(t, users)

	cases := []struct {
		name string
		mode fltMode
		// down: permissions_url names a port nobody listens on
		down bool
		// somePass: some requests must pass; otherwise none may
		somePass bool
	}{
		{name: "down", down: true},
		{name: "slow", mode: fltSlow},
		{name: "flapping", mode: fltFlap, somePass: true},
		{name: "garbage", mode: fltGarbage},
		{name: "huge body", mode: fltHuge},
		{name: "trickled body", mode: fltTrickle},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			api := newFltUsersAPI(t, c.mode, 2*timeout)
			apiURL := api.URL
			if c.down {
				apiURL = "http://" + fltUnusedAddr(t)
			}
			platform := newFltPlatform(t)
			handler := fltHandlerConfig(apiURL)
			handler["permissions_timeout"] = timeout.String()
			handler["permissions_ttl"] = "50ms"
			g := startFltGateway(t, handler, platform)
			client := fltClient(t)

			start := time.Now()
			ty := fltLoad(g, client, workers, perWorker, budget, func(w, i int) fltRequest {
				u := users[(w*perWorker+i*7)%len(users)]
				return fltRequest{path: "/who/" + u, token: tokens[u], user: u, forge: i%2 == 0}
			})
			serving, waited := api.maxima()
			t.Logf("%s in %v; users API: %d calls, at most %d at once, %d of them with the gateway waiting",
				ty, time.Since(start).Round(time.Millisecond), api.calls.Load(), serving, waited)

			ty.checkNoFailures(t)
			platform.checkClean(t)
			if got, want := platform.hits.Load(), ty.ok.Load(); got != want {
				t.Errorf("platform got %d requests, want %d (one per 200)", got, want)
			}
			if got := ty.unauthorized.Load(); got != 0 {
				t.Errorf("got %d 401s for valid tokens of active users, want 0", got)
			}
			switch {
			case c.somePass && ty.ok.Load() == 0:
				t.Errorf("got no 200, want some while the users API answers every third call")
			case c.somePass && ty.unavailable.Load() == 0:
				t.Errorf("got no 503, want some while the users API fails two calls in three")
			case !c.somePass && ty.ok.Load() != 0:
				t.Errorf("got %d 200s, want none while the users API never answers within the contract",
					ty.ok.Load())
			}
			// the calls the gateway had given up on but the users API
			// was still serving are not counted: their slots are free
			if waited > fltInFlightLimit {
				t.Errorf("users API served %d calls at once for a waiting gateway, want at most permissions_in_flight %d",
					waited, fltInFlightLimit)
			}
			if c.down {
				return
			}

			// recovery: nothing of the failures was cached
			api.mode.Store(int32(fltOK))
			ty = fltLoad(g, client, 8, len(users)/8, 10*time.Second, func(w, i int) fltRequest {
				u := users[w*(len(users)/8)+i]
				return fltRequest{path: "/who/" + u, token: tokens[u], user: u}
			})
			ty.checkNoFailures(t)
			if got, want := ty.ok.Load(), int64(len(users)); got != want {
				t.Errorf("after the users API recovered: %v, want %d 200s", ty, want)
			}
			platform.checkClean(t)
		})
	}
}

// fltUnusedAddr returns a 127.0.0.1 address on which nothing listens:
// a port the kernel gave out and that was closed again. It serves as
// a users API that is down, or as a port for Caddy to listen on.
func fltUnusedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening: %v", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatalf("closing listener: %v", err)
	}
	return addr
}

// TestFaultInFlightBound holds every users-API call open while 32
// distinct users ask at once, and checks that exactly
// permissions_in_flight calls reach the users API, never more, and
// that the waiting requests all pass once the calls are answered.
func TestFaultInFlightBound(t *testing.T) {
	const n = 32
	users := fltUsers(n)
	tokens := fltTokens(t, users)
	api := newFltUsersAPI(t, fltHold, 0)
	platform := newFltPlatform(t)
	handler := fltHandlerConfig(api.URL)
	handler["permissions_timeout"] = "20s"
	g := startFltGateway(t, handler, platform)
	client := fltClient(t)

	done := make(chan *fltTally, 1)
	go func() {
		done <- fltLoad(g, client, n, 1, 30*time.Second, func(w, i int) fltRequest {
			u := users[w]
			return fltRequest{path: "/who/" + u, token: tokens[u], user: u}
		})
	}()

	// wait until the slots are taken, then watch for a while
	deadline := time.Now().Add(10 * time.Second)
	for api.serving() < fltInFlightLimit && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	held := api.serving()
	api.unblock()
	ty := <-done

	if held != fltInFlightLimit {
		t.Errorf("got %d calls held open at the users API, want permissions_in_flight %d", held, fltInFlightLimit)
	}
	// no call is given up on here, so every one counts
	if serving, _ := api.maxima(); serving > fltInFlightLimit {
		t.Errorf("users API served %d calls at once, want at most %d", serving, fltInFlightLimit)
	}
	ty.checkNoFailures(t)
	if got := ty.ok.Load(); got != n {
		t.Errorf("got %v, want %d 200s", ty, n)
	}
	if got := api.calls.Load(); got != n {
		t.Errorf("got %d users-API calls, want %d (one per user)", got, n)
	}
	platform.checkClean(t)
}

// fltHeapInuse returns the heap in use after a full collection.
func fltHeapInuse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// fltFloodUsers is how many distinct bad tokens the flood test sends,
// and how many distinct users, but under -race, which makes the
// gateway about seven times slower, a quarter as many.
const fltFloodUsers = 20000

// fltRaceEnabled reports whether the test binary was built with -race.
func fltRaceEnabled() bool {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range info.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// TestFaultFloodDistinctUsers sends valid tokens of 20000 distinct
// users (5000 under -race) through a gateway whose caches hold a
// tenth as many entries, and checks that the caches stay within their
// size and the heap stays bounded.
func TestFaultFloodDistinctUsers(t *testing.T) {
	const workers = 16
	users := fltFloodUsers
	if fltRaceEnabled() {
		users /= 4
	}
	perWorker := users / workers
	users = perWorker * workers
	cacheSize := users / 10
	api := newFltUsersAPI(t, fltOK, 0)
	platform := newFltPlatform(t)
	handler := fltHandlerConfig(api.URL)
	handler["permissions_cache_size"] = cacheSize
	handler["token_cache_size"] = cacheSize
	handler["permissions_ttl"] = "1m"
	_, url := fltStartCaddy(t, fltServerConfig(handler, platform.Listener.Addr().String()), "INFO", false)
	g := &integGateway{url: url}
	h := fltActiveHandler(t)
	client := fltClient(t)

	before := fltHeapInuse()
	start := time.Now()
	ty := fltLoad(g, client, workers, perWorker, 3*time.Minute, func(w, i int) fltRequest {
		u := fmt.Sprintf("flood%06d", w*perWorker+i)
		// minted here so that 20000 tokens are never held at once
		return fltRequest{path: "/who/" + u, token: fltMint(u), user: u}
	})
	elapsed := time.Since(start)
	after := fltHeapInuse()
	t.Logf("%s in %v; caches: %d permissions, %d tokens; heap in use %d MiB before, %d MiB after",
		ty, elapsed.Round(time.Millisecond), h.resolver.cache.Len(), h.verifier.cache.Len(),
		before>>20, after>>20)

	ty.checkNoFailures(t)
	platform.checkClean(t)
	if got := ty.sent.Load(); got != int64(users) {
		t.Errorf("sent %d requests in %v, want %d (the time bound cut the run short)", got, elapsed, users)
	}
	if got := ty.ok.Load(); got != ty.sent.Load() {
		t.Errorf("got %v, want every request to pass", ty)
	}
	if got := h.resolver.cache.Len(); got > cacheSize {
		t.Errorf("permissions cache holds %d users, want at most permissions_cache_size %d", got, cacheSize)
	}
	if got := h.verifier.cache.Len(); got > cacheSize {
		t.Errorf("token cache holds %d tokens, want at most token_cache_size %d", got, cacheSize)
	}
	// every user and token cached would take several MiB, which the
	// cache lengths above catch; this bound catches anything else
	// kept per request
	if after > before+64<<20 {
		t.Errorf("heap in use grew from %d to %d MiB, want less than 64 MiB of growth", before>>20, after>>20)
	}
}

// TestFaultFloodInvalidTokens sends 20000 distinct bad tokens, and
// checks that each gets a JSON 401, that the users API and the
// platform are never called, that the token cache keeps none of them
// and that the heap stays bounded.
func TestFaultFloodInvalidTokens(t *testing.T) {
	const (
		workers   = 16
		perWorker = fltFloodUsers / workers
	)
	api := newFltUsersAPI(t, fltOK, 0)
	platform := newFltPlatform(t)
	server := fltServerConfig(fltHandlerConfig(api.URL), platform.Listener.Addr().String())
	_, url := fltStartCaddy(t, server, "INFO", false)
	g := &integGateway{url: url}
	h := fltActiveHandler(t)
	client := fltClient(t)

	// a valid token's header and claims, with a signature that is not
	// its own; or random segments; or random bytes
	good := integToken(t, "victim", nil)
	headerAndClaims := good[:strings.LastIndexByte(good, '.')]
	bad := func(i int) string {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		seg := base64.RawURLEncoding.EncodeToString(b)
		switch i % 3 {
		case 0:
			return headerAndClaims + "." + seg
		case 1:
			return seg[:10] + "." + seg[10:25] + "." + seg[25:]
		default:
			return seg
		}
	}

	before := fltHeapInuse()
	start := time.Now()
	ty := fltLoad(g, client, workers, perWorker, 3*time.Minute, func(w, i int) fltRequest {
		return fltRequest{path: "/who/victim", token: bad(w*perWorker + i), forge: i%2 == 0}
	})
	elapsed := time.Since(start)
	after := fltHeapInuse()
	t.Logf("%s in %v; token cache %d; heap in use %d MiB before, %d MiB after",
		ty, elapsed.Round(time.Millisecond), h.verifier.cache.Len(), before>>20, after>>20)

	ty.checkNoFailures(t)
	platform.checkClean(t)
	if got := ty.sent.Load(); got != fltFloodUsers {
		t.Errorf("sent %d requests in %v, want %d (the time bound cut the run short)", got, elapsed, fltFloodUsers)
	}
	if got := ty.unauthorized.Load(); got != ty.sent.Load() {
		t.Errorf("got %v, want a 401 for every bad token", ty)
	}
	if got := api.calls.Load(); got != 0 {
		t.Errorf("got %d users-API calls for bad tokens, want 0", got)
	}
	if got := platform.hits.Load(); got != 0 {
		t.Errorf("platform got %d requests with bad tokens, want 0", got)
	}
	if got := h.verifier.cache.Len(); got != 0 {
		t.Errorf("token cache holds %d entries after only bad tokens, want 0", got)
	}
	if got := h.resolver.cache.Len(); got != 0 {
		t.Errorf("permissions cache holds %d entries after only bad tokens, want 0", got)
	}
	if after > before+64<<20 {
		t.Errorf("heap in use grew from %d to %d MiB, want less than 64 MiB of growth", before>>20, after>>20)
	}

	// the cache does keep a token that verifies
	ty = fltLoad(g, client, 1, 1, 10*time.Second, func(int, int) fltRequest {
		return fltRequest{path: "/who/victim", token: good, user: "victim"}
	})
	ty.checkNoFailures(t)
	if got := h.verifier.cache.Len(); got != 1 {
		t.Errorf("token cache holds %d entries after one good token, want 1", got)
	}
}
