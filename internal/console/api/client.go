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
	// Poll is how often Wait asks for an execution's status (default DefaultPoll).
	Poll time.Duration
}

// Polling defaults of Client.Wait.
const (
	// DefaultPoll is how often Wait asks for an execution's status.
	DefaultPoll = 20 * time.Millisecond
	// WaitTimeout is how long Wait waits for an execution to end.
	WaitTimeout = 3 * time.Minute
)

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
	return &Client{Base: c.Base, Token: token, HTTP: c.HTTP, Poll: c.Poll}
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

// The console API's request and answer bodies: the console server encodes these very
// types, so a client and the server cannot disagree on a field.

// CreateOrg is the body of POST /v1/orgs.
type CreateOrg struct {
	OrgID string `json:"orgId"`
	Name  string `json:"name"`
	// Accounts are the AWS account ids the org enrols: only keys there may be used (B10).
	Accounts []string `json:"accounts,omitempty"`
	// KeyARNs optionally narrow the org's keys to these.
	KeyARNs []string `json:"keyArns,omitempty"`
}

// CreateOrgToken is the body of POST /v1/orgs/{orgId}/tokens.
type CreateOrgToken struct {
	// TTLHours is the token's lifetime in hours; 0 or absent means the default (90 days).
	TTLHours *int `json:"ttlHours,omitempty"`
}

// TokenInfo describes an org token without its secret (GET /v1/orgs/{orgId}/tokens lists these).
type TokenInfo struct {
	TokenID   string    `json:"tokenId"`
	OrgID     string    `json:"orgId"`
	CreatedAt time.Time `json:"createdAt"`
	ExpiresAt time.Time `json:"expiresAt"`
	Expired   bool      `json:"expired"`
}

// OrgToken answers POST /v1/orgs/{orgId}/tokens: the secret is shown once, here.
type OrgToken struct {
	TokenInfo
	Token string `json:"token"`
}

// CreateApp is the body of POST /v1/apps.
type CreateApp struct {
	AppID    string `json:"appId"`
	OrgID    string `json:"orgId"`
	KeyModel string `json:"keyModel"`
	KeyARN   string `json:"keyArn,omitempty"`
}

// App is an app instance as the console shows it.
type App struct {
	AppID            string `json:"appId"`
	OrgID            string `json:"orgId"`
	KeyModel         string `json:"keyModel"`
	Status           string `json:"status"`
	StatusReason     string `json:"statusReason"`
	ActiveGeneration int    `json:"activeGeneration"`
}

// AppsPage answers GET /v1/apps: one page, and the cursor of the next one.
type AppsPage struct {
	Items []App  `json:"items"`
	Next  string `json:"next,omitempty"`
}

// Generation is one key generation of an app's lineage.
type Generation struct {
	Generation int       `json:"generation"`
	KeyArn     string    `json:"keyArn"`
	State      string    `json:"state"`
	Since      time.Time `json:"since"`
	Reason     string    `json:"reason,omitempty"`
	// Usable and KeyState are derived from the key's state (USABLE or REVOKED).
	Usable   bool   `json:"usable"`
	KeyState string `json:"keyState"`
}

// Backup is one backup of an app; Restorable is derived, with a Reason when it is not.
type Backup struct {
	BackupID   string    `json:"backupId"`
	Generation int       `json:"generation"`
	KeyArn     string    `json:"keyArn"`
	CreatedAt  time.Time `json:"createdAt"`
	SizeBytes  int64     `json:"sizeBytes"`
	Restorable bool      `json:"restorable"`
	Reason     string    `json:"reason"`
}

// Reencrypt is the body of POST /v1/apps/{appId}/reencrypt.
type Reencrypt struct {
	KeyARN string `json:"keyArn"`
}

// Restore is the body of POST /v1/apps/{appId}/restores.
type Restore struct {
	BackupID    string `json:"backupId"`
	SourceAppID string `json:"sourceAppId,omitempty"`
}

