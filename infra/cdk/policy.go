package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/jsii-runtime-go"

	"github.com/keyline/keyline/infra"
)

// EncryptionContextKeys are the encryption-context key names keyline puts on every KMS call:
// the constants ContextKeyApp, ContextKeyGeneration and ContextKeyPurpose of internal/keys.
// infra/cdk may not import internal/, so they are repeated here;
// TestEncryptionContextKeysMatchInternalKeys fails if internal/keys drifts from them.
// Adding a key there means adding it here and in every customer's key policy.
var EncryptionContextKeys = []string{"keyline:app", "keyline:generation", "keyline:purpose"}

// Actions per access level. No wildcard actions: each is named.
var (
	tableRead  = []string{"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:Scan", "dynamodb:ConditionCheckItem", "dynamodb:DescribeTable"}
	tableWrite = []string{"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"}
	objRead    = []string{"s3:GetObject"}
	objWrite   = []string{"s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"}
	keyActions = map[string]string{
		"encrypt":  "kms:Encrypt",
		"decrypt":  "kms:Decrypt",
		"generate": "kms:GenerateDataKey",
	}
)

// levels splits an Access level and checks it against its resource.
func levels(a infra.Access) ([]string, error) {
	var out []string
	for _, l := range strings.Split(a.Level, ",") {
		l = strings.TrimSpace(l)
		switch a.Resource {
		case infra.Table, infra.DataBucket, infra.BackupBucket:
			if l != "read" && l != "write" {
				return nil, fmt.Errorf("access to %s: level %q is not read or write", a.Resource, l)
			}
		case infra.EventBus:
			if l != "write" {
				return nil, fmt.Errorf("access to %s: level %q is not write (functions only put events)", a.Resource, l)
			}
		case infra.ProviderKey, infra.CustomerKeys:
			if _, ok := keyActions[l]; !ok && l != "describe" {
				return nil, fmt.Errorf("access to %s: level %q is not encrypt, decrypt, generate or describe", a.Resource, l)
			}
		default:
			return nil, fmt.Errorf("access to unknown resource %q", a.Resource)
		}
		out = append(out, l)
	}
	return out, nil
}

// ecCondition limits KMS cryptographic calls to keyline's encryption contexts: every key of
// the call's context must be one of EncryptionContextKeys (ForAllValues), and a context must
// be present at all (the Null test: ForAllValues alone would pass a call without one).
func ecCondition() *map[string]any {
	return &map[string]any{
		"ForAllValues:StringEquals": map[string]any{"kms:EncryptionContextKeys": EncryptionContextKeys},
		"Null":                      map[string]any{"kms:EncryptionContextKeys": "false"},
	}
}

// viaService grants provider-key actions only as used by an AWS service on the function's
// behalf (DynamoDB's and S3's encryption at rest, whose contexts are AWS's, not keyline's).
func viaService(k *Keyline, service string, actions []string) awsiam.PolicyStatement {
	return awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("ProviderKeyVia" + strings.ToUpper(service[:1]) + service[1:]),
		Actions:   jsii.Strings(actions...),
		Resources: &[]*string{k.ProviderKey.KeyArn()},
		Conditions: &map[string]any{"StringEquals": map[string]any{
			"kms:ViaService": service + "." + *k.Stack.Region() + "." + *k.Stack.UrlSuffix(),
		}},
	})
}

