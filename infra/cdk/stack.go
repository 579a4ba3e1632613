package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigateway"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambdadestinations"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsscheduler"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsstepfunctions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awswafv2"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/keyline/keyline/infra"
)

// ErrDescription is returned when the deployment description cannot be deployed as it is
// (a reference to an unknown function or machine, an unknown access level, a missing
// bootstrap).
var ErrDescription = errors.New("deployment description")

// ConsoleAPIFunction is the function the console API (API Gateway) proxies to; without it
// the stack has no API.
const ConsoleAPIFunction = "console-api"

// ConsoleAuthorizerFunction is the Lambda TOKEN authorizer of every console API method (it
// gets the Authorization header and answers with an IAM policy). The console function
// authenticates each request again (defence in depth; `keyline local` has no gateway).
const ConsoleAuthorizerFunction = "console-authorizer"

// ConsoleAuthorizerCacheTTL is how long API Gateway caches an authorizer answer per token:
// short, so a token removed from the table stops working within it.
const ConsoleAuthorizerCacheTTL = time.Minute

// Metric names keyline publishes itself (see DEPLOY.md).
const (
	MetricNamespace        = infra.MetricNamespace
	MetricBackupAgeSeconds = infra.MetricBackupAgeMax
)

// Options configures the stack beyond the description.
type Options struct {
	// Deployment is what to deploy (infra.Description() in the real app).
	Deployment infra.Deployment
	// FunctionsDir holds <function name>/bootstrap for every function (scripts/build-functions.sh).
	FunctionsDir string
	// LogRetention applies to every log group (default three months).
	LogRetention awslogs.RetentionDays
	// BackupStaleAfter is the BackupAgeMaxSeconds threshold of the stale-backup alarm
	// (default 26 h: a daily backup plus slack).
	BackupStaleAfter time.Duration
	// NoncurrentVersionDays is how long overwritten or deleted objects stay recoverable in
	// the data and backup buckets (default 30).
	NoncurrentVersionDays int
	// StackProps are passed to the stack (env, synthesizer, ...).
	StackProps awscdk.StackProps
}

// Keyline is the synthesized stack and handles on what it holds (tests read them).
type Keyline struct {
	Stack            awscdk.Stack
	ProviderKey      awskms.Key
	LogsKey          awskms.Key
	Table            awsdynamodb.Table
	DataBucket       awss3.Bucket
	BackupBucket     awss3.Bucket
	LogsBucket       awss3.Bucket
	EventBus         awsevents.EventBus
	CustomerEventBus awsevents.EventBus
	EnrolledAccounts awscdk.CfnParameter
	// OperatorTokenSecret is the console's operator token in Secrets Manager, generated at
	// deploy time (nil without a function that checks tokens).
	OperatorTokenSecret awssecretsmanager.Secret
	DLQ                 awssqs.Queue
	Functions           map[string]awslambda.Function
	FunctionRoles       map[string]awsiam.Role
	StateMachines       map[string]awsstepfunctions.StateMachine
	MachineARNs         map[string]string
	// Rules are the description's rules on the default bus; CustomerRules mirror the
	// CloudTrail KMS ones on the customer-forwarding bus (keyed by description rule name).
	Rules         map[string]awsevents.Rule
	CustomerRules map[string]awsevents.Rule
	Schedules     map[string]awsscheduler.CfnSchedule
	// RevocationRule counts revocations on the audit bus (the revocation alarm's metric).
	RevocationRule awsevents.Rule
	API            awsapigateway.LambdaRestApi
	// Vars are the ASL placeholder values (tokens).
	Vars map[string]string

	opts        Options
	distributed map[string]bool // machines with a Distributed Map
}

// New builds keyline's stack from the description in opts.
func New(scope constructs.Construct, id string, opts Options) (*Keyline, error) {
	if opts.LogRetention == "" {
		opts.LogRetention = awslogs.RetentionDays_THREE_MONTHS
	}
	if opts.BackupStaleAfter == 0 {
		opts.BackupStaleAfter = 26 * time.Hour
	}
	if opts.NoncurrentVersionDays == 0 {
		opts.NoncurrentVersionDays = 30
	}
	if err := check(opts); err != nil {
		return nil, err
	}
	props := opts.StackProps
	if props.Description == nil {
		props.Description = jsii.String("keyline: backups, key lineage and CMK revocation for a multi-tenant SaaS")
	}
	k := &Keyline{
		Stack:         awscdk.NewStack(scope, jsii.String(id), &props),
		Functions:     map[string]awslambda.Function{},
		FunctionRoles: map[string]awsiam.Role{},
		StateMachines: map[string]awsstepfunctions.StateMachine{},
		MachineARNs:   map[string]string{},
		Rules:         map[string]awsevents.Rule{},
		CustomerRules: map[string]awsevents.Rule{},
		Schedules:     map[string]awsscheduler.CfnSchedule{},
		Vars:          map[string]string{},
		opts:          opts,
		distributed:   map[string]bool{},
	}
	k.keys()
	k.storage()
	k.buses()
	k.dlq()
	d := opts.Deployment
	// Machine ARNs are built from their (deterministic) names, not referenced, so that a
	// function that starts a machine which invokes that function is no dependency cycle.
	for _, m := range d.StateMachines {
		k.MachineARNs[m.Name] = *awscdk.Arn_Format(&awscdk.ArnComponents{
			Service: jsii.String("states"), Resource: jsii.String("stateMachine"),
			ResourceName: jsii.String(k.machineName(m.Name)), ArnFormat: awscdk.ArnFormat_COLON_RESOURCE_NAME,
		}, k.Stack)
	}
	for _, f := range d.Functions {
		if err := k.function(f); err != nil {
			return nil, err
		}
	}
	k.placeholderVars()
	for _, m := range d.StateMachines {
		if err := k.stateMachine(m); err != nil {
			return nil, err
		}
	}
	for _, r := range d.Rules {
		if err := k.rule(r); err != nil {
			return nil, err
		}
	}
	for _, s := range d.Schedules {
		k.schedule(s)
	}
	k.api()
	k.alarms()
	k.outputs()
	k.suppressions()
	return k, nil
}

