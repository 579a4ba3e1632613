// Package states interprets the Amazon States Language (JSONPath query language): it parses and
// validates a state machine definition into a Machine and executes it, emitting the history
// events AWS Step Functions emits and checkpointing after each top-level state so an execution
// can resume after a restart.
package states

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// ErrInvalidDefinition is matched (errors.Is) by every *ValidationError.
var ErrInvalidDefinition = errors.New("invalid state machine definition")

// ValidationError lists every problem found in a definition.
type ValidationError struct {
	Problems []string
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("invalid state machine definition: %d problem(s): %s", len(e.Problems), strings.Join(e.Problems, "; "))
}

// Is makes errors.Is(err, ErrInvalidDefinition) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalidDefinition }

// Machine is a parsed, validated state machine (or a Parallel branch / Map processor).
type Machine struct {
	Comment        string
	StartAt        string
	States         map[string]*State
	TimeoutSeconds int64
	order          []string
}

// StateNames lists the machine's top-level state names in definition order.
func (m *Machine) StateNames() []string { return append([]string(nil), m.order...) }

// optPath is a path field that may be absent (default $), null, or a path.
type optPath struct {
	null bool
	e    expr // nil when absent
	src  string
}

type retrier struct {
	ErrorEquals     []string
	IntervalSeconds float64
	MaxAttempts     int
	BackoffRate     float64
	MaxDelaySeconds float64
	JitterFull      bool
}

type catcher struct {
	ErrorEquals []string
	Next        string
	ResultPath  optPath
}

// State is one state of a Machine.
type State struct {
	Name    string
	Type    string
	Comment string
	Next    string
	End     bool

	InputPath, OutputPath, ResultPath optPath
	Parameters, ResultSelector        tmpl
	Result                            any
	hasResult                         bool

	// Task
	Resource                                 string
	TimeoutSeconds, HeartbeatSeconds         int64
	TimeoutSecondsPath, HeartbeatSecondsPath expr
	Credentials                              any

	// Choice
	Choices    []*rule
	Default    string
	choicesCtx bool // some rule reads the context object

	// Wait
	Seconds       *int64
	SecondsPath   expr
	Timestamp     string
	TimestampPath expr

	// Fail
	Error, Cause         string
	hasError, hasCause   bool
	ErrorPath, CausePath expr

	// Parallel
	Branches []*Machine

	// Map
	Processor                      *Machine
	Distributed                    bool
	ItemsPath                      optPath
	ItemSelector                   tmpl
	MaxConcurrency                 int64
	MaxConcurrencyPath             expr
	ToleratedFailurePercentage     *float64
	ToleratedFailurePercentagePath expr
	ToleratedFailureCount          *int64
	ToleratedFailureCountPath      expr
	ItemReader                     *itemReader
	ItemBatcher                    *itemBatcher
	Label                          string

	Retry []retrier
	Catch []catcher
}

type itemReader struct {
	Resource   string
	Parameters tmpl
	InputType  string
	MaxItems   int64
	CSVHeaders []string
}

type itemBatcher struct {
	MaxItemsPerBatch      int64
	MaxInputBytesPerBatch int64
	BatchInput            tmpl
}

var stateFields = map[string][]string{
	"Pass":     {"Type", "Comment", "Next", "End", "InputPath", "OutputPath", "ResultPath", "Parameters", "Result"},
	"Task":     {"Type", "Comment", "Next", "End", "InputPath", "OutputPath", "ResultPath", "Parameters", "ResultSelector", "Resource", "TimeoutSeconds", "TimeoutSecondsPath", "HeartbeatSeconds", "HeartbeatSecondsPath", "Retry", "Catch", "Credentials"},
	"Choice":   {"Type", "Comment", "InputPath", "OutputPath", "Choices", "Default"},
	"Wait":     {"Type", "Comment", "Next", "End", "InputPath", "OutputPath", "Seconds", "SecondsPath", "Timestamp", "TimestampPath"},
	"Succeed":  {"Type", "Comment", "InputPath", "OutputPath"},
	"Fail":     {"Type", "Comment", "Error", "ErrorPath", "Cause", "CausePath"},
	"Parallel": {"Type", "Comment", "Next", "End", "InputPath", "OutputPath", "ResultPath", "Parameters", "ResultSelector", "Branches", "Retry", "Catch"},
	"Map": {"Type", "Comment", "Next", "End", "InputPath", "OutputPath", "ResultPath", "Parameters", "ResultSelector", "ItemsPath", "ItemSelector",
		"Iterator", "ItemProcessor", "MaxConcurrency", "MaxConcurrencyPath", "ToleratedFailurePercentage", "ToleratedFailurePercentagePath",
		"ToleratedFailureCount", "ToleratedFailureCountPath", "ItemReader", "ItemBatcher", "ResultWriter", "Label", "Retry", "Catch"},
}

