package infra_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/keyline/keyline/infra"
	"github.com/keyline/keyline/internal/audit"
	"github.com/keyline/keyline/internal/decl"
	"github.com/keyline/keyline/internal/keys"
	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/objects"
	"github.com/keyline/keyline/internal/workflow/backup"
)

// localResources are resources as the local stack passes them (real ARNs).
func localResources() infra.Resources {
	d := infra.Description()
	r := infra.Resources{
		Partition: "aws", Region: "us-east-1", Account: "000000000000",
		TableName: "keyline-lineage", TableARN: "arn:aws:dynamodb:us-east-1:000000000000:table/keyline-lineage",
		DataBucket: "keyline-data", BackupBucket: "keyline-backups",
		ProviderKeyARN:   "arn:aws:kms:us-east-1:000000000000:key/provider",
		EventBusName:     "keyline",
		StateMachineARNs: map[string]string{}, FunctionARNs: map[string]string{},
		OperatorTokenSecretARN: "arn:aws:secretsmanager:us-east-1:000000000000:secret:Keyline/operator-token-abcdef",
	}
	for _, m := range d.StateMachines {
		r.StateMachineARNs[m.Name] = "arn:aws:states:us-east-1:000000000000:stateMachine:" + m.Name
	}
	for _, f := range d.Functions {
		r.FunctionARNs[f.Name] = "arn:aws:lambda:us-east-1:000000000000:function:" + f.Name
	}
	return r
}

// TestEnvironment: every function gets the resource names; the operator token's secret ARN
// (never a token or its hash) only the functions that check tokens; machine ARNs only for the machines a function starts.
func TestEnvironment(t *testing.T) {
	r := localResources()
	for _, f := range infra.Description().Functions {
		env := f.Environment(r)
		for k, want := range map[string]string{
			infra.EnvAccount: r.Account, infra.EnvTableName: r.TableName, infra.EnvDataBucket: r.DataBucket, infra.EnvBackupBucket: r.BackupBucket,
			infra.EnvProviderKeyARN: r.ProviderKeyARN, infra.EnvEventBusName: r.EventBusName,
		} {
			if env[k] != want {
				t.Errorf("%s: %s = %q, want %q", f.Name, k, env[k], want)
			}
		}
		for k, v := range f.Env {
			if env[k] != v {
				t.Errorf("%s: setting %s = %q, want %q", f.Name, k, env[k], v)
			}
		}
		if got, ok := env[infra.EnvOperatorTokenSecret]; ok != f.ChecksOperatorToken() || ok && got != r.OperatorTokenSecretARN {
			t.Errorf("%s: operator-token secret %q given = %v, function checks tokens = %v", f.Name, got, ok, f.ChecksOperatorToken())
		}
		for _, m := range infra.Description().StateMachines {
			_, ok := env[infra.StateMachineEnv(m.Name)]
			if want := slices.Contains(f.StartsStateMachines, m.Name); ok != want {
				t.Errorf("%s: ARN of machine %s given = %v, starts it = %v", f.Name, m.Name, ok, want)
			}
		}
		if _, ok := env[infra.EnvS3PathStyle]; ok {
			t.Errorf("%s: path-style S3 without S3PathStyle", f.Name)
		}
	}
	r.S3PathStyle = true
	for _, f := range infra.Description().Functions {
		if f.Environment(r)[infra.EnvS3PathStyle] != "true" {
			t.Errorf("%s: no path-style S3 with S3PathStyle", f.Name)
		}
	}
	// Exactly the functions that check tokens read the operator token's secret.
	var checkers []string
	for _, f := range infra.Description().Functions {
		if f.ChecksOperatorToken() {
			checkers = append(checkers, f.Name)
		}
	}
	if want := []string{infra.FnConsoleAPI, infra.FnConsoleAuthorizer}; !slices.Equal(checkers, want) {
		t.Errorf("functions reading the operator token: %v, want %v", checkers, want)
	}
}

