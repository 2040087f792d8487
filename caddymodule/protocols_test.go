package dbnlauth

// The protocol tests run a real Caddy with dbnl_auth in front of
// reverse_proxy on 127.0.0.1 and check that what a client sends
// reaches the platform as sent, and back, over every way a client may
// talk to the gateway: very large uploads and downloads streamed
// through without buffering, server-sent events, a WebSocket upgrade,
// HTTP/2 over cleartext (h2c), and paths and queries with escapes.

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dbnlai/dbnl-gateway/examples/platform/stub"
	"golang.org/x/net/websocket"
)

// protoStreamEnv names the environment variable that sets the size of
// TestProtocolStreamingGiB's upload and download, in bytes.
const protoStreamEnv = "DBNL_STREAM_BYTES"

// protoStreamBytes returns the size of the streaming test's transfers:
// DBNL_STREAM_BYTES if set, else 64 MiB with -short, else 1 GiB.
func protoStreamBytes(t *testing.T) int64 {
	t.Helper()
	if v := os.Getenv(protoStreamEnv); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			t.Fatalf("%s=%q: want a positive number of bytes", protoStreamEnv, v)
		}
		return n
	}
	if testing.Short() {
		return 64 << 20
	}
	return 1 << 30
}

// protoHeapBound is the most heap the streaming test may use while
// size bytes pass: a quarter of size, at least 64 MiB and at most
// 256 MiB. Anything that held a body, or a good part of one, would
// exceed it.
func protoHeapBound(size int64) uint64 {
	return uint64(min(max(size/4, 64<<20), 256<<20))
}

// protoPeriod holds the stand-in platform's download pattern
// (stub.PatternByte) long enough that a read of up to 64 KiB can be
// copied from any phase of it.
var protoPeriod = func() []byte {
	const period = 251
	b := make([]byte, period*(1+(64<<10)/period+1))
	for i := range b {
		b[i] = stub.PatternByte(int64(i))
	}
	return b
}()

// protoPattern reads the first n bytes of the download pattern, as
// stub.NewPatternReader does, but by copying whole runs, so that it
// keeps up with the network under -race too.
type protoPattern struct {
	off, n int64
}

func (p *protoPattern) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	b = b[:min(int64(len(b)), p.n-p.off, 64<<10)]
	phase := int(p.off % 251)
	k := copy(b, protoPeriod[phase:phase+len(b)])
	p.off += int64(k)
	return k, nil
}

// protoHeapSampler records the peak of the heap in use while it runs.
type protoHeapSampler struct {
	stop chan struct{}
	done chan struct{}
	peak uint64
	n    int
}