// Parse parses and validates an ASL definition (JSONPath query language). Every problem found is
// listed in the returned *ValidationError.
func Parse(def []byte) (*Machine, error) {
	v, err := decodeJSON(def)
	if err != nil {
		return nil, &ValidationError{Problems: []string{"the definition is not valid JSON: " + err.Error()}}
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, &ValidationError{Problems: []string{"the definition must be a JSON object"}}
	}
	p := &vparser{}
	if ql, ok := obj["QueryLanguage"]; ok && ql != "JSONPath" {
		p.add("/", "QueryLanguage %v is not supported (only JSONPath)", ql)
	}
	m := p.machine(obj, "", true, 0)
	if len(p.problems) > 0 {
		return nil, &ValidationError{Problems: p.problems}
	}
	return m, nil
}

type vparser struct {
	problems []string
}

func (p *vparser) add(where, format string, a ...any) {
	if len(p.problems) >= 200 {
		return
	}
	if where == "" {
		where = "/"
	}
	p.problems = append(p.problems, where+": "+fmt.Sprintf(format, a...))
}

func (p *vparser) machine(obj map[string]any, where string, top bool, depth int) *Machine {
	m := &Machine{States: map[string]*State{}}
	if depth > 40 {
		p.add(where, "state machines nested too deeply")
		return m
	}
	allowed := map[string]bool{"StartAt": true, "States": true, "Comment": true, "Version": true, "TimeoutSeconds": true, "ProcessorConfig": !top, "QueryLanguage": true}
	for k := range obj {
		if !allowed[k] {
			p.add(where, "unknown field %q", k)
		}
	}
	m.Comment = p.str(obj, "Comment", where, false)
	if v, ok := obj["Version"]; ok {
		if s, _ := v.(string); s != "1.0" {
			p.add(where+"/Version", "must be \"1.0\"")
		}
	}
	if _, ok := obj["TimeoutSeconds"]; ok {
		m.TimeoutSeconds = p.posInt(obj, "TimeoutSeconds", where)
	}
	m.StartAt = p.str(obj, "StartAt", where, true)
	states, ok := obj["States"].(map[string]any)
	if !ok {
		p.add(where, "missing or invalid field \"States\" (an object)")
		return m
	}
	if len(states) == 0 {
		p.add(where+"/States", "must contain at least one state")
	}
	names := make([]string, 0, len(states))
	for name := range states {
		names = append(names, name)
	}
	sort.Strings(names)
	m.order = names
	for _, name := range names {
		w := where + "/States/" + name
		if len(name) == 0 || len(name) > 80 {
			p.add(w, "a state name must be 1 to 80 characters")
		}
		so, ok := states[name].(map[string]any)
		if !ok {
			p.add(w, "a state must be an object")
			continue
		}
		m.States[name] = p.state(name, so, w, depth)
	}
	if m.StartAt != "" {
		if _, ok := m.States[m.StartAt]; !ok {
			p.add(where+"/StartAt", "state %q does not exist", m.StartAt)
		}
	}
	for _, name := range names {
		s := m.States[name]
		if s == nil {
			continue
		}
		w := where + "/States/" + name
		check := func(field, target string) {
			if target == "" {
				return
			}
			if _, ok := m.States[target]; !ok {
				p.add(w+"/"+field, "state %q does not exist", target)
			}
		}
		check("Next", s.Next)
		check("Default", s.Default)
		for i, r := range s.Choices {
			check(fmt.Sprintf("Choices[%d]/Next", i), r.Next)
		}
		for i, c := range s.Catch {
			check(fmt.Sprintf("Catch[%d]/Next", i), c.Next)
		}
	}
	return m
}

