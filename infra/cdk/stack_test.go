package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/cxapi"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/keyline/keyline/infra"
)

// testDeployment is what the tests synthesize: the real description.
var testDeployment = infra.Description

// fixture is the stack, synthesized once for the whole test binary.
type fixture struct {
	root string
	desc infra.Deployment
	k    *Keyline
	tmpl map[string]any // the CloudFormation template
	nag  []string       // unsuppressed AwsSolutions errors and warnings
}

var (
	fxOnce sync.Once
	fx     *fixture
	fxErr  error
)

func TestMain(m *testing.M) {
	// The CLI's telemetry is off in tests, as everywhere keyline runs the CDK.
	os.Setenv("CDK_DISABLE_CLI_TELEMETRY", "true")
	os.Setenv("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
	os.Setenv("JSII_DEPRECATED", "quiet")
	code := m.Run()
	jsii.Close()
	os.Exit(code)
}

// bootstraps returns a directory with every function's bootstrap: $KEYLINE_FUNCTIONS_DIR
// when set (for example after `make build`), else a fresh build by
// scripts/build-functions.sh into a temporary directory.
func bootstraps(root string) (string, func(), error) {
	if d := os.Getenv("KEYLINE_FUNCTIONS_DIR"); d != "" {
		return d, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "keyline-functions-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	cmd := exec.Command("bash", filepath.Join(root, "scripts", "build-functions.sh"))
	cmd.Env = append(os.Environ(), "KEYLINE_FUNCTIONS_DIR="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("scripts/build-functions.sh: %w\n%s", err, out)
	}
	return dir, cleanup, nil
}

func setup(t *testing.T) *fixture {
	t.Helper()
	fxOnce.Do(func() {
		wd, err := os.Getwd()
		if err != nil {
			fxErr = err
			return
		}
		root, err := repoRoot(wd)
		if err != nil {
			fxErr = err
			return
		}
		dir, cleanup, err := bootstraps(root)
		if err != nil {
			fxErr = err
			return
		}
		defer cleanup()
		out, err := os.MkdirTemp("", "keyline-cdk-out-")
		if err != nil {
			fxErr = err
			return
		}
		defer os.RemoveAll(out)
		desc := testDeployment()
		app := newApp(&awscdk.AppProps{Outdir: jsii.String(out), BuiltinCloudFormationValidation: jsii.Bool(false)})
		k, err := New(app, StackName, Options{Deployment: desc, FunctionsDir: dir})
		if err != nil {
			fxErr = err
			return
		}
		// CloudFormation itself rejects cycles; the template checks here are the tests below.
		tm := assertions.Template_FromStack(k.Stack, &assertions.TemplateParsingOptions{SkipCyclicalDependenciesCheck: jsii.Bool(true)})
		raw, err := json.Marshal(tm.ToJSON())
		if err != nil {
			fxErr = err
			return
		}
		f := &fixture{root: root, desc: desc, k: k}
		if err := json.Unmarshal(raw, &f.tmpl); err != nil {
			fxErr = err
			return
		}
		ann := assertions.Annotations_FromStack(k.Stack)
		match := assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*"))
		for _, msgs := range []*[]*cxapi.SynthesisMessage{ann.FindError(jsii.String("*"), match), ann.FindWarning(jsii.String("*"), match)} {
			for _, m := range *msgs {
				f.nag = append(f.nag, fmt.Sprintf("%s: %v", *m.Id, m.Entry.Data))
			}
		}
		fx = f
	})
	if fxErr != nil {
		t.Fatalf("synthesizing keyline's stack: %v", fxErr)
	}
	return fx
}

// resources returns the template's resources of a type, by logical id.
func (f *fixture) resources(typ string) map[string]map[string]any {
	out := map[string]map[string]any{}
	for lid, r := range f.tmpl["Resources"].(map[string]any) {
		res := r.(map[string]any)
		if res["Type"] == typ {
			out[lid] = res
		}
	}
	return out
}

func (f *fixture) lid(c constructs.IConstruct) string { return f.k.logicalID(c) }

func props(r map[string]any) map[string]any {
	p, _ := r["Properties"].(map[string]any)
	return p
}

// resolve renders a template value as a string: intrinsics become <Ref X>, <X.Attr> and
// <AWS::Pseudo>, and Fn::Join is joined, so a test can compare what a value points at.
func resolve(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case map[string]any:
		if ref, ok := x["Ref"].(string); ok {
			if strings.HasPrefix(ref, "AWS::") {
				return "<" + ref + ">"
			}
			return "<Ref " + ref + ">"
		}
		if ga, ok := x["Fn::GetAtt"].([]any); ok && len(ga) == 2 {
			return fmt.Sprintf("<%v.%v>", ga[0], ga[1])
		}
		if j, ok := x["Fn::Join"].([]any); ok && len(j) == 2 {
			var parts []string
			for _, p := range j[1].([]any) {
				parts = append(parts, resolve(p))
			}
			return strings.Join(parts, j[0].(string))
		}
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func list(v any) []any {
	if l, ok := v.([]any); ok {
		return l
	}
	if v == nil {
		return nil
	}
	return []any{v}
}

// statement is one IAM statement, resolved.
type statement struct {
	Actions   []string
	Resources []string
	Condition map[string]any
	Effect    string
	Raw       map[string]any
}

func statementsOf(doc any) []statement {
	var out []statement
	for _, s := range list(doc.(map[string]any)["Statement"]) {
		m := s.(map[string]any)
		st := statement{Effect: fmt.Sprint(m["Effect"]), Raw: m}
		for _, a := range list(m["Action"]) {
			st.Actions = append(st.Actions, a.(string))
		}
		for _, r := range list(m["Resource"]) {
			st.Resources = append(st.Resources, resolve(r))
		}
		st.Condition, _ = m["Condition"].(map[string]any)
		out = append(out, st)
	}
	return out
}

// roleStatements are the statements of every policy attached to a role (by logical id).
func (f *fixture) roleStatements(roleLid string) []statement {
	var out []statement
	for _, p := range f.resources("AWS::IAM::Policy") {
		for _, r := range list(props(p)["Roles"]) {
			if resolve(r) == "<Ref "+roleLid+">" {
				out = append(out, statementsOf(props(p)["PolicyDocument"])...)
			}
		}
	}
	return out
}

func has(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func TestResourceCounts(t *testing.T) {
	f := setup(t)
	d := f.desc
	kmsRules := 0
	for _, r := range d.Rules {
		var p struct {
			Source []string `json:"source"`
		}
		if err := json.Unmarshal(r.EventPattern, &p); err != nil {
			t.Fatalf("rule %s: %v", r.Name, err)
		}
		if has(p.Source, "aws.kms") {
			kmsRules++
		}
	}
	api := 0
	if _, ok := d.Function(ConsoleAPIFunction); ok {
		api = 1
	}
	want := map[string]int{
		"AWS::Lambda::Function":            len(d.Functions),
		"AWS::Lambda::EventInvokeConfig":   len(d.Functions),
		"AWS::StepFunctions::StateMachine": len(d.StateMachines),
		// the description's, their mirrors on the customer bus, the audit bus's revocation rule
		"AWS::Events::Rule":           len(d.Rules) + kmsRules + 1,
		"AWS::Scheduler::Schedule":    len(d.Schedules),
		"AWS::Events::EventBus":       2,
		"AWS::Events::EventBusPolicy": 1,
		"AWS::DynamoDB::Table":        1,
		"AWS::KMS::Key":               2,
		"AWS::S3::Bucket":             3,
		"AWS::SQS::Queue":             1,
		"AWS::ApiGateway::RestApi":    api,
		// the operator token, generated by Secrets Manager
		"AWS::SecretsManager::Secret": api,
		"AWS::ApiGateway::Authorizer": api,
		// the authorizer's refusals in the console's error format: UNAUTHORIZED, ACCESS_DENIED
		"AWS::ApiGateway::GatewayResponse": 2 * api,
		"AWS::WAFv2::WebACL":               api,
		"AWS::WAFv2::WebACLAssociation":    api,
		"AWS::Logs::LogGroup":              len(d.Functions) + len(d.StateMachines) + api,
		// failed executions per machine, revocations, stale backups, failed invocations
		"AWS::CloudWatch::Alarm": len(d.StateMachines) + 3,
	}
	for typ, n := range want {
		if got := len(f.resources(typ)); got != n {
			t.Errorf("%s: %d resources, want %d", typ, got, n)
		}
	}
	if len(d.Functions) == 0 || len(d.StateMachines) == 0 {
		t.Errorf("the description deploys %d functions and %d state machines; keyline needs both", len(d.Functions), len(d.StateMachines))
	}
}

var cryptoActions = []string{"kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncryptFrom", "kms:ReEncryptTo"}

const customerKeyResource = "arn:<AWS::Partition>:kms:*:*:key/*"

// levelsOf merges a function's access levels per resource.
func levelsOf(fn infra.Function) map[infra.Resource]map[string]bool {
	out := map[infra.Resource]map[string]bool{}
	for _, a := range fn.Access {
		if out[a.Resource] == nil {
			out[a.Resource] = map[string]bool{}
		}
		for _, l := range strings.Split(a.Level, ",") {
			out[a.Resource][strings.TrimSpace(l)] = true
		}
	}
	return out
}

func TestFunctionPermissions(t *testing.T) {
	f := setup(t)
	tableArn := "<" + f.lid(f.k.Table) + ".Arn>"
	for _, fn := range f.desc.Functions {
		t.Run(fn.Name, func(t *testing.T) {
			lambda := f.resources("AWS::Lambda::Function")[f.lid(f.k.Functions[fn.Name])]
			if lambda == nil {
				t.Fatalf("no Lambda function for %s", fn.Name)
			}
			roleRef := resolve(props(lambda)["Role"]) // <RoleLid.Arn>
			roleLid := strings.TrimSuffix(strings.TrimPrefix(roleRef, "<"), ".Arn>")
			sts := f.roleStatements(roleLid)
			if len(sts) == 0 {
				t.Fatalf("role %s has no statements", roleLid)
			}
			lv := levelsOf(fn)
			actions := map[string][]statement{} // action → statements granting it
			for _, st := range sts {
				if st.Effect != "Allow" {
					t.Errorf("statement with effect %s: %v", st.Effect, st.Raw)
				}
				if _, ok := st.Raw["NotAction"]; ok {
					t.Errorf("NotAction statement: %v", st.Raw)
				}
				for _, a := range st.Actions {
					if strings.Contains(a, "*") {
						t.Errorf("wildcard action %q", a)
					}
					actions[a] = append(actions[a], st)
				}
				for _, r := range st.Resources {
					if r == "*" {
						t.Errorf("statement on every resource: %v", st.Raw)
					}
				}
				// Every KMS cryptographic grant is conditioned: keyline's encryption-context
				// keys for direct use, kms:ViaService for DynamoDB's and S3's at-rest encryption.
				crypto := false
				for _, a := range st.Actions {
					crypto = crypto || has(cryptoActions, a)
				}
				if crypto {
					if ec, via := ecKeys(st), viaServiceOf(st); ec == nil && via == "" {
						t.Errorf("KMS statement without an encryption-context or via-service condition: %v", st.Raw)
					}
				}
				if has(st.Resources, customerKeyResource) && crypto {
					if got, want := ecKeys(st), sorted(infra.ContextKeys()); !reflect.DeepEqual(got, want) {
						t.Errorf("customer-key statement's ForAllValues:StringEquals kms:EncryptionContextKeys = %v", got)
					}
					if n, _ := st.Condition["Null"].(map[string]any); n["kms:EncryptionContextKeys"] != "false" {
						t.Errorf("customer-key statement does not require an encryption context: %v", st.Condition)
					}
				}
			}
			grants := func(action, resource string) bool {
				for _, st := range actions[action] {
					for _, r := range st.Resources {
						if r == resource {
							return true
						}
					}
				}
				return false
			}
			// The table and its index: read-only where Access says read.
			confined := false
			for _, a := range fn.Access {
				// A delete's partitions confine its delete statement only.
				confined = confined || len(a.Partitions) > 0 && a.Level != infra.LevelDelete
			}
			if lv[infra.Table] != nil {
				for _, a := range []string{"dynamodb:GetItem", "dynamodb:Query"} {
					if !grants(a, tableArn) || !confined && !grants(a, tableArn+"/index/GSI1") {
						t.Errorf("%s not granted on the table and GSI1", a)
					}
					if confined && grants(a, tableArn+"/index/GSI1") {
						t.Errorf("%s granted on GSI1 to a function confined to some partitions", a)
					}
				}
				if confined {
					for _, st := range actions["dynamodb:GetItem"] {
						fa, _ := st.Condition["ForAllValues:StringLike"].(map[string]any)
						if len(list(fa["dynamodb:LeadingKeys"])) == 0 {
							t.Errorf("table statement of a confined function without dynamodb:LeadingKeys: %v", st.Raw)
						}
					}
				}
				if w := lv[infra.Table]["write"]; w != grants("dynamodb:PutItem", tableArn) || w != grants("dynamodb:UpdateItem", tableArn) {
					t.Errorf("table write=%v but PutItem/UpdateItem granted=%v/%v", w, grants("dynamodb:PutItem", tableArn), grants("dynamodb:UpdateItem", tableArn))
				}
			} else {
				for a := range actions {
					if strings.HasPrefix(a, "dynamodb:") {
						t.Errorf("%s granted without table access", a)
					}
				}
			}
			// Buckets: objects only under the bucket's prefixes.
			wantPrefixes := map[infra.Resource][]string{infra.DataBucket: {"apps/*", "drills/*", "reencrypt-stash/*"}, infra.BackupBucket: {"backups/*"}}
			for res, b := range map[infra.Resource]string{infra.DataBucket: f.lid(f.k.DataBucket), infra.BackupBucket: f.lid(f.k.BackupBucket)} {
				var objs []string
				for _, p := range wantPrefixes[res] {
					objs = append(objs, "<"+b+".Arn>/"+p)
				}
				for a, sts := range actions {
					for _, st := range sts {
						for _, r := range st.Resources {
							if strings.HasPrefix(r, "<"+b+".Arn>/") && !has(objs, r) {
								t.Errorf("%s on %s: outside the prefixes %v", a, r, wantPrefixes[res])
							}
							if r == "<"+b+".Arn>" && a == "s3:ListBucket" {
								sl, _ := st.Condition["StringLike"].(map[string]any)
								if got := list(sl["s3:prefix"]); len(got) != len(wantPrefixes[res]) {
									t.Errorf("s3:ListBucket on %s with prefix condition %v", res, st.Condition)
								}
							}
						}
					}
				}
				if lv[res] == nil {
					for _, a := range []string{"s3:GetObject", "s3:PutObject", "s3:ListBucket"} {
						if grants(a, objs[0]) || grants(a, "<"+b+".Arn>") {
							t.Errorf("%s granted on %s without access", a, res)
						}
					}
					continue
				}
				for _, o := range objs {
					if !grants("s3:GetObject", o) {
						t.Errorf("s3:GetObject not granted on %s", o)
					}
					if w := lv[res]["write"]; w != grants("s3:PutObject", o) || w != grants("s3:DeleteObject", o) {
						t.Errorf("%s write=%v but PutObject/DeleteObject on %s granted=%v/%v", res, w, o, grants("s3:PutObject", o), grants("s3:DeleteObject", o))
					}
				}
				if !grants("s3:ListBucket", "<"+b+".Arn>") {
					t.Errorf("s3:ListBucket not granted on %s", res)
				}
			}
			// Keys: exactly the levels asked for.
			for res, arn := range map[infra.Resource]string{infra.ProviderKey: "<" + f.lid(f.k.ProviderKey) + ".Arn>", infra.CustomerKeys: customerKeyResource} {
				for level, action := range map[string]string{"encrypt": "kms:Encrypt", "decrypt": "kms:Decrypt", "generate": "kms:GenerateDataKey", "describe": "kms:DescribeKey"} {
					direct := false
					for _, st := range actions[action] {
						if has(st.Resources, arn) && viaServiceOf(st) == "" {
							direct = true
						}
					}
					if want := lv[res][level]; direct != want {
						t.Errorf("%s %s: granted directly=%v, want %v", res, action, direct, want)
					}
				}
			}
			// State machines: start exactly the named ones.
			var started []string
			for _, st := range actions["states:StartExecution"] {
				for _, r := range st.Resources {
					started = append(started, r)
				}
			}
			var want []string
			for _, m := range fn.StartsStateMachines {
				want = append(want, "arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:stateMachine:"+StackName+"-"+m)
			}
			sort.Strings(started)
			sort.Strings(want)
			if !reflect.DeepEqual(started, want) {
				t.Errorf("states:StartExecution on %v, want %v", started, want)
			}
			var described, wantDescribed []string
			for _, st := range actions["states:DescribeExecution"] {
				described = append(described, st.Resources...)
			}
			for _, m := range append(slices.Clone(fn.StartsStateMachines), fn.FollowsStateMachines...) {
				wantDescribed = append(wantDescribed, "arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:"+StackName+"-"+m+":*")
			}
			sort.Strings(described)
			sort.Strings(wantDescribed)
			if !reflect.DeepEqual(described, wantDescribed) {
				t.Errorf("states:DescribeExecution on %v, want %v", described, wantDescribed)
			}
			// The operator token's secret: read by exactly the functions that check tokens.
			var secretRead []string
			for _, st := range actions["secretsmanager:GetSecretValue"] {
				secretRead = append(secretRead, st.Resources...)
			}
			for a := range actions {
				if strings.HasPrefix(a, "secretsmanager:") && a != "secretsmanager:GetSecretValue" {
					t.Errorf("%s granted: functions only read the operator token", a)
				}
			}
			if fn.ChecksOperatorToken() {
				if want := []string{"<Ref " + f.lid(f.k.OperatorTokenSecret) + ">"}; !reflect.DeepEqual(secretRead, want) {
					t.Errorf("secretsmanager:GetSecretValue on %v, want %v", secretRead, want)
				}
			} else if len(secretRead) > 0 {
				t.Errorf("secretsmanager:GetSecretValue on %v for a function that checks no token", secretRead)
			}
			if got := len(actions["events:PutEvents"]) > 0; got != (lv[infra.EventBus] != nil) {
				t.Errorf("events:PutEvents granted=%v, event-bus access=%v", got, lv[infra.EventBus] != nil)
			}
		})
	}
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	sort.Strings(out)
	return out
}

func ecKeys(st statement) []string {
	fa, _ := st.Condition["ForAllValues:StringEquals"].(map[string]any)
	var out []string
	for _, v := range list(fa["kms:EncryptionContextKeys"]) {
		out = append(out, v.(string))
	}
	sort.Strings(out)
	return out
}

func viaServiceOf(st statement) string {
	se, _ := st.Condition["StringEquals"].(map[string]any)
	if v, ok := se["kms:ViaService"]; ok {
		return resolve(v)
	}
	return ""
}

// TestNoWildcardActions covers every policy in the template (roles' policies, key policies,
// bucket, queue and bus policies): no statement allows a wildcard action. The one kind of
// wildcard allowed is a Deny of every action over plain HTTP (enforceSSL): a deny must
// cover all actions, and cdk-nag's S10/SQS4 checks require exactly that form.
func TestNoWildcardActions(t *testing.T) {
	f := setup(t)
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			if _, isStatement := x["Effect"]; isStatement {
				if _, ok := x["NotAction"]; ok {
					t.Errorf("%s: NotAction", path)
				}
				for _, a := range list(x["Action"]) {
					s, _ := a.(string)
					if !strings.Contains(s, "*") {
						continue
					}
					cond, _ := x["Condition"].(map[string]any)
					b, _ := cond["Bool"].(map[string]any)
					if x["Effect"] != "Deny" || b["aws:SecureTransport"] != "false" {
						t.Errorf("%s: wildcard action %q in %v", path, s, x)
					}
				}
			}
			for k, c := range x {
				walk(path+"."+k, c)
			}
		case []any:
			for i, c := range x {
				walk(fmt.Sprintf("%s[%d]", path, i), c)
			}
		}
	}
	for lid, r := range f.tmpl["Resources"].(map[string]any) {
		walk(lid, r)
	}
}

func TestFunctionsConfiguration(t *testing.T) {
	f := setup(t)
	dlq := "<" + f.lid(f.k.DLQ) + ".Arn>"
	configs := map[string]map[string]any{} // function lid → EventInvokeConfig
	for _, c := range f.resources("AWS::Lambda::EventInvokeConfig") {
		configs[strings.TrimPrefix(strings.TrimSuffix(resolve(props(c)["FunctionName"]), ">"), "<Ref ")] = c
	}
	for _, fn := range f.desc.Functions {
		lid := f.lid(f.k.Functions[fn.Name])
		p := props(f.resources("AWS::Lambda::Function")[lid])
		if p["Runtime"] != "provided.al2023" || p["Handler"] != "bootstrap" || !reflect.DeepEqual(p["Architectures"], []any{"arm64"}) {
			t.Errorf("%s: runtime %v, handler %v, architectures %v", fn.Name, p["Runtime"], p["Handler"], p["Architectures"])
		}
		rc, ok := p["ReservedConcurrentExecutions"]
		if fn.ReservedConcurrency > 0 && (!ok || rc != float64(fn.ReservedConcurrency)) || fn.ReservedConcurrency == 0 && ok {
			t.Errorf("%s: reserved concurrency %v, want %d", fn.Name, rc, fn.ReservedConcurrency)
		}
		env, _ := p["Environment"].(map[string]any)
		vars, _ := env["Variables"].(map[string]any)
		for _, name := range []string{infra.EnvTableName, infra.EnvDataBucket, infra.EnvBackupBucket, infra.EnvProviderKeyARN, infra.EnvEventBusName} {
			if _, ok := vars[name]; !ok {
				t.Errorf("%s: environment lacks %s", fn.Name, name)
			}
		}
		if got := resolve(vars[infra.EnvTableName]); got != "<Ref "+f.lid(f.k.Table)+">" {
			t.Errorf("%s: %s = %s", fn.Name, infra.EnvTableName, got)
		}
		for _, m := range fn.StartsStateMachines {
			want := "arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:stateMachine:" + StackName + "-" + m
			if got := resolve(vars[infra.StateMachineEnv(m)]); got != want {
				t.Errorf("%s: %s = %q, want %q", fn.Name, infra.StateMachineEnv(m), got, want)
			}
		}
		// The operator token's secret: its ARN where the function checks tokens, never a value.
		secretVar, hasSecret := vars[infra.EnvOperatorTokenSecret]
		if fn.ChecksOperatorToken() != hasSecret {
			t.Errorf("%s: %s given = %v, function checks tokens = %v", fn.Name, infra.EnvOperatorTokenSecret, hasSecret, fn.ChecksOperatorToken())
		}
		if hasSecret && resolve(secretVar) != "<Ref "+f.lid(f.k.OperatorTokenSecret)+">" {
			t.Errorf("%s: %s = %v, want the secret's ARN", fn.Name, infra.EnvOperatorTokenSecret, resolve(secretVar))
		}
		for k := range vars {
			if strings.Contains(strings.ToUpper(k), "TOKEN") && k != infra.EnvOperatorTokenSecret {
				t.Errorf("%s: environment variable %s looks like a token", fn.Name, k)
			}
		}
		for k, v := range fn.Env {
			if vars[k] != v {
				t.Errorf("%s: %s = %v, want %q", fn.Name, k, vars[k], v)
			}
		}
		lc, _ := p["LoggingConfig"].(map[string]any)
		lg := f.resources("AWS::Logs::LogGroup")[strings.TrimPrefix(strings.TrimSuffix(resolve(lc["LogGroup"]), ">"), "<Ref ")]
		if lg == nil || props(lg)["RetentionInDays"] == nil || props(lg)["KmsKeyId"] == nil {
			t.Errorf("%s: log group %v without retention or encryption", fn.Name, lc["LogGroup"])
		}
		c := configs[lid]
		if c == nil {
			t.Errorf("%s: no EventInvokeConfig", fn.Name)
			continue
		}
		dc, _ := props(c)["DestinationConfig"].(map[string]any)
		of, _ := dc["OnFailure"].(map[string]any)
		if resolve(of["Destination"]) != dlq {
			t.Errorf("%s: on-failure destination %v, want the DLQ", fn.Name, of["Destination"])
		}
	}
	q := props(f.resources("AWS::SQS::Queue")[f.lid(f.k.DLQ)])
	if q["SqsManagedSseEnabled"] != true && q["KmsMasterKeyId"] == nil {
		t.Errorf("DLQ not encrypted: %v", q)
	}
}

func TestRulePatternsAreTheDescriptions(t *testing.T) {
	f := setup(t)
	rules := f.resources("AWS::Events::Rule")
	for _, r := range f.desc.Rules {
		var want any
		if err := json.Unmarshal(r.EventPattern, &want); err != nil {
			t.Fatal(err)
		}
		res := rules[f.lid(f.k.Rules[r.Name])]
		if got := props(res)["EventPattern"]; !reflect.DeepEqual(got, want) {
			t.Errorf("rule %s: pattern %v, want the description's %v", r.Name, got, want)
		}
		_, onBus := props(res)["EventBusName"]
		if r.Bus == infra.BusKeyline {
			if got, want := resolve(props(res)["EventBusName"]), "<Ref "+f.lid(f.k.EventBus)+">"; got != want && got != *f.k.EventBus.EventBusName() {
				t.Errorf("rule %s is on bus %s, want keyline's bus", r.Name, got)
			}
		} else if onBus {
			t.Errorf("rule %s is not on the default bus (CloudTrail delivers there)", r.Name)
		}
		if cr, ok := f.k.CustomerRules[r.Name]; ok {
			cres := rules[f.lid(cr)]
			if got := props(cres)["EventPattern"]; !reflect.DeepEqual(got, want) {
				t.Errorf("customer-bus rule %s: pattern %v, want %v", r.Name, got, want)
			}
			if got, want := resolve(props(cres)["EventBusName"]), "<Ref "+f.lid(f.k.CustomerEventBus)+">"; got != want && got != *f.k.CustomerEventBus.EventBusName() {
				t.Errorf("customer-bus rule %s on bus %s", r.Name, got)
			}
		}
		targets := list(props(res)["Targets"])
		if len(targets) != 1 {
			t.Fatalf("rule %s: %d targets", r.Name, len(targets))
		}
		arn := resolve(targets[0].(map[string]any)["Arn"])
		if r.Target.StateMachine != "" && arn != "<Ref "+f.lid(f.k.StateMachines[r.Target.StateMachine])+">" ||
			r.Target.Function != "" && arn != "<"+f.lid(f.k.Functions[r.Target.Function])+".Arn>" {
			t.Errorf("rule %s targets %s, want %+v", r.Name, arn, r.Target)
		}
	}
	// The customer bus accepts events only from the enrolled accounts (the parameter).
	for _, p := range f.resources("AWS::Events::EventBusPolicy") {
		st := props(p)["Statement"].(map[string]any)
		if got := resolve(st["Principal"].(map[string]any)["AWS"]); got != "<Ref EnrolledCustomerAccounts>" {
			t.Errorf("customer bus policy principal %s", got)
		}
		if a := list(st["Action"]); len(a) != 1 || a[0] != "events:PutEvents" {
			t.Errorf("customer bus policy action %v", st["Action"])
		}
		// ...and of those, only their KMS events (what the forwarding rule carries).
		if se, _ := st["Condition"].(map[string]any)["StringEquals"].(map[string]any); se["events:source"] != "aws.kms" {
			t.Errorf("customer bus policy condition %v", st["Condition"])
		}
	}
}

// TestStateMachineDefinitions checks that each deployed definition is its ASL file with every
// placeholder replaced by the resource it names.
func TestStateMachineDefinitions(t *testing.T) {
	f := setup(t)
	sms := f.resources("AWS::StepFunctions::StateMachine")
	vars := map[string]string{
		"TableName":    "<Ref " + f.lid(f.k.Table) + ">",
		"DataBucket":   "<Ref " + f.lid(f.k.DataBucket) + ">",
		"BackupBucket": "<Ref " + f.lid(f.k.BackupBucket) + ">",
		"EventBusName": StackName + "-audit",
	}
	for _, fn := range f.desc.Functions {
		v := "<" + f.lid(f.k.Functions[fn.Name]) + ".Arn>"
		vars["Fn_"+fn.Name], vars["Fn_"+strings.ReplaceAll(fn.Name, "-", "_")] = v, v
	}
	for _, m := range f.desc.StateMachines {
		v := "arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:stateMachine:" + StackName + "-" + m.Name
		vars["SM_"+m.Name], vars["SM_"+strings.ReplaceAll(m.Name, "-", "_")] = v, v
	}
	for _, m := range f.desc.StateMachines {
		res := sms[f.lid(f.k.StateMachines[m.Name])]
		p := props(res)
		raw, err := infra.ASL(m)
		if err != nil {
			t.Fatal(err)
		}
		wantDef, err := infra.Substitute(raw, vars)
		if err != nil {
			t.Fatalf("%s: %v", m.Name, err)
		}
		var got, want any
		if err := json.Unmarshal([]byte(resolve(p["DefinitionString"])), &got); err != nil {
			t.Fatalf("%s: deployed definition is not JSON: %v", m.Name, err)
		}
		if err := json.Unmarshal(wantDef, &want); err != nil {
			t.Fatalf("%s: %v", m.Name, err)
		}
		if !reflect.DeepEqual(got, want) {
			g, _ := json.MarshalIndent(got, "", " ")
			t.Errorf("%s: deployed definition differs from %s after substitution:\n%s", m.Name, m.File, g)
		}
		if p["StateMachineType"] != "STANDARD" {
			t.Errorf("%s: type %v", m.Name, p["StateMachineType"])
		}
		if tc, _ := p["TracingConfiguration"].(map[string]any); tc["Enabled"] != true {
			t.Errorf("%s: tracing %v", m.Name, p["TracingConfiguration"])
		}
		if lc, _ := p["LoggingConfiguration"].(map[string]any); lc["Level"] != "ALL" {
			t.Errorf("%s: logging %v", m.Name, p["LoggingConfiguration"])
		}
		// Its role invokes exactly the functions it uses.
		roleLid := strings.TrimSuffix(strings.TrimPrefix(resolve(p["RoleArn"]), "<"), ".Arn>")
		var invoked []string
		for _, st := range f.roleStatements(roleLid) {
			if has(st.Actions, "lambda:InvokeFunction") {
				invoked = append(invoked, st.Resources...)
			}
		}
		var wantInv []string
		for _, fn := range f.k.machineFunctions(m, raw) {
			wantInv = append(wantInv, "<"+f.lid(f.k.Functions[fn])+".Arn>")
		}
		if regexp.MustCompile(`"Mode"\s*:\s*"DISTRIBUTED"`).Match(raw) {
			self := vars["SM_"+m.Name]
			children := "arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:" + StackName + "-" + m.Name + "/*"
			var start, describe bool
			for _, st := range f.roleStatements(roleLid) {
				start = start || has(st.Actions, "states:StartExecution") && reflect.DeepEqual(st.Resources, []string{self})
				describe = describe || has(st.Actions, "states:DescribeExecution") && reflect.DeepEqual(st.Resources, []string{children})
			}
			if !start || !describe {
				t.Errorf("%s has a Distributed Map but its role may start itself=%v, describe its children=%v", m.Name, start, describe)
			}
		}
		sort.Strings(invoked)
		sort.Strings(wantInv)
		if !reflect.DeepEqual(invoked, wantInv) {
			t.Errorf("%s: role invokes %v, want %v", m.Name, invoked, wantInv)
		}
	}
}

// dummyValue is a syntactically valid stand-in for a placeholder (asl-validator checks ARNs).
func dummyValue(name string) string {
	switch {
	case strings.HasPrefix(name, "Fn_"):
		return "arn:aws:lambda:us-east-1:123456789012:function:keyline-" + strings.TrimPrefix(name, "Fn_")
	case strings.HasPrefix(name, "SM_"):
		return "arn:aws:states:us-east-1:123456789012:stateMachine:keyline-" + strings.TrimPrefix(name, "SM_")
	case strings.HasSuffix(name, "Arn") || strings.HasSuffix(name, "ARN"):
		return "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"
	}
	return "keyline-" + strings.ToLower(name)
}

func TestASLValidator(t *testing.T) {
	f := setup(t)
	bin := filepath.Join(f.root, "tools", "node", "node_modules", ".bin", "asl-validator")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("asl-validator not installed (run `npm ci` in tools/node): %v", err)
	}
	files, err := filepath.Glob(filepath.Join(f.root, "infra", "statemachines", "*.asl.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no ASL files in infra/statemachines: %v", err)
	}
	tmp := t.TempDir()
	args := []string{}
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		vars := map[string]string{}
		for _, p := range infra.Placeholders(raw) {
			vars[p] = dummyValue(p)
		}
		def, err := infra.Substitute(raw, vars)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(tmp, filepath.Base(file))
		if err := os.WriteFile(path, def, 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--json-path", path)
	}
	// One run for every file (node starts once); it names each file it finds invalid.
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Errorf("invalid ASL among %d files: %v\n%s", len(files), err, out)
	}
	if n := strings.Count(string(out), "is valid"); n != len(files) {
		t.Errorf("asl-validator reported %d valid definitions of %d:\n%s", n, len(files), out)
	}
	// The validator does reject an invalid definition (so a pass above means something).
	bad := filepath.Join(tmp, "bad.json")
	os.WriteFile(bad, []byte(`{"StartAt":"Nowhere","States":{"A":{"Type":"Pass","End":true}}}`), 0o600)
	if err := exec.Command(bin, "--json-path", bad).Run(); err == nil {
		t.Error("asl-validator accepted a definition whose StartAt names no state")
	}
}

