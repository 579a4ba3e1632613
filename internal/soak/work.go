package soak

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	awslambda "github.com/aws/aws-sdk-go-v2/service/lambda"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/keyline/keyline/internal/console/api"
	"github.com/keyline/keyline/internal/invariants"
	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/local/fault"
	"github.com/keyline/keyline/internal/local/stack"
)

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// Workload shape.
const (
	objectsPerApp = 6
	// keysPerOrg is how many customer keys each org has (apps share them: B6).
	keysPerOrg = 3
	// managedShare is the share of apps on the provider's key.
	managedEvery = 5
	// reactivateAfter bounds how long a revoked key stays revoked.
	reactivateAfter = 8 * time.Second
	// requestTimeout bounds one console request.
	requestTimeout = 60 * time.Second
	// keyHealthFunction is the scheduled key-health function (the backstop of lost events).
	keyHealthFunction = "keyhealth"
	// stateMachineArnPrefix names the local state machines.
	stateMachineArnPrefix = "arn:aws:states:us-east-1:000000000000:stateMachine:"
)

type org struct {
	id, account string
	api         *api.Client
	keys        []string
	kms         *awskms.Client
}

type app struct {
	id  string
	org *org
	cmk bool

	mu      sync.Mutex // one writer per app at a time
	written map[string]bool
}

// clients are the driver's ways in: the console as the operator and as each org, and the
// AWS endpoint as an observer (its calls are never faulted).
type clients struct {
	http     *http.Client
	op       *api.Client
	cfg      aws.Config
	store    *lineage.Store
	s3       *awss3.Client
	sfn      *sfn.Client
	lambda   *awslambda.Client
	ddb      *awsddb.Client
	bucket   string
	kmsByAcc map[string]*awskms.Client
	keyMu    sync.Mutex
	disabled map[string]bool // keys the soak has revoked and not yet given back
}

func (d *driver) intn(n int) int {
	d.rngMu.Lock()
	defer d.rngMu.Unlock()
	return d.rng.IntN(n)
}