// TestDomainDeclarations compares the contract with the domain's declarations through
// imports: the context keys the code sends, the buckets' prefixes, the table's index, the
// revocation's detail types and the backup metric.
func TestDomainDeclarations(t *testing.T) {
	for _, k := range []string{keys.ContextKeyOrg, keys.ContextKeyApp, keys.ContextKeyGeneration, keys.ContextKeyPurpose,
		backup.ContextKeyBackup, objects.ContextKeyScope} {
		if !slices.Contains(infra.ContextKeys(), k) {
			t.Errorf("context key %s is not in the declaration %v", k, infra.ContextKeys())
		}
	}
	if !slices.Contains(infra.BucketPrefixes(infra.DataBucket), objects.DefaultStashPrefix) {
		t.Errorf("re-encryption stash %q outside the data bucket's prefixes %v", objects.DefaultStashPrefix, infra.BucketPrefixes(infra.DataBucket))
	}
	inBackups := false
	for _, p := range infra.BucketPrefixes(infra.BackupBucket) {
		inBackups = inBackups || strings.HasPrefix(backup.ObjectKey("app", "b1"), p)
	}
	if !inBackups {
		t.Errorf("backup object %s outside the backup bucket's prefixes %v", backup.ObjectKey("app", "b1"), infra.BucketPrefixes(infra.BackupBucket))
	}
	if lineage.GSI1 != infra.TableIndex {
		t.Errorf("the lineage table's index is %s; the policies grant %s", lineage.GSI1, infra.TableIndex)
	}
	if infra.MetricNamespace != backup.MetricNamespace || infra.MetricBackupAgeMax != backup.MetricBackupAgeMax {
		t.Errorf("backup metric %s/%s, contract %s/%s", backup.MetricNamespace, backup.MetricBackupAgeMax, infra.MetricNamespace, infra.MetricBackupAgeMax)
	}
	if !bytes.Contains(infra.RevocationAlarmPattern(), []byte(audit.DetailKeyRevoked)) {
		t.Errorf("revocation alarm pattern %s misses %q", infra.RevocationAlarmPattern(), audit.DetailKeyRevoked)
	}
}

// TestPoliciesLeastPrivilege: no wildcard action, no item deletion, no unconditioned KMS use,
// the console may put its audit events, the authorizer reads token items only.
func TestPoliciesLeastPrivilege(t *testing.T) {
	r := localResources()
	pols, err := infra.Description().Policies(r)
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range pols {
		if p.Version != infra.PolicyVersion || len(p.Statement) == 0 {
			t.Errorf("%s: policy %s", name, p.JSON())
		}
		sids := map[string]bool{}
		for _, st := range p.Statement {
			if sids[st.Sid] {
				t.Errorf("%s: Sid %s twice", name, st.Sid)
			}
			sids[st.Sid] = true
			if st.Effect != infra.Allow || len(st.Resource) == 0 {
				t.Errorf("%s: statement %+v", name, st)
			}
			for _, a := range st.Action {
				if strings.Contains(a, "*") {
					t.Errorf("%s: wildcard action %s", name, a)
				}
				if a == "dynamodb:BatchWriteItem" {
					t.Errorf("%s: may delete table items (%s): audit entries are append-only", name, a)
				}
				if a == "dynamodb:DeleteItem" {
					// Only confined to partitions without audit entries (tokens, org token lists).
					keys, _ := st.Condition["ForAllValues:StringLike"]["dynamodb:LeadingKeys"].([]string)
					if len(keys) == 0 {
						t.Errorf("%s: %s unconfined: audit entries are append-only", name, a)
					}
					for _, k := range keys {
						for _, audit := range decl.AuditPartitionPrefixes() {
							if strings.HasPrefix(k, audit) || strings.HasPrefix(audit, strings.TrimSuffix(k, "*")) {
								t.Errorf("%s: may delete in %s, where audit entries live (append-only)", name, k)
							}
						}
					}
				}
				if strings.HasPrefix(a, "secretsmanager:") {
					f, _ := infra.Description().Function(name)
					if a != "secretsmanager:GetSecretValue" || !f.ChecksOperatorToken() || !slices.Equal(st.Resource, []string{r.OperatorTokenSecretARN}) {
						t.Errorf("%s: %s on %v: only the token checkers read the operator token's secret", name, a, st.Resource)
					}
				}
				if strings.HasPrefix(a, "kms:") && a != "kms:DescribeKey" && st.Condition == nil {
					t.Errorf("%s: %s without a condition", name, a)
				}
			}
			for _, res := range st.Resource {
				if res == "*" {
					t.Errorf("%s: statement on every resource", name)
				}
			}
		}
	}
	has := func(fn, action string) bool {
		for _, st := range pols[fn].Statement {
			if slices.Contains(st.Action, action) {
				return true
			}
		}
		return false
	}
	if !has("console-api", "events:PutEvents") {
		t.Error("console-api emits audit events but may not put them")
	}
	for _, st := range pols["console-authorizer"].Statement {
		if st.Sid != "Table" {
			continue
		}
		keys, _ := st.Condition["ForAllValues:StringLike"]["dynamodb:LeadingKeys"].([]string)
		if !slices.Equal(keys, []string{"TOKEN#*"}) || slices.Contains(st.Resource, r.TableARN+"/index/"+infra.TableIndex) {
			t.Errorf("console-authorizer statement %+v: want the token items only", st)
		}
	}
	for _, f := range infra.Description().Functions {
		for _, m := range f.StartsStateMachines {
			found := false
			for _, st := range pols[f.Name].Statement {
				found = found || slices.Contains(st.Action, "states:StartExecution") && slices.Contains(st.Resource, r.StateMachineARNs[m])
			}
			if !found {
				t.Errorf("%s may not start %s", f.Name, m)
			}
		}
	}
}