// TestOperatorTokenSecret: the operator token is a secret Secrets Manager generates at deploy
// time with at least 256 bits, named as the contract names it; no parameter carries a token.
func TestOperatorTokenSecret(t *testing.T) {
	f := setup(t)
	secrets := f.resources("AWS::SecretsManager::Secret")
	p := props(secrets[f.lid(f.k.OperatorTokenSecret)])
	if p == nil {
		t.Fatalf("no operator token secret among %v", secrets)
	}
	if got, want := p["Name"], infra.OperatorTokenSecretName(StackName); got != want {
		t.Errorf("secret name %v, want %s", got, want)
	}
	g, _ := p["GenerateSecretString"].(map[string]any)
	length, _ := g["PasswordLength"].(float64)
	if g["ExcludePunctuation"] != true || int(length) != infra.OperatorTokenLength {
		t.Errorf("generation %v", g)
	}
	if bits := length * math.Log2(infra.OperatorTokenAlphabet); bits < 256 {
		t.Errorf("a generated token has %.0f bits, want at least 256", bits)
	}
	if _, ok := p["SecretString"]; ok {
		t.Error("the template carries the token itself")
	}
	params, _ := f.tmpl["Parameters"].(map[string]any)
	for name := range params {
		if strings.Contains(strings.ToLower(name), "token") {
			t.Errorf("stack parameter %s: the token is generated, never passed in", name)
		}
	}
}

