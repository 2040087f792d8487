package dbnlauth

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// unitAllDenials lists every denial reason.
var unitAllDenials = []*denial{
	errNoToken, errNotBearer, errManyAuthorization, errQueryToken, errEmptyToken,
	errTokenTooLarge, errMalformed, errEncrypted, errHeaderField, errAlgorithm,
	errUnknownKey, errSignature, errNoExpiry, errExpired, errNotYetValid,
	errIssuedInFuture, errIssuer, errAudience, errClaims, errNoUser,
	errUserNotActive, errAmbiguousNamespace, errUnavailable,
}

func TestDenialWrite(t *testing.T) {
	snake := regexp.MustCompile(`^[a-z]+(_[a-z]+)*$`)
	seen := make(map[string]bool)
	for _, d := range unitAllDenials {
		t.Run(d.reason, func(t *testing.T) {
			if !snake.MatchString(d.reason) || seen[d.reason] {
				t.Errorf("got reason %q, want a unique snake_case name", d.reason)
			}
			seen[d.reason] = true
			if strings.ContainsAny(d.message, "\"\\\r\n") {
				t.Errorf("got message %q, want no quote, backslash or line break (it goes in a header)", d.message)
			}

			w := httptest.NewRecorder()
			d.write(w)
			res := w.Result()

			if res.StatusCode != d.status {
				t.Errorf("got status %d, want %d", res.StatusCode, d.status)
			}
			for name, want := range map[string]string{
				"Content-Type":           "application/json",
				"Cache-Control":          "no-store",
				"X-Content-Type-Options": "nosniff",
				"Content-Length":         strconv.Itoa(w.Body.Len()),
			} {
				if got := res.Header.Get(name); got != want {
					t.Errorf("got %s %q, want %q", name, got, want)
				}
			}

			var body errorBody
			dec := json.NewDecoder(w.Body)
			dec.DisallowUnknownFields()
			if err := dec.Decode(&body); err != nil {
				t.Fatalf("decoding body: %v", err)
			}
			wantCode := map[int]string{
				http.StatusUnauthorized:       "auth_error",
				http.StatusBadRequest:         "bad_request",
				http.StatusServiceUnavailable: "auth_unavailable",
			}[d.status]
			if body.Code != wantCode || body.Message != d.message {
				t.Errorf("got body %+v, want code %q and message %q", body, wantCode, d.message)
			}

			challenge := res.Header.Get("WWW-Authenticate")
			switch {
			case d.status != http.StatusUnauthorized:
				if challenge != "" {
					t.Errorf("got WWW-Authenticate %q on %d, want none", challenge, d.status)
				}
			case d.presented:
				want := `Bearer realm="dbnl", error="invalid_token", error_description="` + d.message + `"`
				if challenge != want {
					t.Errorf("got WWW-Authenticate %q, want %q", challenge, want)
				}
			default:
				if challenge != `Bearer realm="dbnl"` {
					t.Errorf(`got WWW-Authenticate %q, want Bearer realm="dbnl"`, challenge)
				}
			}

			retry := res.Header.Get("Retry-After")
			if d.status == http.StatusServiceUnavailable {
				if retry != "1" {
					t.Errorf("got Retry-After %q, want 1", retry)
				}
			} else if retry != "" {
				t.Errorf("got Retry-After %q on %d, want none", retry, d.status)
			}
		})
	}
}

