package console_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/keyline/keyline/internal/console"
	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/secret/filesecret"
	"github.com/keyline/keyline/internal/testenv"
)

// otherAccount is an AWS account no key of the tests' KMS lives in.
const otherAccount = "444455556666"

// keyRefused asserts the one generic 422 answer to a key an org may not or cannot use: the
// same text whatever the reason, naming nothing about the key and passing no KMS error through.
func keyRefused(t *testing.T, r resp, keyARN string) {
	t.Helper()
	if r.status != 422 {
		t.Fatalf("status %d, want 422: %s", r.status, r.body)
	}
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	r.json(t, &e)
	if e.Error.Message != lineage.KeyRefusedMessage {
		t.Fatalf("message %q, want the generic one %q", e.Error.Message, lineage.KeyRefusedMessage)
	}
	for _, leak := range []string{keyARN, keyARN[strings.LastIndex(keyARN, "/")+1:], "Disabled", "Exception", "KeyState", "NotFound"} {
		if strings.Contains(string(r.body), leak) {
			t.Fatalf("the refusal reveals %q: %s", leak, r.body)
		}
	}
}

// TestOrgEnrolment: POST /v1/orgs takes 12-digit account ids and key ARNs in them; anything
// else is a 400 that creates nothing.
func TestOrgEnrolment(t *testing.T) {
	e := setup(t)
	for _, bad := range []map[string]any{
		{"orgId": "o1", "name": "x", "accounts": []string{"12345"}},
		{"orgId": "o1", "name": "x", "accounts": []string{"12345678901a"}},
		{"orgId": "o1", "name": "x", "accounts": []string{"111122223333"}, "keyArns": []string{"arn:aws:kms:us-east-1:444455556666:key/abc"}},
		{"orgId": "o1", "name": "x", "accounts": []string{"111122223333"}, "keyArns": []string{"alias/mine"}},
	} {
		e.must(400, e.do("POST", "/v1/orgs", operatorToken, bad))
	}
	if _, err := e.store.GetOrg(context.Background(), "o1"); err == nil {
		t.Fatal("a refused org was created")
	}
	var org struct {
		Accounts []string `json:"accounts"`
		KeyARNs  []string `json:"keyArns"`
	}
	e.must(201, e.do("POST", "/v1/orgs", operatorToken, map[string]any{"orgId": "o1", "name": "x", "accounts": []string{"111122223333", "111122223333"}})).json(t, &org)
	if len(org.Accounts) != 1 || org.Accounts[0] != "111122223333" {
		t.Fatalf("enrolled accounts %v", org.Accounts)
	}
}

// TestKeyOutsideTheOrgIsRefused (B10): an org naming a key in an account it did not enrol —
// another org's key — is refused with the generic answer, at app creation and at re-encryption,
// and nothing is created or started; the org that enrolled the key's account uses it.
func TestKeyOutsideTheOrgIsRefused(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	owner := e.org("owner") // enrols the tests' KMS account
	intruder := e.orgWith("intruder", map[string]any{"accounts": []string{otherAccount}})
	ownersKey := testenv.NewKMSKey(t, e.kms)

	keyRefused(t, e.do("POST", "/v1/apps", intruder, map[string]string{"appId": "stolen", "orgId": "intruder", "keyModel": "cmk", "keyArn": ownersKey}), ownersKey)
	if _, err := e.store.GetApp(ctx, "stolen"); err == nil {
		t.Fatal("the refused app exists")
	}
	// The operator gets the same answer for the intruder org.
	keyRefused(t, e.do("POST", "/v1/apps", operatorToken, map[string]string{"appId": "stolen", "orgId": "intruder", "keyModel": "cmk", "keyArn": ownersKey}), ownersKey)

	// The owner uses its key.
	e.must(201, e.do("POST", "/v1/apps", owner, map[string]string{"appId": "mine", "orgId": "owner", "keyModel": "cmk", "keyArn": ownersKey}))

}

