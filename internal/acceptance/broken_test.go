package acceptance

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/keyline/keyline/internal/console/api"
)

// brokenConsole puts a proxy in front of the run's console that breaks one rule the way a
// real defect would, and returns a run whose clients go through it (same org, same system).
func brokenConsole(t *testing.T, r *demoRun, breakIt func(req *http.Request, status int, body []byte) (int, []byte)) *demoRun {
	t.Helper()
	target, err := url.Parse(r.sys.ConsoleURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(res *http.Response) error {
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			return err
		}
		status, body := breakIt(res.Request, res.StatusCode, body)
		res.StatusCode = status
		res.Status = http.StatusText(status)
		res.Body = io.NopCloser(bytes.NewReader(body))
		res.ContentLength = int64(len(body))
		res.Header.Del("Content-Length")
		return nil
	}
	srv := httptest.NewServer(proxy)
	t.Cleanup(srv.Close)
	b := &demoRun{sys: r.sys, orgID: r.orgID, account: r.account, kms: r.kms, s3: r.s3, sfn: r.sfn, lambda: r.lambda}
	b.sys.ConsoleURL = srv.URL
	b.op = &api.Client{Base: srv.URL, Token: r.op.Token, HTTP: r.op.HTTP}
	b.org = &api.Client{Base: srv.URL, Token: r.org.Token, HTTP: r.org.HTTP}
	b.seq.Store(r.seq.Add(1000))
	return b
}

func mustFail(t *testing.T, id string, check func(context.Context, *demoRun) (string, error), r *demoRun) {
	t.Helper()
	detail, err := check(context.Background(), r)
	if err == nil {
		t.Fatalf("%s passed against a broken variant: %s", id, detail)
	}
	if !errors.Is(err, errRule) {
		t.Fatalf("%s failed for another reason than the rule: %v", id, err)
	}
	t.Logf("%s against the broken variant: %v", id, err)
}

// B9's check fails when a layer keeps serving what it read before the revocation (the
// defect of a data-key cache that never expires and a read path that ignores the app's state).
func TestRuleB9CheckFailsWhenRevokedDataIsServed(t *testing.T) {
	r := rulesSystem(t)
	var mu sync.Mutex
	seen := map[string][]byte{}
	b := brokenConsole(t, r, func(req *http.Request, status int, body []byte) (int, []byte) {
		if req.Method != http.MethodGet || !strings.Contains(req.URL.Path, "/objects/") {
			return status, body
		}
		mu.Lock()
		defer mu.Unlock()
		if status == http.StatusOK {
			seen[req.URL.Path] = body
			return status, body
		}
		if old, ok := seen[req.URL.Path]; ok && status == http.StatusConflict {
			return http.StatusOK, old
		}
		return status, body
	})
	mustFail(t, "B9", checkB9, b)
}

// B9's check fails when the refusal is a server error.
func TestRuleB9CheckFailsOn5xx(t *testing.T) {
	r := rulesSystem(t)
	b := brokenConsole(t, r, func(req *http.Request, status int, body []byte) (int, []byte) {
		if status == http.StatusConflict && strings.Contains(req.URL.Path, "/objects/") {
			return http.StatusInternalServerError, []byte(`{"error":{"code":"InternalError","message":"internal error"}}`)
		}
		return status, body
	})
	mustFail(t, "B9", checkB9, b)
}

// B10's check fails when an org may create an app on another org's key (the refusal
// missing), and when the refusal is a 5xx.
func TestRuleB10CheckFailsWithoutRefusal(t *testing.T) {
	r := rulesSystem(t)
	for name, forged := range map[string]int{"accepted": http.StatusCreated, "5xx": http.StatusBadGateway} {
		t.Run(name, func(t *testing.T) {
			b := brokenConsole(t, r, func(req *http.Request, status int, body []byte) (int, []byte) {
				if req.Method == http.MethodPost && req.URL.Path == "/v1/apps" && (status == http.StatusUnprocessableEntity || status == http.StatusForbidden) {
					return forged, []byte(`{}`)
				}
				return status, body
			})
			mustFail(t, "B10", checkB10, b)
		})
	}
}