// check validates the description's references before anything is built.
func check(opts Options) error {
	d := opts.Deployment
	fns := map[string]bool{}
	for _, f := range d.Functions {
		if f.Name == "" || fns[f.Name] {
			return fmt.Errorf("%w: function name %q empty or repeated", ErrDescription, f.Name)
		}
		fns[f.Name] = true
		boot := filepath.Join(opts.FunctionsDir, f.Name, "bootstrap")
		if st, err := os.Stat(boot); err != nil || st.IsDir() {
			return fmt.Errorf("%w: function %s has no bootstrap at %s (run scripts/build-functions.sh)", ErrDescription, f.Name, boot)
		}
		for _, a := range f.Access {
			if _, err := a.Levels(); err != nil {
				return fmt.Errorf("%w: function %s: %w", ErrDescription, f.Name, err)
			}
		}
	}
	sms := map[string]bool{}
	for _, m := range d.StateMachines {
		if m.Name == "" || sms[m.Name] {
			return fmt.Errorf("%w: state machine name %q empty or repeated", ErrDescription, m.Name)
		}
		sms[m.Name] = true
		if m.Express {
			return fmt.Errorf("%w: state machine %s is express; keyline deploys standard workflows only", ErrDescription, m.Name)
		}
		if _, err := infra.ASL(m); err != nil {
			return fmt.Errorf("%w: %w", ErrDescription, err)
		}
		for _, fn := range m.Functions {
			if !fns[fn] {
				return fmt.Errorf("%w: state machine %s uses unknown function %s", ErrDescription, m.Name, fn)
			}
		}
	}
	for _, f := range d.Functions {
		for _, m := range f.StartsStateMachines {
			if !sms[m] {
				return fmt.Errorf("%w: function %s starts unknown state machine %s", ErrDescription, f.Name, m)
			}
		}
		for _, m := range f.FollowsStateMachines {
			if !sms[m] {
				return fmt.Errorf("%w: function %s follows unknown state machine %s", ErrDescription, f.Name, m)
			}
		}
	}
	target := func(kind, name string, t infra.Target) error {
		switch {
		case (t.Function == "") == (t.StateMachine == ""):
			return fmt.Errorf("%w: %s %s needs exactly one target", ErrDescription, kind, name)
		case t.Function != "" && !fns[t.Function]:
			return fmt.Errorf("%w: %s %s targets unknown function %s", ErrDescription, kind, name, t.Function)
		case t.StateMachine != "" && !sms[t.StateMachine]:
			return fmt.Errorf("%w: %s %s targets unknown state machine %s", ErrDescription, kind, name, t.StateMachine)
		case len(t.Input) > 0 && !json.Valid(t.Input):
			return fmt.Errorf("%w: %s %s has an invalid input", ErrDescription, kind, name)
		}
		return nil
	}
	for _, r := range d.Rules {
		var p map[string]any
		if err := json.Unmarshal(r.EventPattern, &p); err != nil || len(p) == 0 {
			return fmt.Errorf("%w: rule %s: event pattern is not a JSON object", ErrDescription, r.Name)
		}
		if err := target("rule", r.Name, r.Target); err != nil {
			return err
		}
	}
	for _, s := range d.Schedules {
		if err := target("schedule", s.Name, s.Target); err != nil {
			return err
		}
	}
	return nil
}

func (k *Keyline) name(suffix string) string { return *k.Stack.StackName() + "-" + suffix }

func (k *Keyline) machineName(m string) string { return k.name(m) }

// childExecutions is the ARN pattern of a machine's Distributed Map child executions
// (arn:...:execution:<machine>/<map run label>:<id>).
func (k *Keyline) childExecutions(m string) string {
	return *awscdk.Arn_Format(&awscdk.ArnComponents{
		Service: jsii.String("states"), Resource: jsii.String("execution"),
		ResourceName: jsii.String(k.machineName(m) + "/*"), ArnFormat: awscdk.ArnFormat_COLON_RESOURCE_NAME,
	}, k.Stack)
}

// executions is the ARN pattern of a machine's executions (arn:...:execution:<machine>:*).
func (k *Keyline) executions(m string) string { return infra.ExecutionsPattern(k.MachineARNs[m]) }

// id turns a description name into a construct id part ("restore-drill" → "RestoreDrill").
func id(name string) string {
	var b strings.Builder
	up := true
	for _, r := range name {
		if r == '-' || r == '_' || r == '.' || r == ' ' {
			up = true
			continue
		}
		if up {
			b.WriteString(strings.ToUpper(string(r)))
			up = false
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func (k *Keyline) keys() {
	s := k.Stack
	// The key policies delegate to IAM (the account root) with the explicit actions keyline
	// and its operators need: CDK's default policy would grant "kms:*".
	root := awsiam.NewAccountRootPrincipal()
	admin := []string{
		"kms:DescribeKey", "kms:GetKeyPolicy", "kms:PutKeyPolicy", "kms:GetKeyRotationStatus",
		"kms:EnableKeyRotation", "kms:DisableKeyRotation", "kms:ListKeyRotations", "kms:RotateKeyOnDemand",
		"kms:EnableKey", "kms:DisableKey", "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion",
		"kms:UpdateKeyDescription", "kms:TagResource", "kms:UntagResource", "kms:ListResourceTags",
		"kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant", "kms:RetireGrant",
	}
	use := []string{"kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext",
		"kms:ReEncryptFrom", "kms:ReEncryptTo"}
	policy := func() awsiam.PolicyDocument {
		return awsiam.NewPolicyDocument(&awsiam.PolicyDocumentProps{Statements: &[]awsiam.PolicyStatement{
			awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
				Sid: jsii.String("AccountAdministersAndDelegatesToIAM"), Principals: &[]awsiam.IPrincipal{root},
				Actions: jsii.Strings(append(append([]string{}, admin...), use...)...), Resources: jsii.Strings("*"),
			}),
		}})
	}
	k.ProviderKey = awskms.NewKey(s, jsii.String("ProviderKey"), &awskms.KeyProps{
		Description:       jsii.String("keyline provider key: provider-managed app data, backups, the lineage table"),
		EnableKeyRotation: jsii.Bool(true),
		Policy:            policy(),
		RemovalPolicy:     awscdk.RemovalPolicy_RETAIN,
	})
	logsPolicy := policy()
	logsPolicy.AddStatements(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("CloudWatchLogsEncryptsThisAccountsLogGroups"),
		Principals: &[]awsiam.IPrincipal{awsiam.NewServicePrincipal(jsii.String("logs."+*s.Region()+"."+*s.UrlSuffix()), nil)},
		Actions:    jsii.Strings("kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:GenerateDataKey", "kms:DescribeKey"),
		Resources:  jsii.Strings("*"),
		Conditions: &map[string]any{"ArnLike": map[string]any{
			"kms:EncryptionContext:aws:logs:arn": "arn:" + *s.Partition() + ":logs:" + *s.Region() + ":" + *s.Account() + ":log-group:*",
		}},
	}))
	k.LogsKey = awskms.NewKey(s, jsii.String("LogsKey"), &awskms.KeyProps{
		Description:       jsii.String("keyline log groups (functions, state machines, API access logs)"),
		EnableKeyRotation: jsii.Bool(true),
		Policy:            logsPolicy,
		RemovalPolicy:     awscdk.RemovalPolicy_RETAIN,
	})
}

