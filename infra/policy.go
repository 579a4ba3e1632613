package infra

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/keyline/keyline/internal/decl"
)

// PolicyVersion is the IAM policy language version of every generated document.
const PolicyVersion = "2012-10-17"

// Effects of a statement.
const (
	Allow = "Allow"
	Deny  = "Deny"
)

// PolicyDocument is a standard IAM policy document (identity, key, bus or bucket policy).
type PolicyDocument struct {
	Version   string      `json:"Version"`
	Statement []Statement `json:"Statement"`
}

// Statement is one statement of a policy document. Condition maps an operator
// ("StringEquals", "ForAllValues:StringEquals", "Null", ...) to condition keys and values
// (a string or a list of strings).
type Statement struct {
	Sid       string                    `json:"Sid"`
	Effect    string                    `json:"Effect"`
	Principal map[string]any            `json:"Principal,omitempty"`
	Action    []string                  `json:"Action"`
	Resource  []string                  `json:"Resource"`
	Condition map[string]map[string]any `json:"Condition,omitempty"`
}

// JSON is the document as indented JSON.
func (p PolicyDocument) JSON() []byte { return marshalIndent(p) }

// Table index keyline's functions query (lineage GSI1: the generations on a key).
const TableIndex = "GSI1"

// Actions per resource and access level. No wildcard actions: each is named, and only those
// keyline's code makes. Reads derive key state with one BatchGetItem of the keys on a page.
// Expired items go by TTL; the only deletes are confined (dynamodb:LeadingKeys) to partitions
// without audit entries (Levels refuses any other), so no audit entry can be deleted.
var (
	tableReadActions  = []string{"dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:Query"}
	tableScanActions  = []string{"dynamodb:Scan"}
	tableDeleteAction = "dynamodb:DeleteItem"
	tableWriteActions = []string{"dynamodb:ConditionCheckItem", "dynamodb:PutItem", "dynamodb:UpdateItem"}
	objReadActions    = []string{"s3:GetObject"}
	objWriteActions   = []string{"s3:AbortMultipartUpload", "s3:DeleteObject", "s3:ListMultipartUploadParts", "s3:PutObject"}
	keyActions        = map[string]string{
		"encrypt":  "kms:Encrypt",
		"decrypt":  "kms:Decrypt",
		"generate": "kms:GenerateDataKey",
		"describe": "kms:DescribeKey",
	}
)

// Key access levels.
const (
	LevelRead  = "read"
	LevelWrite = "write"
	// LevelScan (table) reads the whole table page by page (a one-off upgrade).
	LevelScan = "scan"
	// LevelDelete (table) deletes items of the access's partitions only.
	LevelDelete   = "delete"
	LevelEncrypt  = "encrypt"
	LevelDecrypt  = "decrypt"
	LevelGenerate = "generate"
	LevelDescribe = "describe"
)

// BucketPrefixes are the prefixes of a bucket keyline's functions are granted: the data
// bucket holds apps/<appId>/... (the apps' objects, internal/objects), drills/<drillId>/...
// (restore drills' scratch targets, internal/workflow/drill) and
// reencrypt-stash/<appId>/<generation>/... (objects' previous sealings kept by a running
// re-encryption); the backup bucket holds backups/<appId>/... (internal/workflow/backup).
func BucketPrefixes(r Resource) []string {
	switch r {
	case DataBucket:
		return []string{"apps/", "drills/", "reencrypt-stash/"}
	case BackupBucket:
		return []string{"backups/"}
	}
	return nil
}

// PrefixPatterns are a bucket's prefixes as s3:prefix and object-ARN patterns ("apps/*").
func PrefixPatterns(r Resource) []string {
	var out []string
	for _, p := range BucketPrefixes(r) {
		out = append(out, p+"*")
	}
	return out
}