// startProtoHeapSampler samples the heap in use every 20ms until stop.
func startProtoHeapSampler() *protoHeapSampler {
	s := &protoHeapSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			s.peak = max(s.peak, ms.HeapInuse)
			s.n++
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

// finish stops the sampler and returns the peak heap in use and the
// number of samples.
func (s *protoHeapSampler) finish() (uint64, int) {
	close(s.stop)
	<-s.done
	return s.peak, s.n
}

// TestProtocolStreamingGiB uploads and downloads 1 GiB (64 MiB with
// -short; DBNL_STREAM_BYTES sets it) through the gateway, generating
// and hashing the bytes on the fly, and checks that they arrive byte
// for byte, that the platform saw the user's trusted headers, and
// that the heap stays far below the size of the body while they pass.
func TestProtocolStreamingGiB(t *testing.T) {
	size := protoStreamBytes(t)
	users, err := stub.NewDirectory(stub.UsersFile{})
	if err != nil {
		t.Fatalf("making the stand-in directory: %v", err)
	}
	platform := stub.NewHandler(stub.Config{Users: users})

	api := newUsersAPI(t)
	g := startIntegGateway(t, api, integOptions{
		platform: func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/v0/download" {
				platform.ServeHTTP(w, r)
				return
			}
			// the stand-in's own download, a byte at a time, is too
			// slow under -race; this one sends the same bytes
			n, err := strconv.ParseInt(r.URL.Query().Get("bytes"), 10, 64)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
			_, _ = io.CopyBuffer(struct{ io.Writer }{w}, &protoPattern{n: n}, make([]byte, 64<<10))
		},
	})
	tok := integToken(t, "user_123", nil)
	// the gateway's client times out after 30s; a transfer may take
	// longer under -race
	client := &http.Client{Transport: g.client.Transport, Timeout: 5 * time.Minute}

	// the pattern's hash, taken while it is uploaded
	var want string

	t.Run("upload", func(t *testing.T) {
		h := sha256.New()
		body := io.TeeReader(&protoPattern{n: size}, h)
		r, err := http.NewRequest(http.MethodPost, g.url+"/v0/upload", io.NopCloser(body))
		if err != nil {
			t.Fatalf("building request: %v", err)
		}
		r.ContentLength = size
		r.Header.Set("Authorization", "Bearer "+tok)
		r.Header.Set("Content-Type", "application/octet-stream")

		runtime.GC()
		sampler := startProtoHeapSampler()
		start := time.Now()
		resp, respBody := integDo(t, client, r)
		elapsed := time.Since(start)
		peak, samples := sampler.finish()
		want = hex.EncodeToString(h.Sum(nil))
		t.Logf("uploaded %d MiB in %v (%.0f MiB/s); peak heap in use %d MiB over %d samples",
			size>>20, elapsed.Round(time.Millisecond), float64(size>>20)/elapsed.Seconds(), peak>>20, samples)

		if resp.StatusCode != http.StatusOK {
			t.Fatalf("got status %d, want 200; body %s", resp.StatusCode, respBody)
		}
		var got stub.UploadResult
		if err := json.Unmarshal(respBody, &got); err != nil {
			t.Fatalf("decoding %q: %v", respBody, err)
		}
		if got.Bytes != size || got.SHA256 != want {
			t.Errorf("platform got %d bytes with SHA-256 %s, want %d bytes with %s", got.Bytes, got.SHA256, size, want)
		}
		if got.UserID != "user_123" {
			t.Errorf("platform saw user %q, want user_123", got.UserID)
		}
		if bound := protoHeapBound(size); peak > bound {
			t.Errorf("peak heap in use %d MiB while uploading %d MiB, want under %d MiB",
				peak>>20, size>>20, bound>>20)
		}
	})

	t.Run("download", func(t *testing.T) {
		if want == "" {
			h := sha256.New()
			_, _ = io.Copy(h, &protoPattern{n: size})
			want = hex.EncodeToString(h.Sum(nil))
		}
		r := g.get(t, "/v0/download?bytes="+strconv.FormatInt(size, 10), tok)

		runtime.GC()
		sampler := startProtoHeapSampler()
		start := time.Now()
		resp, err := client.Do(r)
		if err != nil {
			sampler.finish()
			t.Fatalf("GET /v0/download: %v", err)
		}
		h := sha256.New()
		n, err := io.CopyBuffer(h, resp.Body, make([]byte, 64<<10))
		resp.Body.Close()
		elapsed := time.Since(start)
		peak, samples := sampler.finish()
		t.Logf("downloaded %d MiB in %v (%.0f MiB/s); peak heap in use %d MiB over %d samples",
			n>>20, elapsed.Round(time.Millisecond), float64(n>>20)/elapsed.Seconds(), peak>>20, samples)

		if err != nil {
			t.Fatalf("reading the download after %d bytes: %v", n, err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("got status %d, want 200", resp.StatusCode)
		}
		if got := hex.EncodeToString(h.Sum(nil)); n != size || got != want {
			t.Errorf("got %d bytes with SHA-256 %s, want %d bytes with %s", n, got, size, want)
		}
		if got := g.platform.last(t).header.Get("X-Dbnl-User-Id"); got != "user_123" {
			t.Errorf("platform saw user %q, want user_123", got)
		}
		if bound := protoHeapBound(size); peak > bound {
			t.Errorf("peak heap in use %d MiB while downloading %d MiB, want under %d MiB",
				peak>>20, size>>20, bound>>20)
		}
	})
}

// TestProtocolPatternMatchesStub checks that protoPattern yields the
// stand-in platform's download pattern, at odd read sizes.
func TestProtocolPatternMatchesStub(t *testing.T) {
	const n = 3<<20 + 17
	want, err := io.ReadAll(stub.NewPatternReader(n))
	if err != nil {
		t.Fatalf("reading the stub's pattern: %v", err)
	}
	var got []byte
	p := &protoPattern{n: n}
	buf := make([]byte, 70000)
	for size := 1; ; size = size*3%69997 + 1 {
		k, err := p.Read(buf[:size])
		got = append(got, buf[:k]...)
		if err == io.EOF {
			break
		}
	}
	if len(got) != len(want) {
		t.Fatalf("got %d bytes, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("byte %d: got %d, want %d", i, got[i], want[i])
		}
	}
}

