package infra_test

import (
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/keyline/keyline/infra"
	"github.com/keyline/keyline/internal/decl"
	"github.com/keyline/keyline/internal/keys"
	"github.com/keyline/keyline/internal/local/iam"
)

// Accounts of the evaluation: keyline's own and a customer's.
const (
	keylineAccount  = "000000000000"
	customerAccount = "111111111111"
	customerKeyARN  = "arn:aws:kms:us-east-1:111111111111:key/customer"
	evalOrg         = "acme"
)

// evaluator evaluates requests of keyline's functions against the generated policies: each
// function's identity policy, the customer key's policy for evalOrg (the contract's), and a
// provider key policy delegating to keyline's account as the CDK app's does.
type evaluator struct {
	t        *testing.T
	r        infra.Resources
	identity map[string]*iam.Policy
	keyPol   *iam.Policy
	provider *iam.Policy
}

func newEvaluator(t *testing.T, org string) *evaluator {
	t.Helper()
	d := infra.Description()
	r := localResources()
	pols, err := d.Policies(r)
	if err != nil {
		t.Fatal(err)
	}
	ev := &evaluator{t: t, r: r, identity: map[string]*iam.Policy{}}
	for name, p := range pols {
		if ev.identity[name], err = iam.ParsePolicy(name, p.JSON()); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, p.JSON())
		}
	}
	kd, err := d.CustomerKeyPolicyDocument(customerAccount, infra.KeyPolicyTarget{Org: org, Account: keylineAccount})
	if err != nil {
		t.Fatal(err)
	}
	if ev.keyPol, err = iam.ParsePolicy("customer-key", kd.JSON()); err != nil {
		t.Fatalf("customer key policy: %v\n%s", err, kd.JSON())
	}
	ev.provider = iam.MustParsePolicy("provider-key", `{"Version":"2012-10-17","Statement":[{"Sid":"AccountDelegatesToIAM",
		"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::`+keylineAccount+`:root"},
		"Action":["kms:Decrypt","kms:DescribeKey","kms:Encrypt","kms:GenerateDataKey"],"Resource":"*"}]}`)
	return ev
}

// kmsContext is the request context of a KMS call with an encryption context.
func kmsContext(encCtx map[string]string) iam.Context {
	c := iam.Context{}
	if len(encCtx) > 0 {
		ks := slices.Collect(maps.Keys(encCtx))
		sort.Strings(ks)
		c["kms:EncryptionContextKeys"] = iam.Strings(ks...)
	}
	for k, v := range encCtx {
		c["kms:EncryptionContext:"+k] = iam.String(v)
	}
	return c
}

// eval decides one request of function fn.
func (e *evaluator) eval(fn, action, resource string, ctx iam.Context) iam.Decision {
	e.t.Helper()
	if ctx == nil {
		ctx = iam.Context{}
	}
	var res *iam.Policy
	owner := keylineAccount
	switch {
	case strings.HasPrefix(resource, "arn:aws:kms:") && strings.Contains(resource, ":"+customerAccount+":"):
		res, owner = e.keyPol, customerAccount
	case resource == e.r.ProviderKeyARN:
		res = e.provider
	}
	ctx["aws:ResourceAccount"] = iam.String(owner)
	req := &iam.Request{Account: keylineAccount,
		Principal: iam.AssumedRoleARN(keylineAccount, infra.RoleName(infra.DefaultStackName, fn), fn),
		Action:    action, Resource: resource, Context: ctx}
	id, ok := e.identity[fn]
	if !ok {
		e.t.Fatalf("no policy for %s", fn)
	}
	return iam.Evaluate(req, []*iam.Policy{id}, res)
}

type probe struct {
	what     string
	action   string
	resource string
	ctx      iam.Context
}