// TestKeyNotListedIsRefused (B10): an org that lists key ARNs uses those only, even in its own
// account, at app creation and at re-encryption.
func TestKeyNotListedIsRefused(t *testing.T) {
	e := setup(t)
	listedKey := testenv.NewKMSKey(t, e.kms)
	unlisted := testenv.NewKMSKey(t, e.kms)
	listed := e.orgWith("listed", map[string]any{"accounts": []string{testenv.KMSAccountID}, "keyArns": []string{listedKey}})
	keyRefused(t, e.do("POST", "/v1/apps", listed, map[string]string{"appId": "l1", "orgId": "listed", "keyModel": "cmk", "keyArn": unlisted}), unlisted)
	e.must(201, e.do("POST", "/v1/apps", listed, map[string]string{"appId": "l1", "orgId": "listed", "keyModel": "cmk", "keyArn": listedKey}))
	before := len(e.execs.started)
	keyRefused(t, e.do("POST", "/v1/apps/l1/reencryptions", listed, map[string]string{"keyArn": unlisted}), unlisted)
	if len(e.execs.started) != before {
		t.Fatal("a refused re-encryption was started")
	}
}

// TestAccountBelongsToOneOrg: an AWS account another org enrolled is refused with 409 and a
// message saying what to do (not which org holds it), and nothing is created; the first org is
// untouched, and a retried creation of the same org answers that it exists.
func TestAccountBelongsToOneOrg(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	first := map[string]any{"orgId": "first", "name": "First", "accounts": []string{"123456789012", "210987654321"}}
	e.must(201, e.do("POST", "/v1/orgs", operatorToken, first))
	for _, accounts := range [][]string{{"210987654321"}, {"555555555555", "123456789012"}} {
		r := e.must(409, e.do("POST", "/v1/orgs", operatorToken, map[string]any{"orgId": "second", "name": "Second", "accounts": accounts}))
		if code := r.errorCode(t); code != "AccountEnrolled" {
			t.Fatalf("code %s: %s", code, r.body)
		}
		if !strings.Contains(string(r.body), "already enrolled by another org") || strings.Contains(string(r.body), "first") {
			t.Fatalf("message: %s", r.body)
		}
		if _, err := e.store.GetOrg(ctx, "second"); err == nil {
			t.Fatal("the refused org was created")
		}
	}
	// The refused attempt claimed nothing: the account it also named is still free.
	e.must(201, e.do("POST", "/v1/orgs", operatorToken, map[string]any{"orgId": "second", "name": "Second", "accounts": []string{"555555555555"}}))
	if code := e.must(409, e.do("POST", "/v1/orgs", operatorToken, first)).errorCode(t); code != "Conflict" {
		t.Fatalf("a retried creation: code %s", code)
	}
	for account, want := range map[string]string{"123456789012": "first", "210987654321": "first", "555555555555": "second"} {
		if got, err := e.store.AccountOrg(ctx, account); err != nil || got != want {
			t.Fatalf("account %s: org %q, %v; want %s", account, got, err, want)
		}
	}
	// Racing enrolments of one account: exactly one org gets it.
	const racers = 6
	codes := make(chan int, racers)
	for i := range racers {
		go func() {
			codes <- e.doQuiet("POST", "/v1/orgs", operatorToken, map[string]any{"orgId": fmt.Sprintf("racer%d", i), "name": "Racer", "accounts": []string{"777777777777"}})
		}()
	}
	won := 0
	for range racers {
		switch c := <-codes; c {
		case 201:
			won++
		case 409:
		default:
			t.Fatalf("a racing enrolment answered %d", c)
		}
	}
	if won != 1 {
		t.Fatalf("%d orgs enrolled one account", won)
	}
}

// TestUnusableKeyAnswerIsGeneric: a disabled or unknown key in the org's own account gets the
// same answer as a key outside it: KMS's error text does not pass through.
func TestUnusableKeyAnswerIsGeneric(t *testing.T) {
	e := setup(t)
	tok := e.org("acme")
	disabled := testenv.NewKMSKey(t, e.kms)
	if _, err := e.kms.DisableKey(context.Background(), &kms.DisableKeyInput{KeyId: aws.String(disabled)}); err != nil {
		t.Fatal(err)
	}
	keyRefused(t, e.do("POST", "/v1/apps", tok, map[string]string{"appId": "a1", "orgId": "acme", "keyModel": "cmk", "keyArn": disabled}), disabled)
	missing := "arn:aws:kms:us-east-1:" + testenv.KMSAccountID + ":key/00000000-1111-2222-3333-444444444444"
	keyRefused(t, e.do("POST", "/v1/apps", tok, map[string]string{"appId": "a1", "orgId": "acme", "keyModel": "cmk", "keyArn": missing}), missing)
}