func (p *vparser) str(obj map[string]any, key, where string, required bool) string {
	v, ok := obj[key]
	if !ok {
		if required {
			p.add(where, "missing required field %q", key)
		}
		return ""
	}
	s, ok := v.(string)
	if !ok {
		p.add(where+"/"+key, "must be a string")
		return ""
	}
	if required && s == "" {
		p.add(where+"/"+key, "must not be empty")
	}
	return s
}

func (p *vparser) posInt(obj map[string]any, key, where string) int64 {
	i, ok := toInt(obj[key])
	if !ok || i < 0 {
		p.add(where+"/"+key, "must be a non-negative integer")
		return 0
	}
	return i
}

func (p *vparser) path(obj map[string]any, key, where string, allowIntrinsic bool) optPath {
	v, ok := obj[key]
	if !ok {
		return optPath{}
	}
	if v == nil {
		return optPath{null: true}
	}
	s, ok := v.(string)
	if !ok {
		p.add(where+"/"+key, "must be a JSONPath string or null")
		return optPath{}
	}
	e := p.expr(s, where+"/"+key, allowIntrinsic)
	if e == nil {
		return optPath{}
	}
	return optPath{e: e, src: s}
}

func (p *vparser) expr(s, where string, allowIntrinsic bool) expr {
	if allowIntrinsic && strings.HasPrefix(s, "States.") {
		e, err := compileIntrinsic(s)
		if err != nil {
			p.add(where, "%v", err)
			return nil
		}
		return e
	}
	if !strings.HasPrefix(s, "$") {
		p.add(where, "%q is not a valid JSONPath", s)
		return nil
	}
	e, err := compilePath(s)
	if err != nil {
		p.add(where, "%v", err)
		return nil
	}
	return e
}

func (p *vparser) refPath(obj map[string]any, key, where string) optPath {
	op := p.path(obj, key, where, false)
	if pe, ok := op.e.(*pathExpr); ok {
		if pe.ctx || !pe.p.IsReference() {
			p.add(where+"/"+key, "%q must be a reference path (names and indexes only, on $)", op.src)
		}
	}
	return op
}

