package kms

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/gofrs/uuid"
	"github.com/keyline/keyline/internal/local/authz"
	"github.com/nsmithuk/local-kms/src/handler"
)

// EventSink receives CloudTrail events (the lead wires it to the local event bus).
type EventSink interface {
	PublishCloudTrail(ctx context.Context, ev CloudTrailEvent) error
}

// EventSinkFunc adapts a function to EventSink.
type EventSinkFunc func(ctx context.Context, ev CloudTrailEvent) error

// PublishCloudTrail calls f.
func (f EventSinkFunc) PublishCloudTrail(ctx context.Context, ev CloudTrailEvent) error {
	return f(ctx, ev)
}

// Detail types of the events this package sends.
const (
	DetailTypeAPICall      = "AWS API Call via CloudTrail"
	DetailTypeServiceEvent = "AWS Service Event via CloudTrail"
)

// CloudTrailEvent is a CloudTrail record as EventBridge delivers it: its JSON encoding is
// exactly the event a rule sees.
type CloudTrailEvent struct {
	Version    string           `json:"version"`
	ID         string           `json:"id"`
	DetailType string           `json:"detail-type"`
	Source     string           `json:"source"`
	Account    string           `json:"account"`
	Time       string           `json:"time"`
	Region     string           `json:"region"`
	Resources  []string         `json:"resources"`
	Detail     CloudTrailDetail `json:"detail"`
}

// DetailJSON returns the event's detail as JSON (for a bus that takes the detail raw).
func (e CloudTrailEvent) DetailJSON() (json.RawMessage, error) { return json.Marshal(e.Detail) }

// When returns the event's time.
func (e CloudTrailEvent) When() time.Time {
	t, _ := time.Parse(time.RFC3339, e.Time)
	return t
}

// CloudTrailDetail is the CloudTrail record itself (the event's `detail`).
type CloudTrailDetail struct {
	EventVersion        string               `json:"eventVersion"`
	UserIdentity        UserIdentity         `json:"userIdentity"`
	EventTime           string               `json:"eventTime"`
	EventSource         string               `json:"eventSource"`
	EventName           string               `json:"eventName"`
	AWSRegion           string               `json:"awsRegion"`
	SourceIPAddress     string               `json:"sourceIPAddress"`
	UserAgent           string               `json:"userAgent"`
	ErrorCode           string               `json:"errorCode,omitempty"`
	ErrorMessage        string               `json:"errorMessage,omitempty"`
	RequestParameters   json.RawMessage      `json:"requestParameters"`
	ResponseElements    json.RawMessage      `json:"responseElements,omitempty"`
	AdditionalEventData json.RawMessage      `json:"additionalEventData,omitempty"`
	RequestID           string               `json:"requestID,omitempty"`
	EventID             string               `json:"eventID"`
	ReadOnly            bool                 `json:"readOnly"`
	Resources           []CloudTrailResource `json:"resources,omitempty"`
	EventType           string               `json:"eventType"`
	ManagementEvent     bool                 `json:"managementEvent"`
	RecipientAccountID  string               `json:"recipientAccountId"`
	ServiceEventDetails json.RawMessage      `json:"serviceEventDetails,omitempty"`
	EventCategory       string               `json:"eventCategory"`
}

// UserIdentity is who made the call.
type UserIdentity struct {
	Type        string `json:"type,omitempty"`
	PrincipalID string `json:"principalId,omitempty"`
	Arn         string `json:"arn,omitempty"`
	AccountID   string `json:"accountId"`
	AccessKeyID string `json:"accessKeyId,omitempty"`
	InvokedBy   string `json:"invokedBy,omitempty"`
}

// CloudTrailResource names a resource the call concerned.
type CloudTrailResource struct {
	AccountID string `json:"accountId"`
	Type      string `json:"type"`
	ARN       string `json:"ARN"`
}

// cloudTrailDate is the format CloudTrail uses for dates inside KMS response elements.
const cloudTrailDate = "Jan 2, 2006, 3:04:05 PM"

func (s *Service) envelope(detailType string, now time.Time, d CloudTrailDetail) CloudTrailEvent {
	account := d.RecipientAccountID
	if account == "" {
		account = s.opts.AccountID
	}
	return CloudTrailEvent{
		Version: "0", ID: uuid.Must(uuid.NewV4()).String(), DetailType: detailType, Source: "aws.kms",
		Account: account, Time: now.UTC().Format(time.RFC3339), Region: s.opts.Region,
		Resources: []string{}, Detail: d,
	}
}

// localEventTime is the eventTime of the local CloudTrail events: RFC 3339 with
// milliseconds. AWS stamps whole seconds, and keyline orders a key's events by eventTime
// with ties broken by event id (a random UUID); a script that disables and re-enables a key
// within one second would then see an arbitrary order locally, where AWS's own delay between
// the calls makes that rare. Milliseconds keep the local order the order of the calls.
const localEventTime = "2006-01-02T15:04:05.000Z07:00"