func (k *Keyline) logGroup(scope constructs.Construct, id string, name *string) awslogs.LogGroup {
	return awslogs.NewLogGroup(scope, jsii.String(id), &awslogs.LogGroupProps{
		LogGroupName:  name,
		Retention:     k.opts.LogRetention,
		EncryptionKey: k.LogsKey,
		RemovalPolicy: awscdk.RemovalPolicy_RETAIN,
	})
}

func (k *Keyline) storage() {
	s := k.Stack
	k.Table = awsdynamodb.NewTable(s, jsii.String("Table"), &awsdynamodb.TableProps{
		PartitionKey: &awsdynamodb.Attribute{Name: jsii.String("PK"), Type: awsdynamodb.AttributeType_STRING},
		SortKey:      &awsdynamodb.Attribute{Name: jsii.String("SK"), Type: awsdynamodb.AttributeType_STRING},
		BillingMode:  awsdynamodb.BillingMode_PAY_PER_REQUEST,
		PointInTimeRecoverySpecification: &awsdynamodb.PointInTimeRecoverySpecification{
			PointInTimeRecoveryEnabled: jsii.Bool(true),
		},
		DeletionProtection:  jsii.Bool(true),
		Encryption:          awsdynamodb.TableEncryption_CUSTOMER_MANAGED,
		EncryptionKey:       k.ProviderKey,
		TimeToLiveAttribute: jsii.String("ExpiresAt"),
		RemovalPolicy:       awscdk.RemovalPolicy_RETAIN,
	})
	k.Table.AddGlobalSecondaryIndex(&awsdynamodb.GlobalSecondaryIndexProps{
		IndexName:      jsii.String("GSI1"),
		PartitionKey:   &awsdynamodb.Attribute{Name: jsii.String("GSI1PK"), Type: awsdynamodb.AttributeType_STRING},
		SortKey:        &awsdynamodb.Attribute{Name: jsii.String("GSI1SK"), Type: awsdynamodb.AttributeType_STRING},
		ProjectionType: awsdynamodb.ProjectionType_ALL,
	})

	// Server access logs cannot be delivered to an SSE-KMS bucket: the log bucket uses SSE-S3.
	k.LogsBucket = awss3.NewBucket(s, jsii.String("AccessLogsBucket"), &awss3.BucketProps{
		BlockPublicAccess: awss3.BlockPublicAccess_BLOCK_ALL(),
		EnforceSSL:        jsii.Bool(true),
		Encryption:        awss3.BucketEncryption_S3_MANAGED,
		ObjectOwnership:   awss3.ObjectOwnership_BUCKET_OWNER_ENFORCED,
		Versioned:         jsii.Bool(true),
		RemovalPolicy:     awscdk.RemovalPolicy_RETAIN,
		LifecycleRules: &[]*awss3.LifecycleRule{{
			Id:                          jsii.String("expire-access-logs"),
			Expiration:                  awscdk.Duration_Days(jsii.Number(400)),
			NoncurrentVersionExpiration: awscdk.Duration_Days(jsii.Number(30)),
		}},
	})
	bucket := func(id, logPrefix string, extra ...*awss3.LifecycleRule) awss3.Bucket {
		rules := append([]*awss3.LifecycleRule{{
			Id:                                  jsii.String("expire-noncurrent-versions"),
			NoncurrentVersionExpiration:         awscdk.Duration_Days(jsii.Number(float64(k.opts.NoncurrentVersionDays))),
			AbortIncompleteMultipartUploadAfter: awscdk.Duration_Days(jsii.Number(7)),
		}, {
			Id:                        jsii.String("remove-expired-delete-markers"),
			ExpiredObjectDeleteMarker: jsii.Bool(true),
		}}, extra...)
		return awss3.NewBucket(s, jsii.String(id), &awss3.BucketProps{
			BlockPublicAccess:      awss3.BlockPublicAccess_BLOCK_ALL(),
			EnforceSSL:             jsii.Bool(true),
			Versioned:              jsii.Bool(true),
			Encryption:             awss3.BucketEncryption_KMS,
			EncryptionKey:          k.ProviderKey,
			BucketKeyEnabled:       jsii.Bool(true),
			ObjectOwnership:        awss3.ObjectOwnership_BUCKET_OWNER_ENFORCED,
			ServerAccessLogsBucket: k.LogsBucket,
			ServerAccessLogsPrefix: jsii.String(logPrefix),
			LifecycleRules:         &rules,
			RemovalPolicy:          awscdk.RemovalPolicy_RETAIN,
		})
	}
	// Backstop for the re-encryption stash (previous sealings kept until a re-encryption
	// commits or aborts, which delete them): anything left behind expires.
	k.DataBucket = bucket("DataBucket", "data-bucket/", &awss3.LifecycleRule{
		Id:         jsii.String("expire-reencrypt-stash"),
		Prefix:     jsii.String("reencrypt-stash/"),
		Expiration: awscdk.Duration_Days(jsii.Number(30)),
	})
	// keyline deletes a backup past its retention (and disables those under retired or revoked
	// keys through the lineage table, never by deleting them); the deleted versions are kept
	// NoncurrentVersionDays, then lifecycle removes them.
	k.BackupBucket = bucket("BackupBucket", "backup-bucket/")
}

