package eventbridge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/keyline/keyline/internal/local/eventpattern"
)

// TargetPrefix starts the X-Amz-Target header of every EventBridge operation.
const TargetPrefix = "AWSEvents."

const maxBody = 1 << 20

// ServeHTTP answers the EventBridge API in the AWS JSON 1.1 protocol
// (POST, X-Amz-Target: AWSEvents.<Operation>).
func (b *Bus) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeError(w, http.StatusMethodNotAllowed, "UnknownOperationException", "EventBridge takes POST requests.")
		return
	}
	op, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), TargetPrefix)
	if !ok {
		writeError(w, http.StatusBadRequest, "UnknownOperationException", "Missing or unknown X-Amz-Target.")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(body) > maxBody {
		writeError(w, http.StatusRequestEntityTooLarge, "ValidationException", "Request is too large.")
		return
	}
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	h, ok := b.operations()[op]
	if !ok {
		writeError(w, http.StatusBadRequest, "UnknownOperationException", fmt.Sprintf("Operation %s is not supported by the local EventBridge.", op))
		return
	}
	out, err := h(r, body)
	if err != nil {
		writeAWSError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Requestid", newID())
	json.NewEncoder(w).Encode(out)
}

type handler func(r *http.Request, body []byte) (any, error)

func (b *Bus) operations() map[string]handler {
	return map[string]handler{
		"PutEvents":         b.apiPutEvents,
		"TestEventPattern":  b.apiTestEventPattern,
		"PutRule":           b.apiPutRule,
		"DeleteRule":        b.apiDeleteRule,
		"DescribeRule":      b.apiDescribeRule,
		"ListRules":         b.apiListRules,
		"PutTargets":        b.apiPutTargets,
		"RemoveTargets":     b.apiRemoveTargets,
		"ListTargetsByRule": b.apiListTargetsByRule,
		"CreateEventBus":    b.apiCreateEventBus,
		"DescribeEventBus":  b.apiDescribeEventBus,
	}
}

// serializationError is AWS's SerializationException for a body that does not parse.
type serializationError struct{ err error }

func (e *serializationError) Error() string { return e.err.Error() }

func decode(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return &serializationError{err}
	}
	return nil
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Errortype", code)
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"__type": code, "message": msg})
}

func writeAWSError(w http.ResponseWriter, err error) {
	var ipe *eventpattern.InvalidPatternError
	var se *serializationError
	switch {
	case errors.As(err, &ipe):
		writeError(w, http.StatusBadRequest, "InvalidEventPatternException", ipe.Error())
	case errors.As(err, &se):
		writeError(w, http.StatusBadRequest, "SerializationException", "Start of structure or map found where not expected.")
	case errors.Is(err, ErrValidation):
		writeError(w, http.StatusBadRequest, "ValidationException", Message(err))
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusBadRequest, "ResourceNotFoundException", Message(err))
	case errors.Is(err, ErrAlreadyExists):
		writeError(w, http.StatusBadRequest, "ResourceAlreadyExistsException", Message(err))
	default:
		writeError(w, http.StatusInternalServerError, "InternalException", err.Error())
	}
}

type putEventsEntry struct {
	Source       string
	DetailType   string
	Detail       string
	Resources    []string
	Time         json.Number
	EventBusName string
	TraceHeader  string
}

type putEventsResultEntry struct {
	EventID      string `json:"EventId,omitempty"`
	ErrorCode    string `json:"ErrorCode,omitempty"`
	ErrorMessage string `json:"ErrorMessage,omitempty"`
}

func (b *Bus) apiPutEvents(r *http.Request, body []byte) (any, error) {
	var in struct{ Entries []putEventsEntry }
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if len(in.Entries) == 0 || len(in.Entries) > 10 {
		return nil, validationf("1 validation error detected: Value '%d' at 'entries' failed to satisfy constraint: Member must have length less than or equal to 10 and greater than or equal to 1", len(in.Entries))
	}
	out := struct {
		FailedEntryCount int
		Entries          []putEventsResultEntry
	}{Entries: []putEventsResultEntry{}}
	for _, e := range in.Entries {
		res := b.putEntry(r, e)
		if res.ErrorCode != "" {
			out.FailedEntryCount++
		}
		out.Entries = append(out.Entries, res)
	}
	return out, nil
}

// putEntry publishes one PutEvents entry, refusing what AWS refuses per entry.
func (b *Bus) putEntry(r *http.Request, e putEventsEntry) putEventsResultEntry {
	fail := func(code, msg string) putEventsResultEntry {
		return putEventsResultEntry{ErrorCode: code, ErrorMessage: msg}
	}
	switch {
	case e.Source == "":
		return fail("InvalidArgument", "Parameter Source is not valid. Reason: Source is a required argument.")
	case strings.HasPrefix(e.Source, "aws."):
		return fail("NotAuthorizedForSourceException", "Not authorized for the source.")
	case e.DetailType == "":
		return fail("InvalidArgument", "Parameter DetailType is not valid. Reason: DetailType is a required argument.")
	case e.Detail == "":
		return fail("InvalidArgument", "Parameter Detail is not valid. Reason: Detail is a required argument.")
	case !isJSONObject([]byte(e.Detail)):
		return fail("MalformedDetail", "Detail is malformed.")
	}
	ev := Event{Source: e.Source, DetailType: e.DetailType, Detail: json.RawMessage(e.Detail),
		Resources: e.Resources, EventBusName: e.EventBusName}
	if e.Time != "" {
		secs, err := e.Time.Float64()
		if err != nil || math.IsNaN(secs) || math.IsInf(secs, 0) {
			return fail("InvalidArgument", "Parameter Time is not valid.")
		}
		whole, frac := math.Modf(secs)
		ev.Time = time.Unix(int64(whole), int64(frac*1e9)).UTC()
	}
	id, err := b.publish(r.Context(), ev)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return fail("InvalidArgument", Message(err))
		}
		return fail("InternalFailure", Message(err))
	}
	return putEventsResultEntry{EventID: id}
}

