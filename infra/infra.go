// Package infra is keyline's one description of its deployment: the functions, state
// machines, rules and schedules, and the state-machine definitions (ASL) they run.
//
// Both the CDK app (infra/cdk, its own Go module) and the local runtime (`keyline
// local`) read it, so what runs locally is what deploys. This package imports only
// the standard library.
package infra

import (
	"embed"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"time"
)

//go:embed statemachines/*.asl.json
var aslFiles embed.FS

// Resource names a piece of the deployment a function may be granted access to.
type Resource string

// The deployment's shared resources.
const (
	// Table is the lineage table (DynamoDB).
	Table Resource = "table"
	// DataBucket holds the apps' sealed objects.
	DataBucket Resource = "dataBucket"
	// BackupBucket holds sealed backups.
	BackupBucket Resource = "backupBucket"
	// ProviderKey is the provider's KMS key for managed-scope data.
	ProviderKey Resource = "providerKey"
	// CustomerKeys are the customers' KMS keys (cross-account, conditioned on keyline's
	// encryption-context keys).
	CustomerKeys Resource = "customerKeys"
	// EventBus is keyline's event bus (audit events, `source: keyline`).
	EventBus Resource = "eventBus"
	// OperatorTokenSecret is the Secrets Manager secret holding the console's operator token:
	// only the functions that check tokens read it (level "read"); no environment holds it.
	OperatorTokenSecret Resource = "operatorTokenSecret"
)

// Access is one grant: a resource and the level of access.
type Access struct {
	Resource Resource `json:"resource"`
	// Level is "read", "write" (implies read) or, for keys, "encrypt", "decrypt",
	// "generate", "describe" (a list joined by commas is allowed).
	Level string `json:"level"`
	// Partitions confines table access to items whose partition key starts with one of
	// these prefixes (dynamodb:LeadingKeys); empty means the whole table and its index.
	Partitions []string `json:"partitions,omitempty"`
}

// Function is one Lambda function. Its handler is registered in the domain under Name.
type Function struct {
	Name        string        `json:"name"`
	Description string        `json:"description"`
	Timeout     time.Duration `json:"timeout"`
	MemoryMB    int           `json:"memoryMB"`
	// ReservedConcurrency caps concurrent invocations (0 = no reservation); used where it
	// protects KMS request quotas.
	ReservedConcurrency int `json:"reservedConcurrency,omitempty"`
	// Env holds plain settings; resource names (table, buckets, keys) are added by
	// Environment.
	Env    map[string]string `json:"env,omitempty"`
	Access []Access          `json:"access"`
	// StartsStateMachines names the state machines this function may start.
	StartsStateMachines []string `json:"startsStateMachines,omitempty"`
	// FollowsStateMachines names state machines whose executions this function describes
	// without starting any (key health finds apps left re-encrypting without a running
	// execution, I7).
	FollowsStateMachines []string `json:"followsStateMachines,omitempty"`
}

// ChecksOperatorToken reports whether the function reads the operator-token secret (it
// checks bearer tokens).
func (f Function) ChecksOperatorToken() bool {
	for _, a := range f.Access {
		if a.Resource == OperatorTokenSecret {
			return true
		}
	}
	return false
}

// StateMachine is one Step Functions state machine. Its definition is
// statemachines/<File>; `${Name}` placeholders in it are substituted at deploy time:
// `${Fn_<function name>}` → the function's ARN, `${SM_<machine name>}` → a state machine's
// ARN, `${TableName}`, `${EventBusName}`, `${DataBucket}`, `${BackupBucket}`.
type StateMachine struct {
	Name      string   `json:"name"`
	File      string   `json:"file"`
	Functions []string `json:"functions"`
	// Express is false for every keyline machine (standard workflows, exactly-once steps).
	Express bool `json:"express,omitempty"`
}

// Target is what a rule or schedule starts: exactly one of Function or StateMachine.
type Target struct {
	Function     string          `json:"function,omitempty"`
	StateMachine string          `json:"stateMachine,omitempty"`
	Input        json.RawMessage `json:"input,omitempty"`
}

