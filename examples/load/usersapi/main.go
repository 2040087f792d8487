// Command usersapi is the load test's users API. It answers
// GET /v0/users/{user}/permissions for any user id with the same
// grants, and counts the calls so a run can show how often the gateway
// asked:
//
//	GET  /stats   {"calls":N,"users":U,"max_per_user":M,"no_authorization":K}
//	POST /reset   zeroes the counts
//
//	go run ./examples/load/usersapi -listen 127.0.0.1:19101
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"

	dbnlauth "github.com/dbnlai/dbnl-gateway/caddymodule"
	"github.com/dbnlai/dbnl-gateway/examples/load/internal/serve"
)

// counter counts calls per user.
type counter struct {
	mu      sync.Mutex
	calls   int64
	noAuth  int64
	perUser map[string]int64
}

func (c *counter) add(user string, hasAuth bool) {
	c.mu.Lock()
	c.calls++
	if !hasAuth {
		c.noAuth++
	}
	c.perUser[user]++
	c.mu.Unlock()
}

func (c *counter) stats() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var most int64
	for _, n := range c.perUser {
		most = max(most, n)
	}
	return map[string]int64{
		"calls":            c.calls,
		"users":            int64(len(c.perUser)),
		"max_per_user":     most,
		"no_authorization": c.noAuth,
	}
}

func (c *counter) reset() {
	c.mu.Lock()
	c.calls, c.noAuth = 0, 0
	c.perUser = make(map[string]int64)
	c.mu.Unlock()
}

func main() {
	listen := flag.String("listen", "127.0.0.1:19101", "loopback address to listen on")
	flag.Parse()

	c := &counter{perUser: make(map[string]int64)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v0/users/{user}/permissions", func(w http.ResponseWriter, r *http.Request) {
		user := r.PathValue("user")
		c.add(user, strings.HasPrefix(r.Header.Get("Authorization"), "Bearer "))
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(dbnlauth.Permissions{
			UserID:         user,
			OrgRole:        "org_reader",
			OrgPermissions: []string{"users.read"},
			Namespaces: []dbnlauth.NamespaceGrant{
				{
					NamespaceID: "ns_1", Role: "namespace_writer",
					Permissions: []string{"projects.read", "projects.write"},
				},
				{NamespaceID: "ns_2", Role: "namespace_reader", Permissions: []string{"projects.read"}},
			},
		})
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(c.stats())
	})
	mux.HandleFunc("POST /reset", func(w http.ResponseWriter, r *http.Request) {
		c.reset()
		w.WriteHeader(http.StatusNoContent)
	})
	if err := serve.Run("usersapi", *listen, mux); err != nil {
		fmt.Fprintln(os.Stderr, "usersapi:", err)
		os.Exit(1)
	}
}
