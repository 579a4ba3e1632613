package s3_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
)

// TestListByPrefix: a listing by prefix (no delimiter) returns exactly the keys under the
// prefix, nested directories and a partial last segment included, in key order, with their
// ETags and sizes; a prefix nothing is stored under lists nothing (not NoSuchBucket); a
// missing bucket is NoSuchBucket.
func TestListByPrefix(t *testing.T) {
	ctx := context.Background()
	c, _ := start(t, t.TempDir())
	const bucket = "keyline-data"
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	keys := []string{
		"apps/app-1/cmk/a.txt", "apps/app-1/cmk/docs/b.txt", "apps/app-1/cmk/docs/deep/c.txt", "apps/app-1/managed/m",
		"apps/app-10/cmk/x", "apps/app-2/cmk/y", "apps/app-1.txt", "reencrypt-stash/app-1/2/cmk/a.txt", "top",
	}
	for _, k := range keys {
		if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(k), Body: strings.NewReader("data of " + k)}); err != nil {
			t.Fatal(err)
		}
	}
	list := func(prefix string) []string {
		t.Helper()
		out, err := c.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
		if err != nil {
			t.Fatalf("list %q: %v", prefix, err)
		}
		var got []string
		for _, o := range out.Contents {
			k := aws.ToString(o.Key)
			if aws.ToInt64(o.Size) != int64(len("data of "+k)) || aws.ToString(o.ETag) == "" {
				t.Errorf("list %q: %s has size %d, ETag %q", prefix, k, aws.ToInt64(o.Size), aws.ToString(o.ETag))
			}
			got = append(got, k)
		}
		return got
	}
	for _, prefix := range []string{"apps/app-1/", "apps/app-1", "apps/app-1/cmk/do", "apps/", "a", "apps/app-3/", "nothing/here/", "top", ""} {
		var want []string
		for _, k := range keys {
			if strings.HasPrefix(k, prefix) {
				want = append(want, k)
			}
		}
		sort.Strings(want)
		if got := list(prefix); !slices.Equal(got, want) {
			t.Errorf("list %q: %v, want %v", prefix, got, want)
		}
	}
	if _, err := c.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: aws.String("no-such-bucket"), Prefix: aws.String("apps/")}); err == nil ||
		!strings.Contains(err.Error(), "NoSuchBucket") {
		t.Fatalf("listing a missing bucket: %v, want NoSuchBucket", err)
	}
}

// BenchmarkListOneAppOfMany: listing one app's objects among many apps' costs what that app
// holds, not what the bucket holds (the afero backend alone walks the whole bucket).
func BenchmarkListOneAppOfMany(b *testing.B) {
	ctx := context.Background()
	c, _ := start(b, b.TempDir())
	const bucket, apps = "keyline-data", 2000
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		b.Fatal(err)
	}
	for i := range apps {
		if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(fmt.Sprintf("apps/app-%05d/managed/data", i)), Body: strings.NewReader("x")}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := range b.N {
		out, err := c.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(fmt.Sprintf("apps/app-%05d/", i%apps))})
		if err != nil || len(out.Contents) != 1 {
			b.Fatalf("list: %v, %d objects", err, len(out.Contents))
		}
	}
}
