package acceptance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/keyline/keyline/infra"
	"github.com/keyline/keyline/internal/console/api"
	"github.com/keyline/keyline/internal/fanout"
	"github.com/keyline/keyline/internal/invariants"
	"github.com/keyline/keyline/internal/sealing"
)

// demoSystem is what the rule checks need of a running keyline: the console, the AWS
// endpoint, and three test hooks of the local runtime (jumping the clock, losing
// CloudTrail deliveries, and registering an in-process function to observe the keyline bus).
type demoSystem struct {
	ConsoleURL    string
	OperatorToken string
	// AWS signs as keyline's operator in keyline's account (buckets, executions, the bus).
	AWS aws.Config
	// Customer signs as the customer in the customer's own account, where its keys live:
	// it creates them with keyline's key policy for the demo org and manages them.
	Customer     aws.Config
	DataBucket   string
	BackupBucket string
	EventBus     string
	// ProviderKeyARN is the provider-managed key (R1: managed-scope data is sealed under it).
	ProviderKeyARN string
	Advance        func(time.Duration)
	DropCloudTrail func(drop bool)
	// RegisterFunction registers an in-process Lambda function and returns its ARN.
	RegisterFunction func(name string, handler any) string
	// WaitIdle waits until the deployment is idle: every event delivered, no execution
	// running (what a check waits on before looking for something that must not happen).
	WaitIdle func(ctx context.Context) error
	// Invariants waits until the deployment is idle and checks DESIGN §7's invariants over
	// the lineage, the objects at rest and the executions (nil: not available).
	Invariants func(ctx context.Context) (invariants.Report, error)
}

// ruleCheck is one rule of DESIGN.md §1 checked end to end.
type ruleCheck struct {
	ID    string
	Check func(ctx context.Context, r *demoRun) (string, error)
}

// ruleChecks lists every rule, in the order the demo tells the story.
func ruleChecks() []ruleCheck {
	return []ruleCheck{
		{"R1", checkR1}, {"R2", checkR2}, {"R3", checkR3}, {"R4", checkR4}, {"R5", checkR5},
		{"R6", checkR6}, {"R7", checkR7}, {"R8", checkR8}, {"B1", checkB1}, {"B2", checkB2},
		{"B3", checkB3}, {"B4", checkB4}, {"B5", checkB5}, {"B6", checkB6}, {"B7", checkB7}, {"B8", checkB8},
		{"B9", checkB9}, {"B10", checkB10},
	}
}

// demoRun holds the clients of one run and the org every check works in.
type demoRun struct {
	sys   demoSystem
	op    *api.Client
	org   *api.Client
	orgID string
	// account is the customer's AWS account, enrolled by the demo org; keylineAccount is
	// keyline's own (its roles are what the customer's key policy admits).
	account        string
	keylineAccount string
	kms            *kms.Client
	s3             *s3.Client
	sfn            *sfn.Client
	lambda         *lambda.Client
	seq            atomic.Int64
	// blocks hands out the blocks of app numbers forks name their apps from; one counter for
	// a run and all its forks (and theirs), above the numbers the run itself uses.
	blocks *atomic.Int64
	// deliver hands a CloudTrail event to the key-event function (a broken variant may
	// tamper with deliveries); nil: invoke the deployment's keyevent function.
	deliver func(ctx context.Context, event []byte) error
	// serverErrors records every 5xx the console answered this run's clients.
	serverErrors *serverErrors
	// events holds the keyline events observed on the bus, shared by a run and its forks.
	events *eventLog
}

// eventLog records the events a rule on the keyline bus delivered to the demo's observer.
type eventLog struct {
	mu     sync.Mutex
	events []json.RawMessage
}

// fork returns a run in the same system and org with clients of its own, so that a check can
// run alongside others: its own record of server errors (a 5xx during another check is not
// its failure) and app names from a block of numbers no other run uses.
func (r *demoRun) fork() *demoRun {
	se := &serverErrors{next: http.DefaultTransport}
	client := &http.Client{Timeout: forkRequestTimeout, Transport: se}
	f := &demoRun{sys: r.sys, orgID: r.orgID, account: r.account, keylineAccount: r.keylineAccount,
		kms: r.kms, s3: r.s3, sfn: r.sfn, lambda: r.lambda, deliver: r.deliver, serverErrors: se, events: r.events}
	f.op = &api.Client{Base: r.op.Base, Token: r.op.Token, HTTP: client}
	f.org = &api.Client{Base: r.org.Base, Token: r.org.Token, HTTP: client}
	f.blocks = r.blocks
	f.seq.Store(r.blocks.Add(forkNames) - forkNames)
	return f
}

