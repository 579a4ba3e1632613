package console

import (
	"bytes"
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
)

// APIGateway adapts an http.Handler to an API Gateway (REST, proxy integration) Lambda
// handler, so the console API runs behind API Gateway unchanged.
func APIGateway(h http.Handler) func(ctx context.Context, req events.APIGatewayProxyRequest) (events.APIGatewayProxyResponse, error) {
	return func(ctx context.Context, req events.APIGatewayProxyRequest) (events.APIGatewayProxyResponse, error) {
		body := []byte(req.Body)
		if req.IsBase64Encoded {
			b, err := base64.StdEncoding.DecodeString(req.Body)
			if err != nil {
				return events.APIGatewayProxyResponse{StatusCode: http.StatusBadRequest,
					Body: `{"error":{"code":"BadRequest","message":"the body is not valid base64"}}`}, nil
			}
			body = b
		}
		u := url.URL{Path: req.Path}
		q := url.Values{}
		for k, vs := range req.MultiValueQueryStringParameters {
			q[k] = vs
		}
		for k, v := range req.QueryStringParameters {
			if _, ok := q[k]; !ok {
				q.Set(k, v)
			}
		}
		u.RawQuery = q.Encode()
		r, err := http.NewRequestWithContext(ctx, req.HTTPMethod, u.String(), bytes.NewReader(body))
		if err != nil {
			return events.APIGatewayProxyResponse{StatusCode: http.StatusBadRequest,
				Body: `{"error":{"code":"BadRequest","message":"malformed request"}}`}, nil
		}
		for k, vs := range req.MultiValueHeaders {
			for _, v := range vs {
				r.Header.Add(k, v)
			}
		}
		for k, v := range req.Headers {
			if r.Header.Get(k) == "" {
				r.Header.Set(k, v)
			}
		}
		if req.RequestContext.RequestID != "" && r.Header.Get("X-Request-Id") == "" {
			r.Header.Set("X-Request-Id", req.RequestContext.RequestID)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		resp := events.APIGatewayProxyResponse{StatusCode: rec.Code, MultiValueHeaders: map[string][]string{}}
		for k, vs := range rec.Header() {
			resp.MultiValueHeaders[k] = vs
		}
		out := rec.Body.Bytes()
		ct := rec.Header().Get("Content-Type")
		if utf8.Valid(out) && (strings.HasPrefix(ct, "application/json") || strings.HasPrefix(ct, "text/")) {
			resp.Body = string(out)
		} else {
			resp.Body = base64.StdEncoding.EncodeToString(out)
			resp.IsBase64Encoded = true
		}
		return resp, nil
	}
}
