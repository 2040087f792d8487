// Command upstream is the load test's stand-in for the dbnl platform
// API: it answers every request at once with a small JSON body. A
// request carrying X-Load-Echo gets the identity headers it arrived
// with echoed back, so a run can check that the gateway set them; the
// load itself does not send it, so that every setup gets the same
// response.
//
//	go run ./examples/load/upstream -listen 127.0.0.1:19100
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"

	"github.com/dbnlai/dbnl-gateway/examples/load/internal/serve"
)

// body is what every request gets, about the size of a short list.
const body = `{"projects":[{"id":"proj_1","name":"load"}],"next":null}` + "\n"

func main() {
	listen := flag.String("listen", "127.0.0.1:19100", "loopback address to listen on")
	flag.Parse()

	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// the identity headers come back with an X-Seen- prefix
		if r.Header.Get("X-Load-Echo") != "" {
			w.Header().Set("X-Seen-User-Id", r.Header.Get("X-Dbnl-User-Id"))
			w.Header().Set("X-Seen-Permissions", r.Header.Get("X-Dbnl-Permissions"))
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	})
	if err := serve.Run("upstream", *listen, h); err != nil {
		fmt.Fprintln(os.Stderr, "upstream:", err)
		os.Exit(1)
	}
}