// forkRequestTimeout bounds one console request of a fork: longer than the shared run's
// minute, since a broken variant may answer in the console's place with many requests of its
// own, and checks running alongside each other share the machine.
const forkRequestTimeout = 5 * time.Minute

// forkBlocks returns the counter of a new run's fork blocks.
func forkBlocks() *atomic.Int64 {
	b := new(atomic.Int64)
	b.Store(firstForkName)
	return b
}

// forkNames is the size of the block of app numbers a fork names its apps from; the blocks
// start at firstForkName, above anything a run names itself.
const (
	forkNames     = 1000
	firstForkName = 1_000_000
)

// serverErrors is a RoundTripper that records the console's 5xx answers: a check during
// which the console answered a 5xx fails, whatever the check concluded.
type serverErrors struct {
	next http.RoundTripper
	mu   sync.Mutex
	seen []string
}

func (s *serverErrors) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := s.next.RoundTrip(req)
	if err == nil && res.StatusCode >= 500 {
		s.mu.Lock()
		s.seen = append(s.seen, fmt.Sprintf("%s %s answered %d", req.Method, req.URL.Path, res.StatusCode))
		s.mu.Unlock()
	}
	return res, err
}

// take returns the 5xx answers recorded since the last take and forgets them.
func (s *serverErrors) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.seen
	s.seen = nil
	return out
}

// runCheck runs one rule check; any 5xx the console answered during it fails the check
// (a server error is never a pass, nor a refusal).
func runCheck(ctx context.Context, r *demoRun, rc ruleCheck) (string, error) {
	if r.serverErrors != nil {
		r.serverErrors.take()
	}
	detail, err := rc.Check(ctx, r)
	if r.serverErrors != nil {
		if seen := r.serverErrors.take(); len(seen) > 0 {
			if err != nil {
				return "", violated("the console answered a server error during the check (%s): %v", strings.Join(seen, "; "), err)
			}
			return "", violated("the console answered a server error during the check: %s", strings.Join(seen, "; "))
		}
	}
	return detail, err
}

func newDemoRun(ctx context.Context, sys demoSystem) (*demoRun, error) {
	se := &serverErrors{next: http.DefaultTransport}
	r := &demoRun{
		sys:          sys,
		serverErrors: se,
		events:       &eventLog{},
		blocks:       forkBlocks(),
		op:           &api.Client{Base: sys.ConsoleURL, Token: sys.OperatorToken, HTTP: &http.Client{Timeout: time.Minute, Transport: se}},
		kms:          kms.NewFromConfig(sys.Customer),
		s3:           s3.NewFromConfig(sys.AWS, func(o *s3.Options) { o.UsePathStyle = true }),
		sfn:          sfn.NewFromConfig(sys.AWS),
		lambda:       lambda.NewFromConfig(sys.AWS),
		orgID:        fmt.Sprintf("demo-%d", time.Now().UnixNano()%1e9),
	}
	// The customer enrols the AWS account its keys live in (B10): the account of the
	// credentials the demo creates its keys with.
	who, err := sts.NewFromConfig(sys.Customer).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return nil, fmt.Errorf("the customer's account: %w", err)
	}
	r.account = aws.ToString(who.Account)
	if who, err = sts.NewFromConfig(sys.AWS).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); err != nil {
		return nil, fmt.Errorf("keyline's account: %w", err)
	}
	r.keylineAccount = aws.ToString(who.Account)
	if r.account == r.keylineAccount {
		return nil, fmt.Errorf("the customer's keys must live in an account of their own, not keyline's %s", r.keylineAccount)
	}
	if err := r.op.CreateOrg(ctx, api.CreateOrg{OrgID: r.orgID, Name: "Demo customer", Accounts: []string{r.account}}); err != nil {
		return nil, err
	}
	tok, err := r.op.CreateOrgToken(ctx, r.orgID, api.CreateOrgToken{})
	if err != nil {
		return nil, err
	}
	r.org = r.op.As(tok.Token)
	// Observe the keyline bus (B5) the way an operator would: a rule with a function target.
	arn := sys.RegisterFunction("demo-keyline-events", func(ctx context.Context, ev json.RawMessage) error {
		r.events.mu.Lock()
		r.events.events = append(r.events.events, ev)
		r.events.mu.Unlock()
		return nil
	})
	eb := eventbridge.NewFromConfig(sys.AWS)
	if _, err := eb.PutRule(ctx, &eventbridge.PutRuleInput{
		Name: aws.String("demo-keyline-events"), EventBusName: aws.String(sys.EventBus),
		EventPattern: aws.String(`{"source":["keyline"]}`),
	}); err != nil {
		return nil, fmt.Errorf("put a rule on the keyline bus: %w", err)
	}
	if _, err := eb.PutTargets(ctx, &eventbridge.PutTargetsInput{
		Rule: aws.String("demo-keyline-events"), EventBusName: aws.String(sys.EventBus),
		Targets: []ebtypes.Target{{Id: aws.String("recorder"), Arn: aws.String(arn)}},
	}); err != nil {
		return nil, fmt.Errorf("put the recorder target: %w", err)
	}
	return r, nil
}

