package bankapi_test

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"zhifu/bankapi"
)

func TestDecodeError(t *testing.T) {
	until := time.Date(2010, 11, 11, 1, 0, 0, 0, bankapi.Beijing)
	tests := []struct {
		name   string
		status int
		body   string
		want   bankapi.APIError
	}{
		{"error body", 503, `{"error":"BANK_UNAVAILABLE","message":"down"}`,
			bankapi.APIError{Status: 503, Code: bankapi.CodeBankUnavailable, Message: "down"}},
		{"maintenance", 503, `{"error":"MAINTENANCE","message":"m","until":"2010-11-11T01:00:00+08:00"}`,
			bankapi.APIError{Status: 503, Code: bankapi.CodeMaintenance, Message: "m", Until: until}},
		{"a proxy's page", 502, `<html>bad gateway</html>`, bankapi.APIError{Status: 502}},
		{"empty", 500, ``, bankapi.APIError{Status: 500}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := bankapi.DecodeError(tt.status, []byte(tt.body))
			if got.Status != tt.want.Status || got.Code != tt.want.Code || got.Message != tt.want.Message ||
				!got.Until.Equal(tt.want.Until) {
				t.Fatalf("DecodeError = %+v, want %+v", *got, tt.want)
			}
		})
	}
	var err error = bankapi.DecodeError(http.StatusNotFound, []byte(`{"error":"NOT_FOUND"}`))
	if !bankapi.IsNotFound(err) || bankapi.IsNotFound(errors.New("404")) {
		t.Fatal("IsNotFound")
	}
}

func TestVerifyCallback(t *testing.T) {
	now := time.Unix(1_289_440_800, 0)
	c := bankapi.NewClient("http://127.0.0.1:1", "ICBC", "s", nil)
	c.Clock = fixedClock(now)
	body := []byte(`{"request_id":"TU1","bank":"ICBC","kind":"debit","status":"SUCCESS","amount":80000,"created_at":"2010-11-11T10:00:00+08:00"}`)
	tx, err := c.VerifyCallback(bankapi.Sign("s", now, body), body)
	if err != nil || tx.RequestID != "TU1" || tx.Amount != 80000 || tx.Status != bankapi.StatusSuccess {
		t.Fatalf("VerifyCallback = %+v, %v", tx, err)
	}
	if _, err := c.VerifyCallback(bankapi.Sign("guess", now, body), body); !errors.Is(err, bankapi.ErrSignature) {
		t.Fatalf("forged callback: %v", err)
	}
	other := []byte(`{"request_id":"TU1","bank":"CMB","kind":"debit","status":"SUCCESS","amount":80000}`)
	if _, err := c.VerifyCallback(bankapi.Sign("s", now, other), other); err == nil {
		t.Fatal("a callback naming another bank was taken")
	}
	if _, err := c.VerifyCallback(bankapi.Sign("s", now, []byte("{")), []byte("{")); err == nil {
		t.Fatal("a callback that is not JSON was taken")
	}
}

type fixedClock time.Time

func (c fixedClock) Now() time.Time { return time.Time(c) }