// happyPath are the requests a function's Access list says it makes.
func (e *evaluator) happyPath(f infra.Function) []probe {
	r := e.r
	var out []probe
	orgCtx := keys.EncryptionContext(evalOrg, "app-1", 1, keys.PurposeData)
	for _, a := range f.Access {
		ls, _ := a.Levels()
		for _, l := range ls {
			switch a.Resource {
			case infra.Table:
				pk := "APP#app-1"
				if len(a.Partitions) > 0 {
					pk = a.Partitions[0] + "abc"
				}
				lk := iam.Context{"dynamodb:LeadingKeys": iam.Strings(pk)}
				switch l {
				case infra.LevelScan:
					out = append(out, probe{"scan the table", "dynamodb:Scan", r.TableARN, nil})
					continue
				case infra.LevelDelete:
					out = append(out, probe{"delete an item of its partitions", "dynamodb:DeleteItem", r.TableARN, lk})
					continue
				}
				out = append(out, probe{"read an item", "dynamodb:GetItem", r.TableARN, lk},
					probe{"read items in a batch", "dynamodb:BatchGetItem", r.TableARN, lk})
				if l == infra.LevelWrite {
					out = append(out, probe{"write an item", "dynamodb:PutItem", r.TableARN, lk},
						probe{"update an item", "dynamodb:UpdateItem", r.TableARN, lk})
				}
				if len(a.Partitions) == 0 {
					out = append(out, probe{"query the index", "dynamodb:Query", r.TableARN + "/index/" + infra.TableIndex,
						iam.Context{"dynamodb:LeadingKeys": iam.Strings("KEY#" + customerKeyARN)}})
				}
			case infra.DataBucket, infra.BackupBucket:
				bucket, obj, prefix := "arn:aws:s3:::"+r.DataBucket, "apps/app-1/cmk/x", "apps/app-1/"
				if a.Resource == infra.BackupBucket {
					bucket, obj, prefix = "arn:aws:s3:::"+r.BackupBucket, "backups/app-1/b1.klb", "backups/app-1/"
				}
				out = append(out, probe{"read an object", "s3:GetObject", bucket + "/" + obj, nil},
					probe{"list a prefix", "s3:ListBucket", bucket, iam.Context{"s3:prefix": iam.String(prefix)}})
				if l == infra.LevelWrite {
					out = append(out, probe{"write an object", "s3:PutObject", bucket + "/" + obj, nil},
						probe{"delete an object", "s3:DeleteObject", bucket + "/" + obj, nil})
				}
			case infra.EventBus:
				out = append(out, probe{"put audit events", "events:PutEvents", "arn:aws:events:us-east-1:" + keylineAccount + ":event-bus/" + r.EventBusName, nil})
			case infra.ProviderKey, infra.CustomerKeys:
				key := r.ProviderKeyARN
				encCtx := map[string]string{}
				maps.Copy(encCtx, orgCtx)
				if a.Resource == infra.CustomerKeys {
					key = customerKeyARN
				} else {
					encCtx["keyline:scope"] = "managed"
				}
				act := map[string]string{infra.LevelGenerate: "kms:GenerateDataKey", infra.LevelDecrypt: "kms:Decrypt",
					infra.LevelEncrypt: "kms:Encrypt", infra.LevelDescribe: "kms:DescribeKey"}[l]
				ctx := kmsContext(encCtx)
				if l == infra.LevelDescribe {
					ctx = nil
				}
				out = append(out, probe{string(a.Resource) + " " + l, act, key, ctx})
			}
		}
	}
	for _, m := range f.StartsStateMachines {
		out = append(out, probe{"start " + m, "states:StartExecution", r.StateMachineARNs[m], nil})
	}
	for _, m := range f.DescribedStateMachines() {
		out = append(out, probe{"describe an execution of " + m, "states:DescribeExecution",
			strings.Replace(r.StateMachineARNs[m], ":stateMachine:", ":execution:", 1) + ":run-1", nil})
	}
	return out
}

// TestEnforcementFindings are the denials met running the local deployment with enforcement
// on, each allowed now by the contract (and each denied by the contract as it was before).
func TestEnforcementFindings(t *testing.T) {
	e := newEvaluator(t, evalOrg)
	drillRun := strings.Replace(e.r.StateMachineARNs[infra.SMRestoreDrill], ":stateMachine:", ":execution:", 1) + ":weekly-1"
	// The console reports a scheduled restore drill's execution (GET /v1/executions/{arn},
	// B4): it follows the drill machine without starting it.
	if d := e.eval("console-api", "states:DescribeExecution", drillRun, nil); !d.Allowed {
		t.Errorf("console-api may not describe a restore drill's execution: %s", d)
	}
	if d := e.eval("console-api", "states:StartExecution", e.r.StateMachineARNs[infra.SMRestoreDrill], nil); d.Allowed {
		t.Errorf("console-api may start the restore-drill machine: %s", d)
	}
	// Reads derive the key state with one BatchGetItem of the keys (KEY#arn) on a page: every
	// reader of the table, console-api first (GET /v1/apps/{id} answered 500 without it).
	keysRead := iam.Context{"dynamodb:LeadingKeys": iam.Strings("KEY#" + customerKeyARN)}
	for _, fn := range []string{"console-api", infra.FnBackupListDue, infra.FnKeyNotify} {
		if d := e.eval(fn, "dynamodb:BatchGetItem", e.r.TableARN, keysRead); !d.Allowed {
			t.Errorf("%s may not read key items in a batch: %s", fn, d)
		}
	}
	// Before: the console described only the executions of the machines it starts.
	f, _ := infra.Description().Function("console-api")
	f.FollowsStateMachines = nil
	doc, err := f.Policy(e.r)
	if err != nil {
		t.Fatal(err)
	}
	e.identity["console-api"] = iam.MustParsePolicy("console-api-before", string(doc.JSON()))
	if d := e.eval("console-api", "states:DescribeExecution", drillRun, nil); d.Allowed {
		t.Errorf("the contract before the fix allows it too: the check cannot fail (%s)", d)
	}
}

