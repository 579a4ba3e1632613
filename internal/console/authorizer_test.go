package console_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/keyline/keyline/internal/console"
	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/testenv"
)

const (
	methodARN = "arn:aws:execute-api:eu-west-1:123456789012:abc123def4/v1/GET/v1/apps/shop"
	stageARN  = "arn:aws:execute-api:eu-west-1:123456789012:abc123def4/v1/*"
)

func newAuthorizer(t *testing.T) (*console.Authorizer, *console.Tokens) {
	t.Helper()
	ddb := testenv.DynamoDB(t)
	table := testenv.NewTable(t, ddb)
	tokens, err := console.NewTokens(lineage.New(ddb, table, lineage.Options{}), operatorSecret(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	return console.NewAuthorizer(tokens, nil), tokens
}

func authorize(a *console.Authorizer, header, arn string) (events.APIGatewayCustomAuthorizerResponse, error) {
	return a.Authorize(context.Background(), events.APIGatewayCustomAuthorizerRequest{
		Type: "TOKEN", AuthorizationToken: header, MethodArn: arn,
	})
}

// policyOf checks the answer's policy has one statement allowing or denying
// execute-api:Invoke on the whole stage, and returns its effect.
func policyOf(t *testing.T, r events.APIGatewayCustomAuthorizerResponse) string {
	t.Helper()
	// API Gateway reads the answer as JSON: check the IAM field names it expects.
	raw, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		PrincipalID    string `json:"principalId"`
		PolicyDocument struct {
			Version   string
			Statement []struct {
				Action   []string
				Effect   string
				Resource []string
			}
		} `json:"policyDocument"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	pd := doc.PolicyDocument
	if doc.PrincipalID == "" || pd.Version != "2012-10-17" || len(pd.Statement) != 1 {
		t.Fatalf("authorizer answer %s", raw)
	}
	st := pd.Statement[0]
	if !reflect.DeepEqual(st.Action, []string{"execute-api:Invoke"}) || !reflect.DeepEqual(st.Resource, []string{stageARN}) {
		t.Errorf("statement %+v: want execute-api:Invoke on %s", st, stageARN)
	}
	return st.Effect
}

func TestAuthorizerAllowsKnownTokens(t *testing.T) {
	a, tokens := newAuthorizer(t)
	issued, err := tokens.IssueOrgToken(context.Background(), "acme", 0)
	if err != nil {
		t.Fatal(err)
	}
	orgToken := issued.Token
	for _, c := range []struct {
		token, principal, org string
	}{
		{operatorToken, "operator", ""},
		{orgToken, "org:acme", "acme"},
	} {
		r, err := authorize(a, "Bearer "+c.token, methodARN)
		if err != nil {
			t.Fatalf("%s: %v", c.principal, err)
		}
		if eff := policyOf(t, r); eff != "Allow" {
			t.Errorf("%s: effect %s, want Allow", c.principal, eff)
		}
		if r.PrincipalID != c.principal || r.Context[console.AuthorizerPrincipal] != c.principal || r.Context[console.AuthorizerOrgID] != c.org {
			t.Errorf("%s: principal %q, context %v", c.principal, r.PrincipalID, r.Context)
		}
	}
}

func TestAuthorizerDeniesUnknownTokens(t *testing.T) {
	a, tokens := newAuthorizer(t)
	if _, err := tokens.IssueOrgToken(context.Background(), "acme", 0); err != nil {
		t.Fatal(err)
	}
	for _, token := range []string{"klo_not-a-token-anyone-was-given", "operator-secret-for-test", console.HashToken(operatorToken)} {
		r, err := authorize(a, "Bearer "+token, methodARN)
		if err != nil {
			t.Fatalf("%q: %v", token, err)
		}
		if eff := policyOf(t, r); eff != "Deny" {
			t.Errorf("%q: effect %s, want Deny", token, eff)
		}
		if len(r.Context) != 0 {
			t.Errorf("%q: a denial carries a context %v", token, r.Context)
		}
	}
}

func TestAuthorizerRefusesMissingOrGarbledHeaders(t *testing.T) {
	a, _ := newAuthorizer(t)
	for _, h := range []string{"", "Bearer", "Bearer ", "Bearer    ", operatorToken, "Basic " + operatorToken,
		"bearer " + operatorToken, "Bearer " + operatorToken + " extra"} {
		r, err := authorize(a, h, methodARN)
		if !errors.Is(err, console.ErrUnauthorized) || err.Error() != "Unauthorized" {
			t.Errorf("header %q: answer %+v, error %v; want exactly \"Unauthorized\"", h, r, err)
		}
	}
}

func TestAuthorizerScopesToTheStage(t *testing.T) {
	a, _ := newAuthorizer(t)
	r, err := authorize(a, "Bearer "+operatorToken, "arn:aws-cn:execute-api:cn-north-1:123456789012:api9/prod/POST/v1/orgs")
	if err != nil {
		t.Fatal(err)
	}
	if got := r.PolicyDocument.Statement[0].Resource; !reflect.DeepEqual(got, []string{"arn:aws-cn:execute-api:cn-north-1:123456789012:api9/prod/*"}) {
		t.Errorf("resource %v", got)
	}
	for _, arn := range []string{"", "not-an-arn", "arn:aws:lambda:eu-west-1:123456789012:function:x",
		"arn:aws:execute-api:eu-west-1:123456789012:abc123def4", "arn:aws:execute-api:eu-west-1:123456789012:abc123def4/",
		"arn:aws:execute-api:eu-west-1::abc/v1/GET/"} {
		if _, err := authorize(a, "Bearer "+operatorToken, arn); !errors.Is(err, console.ErrMethodARN) {
			t.Errorf("method ARN %q: error %v, want ErrMethodARN", arn, err)
		}
	}
}

func TestAuthorizerFailsWhenTheTableCannot(t *testing.T) {
	// A lookup that fails is neither an Allow nor a Deny (API Gateway would cache either):
	// it is an error other than "Unauthorized", which API Gateway answers with a 500.
	ddb := testenv.DynamoDB(t)
	tokens, err := console.NewTokens(lineage.New(ddb, "no-such-table-"+t.Name(), lineage.Options{}), operatorSecret(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	a := console.NewAuthorizer(tokens, nil)
	r, err := authorize(a, "Bearer klo_some-org-token", methodARN)
	if err == nil || errors.Is(err, console.ErrUnauthorized) || len(r.PolicyDocument.Statement) != 0 {
		t.Errorf("lookup in a missing table: answer %+v, error %v", r, err)
	}
	// The operator token needs no lookup: it still passes.
	if r, err := authorize(a, "Bearer "+operatorToken, methodARN); err != nil || r.PolicyDocument.Statement[0].Effect != "Allow" {
		t.Errorf("operator token without the table: %+v, %v", r, err)
	}
}