func (k *Keyline) buses() {
	s := k.Stack
	k.EventBus = awsevents.NewEventBus(s, jsii.String("EventBus"), &awsevents.EventBusProps{
		EventBusName: jsii.String(k.name("audit")),
		Description:  jsii.String("keyline audit events (source: keyline)"),
	})
	k.CustomerEventBus = awsevents.NewEventBus(s, jsii.String("CustomerEventBus"), &awsevents.EventBusProps{
		EventBusName: jsii.String(k.name("customer-kms")),
		Description:  jsii.String("CloudTrail KMS events forwarded from enrolled customer accounts"),
	})
	k.EnrolledAccounts = awscdk.NewCfnParameter(s, jsii.String("EnrolledCustomerAccounts"), &awscdk.CfnParameterProps{
		Type:        jsii.String("CommaDelimitedList"),
		Default:     jsii.String(""),
		Description: jsii.String("AWS account ids of enrolled customers allowed to forward their CloudTrail KMS events to keyline's customer bus (empty: none)"),
	})
	has := awscdk.NewCfnCondition(s, jsii.String("HasEnrolledCustomerAccounts"), &awscdk.CfnConditionProps{
		Expression: awscdk.Fn_ConditionNot(awscdk.Fn_ConditionEquals(
			awscdk.Fn_Join(jsii.String(""), k.EnrolledAccounts.ValueAsList()), jsii.String(""))),
	})
	var accounts []string
	for _, a := range *k.EnrolledAccounts.ValueAsList() {
		accounts = append(accounts, *a)
	}
	busPolicy := infra.CustomerBusPolicy(*k.CustomerEventBus.EventBusArn(), accounts).Statement[0]
	statement, err := asJSONObject(busPolicy)
	if err != nil {
		panic(err) // strings only
	}
	pol := awsevents.NewCfnEventBusPolicy(s, jsii.String("CustomerEventBusPolicy"), &awsevents.CfnEventBusPolicyProps{
		EventBusName: k.CustomerEventBus.EventBusName(),
		StatementId:  jsii.String(busPolicy.Sid),
		Statement:    statement,
	})
	pol.CfnOptions().SetCondition(has)
}

func (k *Keyline) dlq() {
	// Failure destination of every asynchronous invocation (Lambda, rules, schedules):
	// operators inspect and redrive from here; an alarm fires on the first message.
	k.DLQ = awssqs.NewQueue(k.Stack, jsii.String("FailedInvocations"), &awssqs.QueueProps{
		Encryption:      awssqs.QueueEncryption_SQS_MANAGED,
		EnforceSSL:      jsii.Bool(true),
		RetentionPeriod: awscdk.Duration_Days(jsii.Number(14)),
	})
}

func (k *Keyline) function(f infra.Function) error {
	s := k.Stack
	cid := "Fn" + id(f.Name)
	// The role's name is fixed (infra.RoleName): customers' key policies name it.
	role := awsiam.NewRole(s, jsii.String(cid+"Role"), &awsiam.RoleProps{
		RoleName:    jsii.String(infra.RoleName(*s.StackName(), f.Name)),
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("lambda.amazonaws.com"), nil),
		Description: jsii.String("keyline function " + f.Name),
	})
	lg := k.logGroup(s, cid+"Logs", nil)
	role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("OwnLogGroup"),
		Actions:   jsii.Strings("logs:CreateLogStream", "logs:PutLogEvents"),
		Resources: &[]*string{lg.LogGroupArn()},
	}))
	if f.ChecksOperatorToken() {
		// The console and its authorizer read the operator token from its secret (the
		// contract grants them GetSecretValue on it); no environment holds it.
		k.operatorTokenSecret()
	}
	stmts, err := k.accessStatements(f)
	if err != nil {
		return err
	}
	for _, st := range stmts {
		role.AddToPrincipalPolicy(st)
	}
	env := map[string]*string{}
	for key, v := range f.Environment(k.resources()) {
		env[key] = jsii.String(v)
	}
	timeout := f.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	mem := f.MemoryMB
	if mem <= 0 {
		mem = 256
	}
	props := &awslambda.FunctionProps{
		Description:  jsii.String(f.Description),
		Runtime:      awslambda.Runtime_PROVIDED_AL2023(),
		Architecture: awslambda.Architecture_ARM_64(),
		Handler:      jsii.String("bootstrap"),
		Code:         awslambda.Code_FromAsset(jsii.String(filepath.Join(k.opts.FunctionsDir, f.Name)), nil),
		Timeout:      awscdk.Duration_Seconds(jsii.Number(timeout.Seconds())),
		MemorySize:   jsii.Number(float64(mem)),
		Role:         role,
		LogGroup:     lg,
		Environment:  &env,
		OnFailure:    awslambdadestinations.NewSqsDestination(k.DLQ),
	}
	if f.ReservedConcurrency > 0 {
		props.ReservedConcurrentExecutions = jsii.Number(float64(f.ReservedConcurrency))
	}
	k.Functions[f.Name] = awslambda.NewFunction(s, jsii.String(cid), props)
	k.FunctionRoles[f.Name] = role
	return nil
}

// operatorTokenSecret is the console's operator token: a secret Secrets Manager generates when
// the stack is deployed (infra.OperatorTokenLength letters and digits, at least 256 bits), named
// infra.OperatorTokenSecretName; the operator reads it with `aws secretsmanager get-secret-value`.
func (k *Keyline) operatorTokenSecret() awssecretsmanager.Secret {
	if k.OperatorTokenSecret == nil {
		k.OperatorTokenSecret = awssecretsmanager.NewSecret(k.Stack, jsii.String("OperatorToken"), &awssecretsmanager.SecretProps{
			SecretName:  jsii.String(infra.OperatorTokenSecretName(*k.Stack.StackName())),
			Description: jsii.String("keyline console operator token (read by the console and its authorizer only)"),
			GenerateSecretString: &awssecretsmanager.SecretStringGenerator{
				PasswordLength:     jsii.Number(infra.OperatorTokenLength),
				ExcludePunctuation: jsii.Bool(true),
				IncludeSpace:       jsii.Bool(false),
			},
		})
		awscdk.NewCfnOutput(k.Stack, jsii.String("OperatorTokenSecretArn"), &awscdk.CfnOutputProps{
			Value:       k.OperatorTokenSecret.SecretArn(),
			Description: jsii.String("the console's operator token: aws secretsmanager get-secret-value --secret-id <this>"),
		})
	}
	return k.OperatorTokenSecret
}