// outOfScope are requests the function must not make: delete a table item (audit entries are
// append-only), and one beyond its access.
func (e *evaluator) outOfScope(f infra.Function) []probe {
	r := e.r
	out := []probe{{"delete an item", "dynamodb:DeleteItem", r.TableARN, iam.Context{"dynamodb:LeadingKeys": iam.Strings("APP#app-1")}}}
	has := map[infra.Resource]bool{}
	for _, a := range f.Access {
		has[a.Resource] = true
		if len(a.Partitions) > 0 && a.Level != infra.LevelDelete {
			out = append(out, probe{"read an app's item", "dynamodb:GetItem", r.TableARN, iam.Context{"dynamodb:LeadingKeys": iam.Strings("APP#app-1")}})
		}
	}
	if has[infra.CustomerKeys] {
		out = append(out, probe{"use the customer key for another org", "kms:Decrypt", customerKeyARN,
			kmsContext(keys.EncryptionContext("other-org", "app-9", 1, keys.PurposeData))},
			probe{"use the customer key with an undeclared context key", "kms:Decrypt", customerKeyARN,
				kmsContext(map[string]string{"keyline:org": evalOrg, "keyline:app": "app-1", "other": "x"})})
	} else {
		out = append(out, probe{"use a customer key", "kms:GenerateDataKey", customerKeyARN,
			kmsContext(keys.EncryptionContext(evalOrg, "app-1", 1, keys.PurposeData))})
	}
	if !has[infra.EventBus] {
		out = append(out, probe{"put events", "events:PutEvents", "arn:aws:events:us-east-1:" + keylineAccount + ":event-bus/" + r.EventBusName, nil})
	}
	if !has[infra.BackupBucket] {
		out = append(out, probe{"read a backup", "s3:GetObject", "arn:aws:s3:::" + r.BackupBucket + "/backups/app-1/b1.klb", nil})
	}
	out = append(out, probe{"write outside keyline's prefixes", "s3:PutObject", "arn:aws:s3:::" + r.DataBucket + "/elsewhere/x", nil})
	return out
}

// TestEveryFunctionAllowedItsPathAndDeniedBeyond evaluates, with the local endpoint's IAM
// evaluator, each function's representative requests (allowed) and requests beyond its
// scope (denied) against its generated policy and the customer key policy for one org.
func TestEveryFunctionAllowedItsPathAndDeniedBeyond(t *testing.T) {
	e := newEvaluator(t, evalOrg)
	for _, f := range infra.Description().Functions {
		t.Run(f.Name, func(t *testing.T) {
			e.t = t
			for _, p := range e.happyPath(f) {
				if d := e.eval(f.Name, p.action, p.resource, p.ctx); !d.Allowed {
					t.Errorf("%s (%s on %s) denied: %s", p.what, p.action, p.resource, d)
				}
			}
			for _, p := range e.outOfScope(f) {
				if d := e.eval(f.Name, p.action, p.resource, p.ctx); d.Allowed {
					t.Errorf("%s (%s on %s) allowed: %s", p.what, p.action, p.resource, d)
				}
			}
		})
	}
}

// pathFunction is the function that makes a recorded path's KMS calls in AWS.
var pathFunction = map[string]string{
	"create app":          "console-api",
	"cmk-scope write":     "console-api",
	"managed-scope write": "console-api",
	"backup":              infra.FnBackupUpload,
	"restore":             infra.FnRestoreRun,
	"restore drill":       infra.FnDrillRun,
	"key check":           infra.FnKeyHealth,
}

