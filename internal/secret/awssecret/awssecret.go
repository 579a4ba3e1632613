// Package awssecret reads a secret from AWS Secrets Manager (GetSecretValue, the string
// value). The local endpoint serves the same call, so the code path is the same locally.
package awssecret

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/keyline/keyline/internal/secret"
)

// API is the part of the Secrets Manager client Source uses.
type API interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// Source reads one secret by its id (ARN or name).
type Source struct {
	client API
	id     string
}

var _ secret.Source = (*Source)(nil)

// New returns a Source of the secret id; id must not be empty.
func New(client API, id string) (*Source, error) {
	if client == nil || id == "" {
		return nil, fmt.Errorf("%w: a Secrets Manager client and a secret id are required", secret.ErrUnusable)
	}
	return &Source{client: client, id: id}, nil
}

// Value returns the secret's current string value.
func (s *Source) Value(ctx context.Context) (string, error) {
	out, err := s.client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(s.id)})
	var nf *types.ResourceNotFoundException
	if errors.As(err, &nf) {
		return "", fmt.Errorf("%w: %s: %w", secret.ErrNotFound, s.id, err)
	}
	if err != nil {
		return "", fmt.Errorf("read secret %s: %w", s.id, err)
	}
	v := aws.ToString(out.SecretString)
	if v == "" {
		return "", fmt.Errorf("%w: secret %s has no string value", secret.ErrUnusable, s.id)
	}
	return v, nil
}
