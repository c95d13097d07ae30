package http

import "bytes"

// keysScan is checkDuplicateKeys's fast path: one pass over b, with no
// allocation for the small objects the API takes, that finds a key named
// twice in one object, whatever the case of its letters. It follows the
// JSON grammar strictly and gives up (scanUnsure) on whatever it does not
// settle alone: a syntax error, a key with an escape (compared only after
// unescaping) or beyond ASCII (whose case folding is Unicode's), nesting
// as deep as jsonNestingMax, data after the first value. The token walk
// then decides.
// FuzzKeysScan checks that the two agree wherever the fast path answers.
type keysScan struct {
	b     []byte
	i     int
	depth int
	dup   string
}

type scanResult int

const (
	scanNoDuplicate scanResult = iota
	scanDuplicate
	scanUnsure
)

// keysLinearMax is how many keys an object's duplicates are looked for
// among by comparing one by one; past it, a map, so that a body of
// thousands of keys costs no more than linear time.
const keysLinearMax = 16

func scanKeys(b []byte) (dup string, r scanResult) {
	s := keysScan{b: b}
	s.ws()
	if r := s.value(); r != scanNoDuplicate {
		return s.dup, r
	}
	s.ws()
	if s.i != len(s.b) {
		return "", scanUnsure
	}
	return "", scanNoDuplicate
}

func (s *keysScan) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *keysScan) value() scanResult {
	if s.i >= len(s.b) {
		return scanUnsure
	}
	switch c := s.b[s.i]; {
	case c == '{':
		return s.object()
	case c == '[':
		return s.array()
	case c == '"':
		if _, _, ok := s.str(); !ok {
			return scanUnsure
		}
		return scanNoDuplicate
	case c == '-' || '0' <= c && c <= '9':
		return s.number()
	default:
		for _, lit := range [...]string{"true", "false", "null"} {
			if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
				s.i += len(lit)
				return scanNoDuplicate
			}
		}
		return scanUnsure
	}
}

// str reads a string at s.i and returns its raw content; plain says it
// has no escape, ok that it is a string as JSON writes one (no control
// character, no malformed escape, closed).
func (s *keysScan) str() (raw []byte, plain, ok bool) {
	start := s.i + 1
	plain = true
	for i := start; i < len(s.b); i++ {
		switch c := s.b[i]; {
		case c == '"':
			s.i = i + 1
			return s.b[start:i], plain, true
		case c < 0x20:
			return nil, false, false
		case c == '\\':
			plain = false
			if i+1 >= len(s.b) {
				return nil, false, false
			}
			switch s.b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				if _, ok := hex4(s.b, i+2); !ok {
					return nil, false, false
				}
				i += 5
			default:
				return nil, false, false
			}
		}
	}
	return nil, false, false
}

// number reads a number as JSON writes it: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *keysScan) number() scanResult {
	b, i := s.b, s.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	digits := func() bool {
		start := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		return i > start
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case !digits():
		return scanUnsure
	}
	if i < len(b) && b[i] == '.' {
		i++
		if !digits() {
			return scanUnsure
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !digits() {
			return scanUnsure
		}
	}
	s.i = i
	return scanNoDuplicate
}

// enter steps into the array or object at s.i; done says it was empty
// and is closed already. It refuses nesting as deep as jsonNestingMax.
func (s *keysScan) enter(closer byte) (done, ok bool) {
	if s.depth+1 >= jsonNestingMax {
		return false, false
	}
	s.depth++
	s.i++
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == closer {
		s.i++
		s.depth--
		return true, true
	}
	return false, true
}

// member reads a member's value and what follows it: a comma (more) or
// the closer, which steps out.
func (s *keysScan) member(closer byte) (more bool, r scanResult) {
	if r := s.value(); r != scanNoDuplicate {
		return false, r
	}
	s.ws()
	if s.i < len(s.b) {
		switch s.b[s.i] {
		case ',':
			s.i++
			s.ws()
			return true, scanNoDuplicate
		case closer:
			s.i++
			s.depth--
			return false, scanNoDuplicate
		}
	}
	return false, scanUnsure
}

func (s *keysScan) array() scanResult {
	done, ok := s.enter(']')
	if !ok {
		return scanUnsure
	}
	for !done {
		more, r := s.member(']')
		if r != scanNoDuplicate {
			return r
		}
		done = !more
	}
	return scanNoDuplicate
}

func (s *keysScan) object() scanResult {
	done, ok := s.enter('}')
	if !ok {
		return scanUnsure
	}
	var keys keySet
	for !done {
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return scanUnsure
		}
		key, plain, ok := s.str()
		if !ok || !plain || !ascii(key) {
			return scanUnsure
		}
		if !keys.add(key) {
			s.dup = string(key)
			return scanDuplicate
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return scanUnsure
		}
		s.i++
		s.ws()
		more, r := s.member('}')
		if r != scanNoDuplicate {
			return r
		}
		done = !more
	}
	return scanNoDuplicate
}

// keySet is an object's keys so far, ASCII, compared whatever their case:
// one by one while they are few, by a map of their upper-case forms past
// keysLinearMax.
type keySet struct {
	few  [keysLinearMax][]byte
	n    int
	many map[string]bool
}

// add puts key in the set and says whether it was new.
func (ks *keySet) add(key []byte) bool {
	if ks.many == nil {
		for _, k := range ks.few[:ks.n] {
			if bytes.EqualFold(k, key) {
				return false
			}
		}
		if ks.n < keysLinearMax {
			ks.few[ks.n] = key
			ks.n++
			return true
		}
		ks.many = make(map[string]bool, 2*keysLinearMax)
		for _, k := range ks.few[:ks.n] {
			ks.many[string(bytes.ToUpper(k))] = true
		}
	}
	upper := string(bytes.ToUpper(key))
	if ks.many[upper] {
		return false
	}
	ks.many[upper] = true
	return true
}

func ascii(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}
