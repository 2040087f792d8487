//go:build linux || darwin

package dbnlauth

// The reload tests change the running config while requests flow, the
// way `caddy reload` does, and check that no request fails: the new
// config takes over the listening address while the old one finishes
// the requests it has, and each dbnl_auth instance must serve its
// requests to the end, after its successor has been provisioned and
// until Caddy cleans it up. The configs are whole Caddy configs
// (fltCaddyConfig), since a reload must name the same listen address
// and admin endpoint as the config it replaces.

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// rldHandlerVariant is the i-th of the dbnl_auth configs the reload
// tests alternate between: each differs from the one before in its
// permissions TTL, its token cache size and whether it strips
// Authorization.
func rldHandlerVariant(apiURL string, i int) map[string]any {
	h := fltHandlerConfig(apiURL)
	h["permissions_ttl"] = fmt.Sprintf("%ds", 1+i%2)
	h["token_cache_size"] = 1000 + i
	h["strip_authorization"] = i%2 == 1
	return h
}

// rldRun runs 4 workers of valid requests for 16 users for about 6s,
// calling reload with 1, 2, ... 5 at one-second intervals meanwhile,
// and checks that every request passed for its user and that after
// each reload a new connection sees the new config.
//
// A reload can still drop a connection in two ways, both in Caddy's
// and Go's server code, with or without dbnl_auth in the route, and
// before any dbnl_auth code runs for the request:
//
//   - On Linux, Caddy opens the new config's listener beside the old
//     one (SO_REUSEPORT) and closes the old one a moment after the
//     reload returns; a connection the kernel queued on the old
//     listener in that moment is reset, unless the kernel migrates it
//     (net.ipv4.tcp_migrate_req=1).
//   - The old server's Shutdown closes, unanswered, a connection whose
//     request it reads once shutting down has begun (net/http's
//     conn.serve does so on purpose). Even listeners that share one
//     socket across reloads (bind fd/N) see this.
//
// So a request on a dropped connection is sent again and counted, and
// the drops are bounded; every answer must be a 200 for the right
// user.
func rldRun(t *testing.T, url string, platform *fltPlatform, reload func(i int) error) {
	t.Helper()
	const (
		workers   = 4
		perWorker = 20000
		budget    = 6 * time.Second
		reloads   = 5
	)
	users := fltUsers(16)
	tokens := fltTokens(t, users)
	g := &integGateway{url: url}
	client := fltClient(t)

	// a fresh connection per probe, so that it reaches the current
	// config rather than a kept-alive connection of an old one
	probeTransport := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	probe := &http.Client{Transport: probeTransport, Timeout: 10 * time.Second}
	var probeDrops []string
	stripped := func() (bool, error) {
		r, err := http.NewRequest(http.MethodGet, url+"/who/"+users[0], nil)
		if err != nil {
			return false, err
		}
		r.Header.Set("Authorization", "Bearer "+tokens[users[0]])
		resp, err := probe.Do(r)
		for try := 1; err != nil && fltIsDrop(err) && try <= 3; try++ {
			probeDrops = append(probeDrops, err.Error())
			time.Sleep(50 * time.Millisecond)
			resp, err = probe.Do(r.Clone(r.Context()))
		}
		if err != nil {
			return false, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false, fmt.Errorf("got status %d, want 200", resp.StatusCode)
		}
		return resp.Header.Get("X-Platform-Saw-Authorization") == "false", nil
	}

	done := make(chan *fltTally, 1)
	go func() {
		done <- fltLoad(g, client, workers, perWorker, budget, func(w, i int) fltRequest {
			u := users[(w*5+i)%len(users)]
			return fltRequest{path: "/who/" + u, token: tokens[u], user: u, forge: i%3 == 0, retryDropped: true}
		})
	}()

	var reloadTimes []time.Duration
	for i := 1; i <= reloads; i++ {
		time.Sleep(time.Second)
		start := time.Now()
		if err := reload(i); err != nil {
			t.Errorf("reload %d: %v", i, err)
			continue
		}
		reloadTimes = append(reloadTimes, time.Since(start).Round(time.Millisecond))
		got, err := stripped()
		if err != nil {
			t.Errorf("probe after reload %d: %v", i, err)
		} else if want := i%2 == 1; got != want {
			t.Errorf("after reload %d: got Authorization stripped %t, want %t", i, got, want)
		}
	}
	ty := <-done
	t.Logf("%s; probe connections dropped %d; during %d reloads taking %v",
		ty, len(probeDrops), len(reloadTimes), reloadTimes)

	ty.checkNoFailures(t)
	platform.checkClean(t)
	if ty.ok.Load() != ty.sent.Load() {
		t.Errorf("got %v, want every request to pass", ty)
	}
	if ty.sent.Load() < 100 {
		t.Errorf("sent only %d requests during the reloads, want at least 100", ty.sent.Load())
	}
	drops := ty.dropped.Load() + int64(len(probeDrops))
	if drops > workers*reloads {
		t.Errorf("got %d connections dropped, want at most %d (one per worker and reload); "+
			"first: %s; probes: %s",
			drops, workers*reloads, strings.Join(ty.drops, "; "), strings.Join(probeDrops, "; "))
	}
}

// rldUsersAPI starts the users API of the reload tests. Each call takes
// 100ms, so that lookups are in flight when a config is replaced (each
// config starts with empty caches).
func rldUsersAPI(t *testing.T) *fltUsersAPI {
	t.Helper()
	return newFltUsersAPI(t, fltSlow, 100*time.Millisecond)
}

// TestReloadUnderLoad reloads a changed config with caddy.Load five
// times while four workers send requests, and checks that none fails.
func TestReloadUnderLoad(t *testing.T) {
	api := rldUsersAPI(t)
	platform := newFltPlatform(t)
	server := fltServerConfig(rldHandlerVariant(api.URL, 0), platform.Listener.Addr().String())
	c, url := fltStartCaddy(t, server, "INFO", false)

	rldRun(t, url, platform, func(i int) error {
		c.server = fltServerConfig(rldHandlerVariant(api.URL, i), platform.Listener.Addr().String())
		c.server["listen"] = server["listen"]
		return caddy.Load(c.json(t), false)
	})
}

// TestReloadThroughAdminAPI does the same through the admin endpoint's
// POST /load, as `caddy reload` does.
func TestReloadThroughAdminAPI(t *testing.T) {
	api := rldUsersAPI(t)
	platform := newFltPlatform(t)
	server := fltServerConfig(rldHandlerVariant(api.URL, 0), platform.Listener.Addr().String())
	c, url := fltStartCaddy(t, server, "INFO", true)

	adminTransport := &http.Transport{Proxy: nil}
	t.Cleanup(adminTransport.CloseIdleConnections)
	admin := &http.Client{Transport: adminTransport, Timeout: 30 * time.Second}
	rldRun(t, url, platform, func(i int) error {
		c.server = fltServerConfig(rldHandlerVariant(api.URL, i), platform.Listener.Addr().String())
		c.server["listen"] = server["listen"]
		r, err := http.NewRequest(http.MethodPost, "http://"+c.admin+"/load", bytes.NewReader(c.json(t)))
		if err != nil {
			return err
		}
		r.Header.Set("Content-Type", "application/json")
		resp, err := admin.Do(r)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("POST /load: got status %d, want 200; body %s", resp.StatusCode, body)
		}
		return nil
	})
}
