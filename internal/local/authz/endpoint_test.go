package authz_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/keyline/keyline/internal/local/authz"
	"github.com/keyline/keyline/internal/local/endpoint"
	"github.com/keyline/keyline/internal/local/iam"
	localkms "github.com/keyline/keyline/internal/local/kms"
	locals3 "github.com/keyline/keyline/internal/local/s3"
	"github.com/keyline/keyline/internal/testenv/logsink"
)

const (
	customer   = "111111111111"
	bucket     = "keyline-backups"
	fn         = "backupupload"
	otherFn    = "restore"
	orgOne     = "org-1"
	roleBackup = "arn:aws:iam::000000000000:role/Keyline-backupupload"
)

// rolePolicy is the backup function's identity policy: data keys under keyline's context
// for org-1 on any account's keys, its objects under backups/, listing under backups/.
const rolePolicy = `{"Version":"2012-10-17","Statement":[
 {"Sid":"DataKeys","Effect":"Allow","Action":["kms:GenerateDataKey","kms:Decrypt"],"Resource":"arn:aws:kms:*:*:key/*",
  "Condition":{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["keyline:org","keyline:app"]},"Null":{"kms:EncryptionContextKeys":"false"}}},
 {"Sid":"Objects","Effect":"Allow","Action":["s3:PutObject","s3:GetObject"],"Resource":"arn:aws:s3:::keyline-backups/backups/*"},
 {"Sid":"List","Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::keyline-backups","Condition":{"StringLike":{"s3:prefix":"backups/*"}}}]}`

// keyPolicy is a customer key policy: the customer's root, and keyline's backup role for org-1.
var keyPolicy = fmt.Sprintf(`{"Version":"2012-10-17","Statement":[
 {"Sid":"Owner","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::%s:root"},"Action":"kms:*","Resource":"*"},
 {"Sid":"KeylineOrg","Effect":"Allow","Principal":{"AWS":%q},"Action":["kms:GenerateDataKey","kms:Decrypt"],"Resource":"*",
  "Condition":{"StringEquals":{"kms:EncryptionContext:keyline:org":%q}}}]}`, customer, roleBackup, orgOne)

type policies struct {
	kms   *localkms.Service
	roles map[string]*iam.Policy
	cache authz.PolicyCache
}

func (p *policies) Identity(pr authz.Principal) ([]*iam.Policy, error) {
	if pol := p.roles[pr.Function]; pol != nil {
		return []*iam.Policy{pol}, nil
	}
	return nil, nil
}

func (p *policies) Resource(_ context.Context, c authz.Check) (*iam.Policy, error) {
	if !strings.Contains(c.Resource, ":key/") {
		return nil, nil
	}
	doc, ok := p.kms.KeyPolicy(c.Resource)
	if !ok {
		return nil, fmt.Errorf("no key %s", c.Resource)
	}
	return p.cache.Parse("key-policy", []byte(doc))
}

type env struct {
	url string
	log *logsink.Buffer
}

// start serves KMS and S3 on a local endpoint with IAM evaluation on.
func start(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	kms, err := localkms.New(localkms.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kms.Close() })
	s3, err := locals3.New(locals3.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	logs := &logsink.Buffer{}
	srv := endpoint.New(endpoint.Options{Addr: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(logs, nil))})
	srv.Register(endpoint.ServiceKMS, kms)
	srv.Register(endpoint.ServiceS3, s3)
	srv.RegisterExtractor(endpoint.ServiceKMS, authz.KMSExtractor(kms))
	srv.RegisterExtractor(endpoint.ServiceS3, authz.S3Extractor(authz.KeylineAccount))
	pols := &policies{kms: kms, roles: map[string]*iam.Policy{fn: iam.MustParsePolicy("keyline-"+fn, rolePolicy)}}
	srv.SetAuthorizer(authz.NewIAM(pols), authz.NewPrincipals(authz.KeylineAccount, []string{fn, otherFn}))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return &env{url: srv.URL(), log: logs}
}

