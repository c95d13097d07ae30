package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	nethttp "net/http"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// decodeJSON reads one JSON object into v, strictly, as money asks: the
// body is read whole first (over bodyBytesMax is 413, whatever it holds),
// it must be declared application/json in UTF-8, be valid UTF-8 with no
// unpaired surrogate escapes, name no key twice in an object (a proxy that
// keeps the first and a reader that keeps the last would disagree about
// the amount), have no unknown fields and nothing after the object. Every
// failure is an API error (400 INVALID_REQUEST or 413 REQUEST_TOO_LARGE).
func decodeJSON(r *nethttp.Request, v any) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return jsonError(err)
	}
	if len(body) > 0 {
		if err := checkJSONContentType(r.Header.Get("Content-Type")); err != nil {
			return err
		}
	}
	if err := checkJSONText(body); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	var extra json.RawMessage
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
		return nil
	case err == nil:
		return invalidRequest("", "request body has data after the JSON object")
	default:
		return jsonError(err)
	}
}

// checkJSONContentType accepts application/json, with no charset or
// charset UTF-8: a body sent as text or as a form is not read as JSON.
func checkJSONContentType(ct string) error {
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return invalidRequest("Content-Type", "the request body must be sent as Content-Type: application/json")
	}
	for k, v := range params {
		if k != "charset" || !strings.EqualFold(v, "utf-8") {
			return invalidRequest("Content-Type", "application/json bodies must be UTF-8 (charset=utf-8, or no charset)")
		}
	}
	return nil
}

// checkJSONText refuses what encoding/json would quietly let through:
// bytes that are not UTF-8 and escaped surrogates that do not pair up (it
// would turn both into U+FFFD), and an object naming a key twice (it would
// keep the last). Syntax errors are left to the decoder.
func checkJSONText(b []byte) error {
	if !utf8.Valid(b) {
		return invalidRequest("", "request body is not valid UTF-8")
	}
	if err := checkSurrogates(b); err != nil {
		return err
	}
	return checkDuplicateKeys(b)
}

// checkSurrogates walks the strings of b and refuses a \uD800–\uDFFF escape
// that is not a high surrogate followed at once by a low one.
func checkSurrogates(b []byte) error {
	bad := invalidRequest("", "request body has an escaped surrogate that is not part of a pair")
	in := false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case !in:
			in = c == '"'
		case c == '"':
			in = false
		case c == '\\' && i+1 < len(b) && b[i+1] == 'u':
			r, ok := hex4(b, i+2)
			if !ok {
				return nil // malformed; the decoder says so
			}
			i += 5
			switch {
			case utf16.IsSurrogate(r) && r < 0xdc00:
				low, ok := hex4(b, i+3)
				if i+2 >= len(b) || b[i+1] != '\\' || b[i+2] != 'u' || !ok || low < 0xdc00 || low > 0xdfff {
					return bad
				}
				i += 6
			case utf16.IsSurrogate(r):
				return bad
			}
		case c == '\\':
			i++ // the escaped character, whatever it is
		}
	}
	return nil
}

// hex4 reads four hex digits at b[i:].
func hex4(b []byte, i int) (rune, bool) {
	if i < 0 || i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			r = r<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// jsonNestingMax bounds how deep checkDuplicateKeys follows a body; the
// API's bodies are a few levels deep.
const jsonNestingMax = 32

// checkDuplicateKeys refuses an object with a key twice, compared as
// encoding/json matches a key to a field: after unescaping ("id" and
// "i\u0064" are one key) and whatever the case ("AMOUNT" sets amount), so
// {"amount":"1.00","AMOUNT":"9999.00"} is refused rather than read as
// 9999.00. It asks scanKeys where that can tell, else walks b's tokens.
func checkDuplicateKeys(b []byte) error {
	switch dup, r := scanKeys(b); r {
	case scanNoDuplicate:
		return nil
	case scanDuplicate:
		return duplicateKey(dup)
	}
	return walkDuplicateKeys(b)
}

// foldKey is k with each letter replaced by the least of its case
// variants, so that two keys fold alike exactly when strings.EqualFold
// says they are equal, the comparison encoding/json makes.
func foldKey(k string) string {
	var b strings.Builder
	for _, r := range k {
		for {
			r2 := unicode.SimpleFold(r)
			if r2 <= r {
				r = r2
				break
			}
			r = r2
		}
		b.WriteRune(r)
	}
	return b.String()
}

func duplicateKey(k string) error {
	return invalidRequest(k, "request body names "+k+" twice in one object")
}

// walkDuplicateKeys is checkDuplicateKeys by the decoder's tokens.
func walkDuplicateKeys(b []byte) error {
	type frame struct {
		keys      map[string]bool // nil for an array
		expectKey bool
	}
	var stack []frame
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil // the end, or a syntax error the decoder will name
		}
		top := len(stack) - 1
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{', '[':
				if len(stack) >= jsonNestingMax {
					return invalidRequest("", "request body is nested too deeply")
				}
				f := frame{}
				if d == '{' {
					f = frame{keys: map[string]bool{}, expectKey: true}
				}
				stack = append(stack, f)
			case '}', ']':
				stack = stack[:top]
				if top > 0 && stack[top-1].keys != nil {
					stack[top-1].expectKey = true
				}
			}
			continue
		}
		if top < 0 || stack[top].keys == nil {
			continue
		}
		f := &stack[top]
		if f.expectKey {
			k, _ := tok.(string)
			folded := foldKey(k)
			if f.keys[folded] {
				return duplicateKey(k)
			}
			f.keys[folded] = true
		}
		f.expectKey = !f.expectKey
	}
}

// jsonError turns a decoding error into an API error. The decoder's own
// messages name fields and offsets, never values, so they are safe to show.
func jsonError(err error) error {
	var tooLarge *nethttp.MaxBytesError
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooLarge):
		return err
	case errors.Is(err, io.EOF):
		return invalidRequest("", "request body is empty; a JSON object is required")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return invalidRequest("", "request body is truncated JSON")
	case errors.As(err, &syntax):
		return invalidRequest("", "request body is not valid JSON: "+syntax.Error())
	case errors.As(err, &typ) && typ.Field == "":
		return invalidRequest("", "request body must be a JSON object")
	case errors.As(err, &typ):
		return invalidRequest(typ.Field, "field "+typ.Field+" has the wrong type or is out of range")
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return invalidRequest(strings.Trim(f, `"`), "unknown field "+f)
	}
	return invalidRequest("", "request body is not valid JSON: "+strings.TrimPrefix(msg, "json: "))
}
