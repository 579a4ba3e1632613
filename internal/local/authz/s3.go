package authz

import (
	"context"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// S3 condition keys.
const (
	CtxS3Prefix    = "s3:prefix"
	CtxS3Delimiter = "s3:delimiter"
)

// S3Extractor returns the checks of path-style S3 requests. Buckets belong to account.
// Object operations act on arn:aws:s3:::bucket/key (multipart uploads are s3:PutObject,
// HEAD is s3:GetObject, a copy also reads its source), listings on arn:aws:s3:::bucket
// with s3:prefix (and s3:delimiter) as given, DeleteObjects is s3:DeleteObject per key.
func S3Extractor(account string) Extractor {
	return ExtractorFunc(func(_ context.Context, r *Request) ([]Check, error) {
		path := strings.TrimPrefix(r.Path, "/")
		bucket, key, hasKey := strings.Cut(path, "/")
		q := url.Values(r.Query)
		has := func(k string) bool { _, ok := q[k]; return ok }
		mk := func(action, resource string) Check {
			return Check{Action: "s3:" + action, Resource: resource, ResourceAccount: account,
				Context: map[string]Value{CtxResourceAccount: One(account)}}
		}
		if bucket == "" {
			return []Check{mk("ListAllMyBuckets", "*")}, nil
		}
		bucketARN := "arn:aws:s3:::" + bucket
		if hasKey && key != "" {
			objARN := bucketARN + "/" + key
			switch r.Method {
			case http.MethodGet, http.MethodHead:
				if has("uploadId") {
					return []Check{mk("ListMultipartUploadParts", objARN)}, nil
				}
				if has("tagging") {
					return []Check{mk("GetObjectTagging", objARN)}, nil
				}
				return []Check{mk("GetObject", objARN)}, nil
			case http.MethodPut:
				if has("tagging") {
					return []Check{mk("PutObjectTagging", objARN)}, nil
				}
				cs := []Check{mk("PutObject", objARN)}
				if src := http.Header(r.Header).Get("X-Amz-Copy-Source"); src != "" {
					src, _ = url.PathUnescape(strings.TrimPrefix(src, "/"))
					src, _, _ = strings.Cut(src, "?")
					cs = append(cs, mk("GetObject", "arn:aws:s3:::"+src))
				}
				return cs, nil
			case http.MethodPost:
				return []Check{mk("PutObject", objARN)}, nil
			case http.MethodDelete:
				if has("uploadId") {
					return []Check{mk("AbortMultipartUpload", objARN)}, nil
				}
				return []Check{mk("DeleteObject", objARN)}, nil
			}
			return nil, fmt.Errorf("s3: %s on an object", r.Method)
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			switch {
			case has("uploads"):
				return []Check{mk("ListBucketMultipartUploads", bucketARN)}, nil
			case has("location"):
				return []Check{mk("GetBucketLocation", bucketARN)}, nil
			case has("versioning"):
				return []Check{mk("GetBucketVersioning", bucketARN)}, nil
			case has("policy"):
				return []Check{mk("GetBucketPolicy", bucketARN)}, nil
			case has("versions"):
				return []Check{mk("ListBucketVersions", bucketARN)}, nil
			}
			c := mk("ListBucket", bucketARN)
			if r.Method == http.MethodGet {
				if p, ok := q["prefix"]; ok && len(p) > 0 {
					c.Context[CtxS3Prefix] = One(p[0])
				}
				if d, ok := q["delimiter"]; ok && len(d) > 0 {
					c.Context[CtxS3Delimiter] = One(d[0])
				}
			}
			return []Check{c}, nil
		case http.MethodPut:
			switch {
			case has("versioning"):
				return []Check{mk("PutBucketVersioning", bucketARN)}, nil
			case has("policy"):
				return []Check{mk("PutBucketPolicy", bucketARN)}, nil
			}
			return []Check{mk("CreateBucket", bucketARN)}, nil
		case http.MethodDelete:
			return []Check{mk("DeleteBucket", bucketARN)}, nil
		case http.MethodPost:
			if has("delete") {
				var d struct {
					Objects []struct {
						Key string `xml:"Key"`
					} `xml:"Object"`
				}
				if err := xml.Unmarshal(r.Body, &d); err != nil {
					return nil, fmt.Errorf("s3 DeleteObjects: %w", err)
				}
				cs := make([]Check, 0, len(d.Objects))
				for _, o := range d.Objects {
					cs = append(cs, mk("DeleteObject", bucketARN+"/"+o.Key))
				}
				return cs, nil
			}
		}
		return nil, fmt.Errorf("s3: %s on a bucket", r.Method)
	})
}
