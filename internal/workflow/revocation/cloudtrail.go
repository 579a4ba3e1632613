package revocation

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// CloudTrail event names keyline acts on.
const (
	EventDisableKey          = "DisableKey"
	EventScheduleKeyDeletion = "ScheduleKeyDeletion"
	EventEnableKey           = "EnableKey"
	EventCancelKeyDeletion   = "CancelKeyDeletion"
)

// ErrMalformedEvent is returned for an event keyline cannot act on (not JSON, not a
// CloudTrail KMS event, no event id or time, a key that cannot be resolved to an ARN).
// Nothing is changed.
var ErrMalformedEvent = errors.New("revocation: malformed key event")

// MalformedError says what is wrong with an event; errors.Is(err, ErrMalformedEvent) holds.
type MalformedError struct {
	EventID string
	What    string
}

func (e *MalformedError) Error() string {
	s := "revocation: malformed key event"
	if e.EventID != "" {
		s += " " + e.EventID
	}
	return s + ": " + e.What
}

// Is makes errors.Is(err, ErrMalformedEvent) true.
func (e *MalformedError) Is(target error) bool { return target == ErrMalformedEvent }

// KeyEvent is the part of a CloudTrail KMS event (as EventBridge delivers it) keyline uses.
type KeyEvent struct {
	// ID is the CloudTrail eventID (the EventBridge envelope id when it has none).
	ID        string
	Name      string
	Time      time.Time
	ErrorCode string
	// KeyARN is the resolved key ARN (DESIGN §4 order).
	KeyARN  string
	Region  string
	Account string
	// Source is the EventBridge envelope's source; EnvelopeAccount its account and
	// RecipientAccount the CloudTrail record's recipientAccountId. CheckEvent compares them.
	Source           string
	EnvelopeAccount  string
	RecipientAccount string
}

// envelope is an EventBridge event carrying a CloudTrail record in detail.
type envelope struct {
	ID         string          `json:"id"`
	DetailType string          `json:"detail-type"`
	Source     string          `json:"source"`
	Account    string          `json:"account"`
	Region     string          `json:"region"`
	Time       string          `json:"time"`
	Detail     json.RawMessage `json:"detail"`
}

type cloudTrailDetail struct {
	EventID            string          `json:"eventID"`
	EventTime          string          `json:"eventTime"`
	EventSource        string          `json:"eventSource"`
	EventName          string          `json:"eventName"`
	AWSRegion          string          `json:"awsRegion"`
	ErrorCode          string          `json:"errorCode"`
	RecipientAccountID string          `json:"recipientAccountId"`
	RequestParameters  json.RawMessage `json:"requestParameters"`
	ResponseElements   json.RawMessage `json:"responseElements"`
	Resources          []struct {
		ARN       string `json:"ARN"`
		Type      string `json:"type"`
		AccountID string `json:"accountId"`
	} `json:"resources"`
}

var (
	keyARNPattern = regexp.MustCompile(`^arn:(aws|aws-cn|aws-us-gov|aws-iso|aws-iso-b):kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$`)
	keyIDPattern  = regexp.MustCompile(`^(mrk-[0-9a-f]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$`)
	regionPattern = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)
	accountRegexp = regexp.MustCompile(`^[0-9]{12}$`)
)

// IsKeyARN reports whether s is the ARN of a KMS key (not an alias).
func IsKeyARN(s string) bool { return keyARNPattern.MatchString(s) }