// TestProtocolServerSentEvents streams events from the platform and
// checks that the client gets the first before the platform sends the
// last, so nothing on the way buffers them, and that a request without
// a token never reaches the platform.
func TestProtocolServerSentEvents(t *testing.T) {
	const events = 5
	// closed when the client has read the first event
	gotFirst := make(chan struct{})
	var gotFirstOnce sync.Once
	var waited struct {
		sync.Mutex
		timedOut bool
	}

	api := newUsersAPI(t)
	g := startIntegGateway(t, api, integOptions{
		platform: func(w http.ResponseWriter, r *http.Request) {
			rc := http.NewResponseController(w)
			w.Header().Set("Content-Type", "text/event-stream")
			w.Header().Set("Cache-Control", "no-cache")
			user := r.Header.Get("X-Dbnl-User-Id")
			for i := 1; i <= events; i++ {
				if i == events {
					// the last event waits for the client to have
					// the first
					select {
					case <-gotFirst:
					case <-time.After(10 * time.Second):
						waited.Lock()
						waited.timedOut = true
						waited.Unlock()
					}
				}
				fmt.Fprintf(w, "id: %d\nevent: tick\ndata: event %d for %s\n\n", i, i, user)
				if err := rc.Flush(); err != nil {
					return
				}
			}
		},
	})
	// a failed test must not leave the platform waiting
	t.Cleanup(func() { gotFirstOnce.Do(func() { close(gotFirst) }) })

	t.Run("streamed", func(t *testing.T) {
		r := g.get(t, "/v0/events", integToken(t, "user_123", nil))
		r.Header.Set("Accept", "text/event-stream")
		resp, err := g.client.Do(r)
		if err != nil {
			t.Fatalf("GET /v0/events: %v", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("got status %d, want 200", resp.StatusCode)
		}
		if got := resp.Header.Get("Content-Type"); got != "text/event-stream" {
			t.Errorf("got Content-Type %q, want text/event-stream", got)
		}

		var got []string
		br := bufio.NewReader(resp.Body)
		for len(got) < events {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("reading event %d: %v (got %q)", len(got)+1, err, got)
			}
			if data, ok := strings.CutPrefix(line, "data: "); ok {
				got = append(got, strings.TrimSuffix(data, "\n"))
				if len(got) == 1 {
					gotFirstOnce.Do(func() { close(gotFirst) })
				}
			}
		}
		waited.Lock()
		timedOut := waited.timedOut
		waited.Unlock()
		if timedOut {
			t.Errorf("client got no event until the platform gave up waiting: the gateway buffers the stream")
		}
		for i, data := range got {
			if want := fmt.Sprintf("event %d for user_123", i+1); data != want {
				t.Errorf("event %d: got %q, want %q", i+1, data, want)
			}
		}
	})

	t.Run("no token", func(t *testing.T) {
		before := len(g.platform.seen())
		r := g.get(t, "/v0/events", "")
		r.Header.Set("Accept", "text/event-stream")
		resp, body := g.do(t, r)
		checkDenial(t, resp, body, http.StatusUnauthorized, "auth_error")
		if got := len(g.platform.seen()) - before; got != 0 {
			t.Errorf("platform got %d requests without a token, want 0", got)
		}
	})
}

