package trade

import (
	"context"

	"zhifu"
)

// Get returns a trade by its number whoever asks. It serves the cashier
// page, which a buyer reaches by scanning the trade's QR code: the trade
// number is the capability, as with Alipay's own QR codes.
func (s *Service) Get(ctx context.Context, tradeNo string) (*Trade, error) {
	if err := checkTradeNo(tradeNo); err != nil {
		return nil, err
	}
	t, err := loadTrade(ctx, s.cfg.Store.Reader(), tradeNo, false)
	if err != nil {
		return nil, err
	}
	if t == nil {
		return nil, zhifu.Errorf(zhifu.NotFound, "no trade %q", tradeNo)
	}
	return t, nil
}