// name returns a unique name for an app of this run.
func (r *demoRun) name(prefix string) string {
	return fmt.Sprintf("%s-%s-%d", prefix, r.orgID, r.seq.Add(1))
}

// newKey creates a customer key in the customer's account, with the key policy the
// customer is told to grant (`keyline key-policy --org ORG --account KEYLINE_ACCOUNT`, the
// deployment contract's statements) for the demo org.
func (r *demoRun) newKey(ctx context.Context, what string) (string, error) {
	pol, err := infra.Description().CustomerKeyPolicyDocument(r.account, infra.KeyPolicyTarget{Org: r.orgID, Account: r.keylineAccount})
	if err != nil {
		return "", fmt.Errorf("the customer key policy: %w", err)
	}
	out, err := r.kms.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("keyline demo: " + what), Policy: aws.String(string(pol.JSON()))})
	if err != nil {
		return "", fmt.Errorf("create a customer key: %w", err)
	}
	return aws.ToString(out.KeyMetadata.Arn), nil
}

// newApp creates an app; keyArn "" makes a provider-managed one.
func (r *demoRun) newApp(ctx context.Context, prefix, keyArn string) (string, error) {
	id := r.name(prefix)
	body := map[string]string{"appId": id, "orgId": r.orgID, "keyModel": "managed"}
	if keyArn != "" {
		body["keyModel"], body["keyArn"] = "cmk", keyArn
	}
	return id, r.org.Expect(ctx, 201, "POST", "/v1/apps", body, nil)
}

// newCMKApp creates a key and a CMK app on it with n CMK-scope objects and m managed-scope ones.
func (r *demoRun) newCMKApp(ctx context.Context, prefix string, n, m int) (app, key string, err error) {
	if key, err = r.newKey(ctx, prefix); err != nil {
		return "", "", err
	}
	if app, err = r.newApp(ctx, prefix, key); err != nil {
		return "", "", err
	}
	return app, key, r.fill(ctx, app, n, m)
}

// fillConcurrency is how many objects fill writes at once.
const fillConcurrency = 8

// fill writes n CMK-scope and m managed-scope objects whose content is derived from their path.
func (r *demoRun) fill(ctx context.Context, app string, n, m int) error {
	var paths []string
	for i := 0; i < n; i++ {
		paths = append(paths, fmt.Sprintf("cmk/obj-%04d", i))
	}
	for i := 0; i < m; i++ {
		paths = append(paths, fmt.Sprintf("managed/obj-%04d", i))
	}
	return fanout.Each(ctx, fillConcurrency, paths, func(ctx context.Context, path string) error {
		scope, _, _ := strings.Cut(path, "/")
		return r.org.PutObject(ctx, app, scope, path, []byte(objectContent(app, path)))
	})
}

func objectContent(app, path string) string {
	return strings.Repeat(fmt.Sprintf("%s:%s;", app, path), 40)
}

// read reads an object through the console and checks its content.
func (r *demoRun) read(ctx context.Context, app, scope, path string) error {
	a, err := r.org.Do(ctx, "GET", "/v1/apps/"+app+"/objects/"+path, nil, "X-Keyline-Scope", scope)
	if err != nil {
		return err
	}
	if a.Status != 200 {
		return fmt.Errorf("read %s/%s: %d %s", app, path, a.Status, a.Message())
	}
	if string(a.Body) != objectContent(app, path) {
		return fmt.Errorf("read %s/%s: content differs", app, path)
	}
	return nil
}