// TestProtocolWebSocket upgrades a connection through the gateway and
// exchanges messages both ways over it, and checks that an upgrade
// without a token is refused before the platform sees it.
func TestProtocolWebSocket(t *testing.T) {
	api := newUsersAPI(t)
	echo := websocket.Handler(func(ws *websocket.Conn) {
		_ = ws.SetDeadline(time.Now().Add(20 * time.Second))
		// the platform speaks first, naming who the gateway vouched for
		if err := websocket.Message.Send(ws, "hello "+ws.Request().Header.Get("X-Dbnl-User-Id")); err != nil {
			return
		}
		for {
			var msg string
			if err := websocket.Message.Receive(ws, &msg); err != nil {
				return
			}
			if err := websocket.Message.Send(ws, "echo:"+msg); err != nil {
				return
			}
		}
	})
	g := startIntegGateway(t, api, integOptions{platform: echo.ServeHTTP})
	wsURL := "ws" + strings.TrimPrefix(g.url, "http") + "/v0/ws"

	t.Run("with token", func(t *testing.T) {
		cfg, err := websocket.NewConfig(wsURL, g.url)
		if err != nil {
			t.Fatalf("configuring the client: %v", err)
		}
		cfg.Dialer = &net.Dialer{Timeout: 5 * time.Second}
		cfg.Header.Set("Authorization", "Bearer "+integToken(t, "user_123", nil))
		cfg.Header.Set("X-Dbnl-User-Id", "admin")
		// DialConfig fails unless the answer is 101 Switching Protocols
		ws, err := websocket.DialConfig(cfg)
		if err != nil {
			t.Fatalf("upgrading through the gateway: %v", err)
		}
		defer ws.Close()
		_ = ws.SetDeadline(time.Now().Add(20 * time.Second))

		seen := g.platform.last(t)
		if got := seen.header.Get("Upgrade"); !strings.EqualFold(got, "websocket") {
			t.Errorf("platform got Upgrade %q, want websocket", got)
		}
		if got := normalizedDbnlHeaders(seen.header)["x-dbnl-user-id"]; len(got) != 1 || got[0] != "user_123" {
			t.Errorf("platform got user id %q at connect, want only user_123", got)
		}
		if got := seen.header.Get("X-Dbnl-Org-Role"); got != "org_reader" {
			t.Errorf("platform got org role %q at connect, want org_reader", got)
		}

		var msg string
		if err := websocket.Message.Receive(ws, &msg); err != nil {
			t.Fatalf("receiving the platform's greeting: %v", err)
		}
		if msg != "hello user_123" {
			t.Errorf("got greeting %q, want %q", msg, "hello user_123")
		}
		for i, out := range []string{"ping-1", strings.Repeat("x", 200<<10), "ping-3"} {
			if err := websocket.Message.Send(ws, out); err != nil {
				t.Fatalf("sending message %d: %v", i, err)
			}
			if err := websocket.Message.Receive(ws, &msg); err != nil {
				t.Fatalf("receiving echo %d: %v", i, err)
			}
			if msg != "echo:"+out {
				t.Errorf("echo %d: got %d bytes starting %.20q, want %d bytes", i, len(msg), msg, len(out)+5)
			}
		}
	})

	t.Run("no token", func(t *testing.T) {
		before := len(g.platform.seen())
		r := g.get(t, "/v0/ws", "")
		r.Header.Set("Connection", "Upgrade")
		r.Header.Set("Upgrade", "websocket")
		r.Header.Set("Sec-WebSocket-Version", "13")
		r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		r.Header.Set("Origin", g.url)
		resp, body := g.do(t, r)
		checkDenial(t, resp, body, http.StatusUnauthorized, "auth_error")
		if got := len(g.platform.seen()) - before; got != 0 {
			t.Errorf("platform got %d upgrade requests without a token, want 0", got)
		}
	})
}