func TestNagClean(t *testing.T) {
	f := setup(t)
	for _, m := range f.nag {
		t.Error(m)
	}
}

func TestStorage(t *testing.T) {
	f := setup(t)
	tp := props(f.resources("AWS::DynamoDB::Table")[f.lid(f.k.Table)])
	if tp["BillingMode"] != "PAY_PER_REQUEST" || tp["DeletionProtectionEnabled"] != true {
		t.Errorf("table billing %v, deletion protection %v", tp["BillingMode"], tp["DeletionProtectionEnabled"])
	}
	if p, _ := tp["PointInTimeRecoverySpecification"].(map[string]any); p["PointInTimeRecoveryEnabled"] != true {
		t.Errorf("table PITR %v", tp["PointInTimeRecoverySpecification"])
	}
	if ttl, _ := tp["TimeToLiveSpecification"].(map[string]any); ttl["AttributeName"] != "ExpiresAt" || ttl["Enabled"] != true {
		t.Errorf("table TTL %v", tp["TimeToLiveSpecification"])
	}
	sse, _ := tp["SSESpecification"].(map[string]any)
	if sse["SSEEnabled"] != true || resolve(sse["KMSMasterKeyId"]) != "<"+f.lid(f.k.ProviderKey)+".Arn>" {
		t.Errorf("table encryption %v", sse)
	}
	gsis := list(tp["GlobalSecondaryIndexes"])
	if len(gsis) != 1 || gsis[0].(map[string]any)["IndexName"] != "GSI1" ||
		gsis[0].(map[string]any)["Projection"].(map[string]any)["ProjectionType"] != "ALL" {
		t.Errorf("GSIs %v", gsis)
	}
	for name, b := range map[string]string{"data": f.lid(f.k.DataBucket), "backup": f.lid(f.k.BackupBucket)} {
		bp := props(f.resources("AWS::S3::Bucket")[b])
		enc := bp["BucketEncryption"].(map[string]any)["ServerSideEncryptionConfiguration"].([]any)[0].(map[string]any)["ServerSideEncryptionByDefault"].(map[string]any)
		if enc["SSEAlgorithm"] != "aws:kms" || resolve(enc["KMSMasterKeyID"]) != "<"+f.lid(f.k.ProviderKey)+".Arn>" {
			t.Errorf("%s bucket encryption %v", name, enc)
		}
		if v, _ := bp["VersioningConfiguration"].(map[string]any); v["Status"] != "Enabled" {
			t.Errorf("%s bucket versioning %v", name, bp["VersioningConfiguration"])
		}
		if l, _ := bp["LoggingConfiguration"].(map[string]any); resolve(l["DestinationBucketName"]) != "<Ref "+f.lid(f.k.LogsBucket)+">" {
			t.Errorf("%s bucket access logging %v", name, bp["LoggingConfiguration"])
		}
		pab, _ := bp["PublicAccessBlockConfiguration"].(map[string]any)
		for _, k := range []string{"BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"} {
			if pab[k] != true {
				t.Errorf("%s bucket %s = %v", name, k, pab[k])
			}
		}
		noncurrent := false
		for _, r := range list(bp["LifecycleConfiguration"].(map[string]any)["Rules"]) {
			noncurrent = noncurrent || r.(map[string]any)["NoncurrentVersionExpiration"] != nil
		}
		if !noncurrent {
			t.Errorf("%s bucket has no lifecycle for noncurrent versions", name)
		}
	}
	stash := false
	for _, r := range list(props(f.resources("AWS::S3::Bucket")[f.lid(f.k.DataBucket)])["LifecycleConfiguration"].(map[string]any)["Rules"]) {
		rule := r.(map[string]any)
		stash = stash || (rule["Prefix"] == "reencrypt-stash/" && rule["ExpirationInDays"] != nil)
	}
	if !stash {
		t.Errorf("the data bucket has no expiry backstop for the re-encryption stash")
	}
	for _, k := range f.resources("AWS::KMS::Key") {
		if props(k)["EnableKeyRotation"] != true {
			t.Errorf("KMS key without rotation: %v", props(k)["Description"])
		}
	}
}

