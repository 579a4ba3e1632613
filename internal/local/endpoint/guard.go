package endpoint

import (
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// Local servers answer only requests addressed to a loopback name (DNS rebinding: a page on
// another site that makes its own name resolve to 127.0.0.1 sends its own name as Host) and
// refuse requests a browser sends from another origin.

// LoopbackHost reports whether hostport (a Host header, with or without a port) names this
// machine by a loopback address: 127.0.0.1 (any 127/8 address), [::1] or localhost.
func LoopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	} else if strings.HasPrefix(hostport, "[") && strings.HasSuffix(hostport, "]") {
		host = strings.Trim(hostport, "[]")
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// SameOrigin reports whether a request's Origin header, if any, is the server's own origin
// (http://<the request's Host>). Requests without Origin (SDKs, curl, same-origin GETs) pass.
func SameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Scheme != "http" || u.Path != "" && u.Path != "/" {
		return false
	}
	return strings.EqualFold(u.Host, r.Host)
}

// GuardProblem says why a request is refused by LoopbackGuard, or "" when it may pass.
func GuardProblem(r *http.Request) string {
	if !LoopbackHost(r.Host) {
		return "only loopback host names are served (127.0.0.1, localhost, [::1]); Host " + quoteHost(r.Host) + " is refused"
	}
	if !SameOrigin(r) {
		return "cross-origin requests are refused (Origin " + quoteHost(r.Header.Get("Origin")) + ")"
	}
	return ""
}

func quoteHost(s string) string {
	const maxShown = 100
	if len(s) > maxShown {
		s = s[:maxShown] + "…"
	}
	return `"` + strings.ToValidUTF8(s, "?") + `"`
}

// LoopbackGuard serves h (the console) only for requests that GuardProblem lets pass; the rest
// answer 403 in the console API's error shape and reach nothing behind it.
func LoopbackGuard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := GuardProblem(r); p != "" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": "Forbidden", "message": p}})
			return
		}
		h.ServeHTTP(w, r)
	})
}
