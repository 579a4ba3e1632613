package stepfunctions

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/keyline/keyline/internal/local/states"
)

const targetPrefix = "AWSStepFunctions."

// ServeHTTP serves the Step Functions API (AWS JSON 1.0, X-Amz-Target: AWSStepFunctions.<Op>).
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeErr(w, apiErr("UnknownOperationException", ErrValidation, "Step Functions operations are POST requests"))
		return
	}
	op, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), targetPrefix)
	if !ok {
		writeErr(w, apiErr("UnknownOperationException", ErrValidation, "missing or unknown X-Amz-Target"))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	if err != nil {
		writeErr(w, apiErr("SerializationException", ErrValidation, "cannot read the request body"))
		return
	}
	if len(body) == 0 {
		body = []byte("{}")
	}
	var out any
	switch op {
	case "CreateStateMachine":
		out, err = s.apiCreateStateMachine(body)
	case "DescribeStateMachine":
		out, err = s.apiDescribeStateMachine(body)
	case "ListStateMachines":
		out, err = s.apiListStateMachines(body)
	case "StartExecution":
		out, err = s.apiStartExecution(r, body)
	case "DescribeExecution":
		out, err = s.apiDescribeExecution(body)
	case "GetExecutionHistory":
		out, err = s.apiGetExecutionHistory(body)
	case "ListExecutions":
		out, err = s.apiListExecutions(body)
	case "StopExecution":
		out, err = s.apiStopExecution(body)
	case "SendTaskSuccess", "SendTaskFailure", "SendTaskHeartbeat":
		out, err = s.apiSendTask(op, body)
	default:
		err = apiErr("UnknownOperationException", ErrValidation, "operation %s is not supported", op)
	}
	if err != nil {
		s.log.Debug("stepfunctions API error", "op", op, "err", err)
		writeErr(w, err)
		return
	}
	b, merr := json.Marshal(out)
	if merr != nil {
		writeErr(w, merr)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.Header().Set("x-amzn-RequestId", newUUID())
	_, _ = w.Write(b)
}

func writeErr(w http.ResponseWriter, err error) {
	var ae *APIError
	status := http.StatusBadRequest
	if !errors.As(err, &ae) {
		ae = &APIError{Code: "InternalFailure", Message: err.Error()}
		status = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.Header().Set("X-Amzn-ErrorType", ae.Code)
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]string{"__type": ae.Code, "message": ae.Message})
	_, _ = w.Write(b)
}

func decode(body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		return apiErr("SerializationException", ErrValidation, "cannot parse the request: %v", err)
	}
	return nil
}

func epoch(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }

func required(field, v string) error {
	if v == "" {
		return apiErr("ValidationException", ErrValidation, "1 validation error detected: Value null at '%s' failed to satisfy constraint: Member must not be null", field)
	}
	return nil
}

func (s *Service) apiCreateStateMachine(body []byte) (any, error) {
	var in struct {
		Name       string `json:"name"`
		Definition string `json:"definition"`
		RoleArn    string `json:"roleArn"`
		Type       string `json:"type"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	for f, v := range map[string]string{"name": in.Name, "definition": in.Definition, "roleArn": in.RoleArn} {
		if err := required(f, v); err != nil {
			return nil, err
		}
	}
	if in.Type != "" && in.Type != "STANDARD" {
		return nil, apiErr("ValidationException", ErrValidation, "only STANDARD state machines are supported")
	}
	arn, err := s.createStateMachine(in.Name, in.Definition, in.RoleArn, false)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	created := s.machines[arn].CreationDate
	s.mu.Unlock()
	return map[string]any{"stateMachineArn": arn, "creationDate": epoch(created)}, nil
}

func (s *Service) machine(arn string) (*stateMachine, error) {
	if err := required("stateMachineArn", arn); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sm, ok := s.machines[arn]
	if !ok {
		if !strings.HasPrefix(arn, "arn:") {
			return nil, apiErr("InvalidArn", ErrInvalidArn, "Invalid Arn: '%s'", arn)
		}
		return nil, apiErr("StateMachineDoesNotExist", ErrStateMachineDoesNotExist, "State Machine Does Not Exist: '%s'", arn)
	}
	return sm, nil
}

func (s *Service) apiDescribeStateMachine(body []byte) (any, error) {
	var in struct {
		StateMachineArn string `json:"stateMachineArn"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	sm, err := s.machine(in.StateMachineArn)
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"stateMachineArn": sm.Arn, "name": sm.Name, "status": "ACTIVE", "definition": sm.Definition,
		"roleArn": sm.RoleArn, "type": sm.Type, "creationDate": epoch(sm.CreationDate),
		"loggingConfiguration": map[string]any{"level": "OFF", "includeExecutionData": false},
	}, nil
}