// record builds and delivers the CloudTrail event of one management call.
func (s *Service) record(r *http.Request, c *call, resp handler.Response) {
	now := s.clk.Now()
	akid, ip := callerOf(r)
	caller := c.caller
	if caller == "" {
		caller = s.opts.AccountID
	}
	// The event is the key owner's (the account whose CloudTrail records it); the caller
	// may be another account.
	keyArn := s.externalARN(c.keyArn)
	recipient := caller
	if keyArn != "" {
		recipient = authz.ARNAccount(keyArn)
	}
	d := CloudTrailDetail{
		EventVersion: "1.08",
		UserIdentity: UserIdentity{
			Type: "Root", PrincipalID: caller, Arn: "arn:aws:iam::" + caller + ":root",
			AccountID: caller, AccessKeyID: akid,
		},
		EventTime:          now.UTC().Format(localEventTime),
		EventSource:        "kms.amazonaws.com",
		EventName:          c.op,
		AWSRegion:          s.opts.Region,
		SourceIPAddress:    ip,
		UserAgent:          r.UserAgent(),
		RequestParameters:  requestParameters([]byte(s.toExternal(string(c.body)))),
		RequestID:          c.reqID,
		EventID:            uuid.Must(uuid.NewV4()).String(),
		ReadOnly:           false,
		EventType:          "AwsApiCall",
		ManagementEvent:    true,
		RecipientAccountID: recipient,
		EventCategory:      "Management",
	}
	if resp.Code != http.StatusOK {
		var e struct {
			Type    string `json:"__type"`
			Message string `json:"message"`
		}
		_ = json.Unmarshal([]byte(resp.Body), &e)
		d.ErrorCode, d.ErrorMessage = e.Type, e.Message
		if d.ErrorCode == "" {
			d.ErrorCode = "InternalFailure"
		}
	} else {
		d.ResponseElements = responseElements(c.op, resp.Body)
	}
	if keyArn != "" {
		d.Resources = []CloudTrailResource{{AccountID: recipient, Type: "AWS::KMS::Key", ARN: keyArn}}
	}
	s.deliver(r.Context(), s.envelope(DetailTypeAPICall, now, d))
}

// deleteKeyEvent is the service event AWS records when a key's deletion window ends.
func (s *Service) deleteKeyEvent(p pendingKey) CloudTrailEvent {
	now := s.clk.Now()
	p.Arn = s.externalARN(p.Arn)
	owner := authz.ARNAccount(p.Arn)
	keyID, _ := json.Marshal(map[string]string{"keyId": p.Arn})
	d := CloudTrailDetail{
		EventVersion:        "1.08",
		UserIdentity:        UserIdentity{AccountID: owner, InvokedBy: "kms.amazonaws.com"},
		EventTime:           now.UTC().Format(localEventTime),
		EventSource:         "kms.amazonaws.com",
		EventName:           "DeleteKey",
		AWSRegion:           s.opts.Region,
		SourceIPAddress:     "kms.amazonaws.com",
		UserAgent:           "kms.amazonaws.com",
		RequestParameters:   json.RawMessage("null"),
		ResponseElements:    keyID,
		AdditionalEventData: keyID,
		EventID:             uuid.Must(uuid.NewV4()).String(),
		Resources:           []CloudTrailResource{{AccountID: owner, Type: "AWS::KMS::Key", ARN: p.Arn}},
		EventType:           "AwsServiceEvent",
		ManagementEvent:     true,
		RecipientAccountID:  owner,
		EventCategory:       "Management",
	}
	return s.envelope(DetailTypeServiceEvent, now, d)
}

// deliver sends ev to the sink, now or after CloudTrailDelay on the clock, unless
// CloudTrailDrop loses it.
func (s *Service) deliver(ctx context.Context, ev CloudTrailEvent) {
	if s.opts.Sink == nil {
		return
	}
	if s.opts.CloudTrailDrop != nil && s.opts.CloudTrailDrop(ev.Detail.EventName) {
		return
	}
	ctx = context.WithoutCancel(ctx)
	publish := func() {
		if err := s.opts.Sink.PublishCloudTrail(ctx, ev); err != nil {
			s.log.Warn("kms: CloudTrail event not delivered", "event", ev.Detail.EventName, "err", err)
		}
	}
	if s.opts.CloudTrailDelay <= 0 {
		publish()
		return
	}
	select {
	case <-s.closed:
		return
	default:
	}
	due := s.clk.After(s.opts.CloudTrailDelay)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		select {
		case <-due:
			publish()
		case <-s.closed:
		}
	}()
}

// requestParameters is the request as CloudTrail records it: member names in lower camel case.
func requestParameters(body []byte) json.RawMessage {
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return json.RawMessage("null")
	}
	b, err := json.Marshal(lowerCamel(v, false))
	if err != nil {
		return json.RawMessage("null")
	}
	return b
}

// responseElements is the response as CloudTrail records it: null for an empty answer,
// member names in lower camel case, dates in CloudTrail's KMS format.
func responseElements(op, body string) json.RawMessage {
	if strings.TrimSpace(body) == "" {
		return json.RawMessage("null")
	}
	var v any
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		return json.RawMessage("null")
	}
	if op == "ScheduleKeyDeletion" {
		if m, ok := v.(map[string]any); ok {
			delete(m, "PendingWindowInDays") // AWS's record has keyId, keyState and deletionDate
		}
	}
	b, err := json.Marshal(lowerCamel(v, true))
	if err != nil {
		return json.RawMessage("null")
	}
	return b
}

func lowerCamel(v any, dates bool) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, val := range t {
			name := k
			if name != "" {
				name = strings.ToLower(name[:1]) + name[1:]
			}
			if f, ok := val.(float64); ok && dates && strings.HasSuffix(k, "Date") {
				sec := int64(f)
				nsec := int64((f - float64(sec)) * 1e9)
				out[name] = time.Unix(sec, nsec).UTC().Format(cloudTrailDate)
				continue
			}
			out[name] = lowerCamel(val, dates)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, val := range t {
			out[i] = lowerCamel(val, dates)
		}
		return out
	default:
		return v
	}
}
