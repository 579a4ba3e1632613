package acceptance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyline/keyline/internal/console/api"
)

// A broken variant of keyline breaks one rule the way a real defect would; each rule's check
// must fail against it (and for the rule's reason, not for another). Most variants sit in
// front of the console as a proxy: they rewrite a request before it reaches keyline, answer
// in keyline's place (a fake that ignores the rule), or rewrite keyline's answer (a defect
// that reports what did not happen). The B3 variant tampers with event deliveries instead.
type variant struct {
	// request may rewrite a request before it reaches the console.
	request func(req *http.Request)
	// serve may answer a request in the console's place; it returns false to pass it on.
	serve func(w http.ResponseWriter, req *http.Request, console *api.Client) bool
	// response may rewrite the console's answer.
	response func(req *http.Request, status int, body []byte) (int, []byte)
	// deliver, when set, replaces the delivery of key events.
	deliver func(r *demoRun) func(ctx context.Context, event []byte) error
}

// broken returns a run whose clients go through the variant (same org, same system).
func broken(t *testing.T, r *demoRun, v variant) *demoRun {
	t.Helper()
	target, err := url.Parse(r.sys.ConsoleURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	director := proxy.Director
	proxy.Director = func(req *http.Request) {
		director(req)
		if v.request != nil {
			v.request(req)
		}
	}
	proxy.ModifyResponse = func(res *http.Response) error {
		if v.response == nil {
			return nil
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			return err
		}
		status, body := v.response(res.Request, res.StatusCode, body)
		res.StatusCode = status
		res.Status = http.StatusText(status)
		res.Body = io.NopCloser(bytes.NewReader(body))
		res.ContentLength = int64(len(body))
		res.Header.Set("Content-Length", strconv.Itoa(len(body)))
		return nil
	}
	real := &api.Client{Base: r.sys.ConsoleURL, HTTP: &http.Client{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if v.serve != nil {
			tok, _ := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
			if v.serve(w, req, real.As(tok)) {
				return
			}
		}
		proxy.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	b := r.fork()
	b.sys.ConsoleURL = srv.URL
	b.op = &api.Client{Base: srv.URL, Token: r.op.Token, HTTP: b.op.HTTP}
	b.org = &api.Client{Base: srv.URL, Token: r.org.Token, HTTP: b.org.HTTP}
	if v.deliver != nil {
		b.deliver = v.deliver(b)
	}
	return b
}

// mustFail runs the check of rule id against a broken run: it must fail for the rule
// (errRule) and say why (want, when set).
func mustFail(t *testing.T, id string, r *demoRun, want string) {
	t.Helper()
	var rc ruleCheck
	for _, c := range ruleChecks() {
		if c.ID == id {
			rc = c
		}
	}
	if rc.Check == nil {
		t.Fatalf("no check for %s", id)
	}
	detail, err := runCheck(context.Background(), r, rc)
	if err == nil {
		t.Fatalf("%s passed against a broken variant: %s", id, detail)
	}
	if !errors.Is(err, errRule) {
		t.Fatalf("%s failed for another reason than the rule: %v", id, err)
	}
	if want != "" && !strings.Contains(err.Error(), want) {
		t.Fatalf("%s failed, but not because of %q: %v", id, want, err)
	}
	t.Logf("%s against the broken variant: %v", id, err)
}

// appOf returns the app id of a console path /v1/apps/{id}/... ("" otherwise).
func appOf(path string) string {
	rest, ok := strings.CutPrefix(path, "/v1/apps/")
	if !ok {
		return ""
	}
	id, _, _ := strings.Cut(rest, "/")
	return id
}

// isApp tells whether a request concerns an app whose id starts with prefix and, when
// suffix is set, whether its path ends so (after the app id).
func isApp(req *http.Request, method, prefix, suffix string) bool {
	id := appOf(req.URL.Path)
	if id == "" || !strings.HasPrefix(id, prefix) || (method != "" && req.Method != method) {
		return false
	}
	rest := strings.TrimPrefix(req.URL.Path, "/v1/apps/"+id)
	if suffix == "" {
		return rest == ""
	}
	return strings.HasPrefix(rest, suffix)
}

// rewriteJSON decodes body into v, applies f and encodes it again (unchanged on error).
func rewriteJSON[T any](body []byte, f func(*T)) []byte {
	var v T
	if json.Unmarshal(body, &v) != nil {
		return body
	}
	f(&v)
	out, err := json.Marshal(v)
	if err != nil {
		return body
	}
	return out
}

func writeJSONAnswer(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// R1: an app asked for with the customer's key is silently created provider-managed.
func TestRuleR1CheckFailsOnFallbackAtCreation(t *testing.T) {
	b := broken(t, alongside(t, "R1"), variant{request: func(req *http.Request) {
		if req.Method != http.MethodPost || req.URL.Path != "/v1/apps" {
			return
		}
		body, _ := io.ReadAll(req.Body)
		body = rewriteJSON(body, func(m *map[string]string) {
			if strings.HasPrefix((*m)["appId"], "r1-cmk") {
				(*m)["keyModel"] = "managed"
				delete(*m, "keyArn")
			}
		})
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.ContentLength = int64(len(body))
	}})
	mustFail(t, "R1", b, "lineage")
}

// R1: a CMK app's data is sealed under the provider key at rest (the scope falls back).
func TestRuleR1CheckFailsWhenCMKDataIsSealedUnderTheProviderKey(t *testing.T) {
	b := broken(t, alongside(t, "R1"), variant{request: func(req *http.Request) {
		if isApp(req, http.MethodPut, "r1-cmk", "/objects/") && req.Header.Get("X-Keyline-Scope") == "cmk" {
			req.Header.Set("X-Keyline-Scope", "managed")
		}
	}})
	mustFail(t, "R1", b, "at rest")
}

// R2: the backup listed as taken under the new key is one sealed under the old one.
func TestRuleR2CheckFailsWhenTheBackupAtRestIsUnderAnotherKey(t *testing.T) {
	b := broken(t, alongside(t, "R2"), variant{response: func(req *http.Request, status int, body []byte) (int, []byte) {
		if status != http.StatusOK || !isApp(req, http.MethodGet, "r2-", "/backups") {
			return status, body
		}
		return status, rewriteJSON(body, func(bs *[]map[string]any) {
			if n := len(*bs); n >= 2 {
				(*bs)[n-1]["backupId"] = (*bs)[0]["backupId"]
			}
		})
	}})
	mustFail(t, "R2", b, "sealed at rest under generation 1")
}

// R3: a CMK backup is accepted for a restore into a provider-managed app.
func TestRuleR3CheckFailsWhenACMKBackupRestoresIntoAManagedApp(t *testing.T) {
	b := broken(t, alongside(t, "R3"), variant{serve: func(w http.ResponseWriter, req *http.Request, _ *api.Client) bool {
		if !isApp(req, http.MethodPost, "r3-managed", "/restores") {
			return false
		}
		writeJSONAnswer(w, http.StatusAccepted, map[string]string{"executionArn": "arn:aws:states:us-east-1:000000000000:execution:fake:r3"})
		return true
	}})
	mustFail(t, "R3", b, "want 422")
}

// R4: a "re-encryption" that rewrites every CMK-scope object under the old key: the bytes at
// rest change, the key does not (what a bytes-changed check cannot tell apart).
func TestRuleR4CheckFailsWhenObjectsAreResealedUnderTheOldKey(t *testing.T) {
	r := alongside(t, "R4")
	const fakeArn = "arn:aws:states:us-east-1:000000000000:execution:fake:r4"
	b := broken(t, r, variant{serve: func(w http.ResponseWriter, req *http.Request, console *api.Client) bool {
		switch {
		case req.Method == http.MethodGet && req.URL.Path == "/v1/executions/"+fakeArn:
			writeJSONAnswer(w, http.StatusOK, map[string]string{"status": "SUCCEEDED"})
			return true
		case !isApp(req, http.MethodPost, "r4-", "/reencryptions"):
			return false
		}
		app := appOf(req.URL.Path)
		raw, err := r.rawObjects(req.Context(), app, "cmk")
		if err == nil {
			for k := range raw {
				path := strings.TrimPrefix(k, "apps/"+app+"/cmk/")
				if err = console.Expect(req.Context(), http.StatusCreated, "PUT", "/v1/apps/"+app+"/objects/"+path, objectContent(app, path), nil, "X-Keyline-Scope", "cmk"); err != nil {
					break
				}
			}
		}
		if err != nil {
			writeJSONAnswer(w, http.StatusBadRequest, map[string]any{"error": map[string]string{"code": "Fake", "message": err.Error()}})
			return true
		}
		writeJSONAnswer(w, http.StatusAccepted, map[string]string{"executionArn": fakeArn})
		return true
	}})
	mustFail(t, "R4", b, "sealed at rest under generation 1")
}

// R5: the backup skipped during a re-encryption is not recorded.
func TestRuleR5CheckFailsWhenTheSkipIsNotRecorded(t *testing.T) {
	b := broken(t, alongside(t, "R5"), variant{response: func(req *http.Request, status int, body []byte) (int, []byte) {
		if status != http.StatusOK || !isApp(req, http.MethodGet, "r5-", "/audit") {
			return status, body
		}
		return status, rewriteJSON(body, func(es *[]map[string]any) {
			kept := (*es)[:0]
			for _, e := range *es {
				if e["action"] != "backup.skipped" {
					kept = append(kept, e)
				}
			}
			*es = kept
		})
	}})
	mustFail(t, "R5", b, "backup.skipped")
}

// R6: backups under the old key stay restorable after the re-encryption.
func TestRuleR6CheckFailsWhenOldBackupsStayRestorable(t *testing.T) {
	b := broken(t, alongside(t, "R6"), variant{response: func(req *http.Request, status int, body []byte) (int, []byte) {
		if status != http.StatusOK || !isApp(req, http.MethodGet, "r6-", "/backups") {
			return status, body
		}
		return status, rewriteJSON(body, func(bs *[]map[string]any) {
			for _, x := range *bs {
				x["restorable"], x["reason"] = true, ""
			}
		})
	}})
	mustFail(t, "R6", b, "not restorable")
}

// R7: a restore under an unusable key is refused with a message that mentions a key but
// no reason code (the refusal the old check, looking for a word, accepted).
func TestRuleR7CheckFailsWithoutTheReasonCode(t *testing.T) {
	b := broken(t, alongside(t, "R7"), variant{response: func(req *http.Request, status int, body []byte) (int, []byte) {
		if (status == http.StatusConflict || status == http.StatusUnprocessableEntity) && isApp(req, http.MethodPost, "r7-", "/restores") {
			return status, []byte(`{"error":{"code":"Conflict","message":"the key is not usable"}}`)
		}
		return status, body
	}})
	mustFail(t, "R7", b, "reason")
}

// R8: a deactivated app still takes on-demand backups.
func TestRuleR8CheckFailsWhenADeactivatedAppBacksUp(t *testing.T) {
	b := broken(t, alongside(t, "R8"), variant{response: func(req *http.Request, status int, body []byte) (int, []byte) {
		if status == http.StatusConflict && isApp(req, http.MethodPost, "r8-", "/backups") {
			return http.StatusAccepted, []byte(`{"executionArn":"arn:aws:states:us-east-1:000000000000:execution:fake:r8"}`)
		}
		return status, body
	}})
	mustFail(t, "R8", b, "want 409")
}

// B1: when key A returns, the backups of generation 1 (on A, retired by the switch to B)
// come back too.
func TestRuleB1CheckFailsWhenTheRetiredGenerationComesBack(t *testing.T) {
	b := broken(t, alongside(t, "B1"), variant{response: func(req *http.Request, status int, body []byte) (int, []byte) {
		if status != http.StatusOK || !isApp(req, http.MethodGet, "b1-aba-", "/backups") {
			return status, body
		}
		return status, rewriteJSON(body, func(bs *[]map[string]any) {
			for _, x := range *bs {
				x["restorable"] = true
			}
		})
	}})
	mustFail(t, "B1", b, "retired generation 1")
}

// B2: without CloudTrail, nothing deactivates the app (KMS errors and key health ignored).
func TestRuleB2CheckFailsWhenKMSErrorsAreIgnored(t *testing.T) {
	b := broken(t, alongside(t, "B2"), variant{response: func(req *http.Request, status int, body []byte) (int, []byte) {
		if status != http.StatusOK || !isApp(req, http.MethodGet, "b2-work-", "") {
			return status, body
		}
		return status, rewriteJSON(body, func(a *map[string]any) {
			(*a)["status"], (*a)["statusReason"] = "ACTIVE", ""
		})
	}})
	mustFail(t, "B2", b, "did not deactivate")
}

// B2: the console refuses a request under a disabled customer key as before (409
// KeyUnusable) but reports nothing to the revocation path: with CloudTrail lost, the app
// stays ACTIVE.
func TestRuleB2CheckFailsWhenTheConsoleDoesNotReport(t *testing.T) {
	b := broken(t, alongside(t, "B2"), variant{serve: func(w http.ResponseWriter, req *http.Request, _ *api.Client) bool {
		if !isApp(req, http.MethodPut, "b2-console-", "/objects/") {
			return false
		}
		_, _ = io.Copy(io.Discard, req.Body)
		writeJSONAnswer(w, http.StatusConflict, map[string]any{"error": map[string]string{"code": "KeyUnusable",
			"message": "the app's customer key refuses keyline right now"}})
		return true
	}})
	mustFail(t, "B2", b, "console request that met a disabled key did not deactivate")
}

// B3: events are applied in the order they arrive, not by eventTime (each delivery is
// stamped with the time it arrives). With the key item's order (eventTime, then event id),
// a duplicate is harmless even without the dedupe markers, so a variant without dedupe
// alone breaks nothing B3 can see; the order is what the check must catch.
func TestRuleB3CheckFailsWhenEventsAreOrderedOnArrival(t *testing.T) {
	b := broken(t, alongside(t, "B3"), variant{deliver: func(r *demoRun) func(context.Context, []byte) error {
		return func(ctx context.Context, event []byte) error {
			now := time.Now().UTC().Format(time.RFC3339Nano)
			event = rewriteJSON(event, func(ev *map[string]any) {
				(*ev)["time"] = now
				if d, ok := (*ev)["detail"].(map[string]any); ok {
					d["eventTime"] = now
				}
			})
			_, err := r.invoke(ctx, "keyevent", event)
			return err
		}
	}})
	mustFail(t, "B3", b, "out-of-order")
}

// drillsReport rewrites what drills report: every drill.<from> outcome becomes <to>.
func drillsReport(from, to string) variant {
	return variant{response: func(req *http.Request, status int, body []byte) (int, []byte) {
		if status != http.StatusOK {
			return status, body
		}
		switch {
		case strings.HasPrefix(req.URL.Path, "/v1/executions/"):
			return status, bytes.ReplaceAll(body, []byte(strings.ToUpper(from)), []byte(strings.ToUpper(to)))
		case isApp(req, http.MethodGet, "b4-", "/audit"):
			return status, bytes.ReplaceAll(body, []byte("drill."+from), []byte("drill."+to))
		}
		return status, body
	}}
}

// B4: drills that always report FAILED, and drills that always report PASSED.
func TestRuleB4CheckFailsWhenDrillsAlwaysFail(t *testing.T) {
	mustFail(t, "B4", broken(t, alongside(t, "B4"), drillsReport("passed", "failed")), "intact backup")
}

func TestRuleB4CheckFailsWhenDrillsAlwaysPass(t *testing.T) {
	mustFail(t, "B4", broken(t, alongside(t, "B4"), drillsReport("failed", "passed")), "flipped byte")
}

// B5: audit entries without their cause.
func TestRuleB5CheckFailsWithoutCauses(t *testing.T) {
	b := broken(t, alongside(t, "B5"), variant{response: func(req *http.Request, status int, body []byte) (int, []byte) {
		if status != http.StatusOK || !isApp(req, http.MethodGet, "b5-", "/audit") {
			return status, body
		}
		return status, rewriteJSON(body, func(es *[]map[string]any) {
			for _, e := range *es {
				e["cause"] = map[string]string{}
			}
		})
	}})
	mustFail(t, "B5", b, "causes missing")
}

// B6: a revocation deactivates apps on other keys too.
func TestRuleB6CheckFailsWhenRevocationSpreads(t *testing.T) {
	b := broken(t, alongside(t, "B6"), variant{response: func(req *http.Request, status int, body []byte) (int, []byte) {
		if status != http.StatusOK || !isApp(req, http.MethodGet, "b6-b-", "") {
			return status, body
		}
		return status, rewriteJSON(body, func(a *map[string]any) { (*a)["status"] = "DEACTIVATED" })
	}})
	mustFail(t, "B6", b, "on another key")
}

// B7: reads are refused while the app re-encrypts (downtime).
func TestRuleB7CheckFailsWithDowntime(t *testing.T) {
	b := broken(t, alongside(t, "B7"), variant{response: func(req *http.Request, status int, body []byte) (int, []byte) {
		if status == http.StatusOK && isApp(req, http.MethodGet, "b7-", "/objects/") {
			return http.StatusConflict, []byte(`{"error":{"code":"Conflict","message":"app is being re-encrypted"}}`)
		}
		return status, body
	}})
	mustFail(t, "B7", b, "during re-encryption")
}

// B8: the re-encryption commits although its new key was revoked.
func TestRuleB8CheckFailsWhenARevokedNewKeyCommits(t *testing.T) {
	b := broken(t, alongside(t, "B8"), variant{response: func(req *http.Request, status int, body []byte) (int, []byte) {
		if status != http.StatusOK || !isApp(req, http.MethodGet, "b8-new-", "") {
			return status, body
		}
		return status, rewriteJSON(body, func(a *map[string]any) {
			if (*a)["status"] == "ACTIVE" {
				(*a)["activeGeneration"] = 2
			}
		})
	}})
	mustFail(t, "B8", b, "new key revoked")
}

// B9's check fails when a layer keeps serving what it read before the revocation (the
// defect of a data-key cache that never expires and a read path that ignores the app's state).
func TestRuleB9CheckFailsWhenRevokedDataIsServed(t *testing.T) {
	var mu sync.Mutex
	seen := map[string][]byte{}
	b := broken(t, alongside(t, "B9"), variant{response: func(req *http.Request, status int, body []byte) (int, []byte) {
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
	}})
	mustFail(t, "B9", b, "plaintext")
}

// B9's check fails when the refusal is a server error.
func TestRuleB9CheckFailsOn5xx(t *testing.T) {
	b := broken(t, alongside(t, "B9"), variant{response: func(req *http.Request, status int, body []byte) (int, []byte) {
		if status == http.StatusConflict && strings.Contains(req.URL.Path, "/objects/") {
			return http.StatusInternalServerError, []byte(`{"error":{"code":"InternalError","message":"internal error"}}`)
		}
		return status, body
	}})
	mustFail(t, "B9", b, "server error")
}

// B10's check fails when an org may create an app on another org's key (the refusal
// missing), and when the refusal is a 5xx.
func TestRuleB10CheckFailsWithoutRefusal(t *testing.T) {
	r := alongside(t, "B10")
	for name, forged := range map[string]int{"accepted": http.StatusCreated, "5xx": http.StatusBadGateway} {
		t.Run(name, func(t *testing.T) {
			b := broken(t, r, variant{response: func(req *http.Request, status int, body []byte) (int, []byte) {
				if req.Method == http.MethodPost && req.URL.Path == "/v1/apps" && (status == http.StatusUnprocessableEntity || status == http.StatusForbidden) {
					return forged, []byte(`{}`)
				}
				return status, body
			}})
			mustFail(t, "B10", b, "")
		})
	}
}

// Any 5xx during a check fails it, even one the check's own logic would have tolerated
// (here: one server error while polling an app's status, followed by the right answer).
func TestAnyServerErrorFailsTheCheck(t *testing.T) {
	var once sync.Once
	b := broken(t, alongside(t, "B6"), variant{serve: func(w http.ResponseWriter, req *http.Request, _ *api.Client) bool {
		hit := false
		if isApp(req, http.MethodGet, "b6-m-", "") {
			once.Do(func() { hit = true })
		}
		if hit {
			writeJSONAnswer(w, http.StatusServiceUnavailable, map[string]any{"error": map[string]string{"code": "Unavailable", "message": "try again"}})
		}
		return hit
	}})
	mustFail(t, "B6", b, "server error")
}

// Every rule has a broken-variant test in this file (the list is checked against ruleChecks).
func TestEveryRuleHasABrokenVariant(t *testing.T) {
	b, err := os.ReadFile("broken_test.go")
	if err != nil {
		t.Fatal(err)
	}
	src := string(b)
	for _, rc := range ruleChecks() {
		if !strings.Contains(src, fmt.Sprintf("func TestRule%sCheckFails", rc.ID)) {
			t.Errorf("no broken-variant test for %s (want a func TestRule%sCheckFails...)", rc.ID, rc.ID)
		}
	}
}