// Levels splits an access level list and checks it against its resource.
func (a Access) Levels() ([]string, error) {
	var out []string
	for _, l := range strings.Split(a.Level, ",") {
		l = strings.TrimSpace(l)
		switch a.Resource {
		case Table:
			if l != LevelRead && l != LevelWrite && l != LevelScan && l != LevelDelete {
				return nil, fmt.Errorf("%w: access to %s: level %q is not read, write, scan or delete", ErrContract, a.Resource, l)
			}
			if l == LevelDelete && len(a.Partitions) == 0 {
				return nil, fmt.Errorf("%w: access to %s: delete needs the partitions it is confined to", ErrContract, a.Resource)
			}
			if l == LevelDelete {
				for _, p := range a.Partitions {
					for _, audit := range decl.AuditPartitionPrefixes() {
						if strings.HasPrefix(p, audit) || strings.HasPrefix(audit, p) {
							return nil, fmt.Errorf("%w: access to %s: delete in partitions %q, which hold audit entries (append-only)", ErrContract, a.Resource, p)
						}
					}
				}
			}
		case DataBucket, BackupBucket:
			if l != LevelRead && l != LevelWrite {
				return nil, fmt.Errorf("%w: access to %s: level %q is not read or write", ErrContract, a.Resource, l)
			}
		case OperatorTokenSecret:
			if l != LevelRead {
				return nil, fmt.Errorf("%w: access to %s: level %q is not read (functions only read the secret)", ErrContract, a.Resource, l)
			}
		case EventBus:
			if l != LevelWrite {
				return nil, fmt.Errorf("%w: access to %s: level %q is not write (functions only put events)", ErrContract, a.Resource, l)
			}
		case ProviderKey, CustomerKeys:
			if _, ok := keyActions[l]; !ok {
				return nil, fmt.Errorf("%w: access to %s: level %q is not encrypt, decrypt, generate or describe", ErrContract, a.Resource, l)
			}
		default:
			return nil, fmt.Errorf("%w: access to unknown resource %q", ErrContract, a.Resource)
		}
		out = append(out, l)
	}
	if len(a.Partitions) > 0 && a.Resource != Table {
		return nil, fmt.Errorf("%w: access to %s: partitions apply to the table only", ErrContract, a.Resource)
	}
	return out, nil
}

// EncryptionContextCondition confines KMS cryptographic calls to keyline's encryption
// contexts: every key of a call's context is one of decl.ContextKeys (ForAllValues), and a
// context is present at all (the Null test: ForAllValues alone passes a call without one).
func EncryptionContextCondition() map[string]map[string]any {
	return map[string]map[string]any{
		"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": decl.ContextKeys()},
		"Null":                      {"kms:EncryptionContextKeys": "false"},
	}
}

// CustomerKeyResource is the resource of customer-key statements: customer keys live in the
// customers' accounts and regions and are enrolled at run time, so no list of ARNs exists
// when keyline deploys. The encryption-context condition, the exclusion of keyline's own
// account, and the customer's key policy (KMS never allows a cross-account call on IAM alone)
// narrow it.
func CustomerKeyResource(partition string) string { return "arn:" + partition + ":kms:*:*:key/*" }

// accessLevels merges a function's Access list per resource.
func (f Function) accessLevels() (map[Resource]map[string]bool, map[Resource][]string, error) {
	levels := map[Resource]map[string]bool{}
	partitions := map[Resource][]string{}
	whole := map[Resource]bool{}
	for _, a := range f.Access {
		ls, err := a.Levels()
		if err != nil {
			return nil, nil, fmt.Errorf("function %s: %w", f.Name, err)
		}
		if levels[a.Resource] == nil {
			levels[a.Resource] = map[string]bool{}
		}
		for _, l := range ls {
			levels[a.Resource][l] = true
		}
		if a.Resource == Table && len(ls) == 1 && ls[0] == LevelDelete {
			continue // its partitions confine the delete statement only (deletePartitions)
		}
		if len(a.Partitions) == 0 {
			whole[a.Resource] = true
		}
		partitions[a.Resource] = append(partitions[a.Resource], a.Partitions...)
	}
	for r := range whole {
		delete(partitions, r) // one unconfined grant covers the whole table
	}
	return levels, partitions, nil
}