// Rule is an EventBridge rule on the default bus (CloudTrail events arrive there), or on
// keyline's own event bus when Bus is BusKeyline.
type Rule struct {
	Name         string          `json:"name"`
	Description  string          `json:"description"`
	EventPattern json.RawMessage `json:"eventPattern"`
	Target       Target          `json:"target"`
	Bus          string          `json:"bus,omitempty"`
}

// BusKeyline names keyline's own event bus (its `source: keyline` events) in Rule.Bus.
const BusKeyline = "keyline"

// kmsEventSource is the source of KMS's CloudTrail events on EventBridge.
const kmsEventSource = "aws.kms"

// MatchesCloudTrailKMS reports whether the rule matches KMS's CloudTrail events. Customers
// forward those from their accounts to keyline's customer bus (DEPLOY.md), so every deployer
// mirrors such a rule there with the same target.
func (r Rule) MatchesCloudTrailKMS() bool {
	var p struct {
		Source []any `json:"source"`
	}
	if r.Bus != "" || json.Unmarshal(r.EventPattern, &p) != nil {
		return false
	}
	for _, v := range p.Source {
		if v == kmsEventSource {
			return true
		}
	}
	return false
}

// Schedule is an EventBridge Scheduler schedule.
type Schedule struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	// Expression is an AWS `cron(...)`, `rate(...)` or `at(...)` expression.
	Expression string `json:"expression"`
	Timezone   string `json:"timezone,omitempty"`
	Target     Target `json:"target"`
}

// Deployment is the whole of keyline's deployment.
type Deployment struct {
	Functions     []Function     `json:"functions"`
	StateMachines []StateMachine `json:"stateMachines"`
	Rules         []Rule         `json:"rules"`
	Schedules     []Schedule     `json:"schedules"`
}

// Environment variable names under which deployers hand resource names to functions.
const (
	EnvAccount         = "KEYLINE_ACCOUNT" // keyline's AWS account (the console names it to customers)
	EnvTableName       = "KEYLINE_TABLE"
	EnvDataBucket      = "KEYLINE_DATA_BUCKET"
	EnvBackupBucket    = "KEYLINE_BACKUP_BUCKET"
	EnvProviderKeyARN  = "KEYLINE_PROVIDER_KEY_ARN"
	EnvEventBusName    = "KEYLINE_EVENT_BUS"
	EnvStateMachineFmt = "KEYLINE_SM_%s" // + upper-cased machine name with '-' → '_': its ARN
)

// DescribedStateMachines are the machines whose executions the function may describe: those
// it starts, then those it follows.
func (f Function) DescribedStateMachines() []string {
	out := append([]string(nil), f.StartsStateMachines...)
	for _, m := range f.FollowsStateMachines {
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

// Function returns the named function.
func (d Deployment) Function(name string) (Function, bool) {
	for _, f := range d.Functions {
		if f.Name == name {
			return f, true
		}
	}
	return Function{}, false
}

// StateMachineNamed returns the named state machine.
func (d Deployment) StateMachineNamed(name string) (StateMachine, bool) {
	for _, m := range d.StateMachines {
		if m.Name == name {
			return m, true
		}
	}
	return StateMachine{}, false
}

// ASL returns the raw definition of a state machine, placeholders unsubstituted.
func ASL(m StateMachine) ([]byte, error) {
	b, err := aslFiles.ReadFile("statemachines/" + m.File)
	if err != nil {
		return nil, fmt.Errorf("state machine %s: %w", m.Name, err)
	}
	return b, nil
}

var placeholder = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)\}`)

// Placeholders lists the `${...}` names a definition uses, sorted and unique.
func Placeholders(asl []byte) []string {
	seen := map[string]bool{}
	for _, m := range placeholder.FindAllSubmatch(asl, -1) {
		seen[string(m[1])] = true
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Substitute replaces every `${Name}` in asl with vars[Name]; a name without a value is
// an error, so no definition deploys half-substituted.
func Substitute(asl []byte, vars map[string]string) ([]byte, error) {
	var missing []string
	out := placeholder.ReplaceAllFunc(asl, func(m []byte) []byte {
		name := string(placeholder.FindSubmatch(m)[1])
		v, ok := vars[name]
		if !ok {
			missing = append(missing, name)
			return m
		}
		return []byte(v)
	})
	if len(missing) > 0 {
		return nil, fmt.Errorf("definition placeholders without a value: %v", missing)
	}
	return out, nil
}