func TestSchedules(t *testing.T) {
	f := setup(t)
	for _, s := range f.desc.Schedules {
		p := props(f.resources("AWS::Scheduler::Schedule")[*f.k.Stack.GetLogicalId(f.k.Schedules[s.Name])])
		if p["ScheduleExpression"] != s.Expression {
			t.Errorf("%s: expression %v, want %s", s.Name, p["ScheduleExpression"], s.Expression)
		}
		if tw, _ := p["FlexibleTimeWindow"].(map[string]any); tw["Mode"] != "OFF" {
			t.Errorf("%s: flexible time window %v", s.Name, tw)
		}
		tz := s.Timezone
		if tz == "" {
			tz = "UTC"
		}
		if p["ScheduleExpressionTimezone"] != tz {
			t.Errorf("%s: timezone %v, want %s", s.Name, p["ScheduleExpressionTimezone"], tz)
		}
		target := p["Target"].(map[string]any)
		arn := resolve(target["Arn"])
		action, want := "lambda:InvokeFunction", ""
		if s.Target.StateMachine != "" {
			action, want = "states:StartExecution", "arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:stateMachine:"+StackName+"-"+s.Target.StateMachine
		} else {
			want = "<" + f.lid(f.k.Functions[s.Target.Function]) + ".Arn>"
		}
		if arn != want {
			t.Errorf("%s: target %s, want %s", s.Name, arn, want)
		}
		roleLid := strings.TrimSuffix(strings.TrimPrefix(resolve(target["RoleArn"]), "<"), ".Arn>")
		for _, st := range f.roleStatements(roleLid) {
			for _, a := range st.Actions {
				switch {
				case a == action && reflect.DeepEqual(st.Resources, []string{want}):
				case a == "sqs:SendMessage" && reflect.DeepEqual(st.Resources, []string{"<" + f.lid(f.k.DLQ) + ".Arn>"}):
				default:
					t.Errorf("%s: schedule role may %s on %v", s.Name, a, st.Resources)
				}
			}
		}
	}
}