// TestRecordedKMSCallsAllowed evaluates the KMS calls the real code paths made (backup,
// restore, drill, managed- and CMK-scope writes, the key-health round trip) as their functions
// would make them in AWS: customer-key calls cross-account under the customer's key policy
// pinned to the org, provider-key calls under keyline's own. Under the policies keyline
// shipped before (three context keys) the backup and the managed-scope write are denied, and
// under a key policy pinned to another org every customer-key call is: the check can fail.
func TestRecordedKMSCallsAllowed(t *testing.T) {
	calls, providerKey, customerKey := recordedCalls(t)
	e := newEvaluator(t, evalOrg)
	other := newEvaluator(t, "other-org")
	customerCalls := 0
	for _, c := range calls {
		fn, ok := pathFunction[c.Path]
		if !ok {
			t.Fatalf("no function for path %q", c.Path)
		}
		resource := e.r.ProviderKeyARN
		switch c.KeyARN {
		case providerKey:
		case customerKey:
			resource = customerKeyARN
			customerCalls++
		default:
			t.Fatalf("%s: call on unknown key %s", c.Path, c.KeyARN)
		}
		ctx := kmsContext(c.Context)
		if c.Action == "kms:DescribeKey" {
			ctx = nil
		}
		if d := e.eval(fn, c.Action, resource, ctx); !d.Allowed {
			t.Errorf("%s: %s by %s with context keys %v: %s", c.Path, c.Action, fn, contextKeysOf(c), d)
		}
		if resource == customerKeyARN && c.Action != "kms:DescribeKey" {
			other.t = t
			if d := other.eval(fn, c.Action, resource, kmsContext(c.Context)); d.Allowed {
				t.Errorf("%s: %s allowed under a key policy pinned to another org: %s", c.Path, c.Action, d)
			}
		}
	}
	if customerCalls == 0 {
		t.Fatal("no customer-key call recorded")
	}
	// The policies as shipped before: the context keys app, generation and purpose only.
	old := strings.NewReplacer(`"keyline:backup",`, "", `"keyline:scope"`, `"keyline:purpose"`)
	refused := map[string]bool{}
	for _, c := range calls {
		if c.Action == "kms:DescribeKey" || c.KeyARN != providerKey && c.Path != "backup" {
			continue
		}
		p := infra.Description()
		f, _ := p.Function(pathFunction[c.Path])
		doc, err := f.Policy(e.r)
		if err != nil {
			t.Fatal(err)
		}
		broken, err := iam.ParsePolicy("old-"+f.Name, []byte(old.Replace(string(doc.JSON()))))
		if err != nil {
			t.Fatal(err)
		}
		resource := e.r.ProviderKeyARN
		if c.KeyARN == customerKey {
			resource = customerKeyARN
		}
		saved := e.identity[f.Name]
		e.identity[f.Name] = broken
		if d := e.eval(f.Name, c.Action, resource, kmsContext(c.Context)); !d.Allowed {
			refused[c.Path] = true
		}
		e.identity[f.Name] = saved
	}
	for _, p := range []string{"backup", "managed-scope write"} {
		if !refused[p] {
			t.Errorf("the policy without keyline:backup and keyline:scope allows every call of %s: the check cannot fail", p)
		}
	}
}

// TestConsoleMayFeedTheRevocationPath: a console request that meets a customer key's
// revoked-class error reports it to the revocation path in the console's own process (B2).
// The path confirms the refusal with the key check's calls, revokes the key in the table
// (its item and its audit entry, then the pending generations on it through the index) and
// puts the revocation's events on the bus: the console-api role must allow each of them, or
// the report fails and the app stays ACTIVE until the scheduled key-health check.
func TestConsoleMayFeedTheRevocationPath(t *testing.T) {
	calls, _, customerKey := recordedCalls(t)
	e := newEvaluator(t, evalOrg)
	checked := 0
	for _, c := range calls {
		if c.Path != "key check" || c.KeyARN != customerKey {
			continue
		}
		ctx := kmsContext(c.Context)
		if c.Action == "kms:DescribeKey" {
			ctx = nil
		}
		if d := e.eval(infra.FnConsoleAPI, c.Action, customerKeyARN, ctx); !d.Allowed {
			t.Errorf("the key check's %s with context keys %v, by %s: %s", c.Action, contextKeysOf(c), infra.FnConsoleAPI, d)
		}
		checked++
	}
	if checked == 0 {
		t.Fatal("no call of the key check recorded")
	}
	keyItem := iam.Context{"dynamodb:LeadingKeys": iam.Strings(decl.KeyPartitionPrefix + customerKeyARN)}
	for _, p := range []probe{
		{"revoke the key's item", "dynamodb:UpdateItem", e.r.TableARN, keyItem},
		{"append the key's audit entry", "dynamodb:PutItem", e.r.TableARN, keyItem},
		{"read the key's item", "dynamodb:GetItem", e.r.TableARN, keyItem},
		{"find the generations on the key", "dynamodb:Query", e.r.TableARN + "/index/" + infra.TableIndex, keyItem},
		{"put the revocation's events", "events:PutEvents", "arn:aws:events:us-east-1:" + keylineAccount + ":event-bus/" + e.r.EventBusName, nil},
	} {
		if d := e.eval(infra.FnConsoleAPI, p.action, p.resource, p.ctx); !d.Allowed {
			t.Errorf("%s (%s on %s) denied to %s: %s", p.what, p.action, p.resource, infra.FnConsoleAPI, d)
		}
	}
}