// TestServeHTTPDenials runs refused requests through the handler and
// checks the answer, that next never ran, that no token reached the
// users API when the token was bad, and that the answer never echoes
// the token.
func TestServeHTTPDenials(t *testing.T) {
	good := signToken(t, "HS256", validClaims("user_123"), nil)
	expired := signToken(t, "HS256", unitClaims("user_123", func(c jwt.MapClaims) {
		c["exp"] = testNow.Add(-time.Hour).Unix()
	}), nil)
	forged := unitSignHMAC(t, "HS256", unitSecond, validClaims("user_123"), nil)
	unknown := signToken(t, "HS256", validClaims("user_unknown"), nil)
	huge := strings.Repeat("A", defaultMaxTokenBytes+1)

	tests := []struct {
		name       string
		request    func() *http.Request
		token      string // the token sent, if any, to look for in the answer
		apiStatus  int
		wantStatus int
		wantCode   string
		wantReason string
		wantCalls  int64
		wantInvTok bool // WWW-Authenticate carries error="invalid_token"
	}{
		{name: "no token", request: func() *http.Request { return bearer("/v0/projects", "") },
			wantStatus: 401, wantCode: "auth_error", wantReason: "missing_token"},
		{name: "basic scheme", request: func() *http.Request {
			r := bearer("/v0/projects", "")
			r.SetBasicAuth("user", "pass")
			return r
		}, wantStatus: 401, wantCode: "auth_error", wantReason: "not_bearer"},
		{name: "two authorization headers", request: func() *http.Request {
			r := bearer("/v0/projects", good)
			r.Header.Add("Authorization", "Bearer "+good)
			return r
		}, token: good, wantStatus: 401, wantCode: "auth_error", wantReason: "multiple_authorization", wantInvTok: true},
		{name: "token in query", request: func() *http.Request {
			return bearer("/v0/projects?access_token="+good, good)
		}, token: good, wantStatus: 401, wantCode: "auth_error", wantReason: "query_token", wantInvTok: true},
		{name: "empty token", request: func() *http.Request {
			r := bearer("/v0/projects", "")
			r.Header.Set("Authorization", "Bearer ")
			return r
		}, wantStatus: 401, wantCode: "auth_error", wantReason: "empty_token", wantInvTok: true},
		{name: "oversized token", request: func() *http.Request { return bearer("/v0/projects", huge) },
			token: huge, wantStatus: 401, wantCode: "auth_error", wantReason: "token_too_large", wantInvTok: true},
		{name: "malformed token", request: func() *http.Request { return bearer("/v0/projects", "not-a-jwt") },
			token: "not-a-jwt", wantStatus: 401, wantCode: "auth_error", wantReason: "malformed", wantInvTok: true},
		{name: "expired token", request: func() *http.Request { return bearer("/v0/projects", expired) },
			token: expired, wantStatus: 401, wantCode: "auth_error", wantReason: "expired", wantInvTok: true},
		{name: "forged signature", request: func() *http.Request { return bearer("/v0/projects", forged) },
			token: forged, wantStatus: 401, wantCode: "auth_error", wantReason: "bad_signature", wantInvTok: true},
		{name: "unknown user", request: func() *http.Request { return bearer("/v0/projects", unknown) },
			token: unknown, wantStatus: 401, wantCode: "auth_error", wantReason: "user_not_active", wantCalls: 1, wantInvTok: true},
		{name: "users api 403", request: func() *http.Request { return bearer("/v0/projects", good) },
			token: good, apiStatus: 403, wantStatus: 401, wantCode: "auth_error", wantReason: "refused_by_users_api", wantCalls: 1, wantInvTok: true},
		{name: "conflicting namespace", request: func() *http.Request {
			return bearer("/v0/projects?namespace_id=ns_1&namespace_id=ns_2", good)
		}, token: good, wantStatus: 400, wantCode: "bad_request", wantReason: "ambiguous_namespace"},
		{name: "users api down", request: func() *http.Request { return bearer("/v0/projects", good) },
			token: good, apiStatus: 500, wantStatus: 503, wantCode: "auth_unavailable", wantReason: "users_api_unavailable", wantCalls: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := newUsersAPI(t)
			api.setFailure(tt.apiStatus, "", 0)
			h := newTestHandler(t, api, nil)

			w, next, repl := serve(t, h, tt.request())
			res := w.Result()

			if next.called {
				t.Errorf("got next called, want it never called on a denial")
			}
			if res.StatusCode != tt.wantStatus {
				t.Errorf("got status %d, want %d", res.StatusCode, tt.wantStatus)
			}
			if got := res.Header.Get("Content-Type"); got != "application/json" {
				t.Errorf("got Content-Type %q, want application/json", got)
			}
			var body errorBody
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatalf("decoding body %q: %v", w.Body, err)
			}
			if body.Code != tt.wantCode || body.Message == "" {
				t.Errorf("got body %+v, want code %q and a message", body, tt.wantCode)
			}
			if got, _ := repl.GetString("dbnl.denial"); got != tt.wantReason {
				t.Errorf("got {dbnl.denial} %q, want %q", got, tt.wantReason)
			}
			if got := api.calls.Load(); got != tt.wantCalls {
				t.Errorf("got %d users-API calls, want %d", got, tt.wantCalls)
			}

			challenge := res.Header.Get("WWW-Authenticate")
			if tt.wantStatus == http.StatusUnauthorized {
				if !strings.HasPrefix(challenge, `Bearer realm="dbnl"`) {
					t.Errorf(`got WWW-Authenticate %q, want it to start with Bearer realm="dbnl"`, challenge)
				}
				if got := strings.Contains(challenge, `error="invalid_token"`); got != tt.wantInvTok {
					t.Errorf("got WWW-Authenticate %q with invalid_token %v, want %v", challenge, got, tt.wantInvTok)
				}
			} else if challenge != "" {
				t.Errorf("got WWW-Authenticate %q on %d, want none", challenge, tt.wantStatus)
			}
			if tt.wantStatus == http.StatusServiceUnavailable {
				if got := res.Header.Get("Retry-After"); got != "1" {
					t.Errorf("got Retry-After %q, want 1", got)
				}
			}

			fp, _ := repl.GetString("dbnl.token_fingerprint")
			if tt.token != "" {
				if strings.Contains(w.Body.String(), tt.token) {
					t.Errorf("got the token in the body %q, want it never echoed", w.Body)
				}
				for name, values := range res.Header {
					if strings.Contains(strings.Join(values, " "), tt.token) {
						t.Errorf("got the token in response header %s, want it never echoed", name)
					}
				}
				for _, part := range strings.Split(tt.token, ".") {
					if len(part) > 8 && strings.Contains(w.Body.String(), part) {
						t.Errorf("got a token segment in the body %q, want none", w.Body)
					}
				}
			}
			if tt.token != "" && tt.wantReason != "multiple_authorization" && tt.wantReason != "query_token" &&
				tt.wantReason != "token_too_large" {
				want, _ := tokenFingerprint(tt.token)
				if fp != want {
					t.Errorf("got {dbnl.token_fingerprint} %q, want %q", fp, want)
				}
			} else if fp != "" {
				t.Errorf("got {dbnl.token_fingerprint} %q before a token was taken, want none", fp)
			}
			for _, name := range []string{"http.auth.user.id", "dbnl.user_id", "dbnl.permissions"} {
				if got, ok := repl.GetString(name); ok || got != "" {
					t.Errorf("got {%s} %q on a denial, want it unset", name, got)
				}
			}
		})
	}
}