// placeholderVars are the values of the ASL placeholders (infra.Deployment.MachineVars).
func (k *Keyline) placeholderVars() {
	k.Vars = k.opts.Deployment.MachineVars(k.resources())
}

var (
	fnPlaceholder  = regexp.MustCompile(`\$\{Fn_([A-Za-z0-9_]+)\}`)
	smPlaceholder  = regexp.MustCompile(`\$\{SM_([A-Za-z0-9_]+)\}`)
	ddbIntegration = regexp.MustCompile(`arn:aws:states:::(?:aws-sdk:)?dynamodb:([a-zA-Z]+)`)
)

// machineFunctions are the functions a definition invokes: those the description lists and
// those its ${Fn_x} placeholders name.
func (k *Keyline) machineFunctions(m infra.StateMachine, asl []byte) []string {
	set := map[string]bool{}
	for _, f := range m.Functions {
		set[f] = true
	}
	for _, g := range fnPlaceholder.FindAllSubmatch(asl, -1) {
		for name := range k.Functions {
			if strings.ReplaceAll(name, "-", "_") == string(g[1]) || name == string(g[1]) {
				set[name] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for f := range set {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

func (k *Keyline) stateMachine(m infra.StateMachine) error {
	s := k.Stack
	raw, err := infra.ASL(m)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrDescription, err)
	}
	def, err := k.opts.Deployment.Definition(m, k.resources())
	if err != nil {
		return fmt.Errorf("%w: %w", ErrDescription, err)
	}
	cid := "SM" + id(m.Name)
	role := awsiam.NewRole(s, jsii.String(cid+"Role"), &awsiam.RoleProps{
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("states.amazonaws.com"), nil),
		Description: jsii.String("keyline state machine " + m.Name),
	})
	var fnArns []*string
	for _, f := range k.machineFunctions(m, raw) {
		fnArns = append(fnArns, k.Functions[f].FunctionArn())
	}
	if len(fnArns) > 0 {
		role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid: jsii.String("InvokeOwnFunctions"), Actions: jsii.Strings("lambda:InvokeFunction"), Resources: &fnArns,
		}))
	}
	var smArns []*string
	seen := map[string]bool{}
	for _, g := range smPlaceholder.FindAllSubmatch(raw, -1) {
		for name, arn := range k.MachineARNs {
			if (strings.ReplaceAll(name, "-", "_") == string(g[1]) || name == string(g[1])) && !seen[name] {
				seen[name] = true
				smArns = append(smArns, jsii.String(arn))
			}
		}
	}
	if len(smArns) > 0 {
		role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid: jsii.String("StartNamedMachines"), Actions: jsii.Strings("states:StartExecution"), Resources: &smArns,
		}))
	}
	if strings.Contains(string(raw), "${EventBusName}") || strings.Contains(string(raw), "arn:aws:states:::events:putEvents") {
		role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid: jsii.String("PutAuditEvents"), Actions: jsii.Strings("events:PutEvents"), Resources: &[]*string{k.EventBus.EventBusArn()},
		}))
	}
	if ops := ddbIntegration.FindAllSubmatch(raw, -1); len(ops) > 0 {
		acts := map[string]bool{}
		for _, op := range ops {
			a := string(op[1])
			acts["dynamodb:"+strings.ToUpper(a[:1])+a[1:]] = true
		}
		var list []string
		for a := range acts {
			list = append(list, a)
		}
		sort.Strings(list)
		role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid: jsii.String("TableIntegrations"), Actions: jsii.Strings(list...),
			Resources: &[]*string{k.Table.TableArn(), jsii.String(*k.Table.TableArn() + "/index/GSI1")},
		}))
		role.AddToPrincipalPolicy(viaService(k, "dynamodb", []string{"kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"}))
	}
	if regexp.MustCompile(`"Mode"\s*:\s*"DISTRIBUTED"`).Match(raw) {
		// A Distributed Map runs its items as child executions of this machine.
		k.distributed[m.Name] = true
		role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid: jsii.String("DistributedMapStart"), Actions: jsii.Strings("states:StartExecution"),
			Resources: &[]*string{jsii.String(k.MachineARNs[m.Name])},
		}))
		role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid: jsii.String("DistributedMapChildren"), Actions: jsii.Strings("states:DescribeExecution", "states:StopExecution"),
			Resources: &[]*string{jsii.String(k.childExecutions(m.Name))},
		}))
	}
	if strings.Contains(string(raw), "arn:aws:states:::s3:listObjectsV2") {
		// A Map's ItemReader lists the bucket it names, under keyline's prefixes only.
		for _, b := range []struct {
			placeholder string
			res         infra.Resource
			bucket      awss3.Bucket
		}{{"${DataBucket}", infra.DataBucket, k.DataBucket}, {"${BackupBucket}", infra.BackupBucket, k.BackupBucket}} {
			if !strings.Contains(string(raw), b.placeholder) {
				continue
			}
			role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
				Sid: jsii.String("ItemReaderList" + string(b.res)), Actions: jsii.Strings("s3:ListBucket"),
				Resources:  &[]*string{b.bucket.BucketArn()},
				Conditions: &map[string]any{"StringLike": map[string]any{"s3:prefix": infra.PrefixPatterns(b.res)}},
			}))
		}
	}
	lg := k.logGroup(s, cid+"Logs", jsii.String("/aws/vendedlogs/states/"+k.machineName(m.Name)))
	sm := awsstepfunctions.NewStateMachine(s, jsii.String(cid), &awsstepfunctions.StateMachineProps{
		StateMachineName: jsii.String(k.machineName(m.Name)),
		StateMachineType: awsstepfunctions.StateMachineType_STANDARD,
		DefinitionBody:   awsstepfunctions.DefinitionBody_FromString(jsii.String(string(def))),
		Role:             role,
		TracingEnabled:   jsii.Bool(true),
		Logs: &awsstepfunctions.LogOptions{
			Destination:          lg,
			Level:                awsstepfunctions.LogLevel_ALL,
			IncludeExecutionData: jsii.Bool(true),
		},
	})
	k.StateMachines[m.Name] = sm
	return nil
}

