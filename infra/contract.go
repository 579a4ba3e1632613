package infra

import (
	"errors"
	"fmt"
	"maps"
	"strings"
)

// ErrContract is wrapped by the contract's errors: a description that cannot be deployed as
// it is, or resources missing for it.
var ErrContract = errors.New("deployment contract")

// DefaultStackName is the name of keyline's stack; function roles are named after it
// (RoleName), so that a customer's key policy can name them before they call.
const DefaultStackName = "Keyline"

// EnvS3PathStyle tells a function to address S3 path-style (the local S3 wants it).
const EnvS3PathStyle = "KEYLINE_S3_PATH_STYLE"

// Resources are the names and ARNs of the deployment's resources as the deployer knows them:
// the CDK app passes tokens, the local stack real values. The contract builds every
// environment, policy and definition from them.
type Resources struct {
	// Partition, Region, Account and URLSuffix place the deployment ("aws", "us-east-1",
	// "000000000000", "amazonaws.com").
	Partition string
	Region    string
	Account   string
	URLSuffix string

	TableName string
	TableARN  string

	DataBucket    string
	DataBucketARN string // default arn:<partition>:s3:::<DataBucket>

	BackupBucket    string
	BackupBucketARN string // default arn:<partition>:s3:::<BackupBucket>

	ProviderKeyARN string

	EventBusName string
	EventBusARN  string // default arn:<partition>:events:<region>:<account>:event-bus/<EventBusName>

	// StateMachineARNs and FunctionARNs are keyed by the description's names.
	StateMachineARNs map[string]string
	FunctionARNs     map[string]string

	// OperatorTokenSecretARN is the Secrets Manager secret of the console's operator token
	// (OperatorTokenSecretName): functions with access to it get its ARN, never its value.
	OperatorTokenSecretARN string
	// S3PathStyle makes every function address S3 path-style (local S3).
	S3PathStyle bool
}

// complete fills in the ARNs derived from names.
func (r Resources) complete() Resources {
	if r.Partition == "" {
		r.Partition = "aws"
	}
	if r.URLSuffix == "" {
		r.URLSuffix = "amazonaws.com"
	}
	if r.DataBucketARN == "" && r.DataBucket != "" {
		r.DataBucketARN = "arn:" + r.Partition + ":s3:::" + r.DataBucket
	}
	if r.BackupBucketARN == "" && r.BackupBucket != "" {
		r.BackupBucketARN = "arn:" + r.Partition + ":s3:::" + r.BackupBucket
	}
	if r.EventBusARN == "" && r.EventBusName != "" {
		r.EventBusARN = "arn:" + r.Partition + ":events:" + r.Region + ":" + r.Account + ":event-bus/" + r.EventBusName
	}
	return r
}

// StateMachineEnv is the environment variable under which a function that starts machine m
// finds its ARN.
func StateMachineEnv(m string) string {
	return fmt.Sprintf(EnvStateMachineFmt, strings.ToUpper(strings.ReplaceAll(m, "-", "_")))
}

// Environment is the function's whole environment: its own settings, the resource names,
// the ARNs of the machines it starts, the operator-token secret's ARN where it checks tokens
// (the token itself is read from Secrets Manager at run time, never from the environment),
// and the S3 addressing. Both the CDK app and the local stack use it: there is no second
// assembly.
func (f Function) Environment(r Resources) map[string]string {
	r = r.complete()
	env := maps.Clone(f.Env)
	if env == nil {
		env = map[string]string{}
	}
	env[EnvAccount] = r.Account
	env[EnvTableName] = r.TableName
	env[EnvDataBucket] = r.DataBucket
	env[EnvBackupBucket] = r.BackupBucket
	env[EnvProviderKeyARN] = r.ProviderKeyARN
	env[EnvEventBusName] = r.EventBusName
	for _, m := range f.StartsStateMachines {
		env[StateMachineEnv(m)] = r.StateMachineARNs[m]
	}
	if f.ChecksOperatorToken() {
		env[EnvOperatorTokenSecret] = r.OperatorTokenSecretARN
	}
	if r.S3PathStyle {
		env[EnvS3PathStyle] = "true"
	}
	return env
}

// RoleName is the name of a function's IAM role in a stack. It is fixed (not generated), so
// that a customer's key policy can name keyline's roles.
func RoleName(stack, function string) string { return stack + "-" + function }

// RoleARN is the ARN of a function's role in keyline's account.
func RoleARN(partition, account, stack, function string) string {
	if partition == "" {
		partition = "aws"
	}
	return "arn:" + partition + ":iam::" + account + ":role/" + RoleName(stack, function)
}

// MachineVars are the values of the state machines' `${...}` placeholders: `Fn_<function>`,
// `SM_<machine>` (each also with '-' spelled '_'), TableName, EventBusName, DataBucket and
// BackupBucket.
func (d Deployment) MachineVars(r Resources) map[string]string {
	r = r.complete()
	vars := map[string]string{
		"TableName": r.TableName, "EventBusName": r.EventBusName,
		"DataBucket": r.DataBucket, "BackupBucket": r.BackupBucket,
	}
	both := func(prefix, name, v string) {
		vars[prefix+name] = v
		vars[prefix+strings.ReplaceAll(name, "-", "_")] = v
	}
	for _, f := range d.Functions {
		if arn, ok := r.FunctionARNs[f.Name]; ok {
			both("Fn_", f.Name, arn)
		}
	}
	for _, m := range d.StateMachines {
		if arn, ok := r.StateMachineARNs[m.Name]; ok {
			both("SM_", m.Name, arn)
		}
	}
	return vars
}

// Definition is a state machine's definition with its placeholders substituted.
func (d Deployment) Definition(m StateMachine, r Resources) ([]byte, error) {
	raw, err := ASL(m)
	if err != nil {
		return nil, err
	}
	def, err := Substitute(raw, d.MachineVars(r))
	if err != nil {
		return nil, fmt.Errorf("%w: state machine %s: %w", ErrContract, m.Name, err)
	}
	return def, nil
}