func observerConfig(endpoint, accessKey string) aws.Config {
	return aws.Config{
		Region: "us-east-1", BaseEndpoint: aws.String(endpoint),
		Credentials:                credentials.NewStaticCredentialsProvider(accessKey, "soak-secret", ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
		APIOptions:                 []func(*middleware.Stack) error{fault.ObserverAPIOption},
		RetryMaxAttempts:           10,
	}
}

// connect builds the clients from the deployment's stack.json.
func (d *driver) connect(context.Context) error {
	var st struct {
		TableName  string `json:"tableName"`
		DataBucket string `json:"dataBucket"`
	}
	b, err := os.ReadFile(filepath.Join(d.o.DataDir, "stack.json"))
	if err != nil {
		return fmt.Errorf("soak: the deployment's stack.json: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("soak: stack.json: %w", err)
	}
	ep := "http://" + d.ch.addr
	d.http = &http.Client{Timeout: requestTimeout, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
	d.op = &api.Client{Base: "http://" + d.ch.consoleAddr, Token: d.ch.token, HTTP: d.http}
	d.cfg = observerConfig(ep, "keyline")
	d.ddb = awsddb.NewFromConfig(d.cfg)
	d.store = lineage.New(d.ddb, st.TableName, lineage.Options{})
	d.s3 = awss3.NewFromConfig(d.cfg, func(o *awss3.Options) { o.UsePathStyle = true })
	d.sfn = sfn.NewFromConfig(d.cfg)
	d.lambda = awslambda.NewFromConfig(d.cfg)
	d.bucket = st.DataBucket
	d.kmsByAcc = map[string]*awskms.Client{}
	d.disabled = map[string]bool{}
	return nil
}

// kmsFor is a KMS client acting as the root of the key's account.
func (d *driver) kmsFor(account string) *awskms.Client {
	d.keyMu.Lock()
	defer d.keyMu.Unlock()
	c := d.kmsByAcc[account]
	if c == nil {
		c = awskms.NewFromConfig(observerConfig("http://"+d.ch.addr, account))
		d.kmsByAcc[account] = c
	}
	return c
}

func (d *driver) keyCount() int {
	n := 0
	for _, o := range d.orgs {
		n += len(o.keys)
	}
	return n
}

// retry runs f until it answers without a 5xx or a transport error (the deployment may be
// restarting); conflicts that mean "already done" are f's to accept.
func (d *driver) retry(ctx context.Context, what string, f func() (api.Answer, error)) (api.Answer, error) {
	var last error
	for attempt := 0; attempt < 30; attempt++ {
		if err := d.ch.waitUp(ctx); err != nil {
			return api.Answer{}, err
		}
		a, err := f()
		if err == nil && a.Status < 500 {
			return a, nil
		}
		last = err
		if err == nil {
			last = fmt.Errorf("%s answered %d: %s", what, a.Status, a.Message())
		}
		select {
		case <-ctx.Done():
			return api.Answer{}, ctx.Err()
		case <-time.After(time.Duration(100*(attempt+1)) * time.Millisecond):
		}
	}
	return api.Answer{}, fmt.Errorf("%s: %w", what, last)
}

// setup creates the orgs (each with its own customer account), their keys, and the apps.
func (d *driver) setup(ctx context.Context) error {
	for i := 0; i < d.o.Orgs; i++ {
		o := &org{id: fmt.Sprintf("soak-org-%d", i+1), account: fmt.Sprintf("1111111111%02d", i+1)}
		o.kms = d.kmsFor(o.account)
		a, err := d.retry(ctx, "create org "+o.id, func() (api.Answer, error) {
			return d.op.Do(ctx, "POST", "/v1/orgs", map[string]any{"orgId": o.id, "name": o.id, "accounts": []string{o.account}})
		})
		if err != nil {
			return err
		}
		if a.Status != 201 && a.Status != 409 {
			return fmt.Errorf("create org %s: %d %s", o.id, a.Status, a.Message())
		}
		var tok struct{ Token string }
		a, err = d.retry(ctx, "token of "+o.id, func() (api.Answer, error) {
			return d.op.Do(ctx, "POST", "/v1/orgs/"+o.id+"/tokens", map[string]any{})
		})
		if err != nil {
			return err
		}
		if err := a.Decode(&tok); err != nil || a.Status != 201 {
			return fmt.Errorf("token of %s: %d %s", o.id, a.Status, a.Message())
		}
		o.api = d.op.As(tok.Token)
		// IAM is enforced: each key admits keyline for its org alone, with the statements
		// `keyline key-policy` prints (B10).
		pol, err := stack.CustomerKeyPolicy(o.account, o.id)
		if err != nil {
			return fmt.Errorf("key policy of %s: %w", o.id, err)
		}
		for k := 0; k < keysPerOrg; k++ {
			out, err := o.kms.CreateKey(ctx, &awskms.CreateKeyInput{Description: aws.String(fmt.Sprintf("soak key %d of %s", k+1, o.id)), Policy: aws.String(pol)})
			if err != nil {
				return fmt.Errorf("key of %s: %w", o.id, err)
			}
			o.keys = append(o.keys, aws.ToString(out.KeyMetadata.Arn))
		}
		d.orgs = append(d.orgs, o)
	}
	for i := 0; i < d.o.Apps; i++ {
		o := d.orgs[i%len(d.orgs)]
		ap := &app{id: fmt.Sprintf("soak-app-%02d", i+1), org: o, cmk: i%managedEvery != managedEvery-1, written: map[string]bool{}}
		body := map[string]string{"appId": ap.id, "orgId": o.id, "keyModel": "managed"}
		if ap.cmk {
			body["keyModel"], body["keyArn"] = "cmk", o.keys[(i/len(d.orgs))%len(o.keys)]
		}
		a, err := d.retry(ctx, "create app "+ap.id, func() (api.Answer, error) { return o.api.Do(ctx, "POST", "/v1/apps", body) })
		if err != nil {
			return err
		}
		if a.Status != 201 && a.Status != 409 {
			return fmt.Errorf("create app %s: %d %s", ap.id, a.Status, a.Message())
		}
		d.apps = append(d.apps, ap)
	}
	return nil
}

// worker plays random actions until ctx ends.
func (d *driver) worker(ctx context.Context, i int) {
	rng := mrand.New(mrand.NewPCG(d.o.Seed, uint64(i)+100))
	for ctx.Err() == nil {
		if err := d.ch.waitUp(ctx); err != nil {
			return
		}
		ap := d.apps[rng.IntN(len(d.apps))]
		x := rng.IntN(100)
		switch {
		case x < 30:
			d.write(ctx, rng, ap)
		case x < 58:
			d.read(ctx, rng, ap)
		case x < 66:
			d.observe(ctx, ap)
		case x < 72:
			d.record(ctx, ap.org, ap, "backup", "POST", "/v1/apps/"+ap.id+"/backups", map[string]any{})
		case x < 73:
			d.startMachine(ctx, "backup", `{"requestedBy":"scheduler"}`)
		case x < 79:
			if ap.cmk {
				key := ap.org.keys[rng.IntN(len(ap.org.keys))]
				d.record(ctx, ap.org, ap, "reencrypt", "POST", "/v1/apps/"+ap.id+"/reencryptions", map[string]any{"keyArn": key})
			}
		case x < 82:
			d.revoke(ctx, rng, ap.org)
		case x < 88:
			d.restore(ctx, rng, ap)
		case x < 89:
			d.startMachine(ctx, "restore-drill", `{"requestedBy":"scheduler"}`)
		default:
			d.foreign(ctx, rng, ap)
		}
	}
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func status(a api.Answer, err error) int {
	if err != nil {
		return 0
	}
	return a.Status
}

// write puts one object of ap (its CMK or managed scope) and records what it was told.
func (d *driver) write(ctx context.Context, rng *mrand.Rand, ap *app) {
	path := "obj-" + strconv.Itoa(rng.IntN(objectsPerApp))
	cmk := ap.cmk && rng.IntN(5) != 0
	scope := "managed"
	if cmk {
		scope = "cmk"
		path = "c-" + path
	}
	body := make([]byte, 64+rng.IntN(2048))
	for i := range body {
		body[i] = byte(rng.IntN(256))
	}
	ap.mu.Lock()
	defer ap.mu.Unlock()
	end := d.rec.Begin(invariants.Op{Kind: invariants.OpWrite, Org: ap.org.id, App: ap.id, Path: path, CMK: cmk, Digest: digest(body)})
	a, err := ap.org.api.Do(ctx, "PUT", "/v1/apps/"+ap.id+"/objects/"+path, body, "X-Keyline-Scope", scope)
	res := invariants.Op{Status: status(a, err)}
	if err == nil && a.Status == 201 {
		var info struct {
			Generation int `json:"generation"`
		}
		_ = json.Unmarshal(a.Body, &info)
		res.Generation = info.Generation
		ap.written[path+"|"+scope] = true
	}
	if ctx.Err() != nil && res.Status == 0 {
		res.Status = 0 // cut off by the end of the workload: unknown
	}
	end(res)
}

// read gets one object ap was written and records the bytes' digest and generation.
func (d *driver) read(ctx context.Context, rng *mrand.Rand, ap *app) {
	ap.mu.Lock()
	var paths []string
	for p := range ap.written {
		paths = append(paths, p)
	}
	ap.mu.Unlock()
	if len(paths) == 0 {
		return
	}
	sortStrings(paths)
	d.readOne(ctx, ap, paths[rng.IntN(len(paths))])
}

func (d *driver) readOne(ctx context.Context, ap *app, pathScope string) invariants.Op {
	path, scope, _ := strings.Cut(pathScope, "|")
	end := d.rec.Begin(invariants.Op{Kind: invariants.OpRead, Org: ap.org.id, App: ap.id, Path: path, CMK: scope == "cmk"})
	req, err := http.NewRequestWithContext(ctx, "GET", ap.org.api.Base+"/v1/apps/"+ap.id+"/objects/"+path, nil)
	if err != nil {
		return end(invariants.Op{})
	}
	req.Header.Set("Authorization", "Bearer "+ap.org.api.Token)
	req.Header.Set("X-Keyline-Scope", scope)
	resp, err := d.http.Do(req)
	if err != nil {
		return end(invariants.Op{})
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return end(invariants.Op{})
	}
	res := invariants.Op{Status: resp.StatusCode}
	if resp.StatusCode == 200 {
		res.Digest = digest(b)
		res.Generation, _ = strconv.Atoi(resp.Header.Get("X-Keyline-Generation"))
	}
	return end(res)
}

// observe reads ap's state.
func (d *driver) observe(ctx context.Context, ap *app) {
	end := d.rec.Begin(invariants.Op{Kind: invariants.OpObserve, Org: ap.org.id, App: ap.id})
	var got api.App
	a, err := ap.org.api.Do(ctx, "GET", "/v1/apps/"+ap.id, nil)
	res := invariants.Op{Status: status(a, err)}
	if err == nil && a.Status == 200 && json.Unmarshal(a.Body, &got) == nil {
		res.AppStatus = got.Status
	}
	end(res)
}

// record makes one console call about ap and records it (as an observation of its outcome).
func (d *driver) record(ctx context.Context, o *org, ap *app, what, method, path string, body any) api.Answer {
	end := d.rec.Begin(invariants.Op{Kind: what, Org: o.id, App: ap.id, Detail: method + " " + path})
	a, err := o.api.Do(ctx, method, path, body)
	end(invariants.Op{Status: status(a, err)})
	return a
}

// startMachine starts a state machine as its schedule would.
func (d *driver) startMachine(ctx context.Context, name, input string) {
	end := d.rec.Begin(invariants.Op{Kind: "start-" + name, Detail: input})
	_, err := d.sfn.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(stateMachineArnPrefix + name), Input: aws.String(input)})
	st := 200
	if err != nil {
		st = 0
	}
	end(invariants.Op{Status: st})
}

// revoke disables (or schedules the deletion of) one of o's keys, and gives it back after a
// while: EnableKey, or CancelKeyDeletion then EnableKey.
func (d *driver) revoke(ctx context.Context, rng *mrand.Rand, o *org) {
	key := o.keys[rng.IntN(len(o.keys))]
	d.keyMu.Lock()
	if d.disabled[key] {
		d.keyMu.Unlock()
		return
	}
	d.disabled[key] = true
	d.keyMu.Unlock()
	schedule := rng.IntN(3) == 0
	what := "DisableKey"
	end := d.rec.Begin(invariants.Op{Kind: invariants.OpKeyChange, Org: o.id, KeyARN: key, Detail: what})
	var err error
	if schedule {
		what = "ScheduleKeyDeletion"
		_, err = o.kms.ScheduleKeyDeletion(ctx, &awskms.ScheduleKeyDeletionInput{KeyId: aws.String(key), PendingWindowInDays: aws.Int32(7)})
	} else {
		_, err = o.kms.DisableKey(ctx, &awskms.DisableKeyInput{KeyId: aws.String(key)})
	}
	st := 200
	if err != nil {
		st = 0
	}
	end(invariants.Op{Status: st, Detail: what})
	d.event("client", what+" "+key)
	wait := time.Duration(2+rng.IntN(int(reactivateAfter/time.Second))) * time.Second
	go func() {
		select {
		case <-time.After(wait):
		case <-ctx.Done():
		}
		d.giveBack(context.WithoutCancel(ctx), o, key, schedule)
	}()
}

// giveBack makes a revoked key usable again.
func (d *driver) giveBack(ctx context.Context, o *org, key string, scheduled bool) {
	if scheduled {
		end := d.rec.Begin(invariants.Op{Kind: invariants.OpKeyChange, Org: o.id, KeyARN: key, Detail: "CancelKeyDeletion"})
		_, err := o.kms.CancelKeyDeletion(ctx, &awskms.CancelKeyDeletionInput{KeyId: aws.String(key)})
		end(invariants.Op{Status: okStatus(err)})
	}
	end := d.rec.Begin(invariants.Op{Kind: invariants.OpKeyChange, Org: o.id, KeyARN: key, Detail: "EnableKey"})
	_, err := o.kms.EnableKey(ctx, &awskms.EnableKeyInput{KeyId: aws.String(key)})
	end(invariants.Op{Status: okStatus(err)})
	d.event("client", "EnableKey "+key)
	d.keyMu.Lock()
	delete(d.disabled, key)
	d.keyMu.Unlock()
}

func okStatus(err error) int {
	if err != nil {
		return 0
	}
	return 200
}

// restore restores one of ap's restorable backups into ap.
func (d *driver) restore(ctx context.Context, rng *mrand.Rand, ap *app) {
	a, err := ap.org.api.Do(ctx, "GET", "/v1/apps/"+ap.id+"/backups", nil)
	if err != nil || a.Status != 200 {
		return
	}
	var bs []api.Backup
	if a.Decode(&bs) != nil {
		return
	}
	var ok []api.Backup
	for _, b := range bs {
		if b.Restorable {
			ok = append(ok, b)
		}
	}
	if len(ok) == 0 {
		return
	}
	b := ok[rng.IntN(len(ok))]
	d.record(ctx, ap.org, ap, invariants.OpRestore, "POST", "/v1/apps/"+ap.id+"/restores", map[string]any{"backupId": b.BackupID})
}

// foreign tries another org's app with o's token: every answer must be 404 (I10).
func (d *driver) foreign(ctx context.Context, rng *mrand.Rand, target *app) {
	if len(d.orgs) < 2 {
		return
	}
	o := d.orgs[rng.IntN(len(d.orgs))]
	if o == target.org {
		o = d.orgs[(indexOf(d.orgs, o)+1)%len(d.orgs)]
	}
	type call struct {
		method, path string
		body         any
		hdr          []string
	}
	calls := []call{
		{"GET", "/v1/apps/" + target.id, nil, nil},
		{"GET", "/v1/apps/" + target.id + "/keys", nil, nil},
		{"GET", "/v1/apps/" + target.id + "/backups", nil, nil},
		{"GET", "/v1/apps/" + target.id + "/audit", nil, nil},
		{"GET", "/v1/apps/" + target.id + "/objects/c-obj-0", nil, []string{"X-Keyline-Scope", "cmk"}},
		{"PUT", "/v1/apps/" + target.id + "/objects/foreign", []byte("intruder"), []string{"X-Keyline-Scope", "managed"}},
		{"POST", "/v1/apps/" + target.id + "/backups", map[string]any{}, nil},
		{"POST", "/v1/apps/" + target.id + "/reencryptions", map[string]any{"keyArn": o.keys[0]}, nil},
	}
	c := calls[rng.IntN(len(calls))]
	end := d.rec.Begin(invariants.Op{Kind: invariants.OpForeign, Org: o.id, App: target.id, Detail: c.method + " " + c.path})
	a, err := o.api.Do(ctx, c.method, c.path, c.body, c.hdr...)
	end(invariants.Op{Status: status(a, err)})
}

func indexOf(orgs []*org, o *org) int {
	for i, x := range orgs {
		if x == o {
			return i
		}
	}
	return 0
}

func sortStrings(s []string) { sort.Strings(s) }

// settle gives every revoked key back, runs key health (the backstop of lost CloudTrail
// events) and waits until no execution runs.
func (d *driver) settle(ctx context.Context) error {
	if err := d.ch.waitUp(ctx); err != nil {
		return err
	}
	// Let the reactivation timers of the workload finish first.
	deadline := time.Now().Add(reactivateAfter + 5*time.Second)
	for time.Now().Before(deadline) {
		d.keyMu.Lock()
		n := len(d.disabled)
		d.keyMu.Unlock()
		if n == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Key health runs whether or not executions are still running: it is the backstop of
	// lost key events, and the final check of I8 is only fair once it has run.
	for round := 0; round < 2; round++ {
		if err := d.waitExecutions(ctx); err != nil {
			if ctx.Err() != nil {
				return err
			}
			d.event("settle", fmt.Sprintf("key health round %d with executions still running: %v", round+1, err))
		}
		if err := d.ch.waitUp(ctx); err != nil {
			return err
		}
		if _, err := d.lambda.Invoke(ctx, &awslambda.InvokeInput{FunctionName: aws.String(keyHealthFunction), Payload: []byte(`{}`)}); err != nil {
			return fmt.Errorf("key health: %w", err)
		}
	}
	return d.waitExecutions(ctx)
}

// waitExecutions waits until no execution of the deployment runs.
func (d *driver) waitExecutions(ctx context.Context) error {
	deadline := time.Now().Add(settleTimeout)
	for {
		if err := d.ch.waitUp(ctx); err != nil {
			return err
		}
		n := 0
		for _, m := range []string{"backup", "reencrypt", "restore", "restore-drill"} {
			out, err := d.sfn.ListExecutions(ctx, &sfn.ListExecutionsInput{StateMachineArn: aws.String(stateMachineArnPrefix + m), StatusFilter: sfntypes.ExecutionStatusRunning})
			if err != nil {
				if !d.ch.isUp() {
					n++
					continue
				}
				return err
			}
			n += len(out.Executions)
		}
		if n == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d executions still running after %v", n, settleTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// readBack reads every object back, retrying answers that say nothing (5xx, no answer).
func (d *driver) readBack(ctx context.Context) error {
	for _, ap := range d.apps {
		ap.mu.Lock()
		var paths []string
		for p := range ap.written {
			paths = append(paths, p)
		}
		ap.mu.Unlock()
		sortStrings(paths)
		for _, p := range paths {
			for attempt := 0; attempt < 10; attempt++ {
				if err := d.ch.waitUp(ctx); err != nil {
					return err
				}
				if r := d.readOne(ctx, ap, p); !r.Unknown() {
					break
				}
			}
		}
	}
	return nil
}

// check collects a snapshot and checks it with the history. A violation a snapshot shows
// (not the history) is counted only when a second snapshot of its app shows it too.
func (d *driver) check(ctx context.Context, final bool) error {
	if err := d.ch.waitUp(ctx); err != nil {
		return err
	}
	src := invariants.Sources{Store: d.store, S3: d.s3, DataBucket: d.bucket, SFN: d.sfn}
	// The history is read before the snapshot: every operation judged then ended before the
	// audit trails were read, so a reactivation that let one through is in them (I2).
	history := d.rec.Ops()
	snap, err := invariants.Collect(ctx, src, time.Now())
	if err != nil {
		return err
	}
	snap.History = history
	if final {
		snap.Final = true
		if err := d.keyStates(ctx, &snap); err != nil {
			return err
		}
		snap.KeysSettled = true
	}
	rep := invariants.Check(snap)
	var confirmed []invariants.Violation
	for _, v := range rep.Violations {
		if final || historyInvariant(v.Invariant) || v.AppID == "" {
			confirmed = append(confirmed, v)
			continue
		}
		again, err := invariants.Collect(ctx, src, time.Now(), v.AppID)
		if err != nil {
			return err
		}
		again.History = snap.History
		for _, w := range invariants.Check(again).Violations {
			if w.Invariant == v.Invariant && w.AppID == v.AppID {
				confirmed = append(confirmed, w)
				break
			}
		}
	}
	d.vMu.Lock()
	defer d.vMu.Unlock()
	d.checks++
	d.checked += rep.Checked
	for _, v := range confirmed {
		k := v.Invariant + "|" + v.AppID + "|" + v.Detail
		if _, ok := d.seen[k]; ok {
			continue
		}
		d.seen[k] = v
		d.timelines = append(d.timelines, d.timeline(v, snap))
		fmt.Fprintf(d.o.Out, "soak: VIOLATION %s\n", v)
	}
	return nil
}

func historyInvariant(inv string) bool {
	return inv == invariants.I2 || inv == invariants.I6 || inv == invariants.I10
}

// keyStates fills the snapshot's keys' KMS states, as each key's account sees them.
func (d *driver) keyStates(ctx context.Context, snap *invariants.Snapshot) error {
	for i, k := range snap.Keys {
		acct := strings.Split(k.ARN, ":")
		if len(acct) < 5 {
			continue
		}
		out, err := d.kmsFor(acct[4]).DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String(k.ARN)})
		if err != nil {
			var nf *kmstypes.NotFoundException
			if errors.As(err, &nf) {
				snap.Keys[i].KMS = "Deleted"
				continue
			}
			return fmt.Errorf("describe %s: %w", k.ARN, err)
		}
		snap.Keys[i].KMS = string(out.KeyMetadata.KeyState)
	}
	return nil
}

// timeline is the story of a violation's app: its recorded operations, its audit trail, and
// the driver's events, in time order.
func (d *driver) timeline(v invariants.Violation, snap invariants.Snapshot) Timeline {
	t := Timeline{Violation: v, SeenAt: time.Now().UTC()}
	for _, o := range snap.History {
		if v.AppID != "" && o.App != v.AppID {
			continue
		}
		t.Events = append(t.Events, TimelineEvent{Time: o.Start, Source: "client",
			What: fmt.Sprintf("%s %s org=%s path=%s status=%d gen=%d appStatus=%s digest=%.12s %s (%v)", o.Kind, o.App, o.Org, o.Path, o.Status, o.Generation, o.AppStatus, o.Digest, o.Detail, o.End.Sub(o.Start).Round(time.Millisecond))})
	}
	for _, a := range snap.Apps {
		if a.App.ID != v.AppID {
			continue
		}
		for _, e := range a.Audit {
			det, _ := json.Marshal(e.Detail)
			t.Events = append(t.Events, TimelineEvent{Time: e.Time, Source: "audit", What: e.Action + " " + string(det)})
		}
	}
	d.evMu.Lock()
	t.Events = append(t.Events, d.events...)
	d.evMu.Unlock()
	sortEvents(t.Events)
	const maxEvents = 400
	if len(t.Events) > maxEvents {
		t.Events = t.Events[len(t.Events)-maxEvents:]
	}
	return t
}

func sortEvents(es []TimelineEvent) {
	sort.SliceStable(es, func(i, j int) bool { return es[i].Time.Before(es[j].Time) })
}

// checkLoop checks the invariants every CheckEvery while the workload runs (ctx); a check
// under way when the workload ends finishes (runCtx).
func (d *driver) checkLoop(ctx, runCtx context.Context) {
	t := time.NewTicker(d.o.CheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !d.ch.isUp() {
			continue
		}
		start := time.Now()
		if err := d.check(runCtx, false); err != nil {
			d.o.Logger.Warn("soak: check", "err", err)
			fmt.Fprintf(d.o.Out, "soak: a check could not collect (%v); next round\n", err)
			continue
		}
		d.vMu.Lock()
		fmt.Fprintf(d.o.Out, "soak: check %d (%v): %d invariants checked so far, %d violated; %d operations recorded\n",
			d.checks, time.Since(start).Round(time.Millisecond), d.checked, len(d.seen), d.rec.Len())
		d.vMu.Unlock()
	}
}