// patternOf parses a description pattern (validated in check).
func patternOf(r infra.Rule) map[string]any {
	var p map[string]any
	_ = json.Unmarshal(r.EventPattern, &p)
	return p
}

func (k *Keyline) ruleTarget(t infra.Target) awsevents.IRuleTarget {
	var input awsevents.RuleTargetInput
	if len(t.Input) > 0 {
		var v any
		_ = json.Unmarshal(t.Input, &v)
		input = awsevents.RuleTargetInput_FromObject(v)
	}
	if t.StateMachine != "" {
		return awseventstargets.NewSfnStateMachine(k.StateMachines[t.StateMachine], &awseventstargets.SfnStateMachineProps{
			Input: input, DeadLetterQueue: k.DLQ, RetryAttempts: jsii.Number(185),
			MaxEventAge: awscdk.Duration_Hours(jsii.Number(24)),
		})
	}
	return awseventstargets.NewLambdaFunction(k.Functions[t.Function], &awseventstargets.LambdaFunctionProps{
		Event: input, DeadLetterQueue: k.DLQ, RetryAttempts: jsii.Number(185),
		MaxEventAge: awscdk.Duration_Hours(jsii.Number(24)),
	})
}

func (k *Keyline) newRule(cid string, r infra.Rule, bus awsevents.IEventBus) awsevents.Rule {
	// The L2 rule wants a typed pattern; the description's pattern is set verbatim on the
	// CloudFormation resource instead, so what deploys is exactly what `keyline local`
	// matches (the placeholder Version below is replaced, not merged).
	rule := awsevents.NewRule(k.Stack, jsii.String(cid), &awsevents.RuleProps{
		Description:  jsii.String(r.Description),
		EventBus:     bus,
		EventPattern: &awsevents.EventPattern{Version: jsii.Strings("0")},
		Targets:      &[]awsevents.IRuleTarget{k.ruleTarget(r.Target)},
	})
	rule.Node().DefaultChild().(awsevents.CfnRule).SetEventPattern(patternOf(r))
	return rule
}

func (k *Keyline) rule(r infra.Rule) error {
	cid := "Rule" + id(r.Name)
	if r.Bus == infra.BusKeyline {
		k.Rules[r.Name] = k.newRule(cid, r, k.EventBus)
		return nil
	}
	k.Rules[r.Name] = k.newRule(cid, r, nil)
	if r.MatchesCloudTrailKMS() {
		k.CustomerRules[r.Name] = k.newRule("Customer"+cid, r, k.CustomerEventBus)
	}
	return nil
}

func (k *Keyline) schedule(sc infra.Schedule) {
	s := k.Stack
	cid := "Schedule" + id(sc.Name)
	role := awsiam.NewRole(s, jsii.String(cid+"Role"), &awsiam.RoleProps{
		AssumedBy: awsiam.NewServicePrincipal(jsii.String("scheduler.amazonaws.com"), &awsiam.ServicePrincipalOpts{
			Conditions: &map[string]any{"StringEquals": map[string]any{"aws:SourceAccount": k.Stack.Account()}},
		}),
		Description: jsii.String("keyline schedule " + sc.Name + ": starts only its target"),
	})
	var arn *string
	if sc.Target.StateMachine != "" {
		arn = jsii.String(k.MachineARNs[sc.Target.StateMachine])
		role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid: jsii.String("StartTarget"), Actions: jsii.Strings("states:StartExecution"), Resources: &[]*string{arn},
		}))
	} else {
		arn = k.Functions[sc.Target.Function].FunctionArn()
		role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid: jsii.String("InvokeTarget"), Actions: jsii.Strings("lambda:InvokeFunction"), Resources: &[]*string{arn},
		}))
	}
	role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid: jsii.String("DeadLetters"), Actions: jsii.Strings("sqs:SendMessage"), Resources: &[]*string{k.DLQ.QueueArn()},
	}))
	target := &awsscheduler.CfnSchedule_TargetProperty{
		Arn:              arn,
		RoleArn:          role.RoleArn(),
		DeadLetterConfig: &awsscheduler.CfnSchedule_DeadLetterConfigProperty{Arn: k.DLQ.QueueArn()},
		RetryPolicy: &awsscheduler.CfnSchedule_RetryPolicyProperty{
			MaximumEventAgeInSeconds: jsii.Number(3600), MaximumRetryAttempts: jsii.Number(10),
		},
	}
	if len(sc.Target.Input) > 0 {
		target.Input = jsii.String(string(sc.Target.Input))
	}
	tz := sc.Timezone
	if tz == "" {
		tz = "UTC"
	}
	sched := awsscheduler.NewCfnSchedule(s, jsii.String(cid), &awsscheduler.CfnScheduleProps{
		Name:                       jsii.String(k.name(sc.Name)),
		Description:                jsii.String(sc.Description),
		ScheduleExpression:         jsii.String(sc.Expression),
		ScheduleExpressionTimezone: jsii.String(tz),
		FlexibleTimeWindow:         &awsscheduler.CfnSchedule_FlexibleTimeWindowProperty{Mode: jsii.String("OFF")},
		State:                      jsii.String("ENABLED"),
		Target:                     target,
	})
	// The role's policy and the target must exist before the schedule first fires (the
	// machine's ARN is built from its name, so no reference orders them).
	sched.Node().AddDependency(role)
	if sc.Target.StateMachine != "" {
		sched.Node().AddDependency(k.StateMachines[sc.Target.StateMachine])
	}
	k.Schedules[sc.Name] = sched
}

