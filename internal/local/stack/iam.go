package stack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/keyline/keyline/internal/local/authz"
	"github.com/keyline/keyline/internal/local/endpoint"
	"github.com/keyline/keyline/internal/local/iam"
)

// IAM enforcement modes of Options.IAM.
const (
	IAMOn  = "on"
	IAMOff = "off"
)

// functionSecret is the secret half of every local function's static credentials.
const functionSecret = "keyline-local-function-secret"

// functionConfig is cfg signing as the function's role: its own access key id, which the
// endpoint maps to arn:aws:iam::000000000000:role/Keyline-<function> (the contract's role name).
func functionConfig(cfg aws.Config, function string) aws.Config {
	cfg.Credentials = credentials.NewStaticCredentialsProvider(authz.FunctionAccessKeyID(function), functionSecret, "")
	return cfg
}

// stackPolicies is the policy source of the local endpoint's IAM evaluation: each
// function's role policy from the deployment contract, each KMS key's own key policy.
type stackPolicies struct {
	st    *Stack
	cache authz.PolicyCache

	mu sync.RWMutex
	// roles maps a function to its role's identity policy.
	roles map[string]*iam.Policy
}

// setRolePolicies installs the functions' identity policies (JSON documents by function).
func (p *stackPolicies) setRolePolicies(docs map[string]json.RawMessage) error {
	roles := make(map[string]*iam.Policy, len(docs))
	for fn, doc := range docs {
		pol, err := iam.ParsePolicy(authz.RoleName(fn), doc)
		if err != nil {
			return fmt.Errorf("role policy of %s: %w", fn, err)
		}
		roles[fn] = pol
	}
	p.mu.Lock()
	p.roles = roles
	p.mu.Unlock()
	return nil
}

// Identity returns a function's role policy (none for an account's root user).
func (p *stackPolicies) Identity(pr authz.Principal) ([]*iam.Policy, error) {
	if pr.Function == "" {
		return nil, nil
	}
	p.mu.RLock()
	pol := p.roles[pr.Function]
	p.mu.RUnlock()
	if pol == nil {
		return nil, nil
	}
	return []*iam.Policy{pol}, nil
}

// Resource returns the key policy of a KMS key; other resources have none locally.
func (p *stackPolicies) Resource(_ context.Context, c authz.Check) (*iam.Policy, error) {
	if !strings.HasPrefix(c.Action, "kms:") || !strings.Contains(c.Resource, ":key/") {
		return nil, nil
	}
	doc, ok := p.st.KMS.KeyPolicy(c.Resource)
	if !ok {
		return nil, fmt.Errorf("no key %s", c.Resource)
	}
	return p.cache.Parse("key-policy/"+c.Resource[strings.LastIndex(c.Resource, "/")+1:], []byte(doc))
}

// tableKeys reads tables' key schemas straight from DynamoDB Local (not through the
// endpoint, whose authorization asks for them).
type tableKeys struct {
	client *awsddb.Client
	mu     sync.Mutex
	known  map[string]authz.TableKeys
}

func newTableKeys(h http.Handler) *tableKeys {
	c := awsddb.New(awsddb.Options{
		Region: localRegion, BaseEndpoint: aws.String("http://dynamodb.local"),
		Credentials: credentials.NewStaticCredentialsProvider(localAccessKey, "keyline-local-secret", ""),
		HTTPClient:  handlerClient{h},
	})
	return &tableKeys{client: c, known: map[string]authz.TableKeys{}}
}

// TableKeys returns the partition key attributes of a table and its indexes.
func (t *tableKeys) TableKeys(ctx context.Context, table string) (authz.TableKeys, error) {
	t.mu.Lock()
	k, ok := t.known[table]
	t.mu.Unlock()
	if ok {
		return k, nil
	}
	out, err := t.client.DescribeTable(ctx, &awsddb.DescribeTableInput{TableName: aws.String(table)})
	if err != nil {
		return authz.TableKeys{}, fmt.Errorf("describe table %s: %w", table, err)
	}
	hash := func(ks []ddbtypes.KeySchemaElement) string {
		for _, e := range ks {
			if e.KeyType == ddbtypes.KeyTypeHash {
				return aws.ToString(e.AttributeName)
			}
		}
		return ""
	}
	k = authz.TableKeys{HashKey: hash(out.Table.KeySchema), Indexes: map[string]string{}}
	for _, g := range out.Table.GlobalSecondaryIndexes {
		k.Indexes[aws.ToString(g.IndexName)] = hash(g.KeySchema)
	}
	for _, l := range out.Table.LocalSecondaryIndexes {
		k.Indexes[aws.ToString(l.IndexName)] = hash(l.KeySchema)
	}
	t.mu.Lock()
	t.known[table] = k
	t.mu.Unlock()
	return k, nil
}

// handlerClient is an SDK HTTP client that serves requests with an in-process handler.
type handlerClient struct{ h http.Handler }

// Do serves req with the handler.
func (c handlerClient) Do(req *http.Request) (*http.Response, error) {
	if c.h == nil {
		return nil, errors.New("no handler")
	}
	rec := httptest.NewRecorder()
	c.h.ServeHTTP(rec, req)
	return rec.Result(), nil
}

// enableIAM registers each service's checks with the endpoint and turns evaluation on.
func (s *Stack) enableIAM(functions []string) {
	s.router.RegisterExtractor(endpoint.ServiceKMS, authz.KMSExtractor(s.KMS))
	s.router.RegisterExtractor(endpoint.ServiceS3, authz.S3Extractor(endpoint.DefaultAccountID))
	s.router.RegisterExtractor(endpoint.ServiceDynamoDB, authz.DynamoDBExtractor(endpoint.DefaultAccountID, newTableKeys(s.ddb)))
	s.router.RegisterExtractor(endpoint.ServiceEvents, authz.EventsExtractor(endpoint.DefaultAccountID))
	s.router.RegisterExtractor(endpoint.ServiceStates, authz.StatesExtractor())
	s.router.RegisterExtractor(endpoint.ServiceSecretsManager, authz.SecretsManagerExtractor(s.secrets.Resolve))
	s.router.SetAuthorizer(authz.NewIAM(s.policies), authz.NewPrincipals(endpoint.DefaultAccountID, functions))
}
