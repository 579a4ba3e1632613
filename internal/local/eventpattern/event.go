package eventpattern

import "fmt"

// Event is an event parsed once and flattened into its leaf values by
// dot-joined path, ready to be matched against many patterns.
type Event struct {
	fields map[string][]leaf
}

// leaf is one scalar value of an event with the array elements it sits in.
type leaf struct {
	v      *value
	arrays []arrayPos
}

// arrayPos says that a leaf is element idx (or inside element idx) of array id.
type arrayPos struct {
	id, idx int32
}

// ParseEvent parses and flattens an event. The event must be a JSON object.
func ParseEvent(event []byte) (*Event, error) {
	p := &parser{src: string(event)} // duplicate keys: every value is a leaf
	p.skipSpace()
	v, err := p.value(0)
	if err == nil {
		p.skipSpace()
		if p.pos < len(p.src) {
			err = p.unexpected("expected end of input")
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidEvent, err)
	}
	if v.kind != kObject {
		return nil, ErrInvalidEvent
	}
	e := &Event{fields: make(map[string][]leaf, 32)}
	var next int32
	e.flatten(v, "", nil, &next)
	return e, nil
}

func (e *Event) flatten(v *value, path string, arrays []arrayPos, next *int32) {
	switch v.kind {
	case kObject:
		for _, m := range v.obj {
			e.flatten(m.val, joinPath(path, m.key), arrays, next)
		}
	case kArray:
		id := *next
		*next++
		for i, el := range v.arr {
			e.flatten(el, path, append(arrays[:len(arrays):len(arrays)], arrayPos{id: id, idx: int32(i)}), next)
		}
	default:
		e.fields[path] = append(e.fields[path], leaf{v: v, arrays: arrays})
	}
}

// consistent reports whether two leaves can come from the same event element:
// wherever both sit in the same array, they sit in the same element of it.
func consistent(a, b leaf) bool {
	for _, x := range a.arrays {
		for _, y := range b.arrays {
			if x.id == y.id && x.idx != y.idx {
				return false
			}
		}
	}
	return true
}

// envelopeFields are the fields TestEventPattern requires of an event.
var envelopeFields = []string{"id", "account", "source", "time", "region", "detail-type"}

// CheckEnvelope reports (as ErrInvalidEvent) an event that TestEventPattern
// refuses: not a JSON object, or missing one of id, account, source, time,
// region and detail-type.
func CheckEnvelope(event []byte) error {
	e, err := ParseEvent(event)
	if err != nil {
		return err
	}
	for _, f := range envelopeFields {
		if _, ok := e.fields[f]; !ok {
			return fmt.Errorf("%w: missing %q", ErrInvalidEvent, f)
		}
	}
	return nil
}
