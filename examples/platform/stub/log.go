package stub

import (
	"io"
	"net/http"
	"time"
)

// logRequests wraps next so that every request is logged as one line
// once it has been answered. Authorization is never logged.
func (s *server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		body := &countingReader{ReadCloser: r.Body}
		r.Body = body

		next.ServeHTTP(rec, r)

		s.logger.Info("request",
			"method", r.Method,
			"path", r.URL.Path,
			"query", r.URL.RawQuery,
			"status", rec.status,
			"bytes_in", body.n,
			"bytes_out", rec.n,
			"duration", time.Since(start).Round(time.Microsecond),
			"user_id", r.Header.Get(s.prefix+"User-Id"),
		)
	})
}

// recorder notes the status and body size of a response.
type recorder struct {
	http.ResponseWriter
	status      int
	n           int64
	wroteHeader bool
}

// WriteHeader records the status and passes it on.
func (rec *recorder) WriteHeader(status int) {
	if !rec.wroteHeader {
		rec.status, rec.wroteHeader = status, true
	}
	rec.ResponseWriter.WriteHeader(status)
}

// Write counts the bytes written and passes them on.
func (rec *recorder) Write(p []byte) (int, error) {
	rec.wroteHeader = true
	n, err := rec.ResponseWriter.Write(p)
	rec.n += int64(n)
	return n, err
}

// Flush passes a flush on when the underlying writer supports it.
func (rec *recorder) Flush() {
	if f, ok := rec.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer, which
// /v0/echo needs for full duplex.
func (rec *recorder) Unwrap() http.ResponseWriter {
	return rec.ResponseWriter
}

// countingReader counts the bytes read from a request body.
type countingReader struct {
	io.ReadCloser
	n int64
}

// Read counts the bytes read.
func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n += int64(n)
	return n, err
}
