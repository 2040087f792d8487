package stub

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRequestLog(t *testing.T) {
	var buf syncBuffer
	logger := slog.New(slog.NewTextHandler(&buf, nil))
	srv := httptest.NewServer(NewHandler(Config{Users: newTestDirectory(t), Logger: logger}))
	t.Cleanup(srv.Close)

	do(t, "GET", srv.URL+"/v0/users/user_123/permissions", "", "Authorization: Bearer secret-token-value")
	do(t, "POST", srv.URL+"/v0/upload", "12345", "X-Dbnl-User-Id: user_123")
	do(t, "GET", srv.URL+"/v0/projects", "")
	srv.Close() // wait for the handlers to finish

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d log lines, want 3:\n%s", len(lines), buf.String())
	}
	for i, want := range []string{
		"method=GET path=/v0/users/user_123/permissions",
		"method=POST path=/v0/upload",
		"method=GET path=/v0/projects",
	} {
		if !strings.Contains(lines[i], want) {
			t.Errorf("line %d: got %q, want it to contain %q", i, lines[i], want)
		}
	}
	if !strings.Contains(lines[1], "bytes_in=5") || !strings.Contains(lines[1], "user_id=user_123") {
		t.Errorf("line 1: got %q, want bytes_in=5 and user_id=user_123", lines[1])
	}
	if !strings.Contains(lines[2], "status=401") {
		t.Errorf("line 2: got %q, want status=401", lines[2])
	}
	if strings.Contains(buf.String(), "secret-token-value") {
		t.Error("log: got the Authorization value, want it never logged")
	}
}

// TestRecorderKeepsFullDuplex checks that the logging wrapper still lets
// /v0/echo reach the connection's full-duplex switch.
func TestRecorderKeepsFullDuplex(t *testing.T) {
	var buf syncBuffer
	srv := httptest.NewServer(NewHandler(Config{
		Users:  newTestDirectory(t),
		Logger: slog.New(slog.NewTextHandler(&buf, nil)),
	}))
	t.Cleanup(srv.Close)

	data := bytes.Repeat([]byte("0123456789abcdef"), bigBody/16)
	resp, err := http.Post(srv.URL+"/v0/echo", "application/octet-stream", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got bytes.Buffer
	if _, err := got.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Errorf("echo through the logger: got %d bytes differing from the %d sent", got.Len(), len(data))
	}
}
