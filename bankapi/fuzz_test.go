package bankapi_test

import (
	"strings"
	"testing"
	"time"

	"zhifu/bankapi"
)

// The decoders of what arrives from the wire, fuzzed: a statement, a
// signature header, a callback body, an error answer. Run them longer with
// go test ./bankapi -run '^$' -fuzz FuzzParseStatement -fuzztime 30s.

// FuzzParseStatement: the parser never panics, and what it accepts it
// reads back the same once written again.
func FuzzParseStatement(f *testing.F) {
	f.Add(statementHead +
		"OPENING_BALANCE,,,100,,2010-11-11T00:00:00+08:00\n" +
		"a,ICBC201011110000000001,debit,5,SUCCESS,2010-11-11T10:00:00.000000001+08:00\n" +
		"b,ICBC201011110000000002,credit,7,FAILED,2010-11-11T11:00:00+08:00\n" +
		"CLOSING_BALANCE,,,105,,2010-11-12T00:00:00+08:00\n")
	f.Add(statementHead + "OPENING_BALANCE,,,0,,2010-11-11T00:00:00+08:00\nCLOSING_BALANCE,,,0,,2010-11-12T00:00:00+08:00\n")
	f.Add(statementHead + "OPENING_BALANCE,,,100,,2010-11-11T00:00:00+08:00\n")
	f.Add(statementHead + `"a,""b",x,debit,1,SUCCESS,2010-11-11T10:00:00Z` + "\n")
	f.Add(statementHead + "OPENING_BALANCE,,,0,,9999-12-31T23:00:00Z\nCLOSING_BALANCE,,,0,,2010-11-12T00:00:00+08:00\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, text string) {
		st, err := bankapi.ParseStatement(strings.NewReader(text))
		if err != nil {
			return
		}
		var b strings.Builder
		writeStatement(t, &b, st)
		again, err := bankapi.ParseStatement(strings.NewReader(b.String()))
		if err != nil {
			t.Fatalf("accepted %q, but not its rewriting %q: %v", text, b.String(), err)
		}
		if !sameStatement(st, again) {
			t.Fatalf("%q read back as %+v, first %+v", b.String(), again, st)
		}
	})
}

// FuzzVerify: no header makes Verify panic; a signature made for a payload
// verifies for it and for no other.
func FuzzVerify(f *testing.F) {
	now := time.Unix(1_289_440_800, 0)
	f.Add("t=1289440800,v1=00", []byte(`{}`), []byte(`{}`), int64(0))
	f.Add(bankapi.Sign("s", now, []byte("x")), []byte("x"), []byte("y"), int64(299))
	f.Add("t=-9223372036854775808,v1=", []byte(""), []byte("z"), int64(-301))
	f.Add(",,,=,t=,v1=zz", []byte("p"), []byte("p"), int64(1))
	f.Fuzz(func(t *testing.T, header string, payload, other []byte, skew int64) {
		bankapi.Verify("s", header, payload, now)
		at := now.Add(time.Duration(skew%600) * time.Second)
		sig := bankapi.Sign("s", at, payload)
		err := bankapi.Verify("s", sig, payload, now)
		if inTolerance := skew%600 >= -300 && skew%600 <= 300; (err == nil) != inTolerance {
			t.Fatalf("signed %ds from now: Verify = %v", skew%600, err)
		}
		if string(other) != string(payload) && bankapi.Verify("s", sig, other, at) == nil {
			t.Fatalf("a signature of %q verified %q", payload, other)
		}
	})
}

// FuzzDecodeCallback: no body makes it panic, and it never hands back a
// transaction of another bank.
func FuzzDecodeCallback(f *testing.F) {
	f.Add([]byte(`{"request_id":"TU1","bank":"ICBC","kind":"debit","status":"SUCCESS","amount":80000,"created_at":"2010-11-11T10:00:00+08:00","settled_at":null}`))
	f.Add([]byte(`{"bank":"CMB"}`))
	f.Add([]byte(`{"bank":"ICBC","amount":1e400}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		tx, err := bankapi.DecodeCallback("ICBC", body)
		if err == nil && tx.Bank != "ICBC" {
			t.Fatalf("decoded a transaction of %q", tx.Bank)
		}
	})
}

// FuzzDecodeError: any answer body makes an error with the answer's
// status.
func FuzzDecodeError(f *testing.F) {
	f.Add(503, []byte(`{"error":"MAINTENANCE","message":"m","until":"2010-11-11T01:00:00+08:00"}`))
	f.Add(500, []byte(`{"error":1}`))
	f.Add(502, []byte(`<html>`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		if e := bankapi.DecodeError(status, body); e == nil || e.Status != status {
			t.Fatalf("DecodeError(%d) = %+v", status, e)
		}
	})
}
