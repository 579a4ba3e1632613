package s3_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/keyline/keyline/internal/local/s3"
)

func newClient(url string, mod func(*awss3.Options)) *awss3.Client {
	return awss3.NewFromConfig(aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
		BaseEndpoint: aws.String(url),
	}, func(o *awss3.Options) {
		o.UsePathStyle = true
		if mod != nil {
			mod(o)
		}
	})
}

func start(t testing.TB, dir string) (*awss3.Client, string) {
	t.Helper()
	svc, err := s3.New(s3.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(svc)
	t.Cleanup(srv.Close)
	return newClient(srv.URL, nil), srv.URL
}

func randBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func get(t *testing.T, c *awss3.Client, bucket, key string) []byte {
	t.Helper()
	out, err := c.GetObject(context.Background(), &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("GetObject %s: %v", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The SDK's defaults (request checksums, aws-chunked bodies) work unchanged, and so does
// a client that computes checksums only when required.
func TestPutGetWithSDKDefaultsAndWhenRequired(t *testing.T) {
	dir := t.TempDir()
	c, url := start(t, dir)
	ctx := context.Background()
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("bkt1")}); err != nil {
		t.Fatal(err)
	}
	data := randBytes(t, 300<<10)
	for _, cl := range []*awss3.Client{c, newClient(url, func(o *awss3.Options) {
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
	})} {
		if _, err := cl.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("bkt1"), Key: aws.String("dir/a.bin"),
			Body:     bytes.NewReader(data),
			Metadata: map[string]string{"gen": "1"}}); err != nil {
			t.Fatalf("PutObject: %v", err)
		}
		if got := get(t, cl, "bkt1", "dir/a.bin"); !bytes.Equal(got, data) {
			t.Fatalf("object differs: %d bytes, want %d", len(got), len(data))
		}
		if _, err := cl.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("bkt1"), Key: aws.String("small"),
			Body: strings.NewReader("hello")}); err != nil {
			t.Fatal(err)
		}
		if got := string(get(t, cl, "bkt1", "small")); got != "hello" {
			t.Fatalf("small = %q", got)
		}
	}
	h, err := c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("bkt1"), Key: aws.String("dir/a.bin")})
	if err != nil || *h.ContentLength != int64(len(data)) || h.Metadata["gen"] != "1" {
		t.Fatalf("HeadObject: %v %+v", err, h)
	}
	l, err := c.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: aws.String("bkt1"), Prefix: aws.String("dir/")})
	if err != nil || len(l.Contents) != 1 || *l.Contents[0].Key != "dir/a.bin" {
		t.Fatalf("ListObjectsV2: %v %+v", err, l)
	}
	if _, err := c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String("bkt1"), Key: aws.String("small")}); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("bkt1"), Key: aws.String("small")})
	var nsk *types.NoSuchKey
	if !errors.As(err, &nsk) {
		t.Fatalf("deleted object: want NoSuchKey, got %v", err)
	}
	_, err = c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("nobucket"), Key: aws.String("k"), Body: strings.NewReader("x")})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "NoSuchBucket" {
		t.Fatalf("missing bucket: %v", err)
	}

	// Objects persist under the data dir.
	c2, _ := start(t, dir)
	if got := get(t, c2, "bkt1", "dir/a.bin"); !bytes.Equal(got, data) {
		t.Fatal("object lost across restart")
	}
}

func TestTransferManagerMultipartUpload(t *testing.T) {
	c, _ := start(t, t.TempDir())
	ctx := context.Background()
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("big")}); err != nil {
		t.Fatal(err)
	}
	data := randBytes(t, 13<<20) // 3 parts of 5 MiB, 5 MiB, 3 MiB
	tm := transfermanager.New(c, func(o *transfermanager.Options) {
		o.PartSizeBytes = 5 << 20
		o.MultipartUploadThreshold = 5 << 20
	})
	if _, err := tm.UploadObject(ctx, &transfermanager.UploadObjectInput{Bucket: aws.String("big"), Key: aws.String("obj"),
		Body: bytes.NewReader(data)}); err != nil {
		t.Fatalf("UploadObject: %v", err)
	}
	if got := get(t, c, "big", "obj"); !bytes.Equal(got, data) {
		t.Fatalf("multipart object differs (%d bytes)", len(got))
	}
	// Ranged reads stream from the file.
	r, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("big"), Key: aws.String("obj"), Range: aws.String("bytes=10485760-10485769")})
	if err != nil {
		t.Fatal(err)
	}
	part, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if !bytes.Equal(part, data[10<<20:10<<20+10]) {
		t.Fatal("ranged read differs")
	}
}

