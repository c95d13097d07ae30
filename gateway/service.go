package gateway

import (
	"context"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"sync"
	"time"

	"zhifu"
	"zhifu/identity"
	"zhifu/trade"
)

// Config is what the gateway needs.
type Config struct {
	Trades   *trade.Service
	Identity *identity.Service
	Keys     *Keys
	Clock    zhifu.Clock
	Logger   *slog.Logger
	// BaseURL returns the platform's public base URL, for the cashier links
	// of precreate and the bill download links.
	BaseURL func() string
}

// Service answers gateway calls.
type Service struct {
	cfg     Config
	methods map[string]method

	mu   sync.Mutex
	keys map[string]appKey // merchant id → parsed app public key

	sigMu       sync.Mutex
	refusalSigs map[string]string // key id + "\x00" + node → signature
}

// refusalSigsMax bounds the memo of refusal signatures. Refusals made
// before the caller is known cost anyone an RSA signature (milliseconds of
// CPU) for nothing; their nodes mostly repeat, and RSA2 (PKCS#1 v1.5)
// signatures are deterministic, so a repeated refusal reuses its signature.
const refusalSigsMax = 1024

type appKey struct {
	raw string
	pub *rsa.PublicKey
}

// method answers one gateway method for a verified merchant.
type method func(ctx context.Context, m *identity.Merchant, c *Call) (map[string]any, *Error)

// New returns the gateway.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{cfg: cfg, keys: make(map[string]appKey), refusalSigs: make(map[string]string)}
	s.methods = map[string]method{
		"alipay.trade.create":                            s.create,
		"alipay.trade.precreate":                         s.precreate,
		"alipay.trade.pay":                               s.pay,
		"alipay.trade.query":                             s.query,
		"alipay.trade.close":                             s.close,
		"alipay.trade.cancel":                            s.cancel,
		"alipay.trade.refund":                            s.refund,
		"alipay.trade.fastpay.refund.query":              s.refundQuery,
		"alipay.data.dataservice.bill.downloadurl.query": s.billURL,
	}
	return s
}

// Keys returns the platform key pair.
func (s *Service) Keys() *Keys { return s.cfg.Keys }

// Handle answers one gateway request and returns the response body.
//
// Every answer is signed with the platform's key, refusals included, those
// made before the caller is known (malformed request, unknown app_id, bad
// signature) as well: Alipay's gateway signs those too, and SDKs that verify
// answers (the Node.js SDK with validateSign) throw on an unsigned one
// instead of reporting its sub_code. The platform's key is one for every
// app, so there is always a key to sign with.
func (s *Service) Handle(ctx context.Context, req Request) []byte {
	values, perr := req.Params()
	if perr != nil {
		return s.refuse(req.Method(), "", perr)
	}
	now := s.cfg.Clock.Now()
	call, perr := ParseCall(values, now)
	if perr != nil {
		return s.refuse(call.Method, call.AppID, perr)
	}
	m, err := s.cfg.Identity.MerchantByAppID(ctx, call.AppID)
	if err != nil {
		if zhifu.ErrorCode(err) == zhifu.NotFound {
			return s.refuse(call.Method, call.AppID, errorf(CodeInvalidArguments, "isv.invalid-app-id", "unknown app_id"))
		}
		s.cfg.Logger.Error("gateway: merchant lookup", slog.Any("err", err))
		return s.refuse(call.Method, call.AppID, errorf(CodeUnavailable, "aop.unknow-error", "system error"))
	}
	if perr := s.verify(m, values); perr != nil {
		return s.refuse(call.Method, call.AppID, perr)
	}
	h, ok := s.methods[call.Method]
	var fields map[string]any
	var gerr *Error
	if !ok {
		gerr = errorf(CodeInvalidArguments, "isv.invalid-method", "method %q is not supported", truncate(call.Method, 64))
	} else {
		fields, gerr = h(ctx, m, call)
	}
	node, err := Node(fields, gerr)
	if err != nil {
		s.cfg.Logger.Error("gateway: encode", slog.Any("err", err))
		return s.refuse(call.Method, call.AppID, errorf(CodeUnavailable, "aop.unknow-error", "system error"))
	}
	return EncodeResponse(call.Method, node, s.sign(node))
}

// refuse answers a refusal, signed, and logs why (never the signature).
func (s *Service) refuse(method, appID string, e *Error) []byte {
	s.cfg.Logger.Warn("gateway: refused", slog.String("app_id", truncate(appID, 32)),
		slog.String("method", truncate(method, 64)), slog.String("sub_code", e.SubCode))
	node, _ := Node(nil, e)
	return EncodeResponse(method, node, s.signRefusal(node))
}

// signRefusal is sign, memoized per platform key: the signature covers the
// node only, not the method name around it, so equal nodes share one.
func (s *Service) signRefusal(node []byte) string {
	if s.cfg.Keys == nil {
		return ""
	}
	s.sigMu.Lock()
	sig, ok := s.refusalSigs[s.cfg.Keys.KeyID()+"\x00"+string(node)]
	s.sigMu.Unlock()
	if ok {
		return sig
	}
	id, sig, err := s.cfg.Keys.signKeyed(node)
	if err != nil {
		s.cfg.Logger.Error("gateway: sign", slog.Any("err", err))
		return ""
	}
	s.sigMu.Lock()
	if len(s.refusalSigs) >= refusalSigsMax {
		clear(s.refusalSigs)
	}
	s.refusalSigs[id+"\x00"+string(node)] = sig
	s.sigMu.Unlock()
	return sig
}