func (e *env) cfg(accessKey string) aws.Config {
	return aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(e.url),
		Credentials:                credentials.NewStaticCredentialsProvider(accessKey, "secret", ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired}
}

func (e *env) s3(accessKey string) *awss3.Client {
	return awss3.NewFromConfig(e.cfg(accessKey), func(o *awss3.Options) { o.UsePathStyle = true })
}

func wantDenied(t *testing.T, what string, err error, code, msgPart string) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != code || !strings.Contains(ae.ErrorMessage(), msgPart) {
		t.Fatalf("%s: %v; want %s containing %q", what, err, code, msgPart)
	}
}

// TestEndpointEvaluatesPolicies: a function calls with its role, a 12-digit key is that
// account's root; KMS needs the key policy across accounts and the identity policy's
// encryption-context conditions; S3 object and listing conditions; denials in AWS's shape,
// logged with function, action, resource.
func TestEndpointEvaluatesPolicies(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	cust := awskms.NewFromConfig(e.cfg(customer))
	fnKMS := awskms.NewFromConfig(e.cfg(authz.FunctionAccessKeyID(fn)))
	keyline := awskms.NewFromConfig(e.cfg("keyline"))

	pinned, err := cust.CreateKey(ctx, &awskms.CreateKeyInput{Policy: aws.String(keyPolicy)})
	if err != nil {
		t.Fatalf("customer CreateKey: %v", err)
	}
	pinnedARN := aws.ToString(pinned.KeyMetadata.Arn)
	plain, err := cust.CreateKey(ctx, &awskms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	plainARN := aws.ToString(plain.KeyMetadata.Arn)
	ec := func(org string, extra ...string) map[string]string {
		m := map[string]string{"keyline:org": org, "keyline:app": "app-1"}
		for _, k := range extra {
			m[k] = "x"
		}
		return m
	}

	// Allowed: the role's policy and the key policy both allow, for org-1.
	dk, err := fnKMS.GenerateDataKey(ctx, &awskms.GenerateDataKeyInput{KeyId: aws.String(pinnedARN), KeySpec: "AES_256", EncryptionContext: ec(orgOne)})
	if err != nil {
		t.Fatalf("function GenerateDataKey for its org: %v", err)
	}
	if _, err := fnKMS.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: dk.CiphertextBlob, EncryptionContext: ec(orgOne)}); err != nil {
		t.Fatalf("function Decrypt (key from the ciphertext): %v", err)
	}
	// Another org: the key policy does not allow it.
	_, err = fnKMS.GenerateDataKey(ctx, &awskms.GenerateDataKeyInput{KeyId: aws.String(pinnedARN), KeySpec: "AES_256", EncryptionContext: ec("org-2")})
	wantDenied(t, "another org's context", err, "AccessDeniedException",
		"User: arn:aws:sts::000000000000:assumed-role/Keyline-backupupload/Keyline-backupupload is not authorized to perform: kms:GenerateDataKey on resource: "+pinnedARN)
	// A context key the role's policy does not list.
	_, err = fnKMS.GenerateDataKey(ctx, &awskms.GenerateDataKeyInput{KeyId: aws.String(pinnedARN), KeySpec: "AES_256", EncryptionContext: ec(orgOne, "keyline:backup")})
	wantDenied(t, "an unlisted context key", err, "AccessDeniedException", "because no identity-based policy allows the kms:GenerateDataKey action")
	// No context at all.
	_, err = fnKMS.GenerateDataKey(ctx, &awskms.GenerateDataKeyInput{KeyId: aws.String(pinnedARN), KeySpec: "AES_256"})
	wantDenied(t, "no context", err, "AccessDeniedException", "kms:GenerateDataKey")
	// A customer key whose policy does not name keyline: cross-account needs it.
	_, err = fnKMS.GenerateDataKey(ctx, &awskms.GenerateDataKeyInput{KeyId: aws.String(plainARN), KeySpec: "AES_256", EncryptionContext: ec(orgOne)})
	wantDenied(t, "a key policy without keyline", err, "AccessDeniedException", "because no resource-based policy allows the kms:GenerateDataKey action")
	// keyline's root is another account's root to the customer's key: denied too.
	_, err = keyline.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String(plainARN)})
	wantDenied(t, "keyline's root on a customer key", err, "AccessDeniedException", "arn:aws:iam::000000000000:root is not authorized to perform: kms:DescribeKey")
	// The customer's root manages its own key.
	if _, err := cust.DisableKey(ctx, &awskms.DisableKeyInput{KeyId: aws.String(plainARN)}); err != nil {
		t.Fatalf("customer DisableKey: %v", err)
	}
	// A function without a policy of its own may do nothing, not even with its own account's key.
	own, err := keyline.CreateKey(ctx, &awskms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	other := awskms.NewFromConfig(e.cfg(authz.FunctionAccessKeyID(otherFn)))
	_, err = other.Encrypt(ctx, &awskms.EncryptInput{KeyId: own.KeyMetadata.Arn, Plaintext: []byte("x"), EncryptionContext: ec(orgOne)})
	wantDenied(t, "a function without a policy", err, "AccessDeniedException", "Keyline-restore is not authorized to perform: kms:Encrypt")

	// S3: keyline's root creates the bucket; the function writes under backups/ only.
	if _, err := e.s3("keyline").CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	fs3 := e.s3(authz.FunctionAccessKeyID(fn))
	if _, err := fs3.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("backups/a"), Body: strings.NewReader("a")}); err != nil {
		t.Fatalf("function PutObject under backups/: %v", err)
	}
	_, err = fs3.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("apps/a"), Body: strings.NewReader("a")})
	wantDenied(t, "PutObject outside backups/", err, "AccessDenied", "s3:PutObject on resource: arn:aws:s3:::keyline-backups/apps/a")
	if _, err := fs3.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String("backups/")}); err != nil {
		t.Fatalf("function lists backups/: %v", err)
	}
	_, err = fs3.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String("apps/")})
	wantDenied(t, "ListObjectsV2 of apps/", err, "AccessDenied", "s3:ListBucket")
	_, err = fs3.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	wantDenied(t, "ListObjectsV2 without a prefix", err, "AccessDenied", "s3:ListBucket")
	// Nothing was written by the denied call.
	if _, err := e.s3("keyline").HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("apps/a")}); err == nil {
		t.Fatal("a denied PutObject wrote its object")
	}

	// The log names function, action, resource and the missing allow.
	logs := e.log.String()
	for _, want := range []string{"access denied", "function=" + fn, "action=kms:GenerateDataKey", "resource=" + pinnedARN, "missing=", "action=s3:PutObject"} {
		if !strings.Contains(logs, want) {
			t.Fatalf("log lacks %q:\n%s", want, logs)
		}
	}
}

// TestEndpointWithoutIAMAllowsAnotherOrg is the same check against the broken variant (no
// evaluation): the call that must be denied goes through.
func TestEndpointWithoutIAMAllowsAnotherOrg(t *testing.T) {
	dir := t.TempDir()
	kms, err := localkms.New(localkms.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kms.Close() })
	srv := endpoint.New(endpoint.Options{Addr: "127.0.0.1:0"})
	srv.Register(endpoint.ServiceKMS, kms)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	e := &env{url: srv.URL()}
	k, err := awskms.NewFromConfig(e.cfg(customer)).CreateKey(ctx, &awskms.CreateKeyInput{Policy: aws.String(keyPolicy)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = awskms.NewFromConfig(e.cfg(authz.FunctionAccessKeyID(fn))).GenerateDataKey(ctx, &awskms.GenerateDataKeyInput{
		KeyId: k.KeyMetadata.Arn, KeySpec: "AES_256", EncryptionContext: map[string]string{"keyline:org": "org-2"}})
	if err != nil {
		t.Fatalf("without evaluation the call should go through (this is the defect the other test catches): %v", err)
	}
}