// TestOrgTokensExpireListAndRevoke: an org token has an expiry (90 days by default, ttlHours
// otherwise); the list shows ids and expiry, never the secret; a revoked or expired token
// stops working at once, and an org token cannot list or revoke tokens.
func TestOrgTokensExpireListAndRevoke(t *testing.T) {
	e := setup(t)
	e.org("acme")
	var def, short struct {
		TokenID   string    `json:"tokenId"`
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expiresAt"`
	}
	e.must(201, e.do("POST", "/v1/orgs/acme/tokens", operatorToken, map[string]any{})).json(t, &def)
	if got := def.ExpiresAt.Sub(e.clock.Now()); got < 90*24*time.Hour-time.Minute || got > 90*24*time.Hour+time.Minute {
		t.Fatalf("default expiry in %s, want 90 days", got)
	}
	e.must(201, e.do("POST", "/v1/orgs/acme/tokens", operatorToken, map[string]any{"ttlHours": 2})).json(t, &short)
	for _, bad := range []any{0, -1, 100000, "2"} {
		e.must(400, e.do("POST", "/v1/orgs/acme/tokens", operatorToken, map[string]any{"ttlHours": bad}))
	}
	e.must(200, e.do("GET", "/v1/apps", short.Token, nil))

	// The list: ids and expiry, no secret, no hash.
	r := e.must(200, e.do("GET", "/v1/orgs/acme/tokens", operatorToken, nil))
	var list []struct {
		TokenID   string    `json:"tokenId"`
		ExpiresAt time.Time `json:"expiresAt"`
	}
	r.json(t, &list)
	ids := func() map[string]time.Time {
		m := map[string]time.Time{}
		for _, l := range list {
			m[l.TokenID] = l.ExpiresAt
		}
		return m
	}
	// Three: the one org() issued, and these two.
	if got := ids(); len(got) != 3 || !got[def.TokenID].Equal(def.ExpiresAt) || !got[short.TokenID].Equal(short.ExpiresAt) {
		t.Fatalf("token list %s", r.body)
	}
	for _, secret := range []string{def.Token, short.Token, console.HashToken(def.Token), console.HashToken(short.Token)} {
		if strings.Contains(string(r.body), secret) {
			t.Fatalf("the token list reveals a secret: %s", r.body)
		}
	}
	// Only the operator lists and revokes; another org's token id is not found.
	e.must(403, e.do("GET", "/v1/orgs/acme/tokens", def.Token, nil))
	e.must(403, e.do("DELETE", "/v1/orgs/acme/tokens/"+short.TokenID, def.Token, nil))
	e.foreignOrg("globex")
	e.must(404, e.do("DELETE", "/v1/orgs/globex/tokens/"+short.TokenID, operatorToken, nil))
	e.must(200, e.do("GET", "/v1/apps", short.Token, nil))

	// Expiry: two hours later the short token is refused, the default one still works.
	e.clock.Advance(2*time.Hour + time.Second)
	e.must(401, e.do("GET", "/v1/apps", short.Token, nil))
	e.must(200, e.do("GET", "/v1/apps", def.Token, nil))

	// Revocation: at once, and a second revocation finds nothing.
	e.must(204, e.do("DELETE", "/v1/orgs/acme/tokens/"+def.TokenID, operatorToken, nil))
	e.must(401, e.do("GET", "/v1/apps", def.Token, nil))
	e.must(404, e.do("DELETE", "/v1/orgs/acme/tokens/"+def.TokenID, operatorToken, nil))
	r = e.must(200, e.do("GET", "/v1/orgs/acme/tokens", operatorToken, nil))
	list = nil
	r.json(t, &list)
	if got := ids(); len(got) != 2 || !got[short.TokenID].Equal(short.ExpiresAt) {
		t.Fatalf("token list after the revocation: %s", r.body)
	}
	if _, ok := ids()[def.TokenID]; ok {
		t.Fatalf("the revoked token is still listed: %s", r.body)
	}
}