func (b *Bus) apiTestEventPattern(_ *http.Request, body []byte) (any, error) {
	var in struct{ EventPattern, Event string }
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if in.EventPattern == "" || in.Event == "" {
		return nil, validationf("Parameter(s) EventPattern and Event must be specified.")
	}
	p, err := eventpattern.Compile([]byte(in.EventPattern))
	if err != nil {
		return nil, err
	}
	if eventpattern.CheckEnvelope([]byte(in.Event)) != nil {
		return nil, validationf("Parameter Event is not valid.")
	}
	ok, err := p.Match([]byte(in.Event))
	if err != nil {
		return nil, validationf("Parameter Event is not valid.")
	}
	return map[string]bool{"Result": ok}, nil
}

func (b *Bus) apiPutRule(r *http.Request, body []byte) (any, error) {
	var in struct {
		Name, EventPattern, ScheduleExpression, State, Description, EventBusName, RoleArn string
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	arn, err := b.PutRule(r.Context(), RuleInput{Name: in.Name, EventBusName: in.EventBusName, EventPattern: in.EventPattern,
		ScheduleExpression: in.ScheduleExpression, State: in.State, Description: in.Description})
	if err != nil {
		return nil, err
	}
	return map[string]string{"RuleArn": arn}, nil
}

func (b *Bus) apiDeleteRule(r *http.Request, body []byte) (any, error) {
	var in struct {
		Name, EventBusName string
		Force              bool
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	return struct{}{}, b.DeleteRule(r.Context(), in.EventBusName, in.Name, in.Force)
}

type ruleOut struct {
	Name               string
	Arn                string
	EventPattern       string `json:",omitempty"`
	ScheduleExpression string `json:",omitempty"`
	State              string
	Description        string `json:",omitempty"`
	EventBusName       string
}

func toRuleOut(r Rule) ruleOut {
	return ruleOut{Name: r.Name, Arn: r.Arn, EventPattern: r.EventPattern, ScheduleExpression: r.ScheduleExpression,
		State: r.State, Description: r.Description, EventBusName: r.EventBusName}
}

func (b *Bus) apiDescribeRule(_ *http.Request, body []byte) (any, error) {
	var in struct{ Name, EventBusName string }
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	r, err := b.DescribeRule(in.EventBusName, in.Name)
	if err != nil {
		return nil, err
	}
	return toRuleOut(r), nil
}

func (b *Bus) apiListRules(_ *http.Request, body []byte) (any, error) {
	var in struct{ NamePrefix, EventBusName string }
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	rules, err := b.ListRules(in.EventBusName, in.NamePrefix)
	if err != nil {
		return nil, err
	}
	out := struct{ Rules []ruleOut }{Rules: []ruleOut{}}
	for _, r := range rules {
		out.Rules = append(out.Rules, toRuleOut(r))
	}
	return out, nil
}

type targetIO struct {
	ID        string `json:"Id"`
	Arn       string
	Input     string `json:",omitempty"`
	InputPath string `json:",omitempty"`
	RoleArn   string `json:",omitempty"`
}

func (b *Bus) apiPutTargets(r *http.Request, body []byte) (any, error) {
	var in struct {
		Rule, EventBusName string
		Targets            []targetIO
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	ts := make([]Target, len(in.Targets))
	for i, t := range in.Targets {
		ts[i] = Target{ID: t.ID, Arn: t.Arn, Input: t.Input, InputPath: t.InputPath}
	}
	if err := b.PutTargets(r.Context(), in.EventBusName, in.Rule, ts); err != nil {
		return nil, err
	}
	return map[string]any{"FailedEntryCount": 0, "FailedEntries": []any{}}, nil
}

func (b *Bus) apiRemoveTargets(r *http.Request, body []byte) (any, error) {
	var in struct {
		Rule, EventBusName string
		Ids                []string
		Force              bool
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if err := b.RemoveTargets(r.Context(), in.EventBusName, in.Rule, in.Ids); err != nil {
		return nil, err
	}
	return map[string]any{"FailedEntryCount": 0, "FailedEntries": []any{}}, nil
}

func (b *Bus) apiListTargetsByRule(_ *http.Request, body []byte) (any, error) {
	var in struct{ Rule, EventBusName string }
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	ts, err := b.ListTargetsByRule(in.EventBusName, in.Rule)
	if err != nil {
		return nil, err
	}
	out := struct{ Targets []targetIO }{Targets: []targetIO{}}
	for _, t := range ts {
		out.Targets = append(out.Targets, targetIO{ID: t.ID, Arn: t.Arn, Input: t.Input, InputPath: t.InputPath})
	}
	return out, nil
}

func (b *Bus) apiCreateEventBus(_ *http.Request, body []byte) (any, error) {
	var in struct{ Name string }
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	arn, err := b.CreateEventBus(in.Name)
	if err != nil {
		return nil, err
	}
	return map[string]string{"EventBusArn": arn}, nil
}

func (b *Bus) apiDescribeEventBus(_ *http.Request, body []byte) (any, error) {
	var in struct{ Name string }
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	arn, err := b.DescribeEventBus(in.Name)
	if err != nil {
		return nil, err
	}
	name := b.busName(in.Name)
	return map[string]string{"Name": name, "Arn": arn}, nil
}
