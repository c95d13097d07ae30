package channel

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"zhifu"
	"zhifu/bankapi"
	"zhifu/identity"
	"zhifu/ledger"
)

// Limits of what a card binding takes.
const (
	cardDigitsMin  = 12
	cardDigitsMax  = 19
	holderRunesMax = 64
)

// BindCard verifies a card with its bank and binds it to u for quick pay.
// The number goes to the bank and nowhere else: the platform keeps the
// bank's token and the last four digits, and never logs the number. The
// same card bound again is the same card (created false).
func (s *Service) BindCard(ctx context.Context, u *identity.User, bankName, cardNo, holder string) (c *Card, created bool, err error) {
	b, err := s.bankOf(bankName, "bank")
	if err != nil {
		return nil, false, err
	}
	if len(cardNo) < cardDigitsMin || len(cardNo) > cardDigitsMax || !allDigits(cardNo) {
		return nil, false, &zhifu.Error{Code: zhifu.InvalidRequest, Param: "card_no",
			Message: fmt.Sprintf("card_no must be %d to %d digits", cardDigitsMin, cardDigitsMax)}
	}
	holder = strings.TrimSpace(holder)
	if holder == "" || !utf8.ValidString(holder) || utf8.RuneCountInString(holder) > holderRunesMax {
		return nil, false, &zhifu.Error{Code: zhifu.InvalidRequest, Param: "holder",
			Message: fmt.Sprintf("holder must be 1 to %d characters", holderRunesMax)}
	}
	cards, err := s.Cards(ctx, u)
	if err != nil {
		return nil, false, err
	}
	if len(cards) >= cardsPerUserMax {
		return nil, false, &zhifu.Error{Code: zhifu.LimitExceeded, Param: "card_no",
			Message: fmt.Sprintf("at most %d cards may be bound; unbind one first", cardsPerUserMax)}
	}
	bc, err := s.verify(ctx, b, cardNo, holder)
	if err != nil {
		return nil, false, err
	}
	now := s.now()
	op := &bindOp{card: Card{CardID: s.newID("BC"), UserID: u.UserID, Bank: b.name, Token: bc.CardToken,
		Last4: bc.Last4, Status: CardActive, CreatedAt: now}}
	if err := s.cfg.Batcher.Do(ctx, op); err != nil {
		return nil, false, fmt.Errorf("bind card: %w", err)
	}
	return op.result, op.created, nil
}

// verify asks the bank for the card's token, through the bank's breaker
// and bucket like a payment.
func (s *Service) verify(ctx context.Context, b *bank, cardNo, holder string) (bankapi.Card, error) {
	probe, err := s.admit(b, s.now())
	if err != nil {
		return bankapi.Card{}, err
	}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	b.calls.Add(1)
	start := s.now()
	card, err := b.client.VerifyCard(cctx, cardNo, holder)
	b.calls.Add(-1)
	end := s.now()
	b.breaker.Done(end, probe, callOutcome(err), end.Sub(start))
	var e *bankapi.APIError
	switch {
	case err == nil:
		return card, nil
	case errors.As(err, &e) && e.Status == http.StatusBadRequest:
		// Never the number itself in the message: the bank's message
		// describes the rule that failed.
		return bankapi.Card{}, &zhifu.Error{Code: zhifu.InvalidRequest, Param: "card_no",
			Message: "the bank refused the card: " + e.Code}
	case Classify(bankapi.Transaction{}, err).Kind == Refused:
		return bankapi.Card{}, unavailable(b, zhifu.ChannelUnavailable, fmt.Sprintf(
			"%s cannot verify cards right now; try again shortly", b.name), retryAfterBusy)
	}
	return bankapi.Card{}, fmt.Errorf("verify card at %s: %w", b.name, err)
}

// bindOp inserts a card, or reactivates the same card bound before.
type bindOp struct {
	card Card

	result  *Card
	created bool
}

func (o *bindOp) Keys() []string {
	return []string{"card:" + o.card.UserID + ":" + o.card.Bank + ":" + o.card.Token}
}

func (o *bindOp) Prepare(context.Context, ledger.Tx) ([]ledger.Transfer, error) {
	o.result, o.created = nil, false
	return nil, nil
}

