package banksim_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"zhifu/bankapi"
	"zhifu/banksim"
)

// browser is a person's browser: no signature header, no redirects
// followed, so the test sees where the bank sends them.
func browser() *http.Client {
	return &http.Client{Timeout: waitMax, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
}

func get(t *testing.T, link string) (int, string) {
	t.Helper()
	resp, err := browser().Get(link)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// confirm posts the page's form: the link's own parameters as hidden
// fields, plus what the person typed.
func confirm(t *testing.T, link, card, holder string) *http.Response {
	t.Helper()
	u, _ := url.Parse(link)
	form := u.Query()
	form.Set("card_no", card)
	form.Set("holder", holder)
	u.RawQuery = ""
	resp, err := browser().PostForm(u.String(), form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func TestEbank(t *testing.T) {
	e := newEnv(t, nil)
	c := e.client("CMB")
	link := c.EbankURL("eb-1", 123_45, "https://shop.example/back?order=9", e.sink.url("CMB"))

	status, page := get(t, link)
	if status != 200 || !strings.Contains(page, "¥123.45") || !strings.Contains(page, `name="card_no"`) ||
		!strings.Contains(page, `name="sig"`) {
		t.Fatalf("page %d:\n%s", status, page)
	}

	resp := confirm(t, link, cardNo(5), "Zhang San")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("confirm = %d", resp.StatusCode)
	}
	back, _ := url.Parse(resp.Header.Get("Location"))
	if back.Host != "shop.example" || back.Query().Get("order") != "9" || back.Query().Get("request_id") != "eb-1" ||
		back.Query().Get("status") != bankapi.StatusSuccess {
		t.Fatalf("redirect to %s", back)
	}
	if cb := e.sink.next(); cb.RequestID != "eb-1" || cb.Amount != 123_45 || cb.Status != bankapi.StatusSuccess {
		t.Fatalf("callback = %+v", cb)
	}
	card, err := c.VerifyCard(context.Background(), cardNo(5), "Zhang San")
	if err != nil {
		t.Fatal(err)
	}
	if b := e.balance("CMB", card); b != banksim.StartingBalanceDefault-123_45 {
		t.Fatalf("balance = %d", b)
	}
	// Confirming twice (the back button) does not pay twice.
	if resp := confirm(t, link, cardNo(5), "Zhang San"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("second confirm = %d", resp.StatusCode)
	}
	if b := e.balance("CMB", card); b != banksim.StartingBalanceDefault-123_45 {
		t.Fatalf("balance after a second confirm = %d", b)
	}
	e.checkBooks()
}

func TestEbankRefusesForgedLinks(t *testing.T) {
	e := newEnv(t, nil)
	c := e.client("CMB")
	link := c.EbankURL("eb-2", 500_00, "https://shop.example/back", "")
	forged := strings.Replace(link, "amount=50000", "amount=1", 1)
	if forged == link {
		t.Fatal("test did not change the amount")
	}
	if status, _ := get(t, forged); status != http.StatusUnauthorized {
		t.Fatalf("GET of a forged link = %d, want 401", status)
	}
	if resp := confirm(t, forged, cardNo(1), "Li Si"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("POST of a forged link = %d, want 401", resp.StatusCode)
	}
	other := e.client("ICBC").EbankURL("eb-2", 500_00, "https://shop.example/back", "")
	wrongBank := strings.Replace(other, "/banks/ICBC/", "/banks/CMB/", 1)
	if status, _ := get(t, wrongBank); status != http.StatusUnauthorized {
		t.Fatalf("another bank's link = %d, want 401", status)
	}
	if _, err := c.Inquire(context.Background(), "eb-2"); !bankapi.IsNotFound(err) {
		t.Fatalf("a forged link recorded a debit: %v", err)
	}
	e.clock.Advance(31 * time.Minute)
	if status, _ := get(t, link); status != http.StatusBadRequest {
		t.Fatalf("expired link = %d, want 400", status)
	}
}

// TestEbankCollapsesAlone: the online-banking pages can fail while quick pay
// at the same bank works, as on Double 11.
func TestEbankCollapsesAlone(t *testing.T) {
	e := newEnv(t, nil)
	e.scenario("CCB", banksim.Scenario{Ebank: &banksim.Scenario{Outage: banksim.OutageReject}})
	link := e.client("CCB").EbankURL("eb-3", 1_00, "https://shop.example/back", "")
	if status, _ := get(t, link); status != http.StatusServiceUnavailable {
		t.Fatalf("ebank page = %d, want 503", status)
	}
	if got := e.debit("CCB", "quick-1", e.card("CCB", 1), 1_00); got.Status != bankapi.StatusSuccess {
		t.Fatalf("quick pay = %+v", got)
	}
}

func TestEbankBadCard(t *testing.T) {
	e := newEnv(t, nil)
	link := e.client("ABC").EbankURL("eb-4", 1_00, "https://shop.example/back", "")
	if resp := confirm(t, link, "1234567812345678", "Wang Wu"); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad card = %d, want 400 with the form again", resp.StatusCode)
	}
}