func (p *vparser) state(name string, obj map[string]any, where string, depth int) *State {
	s := &State{Name: name}
	typ, _ := obj["Type"].(string)
	s.Type = typ
	fields, ok := stateFields[typ]
	if !ok {
		p.add(where, "missing or unknown Type %v", obj["Type"])
		return s
	}
	allowed := map[string]bool{}
	for _, f := range fields {
		allowed[f] = true
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !allowed[k] {
			p.add(where, "field %q is not allowed in a %s state", k, typ)
		}
	}
	s.Comment = p.str(obj, "Comment", where, false)
	terminal := typ == "Choice" || typ == "Succeed" || typ == "Fail"
	if !terminal {
		s.Next = p.str(obj, "Next", where, false)
		if v, ok := obj["End"]; ok {
			b, isBool := v.(bool)
			if !isBool {
				p.add(where+"/End", "must be a boolean")
			}
			s.End = b
		}
		switch {
		case s.Next != "" && s.End:
			p.add(where, "has both Next and End")
		case s.Next == "" && !s.End:
			p.add(where, "needs Next or End: true")
		}
	}
	s.InputPath = p.path(obj, "InputPath", where, false)
	s.OutputPath = p.path(obj, "OutputPath", where, false)
	s.ResultPath = p.refPath(obj, "ResultPath", where)
	if v, ok := obj["Parameters"]; ok {
		s.Parameters = p.template(v, where+"/Parameters", 0)
	}
	if v, ok := obj["ResultSelector"]; ok {
		s.ResultSelector = p.template(v, where+"/ResultSelector", 0)
	}
	if v, ok := obj["Result"]; ok {
		s.Result, s.hasResult = v, true
	}
	s.Retry = p.retriers(obj, where)
	s.Catch = p.catchers(obj, where)

	switch typ {
	case "Task":
		s.Resource = p.str(obj, "Resource", where, true)
		if s.Resource != "" && !strings.HasPrefix(s.Resource, "arn:") {
			p.add(where+"/Resource", "%q is not an ARN", s.Resource)
		}
		p.timeouts(s, obj, where)
		s.Credentials = obj["Credentials"]
	case "Choice":
		s.Default = p.str(obj, "Default", where, false)
		arr, ok := obj["Choices"].([]any)
		if !ok || len(arr) == 0 {
			p.add(where, "a Choice state needs a non-empty Choices array")
		}
		for i, c := range arr {
			w := fmt.Sprintf("%s/Choices[%d]", where, i)
			co, ok := c.(map[string]any)
			if !ok {
				p.add(w, "must be an object")
				continue
			}
			r := p.rule(co, w, true, 0)
			if r != nil {
				s.Choices = append(s.Choices, r)
				s.choicesCtx = s.choicesCtx || r.usesCtx()
			}
		}
	case "Wait":
		n := 0
		if v, ok := obj["Seconds"]; ok {
			n++
			i, ok := toInt(v)
			if !ok || i < 0 {
				p.add(where+"/Seconds", "must be a non-negative integer")
			}
			s.Seconds = &i
		}
		if v, ok := obj["SecondsPath"]; ok {
			n++
			if str, ok := v.(string); ok {
				s.SecondsPath = p.expr(str, where+"/SecondsPath", false)
			} else {
				p.add(where+"/SecondsPath", "must be a JSONPath")
			}
		}
		if v, ok := obj["Timestamp"]; ok {
			n++
			str, _ := v.(string)
			if _, err := parseTimestamp(str); err != nil {
				p.add(where+"/Timestamp", "must be an RFC3339 timestamp")
			}
			s.Timestamp = str
		}
		if v, ok := obj["TimestampPath"]; ok {
			n++
			if str, ok := v.(string); ok {
				s.TimestampPath = p.expr(str, where+"/TimestampPath", false)
			} else {
				p.add(where+"/TimestampPath", "must be a JSONPath")
			}
		}
		if n != 1 {
			p.add(where, "a Wait state needs exactly one of Seconds, SecondsPath, Timestamp, TimestampPath")
		}
	case "Fail":
		if _, ok := obj["Error"]; ok {
			s.Error, s.hasError = p.str(obj, "Error", where, false), true
		}
		if _, ok := obj["Cause"]; ok {
			s.Cause, s.hasCause = p.str(obj, "Cause", where, false), true
		}
		if v, ok := obj["ErrorPath"]; ok {
			if s.hasError {
				p.add(where, "Error and ErrorPath are exclusive")
			}
			if str, ok := v.(string); ok {
				s.ErrorPath = p.expr(str, where+"/ErrorPath", true)
			} else {
				p.add(where+"/ErrorPath", "must be a string")
			}
		}
		if v, ok := obj["CausePath"]; ok {
			if s.hasCause {
				p.add(where, "Cause and CausePath are exclusive")
			}
			if str, ok := v.(string); ok {
				s.CausePath = p.expr(str, where+"/CausePath", true)
			} else {
				p.add(where+"/CausePath", "must be a string")
			}
		}
	case "Parallel":
		arr, ok := obj["Branches"].([]any)
		if !ok || len(arr) == 0 {
			p.add(where, "a Parallel state needs a non-empty Branches array")
		}
		for i, b := range arr {
			w := fmt.Sprintf("%s/Branches[%d]", where, i)
			bo, ok := b.(map[string]any)
			if !ok {
				p.add(w, "must be an object")
				continue
			}
			s.Branches = append(s.Branches, p.machine(bo, w, false, depth+1))
		}
	case "Map":
		p.mapState(s, obj, where, depth)
	}
	return s
}

func (p *vparser) timeouts(s *State, obj map[string]any, where string) {
	if _, ok := obj["TimeoutSeconds"]; ok {
		s.TimeoutSeconds = p.posInt(obj, "TimeoutSeconds", where)
		if s.TimeoutSeconds == 0 {
			p.add(where+"/TimeoutSeconds", "must be a positive integer")
		}
	}
	if _, ok := obj["HeartbeatSeconds"]; ok {
		s.HeartbeatSeconds = p.posInt(obj, "HeartbeatSeconds", where)
		if s.HeartbeatSeconds == 0 {
			p.add(where+"/HeartbeatSeconds", "must be a positive integer")
		}
	}
	if s.TimeoutSeconds > 0 && s.HeartbeatSeconds > 0 && s.HeartbeatSeconds >= s.TimeoutSeconds {
		p.add(where, "HeartbeatSeconds must be smaller than TimeoutSeconds")
	}
	if v, ok := obj["TimeoutSecondsPath"]; ok {
		if _, dup := obj["TimeoutSeconds"]; dup {
			p.add(where, "TimeoutSeconds and TimeoutSecondsPath are exclusive")
		}
		str, _ := v.(string)
		s.TimeoutSecondsPath = p.expr(str, where+"/TimeoutSecondsPath", false)
	}
	if v, ok := obj["HeartbeatSecondsPath"]; ok {
		if _, dup := obj["HeartbeatSeconds"]; dup {
			p.add(where, "HeartbeatSeconds and HeartbeatSecondsPath are exclusive")
		}
		str, _ := v.(string)
		s.HeartbeatSecondsPath = p.expr(str, where+"/HeartbeatSecondsPath", false)
	}
}

