package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The gateway driven by an SDK of another language: Alipay's official
// Node.js SDK (alipay-sdk, pinned in testdata/alipay-node/package.json),
// with response verification on. That SDK sends the common parameters in
// the URL's query string and only biz_content in the body, builds GET URLs
// for page methods, and throws on any answer it cannot verify, refusals
// included.

// gwNodeDir holds the Node.js driver and its locked dependencies.
const gwNodeDir = "testdata/alipay-node"

// gwNodeTimeout bounds one run of the driver (npm ci aside).
const gwNodeTimeout = 2 * time.Minute

// gwNodeInstallTimeout bounds npm ci.
const gwNodeInstallTimeout = 5 * time.Minute

var gwNodeOnce struct {
	sync.Once
	err error
}

// gwNode returns the node binary, installing the driver's dependencies
// first if they are missing. Without node the test fails: CI has it.
func gwNode(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is required for the Node.js SDK test: %v", err)
	}
	gwNodeOnce.Do(func() {
		// npm writes node_modules/.package-lock.json when an install
		// completes: without it, or older than the lock file, install.
		lock, err := os.Stat(filepath.Join(gwNodeDir, "package-lock.json"))
		if err != nil {
			gwNodeOnce.err = err
			return
		}
		if done, err := os.Stat(filepath.Join(gwNodeDir, "node_modules", ".package-lock.json")); err == nil &&
			!done.ModTime().Before(lock.ModTime()) {
			return
		}
		npm, err := exec.LookPath("npm")
		if err != nil {
			gwNodeOnce.err = fmt.Errorf("npm is required to install the driver's dependencies: %w", err)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), gwNodeInstallTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
		cmd.Dir = gwNodeDir
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			gwNodeOnce.err = fmt.Errorf("npm ci in %s: %v\n%s", gwNodeDir, err, out)
			return
		}
		t.Logf("npm ci took %v", time.Since(start).Round(time.Millisecond))
	})
	if gwNodeOnce.err != nil {
		t.Fatal(gwNodeOnce.err)
	}
	return node
}

// gwNodeRun runs the driver with cfg on its standard input and returns its
// answers by step.
func gwNodeRun(t *testing.T, node string, cfg map[string]string) map[string]map[string]any {
	t.Helper()
	in, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), gwNodeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "drive.js")
	cmd.Dir = gwNodeDir
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("node drive.js: %v\n%s%s", err, stdout.Bytes(), stderr.Bytes())
	}
	t.Logf("node drive.js took %v", time.Since(start).Round(time.Millisecond))
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(stdout.Bytes(), &raw); err != nil {
		t.Fatalf("driver output: %v\n%s%s", err, stdout.Bytes(), stderr.Bytes())
	}
	out := make(map[string]map[string]any, len(raw))
	for k, v := range raw {
		var m map[string]any
		if json.Unmarshal(v, &m) == nil {
			out[k] = m
		}
	}
	var version string
	json.Unmarshal(raw["sdkVersion"], &version)
	t.Logf("alipay-sdk %s", version)
	return out
}

// gwNodeWant checks a step's answer: it was verified (nothing thrown) and
// has the wanted fields.
func gwNodeWant(t *testing.T, out map[string]map[string]any, step string, want map[string]any) map[string]any {
	t.Helper()
	got, ok := out[step]
	if !ok {
		t.Fatalf("%s: no answer", step)
	}
	if thrown, ok := got["thrown"]; ok {
		t.Fatalf("%s: the SDK threw: %v", step, thrown)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("%s: %s = %v, want %v (answer %v)", step, k, got[k], v, got)
		}
	}
	return got
}