// TestProtocolH2C talks HTTP/2 over cleartext to the gateway and checks
// that authentication, denials and many concurrent streams of
// different users on one connection work as over HTTP/1.1.
func TestProtocolH2C(t *testing.T) {
	api := newUsersAPI(t)
	const streams = 16
	for i := range streams {
		u := fmt.Sprintf("h2user%02d", i)
		api.set(&Permissions{UserID: u, OrgRole: "org_reader", OrgPermissions: []string{"users.read"}})
	}
	g := startIntegGateway(t, api, integOptions{
		server: func(s map[string]any) { s["protocols"] = []string{"h1", "h2c"} },
		platform: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, r.Header.Get("X-Dbnl-User-Id"))
		},
	})

	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	transport := &http.Transport{Proxy: nil, Protocols: &protocols}
	t.Cleanup(transport.CloseIdleConnections)
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}

	checkH2 := func(t *testing.T, resp *http.Response) {
		t.Helper()
		if resp.ProtoMajor != 2 {
			t.Errorf("got protocol %s, want HTTP/2", resp.Proto)
		}
	}

	t.Run("allowed", func(t *testing.T) {
		resp, body := integDo(t, client, g.get(t, "/v0/projects", integToken(t, "user_123", nil)))
		checkH2(t, resp)
		if resp.StatusCode != http.StatusOK || string(body) != "user_123" {
			t.Errorf("got status %d, body %q, want 200 and user_123", resp.StatusCode, body)
		}
	})

	t.Run("no token", func(t *testing.T) {
		resp, body := integDo(t, client, g.get(t, "/v0/projects", ""))
		checkH2(t, resp)
		checkDenial(t, resp, body, http.StatusUnauthorized, "auth_error")
		if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, `Bearer realm="dbnl"`) {
			t.Errorf("got WWW-Authenticate %q, want a Bearer challenge", got)
		}
	})

	t.Run("bad token", func(t *testing.T) {
		tok := integToken(t, "user_123", nil)
		resp, body := integDo(t, client, g.get(t, "/v0/projects", tok[:len(tok)-2]+"xx"))
		checkH2(t, resp)
		checkDenial(t, resp, body, http.StatusUnauthorized, "auth_error")
	})

	t.Run("concurrent streams", func(t *testing.T) {
		type result struct {
			status int
			proto  int
			body   string
			err    error
		}
		results := make([]result, streams)
		reqs := make([]*http.Request, streams)
		for i := range reqs {
			reqs[i] = g.get(t, "/v0/projects", integToken(t, fmt.Sprintf("h2user%02d", i), nil))
			// HTTP/2 sends header names in lower case
			reqs[i].Header["x-dbnl-user-id"] = []string{"admin"}
			reqs[i].Header["x_dbnl_user_id"] = []string{"admin"}
		}
		before := len(g.platform.seen())
		var wg sync.WaitGroup
		for i := range streams {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := client.Do(reqs[i])
				if err != nil {
					results[i].err = err
					return
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				results[i] = result{status: resp.StatusCode, proto: resp.ProtoMajor, body: string(b), err: err}
			}()
		}
		wg.Wait()
		for i, res := range results {
			want := fmt.Sprintf("h2user%02d", i)
			switch {
			case res.err != nil:
				t.Errorf("stream %d: %v", i, res.err)
			case res.proto != 2 || res.status != http.StatusOK || res.body != want:
				t.Errorf("stream %d: got HTTP/%d status %d for %q, want HTTP/2 200 for %q",
					i, res.proto, res.status, res.body, want)
			}
		}
		for _, seen := range g.platform.seen()[before:] {
			got := normalizedDbnlHeaders(seen.header)["x-dbnl-user-id"]
			if len(got) != 1 || !strings.HasPrefix(got[0], "h2user") {
				t.Errorf("platform got user ids %q, want one h2user", got)
			}
		}
	})

	t.Run("users API down", func(t *testing.T) {
		api.setFailure(http.StatusInternalServerError, "", 0)
		defer api.setFailure(0, "", 0)
		// a user not yet cached, so the users API is asked
		api.set(&Permissions{UserID: "h2late", OrgRole: "org_reader"})
		resp, body := integDo(t, client, g.get(t, "/v0/projects", integToken(t, "h2late", nil)))
		checkH2(t, resp)
		checkDenial(t, resp, body, http.StatusServiceUnavailable, "auth_unavailable")
		if resp.Header.Get("Retry-After") == "" {
			t.Errorf("got no Retry-After on a 503, want one")
		}
	})
}

// protoCountingReader counts the bytes read from it.
type protoCountingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *protoCountingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n.Add(int64(n))
	return n, err
}

// TestProtocolDeniedUpload sends a 64 MiB upload that the gateway
// refuses, over HTTP/1.1, HTTP/1.1 with Expect: 100-continue, and
// h2c, and checks that the client gets the JSON denial rather than a
// reset connection, that the platform sees nothing, and that with
// Expect: 100-continue the body is never sent. It runs against Caddy's
// default server settings and again with read_idle_timeout off (see
// protoExpectFinding).
func TestProtocolDeniedUpload(t *testing.T) {
	for _, idleOff := range []bool{false, true} {
		name := "default server"
		if idleOff {
			name = "read_idle_timeout off"
		}
		t.Run(name, func(t *testing.T) { protoDeniedUploads(t, idleOff) })
	}
}

// protoExpectFinding is why a denied Expect: 100-continue upload is
// slow with Caddy's default server settings. It is Caddy's, not
// dbnl_auth's: a static_response in place of dbnl_auth behaves the same.
const protoExpectFinding = "Caddy 2.11.9 (not dbnl_auth): with the default read_idle_timeout, " +
	"Caddy's ServeHTTP replaces r.Body on the *http.Request net/http itself holds, so net/http " +
	"no longer sees its expectContinueReader and, before writing any denial, reads up to 256 KiB " +
	"of the body the client is holding back: the 401/503 waits for the client's expect-continue " +
	"timeout (curl 1s) and the client then uploads; set DBNL_RUN_KNOWN_CADDY=1 to run"