// TestBadInputRefused: a key policy for a malformed org or account, and an access level the
// contract does not know, are refused with ErrContract.
func TestBadInputRefused(t *testing.T) {
	for _, tc := range []infra.KeyPolicyTarget{{Org: "", Account: "123456789012"}, {Org: "a b", Account: "123456789012"},
		{Org: "acme", Account: "12345"}, {Org: "acme", Account: "abcdefghijkl"}} {
		if _, err := infra.KeyPolicyJSON(tc); !errors.Is(err, infra.ErrContract) {
			t.Errorf("key policy for %+v: %v, want ErrContract", tc, err)
		}
	}
	bad := infra.Function{Name: "x", Access: []infra.Access{{Resource: infra.Table, Level: "admin"}}}
	if _, err := bad.Policy(localResources()); !errors.Is(err, infra.ErrContract) {
		t.Errorf("policy with an unknown level: %v, want ErrContract", err)
	}
	// No delete where audit entries live (an app's or a key's partition, or a prefix of one),
	// and no write to the operator token's secret.
	for _, parts := range [][]string{{decl.AppPartitionPrefix}, {decl.KeyPartitionPrefix}, {decl.TokenPartitionPrefix, "K"}, {""}} {
		deleter := infra.Function{Name: "x", Access: []infra.Access{{Resource: infra.Table, Level: infra.LevelDelete, Partitions: parts}}}
		if _, err := deleter.Policy(localResources()); !errors.Is(err, infra.ErrContract) {
			t.Errorf("policy deleting in %v: %v, want ErrContract", parts, err)
		}
	}
	writer := infra.Function{Name: "x", Access: []infra.Access{{Resource: infra.OperatorTokenSecret, Level: infra.LevelWrite}}}
	if _, err := writer.Policy(localResources()); !errors.Is(err, infra.ErrContract) {
		t.Errorf("policy writing the operator token: %v, want ErrContract", err)
	}
	noSecret := localResources()
	noSecret.OperatorTokenSecretARN = ""
	if _, err := infra.Description().Policies(noSecret); !errors.Is(err, infra.ErrContract) {
		t.Errorf("policies without the operator token's secret: %v, want ErrContract", err)
	}
	unknownMachine := infra.Function{Name: "x", StartsStateMachines: []string{"nope"}}
	if _, err := unknownMachine.Policy(localResources()); !errors.Is(err, infra.ErrContract) {
		t.Errorf("policy starting an unknown machine: %v, want ErrContract", err)
	}
}

// TestDeployMDShowsKeyPolicy: DEPLOY.md shows exactly what `keyline key-policy` prints for
// its example org and account, so the two cannot drift apart.
func TestDeployMDShowsKeyPolicy(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("cdk", "DEPLOY.md"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := infra.KeyPolicyJSON(infra.KeyPolicyTarget{Org: "acme", Account: "123456789012"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(doc, []byte("```json\n"+string(out)+"```")) {
		t.Errorf("DEPLOY.md does not show the current `keyline key-policy --org acme --account 123456789012`:\n%s", out)
	}
}

// forwarderBusPlaceholder is how DEPLOY.md names keyline's customer bus in the forwarder
// role's permissions.
const forwarderBusPlaceholder = "<CustomerEventBusArn from keyline>"

// TestDeployMDShowsForwarding: the forwarder role's permissions and the forwarding rule's
// pattern that DEPLOY.md asks customers to create are, as JSON, those keyline enforces
// (infra.CustomerForwarderPolicy, infra.KMSKeyEventPattern), so the two cannot drift apart.
func TestDeployMDShowsForwarding(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("cdk", "DEPLOY.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		after string // the line before the JSON block
		want  []byte
	}{
		{"Permissions (`infra.CustomerForwarderPolicy`):", infra.CustomerForwarderPolicy(forwarderBusPlaceholder).JSON()},
		{"keyline's pattern (`infra.KMSKeyEventPattern`):", []byte(infra.KMSKeyEventPattern)},
	} {
		block, err := jsonBlockAfter(doc, c.after)
		if err != nil {
			t.Errorf("DEPLOY.md: %v", err)
			continue
		}
		if !sameJSON(t, block, c.want) {
			t.Errorf("DEPLOY.md: the JSON after %q is\n%s\nwant (as JSON)\n%s", c.after, block, c.want)
		}
	}
}

// TestDeployMDCheckFails: the forwarding check refuses a permissions block that grants more
// than keyline's policy, and one that lost its block.
func TestDeployMDCheckFails(t *testing.T) {
	doc := []byte("   Permissions:\n\n   ```json\n   {\"Version\": \"2012-10-17\", \"Statement\": [{\"Sid\": \"ForwardKMSEventsToKeyline\", " +
		"\"Effect\": \"Allow\", \"Action\": [\"events:*\"], \"Resource\": [\"" + forwarderBusPlaceholder + "\"]}]}\n   ```\n")
	block, err := jsonBlockAfter(doc, "Permissions:")
	if err != nil {
		t.Fatal(err)
	}
	if sameJSON(t, block, infra.CustomerForwarderPolicy(forwarderBusPlaceholder).JSON()) {
		t.Error("a forwarder policy granting events:* reads as keyline's")
	}
	if _, err := jsonBlockAfter([]byte("   Permissions:\n\nnone\n"), "Permissions:"); err == nil {
		t.Error("a missing JSON block was found")
	}
}

// jsonBlockAfter returns the first fenced JSON block after the line that ends with after.
func jsonBlockAfter(doc []byte, after string) ([]byte, error) {
	i := bytes.Index(doc, []byte(after+"\n"))
	if i < 0 {
		return nil, fmt.Errorf("no line ends with %q", after)
	}
	rest := doc[i+len(after)+1:]
	rest = bytes.TrimLeft(rest, " \n")
	const open, closing = "```json\n", "```"
	if !bytes.HasPrefix(rest, []byte(open)) {
		return nil, fmt.Errorf("no JSON block follows %q", after)
	}
	rest = rest[len(open):]
	end := bytes.Index(rest, []byte(closing))
	if end < 0 {
		return nil, fmt.Errorf("the JSON block after %q does not end", after)
	}
	return rest[:end], nil
}

// sameJSON reports whether a and b hold the same JSON value.
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Errorf("not JSON: %v\n%s", err, a)
		return false
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b)
	}
	return reflect.DeepEqual(va, vb)
}