func TestAlarms(t *testing.T) {
	f := setup(t)
	var stale, failed, revoked int
	for _, a := range f.resources("AWS::CloudWatch::Alarm") {
		p := props(a)
		if p["Namespace"] == MetricNamespace && p["MetricName"] == MetricBackupAgeSeconds {
			stale++
			// Exactly what internal/workflow/backup publishes (EMF, Dimensions [[]]: none),
			// and no breach on a fresh stack that has not run a backup yet.
			if p["Dimensions"] != nil || p["Statistic"] != "Maximum" || p["TreatMissingData"] != "notBreaching" ||
				p["ComparisonOperator"] != "GreaterThanThreshold" || p["Threshold"] != (26*time.Hour).Seconds() {
				t.Errorf("stale-backup alarm: dimensions %v, statistic %v, missing data %v, %v %v",
					p["Dimensions"], p["Statistic"], p["TreatMissingData"], p["ComparisonOperator"], p["Threshold"])
			}
		}
		if p["Namespace"] == "AWS/States" && p["MetricName"] == "ExecutionsFailed" {
			failed++
		}
		if p["Namespace"] == "AWS/Events" && p["MetricName"] == "TriggeredRules" {
			for _, dim := range list(p["Dimensions"]) {
				if dm := dim.(map[string]any); dm["Name"] == "RuleName" && resolve(dm["Value"]) == "<Ref "+f.lid(f.k.RevocationRule)+">" {
					revoked++
				}
			}
		}
	}
	if stale != 1 || failed != len(f.desc.StateMachines) || revoked != 1 {
		t.Errorf("%d stale-backup alarms (want 1), %d failed-execution alarms (want %d), %d revocation alarms (want 1)", stale, failed, len(f.desc.StateMachines), revoked)
	}
	rule := props(f.resources("AWS::Events::Rule")[f.lid(f.k.RevocationRule)])
	var want map[string]any
	if err := json.Unmarshal(infra.RevocationAlarmPattern(), &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rule["EventPattern"], want) || resolve(rule["EventBusName"]) == "" {
		t.Errorf("revocation rule %v", rule)
	}
}