// TestRequestIDsAreKeylines: the request id in audit entries, answers and execution names is
// generated by keyline; a client's X-Request-Id is kept apart (length-limited), cannot pick an
// execution name, and still makes a retried request start its execution once.
func TestRequestIDsAreKeylines(t *testing.T) {
	e := setup(t)
	tok := e.org("acme")
	e.must(201, e.do("POST", "/v1/apps", tok, map[string]string{"appId": "a1", "orgId": "acme"}, "X-Request-Id", "forged-audit-id"))
	entries, err := e.store.ListAudit(context.Background(), "a1")
	if err != nil || len(entries) == 0 {
		t.Fatalf("audit: %v %v", entries, err)
	}
	c := entries[0].Cause
	if c.RequestID == "forged-audit-id" || c.RequestID == "" || c.ClientRequestID != "forged-audit-id" {
		t.Fatalf("audit cause %+v: want keyline's request id and the client's apart", c)
	}
	e.must(400, e.do("GET", "/v1/apps/a1", tok, nil, "X-Request-Id", strings.Repeat("x", 129)))
	e.must(400, e.do("GET", "/v1/apps/a1", tok, nil, "X-Request-Id", "has space"))

	// Execution names: chosen by keyline; the same client id retried starts one execution.
	var first, again, other struct{ ExecutionArn string }
	e.must(202, e.do("POST", "/v1/apps/a1/backups", tok, map[string]any{}, "X-Request-Id", "name-i-want")).json(t, &first)
	e.must(202, e.do("POST", "/v1/apps/a1/backups", tok, map[string]any{}, "X-Request-Id", "name-i-want")).json(t, &again)
	e.must(202, e.do("POST", "/v1/apps/a1/backups", operatorToken, map[string]any{}, "X-Request-Id", "name-i-want")).json(t, &other)
	if strings.Contains(first.ExecutionArn, "name-i-want") {
		t.Fatalf("the client chose the execution name: %s", first.ExecutionArn)
	}
	if first.ExecutionArn != again.ExecutionArn {
		t.Fatalf("a retried request got another execution: %s, %s", first.ExecutionArn, again.ExecutionArn)
	}
	if other.ExecutionArn == first.ExecutionArn {
		t.Fatal("another principal's request with the same client id reached the same execution")
	}
}

// TestOperatorTokenFromItsSecret: the operator token is read from its secret (a 0600 file
// here, Secrets Manager in a deployment): a rotated token takes effect once the cached hash is
// older than OperatorTokenCacheTTL; a secret that cannot be read answers 500 to a non-org
// token (never a 401 that hides the fault, never the operator), while org tokens keep working.
func TestOperatorTokenFromItsSecret(t *testing.T) {
	e := setup(t)
	tok := e.org("acme")
	e.must(200, e.do("GET", "/v1/apps", operatorToken, nil))
	path := e.operatorSecretPath
	rotated := "klop_rotated-operator-token-0123456789abcdef"
	if err := os.WriteFile(path, []byte(rotated), filesecret.OwnerOnly); err != nil {
		t.Fatal(err)
	}
	e.must(200, e.do("GET", "/v1/apps", operatorToken, nil)) // cached
	e.clock.Advance(console.OperatorTokenCacheTTL)
	e.must(401, e.do("GET", "/v1/apps", operatorToken, nil))
	e.must(200, e.do("GET", "/v1/apps", rotated, nil))
	// Unreadable (others may read it): no operator, org tokens unaffected.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(console.OperatorTokenCacheTTL)
	e.must(500, e.do("GET", "/v1/apps", rotated, nil))
	e.must(200, e.do("GET", "/v1/apps", tok, nil))
	// Too short a token in the secret is refused as well.
	if err := os.WriteFile(path, []byte("short"), filesecret.OwnerOnly); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, filesecret.OwnerOnly); err != nil {
		t.Fatal(err)
	}
	e.must(500, e.do("GET", "/v1/apps", "short", nil))
}