// unitObserve replaces h's loggers with one recording every entry.
func unitObserve(h *Handler) *observer.ObservedLogs {
	core, logs := observer.New(zapcore.DebugLevel)
	h.logger = zap.New(core)
	h.resolver.logger = h.logger
	return logs
}

// unitLogText renders every recorded entry, fields included.
func unitLogText(logs *observer.ObservedLogs) string {
	var b strings.Builder
	for _, e := range logs.All() {
		fmt.Fprintf(&b, "%s %s %v\n", e.Level, e.Message, e.ContextMap())
	}
	return b.String()
}

// TestDenyLogs checks that a refused token is logged once, at Debug,
// with its reason, user and fingerprint but never the token.
func TestDenyLogs(t *testing.T) {
	api := newUsersAPI(t)
	h := newTestHandler(t, api, nil)
	logs := unitObserve(h)

	tok := signToken(t, "HS256", validClaims("user_123"), nil)
	serve(t, h, bearer("/v0/projects?namespace_id=a&namespace_id=b", tok))

	entries := logs.All()
	if len(entries) != 1 {
		t.Fatalf("got %d log entries, want 1:\n%s", len(entries), unitLogText(logs))
	}
	e := entries[0]
	if e.Level != zapcore.DebugLevel || e.Message != "request denied" {
		t.Errorf("got %s %q, want debug \"request denied\"", e.Level, e.Message)
	}
	fp, _ := tokenFingerprint(tok)
	fields := e.ContextMap()
	want := map[string]any{
		"reason":            "ambiguous_namespace",
		"status":            int64(400),
		"method":            "GET",
		"user_id":           "user_123",
		"token_id":          "tok-1",
		"token_fingerprint": fp,
	}
	if !reflect.DeepEqual(fields, want) {
		t.Errorf("got fields %v, want %v", fields, want)
	}
	if strings.Contains(unitLogText(logs), tok) {
		t.Errorf("got the token in the log, want only its fingerprint")
	}
}