func TestConsoleAPI(t *testing.T) {
	f := setup(t)
	if _, ok := f.desc.Function(ConsoleAPIFunction); !ok {
		if f.k.API != nil {
			t.Error("an API without a console-api function")
		}
		return
	}
	// The gateway checks every request's bearer token with the console-authorizer function.
	authFn, ok := f.desc.Function(ConsoleAuthorizerFunction)
	if !ok {
		t.Fatalf("the description has %s but no %s", ConsoleAPIFunction, ConsoleAuthorizerFunction)
	}
	if len(authFn.Access) != 2 || authFn.Access[0].Resource != infra.Table || authFn.Access[0].Level != "read" || len(authFn.Access[0].Partitions) == 0 ||
		authFn.Access[1].Resource != infra.OperatorTokenSecret || authFn.Access[1].Level != infra.LevelRead {
		t.Errorf("%s access %v, want the table read only, confined to token items, and the operator token's secret read", authFn.Name, authFn.Access)
	}
	auths := f.resources("AWS::ApiGateway::Authorizer")
	if len(auths) != 1 {
		t.Fatalf("%d API authorizers, want 1", len(auths))
	}
	var authLid string
	for lid, a := range auths {
		authLid = lid
		p := props(a)
		uri := resolve(p["AuthorizerUri"])
		fnArn := "<" + f.lid(f.k.Functions[ConsoleAuthorizerFunction]) + ".Arn>"
		ttl, _ := p["AuthorizerResultTtlInSeconds"].(float64)
		if p["Type"] != "TOKEN" || !strings.Contains(uri, fnArn) || p["IdentitySource"] != "method.request.header.Authorization" ||
			ttl <= 0 || ttl > 300 || p["IdentityValidationExpression"] != ConsoleAuthorizationPattern {
			t.Errorf("authorizer %s: type %v, uri %s (want %s), identity %v, ttl %v, validation %v",
				lid, p["Type"], uri, fnArn, p["IdentitySource"], p["AuthorizerResultTtlInSeconds"], p["IdentityValidationExpression"])
		}
	}
	// API Gateway may invoke the authorizer function, and only it may.
	invokable := false
	for _, perm := range f.resources("AWS::Lambda::Permission") {
		p := props(perm)
		if resolve(p["FunctionName"]) == "<"+f.lid(f.k.Functions[ConsoleAuthorizerFunction])+".Arn>" &&
			p["Principal"] == "apigateway.amazonaws.com" && strings.Contains(resolve(p["SourceArn"]), "/authorizers/<Ref "+authLid+">") {
			invokable = true
		}
	}
	if !invokable {
		t.Error("no permission for API Gateway to invoke the authorizer function (as that authorizer)")
	}
	methods := f.resources("AWS::ApiGateway::Method")
	if len(methods) == 0 {
		t.Fatal("no API methods")
	}
	for lid, m := range methods {
		p := props(m)
		if at, auth := p["AuthorizationType"], resolve(p["AuthorizerId"]); at != "CUSTOM" || auth != "<Ref "+authLid+">" {
			t.Errorf("method %s (%v): authorization %v by %s, want CUSTOM by <Ref %s>", lid, p["HttpMethod"], at, auth, authLid)
		}
		if p["RequestValidatorId"] == nil {
			t.Errorf("method %s: no request validator", lid)
		}
	}
	// The gateway's refusals answer like the console's: 401, {"error":{"code":"Unauthorized",...}}.
	refusals := map[string]bool{}
	for lid, r := range f.resources("AWS::ApiGateway::GatewayResponse") {
		p := props(r)
		tmpl, _ := p["ResponseTemplates"].(map[string]any)
		var body struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		s, _ := tmpl["application/json"].(string)
		if err := json.Unmarshal([]byte(s), &body); err != nil || body.Error.Code != "Unauthorized" || body.Error.Message == "" || p["StatusCode"] != "401" {
			t.Errorf("gateway response %s: status %v, body %q (%v)", lid, p["StatusCode"], s, err)
		}
		refusals[fmt.Sprint(p["ResponseType"])] = true
	}
	if !refusals["UNAUTHORIZED"] || !refusals["ACCESS_DENIED"] {
		t.Errorf("gateway responses for %v, want UNAUTHORIZED and ACCESS_DENIED", refusals)
	}
	if len(f.resources("AWS::WAFv2::WebACLAssociation")) != 1 {
		t.Error("the console API stage has no WAF web ACL")
	}
	for _, s := range f.resources("AWS::ApiGateway::Stage") {
		p := props(s)
		if p["AccessLogSetting"] == nil || p["TracingEnabled"] != true {
			t.Errorf("stage: access logging %v, tracing %v", p["AccessLogSetting"], p["TracingEnabled"])
		}
		ms := list(p["MethodSettings"])
		if len(ms) == 0 || ms[0].(map[string]any)["ThrottlingRateLimit"] == nil {
			t.Errorf("stage: no throttling in %v", ms)
		}
	}
}