func (p *vparser) mapState(s *State, obj map[string]any, where string, depth int) {
	s.ItemsPath = p.path(obj, "ItemsPath", where, false)
	if s.ItemsPath.null {
		p.add(where+"/ItemsPath", "must not be null")
	}
	_, hasIter := obj["Iterator"]
	_, hasProc := obj["ItemProcessor"]
	switch {
	case hasIter && hasProc:
		p.add(where, "Iterator and ItemProcessor are exclusive")
	case !hasIter && !hasProc:
		p.add(where, "a Map state needs ItemProcessor (or Iterator)")
	}
	key := "ItemProcessor"
	if hasIter {
		key = "Iterator"
	}
	if po, ok := obj[key].(map[string]any); ok {
		s.Processor = p.machine(po, where+"/"+key, false, depth+1)
		if pc, ok := po["ProcessorConfig"]; ok {
			pco, ok := pc.(map[string]any)
			if !ok {
				p.add(where+"/"+key+"/ProcessorConfig", "must be an object")
			} else {
				switch mode := pco["Mode"]; mode {
				case nil, "INLINE":
				case "DISTRIBUTED":
					s.Distributed = true
					if et, ok := pco["ExecutionType"]; ok && et != "STANDARD" && et != "EXPRESS" {
						p.add(where+"/"+key+"/ProcessorConfig/ExecutionType", "must be STANDARD or EXPRESS")
					}
				default:
					p.add(where+"/"+key+"/ProcessorConfig/Mode", "must be INLINE or DISTRIBUTED")
				}
			}
		}
	} else if hasIter || hasProc {
		p.add(where+"/"+key, "must be an object")
	}
	if v, ok := obj["ItemSelector"]; ok {
		if _, dup := obj["Parameters"]; dup {
			p.add(where, "ItemSelector and Parameters are exclusive")
		}
		s.ItemSelector = p.template(v, where+"/ItemSelector", 0)
	} else if s.Parameters != nil {
		// In a Map state, Parameters is the legacy name of ItemSelector.
		s.ItemSelector, s.Parameters = s.Parameters, nil
	}
	if _, ok := obj["MaxConcurrency"]; ok {
		s.MaxConcurrency = p.posInt(obj, "MaxConcurrency", where)
	}
	if v, ok := obj["MaxConcurrencyPath"]; ok {
		if _, dup := obj["MaxConcurrency"]; dup {
			p.add(where, "MaxConcurrency and MaxConcurrencyPath are exclusive")
		}
		str, _ := v.(string)
		s.MaxConcurrencyPath = p.expr(str, where+"/MaxConcurrencyPath", false)
	}
	if v, ok := obj["ToleratedFailurePercentage"]; ok {
		f, ok := toFloat(v)
		if !ok || f < 0 || f > 100 {
			p.add(where+"/ToleratedFailurePercentage", "must be a number from 0 to 100")
		}
		s.ToleratedFailurePercentage = &f
	}
	if v, ok := obj["ToleratedFailurePercentagePath"]; ok {
		str, _ := v.(string)
		s.ToleratedFailurePercentagePath = p.expr(str, where+"/ToleratedFailurePercentagePath", false)
	}
	if _, ok := obj["ToleratedFailureCount"]; ok {
		n := p.posInt(obj, "ToleratedFailureCount", where)
		s.ToleratedFailureCount = &n
	}
	if v, ok := obj["ToleratedFailureCountPath"]; ok {
		str, _ := v.(string)
		s.ToleratedFailureCountPath = p.expr(str, where+"/ToleratedFailureCountPath", false)
	}
	if v, ok := obj["Label"]; ok {
		s.Label, _ = v.(string)
	}
	if v, ok := obj["ItemReader"]; ok {
		ro, ok := v.(map[string]any)
		if !ok {
			p.add(where+"/ItemReader", "must be an object")
		} else {
			r := &itemReader{Resource: p.str(ro, "Resource", where+"/ItemReader", true)}
			if pv, ok := ro["Parameters"]; ok {
				r.Parameters = p.template(pv, where+"/ItemReader/Parameters", 0)
			}
			if rc, ok := ro["ReaderConfig"].(map[string]any); ok {
				r.InputType, _ = rc["InputType"].(string)
				if mi, ok := rc["MaxItems"]; ok {
					n, ok := toInt(mi)
					if !ok || n < 0 {
						p.add(where+"/ItemReader/ReaderConfig/MaxItems", "must be a non-negative integer")
					}
					r.MaxItems = n
				}
			}
			switch r.Resource {
			case "arn:aws:states:::s3:listObjectsV2", "arn:aws:states:::s3:getObject":
			case "":
			default:
				p.add(where+"/ItemReader/Resource", "unsupported ItemReader resource %q", r.Resource)
			}
			if !s.Distributed {
				p.add(where+"/ItemReader", "ItemReader needs a DISTRIBUTED ItemProcessor")
			}
			s.ItemReader = r
		}
	}
	if v, ok := obj["ItemBatcher"]; ok {
		bo, ok := v.(map[string]any)
		if !ok {
			p.add(where+"/ItemBatcher", "must be an object")
		} else {
			b := &itemBatcher{}
			if _, ok := bo["MaxItemsPerBatch"]; ok {
				b.MaxItemsPerBatch = p.posInt(bo, "MaxItemsPerBatch", where+"/ItemBatcher")
			}
			if _, ok := bo["MaxInputBytesPerBatch"]; ok {
				b.MaxInputBytesPerBatch = p.posInt(bo, "MaxInputBytesPerBatch", where+"/ItemBatcher")
			}
			if bi, ok := bo["BatchInput"]; ok {
				b.BatchInput = p.template(bi, where+"/ItemBatcher/BatchInput", 0)
			}
			if !s.Distributed {
				p.add(where+"/ItemBatcher", "ItemBatcher needs a DISTRIBUTED ItemProcessor")
			}
			s.ItemBatcher = b
		}
	}
}

