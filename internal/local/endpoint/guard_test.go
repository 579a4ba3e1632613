package endpoint_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/keyline/keyline/internal/local/endpoint"
)

// TestEndpointRefusesForeignHostAndOrigin: DNS rebinding (a foreign name in Host) and
// cross-origin browser requests are refused with 403 before reaching any service; an SDK
// client on 127.0.0.1 or localhost is served.
func TestEndpointRefusesForeignHostAndOrigin(t *testing.T) {
	srv := httptest.NewServer(endpoint.New(endpoint.Options{Addr: "127.0.0.1:0"}))
	t.Cleanup(srv.Close)
	port := srv.URL[strings.LastIndexByte(srv.URL, ':')+1:]

	// The legitimate path: an SDK client, by IP and by localhost.
	for _, base := range []string{srv.URL, "http://localhost:" + port} {
		c := sts.NewFromConfig(aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(base),
			Credentials: credentials.NewStaticCredentialsProvider("AKIDLOCAL", "secret", "")})
		if _, err := c.GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{}); err != nil {
			t.Fatalf("GetCallerIdentity via %s: %v", base, err)
		}
	}

	call := func(host, origin string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/?Action=GetCallerIdentity", nil)
		if host != "" {
			req.Host = host
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	for _, host := range []string{"attacker.example:" + port, "attacker.example", "127.0.0.1.nip.io:" + port, "192.0.2.2:" + port} {
		if st, body := call(host, ""); st != http.StatusForbidden || !strings.Contains(body, "AccessDenied") {
			t.Errorf("Host %q: %d %s, want 403", host, st, body)
		}
	}
	for _, origin := range []string{"http://attacker.example", "null", "http://localhost:1", "https://127.0.0.1:" + port} {
		if st, body := call("", origin); st != http.StatusForbidden {
			t.Errorf("Origin %q: %d %s, want 403", origin, st, body)
		}
	}
	for _, host := range []string{"127.0.0.1:" + port, "localhost:" + port, "[::1]:" + port} {
		if st, body := call(host, "http://"+host); st != http.StatusOK {
			t.Errorf("Host %q with its own origin: %d %s, want 200", host, st, body)
		}
	}
}

// TestLoopbackGuard: the console's guard answers 403 in the console's error shape and never
// calls what it guards.
func TestLoopbackGuard(t *testing.T) {
	reached := false
	h := endpoint.LoopbackGuard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached = true }))
	for _, c := range []struct {
		host, origin string
		want         int
	}{
		{"127.0.0.1:8080", "", http.StatusOK},
		{"localhost:8080", "http://localhost:8080", http.StatusOK},
		{"[::1]:8080", "", http.StatusOK},
		{"rebind.attacker.example:8080", "", http.StatusForbidden},
		{"127.0.0.1:8080", "http://attacker.example", http.StatusForbidden},
		{"127.0.0.1:8080", "http://127.0.0.1:9999", http.StatusForbidden},
	} {
		reached = false
		req := httptest.NewRequest(http.MethodPost, "http://"+c.host+"/v1/apps", nil)
		req.Host = c.host
		if c.origin != "" {
			req.Header.Set("Origin", c.origin)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != c.want || reached != (c.want == http.StatusOK) {
			t.Errorf("Host %q Origin %q: %d (reached %v), want %d", c.host, c.origin, rec.Code, reached, c.want)
		}
		if c.want == http.StatusForbidden && !strings.Contains(rec.Body.String(), `"code":"Forbidden"`) {
			t.Errorf("Host %q Origin %q: body %s", c.host, c.origin, rec.Body)
		}
	}
}
