package objectstest

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// plainReadAhead is how many objects PlainCopy fetches ahead of the one it copies, as the
// backup's snapshot (objects.S3Source.Snapshot) does.
const plainReadAhead = 4

// PlainCopyResult is what PlainCopy moved.
type PlainCopyResult struct {
	Objects int
	Bytes   int64
}

// PlainCopy is the plain side of the backup benchmarks: the S3 work of a backup without
// keyline's part of it. It reads every object under srcPrefix back from srcBucket (GetObject,
// plainReadAhead in flight, in listing order, as the snapshot reads them) and uploads their
// bytes, concatenated, to dstBucket/dstKey with the transfer manager, multipart with the given
// part size and concurrency — the backup's settings. No sealing, no KMS call, no DynamoDB
// write, no state machine. It checks the stored size, then deletes the upload.
func PlainCopy(ctx context.Context, c *s3.Client, srcBucket, srcPrefix, dstBucket, dstKey string, partSize int64, concurrency int) (PlainCopyResult, error) {
	var res PlainCopyResult
	var keys []string
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(srcBucket), Prefix: aws.String(srcPrefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return res, fmt.Errorf("plain copy: list %s/%s: %w", srcBucket, srcPrefix, err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	if len(keys) == 0 {
		return res, fmt.Errorf("plain copy: no object under %s/%s", srcBucket, srcPrefix)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	read := make(chan error, 1)
	go func() {
		n, err := readAll(ctx, c, srcBucket, keys, pw)
		res.Bytes = n
		pw.CloseWithError(err)
		read <- err
	}()
	tm := transfermanager.New(c, func(o *transfermanager.Options) {
		o.PartSizeBytes = partSize
		o.MultipartUploadThreshold = partSize
		o.Concurrency = concurrency
	})
	_, upErr := tm.UploadObject(ctx, &transfermanager.UploadObjectInput{Bucket: aws.String(dstBucket), Key: aws.String(dstKey), Body: pr})
	if upErr != nil {
		cancel()
	}
	pr.CloseWithError(errors.New("plain copy: upload ended"))
	if err := <-read; err != nil {
		return res, fmt.Errorf("plain copy: read back: %w", err)
	}
	if upErr != nil {
		return res, fmt.Errorf("plain copy: upload: %w", upErr)
	}
	res.Objects = len(keys)
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(dstBucket), Key: aws.String(dstKey)})
	if err != nil {
		return res, fmt.Errorf("plain copy: %w", err)
	}
	if got := aws.ToInt64(head.ContentLength); got != res.Bytes {
		return res, fmt.Errorf("plain copy stored %d bytes, read %d", got, res.Bytes)
	}
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(dstBucket), Key: aws.String(dstKey)}); err != nil {
		return res, fmt.Errorf("plain copy: %w", err)
	}
	return res, nil
}

// readAll copies the objects' bodies to w in order, fetching up to plainReadAhead ahead.
func readAll(ctx context.Context, c *s3.Client, bucket string, keys []string, w io.Writer) (int64, error) {
	type fetched struct {
		out *s3.GetObjectOutput
		err error
	}
	futures := make(chan chan fetched, plainReadAhead)
	go func() {
		defer close(futures)
		for _, k := range keys {
			f := make(chan fetched, 1)
			select {
			case futures <- f:
			case <-ctx.Done():
				return
			}
			go func() {
				out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(k)})
				f <- fetched{out, err}
			}()
		}
	}()
	var total int64
	var first error
	for f := range futures {
		r := <-f
		if r.err == nil && first == nil {
			n, err := io.Copy(w, r.out.Body)
			total += n
			r.err = err
		}
		if r.out != nil {
			r.out.Body.Close()
		}
		if r.err != nil && first == nil {
			first = r.err
		}
	}
	if first == nil && ctx.Err() != nil {
		first = ctx.Err()
	}
	return total, first
}