func (k *Keyline) api() {
	fn, ok := k.Functions[ConsoleAPIFunction]
	if !ok {
		return
	}
	s := k.Stack
	access := k.logGroup(s, "ConsoleApiAccessLogs", nil)
	k.API = awsapigateway.NewLambdaRestApi(s, jsii.String("ConsoleApi"), &awsapigateway.LambdaRestApiProps{
		RestApiName:    jsii.String(k.name("console")),
		Description:    jsii.String("keyline console API (restores, re-encryption, status)"),
		Handler:        fn,
		Proxy:          jsii.Bool(false), // methods below, with the validator and authorization
		EndpointTypes:  &[]awsapigateway.EndpointType{awsapigateway.EndpointType_REGIONAL},
		CloudWatchRole: jsii.Bool(true),
		DeployOptions: &awsapigateway.StageOptions{
			StageName:            jsii.String("v1"),
			AccessLogDestination: awsapigateway.NewLogGroupLogDestination(access),
			AccessLogFormat:      awsapigateway.AccessLogFormat_JsonWithStandardFields(nil),
			LoggingLevel:         awsapigateway.MethodLoggingLevel_ERROR,
			DataTraceEnabled:     jsii.Bool(false),
			MetricsEnabled:       jsii.Bool(true),
			TracingEnabled:       jsii.Bool(true),
			ThrottlingRateLimit:  jsii.Number(50),
			ThrottlingBurstLimit: jsii.Number(100),
		},
	})
	// Callers send Authorization: Bearer <token> (the operator token or an org token,
	// internal/console), so the gateway cannot use IAM (SigV4 would take that header): the
	// console-authorizer function checks the header first (a TOKEN authorizer, the same
	// console.Tokens), then the console checks it again.
	methods := &awsapigateway.MethodOptions{
		AuthorizationType: awsapigateway.AuthorizationType_NONE,
		RequestValidator: k.API.AddRequestValidator(jsii.String("Validator"), &awsapigateway.RequestValidatorOptions{
			ValidateRequestBody: jsii.Bool(true), ValidateRequestParameters: jsii.Bool(true),
		}),
	}
	if authFn, ok := k.Functions[ConsoleAuthorizerFunction]; ok {
		methods.AuthorizationType = awsapigateway.AuthorizationType_CUSTOM
		methods.Authorizer = awsapigateway.NewTokenAuthorizer(s, jsii.String("ConsoleApiAuthorizer"), &awsapigateway.TokenAuthorizerProps{
			AuthorizerName:  jsii.String(k.name("console-authorizer")),
			Handler:         authFn,
			IdentitySource:  awsapigateway.IdentitySource_Header(jsii.String("Authorization")),
			ValidationRegex: jsii.String(ConsoleAuthorizationPattern),
			ResultsCacheTtl: awscdk.Duration_Seconds(jsii.Number(ConsoleAuthorizerCacheTTL.Seconds())),
		})
		// The gateway's refusals read like the console's own (API.md): 401 with
		// {"error":{"code","message"}}, for a missing or garbled header (UNAUTHORIZED) and for
		// an unknown token (the authorizer's Deny: ACCESS_DENIED).
		body := map[string]*string{"application/json": jsii.String(consoleUnauthorizedBody)}
		for _, rt := range []struct {
			id  string
			typ awsapigateway.ResponseType
		}{{"Unauthorized", awsapigateway.ResponseType_UNAUTHORIZED()}, {"AccessDenied", awsapigateway.ResponseType_ACCESS_DENIED()}} {
			k.API.AddGatewayResponse(jsii.String("Gateway"+rt.id), &awsapigateway.GatewayResponseOptions{
				Type: rt.typ, StatusCode: jsii.String("401"), Templates: &body,
			})
		}
	}
	k.API.Root().AddMethod(jsii.String("ANY"), nil, methods)
	k.API.Root().AddProxy(&awsapigateway.ProxyResourceOptions{AnyMethod: jsii.Bool(false)}).AddMethod(jsii.String("ANY"), nil, methods)
	acl := awswafv2.NewCfnWebACL(s, jsii.String("ConsoleApiWebAcl"), &awswafv2.CfnWebACLProps{
		Scope:         jsii.String("REGIONAL"),
		DefaultAction: &awswafv2.CfnWebACL_DefaultActionProperty{Allow: &awswafv2.CfnWebACL_AllowActionProperty{}},
		VisibilityConfig: &awswafv2.CfnWebACL_VisibilityConfigProperty{
			CloudWatchMetricsEnabled: jsii.Bool(true), MetricName: jsii.String("keyline-console-api"), SampledRequestsEnabled: jsii.Bool(true),
		},
		Rules: &[]any{
			managedRule("AWSManagedRulesCommonRuleSet", 0),
			managedRule("AWSManagedRulesKnownBadInputsRuleSet", 1),
			&awswafv2.CfnWebACL_RuleProperty{
				Name: jsii.String("rate-limit-per-ip"), Priority: jsii.Number(2),
				Action: &awswafv2.CfnWebACL_RuleActionProperty{Block: &awswafv2.CfnWebACL_BlockActionProperty{}},
				Statement: &awswafv2.CfnWebACL_StatementProperty{RateBasedStatement: &awswafv2.CfnWebACL_RateBasedStatementProperty{
					AggregateKeyType: jsii.String("IP"), Limit: jsii.Number(1000),
				}},
				VisibilityConfig: &awswafv2.CfnWebACL_VisibilityConfigProperty{
					CloudWatchMetricsEnabled: jsii.Bool(true), MetricName: jsii.String("rate-limit-per-ip"), SampledRequestsEnabled: jsii.Bool(true),
				},
			},
		},
	})
	awswafv2.NewCfnWebACLAssociation(s, jsii.String("ConsoleApiWebAclAssociation"), &awswafv2.CfnWebACLAssociationProps{
		ResourceArn: k.API.DeploymentStage().StageArn(),
		WebAclArn:   acl.AttrArn(),
	})
}

// ConsoleAuthorizationPattern is the Authorization header the gateway passes to the
// authorizer; any other value is refused (401) without invoking it.
const ConsoleAuthorizationPattern = `^Bearer [^\s]+$`

// consoleUnauthorizedBody is the console's own 401 answer (internal/console).
const consoleUnauthorizedBody = `{"error":{"code":"Unauthorized","message":"send ` + "`Authorization: Bearer <token>`" + ` with an operator or org token"}}`