func (p *vparser) errorEquals(o map[string]any, where string) []string {
	arr, ok := o["ErrorEquals"].([]any)
	if !ok || len(arr) == 0 {
		p.add(where, "ErrorEquals must be a non-empty array of strings")
		return nil
	}
	out := make([]string, 0, len(arr))
	for i, e := range arr {
		s, ok := e.(string)
		if !ok {
			p.add(where, "ErrorEquals must be a non-empty array of strings")
			continue
		}
		if s == "States.ALL" && (i != len(arr)-1 || len(arr) != 1) {
			p.add(where, "States.ALL must appear alone in ErrorEquals")
		}
		out = append(out, s)
	}
	return out
}

func (p *vparser) retriers(obj map[string]any, where string) []retrier {
	v, ok := obj["Retry"]
	if !ok {
		return nil
	}
	arr, ok := v.([]any)
	if !ok {
		p.add(where+"/Retry", "must be an array")
		return nil
	}
	var out []retrier
	for i, e := range arr {
		w := fmt.Sprintf("%s/Retry[%d]", where, i)
		o, ok := e.(map[string]any)
		if !ok {
			p.add(w, "must be an object")
			continue
		}
		r := retrier{IntervalSeconds: 1, MaxAttempts: 3, BackoffRate: 2}
		r.ErrorEquals = p.errorEquals(o, w)
		for k, fv := range o {
			switch k {
			case "ErrorEquals", "Comment":
			case "IntervalSeconds":
				n, ok := toInt(fv)
				if !ok || n < 1 {
					p.add(w+"/IntervalSeconds", "must be a positive integer")
				}
				r.IntervalSeconds = float64(n)
			case "MaxAttempts":
				n, ok := toInt(fv)
				if !ok || n < 0 {
					p.add(w+"/MaxAttempts", "must be a non-negative integer")
				}
				r.MaxAttempts = int(min(n, 1<<20))
			case "BackoffRate":
				f, ok := toFloat(fv)
				if !ok || f < 1 {
					p.add(w+"/BackoffRate", "must be a number >= 1.0")
				}
				r.BackoffRate = f
			case "MaxDelaySeconds":
				n, ok := toInt(fv)
				if !ok || n < 1 {
					p.add(w+"/MaxDelaySeconds", "must be a positive integer")
				}
				r.MaxDelaySeconds = float64(n)
			case "JitterStrategy":
				switch fv {
				case "FULL":
					r.JitterFull = true
				case "NONE":
				default:
					p.add(w+"/JitterStrategy", "must be FULL or NONE")
				}
			default:
				p.add(w, "unknown field %q", k)
			}
		}
		out = append(out, r)
	}
	return out
}

