// Package api is the console API as a client sees it: its answers' shapes and one typed
// client that drives it as a person's script would (the acceptance checks, the benchmarks
// and the soak all use it).
package api

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

// Client drives the console API as a person's script would.
type Client struct {
	// Base is the console's URL (http://127.0.0.1:port).
	Base string
	// Token is the bearer token the client sends.
	Token string
	// HTTP sends the requests.
	HTTP *http.Client
}

// Answer is one answer of the console API.
type Answer struct {
	Status int
	Body   []byte
}

func (a Answer) Decode(v any) error {
	if err := json.Unmarshal(a.Body, v); err != nil {
		return fmt.Errorf("answer %d is not the JSON expected: %v: %.300s", a.Status, err, a.Body)
	}
	return nil
}

// message returns the error message of an error answer.
func (a Answer) Message() string {
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if json.Unmarshal(a.Body, &e) != nil {
		return string(a.Body)
	}
	return e.Error.Code + ": " + e.Error.Message
}

// Code returns the error code of an error answer ("" when it has none): for a restore a
// rule refused, the rule's reason code (KeyUnusable, BackupSuperseded, TargetNotCMK, ...).
func (a Answer) Code() string {
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	if json.Unmarshal(a.Body, &e) != nil {
		return ""
	}
	return e.Error.Code
}

func (c *Client) As(token string) *Client {
	return &Client{Base: c.Base, Token: token, HTTP: c.HTTP}
}

func (c *Client) Do(ctx context.Context, method, path string, body any, hdr ...string) (Answer, error) {
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
			return Answer{}, err
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, rd)
	if err != nil {
		return Answer{}, err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := c.HTTP.Do(req)
	if err != nil {
		return Answer{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return Answer{res.StatusCode, b}, err
}

// expect performs a request and fails unless the answer has the wanted status; it decodes
// the body into out when out is not nil.
func (c *Client) Expect(ctx context.Context, want int, method, path string, body, out any, hdr ...string) error {
	a, err := c.Do(ctx, method, path, body, hdr...)
	if err != nil {
		return err
	}
	if a.Status != want {
		return fmt.Errorf("%s %s answered %d, want %d: %s", method, path, a.Status, want, a.Message())
	}
	if out != nil {
		return a.Decode(out)
	}
	return nil
}

type App struct {
	AppID            string `json:"appId"`
	OrgID            string `json:"orgId"`
	KeyModel         string `json:"keyModel"`
	Status           string `json:"status"`
	StatusReason     string `json:"statusReason"`
	ActiveGeneration int    `json:"activeGeneration"`
}

type Generation struct {
	Generation int    `json:"generation"`
	KeyArn     string `json:"keyArn"`
	State      string `json:"state"`
}

type Backup struct {
	BackupID   string `json:"backupId"`
	Generation int    `json:"generation"`
	KeyArn     string `json:"keyArn"`
	SizeBytes  int64  `json:"sizeBytes"`
	Restorable bool   `json:"restorable"`
	Reason     string `json:"reason"`
}

type Execution struct {
	Status string          `json:"status"`
	Output json.RawMessage `json:"output"`
	Error  string          `json:"error"`
	Cause  string          `json:"cause"`
}

type AuditEntry struct {
	Action string `json:"action"`
	Actor  string `json:"actor"`
	Cause  struct {
		EventID      string `json:"eventId"`
		RequestID    string `json:"requestId"`
		ExecutionArn string `json:"executionArn"`
	} `json:"cause"`
	Detail map[string]string `json:"detail"`
}

func (c *Client) App(ctx context.Context, id string) (App, error) {
	var a App
	return a, c.Expect(ctx, 200, "GET", "/v1/apps/"+id, nil, &a)
}

func (c *Client) Keys(ctx context.Context, id string) ([]Generation, error) {
	var g []Generation
	return g, c.Expect(ctx, 200, "GET", "/v1/apps/"+id+"/keys", nil, &g)
}

func (c *Client) Backups(ctx context.Context, id string) ([]Backup, error) {
	var b []Backup
	return b, c.Expect(ctx, 200, "GET", "/v1/apps/"+id+"/backups", nil, &b)
}

func (c *Client) Audit(ctx context.Context, id string) ([]AuditEntry, error) {
	var a []AuditEntry
	return a, c.Expect(ctx, 200, "GET", "/v1/apps/"+id+"/audit", nil, &a)
}

// generationOf returns the key generation an object is sealed under (X-Keyline-Generation).
func (c *Client) GenerationOf(ctx context.Context, app, path string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", c.Base+"/v1/apps/"+app+"/objects/"+path, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("X-Keyline-Scope", "cmk")
	res, err := c.HTTP.Do(req)
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
func (c *Client) Start(ctx context.Context, path string, body any) (string, error) {
	var out struct {
		ExecutionArn string `json:"executionArn"`
	}
	if err := c.Expect(ctx, 202, "POST", path, body, &out); err != nil {
		return "", err
	}
	return out.ExecutionArn, nil
}

// wait polls an execution until it ends.
func (c *Client) Wait(ctx context.Context, arn string) (Execution, error) {
	var ex Execution
	err := Eventually(ctx, 3*time.Minute, func() (bool, error) {
		ex = Execution{}
		if err := c.Expect(ctx, 200, "GET", "/v1/executions/"+url.PathEscape(arn), nil, &ex); err != nil {
			return false, err
		}
		return ex.Status != "RUNNING", nil
	})
	return ex, err
}

// run starts an execution and waits for it to succeed.
func (c *Client) Run(ctx context.Context, path string, body any) (Execution, error) {
	arn, err := c.Start(ctx, path, body)
	if err != nil {
		return Execution{}, err
	}
	ex, err := c.Wait(ctx, arn)
	if err != nil {
		return ex, err
	}
	if ex.Status != "SUCCEEDED" {
		return ex, fmt.Errorf("execution %s ended %s: %s: %s", arn, ex.Status, ex.Error, ex.Cause)
	}
	return ex, nil
}

// Eventually polls cond every 20 ms until it holds, fails, or timeout passes.
func Eventually(ctx context.Context, timeout time.Duration, cond func() (bool, error)) error {
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