// page slices n items by a nextToken (an opaque offset) and maxResults.
func page(n int, token string, maxResults, def int) (int, int, string, error) {
	start := 0
	if token != "" {
		b, err := base64.RawURLEncoding.DecodeString(token)
		i, perr := strconv.Atoi(string(b))
		if err != nil || perr != nil || i < 0 || i > n {
			return 0, 0, "", apiErr("InvalidToken", ErrValidation, "Invalid Token: '%s'", token)
		}
		start = i
	}
	if maxResults <= 0 {
		maxResults = def
	}
	if maxResults > 1000 {
		maxResults = 1000
	}
	end := min(n, start+maxResults)
	next := ""
	if end < n {
		next = base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(end)))
	}
	return start, end, next, nil
}

func (s *Service) apiListStateMachines(body []byte) (any, error) {
	var in struct {
		MaxResults int    `json:"maxResults"`
		NextToken  string `json:"nextToken"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	list := make([]*stateMachine, 0, len(s.machines))
	for _, sm := range s.machines {
		list = append(list, sm)
	}
	s.mu.Unlock()
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	start, end, next, err := page(len(list), in.NextToken, in.MaxResults, 100)
	if err != nil {
		return nil, err
	}
	items := []any{}
	for _, sm := range list[start:end] {
		items = append(items, map[string]any{"stateMachineArn": sm.Arn, "name": sm.Name, "type": sm.Type, "creationDate": epoch(sm.CreationDate)})
	}
	out := map[string]any{"stateMachines": items}
	if next != "" {
		out["nextToken"] = next
	}
	return out, nil
}

func (s *Service) apiStartExecution(r *http.Request, body []byte) (any, error) {
	var in struct {
		StateMachineArn string  `json:"stateMachineArn"`
		Name            string  `json:"name"`
		Input           *string `json:"input"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if err := required("stateMachineArn", in.StateMachineArn); err != nil {
		return nil, err
	}
	var input []byte
	if in.Input != nil {
		input = []byte(*in.Input)
	}
	arn, err := s.StartExecution(r.Context(), in.StateMachineArn, in.Name, input)
	if err != nil {
		return nil, err
	}
	x, err := s.getExec(arn)
	if err != nil {
		return nil, err
	}
	return map[string]any{"executionArn": arn, "startDate": epoch(x.StartDate)}, nil
}

func (s *Service) apiDescribeExecution(body []byte) (any, error) {
	var in struct {
		ExecutionArn string `json:"executionArn"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if err := required("executionArn", in.ExecutionArn); err != nil {
		return nil, err
	}
	d, err := s.DescribeExecution(in.ExecutionArn)
	if err != nil {
		return nil, err
	}
	out := map[string]any{
		"executionArn": d.ExecutionArn, "stateMachineArn": d.StateMachineArn, "name": d.Name, "status": d.Status,
		"startDate": epoch(d.StartDate), "input": string(d.Input), "inputDetails": map[string]any{"included": true},
		"redriveCount": 0, "redriveStatus": "NOT_REDRIVABLE",
	}
	if d.Status != states.StatusRunning {
		out["stopDate"] = epoch(d.StopDate)
	}
	if d.Status == states.StatusSucceeded {
		out["output"] = string(d.Output)
		out["outputDetails"] = map[string]any{"included": true}
	}
	if d.Error != "" {
		out["error"] = d.Error
	}
	if d.Cause != "" {
		out["cause"] = d.Cause
	}
	return out, nil
}

func (s *Service) apiGetExecutionHistory(body []byte) (any, error) {
	var in struct {
		ExecutionArn         string `json:"executionArn"`
		MaxResults           int    `json:"maxResults"`
		NextToken            string `json:"nextToken"`
		ReverseOrder         bool   `json:"reverseOrder"`
		IncludeExecutionData *bool  `json:"includeExecutionData"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if err := required("executionArn", in.ExecutionArn); err != nil {
		return nil, err
	}
	x, err := s.getExec(in.ExecutionArn)
	if err != nil {
		return nil, err
	}
	x.mu.Lock()
	evs := append([]states.Event(nil), x.Events...)
	x.mu.Unlock()
	if in.ReverseOrder {
		for i, j := 0, len(evs)-1; i < j; i, j = i+1, j-1 {
			evs[i], evs[j] = evs[j], evs[i]
		}
	}
	start, end, next, err := page(len(evs), in.NextToken, in.MaxResults, 100)
	if err != nil {
		return nil, err
	}
	includeData := in.IncludeExecutionData == nil || *in.IncludeExecutionData
	items := make([]any, 0, end-start)
	for _, ev := range evs[start:end] {
		o := map[string]any{"id": ev.ID, "previousEventId": ev.PreviousEventID, "timestamp": epoch(ev.Timestamp), "type": ev.Type}
		if ev.DetailsKey != "" {
			d := ev.Details
			if !includeData {
				d = make(map[string]any, len(ev.Details))
				for k, v := range ev.Details {
					if k != "input" && k != "output" {
						d[k] = v
					}
				}
			}
			o[ev.DetailsKey] = d
		}
		items = append(items, o)
	}
	out := map[string]any{"events": items}
	if next != "" {
		out["nextToken"] = next
	}
	return out, nil
}

func (s *Service) apiListExecutions(body []byte) (any, error) {
	var in struct {
		StateMachineArn string `json:"stateMachineArn"`
		StatusFilter    string `json:"statusFilter"`
		MaxResults      int    `json:"maxResults"`
		NextToken       string `json:"nextToken"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if _, err := s.machine(in.StateMachineArn); err != nil {
		return nil, err
	}
	switch in.StatusFilter {
	case "", states.StatusRunning, states.StatusSucceeded, states.StatusFailed, states.StatusTimedOut, states.StatusAborted, "PENDING_REDRIVE":
	default:
		return nil, apiErr("ValidationException", ErrValidation, "1 validation error detected: Value '%s' at 'statusFilter' failed to satisfy constraint: Member must satisfy enum value set: [SUCCEEDED, TIMED_OUT, PENDING_REDRIVE, ABORTED, FAILED, RUNNING]", in.StatusFilter)
	}
	type row struct {
		arn, name, status string
		start, stop       time.Time
	}
	var rows []row
	s.mu.Lock()
	for _, x := range s.execs {
		if x.StateMachineArn != in.StateMachineArn {
			continue
		}
		x.mu.Lock()
		r := row{x.Arn, x.Name, x.Status, x.StartDate, x.StopDate}
		x.mu.Unlock()
		if in.StatusFilter == "" || r.status == in.StatusFilter {
			rows = append(rows, r)
		}
	}
	s.mu.Unlock()
	sort.Slice(rows, func(i, j int) bool {
		if !rows[i].start.Equal(rows[j].start) {
			return rows[i].start.After(rows[j].start)
		}
		return rows[i].arn > rows[j].arn
	})
	start, end, next, err := page(len(rows), in.NextToken, in.MaxResults, 100)
	if err != nil {
		return nil, err
	}
	items := []any{}
	for _, r := range rows[start:end] {
		o := map[string]any{"executionArn": r.arn, "stateMachineArn": in.StateMachineArn, "name": r.name, "status": r.status, "startDate": epoch(r.start)}
		if r.status != states.StatusRunning {
			o["stopDate"] = epoch(r.stop)
		}
		items = append(items, o)
	}
	out := map[string]any{"executions": items}
	if next != "" {
		out["nextToken"] = next
	}
	return out, nil
}

func (s *Service) apiStopExecution(body []byte) (any, error) {
	var in struct {
		ExecutionArn string `json:"executionArn"`
		Error        string `json:"error"`
		Cause        string `json:"cause"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if err := required("executionArn", in.ExecutionArn); err != nil {
		return nil, err
	}
	stop, err := s.StopExecution(in.ExecutionArn, in.Error, in.Cause)
	if err != nil {
		return nil, err
	}
	return map[string]any{"stopDate": epoch(stop)}, nil
}

func (s *Service) apiSendTask(op string, body []byte) (any, error) {
	var in struct {
		TaskToken string `json:"taskToken"`
		Output    string `json:"output"`
		Error     string `json:"error"`
		Cause     string `json:"cause"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if err := required("taskToken", in.TaskToken); err != nil {
		return nil, err
	}
	var err error
	switch op {
	case "SendTaskSuccess":
		if err := required("output", in.Output); err != nil {
			return nil, err
		}
		err = s.SendTaskSuccess(in.TaskToken, []byte(in.Output))
	case "SendTaskFailure":
		err = s.SendTaskFailure(in.TaskToken, in.Error, in.Cause)
	default:
		err = s.SendTaskHeartbeat(in.TaskToken)
	}
	if err != nil {
		return nil, err
	}
	return map[string]any{}, nil
}