// protoDeniedUploads runs the denied uploads against a gateway with
// Caddy's default read_idle_timeout, or with it off.
func protoDeniedUploads(t *testing.T, idleOff bool) {
	const size = 64 << 20
	api := newUsersAPI(t)
	api.set(&Permissions{UserID: "user_flaky", OrgRole: "org_reader"})
	// the stand-in reads the whole body before it answers, as a
	// platform must for the allowed upload to pass through cleanly
	users, err := stub.NewDirectory(stub.UsersFile{})
	if err != nil {
		t.Fatalf("making the stand-in directory: %v", err)
	}
	g := startIntegGateway(t, api, integOptions{
		platform: stub.NewHandler(stub.Config{Users: users}).ServeHTTP,
		server: func(s map[string]any) {
			s["protocols"] = []string{"h1", "h2c"}
			if idleOff {
				// a negative duration turns the timeout off
				s["read_idle_timeout"] = "-1s"
			}
		},
	})
	good := integToken(t, "user_123", nil)

	var h2 http.Protocols
	h2.SetUnencryptedHTTP2(true)
	h2Transport := &http.Transport{Proxy: nil, Protocols: &h2}
	h1Transport := &http.Transport{Proxy: nil, ExpectContinueTimeout: 5 * time.Second}
	t.Cleanup(h2Transport.CloseIdleConnections)
	t.Cleanup(h1Transport.CloseIdleConnections)

	senders := []struct {
		name      string
		transport *http.Transport
		expect    bool
		proto     int
	}{
		{name: "http1", transport: h1Transport, proto: 1},
		{name: "http1 expect", transport: h1Transport, expect: true, proto: 1},
		{name: "h2c", transport: h2Transport, proto: 2},
	}
	denials := []struct {
		name    string
		token   string
		failAPI bool
		status  int
		code    string
	}{
		{name: "no token", status: http.StatusUnauthorized, code: "auth_error"},
		{name: "bad token", token: good[:len(good)-3] + "AAA", status: http.StatusUnauthorized, code: "auth_error"},
		{name: "users API failing", token: integToken(t, "user_flaky", nil), failAPI: true,
			status: http.StatusServiceUnavailable, code: "auth_unavailable"},
	}
	for _, snd := range senders {
		for _, d := range denials {
			t.Run(snd.name+"/"+d.name, func(t *testing.T) {
				if snd.expect && !idleOff && os.Getenv("DBNL_RUN_KNOWN_CADDY") == "" {
					t.Skip("KNOWN: " + protoExpectFinding)
				}
				if d.failAPI {
					api.setFailure(http.StatusInternalServerError, "", 0)
					defer api.setFailure(0, "", 0)
				}
				before := len(g.platform.seen())
				body := &protoCountingReader{r: &protoPattern{n: size}}
				r, err := http.NewRequest(http.MethodPost, g.url+"/v0/upload", io.NopCloser(body))
				if err != nil {
					t.Fatalf("building request: %v", err)
				}
				r.ContentLength = size
				if d.token != "" {
					r.Header.Set("Authorization", "Bearer "+d.token)
				}
				if snd.expect {
					r.Header.Set("Expect", "100-continue")
				}
				client := &http.Client{Transport: snd.transport, Timeout: 60 * time.Second}
				start := time.Now()
				resp, respBody := integDo(t, client, r)
				elapsed := time.Since(start)

				if resp.ProtoMajor != snd.proto {
					t.Errorf("got %s, want HTTP/%d", resp.Proto, snd.proto)
				}
				checkDenial(t, resp, respBody, d.status, d.code)
				if got := len(g.platform.seen()) - before; got != 0 {
					t.Errorf("platform got %d requests, want 0", got)
				}
				if sent := body.n.Load(); snd.expect && sent != 0 {
					t.Errorf("client sent %d body bytes after Expect: 100-continue (denial after %v), want 0",
						sent, elapsed.Round(time.Millisecond))
				}
			})
		}
	}

	// an allowed upload with Expect: 100-continue goes through
	t.Run("http1 expect/allowed", func(t *testing.T) {
		r, err := http.NewRequest(http.MethodPost, g.url+"/v0/upload", io.NopCloser(&protoPattern{n: 1 << 20}))
		if err != nil {
			t.Fatalf("building request: %v", err)
		}
		r.ContentLength = 1 << 20
		r.Header.Set("Authorization", "Bearer "+good)
		r.Header.Set("Expect", "100-continue")
		client := &http.Client{Transport: h1Transport, Timeout: 60 * time.Second}
		resp, respBody := integDo(t, client, r)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("got status %d, want 200; body %s", resp.StatusCode, respBody)
		}
		var got stub.UploadResult
		if err := json.Unmarshal(respBody, &got); err != nil {
			t.Fatalf("decoding %q: %v", respBody, err)
		}
		if got.Bytes != 1<<20 || got.UserID != "user_123" {
			t.Errorf("platform got %d bytes for %q, want %d for user_123", got.Bytes, got.UserID, 1<<20)
		}
	})
}