// accessStatements turns a function's Access list into IAM statements.
func (k *Keyline) accessStatements(f infra.Function) ([]awsiam.PolicyStatement, error) {
	var out []awsiam.PolicyStatement
	add := func(sid string, actions []string, resources []*string, cond *map[string]any) {
		out = append(out, awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid: jsii.String(sid), Actions: jsii.Strings(actions...), Resources: &resources, Conditions: cond,
		}))
	}
	viaActions := map[string]map[string]bool{}
	via := func(service string, actions ...string) {
		if viaActions[service] == nil {
			viaActions[service] = map[string]bool{}
		}
		for _, a := range actions {
			viaActions[service][a] = true
		}
	}
	// Levels per resource, merged over the Access list (a resource may be listed twice).
	keyLevels := map[infra.Resource]map[string]bool{}
	for _, a := range f.Access {
		ls, err := levels(a)
		if err != nil {
			return nil, fmt.Errorf("%w: function %s: %w", ErrDescription, f.Name, err)
		}
		if keyLevels[a.Resource] == nil {
			keyLevels[a.Resource] = map[string]bool{}
		}
		for _, l := range ls {
			keyLevels[a.Resource][l] = true
		}
	}
	for _, r := range []infra.Resource{infra.Table, infra.DataBucket, infra.BackupBucket, infra.EventBus} {
		lv := keyLevels[r]
		if len(lv) == 0 {
			continue
		}
		write := lv["write"]
		switch r {
		case infra.Table:
			acts := tableRead
			if write {
				acts = append(append([]string{}, tableRead...), tableWrite...)
			}
			add("Table", acts, []*string{k.Table.TableArn(), jsii.String(*k.Table.TableArn() + "/index/GSI1")}, nil)
			via("dynamodb", "kms:Decrypt", "kms:DescribeKey")
			if write {
				via("dynamodb", "kms:Encrypt", "kms:GenerateDataKey")
			}
		case infra.DataBucket, infra.BackupBucket:
			b, sid := k.DataBucket, "DataBucket"
			if r == infra.BackupBucket {
				b, sid = k.BackupBucket, "BackupBucket"
			}
			var objs []*string
			for _, p := range prefixPatterns(r) {
				objs = append(objs, jsii.String(*b.BucketArn()+"/"+p))
			}
			acts := objRead
			via("s3", "kms:Decrypt")
			if write {
				acts = append(append([]string{}, objRead...), objWrite...)
				via("s3", "kms:GenerateDataKey")
			}
			add(sid+"Objects", acts, objs, nil)
			list := []string{"s3:ListBucket"}
			if write {
				list = append(list, "s3:ListBucketMultipartUploads")
			}
			add(sid+"List", list, []*string{b.BucketArn()},
				&map[string]any{"StringLike": map[string]any{"s3:prefix": prefixPatterns(r)}})
		case infra.EventBus:
			add("PutAuditEvents", []string{"events:PutEvents"}, []*string{k.EventBus.EventBusArn()}, nil)
		}
	}
	for _, r := range []infra.Resource{infra.ProviderKey, infra.CustomerKeys} {
		lv := keyLevels[r]
		if len(lv) == 0 {
			continue
		}
		var crypto []string
		for l, act := range keyActions {
			if lv[l] {
				crypto = append(crypto, act)
			}
		}
		sort.Strings(crypto)
		var resources []*string
		var describeCond *map[string]any
		sid := "ProviderKey"
		if r == infra.ProviderKey {
			resources = []*string{k.ProviderKey.KeyArn()}
		} else {
			sid = "CustomerKeys"
			// Customer keys live in the customers' accounts and regions and are enrolled at
			// run time, so no fixed list of ARNs exists when this stack deploys: the resource is
			// any KMS key, and three things narrow it. The customer's key policy must name this
			// role (KMS never allows a cross-account call on IAM alone); the encryption-context
			// condition confines the role to keyline's contexts; and aws:ResourceAccount excludes
			// the provider's own account, whose key is granted separately above.
			// kms:ViaService does not apply: keyline calls KMS itself, not through a service.
			resources = []*string{jsii.String("arn:" + *k.Stack.Partition() + ":kms:*:*:key/*")}
			describeCond = &map[string]any{"StringNotEquals": map[string]any{"aws:ResourceAccount": *k.Stack.Account()}}
		}
		if len(crypto) > 0 {
			cond := ecCondition()
			if describeCond != nil {
				(*cond)["StringNotEquals"] = (*describeCond)["StringNotEquals"]
			}
			add(sid+"Crypto", crypto, resources, cond)
		}
		if lv["describe"] {
			// DescribeKey carries no encryption context; it reveals key metadata only.
			add(sid+"Describe", []string{"kms:DescribeKey"}, resources, describeCond)
		}
	}
	services := make([]string, 0, len(viaActions))
	for svc := range viaActions {
		services = append(services, svc)
	}
	sort.Strings(services)
	for _, svc := range services {
		var acts []string
		for a := range viaActions[svc] {
			acts = append(acts, a)
		}
		sort.Strings(acts)
		out = append(out, viaService(k, svc, acts))
	}
	if len(f.StartsStateMachines) > 0 {
		var arns []*string
		for _, m := range f.StartsStateMachines {
			arns = append(arns, jsii.String(k.MachineARNs[m]))
		}
		add("StartStateMachines", []string{"states:StartExecution"}, arns, nil)
		// ...and follow the executions it started (the console reports their status).
		var execs []*string
		for _, m := range f.StartsStateMachines {
			execs = append(execs, jsii.String(k.executions(m)))
		}
		add("DescribeStartedExecutions", []string{"states:DescribeExecution"}, execs, nil)
	}
	return out, nil
}
