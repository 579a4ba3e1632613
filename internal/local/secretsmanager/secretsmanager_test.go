package secretsmanager_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	sdksm "github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"

	"github.com/keyline/keyline/infra"
	"github.com/keyline/keyline/internal/local/authz"
	"github.com/keyline/keyline/internal/local/endpoint"
	"github.com/keyline/keyline/internal/local/iam"
	"github.com/keyline/keyline/internal/local/secretsmanager"
	"github.com/keyline/keyline/internal/secret"
	"github.com/keyline/keyline/internal/secret/awssecret"
	"github.com/keyline/keyline/internal/secret/filesecret"
)

const secretARN = "arn:aws:secretsmanager:us-east-1:000000000000:secret:Keyline/operator-token-local0"

// contractPolicies are the deployment contract's role policies; no resource policies.
type contractPolicies map[string]*iam.Policy

func (p contractPolicies) Identity(pr authz.Principal) ([]*iam.Policy, error) {
	if pol := p[pr.Function]; pol != nil {
		return []*iam.Policy{pol}, nil
	}
	return nil, nil
}

func (contractPolicies) Resource(context.Context, authz.Check) (*iam.Policy, error) { return nil, nil }

// serve starts an endpoint with IAM on, the contract's role policies and the operator token's
// secret served from a 0600 file; it returns the endpoint's URL and the file.
func serve(t *testing.T, iamOn bool) (string, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "operator-token")
	if err := os.WriteFile(path, []byte("klop_the-operator-token-of-this-test-0123456789\n"), filesecret.OwnerOnly); err != nil {
		t.Fatal(err)
	}
	svc := secretsmanager.New(nil)
	svc.Declare(secretARN, infra.OperatorTokenSecretName(infra.DefaultStackName), filesecret.New(path))
	srv := endpoint.New(endpoint.Options{Addr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
	srv.Register(endpoint.ServiceSecretsManager, svc)
	if iamOn {
		d := infra.Description()
		r := infra.Resources{Partition: "aws", Region: "us-east-1", Account: authz.KeylineAccount,
			TableName: "t", TableARN: "arn:aws:dynamodb:us-east-1:000000000000:table/t", DataBucket: "d", BackupBucket: "b",
			ProviderKeyARN: "arn:aws:kms:us-east-1:000000000000:key/p", EventBusName: "keyline",
			StateMachineARNs: map[string]string{}, OperatorTokenSecretARN: secretARN}
		for _, m := range d.StateMachines {
			r.StateMachineARNs[m.Name] = "arn:aws:states:us-east-1:000000000000:stateMachine:" + m.Name
		}
		docs, err := d.Policies(r)
		if err != nil {
			t.Fatal(err)
		}
		pols := contractPolicies{}
		var names []string
		for fn, doc := range docs {
			b, _ := json.Marshal(doc)
			pols[fn] = iam.MustParsePolicy(fn, string(b))
			names = append(names, fn)
		}
		srv.RegisterExtractor(endpoint.ServiceSecretsManager, authz.SecretsManagerExtractor(svc.Resolve))
		srv.SetAuthorizer(authz.NewIAM(pols), authz.NewPrincipals(authz.KeylineAccount, names))
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return srv.URL(), path
}

func client(url, accessKey string) *sdksm.Client {
	return sdksm.NewFromConfig(aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(url),
		Credentials: credentials.NewStaticCredentialsProvider(accessKey, "secret", "")})
}

// TestOperatorTokenThroughSecretsManager: the functions that check tokens read the operator
// token with the SDK's GetSecretValue (by ARN or name) as their own roles; every other role,
// a customer's account and an unknown secret are refused; the value follows the file.
func TestOperatorTokenThroughSecretsManager(t *testing.T) {
	ctx := context.Background()
	url, path := serve(t, true)
	for _, fn := range []string{infra.FnConsoleAPI, infra.FnConsoleAuthorizer} {
		for _, id := range []string{secretARN, infra.OperatorTokenSecretName(infra.DefaultStackName)} {
			src, err := awssecret.New(client(url, authz.FunctionAccessKeyID(fn)), id)
			if err != nil {
				t.Fatal(err)
			}
			if v, err := src.Value(ctx); err != nil || v != "klop_the-operator-token-of-this-test-0123456789" {
				t.Fatalf("%s reads %s: %q, %v", fn, id, v, err)
			}
		}
	}
	for _, fn := range infra.Description().Functions {
		if fn.ChecksOperatorToken() {
			continue
		}
		src, _ := awssecret.New(client(url, authz.FunctionAccessKeyID(fn.Name)), secretARN)
		v, err := src.Value(ctx)
		var ae smithy.APIError
		if !errors.As(err, &ae) || ae.ErrorCode() != "AccessDeniedException" || v != "" {
			t.Errorf("%s reads the operator token: %q, %v; want AccessDeniedException", fn.Name, v, err)
		}
	}
	// Another account's root (a customer) is not keyline's account.
	src, _ := awssecret.New(client(url, "111111111111"), secretARN)
	if _, err := src.Value(ctx); err == nil || !strings.Contains(err.Error(), "AccessDenied") {
		t.Errorf("a customer account reads the operator token: %v", err)
	}
	// A rotated token (the file replaced) is what the next read returns.
	if err := os.WriteFile(path, []byte("klop_rotated-operator-token-0123456789abcdef"), filesecret.OwnerOnly); err != nil {
		t.Fatal(err)
	}
	api, _ := awssecret.New(client(url, authz.FunctionAccessKeyID(infra.FnConsoleAPI)), secretARN)
	if v, err := api.Value(ctx); err != nil || v != "klop_rotated-operator-token-0123456789abcdef" {
		t.Fatalf("after rotation: %q, %v", v, err)
	}
	// The file readable by others: refused, and the answer does not carry the value.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if v, err := api.Value(ctx); err == nil || v != "" || strings.Contains(err.Error(), "rotated") {
		t.Fatalf("a world-readable token file: %q, %v", v, err)
	}
}

// TestUnknownSecret: an undeclared secret is ResourceNotFoundException (secret.ErrNotFound).
func TestUnknownSecret(t *testing.T) {
	url, _ := serve(t, false)
	src, _ := awssecret.New(client(url, "keyline"), "Keyline/no-such-secret")
	if _, err := src.Value(context.Background()); !errors.Is(err, secret.ErrNotFound) {
		t.Fatalf("unknown secret: %v, want ErrNotFound", err)
	}
}

// TestWithoutIAMAnyRoleReads is the broken variant of the first test (no evaluation): a role
// the contract does not grant the secret reads it, so that test's denials mean something.
func TestWithoutIAMAnyRoleReads(t *testing.T) {
	url, _ := serve(t, false)
	src, _ := awssecret.New(client(url, authz.FunctionAccessKeyID(infra.FnBackupUpload)), secretARN)
	if _, err := src.Value(context.Background()); err != nil {
		t.Fatalf("without IAM: %v", err)
	}
}