func (p *vparser) catchers(obj map[string]any, where string) []catcher {
	v, ok := obj["Catch"]
	if !ok {
		return nil
	}
	arr, ok := v.([]any)
	if !ok {
		p.add(where+"/Catch", "must be an array")
		return nil
	}
	var out []catcher
	for i, e := range arr {
		w := fmt.Sprintf("%s/Catch[%d]", where, i)
		o, ok := e.(map[string]any)
		if !ok {
			p.add(w, "must be an object")
			continue
		}
		c := catcher{ErrorEquals: p.errorEquals(o, w), Next: p.str(o, "Next", w, true), ResultPath: p.refPath(o, "ResultPath", w)}
		for k := range o {
			switch k {
			case "ErrorEquals", "Next", "ResultPath", "Comment":
			default:
				p.add(w, "unknown field %q", k)
			}
		}
		out = append(out, c)
	}
	return out
}

// ---- payload templates ----

// tmpl is a compiled payload template (Parameters, ResultSelector, ItemSelector, ...).
type tmpl interface{}

type tmplObject struct {
	fields  []tmplField
	usesCtx bool // some path or intrinsic reads the context object ($$)
}

type tmplField struct {
	key  string // output key (".$" removed)
	src  string // original key
	e    expr   // when the key ends with ".$"
	val  tmpl
	path string
}

type tmplArray struct {
	items   []tmpl
	usesCtx bool
}

// templateUsesCtx reports whether evaluating t reads the context object.
func templateUsesCtx(t tmpl) bool {
	switch x := t.(type) {
	case tmplObject:
		return x.usesCtx
	case tmplArray:
		return x.usesCtx
	}
	return false
}

// exprUsesCtx reports whether e reads the context object.
func exprUsesCtx(e expr) bool {
	switch x := e.(type) {
	case *pathExpr:
		return x.ctx
	case *callExpr:
		for _, a := range x.args {
			if exprUsesCtx(a) {
				return true
			}
		}
	}
	return false
}

type tmplLiteral struct{ v any }

func (p *vparser) template(v any, where string, depth int) tmpl {
	if depth > 100 {
		p.add(where, "template nested too deeply")
		return tmplLiteral{v: nil}
	}
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		o := tmplObject{}
		for _, k := range keys {
			if strings.HasSuffix(k, ".$") {
				s, ok := x[k].(string)
				if !ok {
					p.add(where+"/"+k, "the value of a field ending in .$ must be a JSONPath or an intrinsic function")
					continue
				}
				e := p.expr(s, where+"/"+k, true)
				if e == nil {
					continue
				}
				o.fields = append(o.fields, tmplField{key: strings.TrimSuffix(k, ".$"), src: k, e: e, path: s})
				o.usesCtx = o.usesCtx || exprUsesCtx(e)
				continue
			}
			sub := p.template(x[k], where+"/"+k, depth+1)
			o.fields = append(o.fields, tmplField{key: k, src: k, val: sub})
			o.usesCtx = o.usesCtx || templateUsesCtx(sub)
		}
		return o
	case []any:
		a := tmplArray{items: make([]tmpl, len(x))}
		for i, e := range x {
			a.items[i] = p.template(e, fmt.Sprintf("%s[%d]", where, i), depth+1)
			a.usesCtx = a.usesCtx || templateUsesCtx(a.items[i])
		}
		return a
	}
	return tmplLiteral{v: v}
}
