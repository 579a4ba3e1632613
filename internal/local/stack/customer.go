package stack

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/keyline/keyline/infra"
	"github.com/keyline/keyline/internal/local/endpoint"
)

// CustomerAccount is the customer AWS account the demo, the seed and the tests keep their
// customer keys in: on the local endpoint, an access key id of 12 digits signs as that
// account's root, so these keys are another account's, as in AWS.
const CustomerAccount = "111111111111"

// customerSecret is the secret half of a customer account's static credentials.
const customerSecret = "keyline-local-customer-secret"

// KeylineAccount is keyline's own account on the local endpoint (its roles, table, buckets,
// provider key).
const KeylineAccount = endpoint.DefaultAccountID

// CustomerAWSConfig returns an SDK configuration for the stack's endpoint that signs as the
// root of a customer's account (a 12-digit access key id).
func (s *Stack) CustomerAWSConfig(account string) aws.Config {
	cfg := s.AWSConfig()
	cfg.Credentials = credentials.NewStaticCredentialsProvider(account, customerSecret, "")
	return cfg
}

// CustomerKeyPolicy is the whole key policy of a customer key in account admitting keyline
// for org: the account administers its key, and the statements `keyline key-policy --org ORG
// --account <keyline's account>` prints (the deployment contract's CustomerKeyStatements).
func CustomerKeyPolicy(account, org string) (string, error) {
	doc, err := infra.Description().CustomerKeyPolicyDocument(account, infra.KeyPolicyTarget{Org: org, Account: KeylineAccount})
	if err != nil {
		return "", err
	}
	return string(doc.JSON()), nil
}

// CreateCustomerKey creates a symmetric key in a customer's account, as the customer does:
// with the account's credentials and, unless bare, the key policy admitting keyline for org
// (CustomerKeyPolicy). A bare key has AWS's default policy: the account alone.
func (s *Stack) CreateCustomerKey(ctx context.Context, account, org, description string, bare bool) (string, error) {
	in := &awskms.CreateKeyInput{Description: aws.String(description)}
	if !bare {
		pol, err := CustomerKeyPolicy(account, org)
		if err != nil {
			return "", fmt.Errorf("key policy for org %s: %w", org, err)
		}
		in.Policy = aws.String(pol)
	}
	out, err := awskms.NewFromConfig(s.CustomerAWSConfig(account)).CreateKey(ctx, in)
	if err != nil {
		return "", fmt.Errorf("create a key in account %s: %w", account, err)
	}
	return aws.ToString(out.KeyMetadata.Arn), nil
}
