package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/keyline/keyline/internal/console"
	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/testenv"
)

// The page and its assets are served without a token, under a strict CSP; API paths
// keep their JSON answers.
func TestUIServesPage(t *testing.T) {
	e := setup(t)
	get := func(method, path string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, e.url+path, nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { res.Body.Close() })
		return res
	}
	for _, c := range []struct{ path, ctype, contains string }{
		{"/", "text/html", `<script src="/ui/app.js" defer></script>`},
		{"/ui/app.js", "text/javascript", `sessionStorage`},
		{"/ui/style.css", "text/css", `.badge`},
	} {
		res := get("GET", c.path)
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), c.ctype) {
			t.Fatalf("GET %s: %d %q", c.path, res.StatusCode, res.Header.Get("Content-Type"))
		}
		if !bytes.Contains(body, []byte(c.contains)) {
			t.Fatalf("GET %s does not hold %q", c.path, c.contains)
		}
		csp := res.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'self'") || strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			t.Fatalf("GET %s: CSP %q", c.path, csp)
		}
		if res.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("GET %s: no nosniff", c.path)
		}
	}
	// No inline script or style and nothing from another origin in the page.
	res := get("GET", "/")
	html, _ := io.ReadAll(res.Body)
	for _, bad := range []string{"<style", " style=", "<script>", " onclick=", " onload=", "http://", "https://"} {
		if bytes.Contains(html, []byte(bad)) {
			t.Fatalf("the page holds %q", bad)
		}
	}
	// Unknown assets and API paths stay JSON 404s; the page answers GET only.
	for _, c := range []struct{ method, path string }{
		{"GET", "/ui/nope.js"}, {"GET", "/ui/"}, {"GET", "/ui/../server.go"}, {"GET", "/v1/nothing"},
		{"POST", "/"}, {"GET", "/index.html"},
	} {
		res := get(c.method, c.path)
		var body struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if res.StatusCode != 404 || json.NewDecoder(res.Body).Decode(&body) != nil || body.Error.Code != "NotFound" {
			t.Errorf("%s %s: %d, want a JSON 404", c.method, c.path, res.StatusCode)
		}
	}
}

// browser starts headless Chromium for one test and returns its tab.
func browser(t *testing.T) context.Context {
	t.Helper()
	exe := os.Getenv("KEYLINE_CHROMIUM")
	if exe == "" {
		exe = "/usr/bin/chromium"
	}
	if _, err := os.Stat(exe); err != nil {
		t.Fatalf("the browser test needs Chromium at %s (or KEYLINE_CHROMIUM): run `make deps` (scripts/ensure-chromium.sh) to install it: %v", exe, err)
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
	)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// Record CSP violations from the first script on: the page must cause none.
	if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
			Source: `window.__csp = []; document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(e.violatedDirective + " " + e.blockedURI));`,
		})
		return err
	})); err != nil {
		t.Fatalf("starting Chromium (%s): %v", exe, err)
	}
	return ctx
}

// ui drives the page in one tab and fails the test with what the page shows.
type ui struct {
	t   *testing.T
	ctx context.Context
}

func (u ui) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(u.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		u.t.Fatalf("%s: %v\n%s", what, err, u.shown())
	}
}

func (u ui) eval(expr string, out any) {
	u.t.Helper()
	v, err := chromedp.Run(u.ctx, chromedp.Evaluate[json.RawMessage](expr))
	if err != nil {
		u.t.Fatalf("evaluating %s: %v", expr, err)
	}
	if err := json.Unmarshal(v, out); err != nil {
		u.t.Fatalf("evaluating %s: %v: %s", expr, err, v)
	}
}

// shown is the page's error line and main text, for failure messages.
func (u ui) shown() string {
	ctx, cancel := context.WithTimeout(u.ctx, 5*time.Second)
	defer cancel()
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`"error line: " + document.getElementById("error").textContent + "\npage: " + document.querySelector("main").innerText`))
	return s
}

