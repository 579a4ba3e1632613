package main

import (
	"sort"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/keyline/keyline/infra"
)

// logicalID is the CloudFormation logical id of a construct's resource, as cdk-nag names
// it in its findings ("<Id.Arn>").
func (k *Keyline) logicalID(c constructs.IConstruct) string {
	return *k.Stack.GetLogicalId(c.Node().DefaultChild().(awscdk.CfnElement))
}

func suppress(c constructs.IConstruct, id, reason string, appliesTo ...string) {
	s := &cdknag.NagPackSuppression{Id: jsii.String(id), Reason: jsii.String(reason)}
	if len(appliesTo) > 0 {
		list := make([]any, len(appliesTo))
		for i, a := range appliesTo {
			list[i] = a
		}
		s.AppliesTo = &list
	}
	cdknag.NagSuppressions_AddResourceSuppressions(c, &[]*cdknag.NagPackSuppression{s}, jsii.Bool(true))
}

// flattenedArn renders a token ARN the way cdk-nag prints it in findings
// (arn:<AWS::Partition>:states:<AWS::Region>:...).
func flattenedArn(arn string) string {
	r := strings.NewReplacer(
		*awscdk.Aws_PARTITION(), "<AWS::Partition>",
		*awscdk.Aws_REGION(), "<AWS::Region>",
		*awscdk.Aws_ACCOUNT_ID(), "<AWS::AccountId>",
		*awscdk.Aws_URL_SUFFIX(), "<AWS::URLSuffix>",
	)
	return r.Replace(arn)
}

// suppressions are keyline's cdk-nag (AwsSolutions) exceptions, each scoped to the one
// resource and, for wildcard findings, to the exact resource string it is about.
func (k *Keyline) suppressions() {
	suppress(k.DLQ, "AwsSolutions-SQS3",
		"This queue is itself the dead-letter destination of every asynchronous invocation (Lambda OnFailure destinations, rule and schedule dead-letter configs), which the check does not recognise; an alarm fires on its first message.")

	names := make([]string, 0, len(k.FunctionRoles))
	for n := range k.FunctionRoles {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		f, _ := k.opts.Deployment.Function(n)
		role := k.FunctionRoles[n]
		for _, b := range []struct {
			res    infra.Resource
			bucket constructs.IConstruct
			what   string
		}{{infra.DataBucket, k.DataBucket, "App objects (apps/<appId>/...), drill scratch copies (drills/<drillId>/...) and re-encryption stashes (reencrypt-stash/<appId>/...) are keyed per app and created at run time"},
			{infra.BackupBucket, k.BackupBucket, "Backups (backups/<appId>/<backupId>...) are keyed per app and backup, created at run time"}} {
			if !hasAccess(f, b.res) {
				continue
			}
			var applies []string
			for _, p := range infra.PrefixPatterns(b.res) {
				applies = append(applies, "Resource::<"+k.logicalID(b.bucket)+".Arn>/"+p)
			}
			suppress(role, "AwsSolutions-IAM5", b.what+"; the grant is limited to keyline's prefixes of this one bucket.", applies...)
		}
		if len(f.StartsStateMachines) > 0 {
			var applies []string
			for _, m := range f.StartsStateMachines {
				applies = append(applies, "Resource::"+flattenedArn(k.executions(m)))
			}
			suppress(role, "AwsSolutions-IAM5",
				"Execution names are chosen at start time (idempotency keys); the grant lets the function describe only executions of the machines it starts.",
				applies...)
		}
		if len(f.FollowsStateMachines) > 0 {
			var applies []string
			for _, m := range f.FollowsStateMachines {
				applies = append(applies, "Resource::"+flattenedArn(k.executions(m)))
			}
			suppress(role, "AwsSolutions-IAM5",
				"Execution names are chosen at start time (idempotency keys); the grant lets the function describe (only) executions of the machines it follows.",
				applies...)
		}
		if hasAccess(f, infra.CustomerKeys) {
			suppress(role, "AwsSolutions-IAM5",
				"Customer-managed keys live in customers' accounts and regions and are enrolled at run time, so no ARN list exists at deploy time. Every cryptographic action is conditioned on keyline's encryption-context keys (and a context being present), the provider's own account is excluded, and each customer's key policy must name this role: KMS refuses cross-account use on IAM alone.",
				"Resource::arn:<AWS::Partition>:kms:*:*:key/*")
		}
	}
	for name, sm := range k.StateMachines {
		suppress(sm.Role(), "AwsSolutions-IAM5",
			"CloudWatch Logs vended-log delivery (logs:CreateLogDelivery, ...) and X-Ray (xray:PutTraceSegments, ...) do not support resource-level permissions; Step Functions requires these on \"*\" to log ALL events and trace. Added by CDK for logging and tracing only.",
			"Resource::*")
		if !k.distributed[name] {
			continue
		}
		suppress(sm.Role(), "AwsSolutions-IAM5",
			"A Distributed Map's child executions are named by Step Functions at run time (<machine>/<map run>:<id>); the grant covers only this machine's own executions.",
			"Resource::"+flattenedArn(k.childExecutions(name)))
	}
	if k.OperatorTokenSecret != nil {
		suppress(k.OperatorTokenSecret, "AwsSolutions-SMG4",
			"The operator token is a bearer credential generated at deploy time (381 bits) that a person copies from Secrets Manager; scheduled rotation would need a rotation function and would break the operator's session without notice. The console and its authorizer re-read the secret at least every 5 minutes, so a rotation by hand (put-secret-value) takes effect without a redeploy.")
	}
	if k.API != nil {
		suppress(k.API, "AwsSolutions-COG4",
			"Every method uses a Lambda TOKEN authorizer (console-authorizer) that checks keyline's own bearer tokens (the operator token against a hash, org tokens in the lineage table), and the console checks them again with the caller's right to the app; keyline's callers are the SaaS platform's operators and orgs, not users of a Cognito user pool.")
		suppress(k.API, "AwsSolutions-IAM4",
			"API Gateway's account-level CloudWatch Logs role (needed for access and execution logging) uses AmazonAPIGatewayPushToCloudWatchLogs, the AWS-maintained policy for exactly this role; it is assumable only by apigateway.amazonaws.com.",
			"Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs")
	}
}
