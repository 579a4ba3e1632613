package main

import (
	"encoding/json"
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/jsii-runtime-go"

	"github.com/keyline/keyline/infra"
)

// resources are the stack's resources as the contract takes them: CDK tokens, resolved by
// CloudFormation.
func (k *Keyline) resources() infra.Resources {
	s := k.Stack
	r := infra.Resources{
		Partition: *s.Partition(), Region: *s.Region(), Account: *s.Account(), URLSuffix: *s.UrlSuffix(),
		TableName: *k.Table.TableName(), TableARN: *k.Table.TableArn(),
		DataBucket: *k.DataBucket.BucketName(), DataBucketARN: *k.DataBucket.BucketArn(),
		BackupBucket: *k.BackupBucket.BucketName(), BackupBucketARN: *k.BackupBucket.BucketArn(),
		ProviderKeyARN: *k.ProviderKey.KeyArn(),
		EventBusName:   *k.EventBus.EventBusName(), EventBusARN: *k.EventBus.EventBusArn(),
		StateMachineARNs: k.MachineARNs,
		FunctionARNs:     map[string]string{},
	}
	for name, fn := range k.Functions {
		r.FunctionARNs[name] = *fn.FunctionArn()
	}
	if k.OperatorTokenSecret != nil {
		r.OperatorTokenSecretARN = *k.OperatorTokenSecret.SecretArn()
	}
	return r
}

// statements renders a contract policy document as CDK policy statements (the document's
// JSON, tokens and all, through PolicyStatement.fromJson).
func statements(doc infra.PolicyDocument) ([]awsiam.PolicyStatement, error) {
	out := make([]awsiam.PolicyStatement, 0, len(doc.Statement))
	for _, st := range doc.Statement {
		m, err := asJSONObject(st)
		if err != nil {
			return nil, err
		}
		out = append(out, awsiam.PolicyStatement_FromJson(m))
	}
	return out, nil
}

// asJSONObject turns a contract value into the plain JSON object CDK's fromJson functions take.
func asJSONObject(v any) (map[string]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDescription, err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDescription, err)
	}
	return m, nil
}

// accessStatements are the function's statements from the contract (infra.Function.Policy).
func (k *Keyline) accessStatements(f infra.Function) ([]awsiam.PolicyStatement, error) {
	doc, err := f.Policy(k.resources())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDescription, err)
	}
	return statements(doc)
}

// viaService grants provider-key actions only as used by an AWS service on a role's behalf
// (DynamoDB's and S3's encryption at rest, whose contexts are AWS's, not keyline's).
func viaService(k *Keyline, service string, actions []string) awsiam.PolicyStatement {
	return awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("ProviderKeyVia" + id(service)),
		Actions:   jsii.Strings(actions...),
		Resources: &[]*string{k.ProviderKey.KeyArn()},
		Conditions: &map[string]any{"StringEquals": map[string]any{
			"kms:ViaService": service + "." + *k.Stack.Region() + "." + *k.Stack.UrlSuffix(),
		}},
	})
}