// Started answers a request that starts an execution (202).
type Started struct {
	ExecutionArn string `json:"executionArn"`
	RestoreID    string `json:"restoreId,omitempty"`
}

// Execution answers GET /v1/executions/{executionArn}.
type Execution struct {
	Status string          `json:"status"`
	Output json.RawMessage `json:"output,omitempty"`
	Error  string          `json:"error,omitempty"`
	Cause  string          `json:"cause,omitempty"`
}

// Execution statuses that Wait and Run tell apart.
const (
	StatusRunning   = "RUNNING"
	StatusSucceeded = "SUCCEEDED"
)

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

// CreateOrg creates an org (operator only).
func (c *Client) CreateOrg(ctx context.Context, org CreateOrg) error {
	return c.Expect(ctx, http.StatusCreated, "POST", "/v1/orgs", org, nil)
}

// CreateOrgToken issues a token for an org (operator only); the answer holds the secret.
func (c *Client) CreateOrgToken(ctx context.Context, orgID string, req CreateOrgToken) (OrgToken, error) {
	var t OrgToken
	return t, c.Expect(ctx, http.StatusCreated, "POST", "/v1/orgs/"+orgID+"/tokens", req, &t)
}

// CreateApp creates an app instance and returns it as the console shows it.
func (c *Client) CreateApp(ctx context.Context, req CreateApp) (App, error) {
	var a App
	return a, c.Expect(ctx, http.StatusCreated, "POST", "/v1/apps", req, &a)
}

// PutObject stores an object of an app in the given scope ("cmk" or "managed").
func (c *Client) PutObject(ctx context.Context, app, scope, path string, body []byte) error {
	return c.Expect(ctx, http.StatusCreated, "PUT", "/v1/apps/"+app+"/objects/"+path, body, nil, "X-Keyline-Scope", scope)
}

// GetObject reads an object of an app back in the given scope.
func (c *Client) GetObject(ctx context.Context, app, scope, path string) ([]byte, error) {
	a, err := c.Do(ctx, "GET", "/v1/apps/"+app+"/objects/"+path, nil, "X-Keyline-Scope", scope)
	if err != nil {
		return nil, err
	}
	if a.Status != http.StatusOK {
		return nil, fmt.Errorf("GET object %s/%s answered %d: %s", app, path, a.Status, a.Message())
	}
	return a.Body, nil
}

// Start posts to a route that starts an execution and returns its ARN.
func (c *Client) Start(ctx context.Context, path string, body any) (string, error) {
	var out Started
	if err := c.Expect(ctx, http.StatusAccepted, "POST", path, body, &out); err != nil {
		return "", err
	}
	return out.ExecutionArn, nil
}

// Wait polls an execution every c.Poll until it ends; it is the one place that waits
// for an execution through the console.
func (c *Client) Wait(ctx context.Context, arn string) (Execution, error) {
	var ex Execution
	every := c.Poll
	if every <= 0 {
		every = DefaultPoll
	}
	err := poll(ctx, WaitTimeout, every, func() (bool, error) {
		ex = Execution{}
		if err := c.Expect(ctx, http.StatusOK, "GET", "/v1/executions/"+url.PathEscape(arn), nil, &ex); err != nil {
			return false, err
		}
		return ex.Status != StatusRunning, nil
	})
	if err != nil {
		return ex, fmt.Errorf("execution %s: %w", arn, err)
	}
	return ex, nil
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
	if ex.Status != StatusSucceeded {
		return ex, fmt.Errorf("execution %s ended %s: %s: %s", arn, ex.Status, ex.Error, ex.Cause)
	}
	return ex, nil
}

// Eventually polls cond every DefaultPoll until it holds, fails, or timeout passes.
func Eventually(ctx context.Context, timeout time.Duration, cond func() (bool, error)) error {
	return poll(ctx, timeout, DefaultPoll, cond)
}

// poll calls cond every interval until it holds, fails, or timeout passes.
func poll(ctx context.Context, timeout, every time.Duration, cond func() (bool, error)) error {
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
		case <-time.After(every):
		}
	}
}