// backup runs an on-demand backup to its end and returns the app's newest backup.
func (r *demoRun) backup(ctx context.Context, app string) (api.Backup, error) {
	if _, err := r.org.Run(ctx, "/v1/apps/"+app+"/backups", map[string]string{}); err != nil {
		return api.Backup{}, err
	}
	bs, err := r.org.Backups(ctx, app)
	if err != nil {
		return api.Backup{}, err
	}
	if len(bs) == 0 {
		return api.Backup{}, fmt.Errorf("the backup of %s succeeded but no backup is listed", app)
	}
	return newest(bs), nil
}

func newest(bs []api.Backup) api.Backup { return bs[len(bs)-1] }

// waitStatus waits until the app has the status.
func (r *demoRun) waitStatus(ctx context.Context, app, status string, timeout time.Duration) (api.App, time.Duration, error) {
	start := time.Now()
	var a api.App
	err := api.Eventually(ctx, timeout, func() (bool, error) {
		var err error
		a, err = r.org.App(ctx, app)
		return err == nil && a.Status == status, err
	})
	if err != nil {
		return a, 0, fmt.Errorf("app %s is %s (%s), not %s: %w", app, a.Status, a.StatusReason, status, err)
	}
	return a, time.Since(start), nil
}

// reencrypt starts a re-encryption and returns its execution ARN.
func (r *demoRun) reencrypt(ctx context.Context, app, key string) (string, error) {
	return r.org.Start(ctx, "/v1/apps/"+app+"/reencryptions", map[string]string{"keyArn": key})
}

func (r *demoRun) disable(ctx context.Context, key string) error {
	_, err := r.kms.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(key)})
	return err
}

func (r *demoRun) enable(ctx context.Context, key string) error {
	_, err := r.kms.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(key)})
	return err
}

// restore requests a restore of backupID of source into target, returning the answer.
func (r *demoRun) restore(ctx context.Context, target, source, backupID string) (api.Answer, error) {
	return r.org.Do(ctx, "POST", "/v1/apps/"+target+"/restores", map[string]string{"backupId": backupID, "sourceAppId": source})
}

// stateMachine finds a state machine's ARN through the Step Functions API.
func (r *demoRun) stateMachine(ctx context.Context, name string) (string, error) {
	out, err := r.sfn.ListStateMachines(ctx, &sfn.ListStateMachinesInput{})
	if err != nil {
		return "", err
	}
	for _, m := range out.StateMachines {
		if aws.ToString(m.Name) == name || strings.HasSuffix(aws.ToString(m.Name), "-"+name) {
			return aws.ToString(m.StateMachineArn), nil
		}
	}
	return "", fmt.Errorf("no state machine named %s", name)
}

// runMachine starts a state machine directly (as a schedule does) and waits for its end.
func (r *demoRun) runMachine(ctx context.Context, name, input string) (api.Execution, error) {
	arn, err := r.stateMachine(ctx, name)
	if err != nil {
		return api.Execution{}, err
	}
	out, err := r.sfn.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(arn), Input: aws.String(input)})
	if err != nil {
		return api.Execution{}, err
	}
	return r.op.Wait(ctx, aws.ToString(out.ExecutionArn))
}

// deliverKeyEvent hands a CloudTrail key event to the key-event function, as the
// EventBridge rule does.
func (r *demoRun) deliverKeyEvent(ctx context.Context, event []byte) error {
	if r.deliver != nil {
		return r.deliver(ctx, event)
	}
	_, err := r.invoke(ctx, "keyevent", event)
	return err
}

// idle waits until the deployment is idle (every event delivered, no execution running):
// what a check waits on before asserting that something did not happen.
func (r *demoRun) idle(ctx context.Context) error {
	if r.sys.WaitIdle == nil {
		return prereq("waiting for the deployment to be idle", errors.New("the system has no idle signal"))
	}
	if err := r.sys.WaitIdle(ctx); err != nil {
		return prereq("waiting for the deployment to be idle", err)
	}
	return nil
}

