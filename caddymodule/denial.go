package dbnlauth

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// denial is a reason to refuse a request. Its message is written for
// the client: it never holds the token, a secret or text taken from the
// request.
type denial struct {
	// status is the HTTP status the client gets.
	status int
	// reason is a short snake_case name for logs and metrics.
	reason string
	// message is the sentence sent to the client.
	message string
	// presented is true when the client sent a token, so the
	// WWW-Authenticate challenge carries error="invalid_token".
	presented bool
}

func (d *denial) Error() string { return d.message }

// Denial reasons. Callers tell them apart with errors.Is.
var (
	errNoToken = &denial{http.StatusUnauthorized, "missing_token",
		"missing bearer token", false}
	errNotBearer = &denial{http.StatusUnauthorized, "not_bearer",
		"authorization scheme must be Bearer", false}
	errManyAuthorization = &denial{http.StatusUnauthorized, "multiple_authorization",
		"more than one Authorization header", true}
	errQueryToken = &denial{http.StatusUnauthorized, "query_token",
		"access tokens are accepted only in the Authorization header", true}
	errEmptyToken = &denial{http.StatusUnauthorized, "empty_token",
		"empty bearer token", true}
	errTokenTooLarge = &denial{http.StatusUnauthorized, "token_too_large",
		"token too large", true}
	errMalformed = &denial{http.StatusUnauthorized, "malformed",
		"malformed token", true}
	errEncrypted = &denial{http.StatusUnauthorized, "encrypted",
		"encrypted tokens are not accepted", true}
	errHeaderField = &denial{http.StatusUnauthorized, "header_field",
		"token header carries a field that is not accepted", true}
	errAlgorithm = &denial{http.StatusUnauthorized, "algorithm",
		"token algorithm not accepted", true}
	errUnknownKey = &denial{http.StatusUnauthorized, "unknown_kid",
		"unknown key id", true}
	errSignature = &denial{http.StatusUnauthorized, "bad_signature",
		"token signature is invalid", true}
	errNoExpiry = &denial{http.StatusUnauthorized, "missing_exp",
		"token has no expiry", true}
	errExpired = &denial{http.StatusUnauthorized, "expired",
		"token expired", true}
	errNotYetValid = &denial{http.StatusUnauthorized, "not_yet_valid",
		"token not yet valid", true}
	errIssuedInFuture = &denial{http.StatusUnauthorized, "issued_in_future",
		"token issued in the future", true}
	errIssuer = &denial{http.StatusUnauthorized, "wrong_issuer",
		"token issuer not accepted", true}
	errAudience = &denial{http.StatusUnauthorized, "wrong_audience",
		"token audience not accepted", true}
	errClaims = &denial{http.StatusUnauthorized, "bad_claims",
		"token claims are malformed", true}
	errNoUser = &denial{http.StatusUnauthorized, "missing_user",
		"token names no user", true}
	errUserNotActive = &denial{http.StatusUnauthorized, "user_not_active",
		"user not active", true}
	errTokenRefused = &denial{http.StatusUnauthorized, "refused_by_users_api",
		"user not active", true}
	errAmbiguousNamespace = &denial{http.StatusBadRequest, "ambiguous_namespace",
		"conflicting namespace_id parameters", true}
	errBadQuery = &denial{http.StatusBadRequest, "bad_query",
		"malformed query string", true}
	errUnavailable = &denial{http.StatusServiceUnavailable, "users_api_unavailable",
		"permissions service unavailable, try again shortly", true}
)

// retryAfterSeconds is the Retry-After sent with a 503.
const retryAfterSeconds = 1

// errorBody is the JSON shape of every denial; the dbnl SDK reads code.
type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// write sends the denial to the client.
func (d *denial) write(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")

	code := "auth_error"
	switch d.status {
	case http.StatusUnauthorized:
		challenge := `Bearer realm="dbnl"`
		if d.presented {
			// the message is one of ours: it has no quote or backslash
			challenge += `, error="invalid_token", error_description="` + d.message + `"`
		}
		h.Set("WWW-Authenticate", challenge)
	case http.StatusBadRequest:
		code = "bad_request"
	case http.StatusServiceUnavailable:
		code = "auth_unavailable"
		h.Set("Retry-After", strconv.Itoa(retryAfterSeconds))
	}

	body, _ := json.Marshal(errorBody{Code: code, Message: d.message})
	body = append(body, '\n')
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(d.status)
	_, _ = w.Write(body)
}