func (o *bindOp) Finish(ctx context.Context, tx ledger.Tx, _ []ledger.TransferResult) error {
	c := o.card
	n, err := tx.Exec(ctx, `INSERT INTO cards (card_id, user_id, bank, card_token, last4, status, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		c.CardID, c.UserID, c.Bank, c.Token, c.Last4, c.Status, nanos(c.CreatedAt), nanos(c.CreatedAt))
	if err != nil {
		return fmt.Errorf("channel: insert card: %w", err)
	}
	if n == 1 {
		o.result, o.created = &c, true
		return nil
	}
	if _, err := tx.Exec(ctx, `UPDATE cards SET status = ?, updated_at = ? WHERE user_id = ? AND bank = ? AND card_token = ?`,
		CardActive, nanos(c.CreatedAt), c.UserID, c.Bank, c.Token); err != nil {
		return fmt.Errorf("channel: reactivate card: %w", err)
	}
	o.result, err = scanCard(tx.QueryRow(ctx, `SELECT `+cardColumns+` FROM cards
		WHERE user_id = ? AND bank = ? AND card_token = ?`, c.UserID, c.Bank, c.Token))
	if err != nil {
		return fmt.Errorf("channel: read card: %w", err)
	}
	return nil
}

// Cards lists u's bound cards, oldest first.
func (s *Service) Cards(ctx context.Context, u *identity.User) ([]*Card, error) {
	return queryCards(ctx, s.cfg.Store.Reader(), `SELECT `+cardColumns+` FROM cards
		WHERE user_id = ? AND status = ? ORDER BY created_at, card_id`, u.UserID, CardActive)
}

// Card returns u's bound card cardID; any other is CARD_NOT_FOUND.
func (s *Service) Card(ctx context.Context, u *identity.User, cardID string) (*Card, error) {
	notFound := &zhifu.Error{Code: zhifu.CardNotFound, Param: "card_id", Message: "no such card"}
	if cardID == "" || len(cardID) > 64 {
		return nil, notFound
	}
	c, ok := s.cards.get(cardID, s.now())
	if !ok {
		var err error
		c, err = scanCard(s.cfg.Store.Reader().QueryRow(ctx, `SELECT `+cardColumns+` FROM cards WHERE card_id = ?`, cardID))
		switch {
		case errors.Is(err, ledger.ErrNoRows):
			return nil, notFound
		case err != nil:
			return nil, fmt.Errorf("channel: card: %w", err)
		}
		if c.Status == CardActive {
			s.cards.put(c, s.now())
		}
	}
	if c.UserID != u.UserID || c.Status != CardActive {
		return nil, notFound
	}
	return c, nil
}

// Limits of the card cache.
const (
	cardCacheTTL     = 10 * time.Second
	cardCacheEntries = 10_000
)

// cardCache keeps the cards read lately: every top-up and withdrawal
// reads its card, and a burst of withdrawals would otherwise read the same
// few thousand rows again and again. Unbinding on this node drops the
// entry at once; another node's unbinding is seen within cardCacheTTL,
// during which a payout may still go to the card (its token stays valid:
// the money reaches the card the user had).
type cardCache struct {
	mu sync.Mutex
	m  map[string]cardEntry
}

type cardEntry struct {
	c  Card
	at time.Time // by the service's clock
}

// get returns the card cached under id, unless it was cached more than
// cardCacheTTL before now (or after now: a clock that stepped back).
func (cc *cardCache) get(id string, now time.Time) (*Card, bool) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	e, ok := cc.m[id]
	if age := now.Sub(e.at); !ok || age > cardCacheTTL || age < 0 {
		return nil, false
	}
	c := e.c
	return &c, true
}

func (cc *cardCache) put(c *Card, now time.Time) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.m == nil {
		cc.m = make(map[string]cardEntry)
	}
	if len(cc.m) >= cardCacheEntries {
		for k := range cc.m {
			delete(cc.m, k)
			break
		}
	}
	cc.m[c.CardID] = cardEntry{c: *c, at: now}
}

func (cc *cardCache) drop(id string) {
	cc.mu.Lock()
	delete(cc.m, id)
	cc.mu.Unlock()
}

// UnbindCard unbinds u's card. Payouts already queued to it still go to
// it: the bank's token stays valid.
func (s *Service) UnbindCard(ctx context.Context, u *identity.User, cardID string) (*Card, error) {
	c, err := s.Card(ctx, u, cardID)
	if err != nil {
		return nil, err
	}
	op := &unbindOp{cardID: c.CardID, userID: u.UserID, now: s.now()}
	s.cards.drop(c.CardID)
	err = s.cfg.Batcher.Do(ctx, op)
	s.cards.drop(c.CardID)
	if err != nil {
		return nil, fmt.Errorf("unbind card: %w", err)
	}
	c.Status = CardUnbound
	return c, nil
}

type unbindOp struct {
	cardID, userID string
	now            time.Time
}

func (o *unbindOp) Keys() []string { return []string{"cardid:" + o.cardID} }

func (o *unbindOp) Prepare(context.Context, ledger.Tx) ([]ledger.Transfer, error) { return nil, nil }

func (o *unbindOp) Finish(ctx context.Context, tx ledger.Tx, _ []ledger.TransferResult) error {
	_, err := tx.Exec(ctx, `UPDATE cards SET status = ?, updated_at = ? WHERE card_id = ? AND user_id = ?`,
		CardUnbound, nanos(o.now), o.cardID, o.userID)
	if err != nil {
		return fmt.Errorf("channel: unbind card: %w", err)
	}
	return nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