func TestGatewayNodeSDK(t *testing.T) {
	node := gwNode(t)
	forEachStore(t, func(t *testing.T, e *env) {
		notified := make(chan url.Values, 8)
		hook := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			r.ParseForm()
			select {
			case notified <- r.PostForm:
			default:
			}
			rw.Write([]byte("success"))
		}))
		defer hook.Close()

		w := newTrWorld(t, e)
		buyer := w.user("gwnode")
		w.fund(buyer, "500.00")
		app := gwNewApp(t, w, w.seller, "")
		prefix := fmt.Sprintf("gwnode%d", trSeq.Add(1))
		out := gwNodeRun(t, node, map[string]string{
			"gateway": w.url + "/gateway.do", "appId": app.appID, "privateKey": app.privPEM,
			"alipayPublicKey": app.platformPub, "authCode": gwPaycode(t, w, buyer),
			"notifyUrl": hook.URL + "/alipay-notify", "prefix": prefix,
		})

		ok := map[string]any{"code": "10000", "msg": "Success"}
		pc := gwNodeWant(t, out, "precreate", ok)
		if qr, _ := pc["qrCode"].(string); !strings.HasPrefix(qr, w.url+"/cashier/") || pc["outTradeNo"] != prefix+"-qr" {
			t.Fatalf("precreate: %v", pc)
		}
		cr := gwNodeWant(t, out, "create", ok)
		createdNo, _ := cr["tradeNo"].(string)
		gwNodeWant(t, out, "pay", map[string]any{"code": "10000", "tradeStatus": "TRADE_SUCCESS",
			"buyerUserId": buyer.id, "totalAmount": "100.00", "outTradeNo": prefix + "-pay"})
		gwNodeWant(t, out, "query", map[string]any{"code": "10000", "tradeStatus": "TRADE_SUCCESS",
			"totalAmount": "100.00"})
		gwNodeWant(t, out, "refund", map[string]any{"code": "10000", "fundChange": "Y", "refundFee": "30.00"})
		gwNodeWant(t, out, "refundQuery", map[string]any{"code": "10000", "refundStatus": "REFUND_SUCCESS",
			"refundAmount": "30.00", "outRequestNo": "r1"})
		gwNodeWant(t, out, "close", map[string]any{"code": "10000", "tradeNo": createdNo})

		// Refusals: the SDK verified each before reporting its sub_code.
		for step, sub := range map[string][2]string{
			"unknownTrade": {"40004", "ACQ.TRADE_NOT_EXIST"},
			"unknownApp":   {"40002", "isv.invalid-app-id"},
			"forged":       {"40002", "isv.invalid-signature"},
		} {
			got := gwNodeWant(t, out, step, map[string]any{"code": sub[0], "subCode": sub[1]})
			if msg, _ := got["subMsg"].(string); msg == "" {
				t.Fatalf("%s: no sub_msg: %v", step, got)
			}
		}
		// GET with every parameter in the query string.
		gwNodeWant(t, out, "getQuery", map[string]any{"httpStatus": float64(200), "code": "10000",
			"trade_status": "TRADE_SUCCESS", "out_trade_no": prefix + "-pay"})

		// The platform's state agrees with what the SDK was told.
		if got := w.available(buyer); got != "430.00" {
			t.Fatalf("buyer has %s after paying 100.00 of 500.00 and a refund of 30.00", got)
		}
		var created map[string]any
		if s := e.merchant(app.mk, "GET", "/v1/trades/"+createdNo, nil, &created); s != 200 ||
			created["status"] != "TRADE_CLOSED" || created["out_trade_no"] != prefix+"-create" {
			t.Fatalf("native read of the closed trade: %d %v", s, created)
		}
		var qr map[string]any
		if s := e.merchant(app.mk, "GET", "/v1/trades?out_trade_no="+url.QueryEscape(prefix+"-qr"), nil, &qr); s != 200 ||
			qr["total_amount"] != "12.50" || qr["status"] != "WAIT_BUYER_PAY" {
			t.Fatalf("native read of the precreated trade: %d %v", s, qr)
		}
		// notify_url came in the query string and was honoured.
		// Payment and refund both notify; either will do.
		select {
		case v := <-notified:
			if v.Get("out_trade_no") != prefix+"-pay" || v.Get("trade_status") != "TRADE_SUCCESS" || v.Get("sign") == "" {
				t.Fatalf("notification: %v", v)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("no notification at the notify_url given in the query string within 20 s")
		}
		w.checkLedger()
	})
}
