package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// apiClient drives the console API as a person's script would.
type apiClient struct {
	base  string
	token string
	http  *http.Client
}

// apiAnswer is one answer of the console API.
type apiAnswer struct {
	Status int
	Body   []byte
}

func (a apiAnswer) decode(v any) error {
	if err := json.Unmarshal(a.Body, v); err != nil {
		return fmt.Errorf("answer %d is not the JSON expected: %v: %.300s", a.Status, err, a.Body)
	}
	return nil
}

// message returns the error message of an error answer.
func (a apiAnswer) message() string {
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if json.Unmarshal(a.Body, &e) != nil {
		return string(a.Body)
	}
	return e.Error.Code + ": " + e.Error.Message
}

func (c *apiClient) as(token string) *apiClient {
	return &apiClient{base: c.base, token: token, http: c.http}
}

func (c *apiClient) do(ctx context.Context, method, path string, body any, hdr ...string) (apiAnswer, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return apiAnswer{}, err
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return apiAnswer{}, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := c.http.Do(req)
	if err != nil {
		return apiAnswer{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return apiAnswer{res.StatusCode, b}, err
}

// expect performs a request and fails unless the answer has the wanted status; it decodes
// the body into out when out is not nil.
func (c *apiClient) expect(ctx context.Context, want int, method, path string, body, out any, hdr ...string) error {
	a, err := c.do(ctx, method, path, body, hdr...)
	if err != nil {
		return err
	}
	if a.Status != want {
		return fmt.Errorf("%s %s answered %d, want %d: %s", method, path, a.Status, want, a.message())
	}
	if out != nil {
		return a.decode(out)
	}
	return nil
}

type appInfo struct {
	AppID            string `json:"appId"`
	OrgID            string `json:"orgId"`
	KeyModel         string `json:"keyModel"`
	Status           string `json:"status"`
	StatusReason     string `json:"statusReason"`
	ActiveGeneration int    `json:"activeGeneration"`
}

type genInfo struct {
	Generation int    `json:"generation"`
	KeyArn     string `json:"keyArn"`
	State      string `json:"state"`
}

type backupInfo struct {
	BackupID   string `json:"backupId"`
	Generation int    `json:"generation"`
	KeyArn     string `json:"keyArn"`
	SizeBytes  int64  `json:"sizeBytes"`
	Restorable bool   `json:"restorable"`
	Reason     string `json:"reason"`
}

type executionInfo struct {
	Status string          `json:"status"`
	Output json.RawMessage `json:"output"`
	Error  string          `json:"error"`
	Cause  string          `json:"cause"`
}

type auditInfo struct {
	Action string `json:"action"`
	Actor  string `json:"actor"`
	Cause  struct {
		EventID      string `json:"eventId"`
		RequestID    string `json:"requestId"`
		ExecutionArn string `json:"executionArn"`
	} `json:"cause"`
	Detail map[string]string `json:"detail"`
}

func (c *apiClient) app(ctx context.Context, id string) (appInfo, error) {
	var a appInfo
	return a, c.expect(ctx, 200, "GET", "/v1/apps/"+id, nil, &a)
}

func (c *apiClient) keys(ctx context.Context, id string) ([]genInfo, error) {
	var g []genInfo
	return g, c.expect(ctx, 200, "GET", "/v1/apps/"+id+"/keys", nil, &g)
}

func (c *apiClient) backups(ctx context.Context, id string) ([]backupInfo, error) {
	var b []backupInfo
	return b, c.expect(ctx, 200, "GET", "/v1/apps/"+id+"/backups", nil, &b)
}

func (c *apiClient) audit(ctx context.Context, id string) ([]auditInfo, error) {
	var a []auditInfo
	return a, c.expect(ctx, 200, "GET", "/v1/apps/"+id+"/audit", nil, &a)
}

// generationOf returns the key generation an object is sealed under (X-Keyline-Generation).
func (c *apiClient) generationOf(ctx context.Context, app, path string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", c.base+"/v1/apps/"+app+"/objects/"+path, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("X-Keyline-Scope", "cmk")
	res, err := c.http.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	if res.StatusCode != 200 {
		return "", fmt.Errorf("read %s/%s: %d", app, path, res.StatusCode)
	}
	return res.Header.Get("X-Keyline-Generation"), nil
}

// start posts to a route that starts an execution and returns its ARN.
func (c *apiClient) start(ctx context.Context, path string, body any) (string, error) {
	var out struct {
		ExecutionArn string `json:"executionArn"`
	}
	if err := c.expect(ctx, 202, "POST", path, body, &out); err != nil {
		return "", err
	}
	return out.ExecutionArn, nil
}

// wait polls an execution until it ends.
func (c *apiClient) wait(ctx context.Context, arn string) (executionInfo, error) {
	var ex executionInfo
	err := eventually(ctx, 3*time.Minute, func() (bool, error) {
		ex = executionInfo{}
		if err := c.expect(ctx, 200, "GET", "/v1/executions/"+url.PathEscape(arn), nil, &ex); err != nil {
			return false, err
		}
		return ex.Status != "RUNNING", nil
	})
	return ex, err
}

// run starts an execution and waits for it to succeed.
func (c *apiClient) run(ctx context.Context, path string, body any) (executionInfo, error) {
	arn, err := c.start(ctx, path, body)
	if err != nil {
		return executionInfo{}, err
	}
	ex, err := c.wait(ctx, arn)
	if err != nil {
		return ex, err
	}
	if ex.Status != "SUCCEEDED" {
		return ex, fmt.Errorf("execution %s ended %s: %s: %s", arn, ex.Status, ex.Error, ex.Cause)
	}
	return ex, nil
}

// eventually polls cond every 20 ms until it holds, fails, or timeout passes.
func eventually(ctx context.Context, timeout time.Duration, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("condition not met within %v", timeout)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
