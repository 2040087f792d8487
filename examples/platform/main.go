// Command platform is a stand-in for the dbnl platform API, used by the
// dbnl-gateway quick-start demo (examples/demo.sh) and for trying the
// gateway by hand:
//
//	go run ./examples/platform -listen 127.0.0.1:9080 -users examples/platform/users.json
//
// It serves the users API the gateway reads permissions from and a few
// endpoints that report what the gateway forwarded; see package stub for
// the routes. Roles change while it runs in two ways: edit the users file
// (it is re-read when its modification time or size changes, checked at
// most once per -reload-interval, on the next request), or call
// PUT /v0/admin/users/{user} through the gateway as a user holding
// users.write. Admin changes live in memory until the file is next
// reloaded.
//
// The stand-in trusts the X-Dbnl-* headers it receives. Listen on a
// loopback address only, so nothing reaches it but the gateway.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/dbnlai/dbnl-gateway/examples/platform/stub"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "platform:", err)
		os.Exit(1)
	}
}

// run parses args, serves until SIGINT or SIGTERM, then shuts down.
func run(args []string) error {
	fs := flag.NewFlagSet("platform", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:9080", "address to listen on")
	usersPath := fs.String("users", "examples/platform/users.json", "users file (JSON)")
	prefix := fs.String("header-prefix", stub.DefaultHeaderPrefix,
		"prefix of the trusted headers the gateway injects")
	interval := fs.Duration("reload-interval", time.Second,
		"how often at most to check the users file for changes; 0 checks on every request, negative never")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}

	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	users, err := stub.LoadDirectory(*usersPath, *interval, logger)
	if err != nil {
		return err
	}
	handler := stub.NewHandler(stub.Config{
		Users:        users,
		HeaderPrefix: *prefix,
		Logger:       logger,
	})

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}

	// serve until a signal arrives, then give requests in flight a moment
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	logger.Info("platform listening", "addr", ln.Addr().String(), "users", *usersPath)

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("platform shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		// requests still streaming after the grace period are cut off
		if errors.Is(err, context.DeadlineExceeded) {
			return srv.Close()
		}
		return err
	}
	return nil
}