func TestCheckRejectsBadDescriptions(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "a"), 0o755)
	os.WriteFile(filepath.Join(dir, "a", "bootstrap"), []byte("x"), 0o755)
	ok := infra.Function{Name: "a", Access: []infra.Access{{Resource: infra.Table, Level: "read"}}}
	asl := "placeholder.asl.json" // an ASL file that exists: the description's first
	if d := infra.Description(); len(d.StateMachines) > 0 {
		asl = d.StateMachines[0].File
	}
	cases := map[string]infra.Deployment{
		"missing bootstrap":       {Functions: []infra.Function{ok, {Name: "b"}}},
		"unknown level":           {Functions: []infra.Function{{Name: "a", Access: []infra.Access{{Resource: infra.Table, Level: "admin"}}}}},
		"key level on table":      {Functions: []infra.Function{{Name: "a", Access: []infra.Access{{Resource: infra.Table, Level: "decrypt"}}}}},
		"unknown resource":        {Functions: []infra.Function{{Name: "a", Access: []infra.Access{{Resource: "queue", Level: "read"}}}}},
		"machine's unknown fn":    {Functions: []infra.Function{ok}, StateMachines: []infra.StateMachine{{Name: "m", File: asl, Functions: []string{"zz"}}}},
		"machine without ASL":     {Functions: []infra.Function{ok}, StateMachines: []infra.StateMachine{{Name: "m", File: "missing.asl.json"}}},
		"express machine":         {StateMachines: []infra.StateMachine{{Name: "m", File: asl, Express: true}}},
		"starts unknown machine":  {Functions: []infra.Function{{Name: "a", StartsStateMachines: []string{"m"}}}},
		"rule without target":     {Functions: []infra.Function{ok}, Rules: []infra.Rule{{Name: "r", EventPattern: json.RawMessage(`{"source":["x"]}`)}}},
		"rule with two targets":   {Functions: []infra.Function{ok}, StateMachines: []infra.StateMachine{{Name: "m", File: asl}}, Rules: []infra.Rule{{Name: "r", EventPattern: json.RawMessage(`{"source":["x"]}`), Target: infra.Target{Function: "a", StateMachine: "m"}}}},
		"rule with a bad pattern": {Functions: []infra.Function{ok}, Rules: []infra.Rule{{Name: "r", EventPattern: json.RawMessage(`[]`), Target: infra.Target{Function: "a"}}}},
		"schedule unknown target": {Functions: []infra.Function{ok}, Schedules: []infra.Schedule{{Name: "s", Expression: "rate(1 day)", Target: infra.Target{StateMachine: "m"}}}},
	}
	for name, d := range cases {
		if err := check(Options{Deployment: d, FunctionsDir: dir}); !errors.Is(err, ErrDescription) {
			t.Errorf("%s: check = %v, want ErrDescription", name, err)
		}
	}
	if err := check(Options{Deployment: infra.Deployment{Functions: []infra.Function{ok}}, FunctionsDir: dir}); err != nil {
		t.Errorf("a valid description: %v", err)
	}
}

func TestBuildFunctionsRefusesMissingFunction(t *testing.T) {
	wd, _ := os.Getwd()
	root, err := repoRoot(wd)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", filepath.Join(root, "scripts", "build-functions.sh"), "no-such-function")
	cmd.Env = append(os.Environ(), "KEYLINE_FUNCTIONS_DIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "no-such-function") {
		t.Errorf("build-functions.sh with a function without a directory: err %v, output %s", err, out)
	}
}
