package stack

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	sdksm "github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"

	"github.com/keyline/keyline/infra"
	"github.com/keyline/keyline/internal/console"
	"github.com/keyline/keyline/internal/console/api"
	"github.com/keyline/keyline/internal/decl"
	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/workflow/keyhealth"
)

// The tenancy test's orgs, each with its own AWS account (an account belongs to one org).
const (
	orgA     = "org-a"
	orgB     = "org-b"
	accountA = "444444444444"
	accountB = "555555555555"
)

// TestTenancyUnderEnforcement runs the attacks against a local deployment with IAM
// enforced, through the console API and the endpoint as a client would, each next to the
// legitimate path that must keep working:
//   - the operator token comes from Secrets Manager (no environment or stack file holds it);
//     only the token-checking roles may read it;
//   - an AWS account enrolled by one org is refused to another (409);
//   - org A naming org B's key, at app creation and at re-encryption, is refused even when
//     B's key policy admits keyline for any org; B's key, pinned to B, works for B, key
//     health included;
//   - dynamodb:LeadingKeys: the authorizer reads token items only, the console deletes token
//     items only (revocation works), no role deletes an audit entry;
//   - nothing of the deployment listens beyond loopback.
func TestTenancyUnderEnforcement(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	var drop atomic.Bool
	st := startTestStack(t, ctx, t.TempDir(), SeedNone, nil, &drop)
	defer st.Close()
	if st.IAM != IAMOn {
		t.Fatalf("IAM is %s, want on", st.IAM)
	}
	op := consoleClient(st)

	t.Run("operator token from Secrets Manager", func(t *testing.T) {
		// The console answers the operator: it read the token with GetSecretValue as its role.
		if err := op.Expect(ctx, 200, "GET", "/v1/apps", nil, nil); err != nil {
			t.Fatal(err)
		}
		if err := op.As("klop_not-the-operator-token-0123456789abcdef").Expect(ctx, 401, "GET", "/v1/apps", nil, nil); err != nil {
			t.Fatal(err)
		}
		raw, err := os.ReadFile(filepath.Join(st.DataDir, stackFile))
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range []string{st.OperatorToken, console.HashToken(st.OperatorToken)} {
			if strings.Contains(string(raw), secret) {
				t.Fatal("the stack's recorded environments hold the operator token or its hash")
			}
		}
		for fn, env := range st.state.Functions {
			for k, v := range env {
				if strings.Contains(v, st.OperatorToken) || strings.Contains(v, console.HashToken(st.OperatorToken)) {
					t.Errorf("%s: %s holds the operator token", fn, k)
				}
			}
		}
		read := func(fn string) error {
			_, err := sdksm.NewFromConfig(functionConfig(st.AWSConfig(), fn)).GetSecretValue(ctx,
				&sdksm.GetSecretValueInput{SecretId: aws.String(st.state.OperatorTokenSecret)})
			return err
		}
		for _, f := range infra.Description().Functions {
			err := read(f.Name)
			if f.ChecksOperatorToken() && err != nil {
				t.Errorf("%s may not read the operator token: %v", f.Name, err)
			}
			if !f.ChecksOperatorToken() && !isAccessDenied(err) {
				t.Errorf("%s reads the operator token: %v", f.Name, err)
			}
		}
	})

	// Orgs A and B, each enrolling its own account; keys in each account.
	for _, o := range []api.CreateOrg{{OrgID: orgA, Name: "A", Accounts: []string{accountA}}, {OrgID: orgB, Name: "B", Accounts: []string{accountB}}} {
		if err := op.CreateOrg(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	token := func(org string) (*api.Client, api.OrgToken) {
		tok, err := op.CreateOrgToken(ctx, org, api.CreateOrgToken{})
		if err != nil {
			t.Fatal(err)
		}
		return op.As(tok.Token), tok
	}
	a, _ := token(orgA)
	b, _ := token(orgB)
	keyA, err := st.CreateCustomerKey(ctx, accountA, orgA, "A's key", false)
	if err != nil {
		t.Fatal(err)
	}
	keyB, err := st.CreateCustomerKey(ctx, accountB, orgB, "B's key, pinned to B", false)
	if err != nil {
		t.Fatal(err)
	}
	keyBOpen := createOpenKey(t, ctx, st, accountB)

	t.Run("one account one org", func(t *testing.T) {
		ans, err := op.Do(ctx, "POST", "/v1/orgs", api.CreateOrg{OrgID: "org-c", Name: "C", Accounts: []string{accountB}})
		if err != nil {
			t.Fatal(err)
		}
		if ans.Status != 409 || !strings.Contains(string(ans.Body), "AccountEnrolled") || strings.Contains(string(ans.Body), orgB) {
			t.Fatalf("enrolling B's account for another org: %d %s", ans.Status, ans.Body)
		}
		if _, err := st.Store.GetOrg(ctx, "org-c"); !errors.Is(err, lineage.ErrNotFound) {
			t.Fatalf("the refused org: %v", err)
		}
	})

	t.Run("cross-org keys refused, own keys work", func(t *testing.T) {
		// A's own app on A's key works.
		if _, err := a.CreateApp(ctx, api.CreateApp{AppID: "a-app", OrgID: orgA, KeyModel: "cmk", KeyARN: keyA}); err != nil {
			t.Fatal(err)
		}
		nowhere := "arn:aws:kms:us-east-1:666666666666:key/00000000-0000-4000-8000-000000000000"
		nowhereCreate, err := a.Do(ctx, "POST", "/v1/apps", api.CreateApp{AppID: "a-steals", OrgID: orgA, KeyModel: "cmk", KeyARN: nowhere})
		if err != nil {
			t.Fatal(err)
		}
		nowhereReencrypt, err := a.Do(ctx, "POST", "/v1/apps/a-app/reencryptions", map[string]string{"keyArn": nowhere})
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{keyB, keyBOpen} {
			ans, err := a.Do(ctx, "POST", "/v1/apps", api.CreateApp{AppID: "a-steals", OrgID: orgA, KeyModel: "cmk", KeyARN: k})
			if err != nil {
				t.Fatal(err)
			}
			wantKeyRefused(t, "A creates an app on B's key", ans, nowhereCreate, k)
			ans, err = a.Do(ctx, "POST", "/v1/apps/a-app/reencryptions", map[string]string{"keyArn": k})
			if err != nil {
				t.Fatal(err)
			}
			wantKeyRefused(t, "A re-encrypts onto B's key", ans, nowhereReencrypt, k)
		}
		if _, err := st.Store.GetApp(ctx, "a-steals"); !errors.Is(err, lineage.ErrNotFound) {
			t.Fatalf("the refused app: %v", err)
		}
		if app, err := a.App(ctx, "a-app"); err != nil || app.Status != string(lineage.AppActive) || app.ActiveGeneration != 1 {
			t.Fatalf("A's app after the refused re-encryptions: %+v, %v", app, err)
		}
		// B's pinned key works for B: app, data round trip, key health (no deactivation).
		if _, err := b.CreateApp(ctx, api.CreateApp{AppID: "b-app", OrgID: orgB, KeyModel: "cmk", KeyARN: keyB}); err != nil {
			t.Fatal(err)
		}
		if err := b.PutObject(ctx, "b-app", "cmk", "orders/1", []byte("B's order")); err != nil {
			t.Fatal(err)
		}
		if got, err := b.GetObject(ctx, "b-app", "cmk", "orders/1"); err != nil || string(got) != "B's order" {
			t.Fatalf("B reads its object: %q, %v", got, err)
		}
		out, err := st.Lambda.Invoke(ctx, infra.FnKeyHealth, []byte(`{}`))
		if err != nil {
			t.Fatalf("key health: %v (%s)", err, out)
		}
		var rep keyhealth.Report
		if err := json.Unmarshal(out, &rep); err != nil {
			t.Fatal(err)
		}
		found := 0
		for _, k := range rep.Keys {
			if k.KeyARN == keyB || k.KeyARN == keyA {
				found++
				if k.Status != "healthy" {
					t.Errorf("key health of %s: %+v, want healthy", k.KeyARN, k)
				}
			}
		}
		if found != 2 || rep.Deactivated != 0 {
			t.Fatalf("key health report %s", out)
		}
		for _, c := range []struct {
			cl  *api.Client
			app string
		}{{a, "a-app"}, {b, "b-app"}} {
			if app, err := c.cl.App(ctx, c.app); err != nil || app.Status != string(lineage.AppActive) {
				t.Fatalf("%s after key health: %+v, %v", c.app, app, err)
			}
		}
		// B cannot see A's app either.
		if err := b.Expect(ctx, 404, "GET", "/v1/apps/a-app", nil, nil); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("LeadingKeys", func(t *testing.T) {
		ddb := func(fn string) *awsddb.Client { return awsddb.NewFromConfig(functionConfig(st.AWSConfig(), fn)) }
		key := func(pk, sk string) map[string]ddbtypes.AttributeValue {
			return map[string]ddbtypes.AttributeValue{"PK": &ddbtypes.AttributeValueMemberS{Value: pk}, "SK": &ddbtypes.AttributeValueMemberS{Value: sk}}
		}
		table := aws.String(st.TableName())
		// The authorizer: token items, read only.
		auth := ddb(infra.FnConsoleAuthorizer)
		if _, err := auth.GetItem(ctx, &awsddb.GetItemInput{TableName: table, Key: key(decl.TokenPartitionPrefix+strings.Repeat("0", 64), "TOKEN")}); err != nil {
			t.Errorf("the authorizer reads a token item: %v", err)
		}
		for _, pk := range []string{"APP#a-app", "ORG#" + orgA, "KEY#" + keyA, decl.AccountPartitionPrefix + accountA} {
			_, err := auth.GetItem(ctx, &awsddb.GetItemInput{TableName: table, Key: key(pk, "META")})
			if !isAccessDenied(err) {
				t.Errorf("the authorizer reads %s: %v", pk, err)
			}
		}
		_, err := auth.PutItem(ctx, &awsddb.PutItemInput{TableName: table, Item: key(decl.TokenPartitionPrefix+strings.Repeat("1", 64), "TOKEN")})
		if !isAccessDenied(err) {
			t.Errorf("the authorizer writes a token item: %v", err)
		}
		// Token revocation through the console: its deletes are allowed, and the token stops.
		orgTok, tok := token(orgA)
		if err := orgTok.Expect(ctx, 200, "GET", "/v1/apps/a-app", nil, nil); err != nil {
			t.Fatal(err)
		}
		var list []api.TokenInfo
		if err := op.Expect(ctx, 200, "GET", "/v1/orgs/"+orgA+"/tokens", nil, &list); err != nil || len(list) != 2 {
			t.Fatalf("token list: %+v, %v", list, err)
		}
		if err := op.Expect(ctx, 204, "DELETE", "/v1/orgs/"+orgA+"/tokens/"+tok.TokenID, nil, nil); err != nil {
			t.Fatal(err)
		}
		if err := orgTok.Expect(ctx, 401, "GET", "/v1/apps/a-app", nil, nil); err != nil {
			t.Fatal(err)
		}
		// No role deletes an audit entry (an app's, a key's), nor an org's or an app's item;
		// the console deletes in token partitions only.
		entries, err := st.Store.ListAudit(ctx, "b-app")
		if err != nil || len(entries) == 0 {
			t.Fatalf("audit of b-app: %v, %v", entries, err)
		}
		q, err := awsddb.NewFromConfig(st.AWSConfig()).Query(ctx, &awsddb.QueryInput{TableName: table,
			KeyConditionExpression: aws.String("PK = :pk AND begins_with(SK, :audit)"),
			ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{
				":pk": &ddbtypes.AttributeValueMemberS{Value: "APP#b-app"}, ":audit": &ddbtypes.AttributeValueMemberS{Value: "AUDIT#"}},
			ProjectionExpression: aws.String("PK, SK")})
		if err != nil || len(q.Items) == 0 {
			t.Fatalf("audit items of b-app: %v, %v", q, err)
		}
		auditItems := q.Items
		for _, f := range infra.Description().Functions {
			for _, k := range []map[string]ddbtypes.AttributeValue{auditItems[0], key("KEY#"+keyB, "AUDIT#x"), key("APP#b-app", "META")} {
				_, err := ddb(f.Name).DeleteItem(ctx, &awsddb.DeleteItemInput{TableName: table, Key: k})
				if !isAccessDenied(err) {
					t.Errorf("%s deletes %v: %v", f.Name, k, err)
				}
			}
		}
		if _, err := ddb(infra.FnConsoleAPI).DeleteItem(ctx, &awsddb.DeleteItemInput{TableName: table, Key: key(decl.TokenPartitionPrefix+strings.Repeat("2", 64), "TOKEN")}); err != nil {
			t.Errorf("the console deletes a token item: %v", err)
		}
		after, err := st.Store.ListAudit(ctx, "b-app")
		if err != nil || len(after) != len(entries) {
			t.Fatalf("audit of b-app after the denied deletes: %d entries, was %d (%v)", len(after), len(entries), err)
		}
	})

	t.Run("listening sockets", func(t *testing.T) {
		pids := []int{os.Getpid()}
		if st.ddb != nil {
			pids = append(pids, st.ddb.Pid())
		}
		socks, err := listeningSockets(pids)
		if err != nil {
			t.Fatal(err)
		}
		if len(socks) < 3 {
			t.Fatalf("listening sockets %v: want at least the endpoint, the console and DynamoDB Local", socks)
		}
		for _, s := range socks {
			if !s.IP.IsLoopback() {
				t.Errorf("listening on %s: beyond loopback", s)
			}
		}
		for _, u := range []string{st.Endpoint, st.Console, st.ddb.Endpoint()} {
			host := strings.TrimPrefix(strings.TrimPrefix(u, "http://"), "https://")
			if h, _, err := net.SplitHostPort(strings.TrimSuffix(host, "/")); err != nil || !net.ParseIP(h).IsLoopback() {
				t.Errorf("%s: not a loopback address (%v)", u, err)
			}
		}
	})
}

// createOpenKey creates a key in account whose policy admits keyline's roles for any org (the
// documented policy without its org pin): what a careless customer might do.
func createOpenKey(t *testing.T, ctx context.Context, st *Stack, account string) string {
	t.Helper()
	doc, err := infra.Description().CustomerKeyPolicyDocument(account, infra.KeyPolicyTarget{Org: orgB, Account: KeylineAccount})
	if err != nil {
		t.Fatal(err)
	}
	for i := range doc.Statement {
		if se := doc.Statement[i].Condition["StringEquals"]; se != nil {
			delete(se, "kms:EncryptionContext:"+decl.ContextKeyOrg)
			if len(se) == 0 {
				delete(doc.Statement[i].Condition, "StringEquals")
			}
		}
	}
	pol := string(doc.JSON())
	if strings.Contains(pol, "kms:EncryptionContext:"+decl.ContextKeyOrg) {
		t.Fatalf("the open policy still pins the org: %s", pol)
	}
	out, err := awskms.NewFromConfig(st.CustomerAWSConfig(account)).CreateKey(ctx, &awskms.CreateKeyInput{Policy: aws.String(pol)})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.KeyMetadata.Arn)
}

// wantKeyRefused asserts the one generic refusal of a key (422 KeyRefused), naming nothing
// about the key: the same answer as for a key that does not exist in an account no org enrolled.
func wantKeyRefused(t *testing.T, what string, ans, nowhere api.Answer, keyARN string) {
	t.Helper()
	if ans.Status != 422 || !strings.Contains(string(ans.Body), `"KeyRefused"`) {
		t.Fatalf("%s: %d %s, want 422 KeyRefused", what, ans.Status, ans.Body)
	}
	if string(ans.Body) != string(nowhere.Body) {
		t.Fatalf("%s: %s; a key that does not exist gets %s: the answer tells them apart", what, ans.Body, nowhere.Body)
	}
	for _, leak := range []string{keyARN[strings.LastIndex(keyARN, "/")+1:], "Disabled", "AccessDenied", "Exception", accountB} {
		if strings.Contains(string(ans.Body), leak) {
			t.Fatalf("%s: the refusal reveals %q: %s", what, leak, ans.Body)
		}
	}
}

func isAccessDenied(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && strings.Contains(ae.ErrorCode(), "AccessDenied")
}

// listeningSocket is one TCP socket in LISTEN state.
type listeningSocket struct {
	IP   net.IP
	Port int
}

func (s listeningSocket) String() string {
	return net.JoinHostPort(s.IP.String(), strconv.Itoa(s.Port))
}

// listeningSockets returns the TCP sockets in LISTEN state owned by the processes pids (their
// open file descriptors), from /proc/net/tcp and tcp6.
func listeningSockets(pids []int) ([]listeningSocket, error) {
	inodes := map[string]bool{}
	for _, pid := range pids {
		fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		if err != nil {
			return nil, err
		}
		for _, fd := range fds {
			link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
			if err == nil && strings.HasPrefix(link, "socket:[") {
				inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
			}
		}
	}
	var out []listeningSocket
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			const listen = "0A"
			if len(fields) < 10 || fields[3] != listen || !inodes[fields[9]] {
				continue
			}
			s, err := parseProcAddr(fields[1])
			if err != nil {
				f.Close()
				return nil, err
			}
			out = append(out, s)
		}
		f.Close()
	}
	return out, nil
}

// parseProcAddr parses /proc/net/tcp's "ADDR:PORT" (address in hex, 32-bit words in host order,
// little-endian here).
func parseProcAddr(s string) (listeningSocket, error) {
	host, port, ok := strings.Cut(s, ":")
	if !ok || (len(host) != 8 && len(host) != 32) {
		return listeningSocket{}, fmt.Errorf("address %q", s)
	}
	p, err := strconv.ParseUint(port, 16, 16)
	if err != nil {
		return listeningSocket{}, fmt.Errorf("port in %q: %w", s, err)
	}
	ip := make(net.IP, len(host)/2)
	for w := 0; w < len(host)/8; w++ {
		word, err := strconv.ParseUint(host[w*8:w*8+8], 16, 32)
		if err != nil {
			return listeningSocket{}, fmt.Errorf("address %q: %w", s, err)
		}
		for i := 0; i < 4; i++ {
			ip[w*4+i] = byte(word >> (8 * i))
		}
	}
	return listeningSocket{IP: ip, Port: int(p)}, nil
}

// TestListeningSocketsSeesWildcard: the socket check reports a listener on every interface
// (what the deployment must never open) and one on loopback as such.
func TestListeningSocketsSeesWildcard(t *testing.T) {
	wide, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer wide.Close()
	lo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lo.Close()
	socks, err := listeningSockets([]int{os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	var sawWide, sawLo bool
	for _, s := range socks {
		switch s.Port {
		case wide.Addr().(*net.TCPAddr).Port:
			sawWide = !s.IP.IsLoopback()
		case lo.Addr().(*net.TCPAddr).Port:
			sawLo = s.IP.IsLoopback()
		}
	}
	if !sawWide || !sawLo {
		t.Fatalf("sockets %v: wildcard seen as such %v, loopback %v", socks, sawWide, sawLo)
	}
}