// TestDenyLogsWithoutToken checks the log of a request without a
// token: no user, no fingerprint.
func TestDenyLogsWithoutToken(t *testing.T) {
	h := newTestHandler(t, newUsersAPI(t), nil)
	logs := unitObserve(h)
	serve(t, h, bearer("/v0/projects", ""))
	entries := logs.All()
	if len(entries) != 1 {
		t.Fatalf("got %d log entries, want 1", len(entries))
	}
	fields := entries[0].ContextMap()
	for _, name := range []string{"user_id", "token_id", "token_fingerprint"} {
		if _, ok := fields[name]; ok {
			t.Errorf("got field %s in %v, want none without a token", name, fields)
		}
	}
	if got := fields["reason"]; got != "missing_token" {
		t.Errorf("got reason %v, want missing_token", got)
	}
}

// TestLookupFailureLogs checks that a users-API failure is logged at
// Error, with the user and status, and that neither the token nor the
// lookup URL appears.
func TestLookupFailureLogs(t *testing.T) {
	// a server of ours that drops every connection without answering
	dropper := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	t.Cleanup(dropper.Close)

	tests := []struct {
		name       string
		status     int
		delay      time.Duration
		url        string // permissions_url, if not the stub
		wantStatus int64
		wantErr    string
	}{
		{name: "status 500", status: 500, wantStatus: 500, wantErr: "unexpected status"},
		{name: "connection dropped", url: dropper.URL + "/v0/users/{user}/permissions", wantErr: "connection closed by the users API"},
		{name: "timeout", delay: 2 * time.Second, wantErr: "timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := newUsersAPI(t)
			api.setFailure(tt.status, "", tt.delay)
			h := newTestHandler(t, api, func(h *Handler) {
				h.PermissionsTimeout = caddy.Duration(100 * time.Millisecond)
				if tt.url != "" {
					h.PermissionsURL = tt.url
				}
			})
			logs := unitObserve(h)
			tok := signToken(t, "HS256", validClaims("user_123"), nil)
			w, _, _ := serve(t, h, bearer("/v0/projects", tok))
			if w.Code != http.StatusServiceUnavailable {
				t.Fatalf("got status %d, want 503", w.Code)
			}

			failures := logs.FilterMessage("permissions lookup failed").All()
			if len(failures) != 1 {
				t.Fatalf("got %d failure entries, want 1:\n%s", len(failures), unitLogText(logs))
			}
			e := failures[0]
			fields := e.ContextMap()
			if e.Level != zapcore.ErrorLevel {
				t.Errorf("got level %s, want error", e.Level)
			}
			if fields["user_id"] != "user_123" || fields["status"] != tt.wantStatus {
				t.Errorf("got fields %v, want user_id user_123 and status %d", fields, tt.wantStatus)
			}
			if msg, _ := fields["error"].(string); !strings.Contains(msg, tt.wantErr) {
				t.Errorf("got error field %q, want it to contain %q", msg, tt.wantErr)
			}
			text := unitLogText(logs)
			if strings.Contains(text, tok) || strings.Contains(text, "/v0/users/") {
				t.Errorf("got the token or the lookup URL in the log:\n%s", text)
			}
		})
	}
}