// sign signs a response node with the platform's key, or returns "" (an
// unsigned answer) if it cannot.
func (s *Service) sign(node []byte) string {
	if s.cfg.Keys == nil {
		return ""
	}
	sig, err := s.cfg.Keys.Sign(node)
	if err != nil {
		s.cfg.Logger.Error("gateway: sign", slog.Any("err", err))
		return ""
	}
	return sig
}

// verify checks the request's RSA2 signature with the merchant's key, over
// every parameter of the query string and the body but sign. sign_type is
// signed: Alipay's rule for requests keeps it, and every SDK signs it (its
// rule for notifications leaves it out).
func (s *Service) verify(m *identity.Merchant, values url.Values) *Error {
	if m.AppPublicKey == "" {
		return errorf(CodeNoPermission, "isv.insufficient-isv-permissions", "the merchant has registered no app public key")
	}
	s.mu.Lock()
	k, ok := s.keys[m.MerchantID]
	s.mu.Unlock()
	if !ok || k.raw != m.AppPublicKey {
		pub, err := ParsePublicKey(m.AppPublicKey)
		if err != nil {
			return errorf(CodeNoPermission, "isv.insufficient-isv-permissions", "the registered app public key is unusable")
		}
		k = appKey{raw: m.AppPublicKey, pub: pub}
		s.mu.Lock()
		s.keys[m.MerchantID] = k
		s.mu.Unlock()
	}
	if err := VerifyRSA2(k.pub, []byte(SignContent(values, "sign")), values.Get("sign")); err != nil {
		return errorf(CodeInvalidArguments, "isv.invalid-signature", "signature verification failed")
	}
	return nil
}

// fromZhifu turns the platform's errors into Alipay's codes.
func fromZhifu(err error) *Error {
	var ze *zhifu.Error
	if !errors.As(err, &ze) {
		return errorf(CodeUnavailable, "ACQ.SYSTEM_ERROR", "system error, query before retrying")
	}
	sub, ok := map[string]string{
		zhifu.TradeHasSuccess:       "ACQ.TRADE_HAS_SUCCESS",
		zhifu.TradeHasClose:         "ACQ.TRADE_HAS_CLOSE",
		zhifu.TradeStatusError:      "ACQ.TRADE_STATUS_ERROR",
		zhifu.BuyerBalanceNotEnough: "ACQ.BUYER_BALANCE_NOT_ENOUGH",
		zhifu.BalanceNotEnough:      "ACQ.SELLER_BALANCE_NOT_ENOUGH",
		zhifu.NotFound:              "ACQ.TRADE_NOT_EXIST",
		zhifu.ContextInconsistent:   "ACQ.CONTEXT_INCONSISTENT",
		zhifu.RefundAmountExceeded:  "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL",
		zhifu.InvalidAmount:         "ACQ.INVALID_PARAMETER",
		zhifu.InvalidRequest:        "ACQ.INVALID_PARAMETER",
		zhifu.LimitExceeded:         "ACQ.INVALID_PARAMETER",
		zhifu.ChannelUnavailable:    "ACQ.PAYMENT_FAIL",
	}[ze.Code]
	if !ok {
		return errorf(CodeUnavailable, "ACQ.SYSTEM_ERROR", "system busy or failed, query before retrying")
	}
	if ze.Param == "auth_code" {
		sub = "ACQ.PAYMENT_AUTH_CODE_INVALID"
	}
	return errorf(CodeBusinessFailed, sub, "%s", ze.Message)
}

// billURLTTL is how long a bill download link works.
const billURLTTL = 30 * time.Minute

// BillLink signs a download link for merchant's bill of date and type
// (trade or signcustomer; the type is in the link, and signed, unless it
// is trade).
func (s *Service) BillLink(merchantID, date, billType string, expires time.Time) string {
	q := billLinkValues(merchantID, date, billType, strconv.FormatInt(expires.Unix(), 10))
	q.Set("sig", s.billSig(q))
	return s.cfg.BaseURL() + "/v1/bills/download?" + q.Encode()
}

func billLinkValues(merchantID, date, billType, expires string) url.Values {
	q := url.Values{"merchant_id": {merchantID}, "date": {date}, "expires": {expires}}
	if billType != "" && billType != "trade" {
		q.Set("type", billType)
	}
	return q
}

// CheckBillLink verifies a download link's parameters and returns the
// merchant, date and bill type it is for.
func (s *Service) CheckBillLink(q url.Values) (merchantID, date, billType string, ok bool) {
	exp, err := strconv.ParseInt(q.Get("expires"), 10, 64)
	if err != nil || s.cfg.Clock.Now().Unix() > exp {
		return "", "", "", false
	}
	want := s.billSig(billLinkValues(q.Get("merchant_id"), q.Get("date"), q.Get("type"), q.Get("expires")))
	if !hmac.Equal([]byte(want), []byte(q.Get("sig"))) {
		return "", "", "", false
	}
	billType = q.Get("type")
	if billType == "" {
		billType = "trade"
	}
	return q.Get("merchant_id"), q.Get("date"), billType, true
}

// billSig keys the link's HMAC with a secret derived from the platform's
// signing key, which every node shares.
func (s *Service) billSig(q url.Values) string {
	secret := sha256.Sum256([]byte("zhifu bill links\x00" + s.cfg.Keys.secretSeed()))
	mac := hmac.New(sha256.New, secret[:])
	fmt.Fprint(mac, q.Encode())
	return hex.EncodeToString(mac.Sum(nil))
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
