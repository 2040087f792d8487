package stub

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strconv"
)

// patternPeriod is the period of the download pattern, a prime so that
// the pattern does not line up with buffer sizes.
const patternPeriod = 251

// PatternByte returns the byte at offset i of a /v0/download stream:
// i mod 251.
func PatternByte(i int64) byte {
	return byte(i % patternPeriod)
}

// NewPatternReader returns a reader of the first n bytes of the download
// pattern, so a test can compute what /v0/download?bytes=n must return.
func NewPatternReader(n int64) io.Reader {
	return &patternReader{n: n}
}

// patternReader yields PatternByte(0), PatternByte(1), ... up to n bytes.
type patternReader struct {
	off, n int64
}

// Read fills p with the next bytes of the pattern.
func (pr *patternReader) Read(p []byte) (int, error) {
	if pr.off >= pr.n {
		return 0, io.EOF
	}
	if rest := pr.n - pr.off; int64(len(p)) > rest {
		p = p[:rest]
	}
	b := byte(pr.off % patternPeriod)
	for i := range p {
		p[i] = b
		if b++; b == patternPeriod {
			b = 0
		}
	}
	pr.off += int64(len(p))
	return len(p), nil
}

// UploadResult is the answer of /v0/upload.
type UploadResult struct {
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
	UserID string `json:"user_id"`
}

// upload hashes the request body as it streams in and reports its length
// and SHA-256. The trusted user id, if any, is reported too; the endpoint
// checks no permission.
func (s *server) upload(w http.ResponseWriter, r *http.Request) {
	h := sha256.New()
	n, err := io.Copy(h, r.Body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "reading body: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, UploadResult{
		Bytes:  n,
		SHA256: hex.EncodeToString(h.Sum(nil)),
		UserID: r.Header.Get(s.prefix + "User-Id"),
	})
}

// echo streams the request body back as the response body. It asks for
// full duplex so an HTTP/1 client may read the answer while it is still
// sending; a proxy in between must allow that too (Caddy's
// enable_full_duplex server option), else prefer /v0/upload for large
// bodies.
func (s *server) echo(w http.ResponseWriter, r *http.Request) {
	_ = http.NewResponseController(w).EnableFullDuplex()

	ct := r.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/octet-stream"
	}
	w.Header().Set("Content-Type", ct)
	if r.ContentLength >= 0 {
		w.Header().Set("Content-Length", strconv.FormatInt(r.ContentLength, 10))
	}
	w.WriteHeader(http.StatusOK)

	// nothing useful can be sent once the status is out; a short copy
	// shows up to the client as a truncated body
	buf := make([]byte, 32<<10)
	_, _ = io.CopyBuffer(writerOnly{w}, r.Body, buf)
}

// download streams the first N bytes of the download pattern, N given by
// the bytes query parameter.
func (s *server) download(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.ParseInt(r.URL.Query().Get("bytes"), 10, 64)
	if err != nil || n < 0 {
		writeError(w, http.StatusBadRequest, "bad_request",
			"bytes must be a non-negative integer")
		return
	}

	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	buf := make([]byte, 32<<10)
	_, _ = io.CopyBuffer(writerOnly{w}, NewPatternReader(n), buf)
}

// writerOnly hides every method but Write, so io.CopyBuffer uses the
// buffer it is given instead of the response's ReadFrom.
type writerOnly struct {
	io.Writer
}