func managedRule(name string, prio float64) *awswafv2.CfnWebACL_RuleProperty {
	return &awswafv2.CfnWebACL_RuleProperty{
		Name: jsii.String(name), Priority: jsii.Number(prio),
		OverrideAction: &awswafv2.CfnWebACL_OverrideActionProperty{None: map[string]any{}},
		Statement: &awswafv2.CfnWebACL_StatementProperty{ManagedRuleGroupStatement: &awswafv2.CfnWebACL_ManagedRuleGroupStatementProperty{
			VendorName: jsii.String("AWS"), Name: jsii.String(name),
		}},
		VisibilityConfig: &awswafv2.CfnWebACL_VisibilityConfigProperty{
			CloudWatchMetricsEnabled: jsii.Bool(true), MetricName: jsii.String(name), SampledRequestsEnabled: jsii.Bool(true),
		},
	}
}

func (k *Keyline) alarms() {
	s := k.Stack
	names := make([]string, 0, len(k.StateMachines))
	for n := range k.StateMachines {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		awscloudwatch.NewAlarm(s, jsii.String("Alarm"+id(n)+"Failed"), &awscloudwatch.AlarmProps{
			AlarmDescription:   jsii.String("keyline state machine " + n + ": an execution failed"),
			Metric:             k.StateMachines[n].MetricFailed(&awscloudwatch.MetricOptions{Period: awscdk.Duration_Minutes(jsii.Number(5)), Statistic: jsii.String("Sum")}),
			Threshold:          jsii.Number(1),
			EvaluationPeriods:  jsii.Number(1),
			ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
			TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
		})
	}
	// Revocations: a rule on keyline's audit bus matches every revoked key, whatever
	// path revoked it; the alarm counts its matches (AWS/Events TriggeredRules). The rule
	// needs no target: matching is what is measured.
	k.RevocationRule = awsevents.NewRule(s, jsii.String("RevocationAuditRule"), &awsevents.RuleProps{
		Description:  jsii.String("keyline audit: a revocation deactivated an app or revoked a pending generation (counted by the revocation alarm)"),
		EventBus:     k.EventBus,
		EventPattern: &awsevents.EventPattern{Version: jsii.Strings("0")},
	})
	// The contract's pattern, verbatim (infra.RevocationAlarmPattern).
	var revocation map[string]any
	_ = json.Unmarshal(infra.RevocationAlarmPattern(), &revocation)
	k.RevocationRule.Node().DefaultChild().(awsevents.CfnRule).SetEventPattern(revocation)
	awscloudwatch.NewAlarm(s, jsii.String("AlarmRevocations"), &awscloudwatch.AlarmProps{
		AlarmDescription: jsii.String("keyline: a key was revoked; its apps are deactivated and their backups unavailable (R8)"),
		Metric: awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
			Namespace: jsii.String("AWS/Events"), MetricName: jsii.String("TriggeredRules"),
			DimensionsMap: &map[string]*string{"EventBusName": k.EventBus.EventBusName(), "RuleName": k.RevocationRule.RuleName()},
			Statistic:     jsii.String("Sum"), Period: awscdk.Duration_Minutes(jsii.Number(5)),
		}),
		Threshold:          jsii.Number(1),
		EvaluationPeriods:  jsii.Number(1),
		ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
		TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
	})
	awscloudwatch.NewAlarm(s, jsii.String("AlarmStaleBackups"), &awscloudwatch.AlarmProps{
		AlarmDescription: jsii.String(fmt.Sprintf("keyline: the oldest latest backup of an active app is older than %s (the backup list-due step reports it every run, 0 without active apps)", k.opts.BackupStaleAfter)),
		Metric: awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
			Namespace: jsii.String(MetricNamespace), MetricName: jsii.String(MetricBackupAgeSeconds),
			Statistic: jsii.String("Maximum"), Period: awscdk.Duration_Hours(jsii.Number(1)),
		}),
		Threshold:          jsii.Number(k.opts.BackupStaleAfter.Seconds()),
		EvaluationPeriods:  jsii.Number(1),
		ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD,
		// The figure is published (EMF, no dimensions) by every scheduled run of the backup
		// machine's list-due step, 0 when there is no active app. No figure means no run: a
		// fresh stack before its first run, or a machine that failed (its own alarm fires), so
		// missing data does not breach.
		TreatMissingData: awscloudwatch.TreatMissingData_NOT_BREACHING,
	})
	awscloudwatch.NewAlarm(s, jsii.String("AlarmFailedInvocations"), &awscloudwatch.AlarmProps{
		AlarmDescription:   jsii.String("keyline: an asynchronous invocation failed and is in the failed-invocations queue"),
		Metric:             k.DLQ.MetricApproximateNumberOfMessagesVisible(&awscloudwatch.MetricOptions{Period: awscdk.Duration_Minutes(jsii.Number(5)), Statistic: jsii.String("Maximum")}),
		Threshold:          jsii.Number(1),
		EvaluationPeriods:  jsii.Number(1),
		ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
		TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
	})
}

func (k *Keyline) outputs() {
	out := func(id string, v *string, desc string) {
		awscdk.NewCfnOutput(k.Stack, jsii.String(id), &awscdk.CfnOutputProps{Value: v, Description: jsii.String(desc)})
	}
	out("CustomerEventBusArn", k.CustomerEventBus.EventBusArn(), "target of customers' CloudTrail KMS forwarding rules")
	out("AuditEventBusName", k.EventBus.EventBusName(), "keyline audit events (source: keyline)")
	out("TableName", k.Table.TableName(), "lineage table")
	out("DataBucketName", k.DataBucket.BucketName(), "app data")
	out("BackupBucketName", k.BackupBucket.BucketName(), "sealed backups")
	out("FailedInvocationsQueueUrl", k.DLQ.QueueUrl(), "failed asynchronous invocations")
	for _, f := range k.opts.Deployment.Functions {
		if role, ok := k.FunctionRoles[f.Name]; ok && hasAccess(f, infra.CustomerKeys) {
			out("Role"+id(f.Name)+"Arn", role.RoleArn(), "role of "+f.Name+": customers name it in their key policy")
		}
	}
	if k.API != nil {
		out("ConsoleApiUrl", k.API.Url(), "console API")
	}
}

func hasAccess(f infra.Function, r infra.Resource) bool {
	for _, a := range f.Access {
		if a.Resource == r {
			return true
		}
	}
	return false
}