// deletePartitions are the partitions the function's table deletes are confined to.
func (f Function) deletePartitions() []string {
	var out []string
	for _, a := range f.Access {
		if a.Resource == Table && strings.Contains(a.Level, LevelDelete) {
			out = append(out, a.Partitions...)
		}
	}
	return out
}

// Policy is the function's IAM policy: exactly the actions its Access list and the machines
// it starts need, on the deployment's resources. Its log group's permissions are the
// deployer's (the contract knows no log groups).
func (f Function) Policy(r Resources) (PolicyDocument, error) {
	r = r.complete()
	lv, parts, err := f.accessLevels()
	if err != nil {
		return PolicyDocument{}, err
	}
	doc := PolicyDocument{Version: PolicyVersion}
	add := func(sid string, actions, resources []string, cond map[string]map[string]any) {
		a := slices.Clone(actions)
		sort.Strings(a)
		doc.Statement = append(doc.Statement, Statement{Sid: sid, Effect: Allow, Action: a, Resource: resources, Condition: cond})
	}
	via := map[string]map[string]bool{}
	viaAdd := func(service string, actions ...string) {
		if via[service] == nil {
			via[service] = map[string]bool{}
		}
		for _, a := range actions {
			via[service][a] = true
		}
	}

	if l := lv[Table]; l != nil && (l[LevelRead] || l[LevelWrite]) {
		acts := slices.Clone(tableReadActions)
		if l[LevelWrite] {
			acts = append(acts, tableWriteActions...)
		}
		if p := parts[Table]; len(p) > 0 {
			var keys []string
			for _, prefix := range p {
				keys = append(keys, prefix+"*")
			}
			add("Table", acts, []string{r.TableARN},
				map[string]map[string]any{"ForAllValues:StringLike": {"dynamodb:LeadingKeys": keys}})
		} else {
			add("Table", acts, []string{r.TableARN, r.TableARN + "/index/" + TableIndex}, nil)
		}
		viaAdd("dynamodb", "kms:Decrypt", "kms:DescribeKey")
		if l[LevelWrite] {
			viaAdd("dynamodb", "kms:Encrypt", "kms:GenerateDataKey")
		}
	}
	if l := lv[Table]; l[LevelScan] {
		add("TableScan", tableScanActions, []string{r.TableARN}, nil)
		viaAdd("dynamodb", "kms:Decrypt", "kms:DescribeKey")
	}
	if l := lv[Table]; l[LevelDelete] {
		var keys []string
		for _, prefix := range f.deletePartitions() {
			keys = append(keys, prefix+"*")
		}
		add("TableDelete", []string{tableDeleteAction}, []string{r.TableARN},
			map[string]map[string]any{"ForAllValues:StringLike": {"dynamodb:LeadingKeys": keys}})
	}
	for _, b := range []struct {
		res Resource
		sid string
		arn string
	}{{DataBucket, "DataBucket", r.DataBucketARN}, {BackupBucket, "BackupBucket", r.BackupBucketARN}} {
		l := lv[b.res]
		if l == nil {
			continue
		}
		var objs []string
		for _, p := range PrefixPatterns(b.res) {
			objs = append(objs, b.arn+"/"+p)
		}
		acts := slices.Clone(objReadActions)
		viaAdd("s3", "kms:Decrypt")
		list := []string{"s3:ListBucket"}
		if l[LevelWrite] {
			acts = append(acts, objWriteActions...)
			viaAdd("s3", "kms:GenerateDataKey")
			list = append(list, "s3:ListBucketMultipartUploads")
		}
		add(b.sid+"Objects", acts, objs, nil)
		add(b.sid+"List", list, []string{b.arn},
			map[string]map[string]any{"StringLike": {"s3:prefix": PrefixPatterns(b.res)}})
	}
	if lv[EventBus] != nil {
		add("PutAuditEvents", []string{"events:PutEvents"}, []string{r.EventBusARN}, nil)
	}
	if lv[OperatorTokenSecret] != nil {
		if r.OperatorTokenSecretARN == "" {
			return PolicyDocument{}, fmt.Errorf("%w: function %s reads the operator token's secret, whose ARN is not given", ErrContract, f.Name)
		}
		add("ReadOperatorToken", []string{"secretsmanager:GetSecretValue"}, []string{r.OperatorTokenSecretARN}, nil)
	}
	for _, k := range []struct {
		res      Resource
		sid      string
		resource string
		cond     map[string]map[string]any
	}{
		{ProviderKey, "ProviderKey", r.ProviderKeyARN, nil},
		{CustomerKeys, "CustomerKeys", CustomerKeyResource(r.Partition),
			map[string]map[string]any{"StringNotEquals": {"aws:ResourceAccount": r.Account}}},
	} {
		l := lv[k.res]
		if l == nil {
			continue
		}
		var crypto []string
		for level, act := range keyActions {
			if l[level] && level != LevelDescribe {
				crypto = append(crypto, act)
			}
		}
		if len(crypto) > 0 {
			cond := EncryptionContextCondition()
			for op, m := range k.cond {
				cond[op] = m
			}
			add(k.sid+"Crypto", crypto, []string{k.resource}, cond)
		}
		if l[LevelDescribe] {
			// DescribeKey carries no encryption context; it reveals key metadata only.
			add(k.sid+"Describe", []string{"kms:DescribeKey"}, []string{k.resource}, k.cond)
		}
	}
	// The provider key as used by DynamoDB's and S3's encryption at rest on the function's
	// behalf (their contexts are AWS's, not keyline's).
	services := make([]string, 0, len(via))
	for s := range via {
		services = append(services, s)
	}
	sort.Strings(services)
	for _, s := range services {
		var acts []string
		for a := range via[s] {
			acts = append(acts, a)
		}
		add("ProviderKeyVia"+strings.ToUpper(s[:1])+s[1:], acts, []string{r.ProviderKeyARN},
			map[string]map[string]any{"StringEquals": {"kms:ViaService": s + "." + r.Region + "." + r.URLSuffix}})
	}
	if len(f.StartsStateMachines) > 0 {
		var machines []string
		for _, m := range f.StartsStateMachines {
			arn, ok := r.StateMachineARNs[m]
			if !ok {
				return PolicyDocument{}, fmt.Errorf("%w: function %s starts %s, whose ARN is not given", ErrContract, f.Name, m)
			}
			machines = append(machines, arn)
		}
		add("StartStateMachines", []string{"states:StartExecution"}, machines, nil)
		var execs []string
		for _, m := range f.StartsStateMachines {
			execs = append(execs, ExecutionsPattern(r.StateMachineARNs[m]))
		}
		// ...and follow the executions it started (the console reports their status).
		add("DescribeStartedExecutions", []string{"states:DescribeExecution"}, execs, nil)
	}
	if len(f.FollowsStateMachines) > 0 {
		var execs []string
		for _, m := range f.FollowsStateMachines {
			arn, ok := r.StateMachineARNs[m]
			if !ok {
				return PolicyDocument{}, fmt.Errorf("%w: function %s follows %s, whose ARN is not given", ErrContract, f.Name, m)
			}
			execs = append(execs, ExecutionsPattern(arn))
		}
		add("DescribeFollowedExecutions", []string{"states:DescribeExecution"}, execs, nil)
	}
	return doc, nil
}

// ExecutionsPattern is the ARN pattern of a machine's executions
// (arn:...:stateMachine:<name> → arn:...:execution:<name>:*).
func ExecutionsPattern(machineARN string) string {
	return strings.Replace(machineARN, ":stateMachine:", ":execution:", 1) + ":*"
}

// Policies are every function's policy, keyed by function name.
func (d Deployment) Policies(r Resources) (map[string]PolicyDocument, error) {
	out := make(map[string]PolicyDocument, len(d.Functions))
	for _, f := range d.Functions {
		p, err := f.Policy(r)
		if err != nil {
			return nil, err
		}
		out[f.Name] = p
	}
	return out, nil
}