func TestMultipartErrorsAndAbort(t *testing.T) {
	c, _ := start(t, t.TempDir())
	ctx := context.Background()
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("mpbkt")}); err != nil {
		t.Fatal(err)
	}
	mu, err := c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: aws.String("mpbkt"), Key: aws.String("k")})
	if err != nil {
		t.Fatal(err)
	}
	small := randBytes(t, 1024)
	p1, err := c.UploadPart(ctx, &awss3.UploadPartInput{Bucket: aws.String("mpbkt"), Key: aws.String("k"), UploadId: mu.UploadId,
		PartNumber: aws.Int32(1), Body: bytes.NewReader(small)})
	if err != nil {
		t.Fatal(err)
	}
	p2, err := c.UploadPart(ctx, &awss3.UploadPartInput{Bucket: aws.String("mpbkt"), Key: aws.String("k"), UploadId: mu.UploadId,
		PartNumber: aws.Int32(2), Body: bytes.NewReader(small)})
	if err != nil {
		t.Fatal(err)
	}
	code := func(err error) string {
		var ae smithy.APIError
		if errors.As(err, &ae) {
			return ae.ErrorCode()
		}
		return ""
	}
	complete := func(parts ...types.CompletedPart) error {
		_, err := c.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{Bucket: aws.String("mpbkt"), Key: aws.String("k"),
			UploadId: mu.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
		return err
	}
	if err := complete(types.CompletedPart{PartNumber: aws.Int32(1), ETag: aws.String(`"deadbeef"`)}); code(err) != "InvalidPart" {
		t.Fatalf("wrong etag: %v", err)
	}
	if err := complete(types.CompletedPart{PartNumber: aws.Int32(1), ETag: p1.ETag}, types.CompletedPart{PartNumber: aws.Int32(2), ETag: p2.ETag}); code(err) != "EntityTooSmall" {
		t.Fatalf("small first part: %v", err)
	}
	if err := complete(types.CompletedPart{PartNumber: aws.Int32(1), ETag: p1.ETag}); err != nil {
		t.Fatalf("single part: %v", err)
	}
	if got := get(t, c, "mpbkt", "k"); !bytes.Equal(got, small) {
		t.Fatal("single-part multipart object differs")
	}
	if err := complete(types.CompletedPart{PartNumber: aws.Int32(1), ETag: p1.ETag}); code(err) != "NoSuchUpload" {
		t.Fatalf("completed twice: %v", err)
	}
	mu2, err := c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: aws.String("mpbkt"), Key: aws.String("k2")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.AbortMultipartUpload(ctx, &awss3.AbortMultipartUploadInput{Bucket: aws.String("mpbkt"), Key: aws.String("k2"), UploadId: mu2.UploadId}); err != nil {
		t.Fatal(err)
	}
	_, err = c.UploadPart(ctx, &awss3.UploadPartInput{Bucket: aws.String("mpbkt"), Key: aws.String("k2"), UploadId: mu2.UploadId,
		PartNumber: aws.Int32(1), Body: bytes.NewReader(small)})
	if code(err) != "NoSuchUpload" {
		t.Fatalf("part after abort: %v", err)
	}
	_, err = c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: aws.String("none"), Key: aws.String("k")})
	if code(err) != "NoSuchBucket" {
		t.Fatalf("upload to missing bucket: %v", err)
	}
}

// Clients that stream aws-chunked bodies (what the SDK does over TLS, with a trailing
// checksum, and with chunk signatures in older SDKs) are decoded by the server.
func TestAWSChunkedBodies(t *testing.T) {
	c, url := start(t, t.TempDir())
	ctx := context.Background()
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("chunky")}); err != nil {
		t.Fatal(err)
	}
	data := randBytes(t, 150000)
	encode := func(sigs bool) string {
		var b strings.Builder
		for off := 0; off < len(data); off += 65536 {
			end := min(off+65536, len(data))
			if sigs {
				fmt.Fprintf(&b, "%x;chunk-signature=%064d\r\n", end-off, 0)
			} else {
				fmt.Fprintf(&b, "%x\r\n", end-off)
			}
			b.Write(data[off:end])
			b.WriteString("\r\n")
		}
		if sigs {
			fmt.Fprintf(&b, "0;chunk-signature=%064d\r\n\r\n", 0)
		} else {
			b.WriteString("0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n")
		}
		return b.String()
	}
	for i, mode := range []struct {
		sha     string
		sigs    bool
		trailer string
	}{
		{"STREAMING-UNSIGNED-PAYLOAD-TRAILER", false, "x-amz-checksum-crc32"},
		{"STREAMING-AWS4-HMAC-SHA256-PAYLOAD", true, ""},
	} {
		key := fmt.Sprintf("obj%d", i)
		req, _ := http.NewRequest(http.MethodPut, url+"/chunky/"+key, strings.NewReader(encode(mode.sigs)))
		req.Header.Set("X-Amz-Content-Sha256", mode.sha)
		req.Header.Set("Content-Encoding", "aws-chunked")
		req.Header.Set("X-Amz-Decoded-Content-Length", fmt.Sprint(len(data)))
		if mode.trailer != "" {
			req.Header.Set("X-Amz-Trailer", mode.trailer)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", mode.sha, resp.StatusCode, body)
		}
		if got := get(t, c, "chunky", key); !bytes.Equal(got, data) {
			t.Fatalf("%s: stored %d bytes, want the %d decoded bytes", mode.sha, len(got), len(data))
		}
	}
	// A truncated chunked body is refused, not stored.
	req, _ := http.NewRequest(http.MethodPut, url+"/chunky/bad", strings.NewReader("ffff\r\nabc"))
	req.Header.Set("X-Amz-Content-Sha256", "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
	req.Header.Set("Content-Encoding", "aws-chunked")
	req.Header.Set("X-Amz-Decoded-Content-Length", "65535")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == 200 {
		t.Fatal("truncated chunked body accepted")
	}
	if _, err := c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("chunky"), Key: aws.String("bad")}); err == nil {
		t.Fatal("a truncated body left an object behind")
	}
	// A truncated body does not replace a good object.
	req, _ = http.NewRequest(http.MethodPut, url+"/chunky/obj0", strings.NewReader("ffff\r\nabc"))
	req.Header.Set("X-Amz-Content-Sha256", "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
	req.Header.Set("Content-Encoding", "aws-chunked")
	req.Header.Set("X-Amz-Decoded-Content-Length", "65535")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	if got := get(t, c, "chunky", "obj0"); !bytes.Equal(got, data) {
		t.Fatal("a truncated body damaged an existing object")
	}
}