// TestKeyPolicyPinsOrg: every cryptographic statement admits only the org's context and
// keyline's declared context keys; each role is granted only the key actions its own policy has.
func TestKeyPolicyPinsOrg(t *testing.T) {
	d := infra.Description()
	sts, err := d.CustomerKeyStatements(infra.KeyPolicyTarget{Org: "acme", Account: "000000000000"})
	if err != nil {
		t.Fatal(err)
	}
	granted := map[string]map[string]bool{} // role → actions
	for _, st := range sts {
		for _, role := range st.Principal["AWS"].([]string) {
			if granted[role] == nil {
				granted[role] = map[string]bool{}
			}
			for _, a := range st.Action {
				granted[role][a] = true
			}
		}
		if slices.Contains(st.Action, "kms:DescribeKey") {
			continue
		}
		if st.Condition["StringEquals"]["kms:EncryptionContext:keyline:org"] != "acme" {
			t.Errorf("%s: not pinned to the org: %v", st.Sid, st.Condition)
		}
		if got, _ := st.Condition["ForAllValues:StringEquals"]["kms:EncryptionContextKeys"].([]string); !slices.Equal(got, infra.ContextKeys()) {
			t.Errorf("%s: context keys %v, want the declaration %v", st.Sid, got, infra.ContextKeys())
		}
	}
	pols, err := d.Policies(localResources())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range d.Functions {
		role := infra.RoleARN("aws", "000000000000", infra.DefaultStackName, f.Name)
		want := map[string]bool{}
		for _, st := range pols[f.Name].Statement {
			if slices.Contains(st.Resource, infra.CustomerKeyResource("aws")) {
				for _, a := range st.Action {
					want[a] = true
				}
			}
		}
		if len(want) != len(granted[role]) {
			t.Errorf("%s: key policy grants %v, its IAM policy %v", f.Name, granted[role], want)
		}
		for a := range want {
			if !granted[role][a] {
				t.Errorf("%s: key policy does not grant %s", f.Name, a)
			}
		}
	}
}

// TestCloudTrailKMSRulesMirrored: exactly the rules on KMS's CloudTrail events are the ones
// deployers mirror on the customer bus (customers forward those events there).
func TestCloudTrailKMSRulesMirrored(t *testing.T) {
	var mirrored []string
	for _, r := range infra.Description().Rules {
		if r.MatchesCloudTrailKMS() {
			mirrored = append(mirrored, r.Name)
		}
	}
	if want := []string{"kms-key-events"}; !slices.Equal(mirrored, want) {
		t.Fatalf("rules mirrored on the customer bus: %v, want %v", mirrored, want)
	}
	for _, r := range []infra.Rule{
		{Name: "own-bus", EventPattern: []byte(`{"source":["aws.kms"]}`), Bus: infra.BusKeyline},
		{Name: "other-source", EventPattern: []byte(`{"source":["aws.s3"]}`)},
		{Name: "garbled", EventPattern: []byte(`{"source":`)},
	} {
		if r.MatchesCloudTrailKMS() {
			t.Errorf("rule %s would be mirrored on the customer bus", r.Name)
		}
	}
}
