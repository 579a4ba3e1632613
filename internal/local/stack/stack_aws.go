package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/keyline/keyline/internal/local/eventbridge"
	"github.com/keyline/keyline/internal/local/states"
)

// ensureBucket creates bucket unless it exists.
func ensureBucket(ctx context.Context, c *awss3.Client, bucket string) error {
	if _, err := c.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: aws.String(bucket)}); err == nil {
		return nil
	}
	_, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(bucket)})
	var owned *s3types.BucketAlreadyOwnedByYou
	var exists *s3types.BucketAlreadyExists
	if err != nil && !errors.As(err, &owned) && !errors.As(err, &exists) {
		return fmt.Errorf("create bucket %s: %w", bucket, err)
	}
	return nil
}

// createKey creates a symmetric KMS key and returns its ARN.
func createKey(ctx context.Context, c *awskms.Client, description string) (string, error) {
	out, err := c.CreateKey(ctx, &awskms.CreateKeyInput{Description: aws.String(description)})
	if err != nil {
		return "", fmt.Errorf("create KMS key: %w", err)
	}
	return aws.ToString(out.KeyMetadata.Arn), nil
}

// awsJSONError is an error answered by an AWS JSON protocol service, with its code, so
// the States interpreter names it as Step Functions does (e.g. DynamoDB.ConditionalCheckFailedException).
type awsJSONError struct {
	Code    string
	Message string
	Status  int
}

func (e *awsJSONError) Error() string        { return e.Code + ": " + e.Message }
func (e *awsJSONError) ErrorCode() string    { return e.Code }
func (e *awsJSONError) ErrorMessage() string { return e.Message }

// callJSON sends one AWS JSON protocol request to an in-process handler.
func callJSON(ctx context.Context, h http.Handler, target, contentType string, body []byte) (json.RawMessage, error) {
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "http://localhost/", bytes.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("X-Amz-Target", target)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := rec.Result()
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, err
	}
	if res.StatusCode/100 == 2 {
		return out, nil
	}
	var e struct {
		Type     string `json:"__type"`
		Message  string `json:"message"`
		Message2 string `json:"Message"`
	}
	_ = json.Unmarshal(out, &e)
	code := e.Type
	if i := strings.LastIndex(code, "#"); i >= 0 {
		code = code[i+1:]
	}
	if code == "" {
		code = "InternalServerError"
	}
	msg := e.Message
	if msg == "" {
		msg = e.Message2
	}
	return nil, &awsJSONError{Code: code, Message: msg, Status: res.StatusCode}
}

// busPutter is the States interpreter's events:putEvents integration on the local bus.
type busPutter struct{ bus *eventbridge.Bus }

func (p busPutter) PutEvents(ctx context.Context, request json.RawMessage) (json.RawMessage, error) {
	return callJSON(ctx, p.bus, eventbridge.TargetPrefix+"PutEvents", "application/x-amz-json-1.1", request)
}

// ddbCaller is the States interpreter's dynamodb:* integration on DynamoDB Local.
type ddbCaller struct{ h http.Handler }

func (c ddbCaller) CallDynamoDB(ctx context.Context, operation string, request json.RawMessage) (json.RawMessage, error) {
	signed := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// DynamoDB Local wants a SigV4 Authorization header (it checks no signature).
		r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+localAccessKey+"/20240101/"+localRegion+
			"/dynamodb/aws4_request, SignedHeaders=host, Signature=0")
		c.h.ServeHTTP(w, r)
	})
	return callJSON(ctx, signed, "DynamoDB_20120810."+operation, "application/x-amz-json-1.0", request)
}

// s3Items reads Distributed Map items (ItemReader s3:listObjectsV2) from the local S3.
type s3Items struct{ c *awss3.Client }

func (s s3Items) ListObjectsV2(ctx context.Context, bucket, prefix string) ([]states.S3Object, error) {
	var out []states.S3Object
	p := awss3.NewListObjectsV2Paginator(s.c, &awss3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, o := range page.Contents {
			out = append(out, states.S3Object{Key: aws.ToString(o.Key), Size: aws.ToInt64(o.Size), ETag: aws.ToString(o.ETag),
				LastModified: aws.ToTime(o.LastModified), StorageClass: string(o.StorageClass)})
		}
	}
	return out, nil
}

func (s s3Items) GetObject(ctx context.Context, bucket, key string) ([]byte, error) {
	out, err := s.c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return nil, err
	}
	defer out.Body.Close()
	return io.ReadAll(out.Body)
}