// ParseEvent parses a CloudTrail KMS event as EventBridge delivers it and resolves its key
// ARN. An event with an errorCode parses (ErrorCode set) and its key ARN is resolved when
// possible, but is never acted on (B3).
func ParseEvent(raw []byte) (KeyEvent, error) {
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return KeyEvent{}, &MalformedError{What: "not a JSON event: " + err.Error()}
	}
	if len(env.Detail) == 0 || string(env.Detail) == "null" {
		return KeyEvent{}, &MalformedError{EventID: env.ID, What: "no detail"}
	}
	var d cloudTrailDetail
	if err := json.Unmarshal(env.Detail, &d); err != nil {
		return KeyEvent{}, &MalformedError{EventID: env.ID, What: "detail is not a CloudTrail record: " + err.Error()}
	}
	ev := KeyEvent{ID: d.EventID, Name: d.EventName, ErrorCode: d.ErrorCode}
	if ev.ID == "" {
		ev.ID = env.ID
	}
	if ev.ID == "" {
		return KeyEvent{}, &MalformedError{What: "no eventID"}
	}
	if env.Source != "" && env.Source != EventSourceKMS {
		return KeyEvent{}, &MalformedError{EventID: ev.ID, What: fmt.Sprintf("source %q is not aws.kms", env.Source)}
	}
	// A missing source and the accounts are checked by CheckEvent, which audits a refusal.
	if d.EventSource != "kms.amazonaws.com" {
		return KeyEvent{}, &MalformedError{EventID: ev.ID, What: fmt.Sprintf("eventSource %q is not kms.amazonaws.com", d.EventSource)}
	}
	switch ev.Name {
	case EventDisableKey, EventScheduleKeyDeletion, EventEnableKey, EventCancelKeyDeletion:
	case "":
		return KeyEvent{}, &MalformedError{EventID: ev.ID, What: "no eventName"}
	default:
		return KeyEvent{}, &MalformedError{EventID: ev.ID, What: fmt.Sprintf("eventName %q is not a key state change keyline acts on", ev.Name)}
	}
	ts := d.EventTime
	if ts == "" {
		ts = env.Time
	}
	t, err := time.Parse(time.RFC3339, ts)
	if err != nil {
		return KeyEvent{}, &MalformedError{EventID: ev.ID, What: fmt.Sprintf("eventTime %q is not an RFC 3339 time", ts)}
	}
	ev.Time = t.UTC()
	ev.Region = firstNonEmpty(d.AWSRegion, env.Region)
	ev.Account = firstNonEmpty(d.RecipientAccountID, env.Account)
	ev.Source, ev.EnvelopeAccount, ev.RecipientAccount = env.Source, env.Account, d.RecipientAccountID

	arn, err := resolveKeyARN(d, ev.Region, ev.Account)
	if err != nil {
		if ev.ErrorCode != "" {
			return ev, nil // a failed call changes nothing anyway; its key may be unresolvable
		}
		return KeyEvent{}, &MalformedError{EventID: ev.ID, What: err.Error()}
	}
	ev.KeyARN = arn
	return ev, nil
}

// resolveKeyARN follows DESIGN §4: detail.resources[].ARN (AWS::KMS::Key), then
// responseElements.keyId when it is an ARN, then requestParameters.keyId (an ARN, or a key id
// completed with the region and account). An alias cannot be resolved from the event.
func resolveKeyARN(d cloudTrailDetail, region, account string) (string, error) {
	for _, r := range d.Resources {
		if r.Type == "AWS::KMS::Key" && IsKeyARN(r.ARN) {
			return r.ARN, nil
		}
	}
	if id := keyIDOf(d.ResponseElements); IsKeyARN(id) {
		return id, nil
	}
	id := keyIDOf(d.RequestParameters)
	switch {
	case id == "":
		return "", errors.New("no key ARN in resources, responseElements or requestParameters")
	case IsKeyARN(id):
		return id, nil
	case strings.HasPrefix(id, "alias/") || strings.Contains(id, ":alias/"):
		return "", fmt.Errorf("key %q is an alias, which the event cannot resolve to a key ARN", id)
	case !keyIDPattern.MatchString(id):
		return "", fmt.Errorf("requestParameters.keyId %q is neither a key ARN nor a key id", id)
	case !regionPattern.MatchString(region):
		return "", fmt.Errorf("cannot build the ARN of key %s: no valid region (awsRegion/region %q)", id, region)
	case !accountRegexp.MatchString(account):
		return "", fmt.Errorf("cannot build the ARN of key %s: no valid account (recipientAccountId/account %q)", id, account)
	}
	return fmt.Sprintf("arn:%s:kms:%s:%s:key/%s", partition(region), region, account, id), nil
}

func keyIDOf(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var v struct {
		KeyID string `json:"keyId"`
	}
	if json.Unmarshal(raw, &v) != nil {
		return ""
	}
	return strings.TrimSpace(v.KeyID)
}

func partition(region string) string {
	switch {
	case strings.HasPrefix(region, "cn-"):
		return "aws-cn"
	case strings.HasPrefix(region, "us-gov-"):
		return "aws-us-gov"
	case strings.HasPrefix(region, "us-iso-"):
		return "aws-iso"
	case strings.HasPrefix(region, "us-isob-"):
		return "aws-iso-b"
	}
	return "aws"
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