// waitText waits until the element's text holds every one of want.
func (u ui) waitText(sel string, want ...string) {
	u.t.Helper()
	u.do(fmt.Sprintf("waiting for %s to show %q", sel, want), chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.PollFunction[bool](`(sel, want) => { const e = document.querySelector(sel); return !!e && want.every((w) => e.textContent.includes(w)); }`,
			chromedp.WithPollingArgs(sel, want), chromedp.WithPollingTimeout(15*time.Second))(ctx, tg)
		return err
	}))
}

func (u ui) text(sel string) string {
	u.t.Helper()
	var s string
	u.eval(fmt.Sprintf(`document.querySelector(%q).textContent`, sel), &s)
	return s
}

func (u ui) typeInto(sel, value string) chromedp.Action[chromedp.Void] {
	clear := chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Evaluate[string](fmt.Sprintf(`document.querySelector(%q).value = ""`, sel))(ctx, tg)
		return err
	})
	return chromedp.Steps(clear, chromedp.SendKeys(chromedp.CSS(sel), value))
}

// A person with an org token opens a CMK app, sees it and its restorable backup, backs it
// up, and after the customer revokes the key sees it deactivated with the reasons.
func TestUIFlow(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	acme := e.org("acme")
	globex := e.foreignOrg("globex")
	key := testenv.NewKMSKey(t, e.kms)
	e.must(201, e.do("POST", "/v1/apps", acme, map[string]string{"appId": "shop", "orgId": "acme", "keyModel": "cmk", "keyArn": key}))
	e.must(201, e.do("POST", "/v1/apps", acme, map[string]string{"appId": "blog", "orgId": "acme"}))
	e.must(201, e.do("POST", "/v1/apps", globex, map[string]string{"appId": "plant", "orgId": "globex"}))
	if _, err := e.store.AcquireBackupLease(ctx, "shop", "test", time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.RecordBackup(ctx, lineage.Backup{AppID: "shop", ID: "bk-0001", Generation: 1, KeyARN: key,
		ObjectKey: "backups/shop/bk-0001.klb", Digest: "00", SizeBytes: 4096}, "test", lineage.Cause{}); err != nil {
		t.Fatal(err)
	}

	u := ui{t, browser(t)}
	u.do("opening the page", chromedp.Navigate(e.url+"/"), chromedp.WaitVisible(chromedp.ID("token")))
	u.do("entering the org token", u.typeInto("#token", acme), chromedp.Click(chromedp.CSS(`#token-form button[type=submit]`)))

	// The org sees its own apps only; the operator's section stays hidden.
	u.waitText("#apps-table", "shop", "blog")
	if s := u.text("#apps-table"); strings.Contains(s, "plant") || strings.Contains(s, "globex") {
		t.Fatalf("an org token lists another org's app: %s", s)
	}
	var hidden bool
	u.eval(`document.getElementById("operator").hidden`, &hidden)
	if !hidden {
		t.Fatal("the operator's section shows for an org token")
	}

	// An API error shows the API's message.
	u.do("opening a missing app", u.typeInto("#open-app", "nosuchapp"), chromedp.Click(chromedp.CSS(`#open-form button[type=submit]`)))
	u.waitText("#error", "NotFound", "app nosuchapp not found")

	// The CMK app: ACTIVE, its key, its restorable backup with a Restore button.
	u.do("opening shop", u.typeInto("#open-app", "shop"), chromedp.Click(chromedp.CSS(`#open-form button[type=submit]`)))
	u.waitText("#app-status", "ACTIVE")
	u.waitText("#keys-table", key, "ACTIVE")
	u.waitText("#backups-table", "bk-0001", "Yes", "4.0 KiB")
	var restoreButtons int
	u.eval(`document.querySelectorAll("#backups-table tbody button").length`, &restoreButtons)
	if restoreButtons != 1 {
		t.Fatalf("%d restore buttons for one restorable backup", restoreButtons)
	}
	u.waitText("#audit-table", lineage.ActionAppCreated, lineage.ActionBackupRecorded)

	// The token lives in sessionStorage, never in the URL.
	var stored, href string
	u.eval(`sessionStorage.getItem("keyline.token")`, &stored)
	u.eval(`location.href`, &href)
	if stored != acme || strings.Contains(href, acme) {
		t.Fatalf("token stored %q, URL %q", stored, href)
	}

	// "Back up now" starts the backup machine for this app, and the page shows the execution.
	u.do("backing up", chromedp.Click(chromedp.ID("backup-now")))
	u.waitText("#execs-table", "Backup of shop", "RUNNING")
	arn := startedFor(t, e, "sm-backup", "shop")
	u.waitText("#execs-table", arn)

	// "Restore" starts the restore machine for the backup.
	u.do("restoring", chromedp.Click(chromedp.CSS(`#backups-table tbody button`)))
	u.waitText("#execs-table", "Restore of bk-0001 into shop")
	startedFor(t, e, "sm-restore", "shop")

	png, err := chromedp.Run(u.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(t.TempDir(), "console.png")
	if err := os.WriteFile(shot, png, 0o600); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(shot); err != nil || fi.Size() < 1000 || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("screenshot %s is not a PNG (%v)", shot, err)
	}
	if dir := os.Getenv("KEYLINE_UI_SCREENSHOT_DIR"); dir != "" {
		_ = os.WriteFile(filepath.Join(dir, "console.png"), png, 0o644)
	}

	// The customer disables the key and the revocation path acts on it (R8).
	if _, err := e.kms.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(key)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.RevokeKey(ctx, key, "DisableKey", lineage.KeyEventRef{ID: "ev-ui-1", Time: time.Now()}, lineage.Cause{EventID: "ev-ui-1"}); err != nil {
		t.Fatal(err)
	}
	var app struct{ Status, StatusReason string }
	e.must(200, e.do("GET", "/v1/apps/shop", acme, nil)).json(t, &app)
	var backups []struct {
		Restorable bool
		Reason     string
	}
	e.must(200, e.do("GET", "/v1/apps/shop/backups", acme, nil)).json(t, &backups)
	if app.Status != "DEACTIVATED" || app.StatusReason == "" || len(backups) != 1 || backups[0].Restorable || backups[0].Reason == "" {
		t.Fatalf("after revocation: app %+v, backups %+v", app, backups)
	}

	// After a reload (token and app kept by the tab), the page shows it with the reasons.
	u.do("reloading", chromedp.Reload())
	u.waitText("#app-status", "DEACTIVATED")
	u.waitText("#app-reason", app.StatusReason)
	u.waitText("#backups-table", "bk-0001", "No — "+backups[0].Reason)
	u.waitText("#keys-table", "REVOKED")
	u.waitText("#audit-table", lineage.ActionKeyRevoked, "ev-ui-1")
	if dir := os.Getenv("KEYLINE_UI_SCREENSHOT_DIR"); dir != "" {
		if png, err := chromedp.Run(u.ctx, chromedp.FullScreenshot(100)); err == nil {
			_ = os.WriteFile(filepath.Join(dir, "console-deactivated.png"), png, 0o644)
		}
	}
	u.eval(`document.querySelectorAll("#backups-table tbody button").length`, &restoreButtons)
	var backupDisabled bool
	u.eval(`document.getElementById("backup-now").disabled`, &backupDisabled)
	if restoreButtons != 0 || !backupDisabled {
		t.Fatalf("deactivated app: %d restore buttons, back up disabled %v", restoreButtons, backupDisabled)
	}

	var violations []string
	u.eval(`window.__csp`, &violations)
	if len(violations) != 0 {
		t.Fatalf("the page broke its CSP: %v", violations)
	}
}

// The operator creates an org and its token from the page, lists apps by org, starts a
// re-encryption, and sees the execution end with its error and cause.
func TestUIOperator(t *testing.T) {
	e := setup(t)
	acme := e.org("acme")
	key := testenv.NewKMSKey(t, e.kms)
	next := testenv.NewKMSKey(t, e.kms)
	e.must(201, e.do("POST", "/v1/apps", acme, map[string]string{"appId": "shop", "orgId": "acme", "keyModel": "cmk", "keyArn": key}))

	u := ui{t, browser(t)}
	u.do("opening the page", chromedp.Navigate(e.url+"/"), chromedp.WaitVisible(chromedp.ID("token")))
	u.do("entering the operator token", u.typeInto("#token", operatorToken), chromedp.Click(chromedp.CSS(`#token-form button[type=submit]`)))
	u.waitText("#apps-table", "shop", "acme")

	// A new org and a token for it.
	u.do("creating an org", chromedp.WaitVisible(chromedp.ID("org-id")), u.typeInto("#org-id", "initech"), u.typeInto("#org-name", "Initech"),
		u.typeInto("#org-accounts", otherAccount),
		chromedp.Click(chromedp.ID("create-org")))
	u.waitText("#notice", "Org initech created.")
	if org, err := e.store.GetOrg(context.Background(), "initech"); err != nil || len(org.Accounts) != 1 || org.Accounts[0] != otherAccount {
		t.Fatalf("the page's org: %+v, %v", org, err)
	}
	u.do("creating it again", chromedp.Click(chromedp.ID("create-org")))
	u.waitText("#error", "Conflict")
	u.do("issuing a token", chromedp.Click(chromedp.ID("issue-token")))
	u.waitText("#issued-org", "initech")
	var issued string
	u.eval(`document.getElementById("issued-token").value`, &issued)
	var page struct{ Items []struct{ AppID string } }
	e.must(200, e.do("GET", "/v1/apps", issued, nil)).json(t, &page)
	if len(page.Items) != 0 {
		t.Fatalf("the new org sees apps: %+v", page.Items)
	}

	// Listing by org.
	u.do("listing initech's apps", u.typeInto("#filter-org", "initech"), chromedp.Click(chromedp.CSS(`#list-form button[type=submit]`)))
	u.waitText("#apps-empty", "No apps.")

	// Re-encryption: a bad ARN shows the API's reason; a good one starts the machine.
	u.do("opening shop", u.typeInto("#open-app", "shop"), chromedp.Click(chromedp.CSS(`#open-form button[type=submit]`)))
	u.waitText("#app-status", "ACTIVE")
	u.do("re-encrypting to a bad ARN", chromedp.Click(chromedp.ID("reencrypt-open")), chromedp.WaitVisible(chromedp.ID("reencrypt-key")),
		u.typeInto("#reencrypt-key", "alias/nope"), chromedp.Click(chromedp.CSS(`#reencrypt-form button[type=submit]`)))
	u.waitText("#error", "BadRequest", "is not a KMS key ARN")
	u.do("re-encrypting", u.typeInto("#reencrypt-key", next), chromedp.Click(chromedp.CSS(`#reencrypt-form button[type=submit]`)))
	u.waitText("#execs-table", "Re-encryption of shop", "RUNNING")
	arn := startedFor(t, e, "sm-reencrypt", "shop")
	var in struct{ KeyArn string }
	e.execs.mu.Lock()
	_ = json.Unmarshal([]byte(e.execs.started[arn].Input), &in)
	// The execution ends: the page, polling, shows how.
	e.execs.started[arn] = console.Execution{Status: "FAILED", Error: "States.TaskFailed", Cause: "the new key is disabled", Input: e.execs.started[arn].Input}
	e.execs.mu.Unlock()
	if in.KeyArn != next {
		t.Fatalf("re-encryption to %q, want %q", in.KeyArn, next)
	}
	u.waitText("#execs-table", "FAILED", "States.TaskFailed", "the new key is disabled")
}

// startedFor returns the one execution started on machine for app, failing otherwise.
func startedFor(t *testing.T, e *env, machine, appID string) string {
	t.Helper()
	e.execs.mu.Lock()
	defer e.execs.mu.Unlock()
	var found []string
	for arn, m := range e.execs.machine {
		if m != machine {
			continue
		}
		var in struct {
			AppID  string   `json:"appId"`
			AppIDs []string `json:"appIds"`
		}
		_ = json.Unmarshal([]byte(e.execs.started[arn].Input), &in)
		if in.AppID == appID || (len(in.AppIDs) == 1 && in.AppIDs[0] == appID) {
			found = append(found, arn)
		}
	}
	if len(found) != 1 {
		t.Fatalf("executions of %s for %s: %v (all: %v)", machine, appID, found, e.execs.machine)
	}
	return found[0]
}
