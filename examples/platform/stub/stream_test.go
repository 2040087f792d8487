package stub

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strconv"
	"testing"
)

func TestPatternReader(t *testing.T) {
	for _, n := range []int64{0, 1, 250, 251, 252, 100_000} {
		got, err := io.ReadAll(NewPatternReader(n))
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(got)) != n {
			t.Fatalf("n=%d: got %d bytes, want %d", n, len(got), n)
		}
		for i, b := range got {
			if b != PatternByte(int64(i)) {
				t.Fatalf("n=%d: byte %d: got %d, want %d", n, i, b, PatternByte(int64(i)))
			}
		}
	}

	// odd read sizes must continue the pattern where the last read ended
	pr := NewPatternReader(1000)
	var all []byte
	buf := make([]byte, 7)
	for {
		n, err := pr.Read(buf)
		all = append(all, buf[:n]...)
		if err == io.EOF {
			break
		}
	}
	want, _ := io.ReadAll(NewPatternReader(1000))
	if !bytes.Equal(all, want) {
		t.Error("reading 7 bytes at a time: got a different stream, want the same pattern")
	}
}

// bigBody is larger than any buffer on the way, so a stream that is
// buffered whole or cut short shows.
const bigBody = 5<<20 + 13

func TestUpload(t *testing.T) {
	srv := newTestServer(t, newTestDirectory(t))

	data := make([]byte, bigBody)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)

	req, err := http.NewRequest("POST", srv.URL+"/v0/upload", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Dbnl-User-Id", "user_123")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status: got %d, want 200 (body %s)", resp.StatusCode, body)
	}
	var got UploadResult
	decode(t, body, &got)
	want := UploadResult{Bytes: bigBody, SHA256: hex.EncodeToString(sum[:]), UserID: "user_123"}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestEcho(t *testing.T) {
	srv := newTestServer(t, newTestDirectory(t))

	for name, length := range map[string]int64{"known length": bigBody, "chunked": -1} {
		t.Run(name, func(t *testing.T) {
			data := make([]byte, bigBody)
			if _, err := rand.Read(data); err != nil {
				t.Fatal(err)
			}
			req, err := http.NewRequest("PUT", srv.URL+"/v0/echo", io.NopCloser(bytes.NewReader(data)))
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = length
			req.Header.Set("Content-Type", "application/x-test")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status: got %d, want 200", resp.StatusCode)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/x-test" {
				t.Errorf("Content-Type: got %q, want application/x-test", ct)
			}
			if !bytes.Equal(got, data) {
				t.Errorf("body: got %d bytes differing from the %d sent", len(got), len(data))
			}
		})
	}
}

func TestDownload(t *testing.T) {
	srv := newTestServer(t, newTestDirectory(t))

	for _, n := range []int64{0, 1, bigBody} {
		t.Run(strconv.FormatInt(n, 10), func(t *testing.T) {
			resp, body := do(t, "GET", srv.URL+"/v0/download?bytes="+strconv.FormatInt(n, 10), "")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status: got %d, want 200", resp.StatusCode)
			}
			if resp.ContentLength != n {
				t.Errorf("Content-Length: got %d, want %d", resp.ContentLength, n)
			}
			want, _ := io.ReadAll(NewPatternReader(n))
			if !bytes.Equal(body, want) {
				t.Errorf("body: got %d bytes not matching the pattern, want %d", len(body), n)
			}
		})
	}

	for _, q := range []string{"", "?bytes=", "?bytes=-1", "?bytes=ten"} {
		t.Run("bad "+q, func(t *testing.T) {
			resp, body := do(t, "GET", srv.URL+"/v0/download"+q, "")
			wantError(t, resp, body, http.StatusBadRequest, "bad_request")
		})
	}
}