// invoke calls a function through the Lambda API of the endpoint.
func (r *demoRun) invoke(ctx context.Context, fn string, payload []byte) ([]byte, error) {
	out, err := r.lambda.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String(fn), Payload: payload})
	if err != nil {
		return nil, err
	}
	if out.FunctionError != nil {
		return out.Payload, fmt.Errorf("function %s failed: %s", fn, out.Payload)
	}
	return out.Payload, nil
}

func hasAudit(entries []api.AuditEntry, action string) (api.AuditEntry, bool) {
	for _, e := range entries {
		if e.Action == action {
			return e, true
		}
	}
	return api.AuditEntry{}, false
}

func countAudit(entries []api.AuditEntry, action string) int {
	n := 0
	for _, e := range entries {
		if e.Action == action {
			n++
		}
	}
	return n
}

// rawObjects returns the sealed bytes at rest of an app's objects of one scope.
func (r *demoRun) rawObjects(ctx context.Context, app, scope string) (map[string][]byte, error) {
	out := map[string][]byte{}
	p := s3.NewListObjectsV2Paginator(r.s3, &s3.ListObjectsV2Input{Bucket: aws.String(r.sys.DataBucket), Prefix: aws.String("apps/" + app + "/" + scope + "/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, o := range page.Contents {
			g, err := r.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(r.sys.DataBucket), Key: o.Key})
			if err != nil {
				return nil, err
			}
			b, err := io.ReadAll(g.Body)
			g.Body.Close()
			if err != nil {
				return nil, err
			}
			out[aws.ToString(o.Key)] = b
		}
	}
	return out, nil
}

// sealedHeaders parses the sealed header of each of an app's objects of one scope at rest.
func (r *demoRun) sealedHeaders(ctx context.Context, app, scope string) (map[string]*sealing.Header, error) {
	raw, err := r.rawObjects(ctx, app, scope)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*sealing.Header, len(raw))
	for k, b := range raw {
		h, err := sealing.ReadHeader(bytes.NewReader(b))
		if err != nil {
			return nil, violated("object %s at rest has no readable sealed header: %v", k, err)
		}
		out[k] = h
	}
	return out, nil
}

// allSealedUnder checks that there are want headers, each naming key and (when gen > 0)
// generation gen.
func allSealedUnder(what string, hs map[string]*sealing.Header, want int, key string, gen int) error {
	if len(hs) != want {
		return violated("%s: %d objects at rest, want %d", what, len(hs), want)
	}
	for k, h := range hs {
		if h.KeyARN != key || (gen > 0 && h.Generation != gen) {
			return violated("%s: object %s is sealed at rest under generation %d on %s, want generation %d on %s", what, k, h.Generation, short(h.KeyARN), gen, short(key))
		}
	}
	return nil
}

// backupHeader reads the sealed header of a backup at rest.
func (r *demoRun) backupHeader(ctx context.Context, app, backupID string) (*sealing.Header, error) {
	k := backupKey(app, backupID)
	out, err := r.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(r.sys.BackupBucket), Key: aws.String(k)})
	if err != nil {
		return nil, violated("backup %s of %s is not at rest at %s: %v", backupID, app, k, err)
	}
	defer out.Body.Close()
	h, err := sealing.ReadHeader(out.Body)
	if err != nil {
		return nil, violated("backup %s of %s has no readable sealed header: %v", backupID, app, err)
	}
	return h, nil
}

// keylineEvents returns the detail-types of the keyline events observed so far.
func (r *demoRun) keylineEvents() []string {
	r.events.mu.Lock()
	defer r.events.mu.Unlock()
	var out []string
	for _, raw := range r.events.events {
		var ev struct {
			DetailType string `json:"detail-type"`
			Source     string `json:"source"`
		}
		if json.Unmarshal(raw, &ev) == nil && ev.Source == "keyline" {
			out = append(out, ev.DetailType)
		}
	}
	return out
}

// errPrereq marks a failure in setting up a check rather than in the rule itself.
func prereq(what string, err error) error { return fmt.Errorf("setting up (%s): %w", what, err) }

var errRule = errors.New("rule violated")

func violated(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errRule, fmt.Sprintf(format, a...))
}

func contains(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(strings.ToLower(s), strings.ToLower(sub)) {
			return true
		}
	}
	return false
}

func jsonBytes(v any) []byte { b, _ := json.Marshal(v); return b }
