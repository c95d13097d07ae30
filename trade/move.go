package trade

import (
	"context"
	"unicode/utf8"

	"zhifu"
	"zhifu/identity"
	"zhifu/ledger"
)

// Close closes merchant m's unpaid trade. Only a trade waiting for payment
// can be closed; anything else answers the state table's refusal.
func (s *Service) Close(ctx context.Context, m *identity.Merchant, tradeNo string) (*Trade, error) {
	return s.merchantMove(ctx, m, tradeNo, func(t *Trade, op *moveOp) change {
		return closeChange(t, op.now)
	})
}

// ShipParams describe a shipment; both are optional.
type ShipParams struct {
	LogisticsCompany string
	TrackingNo       string
}

// Ship records that the seller of escrow trade tradeNo shipped the goods:
// the trade waits for the buyer, and finishes by itself confirm_timeout
// later if the buyer does nothing.
func (s *Service) Ship(ctx context.Context, m *identity.Merchant, tradeNo string, p ShipParams) (*Trade, error) {
	for _, f := range []struct{ name, v string }{{"logistics_company", p.LogisticsCompany}, {"tracking_no", p.TrackingNo}} {
		if !utf8.ValidString(f.v) || utf8.RuneCountInString(f.v) > ShipFieldLenMax {
			return nil, invalid(f.name, "%s must be at most %d characters of UTF-8", f.name, ShipFieldLenMax)
		}
	}
	return s.merchantMove(ctx, m, tradeNo, func(t *Trade, op *moveOp) change {
		return shipChange(t, p.LogisticsCompany, p.TrackingNo, op.now)
	})
}

// merchantMove runs rule on merchant m's trade.
func (s *Service) merchantMove(ctx context.Context, m *identity.Merchant, tradeNo string,
	rule func(*Trade, *moveOp) change) (*Trade, error) {
	if err := checkTradeNo(tradeNo); err != nil {
		return nil, err
	}
	op := &moveOp{svc: s, tradeNo: tradeNo, keys: []string{"trade:" + tradeNo}, now: s.cfg.Clock.Now(),
		recoverable: true}
	op.decide = func(_ context.Context, _ ledger.Querier, t *Trade) (change, error) {
		if e := merchantOwns(t, m.MerchantID); e != nil {
			return change{refusal: e}, nil
		}
		return rule(t, op), nil
	}
	if err := s.do(ctx, op); err != nil {
		return nil, err
	}
	return op.ch.trade, nil
}

// Confirm is the buyer u confirming receipt of escrow trade tradeNo: the
// trade finishes and the escrow pays the seller what it holds for it.
func (s *Service) Confirm(ctx context.Context, u *identity.User, tradeNo string) (*Trade, error) {
	if err := checkTradeNo(tradeNo); err != nil {
		return nil, err
	}
	op := &moveOp{svc: s, tradeNo: tradeNo, keys: []string{"trade:" + tradeNo}, now: s.cfg.Clock.Now(),
		recoverable: true}
	op.decide = func(_ context.Context, _ ledger.Querier, t *Trade) (change, error) {
		if t.BuyerID == "" || t.BuyerID != u.UserID {
			return refuse(zhifu.NotFound, "no trade %s", t.TradeNo), nil
		}
		return confirmChange(t, op.now, s.ledgerID), nil
	}
	if err := s.do(ctx, op); err != nil {
		return nil, err
	}
	return op.ch.trade, nil
}