// TestProtocolRawPathAndQuery sends request targets with escapes, as
// raw bytes on the wire, and checks that the platform receives each
// exactly as sent.
func TestProtocolRawPathAndQuery(t *testing.T) {
	api := newUsersAPI(t)
	g := startIntegGateway(t, api, integOptions{})
	tok := integToken(t, "user_123", nil)
	host := strings.TrimPrefix(g.url, "http://")

	cases := []struct {
		name, target string
		// namespace is the X-Dbnl-Namespace-Id the platform must see
		namespace string
	}{
		{name: "encoded slash and space", target: "/v0/projects/a%2Fb?x=1&y=%20z&namespace_id=ns_1",
			namespace: "ns_1"},
		{name: "double encoding", target: "/v0/projects/a%252Fb?q=%25&r=a+b"},
		{name: "encoded dot segments", target: "/v0/projects/%2e%2e%2F%2E%2E%2fadmin?x=%2e%2e"},
		{name: "utf-8 and empty values", target: "/v0/projects/%C3%A9t%C3%A9?name=%E2%9C%93&empty=&flag"},
		{name: "repeated keys in order", target: "/v0/projects?b=2&a=1&b=3&namespace_id=ns_2&namespace_id=ns_2",
			namespace: "ns_2"},
		{name: "encoded key", target: "/v0/projects?namespace%5Fid=ns_1&x=%2B", namespace: "ns_1"},
		{name: "reserved characters", target: "/v0/projects/a:b@c!$&'()*+,=d?k=v/w?z:@!$'()*,"},
		{name: "unknown namespace", target: "/v0/projects?namespace_id=ns_9"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := len(g.platform.seen())
			status := protoRawGet(t, host, c.target, tok)
			if status != http.StatusOK {
				t.Fatalf("got status %d, want 200", status)
			}
			seen := g.platform.seen()
			if len(seen) != before+1 {
				t.Fatalf("platform got %d requests, want 1", len(seen)-before)
			}
			got := seen[len(seen)-1]
			if got.uri != c.target {
				t.Errorf("platform got request target %q, want %q", got.uri, c.target)
			}
			if v := got.header.Get("X-Dbnl-Namespace-Id"); v != c.namespace {
				t.Errorf("platform got X-Dbnl-Namespace-Id %q, want %q", v, c.namespace)
			}
			if v := got.header.Get("X-Dbnl-User-Id"); v != "user_123" {
				t.Errorf("platform got X-Dbnl-User-Id %q, want user_123", v)
			}

			// the parsed forms agree with the raw one
			u, err := url.ParseRequestURI(got.uri)
			if err != nil {
				t.Fatalf("parsing %q: %v", got.uri, err)
			}
			want, _ := url.ParseRequestURI(c.target)
			if u.EscapedPath() != want.EscapedPath() || u.RawQuery != want.RawQuery {
				t.Errorf("platform got path %q query %q, want %q %q",
					u.EscapedPath(), u.RawQuery, want.EscapedPath(), want.RawQuery)
			}
		})
	}
}

// protoRawGet sends GET target to host as raw bytes, with token as
// bearer, and returns the status of the answer.
func protoRawGet(t *testing.T, host, target, token string) int {
	t.Helper()
	conn, err := net.DialTimeout("tcp", host, 5*time.Second)
	if err != nil {
		t.Fatalf("dialing the gateway: %v", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	raw := "GET " + target + " HTTP/1.1\r\nHost: " + host +
		"\r\nAuthorization: Bearer " + token + "\r\nConnection: close\r\n\r\n"
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatalf("writing the request: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}
